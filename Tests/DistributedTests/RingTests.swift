import Foundation
import NumericalTesting
import Testing

/// One launch of `dsan-ring-checks`: each rank's line per check.
struct RingJob {
    var status: Int32
    var output: String
    /// check name → rank → "pass" or the failure text.
    var results: [String: [Int: String]] = [:]

    init(_ executable: String, _ arguments: [String]) throws {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        let out = Pipe()
        process.standardOutput = out
        process.standardError = out
        process.standardInput = FileHandle.nullDevice
        try process.run()
        let data = out.fileHandleForReading.readDataToEndOfFile()   // before waiting: a full pipe blocks
        process.waitUntilExit()
        status = process.terminationStatus
        output = String(decoding: data, as: UTF8.self)
        // "rank r of R: pass NAME" / "rank r of R: FAIL NAME: detail"
        for line in output.split(separator: "\n") {
            guard line.hasPrefix("rank "), let colon = line.firstIndex(of: ":"),
                  let r = Int(line.dropFirst(5).prefix { $0.isNumber }) else { continue }
            let rest = line[line.index(colon, offsetBy: 2)...]
            if rest.hasPrefix("pass ") {
                results[String(rest.dropFirst(5)), default: [:]][r] = "pass"
            } else if rest.hasPrefix("FAIL ") {
                let body = rest.dropFirst(5)
                let name = body.range(of: ": ").map { String(body[..<$0.lowerBound]) } ?? String(body)
                results[name, default: [:]][r] = String(body)
            }
        }
    }
}

/// Every check the rank side runs on `ranks` ranks, by name: a check missing from the output
/// fails the test as surely as one that reports a difference.
func expectedChecks(ranks: Int) -> [String] {
    let lengths = Array(Set([0, 1, max(0, ranks - 1), ranks + 1, 1001, 3_000_001])).sorted()
    var names = lengths.map { "ring equals MPI_Allreduce, length \($0)" }
    names += ["ring of random floats within rounding of MPI_Allreduce",
              "ring of pieces equals MPI_Allreduce of their concatenation",
              "gradient buckets equal MPI_Allreduce of every tensor"]
    if ranks > 1 { names += ["ring refuses the same length in different pieces", "ring refuses different lengths"] }
    return names + ["final barrier"]
}

/// Asserts that every rank 0..<ranks passed every check.
func expectEveryRankPassedEveryCheck(_ job: RingJob, ranks: Int) {
    #expect(job.status == 0, "exit \(job.status)\n\(job.output)")
    for name in expectedChecks(ranks: ranks) {
        let byRank = job.results[name] ?? [:]
        for r in 0..<ranks {
            #expect(byRank[r] == "pass", "\(name) on rank \(r) of \(ranks): \(byRank[r] ?? "not reported")\n\(job.output)")
        }
        #expect(byRank.count == ranks, "\(name): reported by \(byRank.count) ranks, expected \(ranks)")
    }
}

/// The ring all-reduce, gradient buckets and the layout checks across real ranks (DESIGN.md §4).
@Suite(.serialized) struct RingAllreduceTests {
    let checks = productsDirectory(holding: "dsan-ring-checks").appendingPathComponent("dsan-ring-checks").path

    @Test func singletonWithoutMpirun() throws {
        expectEveryRankPassedEveryCheck(try RingJob(checks, []), ranks: 1)
    }

    @Test(.enabled(if: mpirunPath != nil, "needs mpirun (openmpi-bin)"), arguments: [1, 2, 3])
    func underMpirun(ranks: Int) throws {
        expectEveryRankPassedEveryCheck(try RingJob(mpirunPath!, mpirunFlags + ["-np", "\(ranks)", checks]), ranks: ranks)
    }
}
