import Foundation
import Yams

/// A configuration problem: names the file (or flag) and the key, and says what is accepted.
public struct ConfigError: Error, CustomStringConvertible {
    public var source: String
    public var message: String
    public var description: String { "\(source): \(message)" }

    public init(source: String, message: String) {
        self.source = source
        self.message = message
    }
}

/// Everything a training run is configured by (DESIGN.md §6 defaults), loaded from YAML
/// (`configs/*.yaml`) with command-line flags overriding it. Keys are flat; unknown keys and
/// values of the wrong type or range are errors that name the key.
public struct TrainConfig: Codable, Equatable, Sendable {
    /// Model width (64 = the paper's ResNet34; smaller for CI and demos).
    public var width = 64
    /// Online attention module and its loss.
    public var attention = true
    /// λ, weight of the attention loss (DESIGN.md §2).
    public var attentionWeight = 0.5
    /// How global batches are drawn (DESIGN.md §3).
    public var sampling = SamplingStrategy.uniform
    /// Uniform sampling: a fresh permutation per epoch (on) or shard order (off).
    public var shuffle = true
    public var epochs = 20
    /// Stop after this many optimizer steps in total (0 = no limit).
    public var steps = 0
    /// Global batch size.
    public var batch = 20
    public var lr = 2e-4
    public var weightDecay = 1e-4
    /// Divide the learning rate by `lrGamma`⁻¹ every `lrStep` epochs.
    public var lrStep = 5
    public var lrGamma = 0.1
    public var seed: UInt64 = 1
    /// Cross-validation: number of folds and the fold to validate on (-1 = train on everything).
    public var folds = 5
    public var fold = -1
    /// Gradient bucket size for the ring all-reduce, in MB.
    public var bucketMB = 25.0
    /// Cases per micro-batch on a rank (0 = the rank's whole share at once). When a rank's share is
    /// larger, it runs in micro-batches with gradient accumulation (DESIGN.md §4).
    public var microBatch = 0
    /// Reduce gradient buckets on a communication thread while backward continues.
    public var overlap = true
    /// Seconds a collective may wait before the job is declared hung.
    public var timeoutSeconds = 1800.0
    /// Cases this rank keeps decoded ahead of the model; 0 (`auto`, the default) = the rank's share
    /// of one global batch, so the next step's cases are all decoded while this step computes.
    public var prefetch = 0
    /// Write a checkpoint (last.h5) every this many steps as well as every epoch (0 = epochs only).
    public var checkpointEvery = 0
    /// Who runs the validation forward passes (DESIGN.md §4): every rank a contiguous slice
    /// (`shared`, the default) or rank 0 alone (`rank0`). Rank 0 computes the metrics either way,
    /// from the same predictions.
    public var validation = ValidationMode.shared

    public init() {}

    /// Prefetch depth on a rank of `ranks` for volumes of `voxels` voxels: `prefetch`, or for `auto`
    /// the largest share of one global batch (⌈batch / ranks⌉), so that loading the next step never
    /// waits inside the step, but at most what `autoPrefetchBytes` holds (a decoded case is about
    /// 8 bytes per voxel: the float image and its mask) and at least 2.
    public func prefetchDepth(ranks: Int, voxels: Int) -> Int {
        if prefetch > 0 { return prefetch }
        let share = (batch + ranks - 1) / max(ranks, 1)
        return max(2, min(share, Self.autoPrefetchBytes / max(8 * voxels, 1)))
    }

    /// Memory `prefetch: auto` may fill with decoded cases on a rank.
    public static let autoPrefetchBytes = 1 << 30

    enum CodingKeys: String, CodingKey, CaseIterable {
        case width, attention, sampling, shuffle, epochs, steps, batch, lr, seed, folds, fold, prefetch, overlap, validation
        case attentionWeight = "attention_weight", weightDecay = "weight_decay", lrStep = "lr_step"
        case lrGamma = "lr_gamma", bucketMB = "bucket_mb", timeoutSeconds = "timeout_s"
        case checkpointEvery = "checkpoint_every", microBatch = "micro_batch"
    }

    /// Loads a YAML file of flat `key: value` pairs over the defaults.
    public static func load(_ path: String) throws -> TrainConfig {
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else {
            throw ConfigError(source: path, message: "cannot read the configuration file")
        }
        return try parse(text, source: path)
    }

    public static func parse(_ text: String, source: String) throws -> TrainConfig {
        let node: Any?
        do { node = try Yams.load(yaml: text) } catch {
            throw ConfigError(source: source, message: "not valid YAML: \(error)")
        }
        var config = TrainConfig()
        guard let node else { return config }
        guard let map = node as? [String: Any] else {
            throw ConfigError(source: source, message: "expected a mapping of `key: value` lines")
        }
        for key in map.keys.sorted() {
            try config.set(key, map[key]!, source: source)
        }
        try config.validate(source: source)
        return config
    }

    /// Sets one key from a YAML value, checking its type.
    mutating func set(_ key: String, _ value: Any, source: String) throws {
        func fail(_ expected: String) -> ConfigError {
            ConfigError(source: source, message: "key `\(key)`: expected \(expected), got `\(value)`")
        }
        func int() throws -> Int { guard let v = value as? Int else { throw fail("an integer") }; return v }
        func double() throws -> Double {
            if let v = value as? Double { return v }
            if let v = value as? Int { return Double(v) }
            throw fail("a number")
        }
        func bool() throws -> Bool {
            if let v = value as? Bool { return v }
            if let s = value as? String, ["on", "off"].contains(s.lowercased()) { return s.lowercased() == "on" }
            throw fail("true/false or on/off")
        }
        guard let k = CodingKeys(rawValue: key) else {
            let known = CodingKeys.allCases.map(\.rawValue).sorted().joined(separator: ", ")
            throw ConfigError(source: source, message: "unknown key `\(key)`; known keys: \(known)")
        }
        switch k {
        case .width: width = try int()
        case .attention: attention = try bool()
        case .attentionWeight: attentionWeight = try double()
        case .sampling:
            guard let s = value as? String else { throw fail(SamplingStrategy.accepted) }
            sampling = try SamplingStrategy(parsing: s, source: source)
        case .shuffle: shuffle = try bool()
        case .epochs: epochs = try int()
        case .steps: steps = try int()
        case .batch: batch = try int()
        case .lr: lr = try double()
        case .weightDecay: weightDecay = try double()
        case .lrStep: lrStep = try int()
        case .lrGamma: lrGamma = try double()
        case .seed: let v = try int(); guard v >= 0 else { throw fail("a non-negative integer") }; seed = UInt64(v)
        case .folds: folds = try int()
        case .fold: fold = try int()
        case .bucketMB: bucketMB = try double()
        case .timeoutSeconds: timeoutSeconds = try double()
        case .prefetch:
            if let s = value as? String, s.lowercased() == "auto" { prefetch = 0 } else {
                guard let v = value as? Int, v >= 1 else { throw fail("`auto` or a number of cases ≥ 1") }
                prefetch = v
            }
        case .overlap: overlap = try bool()
        case .validation:
            guard let s = value as? String, let v = ValidationMode(rawValue: s) else { throw fail("`shared` or `rank0`") }
            validation = v
        case .microBatch: microBatch = try int()
        case .checkpointEvery: checkpointEvery = try int()
        }
    }

    /// Range checks; each error names the key.
    public func validate(source: String) throws {
        func check(_ ok: Bool, _ key: CodingKeys, _ what: String) throws {
            if !ok { throw ConfigError(source: source, message: "key `\(key.rawValue)`: \(what)") }
        }
        try check(width >= 1, .width, "must be at least 1, got \(width)")
        try check(attentionWeight >= 0 && attentionWeight.isFinite, .attentionWeight, "must be ≥ 0, got \(attentionWeight)")
        try check(epochs >= 1, .epochs, "must be at least 1, got \(epochs)")
        try check(steps >= 0, .steps, "must be ≥ 0, got \(steps)")
        try check(batch >= 1, .batch, "must be at least 1, got \(batch)")
        try check(lr > 0 && lr.isFinite, .lr, "must be positive, got \(lr)")
        try check(weightDecay >= 0, .weightDecay, "must be ≥ 0, got \(weightDecay)")
        try check(lrStep >= 1, .lrStep, "must be at least 1, got \(lrStep)")
        try check(lrGamma > 0 && lrGamma <= 1, .lrGamma, "must be in (0, 1], got \(lrGamma)")
        try check(folds >= 2, .folds, "must be at least 2, got \(folds)")
        try check(fold >= -1 && fold < folds, .fold, "must be -1 (no fold) or in 0..<\(folds), got \(fold)")
        try check(bucketMB > 0, .bucketMB, "must be positive, got \(bucketMB)")
        try check(timeoutSeconds > 0, .timeoutSeconds, "must be positive, got \(timeoutSeconds)")
        try check(prefetch >= 0, .prefetch, "must be `auto` (0) or at least 1, got \(prefetch)")
        try check(checkpointEvery >= 0, .checkpointEvery, "must be ≥ 0, got \(checkpointEvery)")
        try check(microBatch >= 0, .microBatch, "must be ≥ 0 (0 = whole share), got \(microBatch)")
    }

    /// The resolved configuration as YAML, written into the run directory and checkpoints.
    public var yaml: String {
        let pairs: [(CodingKeys, String)] = [
            (.width, "\(width)"), (.attention, "\(attention)"), (.attentionWeight, "\(attentionWeight)"),
            (.sampling, sampling.rawValue), (.shuffle, "\(shuffle)"), (.epochs, "\(epochs)"), (.steps, "\(steps)"),
            (.batch, "\(batch)"), (.lr, "\(lr)"), (.weightDecay, "\(weightDecay)"), (.lrStep, "\(lrStep)"),
            (.lrGamma, "\(lrGamma)"), (.seed, "\(seed)"), (.folds, "\(folds)"), (.fold, "\(fold)"),
            (.bucketMB, "\(bucketMB)"), (.overlap, "\(overlap)"), (.timeoutSeconds, "\(timeoutSeconds)"), (.prefetch, prefetch == 0 ? "auto" : "\(prefetch)"),
            (.checkpointEvery, "\(checkpointEvery)"), (.microBatch, "\(microBatch)"), (.validation, validation.rawValue),
        ]
        precondition(pairs.count == CodingKeys.allCases.count, "TrainConfig.yaml: a key is missing")
        return pairs.map { "\($0.0.rawValue): \($0.1)" }.joined(separator: "\n") + "\n"
    }
}

/// Who runs the validation forward passes (`validation:` in a config).
public enum ValidationMode: String, Codable, Sendable, CaseIterable {
    /// Every rank evaluates a contiguous slice of the validation cases; rank 0 gathers them in
    /// case order. Validation takes about 1/R of rank 0's time alone.
    case shared
    /// Rank 0 evaluates every case while the others wait.
    case rank0
}
