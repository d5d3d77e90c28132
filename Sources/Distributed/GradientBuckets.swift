import Foundation
import MPI
import Tensor

/// Gradients grouped into buckets of about `bucketBytes` in the order backward produces them
/// (last layer first), each summed across ranks by the ring all-reduce (DESIGN.md §4).
///
/// A bucket's gradients are reduced where they live, as one buffer laid end to end (no packing
/// copy). Every rank builds the same buckets from the same model, and the ring checks the layout
/// (lengths of the bucket and of its tensors) once per bucket.
/// Batch-norm running statistics are buffers, never gradients, and are not in here.
public final class GradientBuckets {
    public let gradients: [Tensor]
    /// Indices into `gradients` per bucket.
    public let buckets: [[Int]]
    private var verified = false

    /// `gradients` in the order backward completes them.
    public init(gradients: [Tensor], bucketBytes: Int = 25 << 20) {
        precondition(bucketBytes > 0, "GradientBuckets: bucketBytes \(bucketBytes)")
        self.gradients = gradients
        var buckets: [[Int]] = [], current: [Int] = [], bytes = 0
        for (i, g) in gradients.enumerated() {
            current.append(i)
            bytes += g.count * 4
            if bytes >= bucketBytes { buckets.append(current); current = []; bytes = 0 }
        }
        if !current.isEmpty { buckets.append(current) }
        self.buckets = buckets
    }

    /// Sums every gradient over all ranks, in place.
    public func allReduce(_ ring: RingAllreduce) throws {
        if ring.comm.size == 1 { return }
        for k in buckets.indices { try reduce(bucket: k, ring) }
        verified = true
    }

    /// One past the last gradient index of bucket `k`: the bucket can be reduced once that many
    /// gradients (in backward order) are final.
    public func end(of k: Int) -> Int { buckets[k].last! + 1 }

    /// Sums bucket `k`'s gradients over all ranks, in place: the ring reads and writes the
    /// gradient tensors themselves, as one buffer laid end to end.
    public func reduce(bucket k: Int, _ ring: RingAllreduce) throws {
        try ring.allreduce(pieces: buckets[k].map { gradients[$0].buffer }, verifyLayout: !verified)
        if k == buckets.count - 1 { verified = true }
    }
}

/// Reduces gradient buckets on a communication thread while backward continues (DESIGN.md §4):
/// backward reports how many gradients are final (`ready`), the thread reduces every bucket they
/// cover, in order, on its own communicator (so its messages never meet the main thread's batch-
/// norm and loss reductions), and `finish` waits for the last bucket. Needs MPI_THREAD_MULTIPLE.
public final class OverlappedReduction: @unchecked Sendable {
    public let buckets: GradientBuckets
    public let ring: RingAllreduce
    private let condition = NSCondition()
    private var readyCount = 0
    private var next = 0
    private var active = false
    private var failure: Error?
    private var stopped = false
    private var thread: Thread?
    /// Seconds the communication thread spent reducing in the last step, and the seconds
    /// `finish` waited for it (the part not hidden behind backward).
    public private(set) var reduceSeconds = 0.0
    public private(set) var exposedSeconds = 0.0

    public init(buckets: GradientBuckets, ring: RingAllreduce) {
        self.buckets = buckets
        self.ring = ring
        let t = Thread { [weak self] in self?.loop() }
        t.name = "dsan-allreduce"
        thread = t
        t.start()
    }

    deinit { stop() }

    /// Starts a step: no gradient is final yet.
    public func begin() {
        condition.lock()
        readyCount = 0
        next = 0
        active = true
        failure = nil
        reduceSeconds = 0
        condition.broadcast()
        condition.unlock()
    }

    /// `count` gradients (in backward order) are final.
    public func ready(_ count: Int) {
        condition.lock()
        readyCount = max(readyCount, count)
        condition.broadcast()
        condition.unlock()
    }

    /// Waits until every bucket is reduced; rethrows the communication thread's error.
    public func finish() throws {
        let start = Date()
        condition.lock()
        readyCount = buckets.gradients.count
        condition.broadcast()
        while next < buckets.buckets.count && failure == nil { condition.wait() }
        active = false
        let error = failure
        condition.unlock()
        exposedSeconds = Date().timeIntervalSince(start)
        if let error { throw error }
    }

    public func stop() {
        condition.lock()
        stopped = true
        condition.broadcast()
        condition.unlock()
    }

    private func loop() {
        while true {
            condition.lock()
            while !stopped && !(active && failure == nil && next < buckets.buckets.count && buckets.end(of: next) <= readyCount) {
                condition.wait()
            }
            if stopped { condition.unlock(); return }
            let k = next
            condition.unlock()
            let start = Date()
            var error: Error?
            do { try buckets.reduce(bucket: k, ring) } catch let e { error = e }
            condition.lock()
            reduceSeconds += Date().timeIntervalSince(start)
            if let error { failure = error } else { next += 1 }
            condition.broadcast()
            condition.unlock()
        }
    }
}
