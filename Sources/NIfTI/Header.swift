/// NIfTI-1 voxel types dsan reads (and writes). Raw values are the header's `datatype` codes.
public enum NIfTIDatatype: Int16, Sendable, CaseIterable, CustomStringConvertible {
    case uint8 = 2, int16 = 4, int32 = 8, float32 = 16, float64 = 64
    case int8 = 256, uint16 = 512, uint32 = 768, int64 = 1024, uint64 = 1280

    /// Bytes per voxel (the header's bitpix / 8).
    public var size: Int {
        switch self {
        case .uint8, .int8: return 1
        case .int16, .uint16: return 2
        case .int32, .uint32, .float32: return 4
        case .int64, .uint64, .float64: return 8
        }
    }

    public var description: String { name }

    var name: String {
        switch self {
        case .uint8: return "uint8"
        case .int16: return "int16"
        case .int32: return "int32"
        case .float32: return "float32"
        case .float64: return "float64"
        case .int8: return "int8"
        case .uint16: return "uint16"
        case .uint32: return "uint32"
        case .int64: return "int64"
        case .uint64: return "uint64"
        }
    }

    /// Names of the codes NIfTI-1 defines that dsan does not read, for error messages.
    static func otherName(_ code: Int16) -> String? {
        switch code {
        case 1: return "binary"
        case 32: return "complex64"
        case 128: return "RGB24"
        case 1536: return "float128"
        case 1792: return "complex128"
        case 2048: return "complex256"
        case 2304: return "RGBA32"
        default: return nil
        }
    }
}

/// The fields of a NIfTI-1 header (348 bytes, then 4 extension-flag bytes in a `.nii`), as stored.
/// Field names follow nifti1.h. Byte order is detected from `sizeof_hdr` and recorded in
/// `bigEndian`; values here are already in native order.
public struct NIfTIHeader: Equatable, Sendable {
    public static let size = 348

    public var bigEndian = false
    /// dim[0] is the number of dimensions, dim[1...] the sizes (x, y, z, t, …).
    public var dim: [Int] = [3, 1, 1, 1, 1, 1, 1, 1]
    public var intentCode: Int16 = 0
    public var datatype: Int16 = NIfTIDatatype.float32.rawValue
    public var bitpix: Int16 = 32
    /// pixdim[0] is qfac (±1), pixdim[1...3] the voxel sizes.
    public var pixdim: [Float] = [1, 1, 1, 1, 1, 1, 1, 1]
    public var voxOffset: Float = 352
    public var sclSlope: Float = 1
    public var sclInter: Float = 0
    public var xyztUnits: UInt8 = 2
    public var calMax: Float = 0
    public var calMin: Float = 0
    public var descrip = ""
    public var qformCode: Int16 = 0
    public var sformCode: Int16 = 0
    public var quaternB: Float = 0, quaternC: Float = 0, quaternD: Float = 0
    public var qoffset: [Float] = [0, 0, 0]
    /// srow_x, srow_y, srow_z: the sform's three rows.
    public var srow: [[Float]] = [[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0]]
    /// "n+1" for a single `.nii` file, "ni1" for a `.hdr`/`.img` pair.
    public var magic = "n+1"

    public init() {}

    /// Parses the first 348 bytes of `bytes`. Throws `NIfTIError` when they are not a NIfTI-1
    /// header; field values are checked later, by the reader, where the file size is known.
    public init(parsing bytes: UnsafeRawBufferPointer, file: String) throws {
        precondition(bytes.count >= NIfTIHeader.size)
        let le = bytes.loadUnaligned(fromByteOffset: 0, as: Int32.self)
        let sizeLE = Int32(littleEndian: le), sizeBE = Int32(bigEndian: le)
        if sizeLE == 348 {
            bigEndian = false
        } else if sizeBE == 348 {
            bigEndian = true
        } else if sizeLE == 540 || sizeBE == 540 {
            throw NIfTIError(file: file, kind: .notNIfTI,
                             problem: "this is a NIfTI-2 file (header size 540), which dsan does not read",
                             remedy: "convert it to NIfTI-1, e.g. with nibabel: nib.save(nib.Nifti1Image(img.dataobj, img.affine), 'scan.nii.gz')")
        } else {
            throw NIfTIError(file: file, kind: .notNIfTI,
                             problem: "not a NIfTI-1 file (the first 4 bytes should hold the header size 348, they hold \(sizeLE))",
                             remedy: "check that the path points at a .nii or .nii.gz image")
        }
        let big = bigEndian
        func i16(_ o: Int) -> Int16 {
            let v = bytes.loadUnaligned(fromByteOffset: o, as: Int16.self)
            return big ? Int16(bigEndian: v) : Int16(littleEndian: v)
        }
        func f32(_ o: Int) -> Float {
            let v = bytes.loadUnaligned(fromByteOffset: o, as: UInt32.self)
            return Float(bitPattern: big ? UInt32(bigEndian: v) : UInt32(littleEndian: v))
        }
        func text(_ o: Int, _ n: Int) -> String {
            var chars: [UInt8] = []
            for i in o..<(o + n) {
                if bytes[i] == 0 { break }
                chars.append(bytes[i])
            }
            return String(decoding: chars, as: UTF8.self)
        }
        dim = (0..<8).map { Int(i16(40 + 2 * $0)) }
        intentCode = i16(68)
        datatype = i16(70)
        bitpix = i16(72)
        pixdim = (0..<8).map { f32(76 + 4 * $0) }
        voxOffset = f32(108)
        sclSlope = f32(112)
        sclInter = f32(116)
        xyztUnits = bytes[123]
        calMax = f32(124)
        calMin = f32(128)
        descrip = text(148, 80)
        qformCode = i16(252)
        sformCode = i16(254)
        quaternB = f32(256); quaternC = f32(260); quaternD = f32(264)
        qoffset = [f32(268), f32(272), f32(276)]
        srow = (0..<3).map { r in (0..<4).map { c in f32(280 + 16 * r + 4 * c) } }
        magic = text(344, 4)
        if magic == "ni1" {
            throw NIfTIError(file: file, kind: .notNIfTI,
                             problem: "this is the header of a .hdr/.img pair (magic \"ni1\"); dsan reads single-file NIfTI only",
                             remedy: "convert the pair to one .nii.gz, e.g. with nibabel or `fslchfiletype NIFTI_GZ`")
        }
        if magic != "n+1" {
            throw NIfTIError(file: file, kind: .notNIfTI,
                             problem: "the header's magic is not \"n+1\" (an ANALYZE 7.5 file, or not NIfTI-1 at all)",
                             remedy: "convert it to NIfTI-1 .nii.gz, e.g. with nibabel")
        }
    }

    /// The 348 header bytes plus 4 zero extension-flag bytes (no extensions), little-endian.
    public func encoded() -> [UInt8] {
        var out = [UInt8](repeating: 0, count: 352)
        out.withUnsafeMutableBytes { p in
            func i16(_ o: Int, _ v: Int16) { p.storeBytes(of: v.littleEndian, toByteOffset: o, as: Int16.self) }
            func i32(_ o: Int, _ v: Int32) { p.storeBytes(of: v.littleEndian, toByteOffset: o, as: Int32.self) }
            func f32(_ o: Int, _ v: Float) { p.storeBytes(of: v.bitPattern.littleEndian, toByteOffset: o, as: UInt32.self) }
            func text(_ o: Int, _ n: Int, _ s: String) {
                for (i, c) in s.utf8.prefix(n - 1).enumerated() { p[o + i] = c }
            }
            i32(0, 348)
            p[38] = UInt8(ascii: "r")   // "regular", as nifti1_io writes
            for i in 0..<8 { i16(40 + 2 * i, Int16(clamping: dim[i])) }
            i16(68, intentCode)
            i16(70, datatype)
            i16(72, bitpix)
            for i in 0..<8 { f32(76 + 4 * i, pixdim[i]) }
            f32(108, voxOffset)
            f32(112, sclSlope)
            f32(116, sclInter)
            p[123] = xyztUnits
            f32(124, calMax)
            f32(128, calMin)
            text(148, 80, descrip)
            i16(252, qformCode)
            i16(254, sformCode)
            f32(256, quaternB); f32(260, quaternC); f32(264, quaternD)
            for i in 0..<3 { f32(268 + 4 * i, qoffset[i]) }
            for r in 0..<3 { for c in 0..<4 { f32(280 + 16 * r + 4 * c, srow[r][c]) } }
            text(344, 4, magic)
        }
        return out
    }
}
