import ArgumentParser
import BLAS
import CTData
import Distributed
import Foundation
import MPI
import Tensor
import Training
import Workflows

/// `on` / `off` flag values.
enum OnOff: String, ExpressibleByArgument, CaseIterable {
    case on, off
    var bool: Bool { self == .on }
}

struct Train: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Train a model, alone or as MPI ranks under mpirun.",
        discussion: """
        Every rank reads its share of each global batch from the shards in --data; gradients are \
        summed with a ring all-reduce, batch norm is synchronised, and loss normalisers are \
        global, so R ranks compute the step one rank would (DESIGN.md §4). Rank 0 validates after \
        each epoch and writes RUN/last.h5 (every epoch), RUN/best.h5 (best validation AUC), \
        RUN/steps.jsonl, RUN/metrics.jsonl and RUN/val_predictions.csv.

        Settings come from --config (YAML, see configs/) with flags overriding them; the resolved \
        configuration is written to RUN/config.yaml.

        Examples:
          dsan train --data data/train --val data/val --out runs/us --config configs/debug.yaml
          mpirun -np 4 dsan train --data data/all --fold 0 --sampling size-balanced --out runs/ss-f0
          launch/train.sh -np 2 -- --data data/train --out runs/us --resume
        """
    )

    @Option(help: "Directory of training shards.") var data: String
    @Option(help: "Run directory for checkpoints and logs (created).") var out: String
    @OptionGroup var settings: ConfigOptions
    @Option(help: "Validate on this fold of --data (0-based); the other folds train.") var fold: Int?
    @Option(help: "uniform or size-balanced.") var sampling: String?
    @Option(help: "Online attention module and its loss: on or off.") var attention: OnOff?
    @Option(help: "Stop after this many optimizer steps in total.") var steps: Int?
    @Option(help: "Cases per micro-batch on a rank (0 = whole share); a larger share accumulates gradients over micro-batches.") var microBatch: Int?
    @Option(help: "Uniform sampling in a fresh order each epoch (on) or in shard order (off).") var shuffle: OnOff?
    @Option(name: .customLong("init"), help: "Start from this checkpoint's weights.") var initFrom: String?
    @Flag(help: "Continue RUN/last.h5 where it stopped.") var resume = false
    @Flag(help: "Replace the run already in --out (its checkpoints and logs); without it such a directory is refused.") var overwrite = false
    @Option(help: "Validation shards (when not using --fold).") var val: String?
    @Option(help: "Write the all-reduced gradients of the first step to this HDF5 file.") var dumpGradients: String?

    /// The configuration file with the flags applied on top.
    func resolvedConfiguration() throws -> TrainConfig {
        let strategy = try sampling.map { try SamplingStrategy(parsing: $0, source: "command line") }
        return try settings.resolve { c in
            if let fold { c.fold = fold }
            if let strategy { c.sampling = strategy }
            if let attention { c.attention = attention.bool }
            if let steps { c.steps = steps }
            if let microBatch { c.microBatch = microBatch }
            if let shuffle { c.shuffle = shuffle.bool }
        }
    }

    func run() throws {
        let resolved: TrainConfig
        do { resolved = try resolvedConfiguration() } catch { throw ValidationError("\(error)") }
        var request = TrainRequest(data: data, out: out, config: resolved)
        request.validation = val
        request.initFrom = initFrom
        request.resume = resume
        request.overwrite = overwrite
        request.dumpGradients = dumpGradients

        try runMPIJob(timeout: resolved.timeoutSeconds) { collectives in
            RunLog(rank: collectives.rank, ranks: collectives.size).info(BLASStartUp.line)
            RunLog(rank: collectives.rank, ranks: collectives.size).info(FloatStorage.pageReport)
            let warnings = try checkTrainingInputs(request, ranks: collectives.size)
            if collectives.rank == 0 { for w in warnings { printError("dsan: warning: \(w)") } }
            let trainer = try Trainer(request: request, collectives: collectives)
            trainer.stepObserver = try TestFaultInjection.fromEnvironment()   // test-only, unset in use
            try trainer.run()
        }
    }
}
