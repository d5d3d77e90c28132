import CHDF5
import Foundation

/// A dataset: its shape and element type, whole and hyperslab reads and writes.
///
/// Numeric reads demand that the stored type is exactly the requested one: reading a float32
/// dataset as `UInt8` throws rather than converting, so a shard with a wrong type is reported,
/// not silently reinterpreted.
public final class Dataset {
    let handle: Handle
    public let fileName: String
    /// Path inside the file.
    public let path: String
    /// Dimensions, outermost first.
    public let shape: [Int]
    /// The stored element type.
    public let elementType: ElementType
    /// Chunk dimensions when chunked.
    public let chunks: [Int]?
    /// Whether the gzip (deflate) filter is applied.
    public let isCompressed: Bool

    public var id: hid_t { handle.id }
    var object: String { "dataset `\(path)`" }

    init(handle: Handle, fileName: String, path: String) throws {
        self.handle = handle
        self.fileName = fileName
        self.path = path
        let object = "dataset `\(path)`"
        let space = Handle(try h5call(fileName, object, "H5Dget_space") { H5Dget_space(handle.id) }, close: H5Sclose)
        let rank = try h5call(fileName, object, "H5Sget_simple_extent_ndims") { H5Sget_simple_extent_ndims(space.id) }
        var dims = [hsize_t](repeating: 0, count: Int(rank))
        try h5call(fileName, object, "H5Sget_simple_extent_dims") { H5Sget_simple_extent_dims(space.id, &dims, nil) }
        shape = dims.map { Int($0) }
        let type = Handle(try h5call(fileName, object, "H5Dget_type") { H5Dget_type(handle.id) }, close: H5Tclose)
        elementType = Library.sync { ElementType(type: type.id) }
        let dcpl = Handle(try h5call(fileName, object, "H5Dget_create_plist") { H5Dget_create_plist(handle.id) }, close: H5Pclose)
        if Library.sync({ H5Pget_layout(dcpl.id) }) == H5D_CHUNKED {
            var c = [hsize_t](repeating: 0, count: Int(rank))
            try h5call(fileName, object, "H5Pget_chunk") { H5Pget_chunk(dcpl.id, rank, &c) }
            chunks = c.map { Int($0) }
        } else {
            chunks = nil
        }
        let filters = try h5call(fileName, object, "H5Pget_nfilters") { H5Pget_nfilters(dcpl.id) }
        var deflate = false
        for i in 0..<UInt32(filters) {
            var flags: UInt32 = 0, nelmts = 0
            var values = [UInt32](repeating: 0, count: 8)
            var name = [CChar](repeating: 0, count: 64)
            var config: UInt32 = 0
            nelmts = values.count
            let f = Library.sync { H5Pget_filter2(dcpl.id, i, &flags, &nelmts, &values, name.count, &name, &config) }
            if f == H5Z_FILTER_DEFLATE { deflate = true }
        }
        isCompressed = deflate
    }

    /// Number of elements.
    public var count: Int { shape.reduce(1, *) }

    func requireType<T: HDF5Scalar>(_: T.Type, _ operation: String) throws {
        if elementType != T.elementType {
            throw HDF5Error(file: fileName, object: object, operation: operation,
                            message: "stored type is \(elementType), expected \(T.elementType)")
        }
    }

    /// A file dataspace selecting the hyperslab `start`/`count` (checked against the shape), and
    /// the matching memory dataspace.
    func selection(start: [Int], count: [Int], _ operation: String) throws -> (file: Handle, memory: Handle) {
        if shape.isEmpty && start.isEmpty && count.isEmpty {
            // A scalar: the whole (one-element) dataspace on both sides.
            let all = { Handle(try h5call(self.fileName, self.object, "H5Screate") { H5Screate(H5S_SCALAR) }, close: H5Sclose) }
            return (try all(), try all())
        }
        guard start.count == shape.count, count.count == shape.count,
              zip(zip(start, count), shape).allSatisfy({ $0.0 >= 0 && $0.1 >= 0 && $0.0 + $0.1 <= $1 }) else {
            throw HDF5Error(file: fileName, object: object, operation: operation,
                            message: "hyperslab start \(start) count \(count) outside shape \(shape)")
        }
        let fileSpace = Handle(try h5call(fileName, object, "H5Dget_space") { H5Dget_space(id) }, close: H5Sclose)
        let s = start.map { hsize_t($0) }, c = count.map { hsize_t($0) }
        try h5call(fileName, object, "H5Sselect_hyperslab") {
            H5Sselect_hyperslab(fileSpace.id, H5S_SELECT_SET, s, nil, c, nil)
        }
        let memory = Handle(try h5call(fileName, object, "H5Screate_simple") {
            H5Screate_simple(Int32(c.count), c, nil)
        }, close: H5Sclose)
        return (fileSpace, memory)
    }

    // MARK: Numeric

    /// Reads the hyperslab `start`/`count` into `buffer` (row-major, exactly Π count elements).
    public func read<T: HDF5Scalar>(into buffer: UnsafeMutableBufferPointer<T>, start: [Int], count: [Int]) throws {
        try requireType(T.self, "H5Dread")
        precondition(buffer.count == count.reduce(1, *), "read \(path): buffer of \(buffer.count) for \(count)")
        if buffer.isEmpty { return }
        let (fileSpace, memory) = try selection(start: start, count: count, "H5Dread")
        try h5call(fileName, object, "H5Dread") {
            H5Dread(id, T.nativeType, memory.id, fileSpace.id, dsan_h5p_default(), buffer.baseAddress)
        }
    }

    /// Reads the whole dataset.
    public func read<T: HDF5Scalar>(as _: T.Type = T.self) throws -> [T] {
        try read(start: shape.map { _ in 0 }, count: shape)
    }

    /// Reads the hyperslab `start`/`count`.
    public func read<T: HDF5Scalar>(start: [Int], count: [Int]) throws -> [T] {
        var out = [T](repeating: 0, count: count.reduce(1, *))
        try out.withUnsafeMutableBufferPointer { try read(into: $0, start: start, count: count) }
        return out
    }

    /// Writes `buffer` into the hyperslab `start`/`count`.
    public func write<T: HDF5Scalar>(_ buffer: UnsafeBufferPointer<T>, start: [Int], count: [Int]) throws {
        try requireType(T.self, "H5Dwrite")
        precondition(buffer.count == count.reduce(1, *), "write \(path): \(buffer.count) values for \(count)")
        if buffer.isEmpty { return }
        let (fileSpace, memory) = try selection(start: start, count: count, "H5Dwrite")
        try h5call(fileName, object, "H5Dwrite") {
            H5Dwrite(id, T.nativeType, memory.id, fileSpace.id, dsan_h5p_default(), buffer.baseAddress)
        }
    }

    /// Writes the whole dataset.
    public func write<T: HDF5Scalar>(_ values: [T]) throws {
        precondition(values.count == count, "write \(path): \(values.count) values for shape \(shape)")
        try values.withUnsafeBufferPointer { try write($0, start: shape.map { _ in 0 }, count: shape) }
    }

    // MARK: Strings

    /// Writes strings as variable-length UTF-8 (what h5py writes for `str`), whole dataset.
    public func writeStrings(_ values: [String]) throws {
        guard elementType == .string else {
            throw HDF5Error(file: fileName, object: object, operation: "H5Dwrite",
                            message: "stored type is \(elementType), expected string")
        }
        precondition(values.count == count, "writeStrings \(path): \(values.count) values for shape \(shape)")
        let type = try makeVariableStringType()
        let cStrings = values.map { strdup($0) }
        defer { cStrings.forEach { free($0) } }
        var pointers: [UnsafePointer<CChar>?] = cStrings.map { UnsafePointer($0) }
        try h5call(fileName, object, "H5Dwrite") {
            H5Dwrite(id, type.id, dsan_h5s_all(), dsan_h5s_all(), dsan_h5p_default(), &pointers)
        }
    }

    /// Reads a string dataset, variable- or fixed-length, as Swift strings.
    public func readStrings() throws -> [String] {
        guard elementType == .string else {
            throw HDF5Error(file: fileName, object: object, operation: "H5Dread",
                            message: "stored type is \(elementType), expected string")
        }
        let n = count
        if n == 0 { return [] }
        let stored = Handle(try h5call(fileName, object, "H5Dget_type") { H5Dget_type(id) }, close: H5Tclose)
        let isVariable = try h5call(fileName, object, "H5Tis_variable_str") { H5Tis_variable_str(stored.id) } > 0
        if isVariable {
            let type = try makeVariableStringType()
            var pointers = [UnsafeMutablePointer<CChar>?](repeating: nil, count: n)
            try h5call(fileName, object, "H5Dread") {
                H5Dread(id, type.id, dsan_h5s_all(), dsan_h5s_all(), dsan_h5p_default(), &pointers)
            }
            let result = pointers.map { $0.map { String(cString: $0) } ?? "" }
            let space = Handle(try h5call(fileName, object, "H5Dget_space") { H5Dget_space(id) }, close: H5Sclose)
            try h5call(fileName, object, "H5Dvlen_reclaim") { dsan_h5_reclaim(type.id, space.id, &pointers) }
            return result
        }
        let size = Library.sync { H5Tget_size(stored.id) }
        let memType = Handle(try h5call(fileName, object, "H5Tcopy") { H5Tcopy(dsan_h5t_c_s1()) }, close: H5Tclose)
        try h5call(fileName, object, "H5Tset_size") { H5Tset_size(memType.id, size) }
        var bytes = [CChar](repeating: 0, count: n * size)
        try h5call(fileName, object, "H5Dread") {
            H5Dread(id, memType.id, dsan_h5s_all(), dsan_h5s_all(), dsan_h5p_default(), &bytes)
        }
        return (0..<n).map { i in
            let slice = bytes[(i * size)..<((i + 1) * size)].prefix { $0 != 0 }
            return String(decoding: slice.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        }
    }
}
