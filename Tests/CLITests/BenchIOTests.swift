import Foundation
import Testing

/// `dsan bench io` on a tiny synthetic cohort: it runs, reports positive rates, one stall per
/// step, and removes its temporary cohort.
@Suite struct BenchIOTests {
    @Test func tinySyntheticCohortJSON() throws {
        let result = try dsan("bench", "io", "--cases", "2", "--size", "16x32x32", "--steps", "3", "--step-seconds", "0.01",
                              "--passes", "1", "--compute", "sleep", "--json")
        #expect(result.status == 0, "\(result.stderr)")
        let r = try #require(JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any])
        #expect(r["cases"] as? Int == 2 && r["synthetic"] as? Bool == true)
        #expect(r["size"] as? [Int] == [16, 32, 32])
        for kind in ["raw", "decode"] {
            let t = try #require(r[kind] as? [String: Any])
            for pass in ["cold", "warmMedian"] {
                let p = try #require(t[pass] as? [String: Any])
                #expect((p["casesPerSecond"] as? Double ?? 0) > 0, "\(kind) \(pass)")
                #expect((p["fileMBPerSecond"] as? Double ?? 0) > 0, "\(kind) \(pass)")
            }
        }
        let prefetch = try #require(r["prefetch"] as? [String: Any])
        #expect((prefetch["stalls"] as? [Double])?.count == 3)
        #expect((prefetch["stallFraction"] as? Double).map { $0 >= 0 && $0 <= 1 } == true)
        let directory = try #require(r["directory"] as? String)
        #expect(!FileManager.default.fileExists(atPath: directory))
    }

    @Test func textOnAGivenDirectory() throws {
        let dir = try scratchDirectory("bench-io")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        #expect(try dsan("synth", "--out", dir, "--cases", "3", "--size", "16x32x32").status == 0)
        let result = try dsan("bench", "io", "--data", dir, "--steps", "2", "--step-seconds", "0", "--passes", "1")
        #expect(result.status == 0, "\(result.stderr)")
        let lines = result.stdout.split(separator: "\n", maxSplits: 1).map(String.init)
        #expect(lines.first?.hasPrefix("CPU ") == true && lines.first?.contains(" core ") == true, "\(result.stdout)")
        #expect(lines.last?.hasPrefix("\(dir): 3 case(s) at 16x32x32 in 1 shard(s)") == true, "\(result.stdout)")
        #expect(result.stdout.contains("stall, later steps"))
        #expect(FileManager.default.fileExists(atPath: dir))    // a given directory is kept
    }

    @Test func badFlagsNameTheFlag() throws {
        let negative = try dsan("bench", "io", "--step-seconds=-1")
        #expect(negative.status != 0)
        #expect(negative.stderr.contains("--step-seconds must be a non-negative number, got -1.0"), "\(negative.stderr)")
        let missing = try dsan("bench", "io", "--data", "/nonexistent/shards")
        #expect(missing.status != 0)
        #expect(missing.stderr.contains("/nonexistent/shards: no such directory"), "\(missing.stderr)")
    }
}

/// `dsan bench vector`: runs every supported level and names a bad flag.
@Suite struct BenchVectorTests {
    @Test func tableHasEveryKernelAtTheBaseline() throws {
        let result = try dsan("bench", "vector", "--elements", "1000", "--repetitions", "1")
        #expect(result.status == 0, "\(result.stderr)")
        for kernel in ["relu forward, in place", "relu backward", "add + relu", "batch norm normalize",
                       "batch norm input gradient", "adam"] {
            #expect(result.stdout.contains(kernel + String(repeating: " ", count: 30 - kernel.count) + "baseline"), "\(result.stdout)")
        }
    }

    @Test func badFlagsNameTheFlag() throws {
        let zero = try dsan("bench", "vector", "--elements", "0")
        #expect(zero.status != 0)
        #expect(zero.stderr.contains("--elements must be at least 1, got 0"), "\(zero.stderr)")
    }
}
