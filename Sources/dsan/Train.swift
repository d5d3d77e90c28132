import ArgumentParser
import BLAS
import Distributed
import Foundation
import MPI
import Tensor
import Training

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
    @Option(help: "YAML configuration (flat keys; see configs/paper.yaml).") var config: String?
    @Option(help: "Validate on this fold of --data (0-based); the other folds train.") var fold: Int?
    @Option(help: "Number of folds for --fold.") var folds: Int?
    @Option(help: "uniform or size-balanced.") var sampling: String?
    @Option(help: "Online attention module and its loss: on or off.") var attention: OnOff?
    @Option(help: "Epochs.") var epochs: Int?
    @Option(help: "Stop after this many optimizer steps in total.") var steps: Int?
    @Option(help: "Global batch size (over all ranks).") var batch: Int?
    @Option(help: "Learning rate.") var lr: Double?
    @Option(help: "Random seed (sampling, folds, initialisation).") var seed: UInt64?
    @Option(help: "Uniform sampling in a fresh order each epoch (on) or in shard order (off).") var shuffle: OnOff?
    @Option(help: "Model width (64 = the paper's ResNet34).") var width: Int?
    @Option(name: .customLong("init"), help: "Start from this checkpoint's weights.") var initFrom: String?
    @Flag(help: "Continue RUN/last.h5 where it stopped.") var resume = false
    @Option(help: "Validation shards (when not using --fold).") var val: String?
    @Option(help: "Write the all-reduced gradients of the first step to this HDF5 file.") var dumpGradients: String?
    @Option(help: "Seconds a collective may wait before the job is declared hung.") var timeout: Double?
    @Option(help: "Gradient bucket size in MB for the ring all-reduce.") var bucketMb: Double?

    /// The configuration file with the flags applied on top.
    func resolvedConfiguration() throws -> TrainConfig {
        var c = try config.map { try TrainConfig.load($0) } ?? TrainConfig()
        if let fold { c.fold = fold }
        if let folds { c.folds = folds }
        if let sampling { c.sampling = sampling }
        if let attention { c.attention = attention.bool }
        if let epochs { c.epochs = epochs }
        if let steps { c.steps = steps }
        if let batch { c.batch = batch }
        if let lr { c.lr = lr }
        if let seed { c.seed = seed }
        if let shuffle { c.shuffle = shuffle.bool }
        if let width { c.width = width }
        if let timeout { c.timeoutSeconds = timeout }
        if let bucketMb { c.bucketMB = bucketMb }
        try c.validate(source: "command line")
        return c
    }

    func run() throws {
        let resolved: TrainConfig
        do { resolved = try resolvedConfiguration() } catch { throw ValidationError("\(error)") }
        var request = TrainRequest(data: data, out: out, config: resolved)
        request.validation = val
        request.initFrom = initFrom
        request.resume = resume
        request.dumpGradients = dumpGradients

        try runMPIJob(timeout: resolved.timeoutSeconds) { collectives in
            try Trainer(request: request, collectives: collectives).run()
        }
    }
}
