import Tensor

/// Mixes values into one 64-bit seed (SplitMix64 finaliser over each part), so that streams for
/// different (seed, epoch, step, purpose) never share a generator state.
public func derivedSeed(_ parts: UInt64...) -> UInt64 {
    var h: UInt64 = 0x243F_6A88_85A3_08D3
    for p in parts {
        var g = SplitMix64(seed: h ^ p)
        h = g.next()
    }
    return h
}

/// Purposes of derived random streams (part of the seed derivation).
enum Stream: UInt64 {
    case uniformPermutation = 1, balancedDraw = 2, folds = 3
}

/// A training split a sampler cannot draw from: no case, or a global batch below 1.
public struct SamplingError: Error, CustomStringConvertible, Sendable {
    public var message: String
    public var description: String { message }

    static func check(cases: Int, batch: Int) throws {
        if cases == 0 {
            throw SamplingError(message: "the training split has no case: nothing to train on; give --data shards with cases, or fewer --folds so every fold leaves training cases" + InputRules.seePage)
        }
        if batch < 1 { throw SamplingError(message: "the global batch is \(batch), expected at least 1" + InputRules.seePage) }
    }
}

/// A sampler produces the sequence of global batches of an epoch as a pure function of
/// (seed, epoch, step): every rank computes the same sequence and takes its share (DESIGN.md §3).
public protocol GlobalBatchSampler: Sendable {
    /// Steps in one epoch.
    var stepsPerEpoch: Int { get }
    /// The cohort indices of global batch `step` of `epoch`.
    func globalBatch(epoch: Int, step: Int) -> [Int]
}

/// Number of global batches in an epoch of `n` cases with global batch `batch` (the last one
/// may be short; no case is dropped).
public func stepsPerEpoch(cases n: Int, batch: Int) -> Int { (n + batch - 1) / batch }

/// Size of global batch `step` of an epoch of `n` cases.
func batchSize(cases n: Int, batch: Int, step: Int) -> Int { max(0, min(batch, n - step * batch)) }

/// Uniform sampling: each epoch a fresh permutation of the training cases, cut into global
/// batches, so every case is used exactly once per epoch. With `shuffle` off the cases are taken
/// in the order given (shard order).
public struct UniformSampler: GlobalBatchSampler {
    public let indices: [Int]
    public let batch: Int
    public let seed: UInt64
    public let shuffle: Bool

    /// Throws `SamplingError` for an empty training split or a batch below 1.
    public init(training indices: [Int], batch: Int, seed: UInt64, shuffle: Bool = true) throws {
        try SamplingError.check(cases: indices.count, batch: batch)
        self.indices = indices
        self.batch = batch
        self.seed = seed
        self.shuffle = shuffle
    }

    public var stepsPerEpoch: Int { CTData.stepsPerEpoch(cases: indices.count, batch: batch) }

    /// The epoch's order of cases (Fisher–Yates with a generator seeded by (seed, epoch)).
    public func permutation(epoch: Int) -> [Int] {
        guard shuffle else { return indices }
        var order = indices
        var rng = SplitMix64(seed: derivedSeed(seed, UInt64(epoch), Stream.uniformPermutation.rawValue))
        for i in stride(from: order.count - 1, to: 0, by: -1) {
            let j = Int(rng.next() % UInt64(i + 1))
            order.swapAt(i, j)
        }
        return order
    }

    public func globalBatch(epoch: Int, step: Int) -> [Int] {
        precondition(step >= 0 && step < stepsPerEpoch, "UniformSampler: step \(step) of \(stepsPerEpoch)")
        let order = permutation(epoch: epoch)
        return Array(order[(step * batch)..<min(order.count, (step + 1) * batch)])
    }
}

/// Size-balanced sampling (DESIGN.md §3, paper §III-C): every slot of every global batch draws a
/// group with probability ∝ its weight, then a case uniformly within the group, with replacement.
///
/// Weights are [N_large^covid / N_small^covid, 1, 1, N_small^cap / N_large^cap] for
/// [COVID small, COVID large, CAP small, CAP large], computed on the training split. A group with
/// no case gets weight 0; if either group of a ratio is empty the ratio is taken as 1, so the
/// non-empty group of that class is still drawn.
public struct SizeBalancedSampler: GlobalBatchSampler {
    public let groups: [[Int]]
    public let weights: [Double]
    public let probabilities: [Double]
    public let batch: Int
    public let seed: UInt64
    public let casesPerEpoch: Int

    /// `cases` are the training cases' infos, in the order of `indices`. Throws `SamplingError`
    /// for an empty training split or a batch below 1; a group without cases is allowed (see
    /// `warnings`).
    public init(training indices: [Int], cases: [CaseInfo], batch: Int, seed: UInt64) throws {
        precondition(indices.count == cases.count, "SizeBalancedSampler: \(indices.count) indices, \(cases.count) infos")
        try SamplingError.check(cases: indices.count, batch: batch)
        var groups = [[Int]](repeating: [], count: 4)
        for (i, info) in zip(indices, cases) {
            groups[SamplingGroup(label: info.label, ratio: info.infectionRatio).rawValue].append(i)
        }
        let n = groups.map { Double($0.count) }
        // Either group of a class empty: the ratio is 1, so the class's other group is drawn
        // (with N_large^covid = 0 the formula would give COVID small weight 0 and the class none).
        func ratio(_ a: Double, _ b: Double) -> Double { a > 0 && b > 0 ? a / b : 1 }
        var w = [ratio(n[1], n[0]), 1, 1, ratio(n[2], n[3])]
        for g in 0..<4 where n[g] == 0 { w[g] = 0 }
        let total = w.reduce(0, +)
        self.groups = groups
        self.weights = w
        self.probabilities = w.map { $0 / total }
        self.batch = batch
        self.seed = seed
        self.casesPerEpoch = indices.count
    }

    /// One sentence per group without a training case: its probability is 0, so the batches
    /// hold none of it and the rebalancing of the paper (§III-C) is only partly possible. dsan
    /// warns rather than refuses: small or filtered cohorts lack a group legitimately, and the
    /// other groups are still drawn as specified (Docs/input-rules.md).
    public var warnings: [String] {
        SamplingGroup.allCases.filter { groups[$0.rawValue].isEmpty }.map {
            "size-balanced sampling: group \($0) has no training case, so its probability is 0 and batches hold none of it; the groups are drawn with probabilities [\(probabilities.map(threeDecimals).joined(separator: ", "))] for [COVID small, COVID large, CAP small, CAP large]" + InputRules.seePage
        }
    }

    public var stepsPerEpoch: Int { CTData.stepsPerEpoch(cases: casesPerEpoch, batch: batch) }

    public func globalBatch(epoch: Int, step: Int) -> [Int] {
        precondition(step >= 0 && step < stepsPerEpoch, "SizeBalancedSampler: step \(step) of \(stepsPerEpoch)")
        var rng = SplitMix64(seed: derivedSeed(seed, UInt64(epoch), UInt64(step), Stream.balancedDraw.rawValue))
        let slots = batchSize(cases: casesPerEpoch, batch: batch, step: step)
        return (0..<slots).map { _ in
            let u = rng.uniform()
            var g = 0, acc = probabilities[0]
            while u >= acc && g < 3 { g += 1; acc += probabilities[g] }
            while groups[g].isEmpty { g = (g + 1) % 4 }  // only reachable through rounding at the top
            return groups[g][Int(rng.next() % UInt64(groups[g].count))]
        }
    }
}

/// The slots of a global batch of `count` cases that rank `rank` of `ranks` computes: a
/// contiguous block, sizes differing by at most one, possibly empty when ranks > count.
/// Every slot belongs to exactly one rank.
public func rankShare(count: Int, rank: Int, ranks: Int) -> Range<Int> {
    precondition(ranks > 0 && rank >= 0 && rank < ranks, "rankShare: rank \(rank) of \(ranks)")
    return (count * rank / ranks)..<(count * (rank + 1) / ranks)
}

/// `x` with three decimals ("0.500"), for x in [0, 1] (Foundation's `String(format:)` is not
/// imported here: its `Data` would shadow this module's name).
func threeDecimals(_ x: Double) -> String {
    guard x.isFinite && x >= 0 else { return "\(x)" }
    let thousandths = Int((x * 1000).rounded())
    let fraction = String(thousandths % 1000)
    return "\(thousandths / 1000)." + String(repeating: "0", count: 3 - fraction.count) + fraction
}
