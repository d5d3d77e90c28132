import CHDF5

/// The element types dsan stores, as HDF5 sees them.
public enum ElementType: Equatable, Sendable, CustomStringConvertible {
    case uint8, int32, int64, float32, float64
    /// Variable- or fixed-length string (h5py writes variable-length UTF-8).
    case string
    /// Anything else, with HDF5's class name and size, for error messages.
    case other(String)

    public var description: String {
        switch self {
        case .uint8: return "uint8"
        case .int32: return "int32"
        case .int64: return "int64"
        case .float32: return "float32"
        case .float64: return "float64"
        case .string: return "string"
        case .other(let s): return s
        }
    }

    /// Classifies an HDF5 datatype.
    init(type: hid_t) {
        let size = H5Tget_size(type)
        switch H5Tget_class(type) {
        case H5T_INTEGER:
            let signed = H5Tget_sign(type) == H5T_SGN_2
            switch (signed, size) {
            case (false, 1): self = .uint8
            case (true, 4): self = .int32
            case (true, 8): self = .int64
            default: self = .other("\(signed ? "int" : "uint")\(size * 8)")
            }
        case H5T_FLOAT:
            switch size {
            case 4: self = .float32
            case 8: self = .float64
            default: self = .other("float\(size * 8)")
            }
        case H5T_STRING: self = .string
        default: self = .other("HDF5 type class \(H5Tget_class(type).rawValue), \(size) bytes")
        }
    }
}

/// Numeric element types that datasets and attributes hold: each names its native HDF5 type.
/// Reads require the stored type to be exactly this one (no silent conversion).
public protocol HDF5Scalar: Numeric {
    static var elementType: ElementType { get }
    static var nativeType: hid_t { get }
}

extension UInt8: HDF5Scalar {
    public static var elementType: ElementType { .uint8 }
    public static var nativeType: hid_t { dsan_h5t_native_uint8() }
}
extension Int32: HDF5Scalar {
    public static var elementType: ElementType { .int32 }
    public static var nativeType: hid_t { dsan_h5t_native_int32() }
}
extension Int64: HDF5Scalar {
    public static var elementType: ElementType { .int64 }
    public static var nativeType: hid_t { dsan_h5t_native_int64() }
}
extension Float: HDF5Scalar {
    public static var elementType: ElementType { .float32 }
    public static var nativeType: hid_t { dsan_h5t_native_float() }
}
extension Double: HDF5Scalar {
    public static var elementType: ElementType { .float64 }
    public static var nativeType: hid_t { dsan_h5t_native_double() }
}

/// A new variable-length UTF-8 string type, as h5py writes `str` data.
func makeVariableStringType() throws -> Handle {
    let t = try h5call("", nil, "H5Tcopy") { H5Tcopy(dsan_h5t_c_s1()) }
    let handle = Handle(t, close: H5Tclose)
    try h5call("", nil, "H5Tset_size") { H5Tset_size(t, dsan_h5t_variable()) }
    try h5call("", nil, "H5Tset_cset") { H5Tset_cset(t, H5T_CSET_UTF8) }
    return handle
}
