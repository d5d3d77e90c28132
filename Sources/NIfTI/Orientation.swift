/// A permutation and flips of the voxel axes that bring a grid to dsan's canonical orientation,
/// RAS+: voxel axis 0 increases towards the patient's Right, axis 1 Anterior, axis 2 Superior
/// (nibabel's `as_closest_canonical`). The world coordinates of every voxel are unchanged; only
/// the voxel order and the affine change, so no interpolation happens.
///
/// Canonical axis `j` is source axis `sourceAxis[j]`, reversed when `flipped[j]`:
/// source index s[sourceAxis[j]] = flipped[j] ? n − 1 − c[j] : c[j].
public struct Reorientation: Equatable, Sendable, Codable {
    /// [nx, ny, nz] of the source grid.
    public var sourceDims: [Int]
    public var sourceAxis: [Int]
    public var flipped: [Bool]

    public init(sourceDims: [Int], sourceAxis: [Int], flipped: [Bool]) {
        precondition(sourceDims.count == 3 && Set(sourceAxis) == [0, 1, 2] && flipped.count == 3)
        self.sourceDims = sourceDims
        self.sourceAxis = sourceAxis
        self.flipped = flipped
    }

    /// [nx, ny, nz] of the canonical grid.
    public var canonicalDims: [Int] { sourceAxis.map { sourceDims[$0] } }

    public var isIdentity: Bool { sourceAxis == [0, 1, 2] && flipped == [false, false, false] }

    /// The map from canonical voxel index to source voxel index, as an affine.
    public var indexTransform: Affine {
        var t = Affine(rows: [[0, 0, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0]])
        for j in 0..<3 {
            let a = sourceAxis[j]
            t[a, j] = flipped[j] ? -1 : 1
            t[a, 3] = flipped[j] ? Double(sourceDims[a] - 1) : 0
        }
        return t
    }

    /// The affine of the canonical grid, from the source grid's.
    public func canonicalAffine(_ source: Affine) -> Affine { source * indexTransform }

    /// Source voxel axis and world axis of each voxel axis by nibabel's `io_orientation`: the
    /// affine's normalised 3×3 part is replaced by its closest rotation (polar decomposition),
    /// then each voxel axis, in order, takes the world axis it is most aligned with that no
    /// earlier axis took. Returns, per voxel axis, (world axis, +1 or −1).
    public static func closestAxes(_ affine: Affine, file: String = "volume") throws -> [(axis: Int, sign: Int)] {
        guard affine.isFinite, affine.determinant != 0, affine.determinant.isFinite else {
            throw NIfTIError(file: file, kind: .badGeometry,
                             problem: "the voxel-to-world affine is singular or non-finite (\(affine)), so the orientation is unknown",
                             remedy: "fix the image's sform/qform, e.g. re-export it from the DICOM series")
        }
        let spacing = affine.spacing
        var r = (0..<3).map { i in (0..<3).map { j in affine[i, j] / spacing[j] } }  // r[world][voxel]
        r = polarRotation(r)
        var result: [(axis: Int, sign: Int)] = []
        var taken = [false, false, false]
        for voxelAxis in 0..<3 {
            var best = -1
            var bestValue = -1.0
            for w in 0..<3 where !taken[w] && abs(r[w][voxelAxis]) > bestValue {
                best = w
                bestValue = abs(r[w][voxelAxis])
            }
            taken[best] = true
            result.append((best, r[best][voxelAxis] < 0 ? -1 : 1))
        }
        return result
    }

    /// Axis codes such as "RAS", "LPS", "PSR": for each voxel axis, the world direction it
    /// increases towards (nibabel's `aff2axcodes`).
    public static func axisCodes(_ affine: Affine) throws -> String {
        let positive: [Character] = ["R", "A", "S"], negative: [Character] = ["L", "P", "I"]
        return String(try closestAxes(affine).map { $0.sign > 0 ? positive[$0.axis] : negative[$0.axis] })
    }

    /// The reorientation that brings a grid with this affine to RAS+.
    public static func toCanonical(dims: [Int], affine: Affine, file: String = "volume") throws -> Reorientation {
        let axes = try closestAxes(affine, file: file)
        var sourceAxis = [0, 0, 0], flipped = [false, false, false]
        for (voxelAxis, (world, sign)) in axes.enumerated() {
            sourceAxis[world] = voxelAxis
            flipped[world] = sign < 0
        }
        return Reorientation(sourceDims: dims, sourceAxis: sourceAxis, flipped: flipped)
    }

    /// For each canonical axis: the source offset of canonical index 0 and the source stride per
    /// canonical step (negative when flipped), in a source array with x fastest.
    public var canonicalStrides: (base: Int, strides: [Int]) {
        let sourceStrides = [1, sourceDims[0], sourceDims[0] * sourceDims[1]]
        var base = 0
        var strides = [0, 0, 0]
        for j in 0..<3 {
            let a = sourceAxis[j]
            if flipped[j] {
                base += (sourceDims[a] - 1) * sourceStrides[a]
                strides[j] = -sourceStrides[a]
            } else {
                strides[j] = sourceStrides[a]
            }
        }
        return (base, strides)
    }

    /// `volume` (on the source grid) reordered to the canonical grid, with the canonical affine.
    public func apply(_ volume: Volume) -> Volume {
        precondition(volume.dims == sourceDims, "Reorientation for \(sourceDims) applied to \(volume.dims)")
        if isIdentity { return volume }
        return Volume(dims: canonicalDims, voxels: permute(volume.voxels, toCanonical: true),
                      affine: canonicalAffine(volume.affine), geometrySource: volume.geometrySource, name: volume.name)
    }

    /// The inverse of `apply`: a volume on the canonical grid (say, a map computed from the
    /// canonical image) put back on the source grid, with the source affine.
    public func revert(_ volume: Volume) -> Volume {
        precondition(volume.dims == canonicalDims, "Reorientation to \(canonicalDims) reverted on \(volume.dims)")
        if isIdentity { return volume }
        return Volume(dims: sourceDims, voxels: permute(volume.voxels, toCanonical: false),
                      affine: volume.affine * indexTransform.inverse,
                      geometrySource: volume.geometrySource, name: volume.name)
    }

    /// Walks the canonical grid in memory order; source voxel i = base + Σ strides · index.
    /// `toCanonical` gathers source → canonical, otherwise scatters canonical → source.
    private func permute(_ values: [Float], toCanonical: Bool) -> [Float] {
        let out = canonicalDims
        let (base, s) = canonicalStrides
        var result = [Float](repeating: 0, count: values.count)
        values.withUnsafeBufferPointer { src in
            result.withUnsafeMutableBufferPointer { dst in
                var o = 0
                for z in 0..<out[2] {
                    for y in 0..<out[1] {
                        var i = base + z * s[2] + y * s[1]
                        for _ in 0..<out[0] {
                            if toCanonical { dst[o] = src[i] } else { dst[i] = src[o] }
                            o += 1
                            i += s[0]
                        }
                    }
                }
            }
        }
        return result
    }
}

extension Volume {
    /// This volume in RAS+ voxel order, and the reorientation that got it there (keep it to map
    /// results back with `revert`). Throws when the affine is singular.
    public func canonical() throws -> (volume: Volume, reorientation: Reorientation) {
        let r = try Reorientation.toCanonical(dims: dims, affine: affine, file: name)
        return (r.apply(self), r)
    }
}
