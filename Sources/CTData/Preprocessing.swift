// The paper's preprocessing (§IV-B, DESIGN.md §7): a CT scan and its masks in any orientation →
// RAS+ voxel order, resampled to 0.7168 × 0.7168 × 1.25 mm, shrunk by one common factor to fit
// the target size, zero-padded (centred), HU windowed to [−1350, 150] and mapped to [0, 1].
// Reorientation, resampling and scaling are one interpolation from the source array (no
// intermediate volumes), and `PreprocessingTransform` keeps what is needed to put an output-size
// map back on the scan's own grid. Formulas in Docs/nifti.md.
import NIfTI
import Tensor

/// Settings of `Preprocessing.prepare`. The defaults are the paper's.
public struct PreprocessingOptions: Sendable, Equatable {
    /// Output size [D, H, W] = [z, y, x].
    public var size: [Int] = [138, 256, 256]
    /// Resampling target spacing in mm, (x, y, z) (paper §IV-B).
    public var spacing: [Double] = [0.7168, 0.7168, 1.25]
    /// HU window: values are clipped to [lower, upper], then mapped to [0, 1] (window 1500, level −600).
    public var windowLower: Double = -1350
    public var windowUpper: Double = 150
    /// When false (default) a scan smaller than the target keeps the target spacing and is only
    /// padded; when true it is also enlarged until one axis fills the target.
    public var enlarge = false
    /// Largest difference (mm) between corresponding entries of the image's and a mask's affine.
    public var affineTolerance: Double = 1e-3
    /// A resampled mask voxel is 1 when the trilinear interpolation of the binarised mask is at least this.
    public var maskThreshold: Float = 0.5

    public init(size: [Int] = [138, 256, 256]) {
        precondition(size.count == 3 && size.allSatisfy { $0 > 0 }, "size is [D, H, W], all positive")
        self.size = size
    }
}

/// How output voxels relate to the scan: reorientation, then per canonical axis a an affine map of
/// the voxel index. For output index k (0 ..< T_a) inside the scaled box [o_a, o_a + m_a):
///
///     c = (k − o_a + ½) · r_a − ½          (canonical voxel index, r_a = n_a / m_a)
///     k = (c + ½) / r_a − ½ + o_a          (its inverse)
///
/// so the m_a output voxels cover exactly the extent of the n_a canonical voxels (voxel edges,
/// not centres, coincide; torch's `align_corners=False`). Outside the box the output is padding.
/// Axis order in the arrays here is (x, y, z); the output array is [D, H, W] = [z, y, x], x fastest.
public struct PreprocessingTransform: Sendable, Equatable, Codable {
    /// From the scan's voxel order to RAS+; holds the scan's dims.
    public var reorientation: Reorientation
    /// The scan's voxel-to-world affine.
    public var sourceAffine: Affine
    /// Voxel size of the canonical grid (mm), x, y, z.
    public var canonicalSpacing: [Double]
    /// The common factor f applied after resampling to the target spacing (≤ 1 unless enlarging).
    public var scale: Double
    /// m: size of the resampled, scaled volume inside the output, x, y, z.
    public var scaledDims: [Int]
    /// o: index of the first non-padding voxel along x, y, z.
    public var padOffset: [Int]
    /// r = n / m: canonical voxels per output voxel along x, y, z.
    public var step: [Double]
    /// Output size [D, H, W].
    public var size: [Int]

    /// Output size as NIfTI dims [x, y, z] = [W, H, D].
    public var outputDims: [Int] { [size[2], size[1], size[0]] }

    /// Voxel size of the output grid (mm), x, y, z: r · canonical spacing (the target spacing / f,
    /// up to rounding of m).
    public var outputSpacing: [Double] { (0..<3).map { step[$0] * canonicalSpacing[$0] } }

    /// Canonical voxel index of output index `k` along axis `a` (0 = x, 1 = y, 2 = z).
    public func canonicalIndex(ofOutput k: Double, axis a: Int) -> Double {
        (k - Double(padOffset[a]) + 0.5) * step[a] - 0.5
    }

    /// Output index of canonical voxel index `c` along axis `a`.
    public func outputIndex(ofCanonical c: Double, axis a: Int) -> Double {
        (c + 0.5) / step[a] - 0.5 + Double(padOffset[a])
    }

    /// The output grid's voxel-to-world affine: a map saved with it as a [W, H, D]-dims NIfTI
    /// overlays on the scan directly (viewers resample by world coordinates).
    public var outputAffine: Affine {
        var m = Affine.identity
        for a in 0..<3 {
            m[a, a] = step[a]
            m[a, 3] = (0.5 - Double(padOffset[a])) * step[a] - 0.5
        }
        return reorientation.canonicalAffine(sourceAffine) * m
    }

    /// Puts an output-size map ([D, H, W], x fastest) back on the scan's own grid, by trilinear
    /// interpolation: each scan voxel is taken to its canonical index (undoing flips and the axis
    /// permutation), then to its output index by `outputIndex`, clamped to the scaled box so
    /// padding never bleeds in. The result carries the scan's dims and affine, ready for
    /// `NIfTI.write`.
    public func toSourceGrid(_ map: [Float], name: String = "map") -> Volume {
        let out = outputDims
        precondition(map.count == out[0] * out[1] * out[2], "map has \(map.count) values, expected \(size) = \(out.reduce(1, *))")
        let dims = reorientation.sourceDims
        let outStrides = [1, out[0], out[0] * out[1]]
        // Per source axis: the output axis it becomes and, per source index, two output offsets and a weight.
        let tables: [AxisTable] = (0..<3).map { sa in
            let j = reorientation.sourceAxis.firstIndex(of: sa)!
            let n = dims[sa]
            var t = AxisTable(count: n)
            let lo = Double(padOffset[j]), hi = Double(padOffset[j] + scaledDims[j] - 1)
            for s in 0..<n {
                let c = reorientation.flipped[j] ? Double(n - 1 - s) : Double(s)
                let k = min(max(outputIndex(ofCanonical: c, axis: j), lo), hi)
                let k0 = Int(k.rounded(.down))
                let k1 = min(k0 + 1, Int(hi))
                t.offset0[s] = k0 * outStrides[j]
                t.offset1[s] = k1 * outStrides[j]
                t.weight[s] = Float(k - Double(k0))
            }
            return t
        }
        // Every voxel is written (all weights are ≥ 0 here), so the array is not zeroed first:
        // the first touch of its pages then happens in parallel, inside the loop.
        let count = dims[0] * dims[1] * dims[2]
        let voxels = [Float](unsafeUninitializedCapacity: count) { dst, initialized in
            map.withUnsafeBufferPointer { src in
                let dst = dst.baseAddress!
                Parallel.forEach(dims[1] * dims[2], grain: 8) { rows in
                    for row in rows {
                        let y = row % dims[1], z = row / dims[1]
                        trilinearRow(src.baseAddress!, tables[0], tables[1], y, tables[2], z,
                                     into: dst + row * dims[0], count: dims[0], binarise: false)
                    }
                }
            }
            initialized = count
        }
        return Volume(dims: dims, voxels: voxels, affine: sourceAffine, name: name)
    }
}

/// One preprocessed case: arrays in [D, H, W] order (z slowest, x fastest), RAS+ voxel order.
public struct PreparedCase: Sendable {
    /// [D, H, W].
    public var size: [Int]
    /// Windowed CT in [0, 1]; padding is 0.
    public var image: [Float]
    /// Binary lung mask.
    public var lung: [UInt8]
    /// Binary infection mask; nil when no infection mask was given.
    public var infection: [UInt8]?
    public var lungVoxels: Int
    public var infectionVoxels: Int
    /// r = infection voxels / lung voxels on the final masks; nil without an infection mask.
    public var infectionRatio: Double?
    public var transform: PreprocessingTransform

    /// The image as uint8, round(v · 255), as the shards store it.
    public var imageBytes: [UInt8] { image.map { UInt8(($0 * 255).rounded()) } }
}

public enum Preprocessing {
    /// Runs the preprocessing on a scan in Hounsfield units and its masks (nonzero = inside; a
    /// label map works as a lung mask). The three volumes must share dims and affine; any
    /// orientation is accepted. Throws `DataError` naming the file for mismatched geometry, a
    /// non-finite image voxel or an empty lung mask, and `NIfTIError` for an unusable affine.
    public static func prepare(image: Volume, lung: Volume, infection: Volume? = nil,
                               options: PreprocessingOptions = PreprocessingOptions()) throws -> PreparedCase {
        try checkSameGeometry(image, lung, tolerance: options.affineTolerance)
        if let infection { try checkSameGeometry(image, infection, tolerance: options.affineTolerance) }
        try checkFinite(image)
        let inputLung = countNonzero(lung.voxels)
        if inputLung == 0 {
            throw DataError(file: lung.name, "the lung mask is empty (no nonzero voxel); check that this is the lung mask of \(image.name)")
        }

        let reorientation = try Reorientation.toCanonical(dims: image.dims, affine: image.affine, file: image.name)
        let transform = plan(reorientation: reorientation, affine: image.affine, options: options)
        let out = transform.outputDims
        let count = out[0] * out[1] * out[2]
        let tables = forwardTables(transform)

        // Image: resample in HU, then window: v = (clamp(hu, lo, hi) − lo) / (hi − lo).
        var values = resample(image.voxels, tables, out, binarise: false)
        let lo = Float(options.windowLower), width = Float(options.windowUpper - options.windowLower)
        values.withUnsafeMutableBufferPointer { v in
            let v = v.baseAddress!
            Parallel.forEach(count, grain: 1 << 16) { r in
                for i in r { v[i] = (min(max(v[i] - lo, 0), width)) / width }
            }
        }
        // Padding was resampled as 0 HU; it must be 0 after windowing (air), so zero it again.
        zeroPadding(&values, transform)

        let lungMask = threshold(resample(lung.voxels, tables, out, binarise: true), options.maskThreshold)
        let lungVoxels = countNonzero(lungMask)
        if lungVoxels == 0 {
            throw DataError(file: lung.name, "the lung mask has \(inputLung) voxels but none is left after resampling to \(formatDims(options.size)); check the mask's geometry")
        }
        var infectionMask: [UInt8]?
        var infectionVoxels = 0
        if let infection {
            let m = threshold(resample(infection.voxels, tables, out, binarise: true), options.maskThreshold)
            infectionVoxels = countNonzero(m)
            infectionMask = m
        }
        return PreparedCase(size: options.size, image: values, lung: lungMask, infection: infectionMask,
                            lungVoxels: lungVoxels, infectionVoxels: infectionVoxels,
                            infectionRatio: infection == nil ? nil : Double(infectionVoxels) / Double(lungVoxels),
                            transform: transform)
    }

    /// The resampling plan for a scan (see `PreprocessingTransform` for the index maps). With
    /// canonical dims n, spacing s, target spacing t and target size T (x, y, z):
    ///
    ///     e_a = n_a · s_a / t_a                 size at the target spacing
    ///     f   = min_a T_a / e_a, capped at 1 unless `enlarge`
    ///     m_a = clamp(round(e_a · f), 1, T_a)   size after the common scaling
    ///     r_a = n_a / m_a,  o_a = ⌊(T_a − m_a) / 2⌋
    public static func plan(reorientation: Reorientation, affine: Affine, options: PreprocessingOptions) -> PreprocessingTransform {
        let n = reorientation.canonicalDims
        let s = reorientation.canonicalAffine(affine).spacing
        let target = [options.size[2], options.size[1], options.size[0]]
        let extent = (0..<3).map { Double(n[$0]) * s[$0] / options.spacing[$0] }
        var f = (0..<3).map { Double(target[$0]) / extent[$0] }.min()!
        if !options.enlarge { f = min(f, 1) }
        let m = (0..<3).map { min(target[$0], max(1, Int((extent[$0] * f).rounded()))) }
        return PreprocessingTransform(
            reorientation: reorientation, sourceAffine: affine, canonicalSpacing: s, scale: f,
            scaledDims: m, padOffset: (0..<3).map { (target[$0] - m[$0]) / 2 },
            step: (0..<3).map { Double(n[$0]) / Double(m[$0]) }, size: options.size)
    }

    // MARK: - Checks

    static func checkSameGeometry(_ image: Volume, _ mask: Volume, tolerance: Double) throws {
        if image.dims != mask.dims {
            throw DataError(file: mask.name, "is \(formatDims(mask.dims)) voxels but its image \(image.name) is \(formatDims(image.dims)); masks must be on the image's voxel grid: resample the mask onto the image")
        }
        var worst = (row: 0, column: 0, difference: 0.0)
        for r in 0..<3 {
            for c in 0..<4 {
                let d = abs(image.affine[r, c] - mask.affine[r, c])
                if !(d <= worst.difference) { worst = (r, c, d) }  // NaN counts as worst
            }
        }
        if !(worst.difference <= tolerance) {
            let (r, c, d) = worst
            throw DataError(file: mask.name, "does not share the geometry of its image \(image.name): their voxel-to-world affines differ by \(short(d)) \(c == 3 ? "mm" : "mm per voxel") at row \(r), column \(c) (\(short(mask.affine[r, c])) vs \(short(image.affine[r, c]))), more than the tolerance \(tolerance); resample the mask onto the image's grid or fix its header")
        }
    }

    static func checkFinite(_ image: Volume) throws {
        let bad = Parallel.blockedSum(image.count, block: 1 << 16) { r in
            var n = 0.0
            for i in r where !image.voxels[i].isFinite { n += 1 }
            return n
        }
        if bad > 0 {
            let i = image.voxels.firstIndex { !$0.isFinite }!
            let nx = image.dims[0], ny = image.dims[1]
            throw DataError(file: image.name, "voxel (\(i % nx), \(i / nx % ny), \(i / (nx * ny))) is \(image.voxels[i]) (\(Int(bad)) of \(image.count) voxels are not finite); a CT in HU has finite values: re-export the scan")
        }
    }

    static func countNonzero<T: Numeric>(_ values: [T]) -> Int {
        Int(Parallel.blockedSum(values.count, block: 1 << 16) { r in
            var n = 0
            for i in r where values[i] != 0 { n += 1 }
            return Double(n)
        })
    }

    // MARK: - Resampling

    /// Per output axis (x, y, z): source offsets and weights of the two neighbours along that axis.
    static func forwardTables(_ t: PreprocessingTransform) -> [AxisTable] {
        let (base, strides) = t.reorientation.canonicalStrides
        let n = t.reorientation.canonicalDims
        let out = t.outputDims
        return (0..<3).map { a in
            var table = AxisTable(count: out[a])
            for k in t.padOffset[a]..<(t.padOffset[a] + t.scaledDims[a]) {
                let c = min(max(t.canonicalIndex(ofOutput: Double(k), axis: a), 0), Double(n[a] - 1))
                let c0 = Int(c.rounded(.down))
                let c1 = min(c0 + 1, n[a] - 1)
                table.offset0[k] = c0 * strides[a] + (a == 0 ? base : 0)
                table.offset1[k] = c1 * strides[a] + (a == 0 ? base : 0)
                table.weight[k] = Float(c - Double(c0))
            }
            return table
        }
    }

    /// Trilinear resampling of a source array into the output grid; padding stays 0.
    static func resample(_ source: [Float], _ tables: [AxisTable], _ out: [Int], binarise: Bool) -> [Float] {
        var result = [Float](repeating: 0, count: out[0] * out[1] * out[2])
        source.withUnsafeBufferPointer { src in
            result.withUnsafeMutableBufferPointer { dst in
                let dst = dst.baseAddress!
                Parallel.forEach(out[1] * out[2], grain: 8) { rows in
                    for row in rows {
                        trilinearRow(src.baseAddress!, tables[0], tables[1], row % out[1], tables[2], row / out[1],
                                     into: dst + row * out[0], count: out[0], binarise: binarise)
                    }
                }
            }
        }
        return result
    }

    static func threshold(_ values: [Float], _ t: Float) -> [UInt8] { values.map { $0 >= t ? 1 : 0 } }

    static func zeroPadding(_ values: inout [Float], _ t: PreprocessingTransform) {
        let out = t.outputDims
        let o = t.padOffset, m = t.scaledDims
        values.withUnsafeMutableBufferPointer { v in
            let v = v.baseAddress!
            Parallel.forEach(out[1] * out[2], grain: 8) { rows in
                for row in rows {
                    let y = row % out[1], z = row / out[1]
                    let p = v + row * out[0]
                    if y < o[1] || y >= o[1] + m[1] || z < o[2] || z >= o[2] + m[2] {
                        p.update(repeating: 0, count: out[0])
                    } else {
                        for x in 0..<o[0] { p[x] = 0 }
                        for x in (o[0] + m[0])..<out[0] { p[x] = 0 }
                    }
                }
            }
        }
    }

    static func formatDims(_ s: [Int]) -> String { s.map(String.init).joined(separator: "×") }
    static func short(_ v: Double) -> String { "\((v * 1e4).rounded() / 1e4)" }
}

/// One axis of a separable trilinear map: for each destination index, the source offsets of its
/// two neighbours (already multiplied by the source stride) and the weight of the second. A
/// destination index outside the mapped box has weight −1 and stays 0.
struct AxisTable: Sendable {
    var offset0: [Int]
    var offset1: [Int]
    var weight: [Float]

    init(count: Int) {
        offset0 = [Int](repeating: 0, count: count)
        offset1 = [Int](repeating: 0, count: count)
        weight = [Float](repeating: -1, count: count)
    }
}

/// One destination row: x runs along `tx`, the row sits at `y` of `ty` and `z` of `tz`. With
/// `binarise` every source value is first mapped to 0 or 1 (nonzero = 1), for masks.
@inline(__always)
func trilinearRow(_ src: UnsafePointer<Float>, _ tx: AxisTable, _ ty: AxisTable, _ y: Int, _ tz: AxisTable, _ z: Int,
                  into dst: UnsafeMutablePointer<Float>, count: Int, binarise: Bool) {
    let wy = ty.weight[y], wz = tz.weight[z]
    if wy < 0 || wz < 0 { return }
    let b00 = ty.offset0[y] + tz.offset0[z], b10 = ty.offset1[y] + tz.offset0[z]
    let b01 = ty.offset0[y] + tz.offset1[z], b11 = ty.offset1[y] + tz.offset1[z]
    tx.offset0.withUnsafeBufferPointer { o0 in
        tx.offset1.withUnsafeBufferPointer { o1 in
            tx.weight.withUnsafeBufferPointer { w in
                for x in 0..<count where w[x] >= 0 {
                    let i0 = o0[x], i1 = o1[x], wx = w[x]
                    var v000 = src[b00 + i0], v100 = src[b00 + i1], v010 = src[b10 + i0], v110 = src[b10 + i1]
                    var v001 = src[b01 + i0], v101 = src[b01 + i1], v011 = src[b11 + i0], v111 = src[b11 + i1]
                    if binarise {
                        v000 = v000 != 0 ? 1 : 0; v100 = v100 != 0 ? 1 : 0; v010 = v010 != 0 ? 1 : 0; v110 = v110 != 0 ? 1 : 0
                        v001 = v001 != 0 ? 1 : 0; v101 = v101 != 0 ? 1 : 0; v011 = v011 != 0 ? 1 : 0; v111 = v111 != 0 ? 1 : 0
                    }
                    let a0 = v000 + (v100 - v000) * wx, a1 = v010 + (v110 - v010) * wx
                    let a2 = v001 + (v101 - v001) * wx, a3 = v011 + (v111 - v011) * wx
                    let b0 = a0 + (a1 - a0) * wy, b1 = a2 + (a3 - a2) * wy
                    dst[x] = b0 + (b1 - b0) * wz
                }
            }
        }
    }
}
