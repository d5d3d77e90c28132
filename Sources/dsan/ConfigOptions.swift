import ArgumentParser
import Training

/// The configuration flags `dsan train` and `dsan cv` share: a YAML file and the settings that
/// override it (DESIGN.md §9 names them).
struct ConfigOptions: ParsableArguments {
    @Option(help: "YAML configuration (flat keys; see configs/paper.yaml).") var config: String?
    @Option(help: "Number of folds.") var folds: Int?
    @Option(help: "Epochs.") var epochs: Int?
    @Option(help: "Global batch size (over all ranks).") var batch: Int?
    @Option(help: "Learning rate.") var lr: Double?
    @Option(help: "Random seed (sampling, folds, initialisation).") var seed: UInt64?
    @Option(help: "Model width (64 = the paper's ResNet34).") var width: Int?
    @Option(help: "Seconds a collective may wait before the job is declared hung.") var timeout: Double?
    @Option(help: "Gradient bucket size in MB for the ring all-reduce.") var bucketMb: Double?

    /// The configuration file (or the defaults) with these flags applied; `more` applies the
    /// command's own flags, then everything is validated.
    func resolve(_ more: (inout TrainConfig) -> Void = { _ in }) throws -> TrainConfig {
        var c = try config.map { try TrainConfig.load($0) } ?? TrainConfig()
        if let folds { c.folds = folds }
        if let epochs { c.epochs = epochs }
        if let batch { c.batch = batch }
        if let lr { c.lr = lr }
        if let seed { c.seed = seed }
        if let width { c.width = width }
        if let timeout { c.timeoutSeconds = timeout }
        if let bucketMb { c.bucketMB = bucketMb }
        more(&c)
        try c.validate(source: "command line")
        return c
    }
}
