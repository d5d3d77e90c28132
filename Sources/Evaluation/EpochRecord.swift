/// One epoch's record, written by rank 0 of `dsan train` to `metrics.jsonl` (one JSON object a
/// line) and read by `dsan report`: the epoch's training figures and its validation metrics.
public struct EpochRecord: Codable, Sendable, Equatable {
    public var epoch: Int
    public var meanLoss: Double
    public var lr: Double
    public var seconds: Double
    public var samplesPerSecond: Double
    /// nil without a validation set.
    public var validation: Metrics?
    /// Wall time of the epoch's validation on rank 0, gathering included (nil without one).
    public var validationSeconds: Double?
    /// Validation cases each rank evaluated, in rank order (`validation: shared` splits them).
    public var validationCasesByRank: [Int]?

    public init(epoch: Int, meanLoss: Double, lr: Double, seconds: Double, samplesPerSecond: Double, validation: Metrics?,
                validationSeconds: Double? = nil, validationCasesByRank: [Int]? = nil) {
        self.validationSeconds = validationSeconds
        self.validationCasesByRank = validationCasesByRank
        self.epoch = epoch
        self.meanLoss = meanLoss
        self.lr = lr
        self.seconds = seconds
        self.samplesPerSecond = samplesPerSecond
        self.validation = validation
    }
}
