import CMPI
#if canImport(Glibc)
import Glibc
#endif

/// An MPI communicator: its rank and size, point-to-point and collective operations.
///
/// Every method checks MPI's return code and throws `MPIError` naming the operation (and the
/// peer or root). Buffers are typed (`MPIElement`); counts are in elements. Collectives must be
/// called by every rank of the communicator in the same order with matching lengths.
public final class Communicator: @unchecked Sendable {
    /// The underlying handle.
    public let handle: MPI_Comm
    /// This process's rank in `0..<size`.
    public let rank: Int
    /// Number of ranks.
    public let size: Int

    /// All processes of the job (`MPI_COMM_WORLD`). Requires `MPI.initialize()`.
    public static var world: Communicator {
        get throws { try Communicator(handle: dsan_mpi_comm_world()) }
    }

    /// Whether this object created the handle (by `duplicate`) and frees it.
    private let owned: Bool

    init(handle: MPI_Comm, owned: Bool = false) throws {
        self.handle = handle
        self.owned = owned
        var r: Int32 = 0, s: Int32 = 0
        try check(MPI_Comm_rank(handle, &r), "MPI_Comm_rank")
        try check(MPI_Comm_size(handle, &s), "MPI_Comm_size")
        rank = Int(r)
        size = Int(s)
    }

    deinit {
        if owned && !MPI.isFinalized {
            var h: MPI_Comm? = handle
            _ = MPI_Comm_free(&h)
        }
    }

    /// A new communicator with the same ranks and its own message space (`MPI_Comm_dup`), so that
    /// a communication thread's messages never match the main thread's. Collective.
    public func duplicate() throws -> Communicator {
        var h: MPI_Comm? = nil
        try check(MPI_Comm_dup(handle, &h), "MPI_Comm_dup")
        try check(MPI_Comm_set_errhandler(h, dsan_mpi_errors_return()), "MPI_Comm_set_errhandler")
        return try Communicator(handle: h!, owned: true)
    }

    /// Blocks until every rank has called it (`MPI_Barrier`).
    public func barrier() throws {
        try check(MPI_Barrier(handle), "MPI_Barrier")
    }

    /// Copies `root`'s buffer into every rank's buffer (`MPI_Bcast`).
    public func broadcast<T: MPIElement>(_ buffer: UnsafeMutableBufferPointer<T>, root: Int) throws {
        try check(MPI_Bcast(buffer.baseAddress, mpiCount(buffer.count, "MPI_Bcast"), T.mpiDatatype,
                            Int32(root), handle), "MPI_Bcast from root \(root)")
    }

    /// Sends `buffer` to rank `destination` (`MPI_Send`).
    public func send<T: MPIElement>(_ buffer: UnsafeBufferPointer<T>, to destination: Int, tag: Int = 0) throws {
        try check(MPI_Send(buffer.baseAddress, mpiCount(buffer.count, "MPI_Send"), T.mpiDatatype,
                           Int32(destination), Int32(tag), handle), "MPI_Send to rank \(destination)")
    }

    /// Receives exactly `buffer.count` elements from rank `source` (`MPI_Recv`).
    public func receive<T: MPIElement>(into buffer: UnsafeMutableBufferPointer<T>, from source: Int, tag: Int = 0) throws {
        var status = MPI_Status()
        try check(MPI_Recv(buffer.baseAddress, mpiCount(buffer.count, "MPI_Recv"), T.mpiDatatype,
                           Int32(source), Int32(tag), handle, &status), "MPI_Recv from rank \(source)")
        var received: Int32 = 0
        try check(MPI_Get_count(&status, T.mpiDatatype, &received), "MPI_Get_count")
        if Int(received) != buffer.count {
            throw MPIError(operation: "MPI_Recv from rank \(source)", code: -1,
                           message: "received \(received) elements, expected \(buffer.count)")
        }
    }

    /// Sends to one rank and receives from another in one deadlock-free call (`MPI_Sendrecv`).
    public func sendReceive<T: MPIElement>(
        _ send: UnsafeBufferPointer<T>, to destination: Int, sendTag: Int = 0,
        into receive: UnsafeMutableBufferPointer<T>, from source: Int, receiveTag: Int = 0
    ) throws {
        try check(MPI_Sendrecv(send.baseAddress, mpiCount(send.count, "MPI_Sendrecv"), T.mpiDatatype,
                               Int32(destination), Int32(sendTag),
                               receive.baseAddress, mpiCount(receive.count, "MPI_Sendrecv"), T.mpiDatatype,
                               Int32(source), Int32(receiveTag), handle, dsan_mpi_status_ignore()),
                  "MPI_Sendrecv to rank \(destination) from rank \(source)")
    }

    /// Starts a non-blocking send (`MPI_Isend`). The buffer must stay valid and unchanged until
    /// the request completes.
    public func isend<T: MPIElement>(_ buffer: UnsafeBufferPointer<T>, to destination: Int, tag: Int = 0) throws -> Request {
        let request = Request(operation: "MPI_Isend to rank \(destination)")
        try check(MPI_Isend(buffer.baseAddress, mpiCount(buffer.count, "MPI_Isend"), T.mpiDatatype,
                            Int32(destination), Int32(tag), handle, &request.handle), request.operation)
        return request
    }

    /// Starts a non-blocking receive (`MPI_Irecv`). The buffer must stay valid until the request
    /// completes.
    public func ireceive<T: MPIElement>(into buffer: UnsafeMutableBufferPointer<T>, from source: Int, tag: Int = 0) throws -> Request {
        let request = Request(operation: "MPI_Irecv from rank \(source)")
        try check(MPI_Irecv(buffer.baseAddress, mpiCount(buffer.count, "MPI_Irecv"), T.mpiDatatype,
                            Int32(source), Int32(tag), handle, &request.handle), request.operation)
        return request
    }

    /// Reduces `buffer` elementwise over all ranks, in place, result on every rank
    /// (`MPI_Allreduce` with `MPI_IN_PLACE`).
    public func allreduce<T: MPIElement>(_ buffer: UnsafeMutableBufferPointer<T>, _ op: ReduceOp = .sum) throws {
        try check(MPI_Allreduce(dsan_mpi_in_place(), buffer.baseAddress, mpiCount(buffer.count, "MPI_Allreduce"),
                                T.mpiDatatype, op.raw, handle), "MPI_Allreduce of \(buffer.count) elements")
    }

    /// Starts a non-blocking in-place reduction (`MPI_Iallreduce` with `MPI_IN_PLACE`); complete
    /// it with `wait(timeout:)` so that a missing rank becomes an error instead of a hang.
    public func iallreduce<T: MPIElement>(_ buffer: UnsafeMutableBufferPointer<T>, _ op: ReduceOp = .sum) throws -> Request {
        let request = Request(operation: "MPI_Iallreduce of \(buffer.count) elements")
        try check(MPI_Iallreduce(dsan_mpi_in_place(), buffer.baseAddress, mpiCount(buffer.count, "MPI_Iallreduce"),
                                 T.mpiDatatype, op.raw, handle, &request.handle), request.operation)
        return request
    }

    /// Starts a non-blocking barrier (`MPI_Ibarrier`); complete it with `wait(timeout:)`.
    public func ibarrier() throws -> Request {
        let request = Request(operation: "MPI_Ibarrier")
        try check(MPI_Ibarrier(handle, &request.handle), request.operation)
        return request
    }

    /// Starts a non-blocking all-gather (`MPI_Iallgather`): rank r's `send` lands at offset
    /// r · send.count of `receive` on every rank.
    public func iallgather<T: MPIElement>(_ send: UnsafeBufferPointer<T>, into receive: UnsafeMutableBufferPointer<T>) throws -> Request {
        precondition(receive.count == send.count * size, "iallgather: receive holds \(receive.count), needs \(send.count) × \(size)")
        let request = Request(operation: "MPI_Iallgather of \(send.count) elements per rank")
        let n = mpiCount(send.count, "MPI_Iallgather")
        try check(MPI_Iallgather(send.baseAddress, n, T.mpiDatatype, receive.baseAddress, n, T.mpiDatatype, handle,
                                 &request.handle), request.operation)
        return request
    }

    /// Starts a non-blocking broadcast from `root` (`MPI_Ibcast`).
    public func ibroadcast<T: MPIElement>(_ buffer: UnsafeMutableBufferPointer<T>, root: Int) throws -> Request {
        let request = Request(operation: "MPI_Ibcast of \(buffer.count) elements from root \(root)")
        try check(MPI_Ibcast(buffer.baseAddress, mpiCount(buffer.count, "MPI_Ibcast"), T.mpiDatatype, Int32(root),
                             handle, &request.handle), request.operation)
        return request
    }

    /// Gathers `send.count` elements from every rank into `receive` on every rank, rank r's block
    /// at offset r · send.count (`MPI_Allgather`).
    public func allgather<T: MPIElement>(_ send: UnsafeBufferPointer<T>, into receive: UnsafeMutableBufferPointer<T>) throws {
        precondition(receive.count == send.count * size,
                     "allgather: receive buffer holds \(receive.count), needs \(send.count) × \(size)")
        let n = mpiCount(send.count, "MPI_Allgather")
        try check(MPI_Allgather(send.baseAddress, n, T.mpiDatatype, receive.baseAddress, n, T.mpiDatatype, handle),
                  "MPI_Allgather of \(send.count) elements per rank")
    }

    /// Brings the whole job down from this rank (`MPI_Abort`).
    public func abort(code: Int32 = 1) -> Never {
        _ = MPI_Abort(handle, code)
        fatalError("MPI_Abort returned")
    }
}

extension Communicator {
    /// Array convenience for `allreduce`.
    public func allreduce<T: MPIElement>(_ values: inout [T], _ op: ReduceOp = .sum) throws {
        try values.withUnsafeMutableBufferPointer { try allreduce($0, op) }
    }

    /// Array convenience for `broadcast`.
    public func broadcast<T: MPIElement>(_ values: inout [T], root: Int) throws {
        try values.withUnsafeMutableBufferPointer { try broadcast($0, root: root) }
    }

    /// Array convenience for `allgather`: every rank's `values`, concatenated in rank order.
    public func allgather<T: MPIElement & Numeric>(_ values: [T]) throws -> [T] {
        var out = [T](repeating: 0, count: values.count * size)
        try values.withUnsafeBufferPointer { s in
            try out.withUnsafeMutableBufferPointer { try allgather(s, into: $0) }
        }
        return out
    }
}

/// A pending non-blocking operation. Complete it with `wait()` or poll it with `test()`; an
/// incomplete request at deinit is a programming error (its buffer could still be in use).
public final class Request {
    var handle: MPI_Request? = dsan_mpi_request_null()
    let operation: String

    init(operation: String) { self.operation = operation }

    /// Whether the operation has completed (a completed request is reset to `MPI_REQUEST_NULL`).
    public var isComplete: Bool { handle == dsan_mpi_request_null() }

    /// Blocks until the operation completes (`MPI_Wait`).
    public func wait() throws {
        if isComplete { return }
        try check(MPI_Wait(&handle, dsan_mpi_status_ignore()), "MPI_Wait for \(operation)")
    }

    /// Waits at most `timeout` seconds, polling with `MPI_Test` (then napping 20 µs between polls), and
    /// throws `MPIError` if the operation has not completed by then — the way dsan turns a dead
    /// or hung peer into an error instead of a silent hang.
    public func wait(timeout: Double) throws {
        if timeout.isInfinite { return try wait() }
        let deadline = MPI.wallTime + timeout
        var spins = 0
        while try !test() {
            if MPI.wallTime > deadline {
                throw MPIError(operation: operation, code: -1,
                               message: "timed out after \(timeout) s; the peer is missing, hung or far behind")
            }
            spins += 1
            // Spin briefly (most small reductions finish within microseconds), then yield the core
            // in 20 µs naps: a rank bound to one core shares it with its prefetch and all-reduce
            // threads, and a longer nap would add its length to every synchronised batch norm.
            if spins > 200 { usleep(20) }
        }
    }

    /// Returns whether the operation has completed, without blocking (`MPI_Test`).
    public func test() throws -> Bool {
        if isComplete { return true }
        var flag: Int32 = 0
        try check(MPI_Test(&handle, &flag, dsan_mpi_status_ignore()), "MPI_Test for \(operation)")
        return flag != 0
    }

    /// A request dropped before completion (after a timeout, on the way to aborting the job) is
    /// cancelled and freed, best effort.
    deinit {
        if !isComplete && !MPI.isFinalized {
            _ = MPI_Cancel(&handle)
            _ = MPI_Request_free(&handle)
        }
    }
}
