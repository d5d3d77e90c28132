import Foundation
import NumericalTesting
import Testing
@testable import Tensor

/// Serialised with itself: `RegionProfile` is process-wide (it times only the thread that started
/// it, so other suites' regions on other threads do not reach it).
@Suite(.serialized) struct RegionProfileTests {
    /// Each outermost region is booked to its source line with its time and the serial gap before
    /// it; nested regions and other threads' regions are inside their caller's time; off, nothing
    /// is recorded.
    @Test func booksRegionsToTheirSourceLines() {
        func pause(_ ms: Double) { Thread.sleep(forTimeInterval: ms / 1000) }
        let (entries, tail) = ThreadSettings.with(parallel: 2) { () -> ([RegionProfile.Entry], Double) in
            Parallel.forEach(4) { _ in }   // before start: not recorded
            RegionProfile.start()
            for _ in 0..<3 {
                pause(5)   // the gap before the next region
                Parallel.forEach(2) { _ in pause(10) }
            }
            Parallel.forEachWorker(2) { _, _ in
                Parallel.forEach(8) { _ in }   // nested: part of the outer region
            }
            let other = Thread { Parallel.forEach(8) { _ in } }   // another thread: not recorded
            other.start()
            while !other.isFinished { pause(1) }
            pause(3)
            return RegionProfile.stop()
        }
        let sites = entries.map(\.site)
        let file = "TensorTests/RegionProfileTests.swift"
        #expect(entries.count == 2, "\(sites)")
        let sleeper = try? #require(entries.first { $0.calls == 3 })
        #expect(sleeper?.site.hasPrefix(file + ":") == true, "\(sites)")
        #expect((sleeper?.seconds ?? 0) >= 0.030 && (sleeper?.gapSeconds ?? 0) >= 0.015, "\(String(describing: sleeper))")
        let outer = entries.first { $0.calls == 1 }
        #expect(outer?.site.hasPrefix(file + ":") == true && outer?.site != sleeper?.site, "\(sites)")
        #expect(tail >= 0.003)
        // Off again: regions cost nothing and record nothing.
        Parallel.forEach(4) { _ in }
        #expect(RegionProfile.stop().entries.map(\.calls) == entries.map(\.calls))
    }

    /// A region whose second share takes 120 ms longer than the first books about 120 ms of
    /// waiting (worker 0 idle while worker 1 works); an even one books little; a nested region
    /// inside a share books nothing of its own. (The pauses are three times those of before, the
    /// bounds too: a sleeping thread's wake-up is late by a few milliseconds on a loaded machine,
    /// which put the even region's 15 ms bound out of reach while the whole suite ran.)
    @Test func booksTheWorkersWaitingInsideARegion() {
        func pause(_ ms: Double) { Thread.sleep(forTimeInterval: ms / 1000) }
        let entries = ThreadSettings.with(parallel: 2) { () -> [RegionProfile.Entry] in
            RegionProfile.start()
            Parallel.forEachWorker(2) { t, _ in pause(t == 1 ? 150 : 30) }
            Parallel.forEachWorker(2) { _, _ in
                pause(90)
                Parallel.forEachWorker(2) { t, _ in pause(t == 1 ? 60 : 0) }   // nested: inline
            }
            return RegionProfile.stop().entries
        }
        #expect(entries.count == 2)
        // Both take about 150 ms; the uneven one opened on the earlier line.
        func line(_ e: RegionProfile.Entry) -> Int { Int(e.site.split(separator: ":").last ?? "") ?? 0 }
        let byLine = entries.sorted { line($0) < line($1) }
        let uneven = byLine.first, even = byLine.last
        // Uneven: wall ≈ 150 ms, worker 0 busy ≈ 30 ms → ≈ 120 ms waited.
        #expect((uneven?.waitSeconds ?? 0) >= 0.105 && (uneven?.waitSeconds ?? 1) <= 0.180, "\(entries)")
        // Even (each share 150 ms, its nested region run inline within it): little waiting.
        #expect((even?.waitSeconds ?? 1) < 0.045, "\(entries)")
    }

    /// With `loggingCalls`, each outermost region is kept with the items its loop was cut into and
    /// the workers it engaged, in order (`dsan bench granularity`).
    @Test func logsEachRegionsCut() {
        let calls = ThreadSettings.with(parallel: 4) { () -> [RegionProfile.Call] in
            RegionProfile.start(loggingCalls: true)
            Parallel.forEach(100, grain: 10) { _ in }                        // 100 elements, 4 workers
            Parallel.forEach(20, grain: 10) { _ in }                         // 20 elements, 2 workers
            Parallel.forEachWorker(3) { _, _ in Parallel.forEach(64) { _ in } }   // 3 items; nested: not logged
            Parallel.forEachWorkerDynamically(10, grain: 3) { _, _ in }      // 4 units of 3, 4 workers
            Parallel.forEachWorkerDynamically(10, maxWorkers: 2) { _, _ in } // 10 units, at most 2 workers
            _ = RegionProfile.stop()
            return RegionProfile.calls()
        }
        #expect(calls.map(\.items) == [100, 20, 3, 4, 10], "\(calls)")
        #expect(calls.map(\.workers) == [4, 2, 3, 4, 2], "\(calls)")
        #expect(calls.allSatisfy { $0.site.hasPrefix("TensorTests/RegionProfileTests.swift:") && $0.seconds >= 0 }, "\(calls)")
        // Without loggingCalls nothing is logged.
        RegionProfile.start()
        Parallel.forEach(8) { _ in }
        _ = RegionProfile.stop()
        #expect(RegionProfile.calls().isEmpty)
    }
}
