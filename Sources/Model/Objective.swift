import NN

/// Sums a small buffer of doubles over all ranks and returns the result (identity on one rank).
/// Distributed training passes an MPI all-reduce; the model knows nothing of MPI.
public typealias SumAcrossRanks = ([Double]) throws -> [Double]

/// A loss that is not a finite number on this rank: training cannot go on from here.
public struct NonFiniteLossError: Error, CustomStringConvertible {
    public var classificationSum: Double
    public var attentionNumerator: Double
    public var attentionDenominator: Double
    public var description: String {
        "the loss is not finite on this rank (local BCE sum \(classificationSum), attention terms \(attentionNumerator) / \(attentionDenominator)); lower the learning rate or check the input data for NaN/Inf voxels (`dsan inspect`)"
    }
}

/// The losses of one step over the global batch (DESIGN.md §2).
public struct StepLosses: Equatable, Sendable {
    /// L_c, binary cross-entropy on logits, mean over the global batch.
    public var classification: Double
    /// L_ex, the attention loss: one ratio over the COVID-19 cases of the global batch.
    public var attention: Double
    /// L = L_c + λ L_ex.
    public var total: Double
    /// Cases in the global batch, and the COVID-19 cases among them.
    public var globalBatch: Int
    public var covidCases: Int
}

/// The reducible loss terms of some cases (one rank's share, one micro-batch, or, once summed
/// over ranks and micro-batches, the whole global batch). Each term is a plain sum, so sums of
/// parts add up to the sum of the whole; the losses are ratios taken only of the global sums.
public struct LossSums: Equatable, Sendable {
    /// Σ BCE(logit, label) over the cases.
    public var classificationSum = 0.0
    /// Number of cases.
    public var cases = 0.0
    /// Σ_{COVID i} Σ_voxels (T_i − M_i)² (0 with the attention loss off).
    public var attentionNumerator = 0.0
    /// Σ_{COVID i} (Σ_voxels T_i + Σ_voxels M_i) (0 with the attention loss off).
    public var attentionDenominator = 0.0
    /// Number of COVID-19 cases.
    public var covidCases = 0.0

    public init() {}

    public init(classificationSum: Double, cases: Double, attentionNumerator: Double,
                attentionDenominator: Double, covidCases: Double) {
        self.classificationSum = classificationSum
        self.cases = cases
        self.attentionNumerator = attentionNumerator
        self.attentionDenominator = attentionDenominator
        self.covidCases = covidCases
    }

    /// The five terms in a fixed order, the buffer a cross-rank sum reduces.
    public var values: [Double] { [classificationSum, cases, attentionNumerator, attentionDenominator, covidCases] }

    /// The terms back from `values` (after the cross-rank sum).
    public init(values v: [Double]) {
        precondition(v.count == 5, "LossSums: expected 5 values, got \(v.count)")
        self.init(classificationSum: v[0], cases: v[1], attentionNumerator: v[2],
                  attentionDenominator: v[3], covidCases: v[4])
    }

    /// The sums of every rank (`sum` is the cross-rank reduction).
    public func summed(_ sum: SumAcrossRanks) throws -> LossSums { LossSums(values: try sum(values)) }

    public static func + (a: LossSums, b: LossSums) -> LossSums {
        LossSums(values: zip(a.values, b.values).map { $0 + $1 })
    }

    public static func += (a: inout LossSums, b: LossSums) { a = a + b }

    /// The attention terms as `AttentionLoss` takes them.
    public var attentionSums: AttentionLossSums {
        AttentionLossSums(numerator: attentionNumerator, denominator: attentionDenominator, covidCount: covidCases)
    }

    /// The losses of these sums, taken as the global batch: L_c = Σ BCE / cases,
    /// L_ex = numerator / denominator (0 without COVID-19 cases, or when `attention` is false),
    /// L = L_c + λ L_ex. The one place the step's losses are computed.
    public func losses(lambda: Double, attention: Bool) -> StepLosses {
        let lc = classificationSum / cases, lex = attention ? attentionSums.loss : 0
        return StepLosses(classification: lc, attention: lex, total: lc + lambda * lex,
                          globalBatch: Int(cases), covidCases: Int(covidCases))
    }
}

/// Computes L = L_c + λ L_ex for the last forward and the gradients that start the backward,
/// with global normalisers: the local sums of every rank are summed by `sum` before any division,
/// so R ranks compute exactly the loss of one rank on the whole global batch (DESIGN.md §4).
public final class Objective {
    /// λ, the attention loss weight (0.5 in the paper; 0 with the attention module off).
    public var lambda: Double
    public private(set) var dLogits = Tensor(zeros: [0])
    public private(set) var dAttention = Tensor(zeros: [0])
    private var targets = Tensor(zeros: [0])

    public init(lambda: Double = 0.5) { self.lambda = lambda }

    /// `labels` are the local cases' labels (1 COVID-19, 0 CAP); `masks` their infection masks
    /// `[n, 1, D, H, W]` (needed when λ > 0 and attention is on). Fills `dLogits` and, with the
    /// attention loss, `dAttention`; returns the global losses.
    public func evaluate(model: ResNet3D, labels: [Float], masks: Tensor?, sum: SumAcrossRanks) throws -> StepLosses {
        try gradients(model: model, labels: labels, masks: masks,
                      global: try localSums(model: model, labels: labels, masks: masks).summed(sum))
    }

    /// This rank's reducible loss terms for the last forward (attention terms over COVID-19 cases,
    /// 0 with the attention loss off). Throws when a term is not finite.
    public func localSums(model: ResNet3D, labels: [Float], masks: Tensor?) throws -> LossSums {
        let logits = model.logits
        let n = labels.count
        precondition(logits.shape == [n, 1], "Objective: logits \(logits.shape) for \(n) labels")
        setTargets(labels)
        var local = AttentionLossSums()
        if usesAttention(model) {
            guard let masks else { preconditionFailure("Objective: attention loss needs infection masks") }
            local = AttentionLoss.localSums(attention: model.attentionMap, mask: masks, labels: targets)
        }
        let bce = BinaryCrossEntropyWithLogits.forward(logits: logits, targets: targets)
        if !(bce.isFinite && local.numerator.isFinite && local.denominator.isFinite) {
            throw NonFiniteLossError(classificationSum: bce, attentionNumerator: local.numerator,
                                     attentionDenominator: local.denominator)
        }
        return LossSums(classificationSum: bce, cases: Double(n), attentionNumerator: local.numerator,
                        attentionDenominator: local.denominator, covidCases: Double(labels.filter { $0 > 0.5 }.count))
    }

    /// Fills `dLogits` and `dAttention` for the last forward from the GLOBAL sums of
    /// `localSums` (over all ranks, and over all micro-batches of the step), and returns the losses.
    public func gradients(model: ResNet3D, labels: [Float], masks: Tensor?, global: LossSums) throws -> StepLosses {
        let logits = model.logits
        setTargets(labels)
        let batch = global.cases
        precondition(batch >= 1, "Objective: empty global batch")
        BinaryCrossEntropyWithLogits.backward(logits: logits, targets: targets, normalizer: batch, into: dLogits)
        let sums = global.attentionSums
        let useAttention = usesAttention(model)
        if useAttention {
            if dAttention.shape != model.attentionMap.shape { dAttention = Tensor(zeros: model.attentionMap.shape) }
            AttentionLoss.backward(attention: model.attentionMap, mask: masks!, labels: targets, global: sums,
                                   scale: lambda, into: dAttention)
        }
        return global.losses(lambda: lambda, attention: useAttention)
    }

    /// True when the attention loss takes part: the model has the attention module and λ > 0.
    public func usesAttention(_ model: ResNet3D) -> Bool { model.config.attention && lambda > 0 }

    private func setTargets(_ labels: [Float]) {
        let n = labels.count
        if targets.shape != [n] || dLogits.shape != [n, 1] {
            targets = Tensor(zeros: [n])
            dLogits = Tensor(zeros: [n, 1])
        }
        for i in 0..<n { targets.data[i] = labels[i] }
    }

    /// Runs the model's backward for the gradients `evaluate` produced.
    public func backward(model: ResNet3D) {
        model.backward(dLogits: dLogits, dAttention: usesAttention(model) ? dAttention : nil)
    }
}
