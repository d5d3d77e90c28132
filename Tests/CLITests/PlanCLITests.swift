import Foundation
import Testing

/// `dsan plan`: the JSON it prints, the profile round trip, and the one line a bad flag gives.
@Suite struct PlanCLITests {
    /// A hand-written profile, so the figures do not depend on this machine's load.
    static func writeProfile(_ path: String) throws {
        let json = #"{"machine":"test","date":"2026-01-01T00:00:00Z","threads":2,"sgemmGFLOPS":100,"efficiency":0.5,"adamSecondsPerMillionParameters":0.002}"#
        try Data(json.utf8).write(to: URL(fileURLWithPath: path))
    }

    static func object(_ text: String) throws -> [String: Any] {
        try #require(JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any])
    }

    @Test func jsonForThePapersSetting() throws {
        let dir = try scratchDirectory("plan")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try Self.writeProfile(dir + "/p.json")
        let result = try dsan("plan", "--ranks", "4", "--profile", dir + "/p.json", "--network", "10gbe", "--json")
        #expect(result.status == 0, "\(result.stderr)")
        let r = try Self.object(result.stdout)
        #expect(r["parameters"] as? Int == 63_470_144)
        #expect(r["smallCollectivesPerStep"] as? Int == 69)          // 33 batch-norm rounds × 2 + losses + 2 gathers
        #expect((r["buckets"] as? [Any])?.count == 10)                 // 254 MB in buckets of ≥ 25 MiB
        #expect(r["trainingGFLOPS"] as? Double == 50)                  // sgemm 100 GFLOP/s × efficiency 0.5
        let e = try #require(r["estimate"] as? [String: Any])
        #expect(e["stepsPerEpoch"] as? Int == 88)                      // ⌈1749 / 20⌉
        let step = try #require(e["step"] as? [String: Any])
        #expect(step["ranks"] as? Int == 4 && step["share"] as? Int == 5)
        let comm = try #require(step["gradientAllreduce"] as? Double)
        #expect(comm > 0)
        let epoch = try #require(e["epochOverlapped"] as? Double), cv = try #require(e["crossValidationOverlapped"] as? Double)
        #expect(abs(cv - 5 * 2 * 20 * epoch) < 1e-6 * cv)
        #expect(r["searchedUpTo"] as? Int == 1024)
    }

    @Test func oneRankHasNoCommunicationAndSweepListsPowersOfTwo() throws {
        let dir = try scratchDirectory("plan1")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try Self.writeProfile(dir + "/p.json")
        let result = try dsan("plan", "--ranks", "1", "--profile", dir + "/p.json", "--sweep", "--json")
        #expect(result.status == 0, "\(result.stderr)")
        let r = try Self.object(result.stdout)
        let step = try #require((r["estimate"] as? [String: Any])?["step"] as? [String: Any])
        #expect(step["gradientAllreduce"] as? Double == 0 && step["syncCollectives"] as? Double == 0)
        let ranks = (r["sweep"] as? [[String: Any]])?.compactMap { ($0["step"] as? [String: Any])?["ranks"] as? Int }
        #expect(ranks == [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024])
        // Text output names the hiding rank (or says it hides everywhere).
        let text = try dsan("plan", "--ranks", "8", "--profile", dir + "/p.json")
        #expect(text.status == 0, "\(text.stderr)")
        #expect(text.stdout.contains("communication stops hiding behind backward at R = ") || text.stdout.contains("communication hides behind backward"))
        #expect(text.stdout.contains("88 steps per epoch"))
    }

    @Test func savedProfileIsReadBack() throws {
        let dir = try scratchDirectory("plan-save")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        // The contention probe with 2 one-thread copies (the smallest model, a small volume).
        let save = try dsan("plan", "--save-profile", dir + "/node.json", "--threads-per-rank", "1", "--contention-copies", "2",
                            "--width", "4", "--probe-size", "16x32x32", "--probe-seconds", "1")
        #expect(save.status == 0, "\(save.stderr)")
        let p = try Self.object(try String(contentsOfFile: dir + "/node.json", encoding: .utf8))
        #expect(p["threads"] as? Int == 1)
        #expect((p["sgemmGFLOPS"] as? Double ?? 0) > 0 && (p["adamSecondsPerMillionParameters"] as? Double ?? 0) > 0)
        let contention = try #require(p["contention"] as? [String: Any])
        #expect(contention["copies"] as? Int == 2 && contention["threadsPerCopy"] as? Int == 1)
        #expect((contention["slowdown"] as? Double ?? 0) > 0 && (contention["spread"] as? Double ?? -1) >= 0)
        let plan = try dsan("plan", "--ranks", "2", "--profile", dir + "/node.json", "--json")
        #expect(plan.status == 0, "\(plan.stderr)")
        #expect((try Self.object(plan.stdout))["profileSource"] as? String == dir + "/node.json")
    }

    @Test func helpListsTheNewCommands() throws {
        let top = try dsan("--help")
        #expect(top.stdout.contains("  plan                    Estimate time per step, epoch and cross-validation on\n"), "\(top.stdout)")
        let bench = try dsan("bench", "--help")
        #expect(bench.stdout.contains("  io                      Shard read + decode throughput, raw file reads, and\n"), "\(bench.stdout)")
        let plan = try dsan("plan", "--help")
        #expect(plan.stdout.contains("USAGE: dsan plan <options>"))
        for flag in ["--ranks", "--threads-per-rank", "--size", "--cases", "--epochs", "--batch", "--folds", "--latency-us",
                     "--bandwidth-gbps", "--network", "--profile", "--save-profile", "--json", "--ranks-per-node", "--validation",
                     "--drift-cv", "--one-rank-step", "--two-rank-step", "--contention-copies", "--probe-size", "--probe-seconds"] {
            #expect(plan.stdout.contains("  \(flag) "), "\(flag)")
        }
    }

    @Test(arguments: [
        (["plan"], "--ranks is required"),
        (["plan", "--ranks", "0"], "--ranks must be at least 1, got 0"),
        (["plan", "--ranks", "2", "--network", "wifi"], "--network must be one of 10gbe, 1gbe, infiniband, got 'wifi'"),
        (["plan", "--ranks", "2", "--bandwidth-gbps", "0"], "--bandwidth-gbps must be positive, got 0.0"),
        (["plan", "--ranks", "2", "--efficiency", "11"], "--efficiency must be in (0, 10], got 11.0"),
        (["plan", "--ranks", "2", "--folds", "1"], "--folds must be at least 2, got 1"),
        (["plan", "--ranks", "2", "--profile", "/nonexistent/p.json"], "--profile /nonexistent/p.json: cannot read the file"),
        (["plan", "--ranks", "2", "--ranks-per-node", "0"], "--ranks-per-node must be at least 1, got 0"),
        (["plan", "--ranks", "2", "--validation", "rank1"], "The value 'rank1' is invalid for '--validation <validation>'"),
        (["plan", "--ranks", "2", "--drift-cv", "nan"], "--drift-cv must be a non-negative number, got nan"),
        (["plan", "--ranks", "2", "--drift-cv", "0.1", "--two-rank-step", "5"], "give either --drift-cv or --two-rank-step"),
        (["plan", "--ranks", "2", "--contention-copies", "0", "--save-profile", "/tmp/x.json"], "--contention-copies must be at least 1, got 0"),
    ])
    func badFlagsNameTheFlag(arguments: [String], message: String) throws {
        let result = try run(dsanPath, arguments)
        #expect(result.status != 0)
        #expect(result.stderr.contains(message), "\(result.stderr)")
    }
}
