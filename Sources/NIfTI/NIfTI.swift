// NIfTI-1 reading and writing (see Docs/nifti.md).

/// Entry points of the NIfTI module: read a `.nii`/`.nii.gz` into a `Volume`, write one back.
///
/// Reading accepts both byte orders, gzip or not (detected from the bytes, not the name), the
/// voxel types of `NIfTIDatatype`, scl_slope/scl_inter, and a 3D image (dim[0] = 3, or more with
/// every dimension beyond the third equal to 1). Anything else throws `NIfTIError`; the reader
/// never traps on malformed input. Geometry follows the standard's precedence (sform, qform,
/// pixdim); bring a volume to RAS+ with `Volume.canonical()`.
public enum NIfTI {
    /// Reads a 3D NIfTI-1 image. Voxels come back as Float in file order (x fastest), scaled.
    public static func read(_ path: String) throws -> Volume {
        let file = try FileSource(path: path)
        return try Reader.readVolume(raw: file, rawSize: file.size, file: path)
    }

    /// Reads a NIfTI-1 image held in memory; `name` labels errors.
    public static func read(bytes: [UInt8], name: String = "<memory>") throws -> Volume {
        try Reader.readVolume(raw: MemorySource(bytes), rawSize: bytes.count, file: name)
    }

    /// Reads and validates only the header (cheap: for a `.nii.gz` only its start is inflated).
    public static func readHeader(_ path: String) throws -> NIfTIHeader {
        let file = try FileSource(path: path)
        return try Reader.open(raw: file, rawSize: file.size, file: path).1
    }

    /// Writes `volume` as NIfTI-1, gzip-compressed when `path` ends in `.gz`. Values are stored as
    /// `type` (integer types round to nearest and clamp to their range); the affine goes into the
    /// sform and, as its closest rigid rotation, into the qform, both with code 1 (scanner), so
    /// the file overlays on its source scan in ITK-SNAP or 3D Slicer.
    public static func write(_ volume: Volume, to path: String, as type: NIfTIDatatype = .float32,
                             compressionLevel: Int = 6) throws {
        try Writer.write(volume, to: path, as: type, level: compressionLevel)
    }
}
