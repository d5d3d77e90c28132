import Foundation
import Testing

/// The BLAS core report of `dsan bench step` (table and JSON): a core the user sets wins and is
/// named as theirs; without one, the report names the core dsan or OpenBLAS chose and why.
@Suite struct BLASCoreCLITests {
    static let tinyStep = ["bench", "step", "--size", "16x32x32", "--width", "2", "--repetitions", "1", "--warmup", "0", "--threads", "1"]

    func blas(_ result: CommandResult) throws -> [String: String] {
        let r = try #require(JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any], "\(result.stdout)")
        return try #require(r["blas"] as? [String: String])
    }

    @Test func theUsersCoreIsReportedAsTheirsAndKept() throws {
        let result = try run(dsanPath, Self.tinyStep + ["--json"], environment: ["OPENBLAS_CORETYPE": "Prescott"])
        #expect(result.status == 0, "\(result.stderr)")
        let b = try blas(result)
        #expect(b["core"] == "Prescott" && b["chosenBy"] == "user", "\(b)")
        #expect(b["reason"]?.hasPrefix("OPENBLAS_CORETYPE=Prescott") == true, "\(b)")
        let table = try run(dsanPath, Self.tinyStep, environment: ["OPENBLAS_CORETYPE": "Prescott"])
        #expect(table.stdout.split(separator: "\n").first?.contains("core Prescott, chosen by user: OPENBLAS_CORETYPE=Prescott") == true, "\(table.stdout)")
    }

    /// The report names the vector level of dsan's own kernels too: the widest this CPU has, or
    /// the one `DSAN_SIMD` set, with what the CPU has (table and JSON).
    @Test func theReportNamesDsansOwnVectorLevel() throws {
        let widest = try run(dsanPath, Self.tinyStep + ["--json"], environment: ["DSAN_SIMD": ""])   // empty: unset
        #expect(widest.status == 0, "\(widest.stderr)")
        let loops = try #require(try blas(widest)["loops"])
        #expect(loops.hasSuffix(", the widest this CPU has"), "\(loops)")
        let level = String(loops.prefix { $0 != "," })
        #expect(["baseline", "avx2", "avx512"].contains(level), "\(loops)")
        let narrowed = try run(dsanPath, Self.tinyStep, environment: ["DSAN_SIMD": "baseline"])
        #expect(narrowed.status == 0, "\(narrowed.stderr)")
        let expected = level == "baseline" ? "dsan's kernels baseline, set by DSAN_SIMD=baseline (the widest this CPU has)"
            : "dsan's kernels baseline, set by DSAN_SIMD=baseline (this CPU has up to \(level))"
        #expect(narrowed.stdout.split(separator: "\n").first?.hasSuffix(expected) == true, "\(narrowed.stdout.prefix(400))")
    }

    /// Runs `dsan` with neither OPENBLAS_CORETYPE nor DSAN_BLAS_CORE inherited from the test's
    /// environment (an empty OPENBLAS_CORETYPE is not "unset" to OpenBLAS), plus `extra`.
    func runClean(_ executable: String, _ arguments: [String], extra: [String: String] = [:]) throws -> CommandResult {
        var env = ProcessInfo.processInfo.environment
        env["OPENBLAS_CORETYPE"] = nil
        env["DSAN_BLAS_CORE"] = nil
        env.merge(extra) { $1 }
        let dir = try scratchDirectory("blas-core")
        let outURL = URL(fileURLWithPath: dir).appendingPathComponent("stdout")
        let errURL = URL(fileURLWithPath: dir).appendingPathComponent("stderr")
        FileManager.default.createFile(atPath: outURL.path, contents: nil)
        FileManager.default.createFile(atPath: errURL.path, contents: nil)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        process.environment = env
        process.standardInput = FileHandle.nullDevice
        process.standardOutput = try FileHandle(forWritingTo: outURL)
        process.standardError = try FileHandle(forWritingTo: errURL)
        try process.run()
        process.waitUntilExit()
        return CommandResult(status: process.terminationStatus,
                             stdout: try String(contentsOf: outURL, encoding: .utf8),
                             stderr: try String(contentsOf: errURL, encoding: .utf8))
    }

    @Test func withoutItTheReportNamesTheChoiceAndWhy() throws {
        let result = try runClean(dsanPath, Self.tinyStep + ["--json"])
        #expect(result.status == 0, "\(result.stderr)")
        let b = try blas(result)
        let core = try #require(b["core"]), reason = try #require(b["reason"])
        switch b["chosenBy"] {
        case "dsan":
            // OpenBLAS chose an older core: dsan names both, and checked its own.
            #expect(reason.hasPrefix("OpenBLAS chose ") && reason.contains("the CPU supports \(core)") && reason.hasSuffix("sgemm self-check passed"), "\(b)")
        case "OpenBLAS":
            #expect(reason.hasPrefix("OpenBLAS chose \(core)") || reason.contains("failed its check"), "\(b)")
        default:
            Issue.record("chosen by \(b["chosenBy"] ?? "nil") without OPENBLAS_CORETYPE: \(b)")
        }
        #expect(b["extensions"]?.isEmpty == false && b["cpu"]?.isEmpty == false)
    }

    /// A fallback marker (what the restart after a failed self-check sees) keeps OpenBLAS's own
    /// core and warns on standard error.
    @Test func aFallbackIsReportedWithAWarning() throws {
        let result = try runClean(dsanPath, Self.tinyStep + ["--json"],
                                  extra: ["DSAN_BLAS_CORE": "fallback:Cooperlake:Prescott:sgemm NN m=67 n=45 k=129: C[0, 0] = 7.0"])
        #expect(result.status == 0, "\(result.stderr)")
        let b = try blas(result)
        #expect(b["chosenBy"] == "OpenBLAS" && b["reason"]?.hasPrefix("dsan's choice Cooperlake failed its check") == true, "\(b)")
        #expect(result.stderr.contains("dsan: warning: OpenBLAS core Cooperlake failed dsan's check: sgemm NN m=67"), "\(result.stderr)")
    }

    /// Under mpirun every rank makes the same choice as a process started alone (restarting
    /// itself before MPI_Init when the choice is dsan's), and the job runs.
    @Test(.enabled(if: mpirunPath != nil, "needs mpirun (openmpi-bin)"))
    func ranksChooseAsAloneUnderMPIRun() throws {
        let alone = try blas(try runClean(dsanPath, Self.tinyStep + ["--json"]))
        let result = try runClean(mpirunPath!, mpirunFlags + ["-np", "2", dsanPath, "bench", "allreduce", "--sizes", "0.1",
                                                            "--repetitions", "1", "--gradient-width", "0", "--json"])
        #expect(result.status == 0, "\(result.stderr)")
        let r = try #require(JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any], "\(result.stdout)")
        #expect(r["ranks"] as? Int == 2)
        let b = try #require(r["blas"] as? [String: String])
        #expect(b["core"] == alone["core"] && b["chosenBy"] == alone["chosenBy"] && b["reason"] == alone["reason"], "alone \(alone), rank 0 \(b)")
    }

    /// The first line of `dsan train`'s log names the CPU, its extensions and the BLAS core; the
    /// second the memory pages (huge or not, and whether dsan asks).
    @Test func trainLogStartsWithTheCPUAndTheCore() throws {
        let dir = try scratchDirectory("blas-core-train")
        let result = try run(dsanPath, ["train", "--data", trainingData, "--out", dir + "/run", "--width", "2", "--steps", "1", "--epochs", "1"],
                             environment: ["OPENBLAS_CORETYPE": "Prescott"])
        #expect(result.status == 0, "\(result.stderr)")
        let first = try #require(result.stderr.split(separator: "\n").first)
        #expect(first.contains(" CPU ") && first.contains("core Prescott, chosen by user: OPENBLAS_CORETYPE=Prescott"), "\(result.stderr)")
        let second = result.stderr.split(separator: "\n").dropFirst().first.map(String.init) ?? ""
        #expect(second.contains("memory pages: "), "\(result.stderr)")
    }
}
