import Dispatch
import ThreadPool

extension Parallel {
    /// Like `forEach`, but also tells `body` which worker it is (0..<workers), so that each worker
    /// can use its own slice of a scratch buffer. Chunk boundaries are fixed as in `forEach`;
    /// `workers` is min(threads, count, maxWorkers), and `body` runs once per worker.
    @inlinable
    public static func forEachWorker(_ count: Int, maxWorkers: Int = .max, file: StaticString = #fileID, line: UInt = #line,
                                     _ body: (_ worker: Int, _ range: Range<Int>) -> Void) {
        if count <= 0 { return }
        let workers = min(threads, count, max(1, maxWorkers))
        RegionProfile.region(file, line, items: count, workers: workers) {
            if workers <= 1 { body(0, 0..<count); return }
            run(workers) { t in
                let lo = count * t / workers, hi = count * (t + 1) / workers
                if lo < hi { body(t, lo..<hi) }
            }
        }
    }
}

extension Parallel {
    /// Like `forEachWorker`, but the workers take `grain` items at a time from a shared counter as
    /// they finish, instead of fixed shares: when the OS or the hypervisor holds one core up (a
    /// VM's stolen time, a neighbour's interrupt), the others take its remaining items instead of
    /// waiting for it at the end of the region. `body` may run several times per worker, with
    /// ranges in increasing order, and which worker runs which items differs from run to run. So
    /// only for bodies whose results do not depend on that: each output written by one item, no
    /// per-worker partial sums (a worker's own scratch is fine). The bits are then the same as with
    /// `forEachWorker`, on any thread count.
    @inlinable
    public static func forEachWorkerDynamically(_ count: Int, maxWorkers: Int = .max, grain: Int = 1,
                                                file: StaticString = #fileID, line: UInt = #line,
                                                _ body: (_ worker: Int, _ range: Range<Int>) -> Void) {
        if count <= 0 { return }
        let grain = max(1, grain)
        let units = (count + grain - 1) / grain
        let workers = min(threads, units, max(1, maxWorkers))
        RegionProfile.region(file, line, items: units, workers: workers) {
            if workers <= 1 { body(0, 0..<count); return }
            var next = 0
            withUnsafeMutablePointer(to: &next) { counter in
                run(workers) { t in
                    while true {
                        let lo = dsan_pool_take(counter, grain)
                        if lo >= count { break }
                        body(t, lo..<min(count, lo + grain))
                    }
                }
            }
        }
    }
}

extension Parallel {
    /// Counts one arrival at `counter` (shared by the workers of a region, starting at 0) and
    /// returns how many came before, with acquire-release order: the worker that gets n − 1 is the
    /// last of n and sees every write the other n − 1 made before they arrived. For work that
    /// must follow several jobs of a dynamic region, done by whichever finishes last.
    @inlinable
    public static func arrive(at counter: UnsafeMutablePointer<Int>) -> Int { dsan_pool_arrive(counter) }
}

extension Parallel {
    /// Sets every element of `tensors` to +0, as one parallel loop over their elements laid end to
    /// end (fixed chunks, as `forEach`): a model's parameter gradients are 63.5 M floats, which one
    /// thread zeroing them alone before each step kept the other cores waiting for.
    public static func zero(_ tensors: [Tensor], file: StaticString = #fileID, line: UInt = #line) {
        var offsets = [0]
        offsets.reserveCapacity(tensors.count + 1)
        for t in tensors { offsets.append(offsets.last! + t.count) }
        let pointers = tensors.map(\.data)
        let total = offsets.last!
        offsets.withUnsafeBufferPointer { offsets in
            pointers.withUnsafeBufferPointer { pointers in
                forEach(total, grain: 1 << 16, file: file, line: line) { range in
                    // The last tensor starting at or before the range, then each one it overlaps.
                    var lo = 0, hi = offsets.count - 1
                    while hi - lo > 1 {
                        let mid = (lo + hi) / 2
                        if offsets[mid] <= range.lowerBound { lo = mid } else { hi = mid }
                    }
                    var k = lo
                    while k < pointers.count && offsets[k] < range.upperBound {
                        let start = max(range.lowerBound, offsets[k]), end = min(range.upperBound, offsets[k + 1])
                        if end > start { (pointers[k] + (start - offsets[k])).update(repeating: 0, count: end - start) }
                        k += 1
                    }
                }
            }
        }
    }
}

extension Parallel {
    /// `destination` ← `source` (equal element counts), in fixed chunks over the workers: the
    /// copies between a residual block's gradient buffers are activation-sized, and one thread
    /// copying them left the others idle.
    public static func copy(_ source: Tensor, into destination: Tensor, file: StaticString = #fileID, line: UInt = #line) {
        precondition(source.count == destination.count, "Parallel.copy: \(source.shape) into \(destination.shape)")
        let (from, to) = (UnsafePointer(source.data), destination.data)
        forEach(source.count, grain: 1 << 16, file: file, line: line) { range in
            (to + range.lowerBound).update(from: from + range.lowerBound, count: range.count)
        }
    }
}
