/// A NIfTI file that cannot be read or written: the file, what is wrong with it and what to do,
/// e.g. "scan.nii.gz: header says 512×512×300 int16 voxels (157 MB) but the file holds 12 MB: the
/// file is truncated; re-export it".
///
/// Every failure of the world (a missing, truncated, corrupt or unsupported file, a zlib error)
/// surfaces as this error; the reader never traps on bad input.
public struct NIfTIError: Error, CustomStringConvertible, Sendable, Equatable {
    /// What went wrong, for callers that branch on it (tests, the command line's exit codes).
    public enum Kind: Sendable, Equatable {
        /// The operating system refused: missing file, permissions, disk full.
        case io
        /// Not a NIfTI-1 single file (wrong header size, wrong magic, a .hdr/.img pair, NIfTI-2).
        case notNIfTI
        /// Valid NIfTI that dsan does not handle: 4D data, complex or RGB voxels.
        case unsupported
        /// A header field that no valid file has: zero or negative dims, a bad vox_offset.
        case badHeader
        /// The file (or its gzip stream) ends before the data the header promises.
        case truncated
        /// zlib rejects the compressed stream, or another zlib call fails.
        case corrupt
        /// The voxel-to-world transform is unusable (non-finite or singular).
        case badGeometry
    }

    /// Path of the file, as the caller gave it.
    public var file: String
    public var kind: Kind
    /// What is wrong, as a clause: "header says 4×4×4 int16 voxels (128 bytes) but …".
    public var problem: String
    /// What to do about it, as a clause: "re-export it".
    public var remedy: String

    public init(file: String, kind: Kind, problem: String, remedy: String) {
        self.file = file
        self.kind = kind
        self.problem = problem
        self.remedy = remedy
    }

    public var description: String { "\(file): \(problem); \(remedy)" }
}

/// "157 MB", "12 kB", "348 bytes": decimal units, as file managers show them.
func formatBytes(_ n: Int) -> String {
    if n < 1000 { return "\(n) bytes" }
    let units = ["kB", "MB", "GB", "TB", "PB"]
    var v = Double(n) / 1000
    var u = 0
    while v >= 1000 && u < units.count - 1 { v /= 1000; u += 1 }
    if v >= 10 { return "\(Int(v.rounded())) \(units[u])" }
    return "\((v * 10).rounded() / 10) \(units[u])"
}

/// "512×512×300".
func formatDims(_ dims: [Int]) -> String { dims.map(String.init).joined(separator: "×") }
