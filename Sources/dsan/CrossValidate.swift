import ArgumentParser
import BLAS
import CTData
import Distributed
import Foundation
import MPI
import Tensor
import Training
import Workflows

struct CrossValidate: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "cv",
        abstract: "Cross-validation: per fold, the uniform and the size-balanced model, their ensemble, predictions and tables.",
        discussion: """
        For each of --folds folds (split by patient, stratified by label), trains RN34 + US \
        (uniform sampling) and RN34 + SS (size-balanced sampling) with the attention module \
        (and with --baseline RN34 + US without attention), fits the ensemble of DESIGN.md §5 on \
        the fold's validation predictions, predicts the fold's validation cases with every model \
        (and the --test cases), writes attention maps for a few validation cases, and finally \
        the paper's Table II and Table III as mean ± sd over folds (Markdown, CSV, JSON).

        Runs under one mpirun (folds in sequence, every rank trains; rank 0 predicts) or alone. \
        Running it again resumes: finished trainings are kept, an interrupted one continues \
        from its last.h5. `dsan report DIR` turns the result into an HTML page.

        Example: mpirun -np 2 dsan cv --data data/all --test data/test --out cv --config configs/debug.yaml
        """
    )

    @Option(help: "Directory of shards to cross-validate on.") var data: String
    @Option(help: "Output directory (created; an existing one is resumed).") var out: String
    @OptionGroup var settings: ConfigOptions
    @Option(help: "A separate test set of shards, predicted by every fold's models.") var test: String?
    @Flag(help: "Also train the baseline without the attention module.") var baseline = false
    @Option(help: "Validation cases per infection-ratio band that get attention maps.") var maps = 2
    @Flag(help: "Replace an --out directory that holds a cross-validation of other data or settings (otherwise refused, naming what differs).") var overwrite = false

    func resolvedConfiguration() throws -> TrainConfig {
        try settings.resolve { $0.steps = 0 }
    }

    func run() throws {
        let base: TrainConfig
        do { base = try resolvedConfiguration() } catch { throw ValidationError("\(error)") }
        guard maps >= 0 else { throw ValidationError("--maps must be ≥ 0, got \(maps)") }
        var crossValidation = CrossValidation(data: data, out: out, config: base, test: test, baseline: baseline, maps: maps)
        crossValidation.overwrite = overwrite
        try runMPIJob(timeout: base.timeoutSeconds) { collectives in
            if let table = try crossValidation.run(collectives) { print(table) }
        }
    }
}

