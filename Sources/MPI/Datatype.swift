import CMPI

/// Element types that MPI can move: each names its `MPI_Datatype`.
public protocol MPIElement {
    static var mpiDatatype: MPI_Datatype { get }
}

extension Float: MPIElement { public static var mpiDatatype: MPI_Datatype { dsan_mpi_float() } }
extension Double: MPIElement { public static var mpiDatatype: MPI_Datatype { dsan_mpi_double() } }
extension Int32: MPIElement { public static var mpiDatatype: MPI_Datatype { dsan_mpi_int32() } }
extension Int64: MPIElement { public static var mpiDatatype: MPI_Datatype { dsan_mpi_int64() } }
extension UInt8: MPIElement { public static var mpiDatatype: MPI_Datatype { dsan_mpi_uint8() } }

/// Reduction operations of `allreduce`.
public enum ReduceOp: Sendable {
    case sum, max, min

    var raw: MPI_Op {
        switch self {
        case .sum: return dsan_mpi_sum()
        case .max: return dsan_mpi_max()
        case .min: return dsan_mpi_min()
        }
    }
}

/// MPI counts are C `int`; one call moves at most `Int32.max` elements.
@inline(__always)
func mpiCount(_ n: Int, _ operation: String) -> Int32 {
    precondition(n >= 0 && n <= Int(Int32.max), "\(operation): count \(n) does not fit an MPI int; split the buffer")
    return Int32(n)
}
