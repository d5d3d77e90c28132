import CPU
import Foundation

/// The OpenBLAS kernels this process runs, chosen before anything else (`dsan`'s `main`); the log
/// and every `dsan bench` print `BLASStartUp.report`. `BLASCoreSelection.step` decides (a pure
/// function of the environment); `select` carries the decision out on this process.
public enum BLASStartUp {
    /// Set once by `select()`, before the command runs; until then, what OpenBLAS loaded.
    nonisolated(unsafe) public private(set) static var report = BLASKernelReport(
        cpu: CPUFeatures.current.identity, extensions: CPUFeatures.current.summary,
        openblas: BLAS.configuration, core: BLAS.coreName, chosenBy: .openBLAS, reason: "no start-up choice made")

    /// The one-line report, "CPU …; OpenBLAS 0.3.21 core …, chosen by …: …; dsan's kernels …".
    public static var line: String { report.line }

    /// Adds the vector level of dsan's own kernels to the report (`BLASKernelReport.loops`): the
    /// executable calls it once at start-up, after `select`.
    public static func noteLoops(_ description: String) { report.loops = description }

    /// Runs `BLASCoreSelection.step` on this process. A restart replaces the process (`execv` of
    /// the binary with the same arguments), so this returns only to carry on: with a warning for
    /// standard error, or nil. Throws `BLASStartUpError` when the loaded kernels failed the check
    /// and the process cannot restart (carrying on would compute wrong numbers).
    public static func select() throws -> String? {
        let step = BLASCoreSelection.step(environment: ProcessInfo.processInfo.environment,
                                          features: .current, build: .loaded(),
                                          selfCheck: { try SGEMMSelfCheck.verify() })
        return try carryOut(step, restart: restartProcess)
    }

    /// Acts on `step`: sets `report` and returns the warning to print, or calls `restart` with the
    /// variables to set (a value) or unset (nil). `restart` returns only when it failed, with the
    /// reason (`strerror`).
    public static func carryOut(_ step: BLASCoreSelection.Step,
                                restart: ([String: String?]) -> String) throws -> String? {
        switch step {
        case let .proceed(chosen, warning):
            report = chosen
            return warning
        case let .restart(environment, ifRestartFails):
            let why = restart(environment)
            guard let ifRestartFails else {
                throw BLASStartUpError(marker: ProcessInfo.processInfo.environment[BLASCoreSelection.markerVariable] ?? "",
                                       why: why)
            }
            report = ifRestartFails
            return "could not restart to change the OpenBLAS core (/proc/self/exe: \(why)); \(ifRestartFails.reason)"
        }
    }

    /// Sets and unsets `environment` and executes this program again with the same arguments;
    /// returns (the reason) only when that failed.
    static func restartProcess(_ environment: [String: String?]) -> String {
        for (name, value) in environment {
            if let value { setenv(name, value, 1) } else { unsetenv(name) }
        }
        // The binary's own path, not /proc/self/exe: the kernel names the process after the
        // file it executes, and `ps`, `pkill dsan` and the schedulers must still see `dsan`.
        var target = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
        let length = readlink("/proc/self/exe", &target, Int(PATH_MAX))
        if length > 0 { target[length] = 0; execv(target, CommandLine.unsafeArgv) }
        execv("/proc/self/exe", CommandLine.unsafeArgv)
        return String(cString: strerror(errno))
    }
}

/// The loaded OpenBLAS kernels failed dsan's check and the process could not restart with
/// OpenBLAS's own choice: the one case in which dsan cannot start.
public struct BLASStartUpError: Error, CustomStringConvertible, Equatable {
    /// `DSAN_BLAS_CORE` as this process found it.
    public var marker: String
    /// Why the restart failed (`strerror` of `execv`).
    public var why: String

    public var description: String {
        "the OpenBLAS kernels failed dsan's check (\(marker)) and dsan could not restart itself with OpenBLAS's own choice (/proc/self/exe: \(why)); set \(BLASCoreSelection.coreTypeVariable) to a core that works, e.g. Haswell or Prescott"
    }
}
