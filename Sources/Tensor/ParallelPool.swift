import Dispatch
import ThreadPool

extension Parallel {
    /// How `run` executed a region (for the tests; not public API).
    @usableFromInline enum Execution: Equatable, Sendable {
        /// On dsan's pool: share 0 on the calling thread, share t ≥ 1 on pool thread t.
        case pool
        /// On the calling thread, shares in order: a nested call (from inside a region's body), or
        /// a single share.
        case inline
        /// With `DispatchQueue.concurrentPerform`: the pool was serving another thread's region
        /// (or this system has no pool).
        case dispatch
    }

    /// Calls `share(t)` for every t in 0..<workers, in parallel, and returns when all returned.
    ///
    /// dsan's persistent pool (Sources/ThreadPool/thread_pool.c) runs it: the caller runs share 0
    /// and pool thread t share t, always the same thread for the same share, handed over with a
    /// bounded spin before any sleep, so the many short regions of a layer (a Winograd block's
    /// three phases, batch norm, ReLU) start in microseconds and each thread does its own half.
    /// The pool keeps `threads` − 1 threads, created on first use and stopped when `threads` falls.
    ///
    /// A call from inside a region (a body that calls `forEach` again, whichever way the region
    /// ran) runs its shares inline, in order: never a deadlock. The pool serves one region at a time; a second thread that calls
    /// while it is busy (the prefetcher beside the trainer, test suites side by side) runs its
    /// region with Dispatch, as dsan did before the pool, rather than waiting. The shares and
    /// their boundaries are the caller's either way, so the results are the same bits.
    @usableFromInline @discardableResult
    static func run(_ workers: Int, _ share: (Int) -> Void) -> Execution {
        if workers <= 0 { return .inline }
        if workers == 1 { share(0); return .inline }
        if _slowPath(RegionProfile.active), let begin = RegionProfile.beginShares(workers) {
            // `dsan bench threads --regions`: time each share, to book the workers' waiting
            let ran = runShares(workers) { t in RegionProfile.timeShare(t, share) }
            RegionProfile.endShares(workers, begin: begin)
            return ran
        }
        return runShares(workers, share)
    }

    private static func runShares(_ workers: Int, _ share: (Int) -> Void) -> Execution {
        withoutActuallyEscaping(share) { share in
            var closure = share
            let ran = withUnsafeMutablePointer(to: &closure) { pointer in
                dsan_pool_run(threads, workers, { context, t in
                    context!.assumingMemoryBound(to: ((Int) -> Void).self).pointee(t)
                }, pointer)
            }
            if ran == 1 { return .pool }
            if ran == 2 { return .inline }
            DispatchQueue.concurrentPerform(iterations: workers) { t in
                let previous = dsan_pool_enter()   // nested calls inline, as on the pool
                share(t)
                dsan_pool_leave(previous)
            }
            return .dispatch
        }
    }
}

extension Parallel {
    /// The pool thread index (1, 2, …) of the calling thread, or 0 when it is not a pool thread.
    static var currentPoolThread: Int { dsan_pool_current_helper() }

    /// Pool threads alive now (besides the callers).
    static var poolThreadCount: Int { dsan_pool_helper_count() }

    /// Times a pool thread has gone to sleep since the process started (`dsan_pool_helper_sleeps`).
    public static var helperSleeps: Int { dsan_pool_helper_sleeps() }

    /// How long a waiting pool thread polls with the pause instruction, then yielding the core,
    /// before it sleeps (µs; `DSAN_POOL_SPIN_US`, `DSAN_POOL_YIELD_US`).
    public static var poolSpinMicroseconds: Int { dsan_pool_spin_microseconds() }
    public static var poolYieldMicroseconds: Int { dsan_pool_yield_microseconds() }

    /// Sets both wait bounds for the rest of the process (`dsan bench step --compare-pool-wait`).
    public static func setPoolWait(spinMicroseconds: Int, yieldMicroseconds: Int) {
        dsan_pool_set_wait_microseconds(spinMicroseconds, yieldMicroseconds)
    }
}
