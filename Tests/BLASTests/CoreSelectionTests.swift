import Testing
@testable import BLAS
import CPU

/// `SGEMMSelfCheck` against good and broken GEMMs, and `BLASCoreSelection` walked through its
/// restarts with a model of OpenBLAS's loader.
@Suite struct CoreSelectionTests {
    // MARK: The self-check

    /// A plain Float triple loop: a correct GEMM with another summation order than OpenBLAS's.
    static let naive: SGEMMFunction = { ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc in
        for i in 0..<m {
            for j in 0..<n {
                var s: Float = 0
                for p in 0..<k { s += (ta == .none ? a[i * lda + p] : a[p * lda + i]) * (tb == .none ? b[p * ldb + j] : b[j * ldb + p]) }
                c[i * ldc + j] = alpha * s + beta * c[i * ldc + j]
            }
        }
    }

    @Test func selfCheckPassesOpenBLASAndANaiveFloatLoop() throws {
        try SGEMMSelfCheck.verify()
        try SGEMMSelfCheck.verify(Self.naive)
    }

    @Test func selfCheckCatchesASlightlyWrongElement() {
        // One element off by 0.1 (about 0.02 of its value, some 20 times the rounding bound): far
        // below the garbage a wrong kernel writes.
        let wrong: SGEMMFunction = { ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc in
            Self.naive(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
            if m == 256 { c[100 * ldc + 200] += 0.1 }
        }
        #expect(throws: SGEMMSelfCheck.Mismatch.self) { try SGEMMSelfCheck.verify(wrong) }
        do {
            try SGEMMSelfCheck.verify(wrong)
        } catch let e as SGEMMSelfCheck.Mismatch {
            #expect(e.call == "NN m=256 n=256 k=256" && e.row == 100 && e.column == 200)
            #expect(e.description.hasPrefix("sgemm NN m=256 n=256 k=256: C[100, 200] = "))
        } catch { Issue.record("unexpected \(error)") }
    }

    @Test func selfCheckCatchesASkippedEdgeAndNaN() {
        let skipsLastColumn: SGEMMFunction = { ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc in
            Self.naive(ta, tb, m, n - 1, k, alpha, a, lda, b, ldb, beta, c, ldc)
        }
        #expect(throws: SGEMMSelfCheck.Mismatch.self) { try SGEMMSelfCheck.verify(skipsLastColumn) }
        let nan: SGEMMFunction = { ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc in
            Self.naive(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
            if tb == .transpose && ta == .transpose { c[0] = .nan }
        }
        #expect(throws: SGEMMSelfCheck.Mismatch.self) { try SGEMMSelfCheck.verify(nan) }
        let ignoresBeta: SGEMMFunction = { ta, tb, m, n, k, alpha, a, lda, b, ldb, _, c, ldc in
            Self.naive(ta, tb, m, n, k, alpha, a, lda, b, ldb, 0, c, ldc)
        }
        #expect(throws: SGEMMSelfCheck.Mismatch.self) { try SGEMMSelfCheck.verify(ignoresBeta) }
    }

    // MARK: The start-up state machine

    struct Broken: Error, CustomStringConvertible { var description: String { "sgemm NN m=67 n=45 k=129: C[0, 0] = 7.0, the naive loop gives 1.0" } }

    /// Runs `BLASCoreSelection.step` as a process would: each restart applies the environment
    /// changes and "loads" OpenBLAS again, which takes `OPENBLAS_CORETYPE` when the build has that
    /// core and otherwise its own detection `auto`. Returns the final step and the restarts.
    func simulate(_ features: CPUFeatures, auto: String, environment: [String: String] = [:],
                  cores: [String] = Fixture.debian0321Cores, selfCheck: (String) throws -> Void = { _ in })
        -> (report: BLASKernelReport, warning: String?, restarts: Int, checked: [String]) {
        var env = environment, restarts = 0, checked: [String] = []
        while true {
            let requested = env[BLASCoreSelection.coreTypeVariable]
            let loaded = requested.flatMap { r in cores.first { $0.lowercased() == r.lowercased() } } ?? auto
            var build = Fixture.debian0321(loaded: loaded)
            build.cores = cores
            let step = BLASCoreSelection.step(environment: env, features: features, build: build) {
                checked.append(loaded)
                try selfCheck(loaded)
            }
            switch step {
            case let .proceed(report, warning):
                return (report, warning, restarts, checked)
            case let .restart(changes, _):
                restarts += 1
                precondition(restarts <= 3, "restart loop: \(env)")
                for (k, v) in changes { env[k] = v }
            }
        }
    }

    @Test func forcesTheBetterCoreOnceAndSaysWhy() {
        let r = simulate(Fixture.xeon207, auto: "Prescott")
        #expect(r.restarts == 1 && r.checked == ["Cooperlake"] && r.warning == nil)
        #expect(r.report.core == "Cooperlake" && r.report.chosenBy == .dsan)
        #expect(r.report.reason == "OpenBLAS chose Prescott (SSE), the CPU supports Cooperlake (AVX-512 with BF16); sgemm self-check passed")
        #expect(r.report.line == "CPU Intel(R) Xeon(R) Processor (GenuineIntel family 6 model 207, under a hypervisor): SSE4.2 AVX AVX2 FMA AVX-512F/BW/VL/DQ AVX512-BF16; OpenBLAS 0.3.21 core Cooperlake, chosen by dsan: OpenBLAS chose Prescott (SSE), the CPU supports Cooperlake (AVX-512 with BF16); sgemm self-check passed")
    }

    @Test func theFirstStepAsksForTheCoreAndCanCarryOnWithoutIt() {
        let step = BLASCoreSelection.step(environment: [:], features: Fixture.xeon207,
                                          build: Fixture.debian0321(loaded: "Prescott")) { Issue.record("no check before the restart") }
        guard case let .restart(env, ifFails) = step else { Issue.record("expected a restart, got \(step)"); return }
        #expect(env == ["OPENBLAS_CORETYPE": "Cooperlake", "DSAN_BLAS_CORE": "dsan:Cooperlake:Prescott"])
        #expect(ifFails?.core == "Prescott" && ifFails?.chosenBy == .openBLAS)
    }

    @Test func aFailedSelfCheckFallsBackToOpenBLASWithAWarning() {
        let r = simulate(Fixture.xeon207, auto: "Prescott") { core in if core == "Cooperlake" { throw Broken() } }
        #expect(r.restarts == 2 && r.checked == ["Cooperlake"])
        #expect(r.report.core == "Prescott" && r.report.chosenBy == .openBLAS)
        #expect(r.report.reason == "dsan's choice Cooperlake failed its check (\(Broken().description)), so OpenBLAS's own choice is kept")
        #expect(r.warning == "OpenBLAS core Cooperlake failed dsan's check: \(Broken().description). Using OpenBLAS's own choice Prescott, which may be slower; set OPENBLAS_CORETYPE to choose a core yourself.")
    }

    @Test func theRestartThatFailsItsCheckMayNotCarryOn() {
        let env = ["OPENBLAS_CORETYPE": "Cooperlake", "DSAN_BLAS_CORE": "dsan:Cooperlake:Prescott"]
        let step = BLASCoreSelection.step(environment: env, features: Fixture.xeon207,
                                          build: Fixture.debian0321(loaded: "Cooperlake")) { throw Broken() }
        #expect(step == .restart(environment: ["OPENBLAS_CORETYPE": nil,
                                               "DSAN_BLAS_CORE": "fallback:Cooperlake:Prescott:\(Broken().description)"],
                                 ifRestartFails: nil))
    }

    @Test func aCoreTheLibraryDidNotLoadFallsBackWithoutRunningTheCheck() {
        // The build lists Cooperlake but loads Haswell for it (as an OpenBLAS without it would).
        let env = ["OPENBLAS_CORETYPE": "Cooperlake", "DSAN_BLAS_CORE": "dsan:Cooperlake:Prescott"]
        let step = BLASCoreSelection.step(environment: env, features: Fixture.xeon207,
                                          build: Fixture.debian0321(loaded: "Haswell")) { Issue.record("check ran") }
        guard case let .restart(changes, nil) = step else { Issue.record("expected an unsafe restart, got \(step)"); return }
        #expect(changes["DSAN_BLAS_CORE"] == "fallback:Cooperlake:Prescott:OpenBLAS loaded Haswell when asked for Cooperlake")
    }

    @Test func theUsersCoreWinsEvenWhenSlower() {
        let r = simulate(Fixture.xeon207, auto: "Prescott", environment: ["OPENBLAS_CORETYPE": "Prescott"])
        #expect(r.restarts == 0 && r.checked.isEmpty)
        #expect(r.report.core == "Prescott" && r.report.chosenBy == .user)
        #expect(r.report.reason == "OPENBLAS_CORETYPE=Prescott (dsan would choose Cooperlake)")
        // A name the build lacks: OpenBLAS loads its own choice, and the report says so.
        let unknown = simulate(Fixture.xeon207, auto: "Prescott", environment: ["OPENBLAS_CORETYPE": "GraniteRapids"])
        #expect(unknown.restarts == 0 && unknown.report.chosenBy == .user)
        #expect(unknown.report.reason == "OPENBLAS_CORETYPE=GraniteRapids; OpenBLAS has no core GraniteRapids and loaded Prescott (dsan would choose Cooperlake)")
        // The user's core also wins over a marker inherited from a dsan that chose another.
        let inherited = simulate(Fixture.xeon207, auto: "Prescott",
                                 environment: ["OPENBLAS_CORETYPE": "Haswell", "DSAN_BLAS_CORE": "dsan:Cooperlake:Prescott"])
        #expect(inherited.restarts == 0 && inherited.report.chosenBy == .user && inherited.report.core == "Haswell")
    }

    @Test func aGoodChoiceByOpenBLASIsKeptWithoutARestart() {
        let r = simulate(Fixture.zen3, auto: "Zen")
        #expect(r.restarts == 0 && r.checked.isEmpty && r.report.chosenBy == .openBLAS)
        #expect(r.report.reason == "OpenBLAS chose Zen, the widest kernels this build has for the CPU")
        let sse = simulate(Fixture.sseOnly, auto: "Prescott")
        #expect(sse.restarts == 0 && sse.report.core == "Prescott")
    }

    @Test func aChildThatInheritsTheEnvironmentDoesNotLoop() {
        // dsan's own choice inherited: checked again, no restart.
        let forced = simulate(Fixture.xeon207, auto: "Prescott",
                              environment: ["OPENBLAS_CORETYPE": "Cooperlake", "DSAN_BLAS_CORE": "dsan:Cooperlake:Prescott"])
        #expect(forced.restarts == 0 && forced.report.chosenBy == .dsan)
        // A fallback inherited: stays on OpenBLAS's choice with the warning, no restart.
        let fellBack = simulate(Fixture.xeon207, auto: "Prescott", environment: ["DSAN_BLAS_CORE": "fallback:Cooperlake:Prescott:x"])
        #expect(fellBack.restarts == 0 && fellBack.report.chosenBy == .openBLAS && fellBack.warning != nil)
        // A marker that does not parse counts as none.
        let garbled = simulate(Fixture.xeon207, auto: "Prescott", environment: ["DSAN_BLAS_CORE": "what"])
        #expect(garbled.restarts == 1 && garbled.report.chosenBy == .dsan)
    }
}
