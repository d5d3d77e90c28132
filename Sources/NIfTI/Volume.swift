/// Where a volume's voxel-to-world transform came from (NIfTI-1's three methods).
public enum GeometrySource: Equatable, Sendable, Codable {
    /// The sform rows (method 3), with the header's sform_code (1 scanner, 2 aligned, 3 Talairach, 4 MNI).
    case sform(code: Int)
    /// The quaternion (method 2), with the header's qform_code.
    case qform(code: Int)
    /// Neither code set: pixdim scaling only (method 1, origin at voxel 0).
    case pixdim
    /// Made in memory, not read from a file.
    case constructed
}

/// A 3D scalar volume with its geometry: `voxels` in [nz, ny, nx] order (x fastest, as NIfTI
/// stores them), `dims` = [nx, ny, nz], and `affine` mapping a voxel index (i, j, k) = (x, y, z)
/// to world millimetres (RAS+).
public struct Volume: Sendable {
    /// [nx, ny, nz].
    public var dims: [Int]
    /// nx·ny·nz values, index x + nx·(y + ny·z).
    public var voxels: [Float]
    public var affine: Affine
    public var geometrySource: GeometrySource
    /// The file it was read from (or a label), for error messages.
    public var name: String

    public init(dims: [Int], voxels: [Float], affine: Affine,
                geometrySource: GeometrySource = .constructed, name: String = "volume") {
        precondition(dims.count == 3 && dims.allSatisfy { $0 > 0 }, "Volume dims must be 3 positive sizes")
        precondition(voxels.count == dims[0] * dims[1] * dims[2], "Volume has \(voxels.count) voxels for dims \(dims)")
        self.dims = dims
        self.voxels = voxels
        self.affine = affine
        self.geometrySource = geometrySource
        self.name = name
    }

    /// A volume of `value` everywhere.
    public init(dims: [Int], repeating value: Float = 0, affine: Affine = .identity, name: String = "volume") {
        self.init(dims: dims, voxels: [Float](repeating: value, count: dims.reduce(1, *)), affine: affine, name: name)
    }

    /// Voxel size along each voxel axis in mm (the affine's column lengths).
    public var spacing: [Double] { affine.spacing }

    /// Axis codes of the voxel axes, e.g. "RAS" or "LPS" (see `Reorientation`).
    public var orientation: String { (try? Reorientation.axisCodes(affine)) ?? "???" }

    public var count: Int { voxels.count }

    /// Linear index of voxel (x, y, z).
    @inlinable
    public func index(_ x: Int, _ y: Int, _ z: Int) -> Int { x + dims[0] * (y + dims[1] * z) }

    public subscript(x: Int, y: Int, z: Int) -> Float {
        get { voxels[index(x, y, z)] }
        set { voxels[index(x, y, z)] = newValue }
    }
}
