import Testing
@testable import BLAS

/// `BLASStartUp.carryOut`: what the process does with each step of `BLASCoreSelection` (the
/// restart itself is replaced by a closure; `BLASCoreCLITests` runs the real one).
@Suite(.serialized) struct StartUpTests {
    static func report(_ core: String, _ reason: String) -> BLASKernelReport {
        BLASKernelReport(cpu: "test CPU", extensions: "AVX2", openblas: "OpenBLAS 0.3.21", core: core,
                         chosenBy: .dsan, reason: reason)
    }

    /// Runs `body`, then puts back the report the process started with.
    func keepingReport(_ body: () throws -> Void) rethrows {
        let saved = BLASStartUp.report
        defer { _ = try? BLASStartUp.carryOut(.proceed(saved, warning: nil), restart: { _ in "" }) }
        try body()
    }

    @Test func proceedSetsTheReportAndPassesTheWarningOn() throws {
        try keepingReport {
            let chosen = Self.report("Haswell", "chosen")
            var restarted = false
            let warning = try BLASStartUp.carryOut(.proceed(chosen, warning: "careful"), restart: { _ in restarted = true; return "" })
            #expect(warning == "careful" && !restarted)
            #expect(BLASStartUp.report == chosen && BLASStartUp.line == chosen.line)
            #expect(try BLASStartUp.carryOut(.proceed(chosen, warning: nil), restart: { _ in "" }) == nil)
        }
    }

    @Test func aFailedRestartCarriesOnWithTheFallbackAndSaysWhy() throws {
        try keepingReport {
            let fallback = Self.report("Prescott", "OpenBLAS's own choice")
            var asked: [String: String?] = [:]
            let warning = try BLASStartUp.carryOut(.restart(environment: ["OPENBLAS_CORETYPE": "Haswell", "X": nil], ifRestartFails: fallback),
                                                   restart: { asked = $0; return "Permission denied" })
            #expect(asked == ["OPENBLAS_CORETYPE": "Haswell", "X": nil])
            #expect(warning == "could not restart to change the OpenBLAS core (/proc/self/exe: Permission denied); OpenBLAS's own choice")
            #expect(BLASStartUp.report == fallback)
        }
    }

    @Test func aFailedRestartWithoutAFallbackIsAnErrorThatSaysWhatToSet() {
        keepingReport {
            let before = BLASStartUp.report
            #expect(throws: BLASStartUpError.self) {
                try BLASStartUp.carryOut(.restart(environment: [:], ifRestartFails: nil), restart: { _ in "No such file or directory" })
            }
            #expect(BLASStartUp.report == before)
            let error = BLASStartUpError(marker: "fallback:Haswell:Zen:wrong", why: "No such file or directory")
            #expect(error.description == "the OpenBLAS kernels failed dsan's check (fallback:Haswell:Zen:wrong) and dsan could not restart itself with OpenBLAS's own choice (/proc/self/exe: No such file or directory); set OPENBLAS_CORETYPE to a core that works, e.g. Haswell or Prescott")
        }
    }
}
