import BLAS
import CPU
import Foundation

/// The OpenBLAS kernels this process runs, chosen before anything else (`DSAN.main`); the log
/// and every `dsan bench` print `BLASStartUp.report`. See `BLASCoreSelection` for the states.
enum BLASStartUp {
    /// Set once by `select()`, before the command runs; until then, what OpenBLAS loaded.
    nonisolated(unsafe) private(set) static var report = BLASKernelReport(
        cpu: CPUFeatures.current.identity, extensions: CPUFeatures.current.summary,
        openblas: BLAS.configuration, core: BLAS.coreName, chosenBy: .openBLAS, reason: "no start-up choice made")

    /// Runs `BLASCoreSelection.step` on this process; a restart replaces the process
    /// (`execv` of /proc/self/exe with the same arguments), so this returns only to carry on.
    static func select() {
        let step = BLASCoreSelection.step(environment: ProcessInfo.processInfo.environment,
                                          features: .current, build: .loaded(),
                                          selfCheck: { try SGEMMSelfCheck.verify() })
        switch step {
        case let .proceed(chosen, warning):
            if let warning { printError("dsan: warning: \(warning)") }
            report = chosen
        case let .restart(environment, ifRestartFails):
            for (name, value) in environment {
                if let value { setenv(name, value, 1) } else { unsetenv(name) }
            }
            // The binary's own path, not /proc/self/exe: the kernel names the process after the
            // file it executes, and `ps`, `pkill dsan` and the schedulers must still see `dsan`.
            var target = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
            let length = readlink("/proc/self/exe", &target, Int(PATH_MAX))
            if length > 0 { target[length] = 0; execv(target, CommandLine.unsafeArgv) }
            execv("/proc/self/exe", CommandLine.unsafeArgv)
            let why = String(cString: strerror(errno))
            guard let ifRestartFails else {
                printError("dsan: the OpenBLAS kernels failed dsan's check (\(ProcessInfo.processInfo.environment[BLASCoreSelection.markerVariable] ?? "")) and dsan could not restart itself with OpenBLAS's own choice (/proc/self/exe: \(why)); set \(BLASCoreSelection.coreTypeVariable) to a core that works, e.g. Haswell or Prescott")
                exit(1)
            }
            printError("dsan: warning: could not restart to change the OpenBLAS core (/proc/self/exe: \(why)); \(ifRestartFails.reason)")
            report = ifRestartFails
        }
    }

    /// The one-line report, "CPU …; OpenBLAS 0.3.21 core …, chosen by …: …".
    static var line: String { report.line }
}
