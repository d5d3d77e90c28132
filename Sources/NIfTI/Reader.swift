// The NIfTI-1 reader: detects gzip by its magic bytes, parses and validates the header against
// the size of the file, then streams the voxels through a fixed buffer straight into Float, so a
// 157 MB int16 scan never exists twice in memory.

/// A gzip stream cannot expand by more than 1032:1 (deflate's longest match, 258 bytes, costs at
/// least 2 bits), so a header asking for more than this from a small file is lying; checking it
/// before allocating keeps a damaged header from requesting terabytes.
let deflateMaxRatio = 1032

/// The voxel layout a validated header describes.
struct VoxelLayout {
    var dims: [Int]           // [nx, ny, nz]
    var datatype: NIfTIDatatype
    var voxelCount: Int
    var byteCount: Int
    var voxOffset: Int

    var summary: String { "\(formatDims(dims)) \(datatype) voxels (\(formatBytes(byteCount)))" }
}

/// Serves a few bytes already read (the magic) before the rest of `base`.
final class PrefixedSource: ByteSource {
    var prefix: [UInt8]
    let base: ByteSource
    init(prefix: [UInt8], base: ByteSource) { self.prefix = prefix; self.base = base }

    func read(into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        var done = 0
        if !prefix.isEmpty {
            let n = min(prefix.count, buffer.count)
            for i in 0..<n { buffer[i] = prefix[i] }
            prefix.removeFirst(n)
            done = n
        }
        if done < buffer.count {
            done += try base.read(into: UnsafeMutableRawBufferPointer(rebasing: buffer[done...]))
        }
        return done
    }

    func finish() throws { try base.finish() }
}

enum Reader {
    static func readVolume(raw: ByteSource, rawSize: Int, file: String) throws -> Volume {
        let (source, header, layout, gzip) = try open(raw: raw, rawSize: rawSize, file: file)
        let skipped = try source.skip(layout.voxOffset - NIfTIHeader.size)
        if skipped < layout.voxOffset - NIfTIHeader.size {
            throw NIfTIError(file: file, kind: .truncated,
                             problem: "header says the voxels start at byte \(layout.voxOffset) but the \(gzip ? "decompressed data end" : "file ends") at byte \(NIfTIHeader.size + skipped)",
                             remedy: "the file is truncated; re-export it")
        }
        let voxels = try readVoxels(source, header: header, layout: layout, gzip: gzip, file: file)
        try source.finish()
        let (affine, geometry) = try geometry(header, file: file)
        return Volume(dims: layout.dims, voxels: voxels, affine: affine, geometrySource: geometry, name: file)
    }

    /// Opens the stream (through zlib when the data start with the gzip magic 1f 8b), reads and
    /// validates the header. The returned source is positioned after byte 348.
    static func open(raw: ByteSource, rawSize: Int, file: String) throws
        -> (ByteSource, NIfTIHeader, VoxelLayout, Bool) {
        var magic = [UInt8](repeating: 0, count: 2)
        let m = try magic.withUnsafeMutableBytes { try raw.read(into: $0) }
        magic.removeLast(2 - m)
        let gzip = magic == [0x1f, 0x8b]
        let prefixed = PrefixedSource(prefix: magic, base: raw)
        let source: ByteSource = gzip ? try GzipSource(input: prefixed, file: file) : prefixed

        var bytes = [UInt8](repeating: 0, count: NIfTIHeader.size)
        let n = try bytes.withUnsafeMutableBytes { try source.read(into: $0) }
        if n < NIfTIHeader.size {
            let looksLikeNIfTI = n >= 4 && bytes.withUnsafeBytes {
                let v = $0.loadUnaligned(as: Int32.self)
                return Int32(littleEndian: v) == 348 || Int32(bigEndian: v) == 348
            }
            let holds = gzip ? "the gzip stream holds only \(formatBytes(n))" : "the file holds only \(formatBytes(n))"
            throw NIfTIError(file: file, kind: looksLikeNIfTI ? .truncated : .notNIfTI,
                             problem: "\(holds), less than the 348-byte NIfTI-1 header",
                             remedy: looksLikeNIfTI ? "the file is truncated; re-export it" : "check that the path points at a .nii or .nii.gz image")
        }
        let header = try bytes.withUnsafeBytes { try NIfTIHeader(parsing: $0, file: file) }
        let layout = try validate(header, file: file)

        let available: Int
        let note: String
        if gzip {
            let (bound, overflow) = rawSize.multipliedReportingOverflow(by: deflateMaxRatio)
            available = overflow ? Int.max : bound + 1024
            note = "a gzip file of \(formatBytes(rawSize)) can hold at most \(formatBytes(available))"
        } else {
            available = rawSize
            note = "the file holds \(formatBytes(max(0, rawSize - layout.voxOffset)))"
        }
        let (needed, overflow) = layout.voxOffset.addingReportingOverflow(layout.byteCount)
        if overflow || needed > available {
            throw NIfTIError(file: file, kind: .truncated,
                             problem: "header says \(layout.summary) from byte \(layout.voxOffset) but \(note)",
                             remedy: "the file is truncated or its header is damaged; re-export it")
        }
        return (source, header, layout, gzip)
    }

    /// Checks the header's dimensions, datatype and vox_offset; throws naming the bad field.
    static func validate(_ h: NIfTIHeader, file: String) throws -> VoxelLayout {
        let ndim = h.dim[0]
        guard (1...7).contains(ndim) else {
            throw NIfTIError(file: file, kind: .badHeader,
                             problem: "header field dim[0] (the number of dimensions) is \(ndim), not 1 to 7",
                             remedy: "the header is damaged; re-export the image")
        }
        let sizes = Array(h.dim[1...ndim])
        if let bad = sizes.firstIndex(where: { $0 < 1 }) {
            throw NIfTIError(file: file, kind: .badHeader,
                             problem: "header says the image is \(formatDims(sizes)) voxels: dim[\(bad + 1)] is \(sizes[bad]), it must be at least 1",
                             remedy: "the header is damaged; re-export the image")
        }
        guard ndim >= 3 else {
            throw NIfTIError(file: file, kind: .unsupported,
                             problem: "the image is \(ndim)D (\(formatDims(sizes)) voxels); dsan reads 3D volumes",
                             remedy: "give a 3D CT volume")
        }
        if sizes.count > 3, sizes[3...].contains(where: { $0 != 1 }) {
            throw NIfTIError(file: file, kind: .unsupported,
                             problem: "the image is \(ndim)D (\(formatDims(sizes)) voxels); dsan reads one 3D volume (dims beyond the third must be 1)",
                             remedy: "extract one volume, e.g. `fslroi in out 0 1` or nibabel's img.slicer[..., 0]")
        }
        guard let datatype = NIfTIDatatype(rawValue: h.datatype) else {
            let name = NIfTIDatatype.otherName(h.datatype).map { " (\($0))" } ?? ""
            throw NIfTIError(file: file, kind: .unsupported,
                             problem: "voxel datatype code \(h.datatype)\(name) is not one dsan reads (uint8, int8, int16, uint16, int32, uint32, int64, uint64, float32, float64)",
                             remedy: "convert the image to int16 or float32")
        }
        var count = 1
        for s in sizes {
            let (p, o) = count.multipliedReportingOverflow(by: s)
            if o { throw overflowError(sizes, file) }
            count = p
        }
        let (bytes, o) = count.multipliedReportingOverflow(by: datatype.size)
        if o { throw overflowError(sizes, file) }

        let v = h.voxOffset
        guard v.isFinite, v >= 0, v < 1e12, v == v.rounded() else {
            throw NIfTIError(file: file, kind: .badHeader,
                             problem: "header field vox_offset is \(v), not a byte offset",
                             remedy: "the header is damaged; re-export the image")
        }
        // vox_offset 0 in a single file is a known writer bug; nibabel reads from byte 352 then.
        let offset = v == 0 ? 352 : Int(v)
        guard offset >= 352 else {
            throw NIfTIError(file: file, kind: .badHeader,
                             problem: "header field vox_offset is \(offset), inside the header (a .nii needs at least 352)",
                             remedy: "the header is damaged; re-export the image")
        }
        return VoxelLayout(dims: Array(sizes[0..<3]), datatype: datatype, voxelCount: count, byteCount: bytes, voxOffset: offset)
    }

    static func overflowError(_ sizes: [Int], _ file: String) -> NIfTIError {
        NIfTIError(file: file, kind: .badHeader,
                   problem: "header says the image is \(formatDims(sizes)) voxels, more than any file can hold",
                   remedy: "the header is damaged; re-export the image")
    }

    /// Streams the voxel bytes through a 1 MB buffer into Float, applying scl_slope/scl_inter.
    static func readVoxels(_ source: ByteSource, header: NIfTIHeader, layout: VoxelLayout,
                           gzip: Bool, file: String) throws -> [Float] {
        let size = layout.datatype.size
        let chunkVoxels = (1 << 20) / size
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: chunkVoxels * size, alignment: 16)
        defer { buffer.deallocate() }
        // Standard: scale when scl_slope ≠ 0. Like nibabel, a non-finite slope also means "no
        // scaling" and a non-finite intercept counts as 0.
        let slope = Double(header.sclSlope), inter = Double(header.sclInter)
        let scaling: (Double, Double)? = slope != 0 && slope.isFinite ? (slope, inter.isFinite ? inter : 0) : nil
        var failure: NIfTIError?
        let voxels = try [Float](unsafeUninitializedCapacity: layout.voxelCount) { out, initialized in
            var done = 0
            defer { initialized = done }
            while done < layout.voxelCount {
                let want = min(chunkVoxels, layout.voxelCount - done)
                let got = try source.read(into: UnsafeMutableRawBufferPointer(rebasing: buffer[0..<(want * size)]))
                let whole = got / size
                convert(layout.datatype, UnsafeRawPointer(buffer.baseAddress!), whole, swap: header.bigEndian,
                        scaling: scaling, into: out.baseAddress! + done)
                done += whole
                if got < want * size {
                    let holds = (done * size) + (got - whole * size)
                    failure = NIfTIError(file: file, kind: .truncated,
                                         problem: "header says \(layout.summary) but the \(gzip ? "gzip stream" : "file") holds \(formatBytes(holds))\(holds == 0 ? "" : " of them")",
                                         remedy: "the file is truncated; re-export it")
                    return
                }
            }
        }
        if let failure { throw failure }
        return voxels
    }

    static func convert(_ type: NIfTIDatatype, _ src: UnsafeRawPointer, _ n: Int, swap: Bool,
                        scaling: (Double, Double)?, into dst: UnsafeMutablePointer<Float>) {
        switch type {
        case .uint8: integers(UInt8.self, src, n, swap, scaling, dst)
        case .int8: integers(Int8.self, src, n, swap, scaling, dst)
        case .int16: integers(Int16.self, src, n, swap, scaling, dst)
        case .uint16: integers(UInt16.self, src, n, swap, scaling, dst)
        case .int32: integers(Int32.self, src, n, swap, scaling, dst)
        case .uint32: integers(UInt32.self, src, n, swap, scaling, dst)
        case .int64: integers(Int64.self, src, n, swap, scaling, dst)
        case .uint64: integers(UInt64.self, src, n, swap, scaling, dst)
        case .float32:
            for i in 0..<n {
                var bits = src.loadUnaligned(fromByteOffset: 4 * i, as: UInt32.self)
                if swap { bits = bits.byteSwapped }
                let v = Float(bitPattern: bits)
                dst[i] = scaling.map { Float(Double(v) * $0.0 + $0.1) } ?? v
            }
        case .float64:
            for i in 0..<n {
                var bits = src.loadUnaligned(fromByteOffset: 8 * i, as: UInt64.self)
                if swap { bits = bits.byteSwapped }
                let v = Double(bitPattern: bits)
                dst[i] = Float(scaling.map { v * $0.0 + $0.1 } ?? v)
            }
        }
    }

    @inline(__always)
    static func integers<T: FixedWidthInteger>(_: T.Type, _ src: UnsafeRawPointer, _ n: Int, _ swap: Bool,
                                               _ scaling: (Double, Double)?, _ dst: UnsafeMutablePointer<Float>) {
        let size = MemoryLayout<T>.size
        if let (slope, inter) = scaling {
            for i in 0..<n {
                var v = src.loadUnaligned(fromByteOffset: size * i, as: T.self)
                if swap { v = v.byteSwapped }
                dst[i] = Float(Double(v) * slope + inter)
            }
        } else {
            for i in 0..<n {
                var v = src.loadUnaligned(fromByteOffset: size * i, as: T.self)
                if swap { v = v.byteSwapped }
                dst[i] = Float(v)
            }
        }
    }

    /// The voxel-to-world affine by NIfTI-1's precedence: sform when sform_code > 0, else the
    /// qform when qform_code > 0, else pixdim scaling. An unusable sform (non-finite or singular)
    /// falls back to a usable qform.
    static func geometry(_ h: NIfTIHeader, file: String) throws -> (Affine, GeometrySource) {
        var sformProblem: String?
        if h.sformCode > 0 {
            let a = Affine(rows: h.srow.map { $0.map(Double.init) })
            if a.isFinite && a.determinant != 0 && a.determinant.isFinite {
                return (a, .sform(code: Int(h.sformCode)))
            }
            sformProblem = a.isFinite ? "the sform (srow_x/y/z) is singular" : "the sform (srow_x/y/z) has non-finite entries"
        }
        if h.qformCode > 0 {
            let values = [h.quaternB, h.quaternC, h.quaternD] + h.qoffset + h.pixdim[0...3]
            if values.allSatisfy({ $0.isFinite }) {
                let q = Quaternion(b: Double(h.quaternB), c: Double(h.quaternC), d: Double(h.quaternD),
                                   offset: h.qoffset.map(Double.init),
                                   spacing: h.pixdim[1...3].map(Double.init),
                                   qfac: h.pixdim[0] < 0 ? -1 : 1)
                let a = q.affine
                if a.isFinite && a.determinant != 0 {
                    return (a, .qform(code: Int(h.qformCode)))
                }
            }
            throw NIfTIError(file: file, kind: .badGeometry,
                             problem: (sformProblem.map { $0 + " and " } ?? "") + "the qform (quatern_b/c/d, qoffset, pixdim) has non-finite entries",
                             remedy: "the header is damaged; re-export the image with a valid orientation")
        }
        if let sformProblem {
            throw NIfTIError(file: file, kind: .badGeometry, problem: sformProblem + " and no qform is set",
                             remedy: "the header is damaged; re-export the image with a valid orientation")
        }
        // Method 1 (ANALYZE compatibility): scaling only. A zero or non-finite size counts as 1.
        let sizes = h.pixdim[1...3].map { v -> Double in v.isFinite && v != 0 ? Double(abs(v)) : 1 }
        return (Affine(scale: sizes), .pixdim)
    }
}
