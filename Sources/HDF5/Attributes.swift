import CHDF5
import Foundation

/// Objects that carry attributes: files, groups and datasets.
public protocol AttributeHolder: AnyObject {
    var fileName: String { get }
    var id: hid_t { get }
    /// How error messages name this object.
    var attributeOwner: String { get }
}

extension File: AttributeHolder { public var attributeOwner: String { "root group" } }
extension Group: AttributeHolder { public var attributeOwner: String { "group `\(path)`" } }
extension Dataset: AttributeHolder { public var attributeOwner: String { object } }

extension AttributeHolder {
    func attributeObject(_ name: String) -> String { "attribute `\(name)` of \(attributeOwner)" }

    /// Whether an attribute exists.
    public func hasAttribute(_ name: String) throws -> Bool {
        try h5call(fileName, attributeObject(name), "H5Aexists") { H5Aexists(id, name) } > 0
    }

    private func replaceAndCreate(_ name: String, type: hid_t, shape: [Int]?) throws -> Handle {
        let object = attributeObject(name)
        if try hasAttribute(name) {
            try h5call(fileName, object, "H5Adelete") { H5Adelete(id, name) }
        }
        let space: hid_t
        if let shape {
            let dims = shape.map { hsize_t($0) }
            space = try h5call(fileName, object, "H5Screate_simple") { H5Screate_simple(Int32(dims.count), dims, nil) }
        } else {
            space = try h5call(fileName, object, "H5Screate") { H5Screate(H5S_SCALAR) }
        }
        let spaceHandle = Handle(space, close: H5Sclose)
        let a = try h5call(fileName, object, "H5Acreate2") {
            H5Acreate2(id, name, type, spaceHandle.id, dsan_h5p_default(), dsan_h5p_default())
        }
        return Handle(a, close: H5Aclose)
    }

    private func open(_ name: String) throws -> (Handle, ElementType, Int) {
        let object = attributeObject(name)
        if try !hasAttribute(name) {
            throw HDF5Error(file: fileName, object: object, operation: "H5Aopen", message: "no such attribute")
        }
        let a = Handle(try h5call(fileName, object, "H5Aopen") { H5Aopen(id, name, dsan_h5p_default()) }, close: H5Aclose)
        let type = Handle(try h5call(fileName, object, "H5Aget_type") { H5Aget_type(a.id) }, close: H5Tclose)
        let space = Handle(try h5call(fileName, object, "H5Aget_space") { H5Aget_space(a.id) }, close: H5Sclose)
        let n = try h5call(fileName, object, "H5Sget_simple_extent_npoints") { H5Sget_simple_extent_npoints(space.id) }
        return (a, Library.sync { ElementType(type: type.id) }, Int(n))
    }

    /// Writes a numeric attribute: a scalar when `values` has one element, else a 1-D array.
    public func setAttribute<T: HDF5Scalar>(_ name: String, _ values: [T]) throws {
        let a = try replaceAndCreate(name, type: T.nativeType, shape: values.count == 1 ? nil : [values.count])
        try h5call(fileName, attributeObject(name), "H5Awrite") { H5Awrite(a.id, T.nativeType, values) }
    }

    /// Writes a numeric scalar attribute.
    public func setAttribute<T: HDF5Scalar>(_ name: String, _ value: T) throws {
        try setAttribute(name, [value])
    }

    /// Reads a numeric attribute (scalar or 1-D) of exactly type `T`.
    public func attribute<T: HDF5Scalar>(_ name: String, as _: T.Type = T.self) throws -> [T] {
        let (a, type, n) = try open(name)
        if type != T.elementType {
            throw HDF5Error(file: fileName, object: attributeObject(name), operation: "H5Aread",
                            message: "stored type is \(type), expected \(T.elementType)")
        }
        var out = [T](repeating: 0, count: n)
        try h5call(fileName, attributeObject(name), "H5Aread") { H5Aread(a.id, T.nativeType, &out) }
        return out
    }

    /// Writes a scalar variable-length UTF-8 string attribute (as h5py writes `str`).
    public func setAttribute(_ name: String, _ value: String) throws {
        let type = try makeVariableStringType()
        let a = try replaceAndCreate(name, type: type.id, shape: nil)
        let c = strdup(value)
        defer { free(c) }
        var pointer: UnsafePointer<CChar>? = UnsafePointer(c)
        try h5call(fileName, attributeObject(name), "H5Awrite") { H5Awrite(a.id, type.id, &pointer) }
    }

    /// Reads a scalar string attribute, variable- or fixed-length.
    public func stringAttribute(_ name: String) throws -> String {
        let (a, type, n) = try open(name)
        let object = attributeObject(name)
        guard type == .string, n == 1 else {
            throw HDF5Error(file: fileName, object: object, operation: "H5Aread",
                            message: "stored type is \(type) with \(n) elements, expected one string")
        }
        let stored = Handle(try h5call(fileName, object, "H5Aget_type") { H5Aget_type(a.id) }, close: H5Tclose)
        if try h5call(fileName, object, "H5Tis_variable_str", { H5Tis_variable_str(stored.id) }) > 0 {
            let mem = try makeVariableStringType()
            var pointer: UnsafeMutablePointer<CChar>? = nil
            try h5call(fileName, object, "H5Aread") { H5Aread(a.id, mem.id, &pointer) }
            defer {
                if let space = try? h5call(fileName, object, "H5Screate", { H5Screate(H5S_SCALAR) }) {
                    let s = Handle(space, close: H5Sclose)
                    _ = Library.sync { dsan_h5_reclaim(mem.id, s.id, &pointer) }
                }
            }
            return pointer.map { String(cString: $0) } ?? ""
        }
        let size = Library.sync { H5Tget_size(stored.id) }
        var bytes = [CChar](repeating: 0, count: size + 1)
        try h5call(fileName, object, "H5Aread") { H5Aread(a.id, stored.id, &bytes) }
        return String(cString: bytes)
    }
}
