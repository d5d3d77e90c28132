import Foundation
import Testing
import NumericalTesting
@testable import Tensor
import ThreadPool

#if canImport(Glibc)
import Glibc
#endif

/// One counter per index, shared by the threads of a region (each index written by one share).
private final class Counters: @unchecked Sendable {
    let values: UnsafeMutableBufferPointer<Int>
    init(_ n: Int) {
        values = .allocate(capacity: max(n, 1))
        values.initialize(repeating: 0)
    }
    deinit { values.deallocate() }
    subscript(i: Int) -> Int {
        get { values[i] }
        set { values[i] = newValue }
    }
}

/// The pool behind `Parallel.forEach` / `forEachWorker` (Sources/ThreadPool/thread_pool.c):
/// every chunk exactly once, share t on pool thread t, nested and concurrent calls, resizing.
/// Serialised, and every test holds `ThreadSettings`: they change `Parallel.threads`.
@Suite(.serialized) struct ParallelPoolTests {
    /// Counts below, equal to and above the worker count, on 1, 2, 3 and 5 threads: every index is
    /// visited once, by the worker whose fixed chunk holds it, through both entry points.
    @Test(arguments: [1, 2, 3, 5])
    func everyChunkRunsExactlyOnce(threads: Int) {
        for count in [1, 2, threads - 1, threads, threads + 1, 3 * threads + 2, 1000] where count > 0 {
            let visits = Counters(count), owner = Counters(count)
            ThreadSettings.with(parallel: threads) {
                Parallel.forEach(count) { r in for i in r { visits[i] += 1 } }
                Parallel.forEachWorker(count) { worker, r in for i in r { visits[i] += 1; owner[i] = worker } }
            }
            let workers = min(threads, count)
            for i in 0..<count {
                #expect(visits[i] == 2, "index \(i) of \(count), \(threads) threads")
                let chunk = (0..<workers).first { count * $0 / workers <= i && i < count * ($0 + 1) / workers }!
                #expect(owner[i] == chunk, "index \(i) of \(count), \(threads) threads")
            }
        }
    }

    /// On the pool, share 0 runs on the calling thread and share t ≥ 1 on pool thread t, every time.
    @Test(arguments: [2, 3, 5])
    func shareTRunsOnPoolThreadT(threads: Int) {
        ThreadSettings.with(parallel: threads) {
            var pooled = 0
            for _ in 0..<200 {
                let thread = Counters(threads), caller = Counters(threads)
                let me = pthread_self()
                let execution = Parallel.run(threads) { t in
                    thread[t] = Parallel.currentPoolThread
                    caller[t] = pthread_equal(pthread_self(), me) != 0 ? 1 : 0
                }
                // Another suite's region may hold the pool: then Dispatch ran it, and that is all.
                guard execution == .pool else {
                    #expect(execution == .dispatch)
                    continue
                }
                pooled += 1
                #expect(caller[0] == 1 && thread[0] == 0)
                for t in 1..<threads {
                    #expect(thread[t] == t && caller[t] == 0, "share \(t) of \(threads)")
                }
            }
            #expect(pooled > 0, "no region of 200 ran on the pool")
        }
    }

    /// A `forEach` inside a region's body runs inline on the thread of the share that called it,
    /// chunk by chunk in order, and reports `.inline`; the outer region covers every index once.
    @Test(arguments: [2, 3])
    func nestedCallsRunInline(threads: Int) {
        let outer = 7, inner = 11
        let visits = Counters(outer * inner), sameThread = Counters(outer * inner)
        let executions = Counters(outer)
        ThreadSettings.with(parallel: threads) {
            Parallel.forEach(outer) { r in
                for o in r {
                    let me = pthread_self()
                    var order: [Int] = []
                    let e = Parallel.run(3) { t in order.append(t) }
                    executions[o] = e == .inline && order == [0, 1, 2] ? 1 : 0
                    Parallel.forEach(inner) { ri in
                        for i in ri {
                            visits[o * inner + i] += 1
                            sameThread[o * inner + i] = pthread_equal(pthread_self(), me) != 0 ? 1 : 0
                        }
                    }
                }
            }
        }
        for k in 0..<(outer * inner) {
            #expect(visits[k] == 1 && sameThread[k] == 1, "outer \(k / inner), inner \(k % inner)")
        }
        for o in 0..<outer { #expect(executions[o] == 1, "outer \(o): nested run not inline in order") }
    }

    /// Several threads calling at once: each region still runs every chunk once, none deadlocks,
    /// and the results match a serial computation.
    @Test func concurrentCallersEachGetEveryChunk() {
        let callers = 4, rounds = 300, count = 97
        let totals = Counters(callers)
        ThreadSettings.with(parallel: 3) {
            DispatchQueue.concurrentPerform(iterations: callers) { c in
                let visits = Counters(count)
                for _ in 0..<rounds {
                    Parallel.forEachWorker(count) { _, r in for i in r { visits[i] += 1 } }
                }
                totals[c] = (0..<count).allSatisfy { visits[$0] == rounds } ? 1 : 0
            }
        }
        for c in 0..<callers { #expect(totals[c] == 1, "caller \(c)") }
    }

    /// While one thread's region holds the pool (its share 0 waits), another thread's call does not
    /// wait for it: it runs with Dispatch, completely.
    @Test func aSecondCallerWhileThePoolIsBusyUsesDispatch() {
        ThreadSettings.with(parallel: 2) {
            var checked = false
            for _ in 0..<50 where !checked {
                let started = DispatchSemaphore(value: 0), release = DispatchSemaphore(value: 0)
                let share1Thread = Counters(1), second = Counters(4)
                let group = DispatchGroup()
                DispatchQueue.global().async(group: group) {
                    Parallel.run(2) { t in
                        if t == 0 { started.signal(); release.wait() } else { share1Thread[0] = Parallel.currentPoolThread }
                    }
                }
                started.wait()
                let execution = Parallel.run(4) { t in second[t] += 1 }
                release.signal()
                group.wait()
                #expect((0..<4).allSatisfy { second[$0] == 1 })
                // Meaningful only when the first region did get the pool (its share 1 on pool thread 1).
                if share1Thread[0] == 1 {
                    #expect(execution == .dispatch)
                    checked = true
                }
            }
            #expect(checked, "the first region never got the pool in 50 tries")
        }
    }

    /// Raising `Parallel.threads` grows the pool and lowering it stops the extra threads; regions
    /// after each change still run every chunk once on the right pool threads.
    @Test func threadCountChangesResizeThePool() {
        for threads in [5, 2, 3, 1, 4, 2] {
            ThreadSettings.with(parallel: threads) {
                var matched = false
                // Another suite may resize the pool between our region and the check: retry.
                for _ in 0..<100 where !matched {
                    let thread = Counters(threads)
                    let execution = Parallel.run(threads) { t in thread[t] = Parallel.currentPoolThread }
                    #expect((1..<max(threads, 1)).allSatisfy { execution != .pool || thread[$0] == $0 })
                    if threads == 1 { #expect(execution == .inline) }
                    let n = Parallel.poolThreadCount
                    matched = threads == 1 || (execution == .pool && n == threads - 1)
                }
                #expect(matched, "pool of \(Parallel.poolThreadCount) threads for Parallel.threads = \(threads)")
            }
        }
    }

    /// Many tiny regions back to back (the hand-off's hot path and its sleep/wake path).
    @Test(arguments: [2, 3])
    func manyTinyRegions(threads: Int) {
        let count = 8
        let visits = Counters(count)
        let regions = 50_000
        ThreadSettings.with(parallel: threads) {
            for k in 0..<regions {
                Parallel.forEach(count) { r in for i in r { visits[i] += 1 } }
                if k % 5000 == 0 { usleep(3000) }   // past both wait bounds: the pool threads sleep now and then
            }
        }
        #expect((0..<count).allSatisfy { visits[$0] == regions })
    }

    /// A helper polls (pause, then sched_yield) for the spin and yield bounds after a region and
    /// only then sleeps: a serial stretch inside the bounds costs the next region no wake-up, one
    /// past them does, and with no yield stage the spin bound alone decides.
    @Test func helpersSleepOnlyPastBothWaitBounds() {
        let saved = (dsan_pool_spin_microseconds(), dsan_pool_yield_microseconds())
        defer { dsan_pool_set_wait_microseconds(saved.0, saved.1) }
        func sleeps(spin: Int, yield: Int, pause: UInt32, regions: Int = 20) -> Int {
            dsan_pool_set_wait_microseconds(spin, yield)
            return ThreadSettings.with(parallel: 2) {
                Parallel.forEach(2) { _ in }   // the helper exists and has run
                usleep(20_000)                 // and sleeps now, whatever the bounds were before
                let before = dsan_pool_helper_sleeps()
                for _ in 0..<regions {
                    Parallel.forEach(2) { _ in }
                    usleep(pause)
                }
                return dsan_pool_helper_sleeps() - before
            }
        }
        // 300 µs between regions: inside 50 µs + 10 ms of polling, so (almost) never a sleep; the
        // helper was asleep once at the start, which the first region's wake-up ends.
        #expect(sleeps(spin: 50, yield: 10_000, pause: 300) <= 3)
        // Without the yield stage the same stretch is past the 50 µs spin: a sleep per region.
        #expect(sleeps(spin: 50, yield: 0, pause: 300) >= 15)
        // Past both bounds (50 µs + 1 ms, 5 ms between regions): a sleep per region.
        #expect(sleeps(spin: 50, yield: 1000, pause: 5000) >= 15)
    }
}
