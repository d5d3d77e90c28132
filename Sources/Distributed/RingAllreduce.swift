import MPI

/// Sum of a float buffer over all ranks by a ring all-reduce on MPI point-to-point messages
/// (DESIGN.md §4): a reduce-scatter, after which rank r holds the full sum of segment (r + 1) mod R,
/// then an all-gather that passes the summed segments around the ring. Each rank sends and
/// receives 2(R − 1)/R of the buffer, independent of R, which is why rings scale.
///
/// Segments are `[n·i/R, n·(i+1)/R)`, so lengths that do not divide by R work, and R > n leaves
/// some segments empty. Every wait is bounded by `timeout`: a dead or hung neighbour becomes an
/// `MPIError` naming that rank, never a silent hang. The summation order of each element depends
/// on R (floating-point rounding differs between rank counts, nothing else).
public final class RingAllreduce {
    public let comm: Communicator
    /// Seconds to wait for one message before giving up.
    public var timeout: Double
    private var scratch: [Float] = []

    public init(comm: Communicator, timeout: Double = 600) {
        self.comm = comm
        self.timeout = timeout
    }

    /// Checks that every rank passes the same length (baidu-allreduce's check): a mismatch would
    /// otherwise corrupt memory or hang. Collective.
    public func verifySameLength(_ n: Int) throws {
        var v: [Int64] = [Int64(n), -Int64(n)]
        try v.withUnsafeMutableBufferPointer { b in
            let r = try comm.iallreduce(b, .max)
            try r.wait(timeout: timeout)
        }
        if v[0] != Int64(n) || -v[1] != Int64(n) {
            throw MPIError(operation: "ring all-reduce on rank \(comm.rank)", code: -1,
                           message: "ranks pass different lengths (this rank \(n), others between \(-v[1]) and \(v[0])); every rank must reduce the same buffer layout")
        }
    }

    @inline(__always)
    func segment(_ i: Int, of n: Int) -> Range<Int> {
        let r = comm.size
        return (n * i / r)..<(n * (i + 1) / r)
    }

    /// Replaces `buffer` on every rank by its elementwise sum over all ranks. Collective.
    public func allreduce(_ buffer: UnsafeMutableBufferPointer<Float>, verifyLength: Bool = true) throws {
        let n = buffer.count
        if verifyLength { try verifySameLength(n) }
        let size = comm.size, rank = comm.rank
        if size == 1 || n == 0 { return }
        let right = (rank + 1) % size, left = (rank + size - 1) % size
        let largest = (n + size - 1) / size + 1
        if scratch.count < largest { scratch = [Float](repeating: 0, count: largest) }
        let base = buffer.baseAddress!
        try scratch.withUnsafeMutableBufferPointer { tmp in
            // Reduce-scatter: step s sends segment (rank − s) and adds the received (rank − s − 1).
            for s in 0..<(size - 1) {
                let out = segment((rank - s + size) % size, of: n)
                let into = segment((rank - s - 1 + size) % size, of: n)
                let dst = base + into.lowerBound, src = tmp.baseAddress!
                // In chunks, so each arrived chunk is added while the next ones are in flight.
                try exchange(send: UnsafeBufferPointer(start: base + out.lowerBound, count: out.count),
                             receive: UnsafeMutableBufferPointer(start: src, count: into.count),
                             right: right, left: left, tag: 100 + s, phase: "reduce-scatter") { r in
                    for i in r { dst[i] += src[i] }
                }
            }
            // All-gather: step s forwards the summed segment (rank − s + 1), receives (rank − s).
            for s in 0..<(size - 1) {
                let out = segment((rank - s + 1 + size) % size, of: n)
                let into = segment((rank - s + size) % size, of: n)
                try exchange(send: UnsafeBufferPointer(start: base + out.lowerBound, count: out.count),
                             receive: UnsafeMutableBufferPointer(start: base + into.lowerBound, count: into.count),
                             right: right, left: left, tag: 200 + s, phase: "all-gather")
            }
        }
    }

    /// Elements per message: a segment travels as chunks of this size, so a receiver can work on
    /// an arrived chunk while the rest is in flight (1 MiB of floats).
    public static let chunk = 1 << 18

    /// Sends to the right neighbour while receiving from the left, both in chunks of `chunk`
    /// elements (messages between two ranks with one tag arrive in order), calling `arrived` with
    /// each received chunk's range as it completes. Every wait is bounded by the timeout.
    private func exchange(send: UnsafeBufferPointer<Float>, receive: UnsafeMutableBufferPointer<Float>,
                          right: Int, left: Int, tag: Int, phase: String,
                          arrived: (Range<Int>) -> Void = { _ in }) throws {
        let c = Self.chunk
        do {
            var receives: [(Request, Range<Int>)] = []
            for lo in stride(from: 0, to: receive.count, by: c) {
                let r = lo..<min(receive.count, lo + c)
                let piece = UnsafeMutableBufferPointer(start: receive.baseAddress! + lo, count: r.count)
                receives.append((try comm.ireceive(into: piece, from: left, tag: tag), r))
            }
            var sends: [Request] = []
            for lo in stride(from: 0, to: send.count, by: c) {
                let piece = UnsafeBufferPointer(start: send.baseAddress! + lo, count: min(send.count, lo + c) - lo)
                sends.append(try comm.isend(piece, to: right, tag: tag))
            }
            for (request, r) in receives {
                try request.wait(timeout: timeout)
                arrived(r)
            }
            for request in sends { try request.wait(timeout: timeout) }
        } catch let error as MPIError {
            throw MPIError(operation: "ring all-reduce (\(phase)) on rank \(comm.rank)", code: error.code,
                           message: "no progress with rank \(error.operation.contains("Irecv") ? left : right): \(error.message)")
        }
    }
}

extension RingAllreduce {
    /// Array convenience.
    public func allreduce(_ values: inout [Float]) throws {
        try values.withUnsafeMutableBufferPointer { try allreduce($0) }
    }
}
