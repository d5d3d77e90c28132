import Foundation
import Testing

/// `dsan bench allreduce` on 2 ranks: the size rows and the model's gradient buckets, reduced in
/// place and packed, all timed; bad flags are refused before MPI starts.
@Suite struct BenchAllreduceTests {
    @Test(.enabled(if: mpirunPath != nil, "needs mpirun (openmpi-bin)"))
    func twoRanksReportSizesAndGradientBuckets() throws {
        let result = try run(mpirunPath!, mpirunFlags + ["-np", "2", dsanPath, "bench", "allreduce", "--sizes", "0.5,1",
                                                       "--repetitions", "1", "--gradient-width", "4", "--bucket-mb", "0.02", "--json"])
        #expect(result.status == 0, "\(result.stderr)")
        let r = try #require(JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any])
        #expect(r["ranks"] as? Int == 2)
        let rows = try #require(r["rows"] as? [[String: Any]])
        #expect(rows.map { $0["megabytes"] as? Double } == [0.5, 1])
        for row in rows {
            #expect((row["ringSeconds"] as? Double ?? 0) > 0 && (row["mpiSeconds"] as? Double ?? 0) > 0)
        }
        let g = try #require(r["gradients"] as? [String: Any])
        #expect(g["width"] as? Int == 4)
        // Width 4 has about 0.26 MB of gradients: several buckets of 0.02 MB.
        #expect((g["buckets"] as? Int ?? 0) > 1)
        #expect((g["megabytes"] as? Double ?? 0) > 0.1)
        #expect((g["inPlaceSeconds"] as? Double ?? 0) > 0 && (g["packedSeconds"] as? Double ?? 0) > 0)
        // The links: the small all-reduce idle, the background rings (repetitions + 1), and either
        // the loaded median or a note saying why there is none; the network fitted to the rows.
        let link = try #require(r["link"] as? [String: Any])
        #expect((link["idleSmallSeconds"] as? Double ?? 0) > 0)
        #expect(link["loadedRings"] as? Int == 2)
        if (link["loadedRounds"] as? Int ?? 0) > 0 {
            #expect((link["loadedSmallSeconds"] as? Double ?? 0) > 0)
        } else {
            #expect((link["note"] as? String ?? "").contains("queueing not measured"))
        }
        // Two sizes this small can time alike on shared memory: then no line rises and a note says so.
        if let network = link["network"] as? [String: Any] {
            #expect((network["bandwidth"] as? Double ?? 0) > 0)
        } else {
            #expect((link["note"] as? String ?? "").contains("do not grow with size"), "\(link)")
        }
    }

    /// --save-network writes what `dsan plan --network-profile` reads, and the plan prints it.
    @Test(.enabled(if: mpirunPath != nil, "needs mpirun (openmpi-bin)"))
    func savedNetworkIsReadByThePlan() throws {
        let dir = try scratchDirectory("bench-allreduce-network")
        let path = dir + "/net.json"
        // Three repetitions (medians): with one, a 1 MB all-reduce descheduled while other suites
        // ran beside this one once took longer than the 32 MB one, and no bandwidth could be fitted.
        let result = try run(mpirunPath!, mpirunFlags + ["-np", "2", dsanPath, "bench", "allreduce", "--sizes", "1,32",
                                                       "--repetitions", "3", "--gradient-width", "0", "--bucket-mb", "2",
                                                       "--save-network", path])
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.stdout.contains("fitted network (ring means, loaded mean): α"), "\(result.stdout)")
        #expect(result.stderr.contains("wrote the fitted network to \(path)"), "\(result.stderr)")
        let plan = try dsan("plan", "--ranks", "2", "--size", "16x32x32", "--width", "4", "--batch", "2",
                            "--efficiency", "1", "--network-profile", path, "--json")
        #expect(plan.status == 0, "\(plan.stderr)")
        let r = try #require(JSONSerialization.jsonObject(with: Data(plan.stdout.utf8)) as? [String: Any])
        let network = try #require(r["network"] as? [String: Any])
        #expect((network["name"] as? String ?? "").hasPrefix("measured by dsan bench allreduce on 2 ranks"))
        let missing = try dsan("plan", "--ranks", "2", "--network-profile", dir + "/none.json")
        #expect(missing.status != 0 && missing.stderr.contains("--save-network"), "\(missing.stderr)")
    }

    /// One rank has no links to measure: --save-network says so instead of writing an empty file.
    @Test func savingTheNetworkNeedsTwoRanks() throws {
        let path = try scratchDirectory("bench-allreduce-one-rank") + "/net.json"
        let result = try dsan("bench", "allreduce", "--sizes", "1,2", "--repetitions", "1", "--gradient-width", "0",
                              "--save-network", path)
        #expect(result.status != 0)
        #expect(result.stderr.contains("no network to write to \(path)") && result.stderr.contains("at least 2 ranks"), "\(result.stderr)")
        #expect(!FileManager.default.fileExists(atPath: path))
    }

    @Test func savingTheNetworkNeedsTwoSizes() throws {
        let result = try dsan("bench", "allreduce", "--sizes", "16", "--save-network", "/tmp/never-written.json")
        #expect(result.status != 0)
        #expect(result.stderr.contains("at least two different --sizes"), "\(result.stderr)")
    }

    @Test func badFlagsNameTheFlag() throws {
        let result = try dsan("bench", "allreduce", "--gradient-width=-1")
        #expect(result.status != 0)
        #expect(result.stderr.contains("--gradient-width"), "\(result.stderr)")
    }
}
