import CPU

/// What dsan runs its GEMMs on, for the log and `dsan bench`: the CPU, its usable vector
/// extensions, the OpenBLAS core and who chose it. `line` is the one-line form:
///
///     CPU Intel(R) Xeon(R) Processor (GenuineIntel family 6 model 207, under a hypervisor):
///     SSE4.2 AVX AVX2 FMA AVX-512F/BW/VL/DQ AVX512-BF16; OpenBLAS 0.3.21 core Cooperlake, chosen
///     by dsan: OpenBLAS chose Prescott (SSE), the CPU supports Cooperlake (AVX-512 with BF16);
///     sgemm self-check passed
public struct BLASKernelReport: Codable, Sendable, Equatable {
    /// Who chose the core.
    public enum Chooser: String, Codable, Sendable {
        /// `OPENBLAS_CORETYPE` was set before dsan started.
        case user
        /// dsan set `OPENBLAS_CORETYPE` and restarted.
        case dsan
        /// OpenBLAS's own detection, kept.
        case openBLAS = "OpenBLAS"
    }

    /// `CPUFeatures.identity`: brand, vendor, family and model.
    public var cpu: String
    /// `CPUFeatures.summary`: "SSE4.2 AVX AVX2 FMA AVX-512F/BW/VL/DQ AVX512-BF16".
    public var extensions: String
    /// OpenBLAS's configuration string (version, DYNAMIC_ARCH, threads).
    public var openblas: String
    /// The core whose kernels run (`openblas_get_corename()`).
    public var core: String
    public var chosenBy: Chooser
    /// Why this core, e.g. "OpenBLAS chose Prescott (SSE), the CPU supports Cooperlake (…)".
    public var reason: String
    /// The vector level of dsan's own kernels (its loops, transforms and packed GEMM) and why,
    /// e.g. "avx512, the widest this CPU has" (`VectorLevel.report`, set at start-up by the
    /// executable); nil where nothing set it.
    public var loops: String?

    public init(cpu: String, extensions: String, openblas: String, core: String, chosenBy: Chooser, reason: String,
                loops: String? = nil) {
        self.cpu = cpu
        self.extensions = extensions
        self.openblas = openblas
        self.core = core
        self.chosenBy = chosenBy
        self.reason = reason
        self.loops = loops
    }

    public var line: String {
        let version = openblas.split(separator: " ").prefix(2).joined(separator: " ")
        return "CPU \(cpu): \(extensions); \(version.isEmpty ? "OpenBLAS" : version) core \(core), chosen by \(chosenBy.rawValue): \(reason)"
            + (loops.map { "; dsan's kernels \($0)" } ?? "")
    }
}

/// dsan's start-up choice of OpenBLAS kernels, as a state machine over the environment.
///
/// OpenBLAS reads `OPENBLAS_CORETYPE` once, when the library loads, before `main`; so to change
/// the core dsan sets the variable and executes itself again (same pid, same arguments: under
/// `mpirun` each rank does so before `MPI_Init`). `DSAN_BLAS_CORE` marks the restarted process so
/// that it checks instead of choosing again:
///
/// 1. `OPENBLAS_CORETYPE` set by the user (no marker naming that core): kept, whatever it is.
/// 2. Neither set: `OpenBLASCore.choose`. Keep, or restart with `OPENBLAS_CORETYPE=<core>` and
///    `DSAN_BLAS_CORE=dsan:<core>:<OpenBLAS's choice>`.
/// 3. Restarted (`dsan:<core>:…` and `OPENBLAS_CORETYPE=<core>`): the loaded core must be `<core>`
///    and pass `SGEMMSelfCheck`; otherwise restart once more without `OPENBLAS_CORETYPE` and with
///    `DSAN_BLAS_CORE=fallback:<core>:<OpenBLAS's choice>:<what failed>`.
/// 4. Fell back (`fallback:…`, no `OPENBLAS_CORETYPE`): OpenBLAS's own choice, with a warning.
///
/// Every path restarts at most twice, and a child process that inherits the environment lands
/// in state 1, 3 or 4 again, never in a loop. `step` is pure: the environment, the CPU, the
/// library and the self-check are its inputs, so each state is tested without restarting.
public enum BLASCoreSelection {
    public static let coreTypeVariable = "OPENBLAS_CORETYPE"
    public static let markerVariable = "DSAN_BLAS_CORE"

    /// What the process does next.
    public enum Step: Equatable, Sendable {
        /// Carry on with these kernels; print `warning` (if any) on standard error.
        case proceed(BLASKernelReport, warning: String?)
        /// Set (value) or unset (nil) these variables and execute the program again. `ifRestartFails`
        /// is the report to carry on with when the restart fails, nil when carrying on is unsafe
        /// (the loaded kernels failed the self-check).
        case restart(environment: [String: String?], ifRestartFails: BLASKernelReport?)
    }

    /// The marker's two forms.
    enum Marker: Equatable {
        case forced(core: String, original: String)
        case fellBack(core: String, original: String, why: String)

        init?(_ text: String?) {
            guard let text else { return nil }
            let parts = text.split(separator: ":", maxSplits: 3, omittingEmptySubsequences: false).map(String.init)
            switch (parts.first, parts.count) {
            case ("dsan", 3): self = .forced(core: parts[1], original: parts[2])
            case ("fallback", 4): self = .fellBack(core: parts[1], original: parts[2], why: parts[3])
            default: return nil
            }
        }

        var text: String {
            switch self {
            case let .forced(core, original): "dsan:\(core):\(original)"
            case let .fellBack(core, original, why): "fallback:\(core):\(original):\(why)"
            }
        }
    }

    public static func step(environment: [String: String], features: CPUFeatures, build: OpenBLASBuild,
                            selfCheck: () throws -> Void) -> Step {
        let loaded = build.loadedCore
        func report(_ by: BLASKernelReport.Chooser, _ reason: String) -> BLASKernelReport {
            BLASKernelReport(cpu: features.identity, extensions: features.summary, openblas: build.configuration,
                             core: loaded, chosenBy: by, reason: reason)
        }
        let user = environment[coreTypeVariable].flatMap { $0.isEmpty ? nil : $0 }
        let marker = Marker(environment[markerVariable])

        if case let .forced(core, original)? = marker, let user, user == core {
            // 3. dsan's restart: check what loaded.
            func fallBack(_ why: String) -> Step {
                .restart(environment: [coreTypeVariable: nil,
                                       markerVariable: Marker.fellBack(core: core, original: original, why: why).text],
                         ifRestartFails: nil)
            }
            guard loaded.lowercased() == core.lowercased() else {
                return fallBack("OpenBLAS loaded \(loaded) when asked for \(core)")
            }
            do { try selfCheck() } catch { return fallBack("\(error)") }
            var before = build
            before.loadedCore = original
            let why: String
            if case let .force(_, reason) = OpenBLASCore.choose(features: features, build: before) { why = reason }
            else { why = "OpenBLAS chose \(original)" }
            return .proceed(report(.dsan, why + "; sgemm self-check passed"), warning: nil)
        }
        if let user {
            // 1. The user's core wins; say when OpenBLAS did not load it, and what dsan would pick.
            var reason = "\(coreTypeVariable)=\(user)"
            if loaded.lowercased() != user.lowercased() { reason += "; OpenBLAS has no core \(user) and loaded \(loaded)" }
            if case let .force(core, _) = OpenBLASCore.choose(features: features, build: build) {
                reason += " (dsan would choose \(core))"
            }
            return .proceed(report(.user, reason), warning: nil)
        }
        if case let .fellBack(core, original, why)? = marker {
            // 4. dsan's core failed: OpenBLAS's own, with a warning.
            return .proceed(report(.openBLAS, "dsan's choice \(core) failed its check (\(why)), so OpenBLAS's own choice is kept"),
                            warning: "OpenBLAS core \(core) failed dsan's check: \(why). Using OpenBLAS's own choice \(loaded)"
                                + (loaded == original ? "" : " (first \(original))")
                                + ", which may be slower; set \(coreTypeVariable) to choose a core yourself.")
        }
        // 2. Nothing set: choose.
        switch OpenBLASCore.choose(features: features, build: build) {
        case let .keep(reason):
            return .proceed(report(.openBLAS, reason), warning: nil)
        case let .force(core, reason):
            return .restart(environment: [coreTypeVariable: core,
                                          markerVariable: Marker.forced(core: core, original: loaded).text],
                            ifRestartFails: report(.openBLAS, reason + "; dsan could not restart itself to change it"))
        }
    }
}
