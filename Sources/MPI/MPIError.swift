import CMPI

/// A failed MPI call: the operation, MPI's error code and MPI's own message for it
/// (`MPI_Error_string`), e.g. "MPI_Send to rank 5: MPI_ERR_RANK: invalid rank".
public struct MPIError: Error, CustomStringConvertible, Sendable {
    /// What dsan was doing, including the peer or root where there is one.
    public var operation: String
    /// The code the MPI call returned.
    public var code: Int32
    /// `MPI_Error_string(code)`.
    public var message: String

    public init(operation: String, code: Int32, message: String) {
        self.operation = operation
        self.code = code
        self.message = message
    }

    public var description: String { "\(operation): \(message)" }

    /// MPI's text for an error code.
    static func errorString(_ code: Int32) -> String {
        var buffer = [CChar](repeating: 0, count: Int(dsan_mpi_max_error_string()) + 1)
        var length: Int32 = 0
        let rc = MPI_Error_string(code, &buffer, &length)
        if rc != dsan_mpi_success() { return "MPI error code \(code)" }
        return String(decoding: buffer.prefix(Int(length)).map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}

/// Turns an MPI return code into a thrown `MPIError`. Every call in this module goes through it;
/// it requires `MPI_ERRORS_RETURN` on the communicator (set by `MPI.initialize`), otherwise MPI
/// aborts the job before the code reaches us.
@inline(__always)
func check(_ code: Int32, _ operation: @autoclosure () -> String) throws {
    if code != MPI_SUCCESS {
        throw MPIError(operation: operation(), code: code, message: MPIError.errorString(code))
    }
}
