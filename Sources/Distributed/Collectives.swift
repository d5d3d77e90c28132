import MPI
import Tensor

/// The collectives the trainer uses, each bounded by a timeout so that a dead or hung rank turns
/// into an error on every survivor instead of a silent hang (DESIGN.md §4).
public final class Collectives {
    public let comm: Communicator
    /// Seconds any one collective may wait.
    public var timeout: Double
    public let ring: RingAllreduce

    public var rank: Int { comm.rank }
    public var size: Int { comm.size }

    /// The MPI thread support this process has (a communication thread needs `.multiple`).
    public let threadLevel: ThreadLevel

    public init(comm: Communicator, timeout: Double, threadLevel: ThreadLevel = .funneled) {
        self.comm = comm
        self.threadLevel = threadLevel
        self.timeout = timeout
        ring = RingAllreduce(comm: comm, timeout: timeout)
    }

    /// Σ over ranks of a small buffer of doubles (loss terms, batch-norm sums), in place.
    public func sum(_ buffer: UnsafeMutableBufferPointer<Double>) throws {
        if size == 1 { return }
        let r = try comm.iallreduce(buffer, .sum)
        try waiting(r, "summing \(buffer.count) values")
    }

    /// Σ over ranks of an array of doubles.
    public func sum(_ values: [Double]) throws -> [Double] {
        var v = values
        try v.withUnsafeMutableBufferPointer { try sum($0) }
        return v
    }

    /// Waits for every rank, at most `timeout` (or `seconds`) seconds.
    public func barrier(_ what: String, seconds: Double? = nil) throws {
        if size == 1 { return }
        let r = try comm.ibarrier()
        try waiting(r, what, seconds: seconds)
    }

    /// Copies rank `root`'s tensors into every rank's tensors (same shapes everywhere).
    public func broadcast(_ tensors: [Tensor], root: Int = 0) throws {
        if size == 1 { return }
        for t in tensors where t.count > 0 {
            let r = try comm.ibroadcast(t.buffer, root: root)
            try waiting(r, "broadcasting \(t.shape) from rank \(root)")
        }
    }

    /// Broadcast of a few doubles from `root`.
    public func broadcast(_ values: [Double], root: Int = 0) throws -> [Double] {
        if size == 1 { return values }
        var v = values
        try v.withUnsafeMutableBufferPointer { b in
            let r = try comm.ibroadcast(b, root: root)
            try waiting(r, "broadcasting \(b.count) values from rank \(root)")
        }
        return v
    }

    /// Every rank's list of integers (at most `maxCount` each), in rank order.
    public func gather(_ local: [Int], maxCount: Int) throws -> [[Int]] {
        try gatherPadded(local.map(Int64.init), maxCount: maxCount, what: "the ranks' shares", count: { Int($0) }).map { $0.map { Int($0) } }
    }

    /// Every rank's list of doubles (at most `maxCount` each), in rank order.
    public func gather(_ local: [Double], maxCount: Int, what: String) throws -> [[Double]] {
        try gatherPadded(local, maxCount: maxCount, what: what, count: { Int($0) })
    }

    /// One all-gather of fixed-size blocks `[count, values…, padding]` (every rank sends
    /// 1 + `maxCount` elements), bounded by the timeout like every wait here.
    private func gatherPadded<T: MPIElement & Numeric>(_ local: [T], maxCount: Int, what: String,
                                                       count: (T) -> Int) throws -> [[T]] {
        precondition(local.count <= maxCount, "gather: \(local.count) values, at most \(maxCount)")
        if size == 1 { return [local] }
        let send = [T(exactly: local.count)!] + local + [T](repeating: 0, count: maxCount - local.count)
        var all = [T](repeating: 0, count: send.count * size)
        try send.withUnsafeBufferPointer { s in
            try all.withUnsafeMutableBufferPointer { r in
                let request = try comm.iallgather(s, into: r)
                try waiting(request, "gathering \(what)")
            }
        }
        return (0..<size).map { r in
            let block = all[(r * send.count)..<((r + 1) * send.count)]
            return Array(block.dropFirst().prefix(count(block.first!)))
        }
    }

    /// Every rank's `value`, in rank order.
    public func gather(_ value: Double, what: String) throws -> [Double] {
        if size == 1 { return [value] }
        let send = [value]
        var all = [Double](repeating: 0, count: size)
        try send.withUnsafeBufferPointer { s in
            try all.withUnsafeMutableBufferPointer { r in
                let request = try comm.iallgather(s, into: r)
                try waiting(request, "gathering \(what)")
            }
        }
        return all
    }

    /// Checks that every rank holds bit-identical tensors (PyTorch DDP's check after the initial
    /// broadcast): each rank's checksum is all-gathered and compared. Throws naming the ranks that
    /// differ from rank 0.
    public func verifyIdentical(_ tensors: [Tensor], what: String) throws {
        if size == 1 { return }
        var h: UInt64 = 0xCBF2_9CE4_8422_2325
        for t in tensors {
            for i in 0..<t.count { h = (h ^ UInt64(t.data[i].bitPattern)) &* 0x0000_0100_0000_01B3 }
        }
        let mine = [Int64(bitPattern: h)]
        let all = try comm.allgather(mine)
        let differing = all.indices.filter { all[$0] != all[0] }
        if !differing.isEmpty {
            throw MPIError(operation: "verifying \(what) on rank \(rank)", code: -1,
                           message: "ranks \(differing.map(String.init).joined(separator: ", ")) hold a different \(what) than rank 0")
        }
    }

    private func waiting(_ r: Request, _ what: String, seconds: Double? = nil) throws {
        let limit = seconds ?? timeout
        do { try r.wait(timeout: limit) } catch let e as MPIError {
            throw MPIError(operation: "rank \(rank) \(what)", code: e.code,
                           message: e.message.contains("timed out")
                               ? "no answer within \(limit) s: another rank has died or hung (see its log); stopping"
                               : e.message)
        }
    }
}
