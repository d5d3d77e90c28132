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
    }

    @Test func badFlagsNameTheFlag() throws {
        let result = try dsan("bench", "allreduce", "--gradient-width=-1")
        #expect(result.status != 0)
        #expect(result.stderr.contains("--gradient-width"), "\(result.stderr)")
    }
}
