import Benchmarks
import Testing
@testable import Tensor

/// The model behind `dsan bench granularity`: a region of k equal items on w workers takes at
/// least ⌈k/w⌉ items' time at N threads, the serial code keeps its 1-thread time, and calls pair
/// by site and order.
@Suite struct GranularityTests {
    typealias Call = RegionProfile.Call

    @Test func aRegionTakesItsBusiestWorkersItems() throws {
        // At 1 thread: site a (two calls, 1 s and 2 s), site b (one call, 4 s), 0.5 s serial in all.
        let one = [Call(site: "a", items: 24, workers: 1, seconds: 1, gapSeconds: 0.1),
                   Call(site: "b", items: 8, workers: 1, seconds: 4, gapSeconds: 0.2),
                   Call(site: "a", items: 24, workers: 1, seconds: 2, gapSeconds: 0.1)]
        // At 16 threads: a's calls cut into 24 items on 16 workers (two items for the busiest:
        // 2/24 of its time, against 1/16), then 1000 elements on 16; b into 8 items on 8 workers.
        let many = [Call(site: "a", items: 24, workers: 16, seconds: 9, gapSeconds: 9),
                    Call(site: "b", items: 8, workers: 8, seconds: 9, gapSeconds: 9),
                    Call(site: "a", items: 1000, workers: 16, seconds: 9, gapSeconds: 9)]
        let bound = try GranularityBenchmark.bound(oneThread: one, tail: 0.1, many: many, threads: 16)
        #expect(bound.threads == 16)
        #expect(abs(bound.serialSeconds - 0.5) < 1e-12)
        let a = try #require(bound.sites.first { $0.site == "a" }), b = try #require(bound.sites.first { $0.site == "b" })
        let aLeast = 1.0 * 2 / 24 + 2.0 * 63 / 1000, bLeast = 4.0 / 8
        #expect(abs(a.boundSeconds - aLeast) < 1e-12 && abs(b.boundSeconds - bLeast) < 1e-12)
        #expect(a.calls == 2 && a.itemsMin == 24 && a.itemsMax == 1000 && a.workersMin == 16 && a.workersMax == 16)
        #expect(abs(a.efficiency - (3.0 / 16) / aLeast) < 1e-12 && abs(b.efficiency - 0.5) < 1e-12)
        #expect(abs(b.lostSeconds - (0.5 - 0.25)) < 1e-12 && abs(a.gapSeconds - 0.2) < 1e-12)
        // The most time lost first; the step's least time is the sites' and the serial code's.
        #expect(bound.sites.map(\.site) == ["b", "a"])
        #expect(abs(bound.boundSeconds - (aLeast + bLeast + 0.5)) < 1e-12)
        #expect(abs(bound.speedup - 7.5 / (aLeast + bLeast + 0.5)) < 1e-12)
        #expect(abs(bound.efficiency - bound.speedup / 16) < 1e-12)
    }

    /// A loop that ran on one worker gains nothing; one cut into as many equal items as threads
    /// gains N; no site ever allows more than N.
    @Test func oneWorkerGainsNothingAndNoneGainsMoreThanN() throws {
        let one = [Call(site: "s", items: 1, workers: 1, seconds: 1, gapSeconds: 0),
                   Call(site: "p", items: 64, workers: 1, seconds: 1, gapSeconds: 0)]
        let many = [Call(site: "s", items: 5, workers: 1, seconds: 0, gapSeconds: 0),
                    Call(site: "p", items: 64, workers: 8, seconds: 0, gapSeconds: 0)]
        let bound = try GranularityBenchmark.bound(oneThread: one, tail: 0, many: many, threads: 8)
        let s = try #require(bound.sites.first { $0.site == "s" }), p = try #require(bound.sites.first { $0.site == "p" })
        #expect(s.boundSeconds == 1 && abs(s.efficiency - 1.0 / 8) < 1e-12)
        #expect(abs(p.boundSeconds - 1.0 / 8) < 1e-12 && abs(p.efficiency - 1) < 1e-12 && abs(p.lostSeconds) < 1e-12)
        #expect(bound.speedup > 1 && bound.speedup <= 8)
    }

    /// Steps that opened a site's regions a different number of times cannot be paired: the
    /// error names the site and both counts.
    @Test func differentStepsAreRefused() {
        let one = [Call(site: "NN/X.swift:10", items: 4, workers: 1, seconds: 1, gapSeconds: 0)]
        let many = [Call(site: "NN/X.swift:10", items: 4, workers: 4, seconds: 1, gapSeconds: 0),
                    Call(site: "NN/X.swift:10", items: 4, workers: 4, seconds: 1, gapSeconds: 0)]
        #expect {
            try GranularityBenchmark.bound(oneThread: one, tail: 0, many: many, threads: 4)
        } throws: { error in
            "\(error)".contains("NN/X.swift:10 opened 1 regions in the 1-thread step and 2 at 4 threads")
        }
    }
}
