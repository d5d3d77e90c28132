import CHDF5
import Foundation

/// Something that holds named children: a file (its root group) or a group.
public protocol Location: AnyObject {
    /// The file's path on disk.
    var fileName: String { get }
    /// This object's path inside the file ("/" for the root).
    var path: String { get }
    /// The HDF5 identifier.
    var id: hid_t { get }
}

extension Location {
    func childPath(_ name: String) -> String { path == "/" ? "/" + name : path + "/" + name }

    /// Whether a direct child (dataset or group) called `name` exists.
    public func contains(_ name: String) throws -> Bool {
        try h5call(fileName, childPath(name), "H5Lexists") { H5Lexists(id, name, dsan_h5p_default()) } > 0
    }

    /// Names of the direct children, in name order.
    public func childNames() throws -> [String] {
        var info = H5G_info_t()
        try h5call(fileName, path, "H5Gget_info") { H5Gget_info(id, &info) }
        var names: [String] = []
        for i in 0..<info.nlinks {
            let length = try h5call(fileName, path, "H5Lget_name_by_idx") {
                H5Lget_name_by_idx(id, ".", H5_INDEX_NAME, H5_ITER_INC, i, nil, 0, dsan_h5p_default())
            }
            var buffer = [CChar](repeating: 0, count: Int(length) + 1)
            try h5call(fileName, path, "H5Lget_name_by_idx") {
                H5Lget_name_by_idx(id, ".", H5_INDEX_NAME, H5_ITER_INC, i, &buffer, buffer.count, dsan_h5p_default())
            }
            names.append(String(cString: buffer))
        }
        return names
    }

    /// Creates a group.
    public func createGroup(_ name: String) throws -> Group {
        let p = childPath(name)
        let g = try h5call(fileName, "group `\(p)`", "H5Gcreate2") {
            H5Gcreate2(id, name, dsan_h5p_default(), dsan_h5p_default(), dsan_h5p_default())
        }
        return Group(handle: Handle(g, close: H5Gclose), fileName: fileName, path: p)
    }

    /// Opens an existing group.
    public func group(_ name: String) throws -> Group {
        let p = childPath(name)
        if try !contains(name) {
            throw HDF5Error(file: fileName, object: "group `\(p)`", operation: "H5Gopen2", message: "no such group")
        }
        let g = try h5call(fileName, "group `\(p)`", "H5Gopen2") { H5Gopen2(id, name, dsan_h5p_default()) }
        return Group(handle: Handle(g, close: H5Gclose), fileName: fileName, path: p)
    }

    /// Opens an existing dataset.
    public func dataset(_ name: String) throws -> Dataset {
        let p = childPath(name)
        if try !contains(name) {
            throw HDF5Error(file: fileName, object: "dataset `\(p)`", operation: "H5Dopen2", message: "no such dataset")
        }
        let d = try h5call(fileName, "dataset `\(p)`", "H5Dopen2") { H5Dopen2(id, name, dsan_h5p_default()) }
        return try Dataset(handle: Handle(d, close: H5Dclose), fileName: fileName, path: p)
    }

    /// Creates a dataset of `type` and `shape`. With `chunks` it is chunked and, with
    /// `gzipLevel`, gzip-compressed (the only filter h5py's defaults read everywhere).
    public func createDataset(_ name: String, type: ElementType, shape: [Int],
                              chunks: [Int]? = nil, gzipLevel: Int? = nil) throws -> Dataset {
        let p = childPath(name)
        let object = "dataset `\(p)`"
        let dims = shape.map { hsize_t($0) }
        // Shape [] is a scalar (what h5py writes for a 0-d array).
        let space = dims.isEmpty
            ? try h5call(fileName, object, "H5Screate") { H5Screate(H5S_SCALAR) }
            : try h5call(fileName, object, "H5Screate_simple") { H5Screate_simple(Int32(dims.count), dims, nil) }
        let spaceHandle = Handle(space, close: H5Sclose)
        let dcpl = try h5call(fileName, object, "H5Pcreate") { H5Pcreate(dsan_h5p_dataset_create()) }
        let dcplHandle = Handle(dcpl, close: H5Pclose)
        if let chunks {
            precondition(chunks.count == shape.count, "createDataset \(name): chunks \(chunks) for shape \(shape)")
            let c = zip(chunks, shape).map { hsize_t(max(1, min($0, max($1, 1)))) }
            try h5call(fileName, object, "H5Pset_chunk") { H5Pset_chunk(dcpl, Int32(c.count), c) }
            if let gzipLevel {
                try h5call(fileName, object, "H5Pset_deflate") { H5Pset_deflate(dcpl, UInt32(gzipLevel)) }
            }
        } else {
            precondition(gzipLevel == nil, "createDataset \(name): gzip needs chunks")
        }
        let typeHandle: Handle
        switch type {
        case .uint8: typeHandle = Handle(try h5call(fileName, object, "H5Tcopy") { H5Tcopy(UInt8.nativeType) }, close: H5Tclose)
        case .int32: typeHandle = Handle(try h5call(fileName, object, "H5Tcopy") { H5Tcopy(Int32.nativeType) }, close: H5Tclose)
        case .int64: typeHandle = Handle(try h5call(fileName, object, "H5Tcopy") { H5Tcopy(Int64.nativeType) }, close: H5Tclose)
        case .float32: typeHandle = Handle(try h5call(fileName, object, "H5Tcopy") { H5Tcopy(Float.nativeType) }, close: H5Tclose)
        case .float64: typeHandle = Handle(try h5call(fileName, object, "H5Tcopy") { H5Tcopy(Double.nativeType) }, close: H5Tclose)
        case .string: typeHandle = try makeVariableStringType()
        case .other(let s): preconditionFailure("createDataset \(name): cannot create type \(s)")
        }
        let d = try h5call(fileName, object, "H5Dcreate2") {
            H5Dcreate2(id, name, typeHandle.id, spaceHandle.id, dsan_h5p_default(), dcplHandle.id, dsan_h5p_default())
        }
        return try Dataset(handle: Handle(d, close: H5Dclose), fileName: fileName, path: p)
    }

    /// Deletes the link `name` (the space is reclaimed only by repacking, as in h5py).
    public func remove(_ name: String) throws {
        try h5call(fileName, childPath(name), "H5Ldelete") { H5Ldelete(id, name, dsan_h5p_default()) }
    }
}

/// An HDF5 file. Created or opened by throwing initialisers; closes when released.
///
/// Read-only opens disable HDF5's file locking so that many ranks can read the same shard on a
/// shared cluster filesystem (NFS, Lustre) where `flock` is unavailable or slow.
public final class File: Location {
    public enum Mode: Sendable { case readOnly, readWrite }

    let handle: Handle
    public let fileName: String
    public var path: String { "/" }
    public var id: hid_t { handle.id }

    /// Creates a new file, replacing an existing one when `overwrite`.
    public init(creating fileName: String, overwrite: Bool = true) throws {
        self.fileName = fileName
        let flags = overwrite ? dsan_h5f_acc_trunc() : dsan_h5f_acc_excl()
        let f = try h5call(fileName, nil, "H5Fcreate") {
            H5Fcreate(fileName, flags, dsan_h5p_default(), dsan_h5p_default())
        }
        handle = Handle(f, close: H5Fclose)
    }

    /// Opens an existing file.
    public init(opening fileName: String, mode: Mode = .readOnly) throws {
        self.fileName = fileName
        guard FileManager.default.fileExists(atPath: fileName) else {
            throw HDF5Error(file: fileName, object: nil, operation: "H5Fopen", message: "no such file")
        }
        let fapl = try h5call(fileName, nil, "H5Pcreate") { H5Pcreate(dsan_h5p_file_access()) }
        let faplHandle = Handle(fapl, close: H5Pclose)
        if mode == .readOnly {
            try h5call(fileName, nil, "H5Pset_file_locking") { dsan_h5_disable_file_locking(fapl) }
        }
        let flags = mode == .readOnly ? dsan_h5f_acc_rdonly() : dsan_h5f_acc_rdwr()
        let f = try h5call(fileName, nil, "H5Fopen") { H5Fopen(fileName, flags, faplHandle.id) }
        handle = Handle(f, close: H5Fclose)
    }

    /// Writes buffered data to disk (`H5Fflush`).
    public func flush() throws {
        try h5call(fileName, nil, "H5Fflush") { H5Fflush(id, H5F_SCOPE_GLOBAL) }
    }
}

/// A group inside a file.
public final class Group: Location {
    let handle: Handle
    public let fileName: String
    public let path: String
    public var id: hid_t { handle.id }

    init(handle: Handle, fileName: String, path: String) {
        self.handle = handle
        self.fileName = fileName
        self.path = path
    }
}
