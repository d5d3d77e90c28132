import Testing
import NIfTI
@testable import CTData

@Suite struct PreprocessingTests {
    static let target = [0.7168, 0.7168, 1.25]

    /// A RAS volume with `value(x, y, z)` at each voxel.
    func volume(_ dims: [Int], spacing: [Double], name: String = "image.nii.gz",
                _ value: (Int, Int, Int) -> Float) -> Volume {
        var v = Volume(dims: dims, affine: Affine(scale: spacing, offset: [-100, -120, -300]), name: name)
        for z in 0..<dims[2] { for y in 0..<dims[1] { for x in 0..<dims[0] { v[x, y, z] = value(x, y, z) } } }
        return v
    }

    func options(_ size: [Int]) -> PreprocessingOptions { PreprocessingOptions(size: size) }

    @Test func linearRampInHUResamplesToALinearRampInsideTheWindow() throws {
        // 10×6×4 at (2, 1, 2)·target spacing: 20×6×8 target voxels, fits 24×8×12 without scaling.
        let hu: (Double, Double, Double) -> Double = { -1350 + 50 * $0 + 10 * $1 + 5 * $2 }
        let image = volume([10, 6, 4], spacing: [2 * Self.target[0], Self.target[1], 2 * Self.target[2]]) {
            Float(hu(Double($0), Double($1), Double($2)))
        }
        let lung = volume([10, 6, 4], spacing: image.spacing, name: "lung.nii.gz") { _, _, _ in 1 }
        let c = try Preprocessing.prepare(image: image, lung: lung, options: options([12, 8, 24]))
        let t = c.transform
        #expect(t.scale == 1)
        #expect(t.scaledDims == [20, 6, 8])
        #expect(t.padOffset == [2, 1, 2])
        #expect(t.step == [0.5, 1, 0.5])
        #expect(c.size == [12, 8, 24] && c.image.count == 12 * 8 * 24)
        var padding = 0
        for z in 0..<12 {
            for y in 0..<8 {
                for x in 0..<24 {
                    let v = c.image[(z * 8 + y) * 24 + x]
                    let inside = (2..<22).contains(x) && (1..<7).contains(y) && (2..<10).contains(z)
                    if !inside {
                        #expect(v == 0 && c.lung[(z * 8 + y) * 24 + x] == 0)
                        padding += 1
                        continue
                    }
                    let cx = min(max((Double(x - 2) + 0.5) * 0.5 - 0.5, 0), 9)
                    let cy = Double(y - 1)
                    let cz = min(max((Double(z - 2) + 0.5) * 0.5 - 0.5, 0), 3)
                    let expected = (hu(cx, cy, cz) + 1350) / 1500
                    #expect(abs(Double(v) - expected) < 1e-5, "(\(x), \(y), \(z))")
                }
            }
        }
        #expect(padding == 12 * 8 * 24 - 20 * 6 * 8)
        #expect(c.lungVoxels == 20 * 6 * 8)
        #expect(c.infection == nil && c.infectionRatio == nil)
        // The output spacing is the target spacing when nothing is scaled.
        #expect(zip(t.outputSpacing, Self.target).allSatisfy { abs($0 - $1) < 1e-12 })
    }

    @Test func windowEndpointsMapToZeroAndOne() throws {
        for (hu, expected, byte) in [(-1350.0, 0.0, 0), (150, 1, 255), (-3000, 0, 0), (3000, 1, 255), (-600, 0.5, 128)] {
            let image = volume([4, 4, 4], spacing: Self.target) { _, _, _ in Float(hu) }
            let lung = volume([4, 4, 4], spacing: Self.target, name: "lung.nii.gz") { _, _, _ in 1 }
            let c = try Preprocessing.prepare(image: image, lung: lung, options: options([4, 4, 4]))
            #expect(c.image.allSatisfy { abs(Double($0) - expected) < 1e-6 }, "HU \(hu)")
            #expect(c.imageBytes.allSatisfy { Int($0) == byte }, "HU \(hu)")
        }
    }

    @Test func oneCommonFactorShrinksLargeScansAndSmallOnesArePaddedOnly() {
        let big = Reorientation(sourceDims: [100, 100, 40], sourceAxis: [0, 1, 2], flipped: [false, false, false])
        var t = Preprocessing.plan(reorientation: big, affine: Affine(scale: Self.target), options: options([10, 64, 64]))
        #expect(t.scale == 0.25)  // z binds: 10 / 40
        #expect(t.scaledDims == [25, 25, 10])
        #expect(t.padOffset == [19, 19, 0])
        #expect(t.step == [4, 4, 4])

        let small = Reorientation(sourceDims: [10, 10, 10], sourceAxis: [0, 1, 2], flipped: [false, false, false])
        t = Preprocessing.plan(reorientation: small, affine: Affine(scale: Self.target), options: options([20, 64, 64]))
        #expect(t.scale == 1 && t.scaledDims == [10, 10, 10] && t.padOffset == [27, 27, 5])
        var enlarge = options([20, 64, 64])
        enlarge.enlarge = true
        t = Preprocessing.plan(reorientation: small, affine: Affine(scale: Self.target), options: enlarge)
        #expect(t.scale == 2 && t.scaledDims == [20, 20, 20] && t.padOffset == [22, 22, 0])

        // The paper's default size on a typical 512×512×300 scan at 0.7 × 0.7 × 1 mm: x and y
        // bind (500 target voxels into 256), z follows with the same factor (240 → 123).
        let scan = Reorientation(sourceDims: [512, 512, 300], sourceAxis: [0, 1, 2], flipped: [false, false, false])
        t = Preprocessing.plan(reorientation: scan, affine: Affine(scale: [0.7, 0.7, 1.0]), options: PreprocessingOptions())
        #expect(t.size == [138, 256, 256])
        #expect(t.scaledDims == [256, 256, 123] && t.padOffset == [0, 0, 7])
        #expect(abs(t.outputSpacing[2] / t.outputSpacing[0] - 1.25 / 0.7168) < 0.01)
    }

    func masks(_ dims: [Int]) -> (Volume, Volume) {
        let lung = volume(dims, spacing: Self.target, name: "lung.nii.gz") { x, y, _ in
            (1..<7).contains(x) && (1..<7).contains(y) ? 1 : 0
        }
        let infection = volume(dims, spacing: Self.target, name: "infection.nii.gz") { x, y, z in
            (2..<4).contains(x) && (2..<5).contains(y) && (1..<3).contains(z) ? 3 : 0  // any nonzero label
        }
        return (lung, infection)
    }

    @Test func infectionRatioIsExactOnAConstructedMask() throws {
        let image = volume([8, 8, 4], spacing: Self.target) { x, _, _ in Float(-1000 + 10 * x) }
        let (lung, infection) = masks([8, 8, 4])
        let c = try Preprocessing.prepare(image: image, lung: lung, infection: infection, options: options([4, 8, 8]))
        #expect(c.transform.step == [1, 1, 1] && c.transform.padOffset == [0, 0, 0])
        #expect(c.lungVoxels == 6 * 6 * 4)
        #expect(c.infectionVoxels == 2 * 3 * 2)
        #expect(c.infectionRatio == 12.0 / 144.0)
        #expect(c.lung == lung.voxels.map { $0 != 0 ? 1 : 0 })
    }

    @Test func anyOrientationGivesTheCanonicalResult() throws {
        let image = volume([8, 8, 4], spacing: Self.target) { x, y, z in Float(-1000 + 10 * x + 3 * y + 50 * z) }
        let (lung, infection) = masks([8, 8, 4])
        let reference = try Preprocessing.prepare(image: image, lung: lung, infection: infection, options: options([6, 12, 10]))
        // The same scan stored as L-I-P with axes permuted: voxel axis 0 = I, 1 = L, 2 = P.
        let stored = Reorientation(sourceDims: [4, 8, 8], sourceAxis: [1, 2, 0], flipped: [true, true, true])
        func store(_ v: Volume) -> Volume {
            var out = Volume(dims: stored.sourceDims, affine: .identity, name: v.name)
            let t = stored.indexTransform
            for z in 0..<8 { for y in 0..<8 { for x in 0..<4 {
                let c = t.inverse.apply([Double(x), Double(y), Double(z)]).map { Int($0.rounded()) }
                out[x, y, z] = v[c[0], c[1], c[2]]
            } } }
            out.affine = v.affine * t.inverse
            return out
        }
        let s = store(image)
        #expect(s.orientation == "ILP")
        let c = try Preprocessing.prepare(image: s, lung: store(lung), infection: store(infection), options: options([6, 12, 10]))
        #expect(c.image == reference.image)
        #expect(c.lung == reference.lung && c.infection == reference.infection)
        #expect(c.transform.reorientation == stored)
        #expect(c.transform.outputAffine.maxDifference(reference.transform.outputAffine) < 1e-9)
    }

    @Test func geometryMismatchNamesBothFiles() {
        let image = volume([8, 8, 4], spacing: Self.target) { _, _, _ in 0 }
        var lung = volume([8, 8, 4], spacing: Self.target, name: "lung.nii.gz") { _, _, _ in 1 }
        lung.affine[0, 3] += 2
        #expect(error { try Preprocessing.prepare(image: image, lung: lung) } ==
            "lung.nii.gz: does not share the geometry of its image image.nii.gz: their voxel-to-world affines differ by 2.0 mm at row 0, column 3 (-98.0 vs -100.0), more than the tolerance 0.001; resample the mask onto the image's grid or fix its header")
        let other = volume([8, 8, 5], spacing: Self.target, name: "infection.nii.gz") { _, _, _ in 1 }
        lung.affine[0, 3] -= 2
        #expect(error { try Preprocessing.prepare(image: image, lung: lung, infection: other) } ==
            "infection.nii.gz: is 8×8×5 voxels but its image image.nii.gz is 8×8×4; masks must be on the image's voxel grid: resample the mask onto the image")
    }

    @Test func emptyLungAndNonFiniteImageAreErrors() {
        let image = volume([8, 8, 4], spacing: Self.target) { _, _, _ in 0 }
        let empty = volume([8, 8, 4], spacing: Self.target, name: "lung.nii.gz") { _, _, _ in 0 }
        #expect(error { try Preprocessing.prepare(image: image, lung: empty) } ==
            "lung.nii.gz: the lung mask is empty (no nonzero voxel); check that this is the lung mask of image.nii.gz")
        var nan = image
        nan[3, 2, 1] = .nan
        nan[0, 0, 3] = .infinity
        let lung = volume([8, 8, 4], spacing: Self.target, name: "lung.nii.gz") { _, _, _ in 1 }
        #expect(error { try Preprocessing.prepare(image: nan, lung: lung) } ==
            "image.nii.gz: voxel (3, 2, 1) is nan (2 of 256 voxels are not finite); a CT in HU has finite values: re-export the scan")
    }

    @Test func outputMapsGoBackToTheScanGrid() throws {
        // An LPS scan of 20×16×12 at the target spacing, shrunk by 2 into 10×8×6.
        let dims = [20, 16, 12]
        let affine = Affine(scale: [-Self.target[0], -Self.target[1], Self.target[2]], offset: [50, 60, -70])
        let image = Volume(dims: dims, repeating: -500, affine: affine, name: "scan.nii.gz")
        let lung = Volume(dims: dims, repeating: 1, affine: affine, name: "lung.nii.gz")
        let c = try Preprocessing.prepare(image: image, lung: lung, options: options([6, 8, 10]))
        let t = c.transform
        #expect(t.scale == 0.5 && t.step == [2, 2, 2] && t.padOffset == [0, 0, 0])
        // World positions agree: output voxel ↔ canonical voxel ↔ scan voxel.
        let canonical = t.reorientation.canonicalAffine(affine)
        for k in [[0.0, 0, 0], [3, 5, 2], [9, 7, 5]] {
            let cIndex = (0..<3).map { t.canonicalIndex(ofOutput: k[$0], axis: $0) }
            let w1 = t.outputAffine.apply(k), w2 = canonical.apply(cIndex)
            #expect(zip(w1, w2).allSatisfy { abs($0 - $1) < 1e-9 })
        }
        // A map equal to the canonical x index, put back on the scan grid, gives each scan
        // voxel its own canonical x index (20 − 1 − x, the scan is LPS) away from the edges.
        let out = t.outputDims
        var map = [Float](repeating: 0, count: out.reduce(1, *))
        for z in 0..<out[2] { for y in 0..<out[1] { for x in 0..<out[0] {
            map[(z * out[1] + y) * out[0] + x] = Float(t.canonicalIndex(ofOutput: Double(x), axis: 0) + Double(y + z) * 0)
        } } }
        let back = t.toSourceGrid(map, name: "attention.nii.gz")
        #expect(back.dims == dims && back.affine == affine && back.name == "attention.nii.gz")
        for z in 0..<dims[2] { for y in 0..<dims[1] { for x in 1..<(dims[0] - 1) {
            #expect(abs(back[x, y, z] - Float(dims[0] - 1 - x)) < 1e-4, "(\(x), \(y), \(z))")
        } } }
        // Edges clamp to the outermost output voxel (0.5 and 18.5), never to padding.
        #expect(back[0, 0, 0] == 18.5 && back[19, 0, 0] == 0.5)
    }

    @Test func mapsWithPaddingComeBackWithoutIt() throws {
        let dims = [6, 4, 3]
        let image = volume(dims, spacing: Self.target) { _, _, _ in 0 }
        let lung = volume(dims, spacing: Self.target, name: "lung.nii.gz") { _, _, _ in 1 }
        let c = try Preprocessing.prepare(image: image, lung: lung, options: options([5, 8, 10]))
        #expect(c.transform.padOffset == [2, 2, 1])
        // The lung mask (1 inside the box, 0 in the padding) maps back to exactly 1 everywhere.
        let back = c.transform.toSourceGrid(c.lung.map(Float.init))
        #expect(back.voxels.allSatisfy { $0 == 1 })
    }

    func error(_ body: () throws -> Any) -> String? {
        do { _ = try body(); return nil } catch { return "\(error)" }
    }
}
