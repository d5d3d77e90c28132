import ArgumentParser
import BLAS
import Foundation
import NN

/// dsan's version, printed by `dsan --version` and written into run directories and checkpoints.
let dsanVersion = "0.1.0"

@main
struct DSAN: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "dsan",
        abstract: "Distributed trainer for the Dual-Sampling Attention Network (COVID-19 vs CAP on 3D CT).",
        discussion: """
        Runs alone or as MPI ranks under mpirun. See Docs/ for the architecture, data format and \
        launch guide.
        """,
        version: dsanVersion,
        subcommands: [Synth.self, Prepare.self, Inspect.self, Predict.self, Evaluate.self, Ensemble.self, Train.self, CrossValidate.self, ReportCommand.self, Bench.self, Plan.self]
    )

    /// Chooses the OpenBLAS kernels (which may restart the process, before MPI_Init and before
    /// any GEMM) and the vector level of dsan's own (`DSAN_SIMD` checked here, so that a bad value
    /// stops every command with one plain line), then runs the command.
    static func main() {
        do {
            if let warning = try BLASStartUp.select() { printError("dsan: warning: \(warning)") }
            _ = try VectorLevel.requested(VectorLevel.environmentValue)
        } catch {
            printError("dsan: \(error)")
            Foundation.exit(1)
        }
        BLASStartUp.noteLoops(VectorLevel.report)
        main(nil)
    }
}
