import Dispatch

extension Parallel {
    /// Like `forEach`, but also tells `body` which worker it is (0..<workers), so that each worker
    /// can use its own slice of a scratch buffer. Chunk boundaries are fixed as in `forEach`;
    /// `workers` is min(threads, count, maxWorkers), and `body` runs once per worker.
    @inlinable
    public static func forEachWorker(_ count: Int, maxWorkers: Int = .max,
                                     _ body: (_ worker: Int, _ range: Range<Int>) -> Void) {
        if count <= 0 { return }
        let workers = min(threads, count, max(1, maxWorkers))
        if workers <= 1 { body(0, 0..<count); return }
        DispatchQueue.concurrentPerform(iterations: workers) { t in
            let lo = count * t / workers, hi = count * (t + 1) / workers
            if lo < hi { body(t, lo..<hi) }
        }
    }
}
