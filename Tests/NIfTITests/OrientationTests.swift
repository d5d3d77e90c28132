import Foundation
import Testing
@testable import NIfTI

@Suite struct OrientationTests {
    /// 3×4×5 volume whose value encodes its index: v = x + 10 y + 100 z.
    func indexed(_ affine: Affine, dims: [Int] = [3, 4, 5]) -> Volume {
        var v = Volume(dims: dims, affine: affine)
        for z in 0..<dims[2] { for y in 0..<dims[1] { for x in 0..<dims[0] { v[x, y, z] = Float(x + 10 * y + 100 * z) } } }
        return v
    }

    @Test func axisCodes() throws {
        #expect(try Reorientation.axisCodes(.identity) == "RAS")
        #expect(try Reorientation.axisCodes(Affine(scale: [-1, -1, 1])) == "LPS")
        #expect(try Reorientation.axisCodes(Affine(rows: [[0, 0, 1, 0], [0, -1, 0, 0], [-1, 0, 0, 0]])) == "IPR")
        #expect(try Reorientation.axisCodes(WriterTests.oblique) == "RAI")
    }

    @Test func lpsBecomesRASByFlippingXAndY() throws {
        let lps = Affine(scale: [-0.7, -0.8, 2.5], offset: [100, 120, -50])
        let (c, r) = try indexed(lps).canonical()
        #expect(c.orientation == "RAS")
        #expect(r.sourceAxis == [0, 1, 2] && r.flipped == [true, true, false])
        // Canonical (0, 0, z) is source (2, 3, z).
        #expect(c[0, 0, 0] == 2 + 30)
        #expect(c[2, 3, 4] == 0 + 0 + 400)
        #expect(c[1, 0, 2] == 1 + 30 + 200)
        #expect(c.affine.maxDifference(Affine(scale: [0.7, 0.8, 2.5], offset: [100 - 2 * 0.7, 120 - 3 * 0.8, -50])) < 1e-12)
        // The world position of every voxel is unchanged.
        let src = indexed(lps)
        for (x, y, z) in [(0, 0, 0), (2, 1, 3), (1, 3, 4)] {
            let w = c.affine.apply([Double(x), Double(y), Double(z)])
            let s = lps.inverse.apply(w).map { Int($0.rounded()) }
            #expect(src[s[0], s[1], s[2]] == c[x, y, z])
        }
    }

    @Test func permutedAxesArePermutedBack() throws {
        // Voxel axis 0 runs Inferior, 1 Posterior, 2 Right (a sagittal-first layout).
        let affine = Affine(rows: [[0, 0, 1.5, -10], [0, -0.5, 0, 20], [-2, 0, 0, 30]])
        let src = indexed(affine)
        let (c, r) = try src.canonical()
        #expect(c.dims == [5, 4, 3])
        #expect(r.sourceAxis == [2, 1, 0] && r.flipped == [false, true, true])
        #expect(c.orientation == "RAS")
        #expect(c.spacing.map { ($0 * 1e9).rounded() / 1e9 } == [1.5, 0.5, 2])
        // Canonical (i, j, k) = source (2 − k, 3 − j, i).
        for (i, j, k) in [(0, 0, 0), (4, 3, 2), (1, 2, 0), (3, 0, 1)] {
            #expect(c[i, j, k] == src[2 - k, 3 - j, i])
        }
        let back = r.revert(c)
        #expect(back.voxels == src.voxels)
        #expect(back.affine.maxDifference(affine) < 1e-12)
        #expect(back.dims == src.dims)
    }

    @Test func obliqueGridsTakeTheClosestAxes() throws {
        // 30° about z: x still closest to R, y to A.
        let t = Double.pi / 6
        let a = Affine(rows: [[cos(t), -sin(t), 0, 0], [sin(t), cos(t), 0, 0], [0, 0, 1, 0]])
        #expect(try Reorientation.axisCodes(a) == "RAS")
        let (c, r) = try indexed(a).canonical()
        #expect(r.isIdentity)
        #expect(c.affine == a)
    }

    @Test func singularAffineThrows() {
        let e = nifti { try Volume(dims: [2, 2, 2], affine: Affine(scale: [1, 1, 0]), name: "flat.nii").canonical() }
        #expect(e?.kind == .badGeometry)
        #expect(e?.description.hasPrefix("flat.nii: the voxel-to-world affine is singular") == true)
    }

    @Test(arguments: 0..<20)
    func everyAxisPermutationAndFlipRoundTrips(seed: Int) throws {
        var rng = SeededRandom(seed: UInt64(seed))
        var perm = [0, 1, 2]
        for i in (1..<3).reversed() { perm.swapAt(i, rng.int(0..<(i + 1))) }
        var rows = [[Double]](repeating: [0, 0, 0, 0], count: 3)
        for j in 0..<3 {
            rows[perm[j]][j] = (rng.next() % 2 == 0 ? -1 : 1) * (0.5 + rng.unit())
            rows[j][3] = rng.unit() * 100
        }
        let affine = Affine(rows: rows)
        let src = indexed(affine)
        let (c, r) = try src.canonical()
        #expect(c.orientation == "RAS")
        #expect((0..<3).allSatisfy { c.affine[$0, $0] > 0 })
        let back = r.revert(c)
        #expect(back.voxels == src.voxels)
        #expect(back.affine.maxDifference(affine) < 1e-12)
        // Writing the canonical volume keeps every voxel's world position.
        for _ in 0..<5 {
            let x = rng.int(0..<c.dims[0]), y = rng.int(0..<c.dims[1]), z = rng.int(0..<c.dims[2])
            let s = affine.inverse.apply(c.affine.apply([Double(x), Double(y), Double(z)])).map { Int($0.rounded()) }
            #expect(src[s[0], s[1], s[2]] == c[x, y, z])
        }
    }
}
