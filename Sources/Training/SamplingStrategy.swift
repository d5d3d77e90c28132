import CTData

/// How the trainer draws each epoch's global batches from the training cases (DESIGN.md §3),
/// spelled `uniform` or `size-balanced` in configuration files and on the command line.
public enum SamplingStrategy: String, Codable, Sendable, CaseIterable, CustomStringConvertible {
    /// Every case once per epoch, in a fresh permutation (or shard order with `shuffle: off`).
    case uniform
    /// The four groups [COVID small, COVID large, CAP small, CAP large] drawn with the paper's
    /// size-balanced probabilities.
    case sizeBalanced = "size-balanced"

    public var description: String { rawValue }

    /// The strategy a configuration value names; an unknown value is an error naming `source`,
    /// the key and the accepted values.
    public init(parsing value: String, source: String) throws {
        guard let strategy = SamplingStrategy(rawValue: value) else {
            throw ConfigError(source: source, message: "key `sampling`: must be \(Self.accepted), got `\(value)`")
        }
        self = strategy
    }

    /// "`uniform` or `size-balanced`".
    static var accepted: String { allCases.map { "`\($0.rawValue)`" }.joined(separator: " or ") }

    /// The sampler of this strategy over the cohort's cases at `indices`; throws a readable error
    /// for an empty training split.
    public func sampler(indices: [Int], cohort: Cohort, config: TrainConfig) throws -> GlobalBatchSampler {
        switch self {
        case .uniform:
            try UniformSampler(training: indices, batch: config.batch, seed: config.seed, shuffle: config.shuffle)
        case .sizeBalanced:
            try SizeBalancedSampler(training: indices, cases: indices.map { cohort.cases[$0] },
                                    batch: config.batch, seed: config.seed)
        }
    }
}

/// A strategy written as a literal in code (`c.sampling = "size-balanced"`) reads as its
/// configuration spelling; a literal that names no strategy is a programming error.
extension SamplingStrategy: ExpressibleByStringLiteral {
    public init(stringLiteral value: String) {
        guard let strategy = SamplingStrategy(rawValue: value) else {
            preconditionFailure("SamplingStrategy: `\(value)` is not \(Self.accepted)")
        }
        self = strategy
    }
}
