import Testing
#if canImport(Glibc)
import Glibc
#endif
import NumericalTesting
@testable import Tensor

/// Runs `body` with `Parallel.threads` set to `n`, restoring it after.
func withThreads<T>(_ n: Int, _ body: () throws -> T) rethrows -> T {
    try ThreadSettings.with(parallel: n, body)
}

/// Serialised: the tests change the process-wide `Parallel.threads`.
@Suite(.serialized) struct ParallelTests {
    @Test(arguments: [1, 2, 3, 7])
    func forEachVisitsEveryIndexOnce(threads: Int) {
        for count in [0, 1, 5, 1000, 1001] {
            let visits = UnsafeMutableBufferPointer<Int32>.allocate(capacity: max(count, 1))
            defer { visits.deallocate() }
            visits.initialize(repeating: 0)
            withThreads(threads) {
                Parallel.forEach(count) { r in for i in r { visits[i] += 1 } }
            }
            #expect(visits.prefix(count).allSatisfy { $0 == 1 }, "count \(count), \(threads) threads")
        }
    }

    @Test func forEachRespectsTheGrain() {
        var ranges: [Range<Int>] = []
        withThreads(8) {
            Parallel.forEach(100, grain: 60) { ranges.append($0) }   // 100 / 60 < 2: one worker
        }
        #expect(ranges == [0..<100])
    }

    @Test(arguments: [1, 2, 5])
    func forEachWorkerGivesEachWorkerItsOwnRange(threads: Int) {
        let count = 37
        let owner = UnsafeMutableBufferPointer<Int>.allocate(capacity: count)
        defer { owner.deallocate() }
        owner.initialize(repeating: -1)
        withThreads(threads) {
            Parallel.forEachWorker(count) { worker, r in for i in r { owner[i] = worker } }
        }
        let workers = min(threads, count)
        // Fixed chunk boundaries: index i belongs to worker ⌊i·workers/count⌋'s range.
        for i in 0..<count {
            let expected = (0..<workers).first { count * $0 / workers <= i && i < count * ($0 + 1) / workers }!
            #expect(owner[i] == expected, "index \(i)")
        }
    }

    /// The dynamic variant: every item exactly once, in ranges of at most `grain`, each worker's
    /// ranges in increasing order, worker ids below the worker count; with one worker (or one
    /// grain's worth of items) a single call with the whole range. When a worker is held up (here
    /// worker 0 sleeps in its first range) the others take the rest, which the static split
    /// cannot do: the run that proves more than one worker ran.
    @Test(arguments: [1, 2, 3, 5])
    func forEachWorkerDynamicallyVisitsEveryItemOnce(threads: Int) {
        for (count, grain) in [(0, 1), (1, 1), (37, 1), (37, 4), (1000, 7), (5, 10)] {
            let owner = UnsafeMutableBufferPointer<Int>.allocate(capacity: max(count, 1))
            defer { owner.deallocate() }
            owner.initialize(repeating: -1)
            let calls = UnsafeMutableBufferPointer<[Range<Int>]>.allocate(capacity: 8)
            defer { calls.deinitialize(); calls.deallocate() }
            calls.initialize(repeating: [])
            withThreads(threads) {
                Parallel.forEachWorkerDynamically(count, grain: grain) { worker, r in
                    calls[worker].append(r)
                    for i in r { owner[i] = owner[i] == -1 ? worker : -2 }
                }
            }
            let workers = min(threads, (count + grain - 1) / grain)
            let what = "count \(count), grain \(grain), \(threads) threads"
            #expect(owner.prefix(count).allSatisfy { $0 >= 0 && $0 < max(workers, 1) }, "\(what): an item missed or taken twice")
            if workers <= 1 {
                #expect(calls[0] == (count > 0 ? [0..<count] : []), "\(what)")
            } else {
                for w in 0..<workers {
                    let ranges = calls[w]
                    #expect(ranges.allSatisfy { $0.count <= grain }, "\(what)")
                    #expect(zip(ranges, ranges.dropFirst()).allSatisfy { $0.upperBound <= $1.lowerBound }, "\(what)")
                }
            }
        }
        guard threads > 1 else { return }
        // Worker 0 held up in its first item: the other workers take every other item.
        let count = 40
        let owner = UnsafeMutableBufferPointer<Int>.allocate(capacity: count)
        defer { owner.deallocate() }
        owner.initialize(repeating: -1)
        withThreads(threads) {
            Parallel.forEachWorkerDynamically(count) { worker, r in
                if worker == 0 && r.lowerBound < 2 { usleep(200_000) }
                for i in r { owner[i] = worker }
            }
        }
        let byWorkerZero = owner.filter { $0 == 0 }.count
        #expect(owner.allSatisfy { $0 >= 0 })
        #expect(byWorkerZero < count / 2, "\(threads) threads: worker 0 ran \(byWorkerZero) of \(count) items while held up")
    }

    @Test func blockedSumMatchesANaiveSumAndIgnoresTheThreadCount() {
        var rng = SplitMix64(seed: 11)
        let values = (0..<100_003).map { _ in rng.uniform() * 2 - 1 }
        var naive = 0.0
        for v in values { naive += v }
        let sums = [1, 2, 3, 8].map { threads in
            withThreads(threads) {
                values.withUnsafeBufferPointer { v in
                    Parallel.blockedSum(v.count, block: 1000) { r in
                        var s = 0.0
                        for i in r { s += v[i] }
                        return s
                    }
                }
            }
        }
        #expect(abs(sums[0] - naive) <= 1e-9 * Double(values.count))
        #expect(sums.allSatisfy { $0 == sums[0] }, "bit-identical across thread counts: \(sums)")
        #expect(Parallel.blockedSum(0) { _ in 1 } == 0)
    }

    /// `Parallel.zero` clears every element of every tensor, and nothing outside them, whatever
    /// the thread count: sizes 0, 1, odd, and larger than the 2¹⁶-float grain so chunks cross
    /// tensor boundaries.
    @Test(arguments: [1, 2, 3])
    func zeroClearsEveryTensorExactly(threads: Int) {
        let sizes = [0, 1, 70_001, 3, 131_072, 5, 200_003]
        let tensors = sizes.map { Tensor(shape: [$0], repeating: -1.5) }
        let guardTensor = Tensor(shape: [17], repeating: 2)
        withThreads(threads) { Parallel.zero(tensors) }
        for (t, n) in zip(tensors, sizes) {
            #expect(t.array.allSatisfy { $0 == 0 && $0.sign == .plus }, "size \(n), \(threads) threads")
        }
        #expect(guardTensor.array.allSatisfy { $0 == 2 })
        withThreads(threads) { Parallel.zero([]) }
    }

    /// `Parallel.copy` copies every element, bit for bit (NaN payloads and −0 included).
    @Test(arguments: [1, 2, 3])
    func copyIsExact(threads: Int) {
        for n in [0, 1, 65_537, 300_001] {
            let source = Tensor(zeros: [n]), destination = Tensor(shape: [n], repeating: 9)
            for i in 0..<n { source.data[i] = Float(bitPattern: UInt32(truncatingIfNeeded: i &* 2_654_435_761)) }
            withThreads(threads) { Parallel.copy(source, into: destination) }
            #expect((0..<n).allSatisfy { source.data[$0].bitPattern == destination.data[$0].bitPattern }, "\(n) floats, \(threads) threads")
        }
    }
}

/// `Parallel.withThreads` sets the count for its body and restores it, also when the body throws.
@Suite(.serialized) struct ParallelWithThreadsTests {
    struct Stop: Error {}

    @Test func theCountIsRestoredAfterTheBody() throws {
        try ThreadSettings.with(parallel: 2) {
            #expect(Parallel.withThreads(5) { Parallel.threads } == 5)
            #expect(Parallel.threads == 2)
            #expect(throws: Stop.self) { try Parallel.withThreads(3) { throw Stop() } }
            #expect(Parallel.threads == 2)
            Parallel.withThreads(4) { Parallel.withThreads(1) { #expect(Parallel.threads == 1) }; #expect(Parallel.threads == 4) }
            #expect(Parallel.threads == 2)
        }
    }
}
