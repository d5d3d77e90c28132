import MPI
#if canImport(Glibc)
import Glibc
#endif

/// Sum of a float buffer over all ranks by a ring all-reduce on MPI point-to-point messages
/// (DESIGN.md §4): a reduce-scatter, after which rank r holds the full sum of segment (r + 1) mod R,
/// then an all-gather that passes the summed segments around the ring. Each rank sends and
/// receives 2(R − 1)/R of the buffer, independent of R, which is why rings scale.
///
/// Segments are `[n·i/R, n·(i+1)/R)`, so lengths that do not divide by R work, and R > n leaves
/// some segments empty. Every wait is bounded by `timeout`: a dead or hung neighbour becomes a
/// `RingError.noProgress` naming that rank, never a silent hang. The summation order of each element depends
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

    /// Checks that every rank passes the same layout — total length, number of pieces and their
    /// lengths (baidu-allreduce's check, extended to pieces): a mismatch would otherwise corrupt
    /// memory, truncate messages or hang. Throws `RingError.differentLengths` or
    /// `.differentPieces` on every rank. Collective.
    public func verifySameLayout(_ layout: PieceLayout) throws {
        let n = Int64(layout.count), k = Int64(layout.pieces.count), h = layout.signature
        var v: [Int64] = [n, -n, k, -k, h, -h]
        try v.withUnsafeMutableBufferPointer { b in
            let r = try comm.iallreduce(b, .max)
            try r.wait(timeout: timeout)
        }
        if v[0] != n || -v[1] != n {
            throw RingError.differentLengths(rank: comm.rank, length: layout.count, othersBetween: Int(-v[1])...Int(v[0]))
        }
        if v[2] != k || -v[3] != k || v[4] != h || -v[5] != h {
            throw RingError.differentPieces(rank: comm.rank, length: layout.count, pieces: layout.pieces.count)
        }
    }

    @inline(__always)
    func segment(_ i: Int, of n: Int) -> Range<Int> {
        let r = comm.size
        return (n * i / r)..<(n * (i + 1) / r)
    }

    /// Replaces `buffer` on every rank by its elementwise sum over all ranks. Collective.
    public func allreduce(_ buffer: UnsafeMutableBufferPointer<Float>, verifyLength: Bool = true) throws {
        try allreduce(pieces: [buffer], verifyLayout: verifyLength)
    }

    /// Replaces every piece on every rank by its elementwise sum over all ranks, as if the pieces
    /// were one buffer laid end to end, without copying them into one: gradient tensors are
    /// reduced where they live (PyTorch DDP copies them into a bucket and back; this saves those
    /// two passes over the gradients). Every rank must pass the same piece lengths. Collective.
    public func allreduce(pieces: [UnsafeMutableBufferPointer<Float>], verifyLayout: Bool = true) throws {
        let layout = PieceLayout(pieces)
        let n = layout.count
        if verifyLayout { try verifySameLayout(layout) }
        let size = comm.size, rank = comm.rank
        if size == 1 || n == 0 { return }
        let right = (rank + 1) % size, left = (rank + size - 1) % size
        let largest = (n + size - 1) / size + 1
        if scratch.count < largest { scratch = [Float](repeating: 0, count: largest) }
        try scratch.withUnsafeMutableBufferPointer { tmp in
            // Reduce-scatter: step s sends segment (rank − s) and adds the received (rank − s − 1).
            for s in 0..<(size - 1) {
                let out = segment((rank - s + size) % size, of: n)
                let into = segment((rank - s - 1 + size) % size, of: n)
                let incoming = layout.messages(into, chunk: Self.chunk)
                // Each message lands in the scratch and is added to its piece while later ones
                // are in flight.
                try exchange(send: layout.messages(out, chunk: Self.chunk).map { ($0.pointer, $0.count) },
                             receive: incoming.map { (tmp.baseAddress! + ($0.offset - into.lowerBound), $0.count) },
                             right: right, left: left, tag: 100 + s, phase: .reduceScatter) { k in
                    let m = incoming[k], src = tmp.baseAddress! + (m.offset - into.lowerBound), dst = m.pointer
                    for i in 0..<m.count { dst[i] += src[i] }
                }
            }
            // All-gather: step s forwards the summed segment (rank − s + 1), receives (rank − s)
            // straight into the pieces.
            for s in 0..<(size - 1) {
                let out = segment((rank - s + 1 + size) % size, of: n)
                let into = segment((rank - s + size) % size, of: n)
                try exchange(send: layout.messages(out, chunk: Self.chunk).map { ($0.pointer, $0.count) },
                             receive: layout.messages(into, chunk: Self.chunk).map { ($0.pointer, $0.count) },
                             right: right, left: left, tag: 200 + s, phase: .allGather)
            }
        }
    }

    /// Elements per message: a segment travels as messages of at most this size (and never across
    /// a piece boundary), so a receiver can work on an arrived message while the rest is in flight
    /// (1 MiB of floats).
    public static let chunk = 1 << 18

    /// Messages a rank has in flight to its right neighbour at once. The receives of a step are
    /// all posted at its start, but its sends go out `sendWindow` at a time, each posted when an
    /// earlier one completes: a step's whole segment (14 MB for a 28 MB bucket at R = 2) posted at
    /// once sits in MPI's transport queue, and every small all-reduce of the main thread (a batch
    /// norm's sums) waits behind all of it — about 0.12 s per round over 1 Gbit/s links
    /// (Docs/performance.md, "All-reduce"). Two messages keep the link busy while one is handed
    /// over and bound that wait to about 2 MiB of transfer.
    nonisolated(unsafe) public static var sendWindow = 2

    /// Sends `send` to the right neighbour while receiving `receive` from the left, one message
    /// per (pointer, count) (messages between two ranks with one tag arrive in order, and both
    /// sides cut a range into the same messages), calling `arrived` with each received message's
    /// index as it completes, in order. At most `sendWindow` sends are in flight. The timeout
    /// bounds the time without progress: when no message completes for `timeout` seconds, the
    /// error names the left neighbour if a receive is still missing, else the right one.
    private func exchange(send: [(UnsafeMutablePointer<Float>, Int)], receive: [(UnsafeMutablePointer<Float>, Int)],
                          right: Int, left: Int, tag: Int, phase: RingError.Phase,
                          arrived: (Int) -> Void = { _ in }) throws {
        // Every MPI call below talks to one neighbour: a failure names it.
        func with<T>(_ neighbour: Int, _ call: () throws -> T) throws -> T {
            do { return try call() } catch let error as MPIError {
                throw RingError.noProgress(phase: phase, rank: comm.rank, neighbour: neighbour, error: error)
            }
        }
        var receives: [Request] = []
        receives.reserveCapacity(receive.count)
        for (pointer, count) in receive {
            receives.append(try with(left) {
                try comm.ireceive(into: UnsafeMutableBufferPointer(start: pointer, count: count), from: left, tag: tag)
            })
        }
        let window = max(1, Self.sendWindow)
        var inFlight: [Request] = []
        var nextSend = 0, nextReceive = 0
        func postSends() throws {
            while inFlight.count < window && nextSend < send.count {
                let (pointer, count) = send[nextSend]
                inFlight.append(try with(right) { try comm.isend(UnsafeBufferPointer(start: pointer, count: count), to: right, tag: tag) })
                nextSend += 1
            }
        }
        try postSends()
        var lastProgress = MPI.wallTime
        var idlePolls = 0
        while nextReceive < receives.count || !inFlight.isEmpty || nextSend < send.count {
            var progressed = false
            // Sends complete in order on one connection; test the oldest first.
            while let oldest = inFlight.first, try with(right, { try oldest.test() }) {
                inFlight.removeFirst()
                progressed = true
            }
            try postSends()
            while nextReceive < receives.count, try with(left, { try receives[nextReceive].test() }) {
                arrived(nextReceive)
                nextReceive += 1
                progressed = true
            }
            if progressed {
                lastProgress = MPI.wallTime
                idlePolls = 0
                continue
            }
            if MPI.wallTime - lastProgress > timeout {
                let neighbour = nextReceive < receives.count ? left : right
                throw RingError.noProgress(phase: phase, rank: comm.rank, neighbour: neighbour,
                                           error: MPIError(operation: "ring step (tag \(tag)) with rank \(neighbour)", code: -1,
                                                           message: "timed out after \(timeout) s; the peer is missing, hung or far behind"))
            }
            // Spin briefly, then nap 20 µs between polls (Request.wait(timeout:)'s rhythm): the
            // rank's core is shared with backward.
            idlePolls += 1
            if idlePolls > 200 { usleep(20) }
        }
    }
}

/// Several float buffers seen as one, laid end to end: the ring cuts this logical buffer into
/// segments and messages, and each message maps back to memory inside one piece.
public struct PieceLayout {
    public let pieces: [UnsafeMutableBufferPointer<Float>]
    /// Logical offset of each piece, and the total length.
    let starts: [Int]
    public let count: Int

    public init(_ pieces: [UnsafeMutableBufferPointer<Float>]) {
        self.pieces = pieces
        var starts: [Int] = [], n = 0
        starts.reserveCapacity(pieces.count)
        for p in pieces { starts.append(n); n += p.count }
        self.starts = starts
        count = n
    }

    /// FNV-1a of the piece lengths (63 bits, so that it negates): equal on every rank that passes
    /// the same layout.
    var signature: Int64 {
        var h: UInt64 = 0xCBF2_9CE4_8422_2325
        for p in pieces { h = (h ^ UInt64(p.count)) &* 0x0000_0100_0000_01B3 }
        return Int64(h >> 1)
    }

    /// The messages that carry logical `range`: maximal runs inside one piece, cut every `chunk`
    /// elements; `offset` is each message's logical start.
    func messages(_ range: Range<Int>, chunk: Int) -> [(pointer: UnsafeMutablePointer<Float>, count: Int, offset: Int)] {
        var out: [(pointer: UnsafeMutablePointer<Float>, count: Int, offset: Int)] = []
        if range.isEmpty { return out }
        // The piece holding range.lowerBound: the last start ≤ it (skipping empty pieces).
        var lo = 0, hi = starts.count - 1
        while lo < hi {
            let mid = (lo + hi + 1) / 2
            if starts[mid] <= range.lowerBound { lo = mid } else { hi = mid - 1 }
        }
        var k = lo, position = range.lowerBound
        while position < range.upperBound {
            let pieceEnd = starts[k] + pieces[k].count
            if position >= pieceEnd { k += 1; continue }
            let end = min(range.upperBound, pieceEnd, position + chunk)
            out.append((pieces[k].baseAddress! + (position - starts[k]), end - position, position))
            position = end
        }
        return out
    }
}

extension RingAllreduce {
    /// Array convenience.
    public func allreduce(_ values: inout [Float]) throws {
        try values.withUnsafeMutableBufferPointer { try allreduce($0) }
    }
}
