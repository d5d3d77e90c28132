import Foundation
import NumericalTesting
import Testing
@testable import MPI

/// The result of one launched job.
struct JobResult {
    var status: Int32
    var stdout: String
    var stderr: String
}

/// Runs `executable arguments` to completion and captures its output.
func run(_ executable: String, _ arguments: [String], environment: [String: String] = [:]) throws -> JobResult {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: executable)
    process.arguments = arguments
    var env = ProcessInfo.processInfo.environment
    for (k, v) in environment { env[k] = v }
    process.environment = env
    let out = Pipe(), err = Pipe()
    process.standardOutput = out
    process.standardError = err
    process.standardInput = FileHandle.nullDevice
    try process.run()
    // Read before waiting so a full pipe cannot block the child.
    let o = out.fileHandleForReading.readDataToEndOfFile()
    let e = err.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    return JobResult(status: process.terminationStatus,
                     stdout: String(decoding: o, as: UTF8.self),
                     stderr: String(decoding: e, as: UTF8.self))
}

/// Asserts that every rank 0..<ranks printed its success line exactly once and nothing failed.
func expectEveryRankPassed(_ result: JobResult, ranks: Int) {
    #expect(result.status == 0, "exit \(result.status)\nstdout:\n\(result.stdout)\nstderr:\n\(result.stderr)")
    let lines = result.stdout.split(separator: "\n").map(String.init)
    #expect(!lines.contains { $0.contains("FAILED") }, "\(result.stdout)")
    for r in 0..<ranks {
        let mine = lines.filter { $0.hasPrefix("rank \(r) of \(ranks): ") && $0.contains("checks passed") }
        #expect(mine.count == 1, "rank \(r) of \(ranks) did not report exactly once:\n\(result.stdout)\n\(result.stderr)")
    }
    let reported = lines.filter { $0.contains("checks passed") }.count
    #expect(reported == ranks, "\(reported) ranks reported, expected \(ranks)")
}

@Suite(.serialized) struct MultiRankTests {
    let checks = productsDirectory(holding: "dsan-mpi-checks").appendingPathComponent("dsan-mpi-checks").path

    @Test func singletonWithoutMpirun() throws {
        let result = try run(checks, [])
        expectEveryRankPassed(result, ranks: 1)
    }

    @Test(.enabled(if: mpirunPath != nil, "needs mpirun (openmpi-bin)"), arguments: [1, 2, 3])
    func collectivesUnderMpirun(ranks: Int) throws {
        let result = try run(mpirunPath!, mpirunFlags + ["-np", "\(ranks)", checks])
        expectEveryRankPassed(result, ranks: ranks)
    }
}

@Suite struct MPIErrorTests {
    @Test func descriptionNamesOperationAndMessage() {
        let e = MPIError(operation: "MPI_Send to rank 9", code: 6, message: "MPI_ERR_RANK: invalid rank")
        #expect(e.description == "MPI_Send to rank 9: MPI_ERR_RANK: invalid rank")
    }
}
