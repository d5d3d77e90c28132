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
                      global: try sum(localSums(model: model, labels: labels, masks: masks)))
    }

    /// This rank's reducible loss terms for the last forward: [Σ BCE, cases, Σ (T − M)²,
    /// Σ (T + M), COVID-19 cases] (attention terms over COVID-19 cases, 0 with the attention loss
    /// off). Throws when a term is not finite.
    public func localSums(model: ResNet3D, labels: [Float], masks: Tensor?) throws -> [Double] {
        let logits = model.logits
        let n = labels.count
        precondition(logits.shape == [n, 1], "Objective: logits \(logits.shape) for \(n) labels")
        setTargets(labels)
        var local = AttentionLossSums()
        if model.config.attention && lambda > 0 {
            guard let masks else { preconditionFailure("Objective: attention loss needs infection masks") }
            local = AttentionLoss.localSums(attention: model.attentionMap, mask: masks, labels: targets)
        }
        let bce = BinaryCrossEntropyWithLogits.forward(logits: logits, targets: targets)
        if !(bce.isFinite && local.numerator.isFinite && local.denominator.isFinite) {
            throw NonFiniteLossError(classificationSum: bce, attentionNumerator: local.numerator,
                                     attentionDenominator: local.denominator)
        }
        return [bce, Double(n), local.numerator, local.denominator, Double(labels.filter { $0 > 0.5 }.count)]
    }

    /// Fills `dLogits` and `dAttention` for the last forward from the GLOBAL sums of
    /// `localSums` (over all ranks, and over all micro-batches of the step), and returns the losses.
    public func gradients(model: ResNet3D, labels: [Float], masks: Tensor?, global: [Double]) throws -> StepLosses {
        let logits = model.logits
        precondition(global.count == 5, "Objective.gradients: \(global.count) sums")
        setTargets(labels)
        let batch = global[1]
        precondition(batch >= 1, "Objective: empty global batch")
        BinaryCrossEntropyWithLogits.backward(logits: logits, targets: targets, normalizer: batch, into: dLogits)
        let sums = AttentionLossSums(numerator: global[2], denominator: global[3], covidCount: global[4])
        let useAttention = model.config.attention && lambda > 0
        if useAttention {
            if dAttention.shape != model.attentionMap.shape { dAttention = Tensor(zeros: model.attentionMap.shape) }
            AttentionLoss.backward(attention: model.attentionMap, mask: masks!, labels: targets, global: sums,
                                   scale: lambda, into: dAttention)
        }
        let lc = global[0] / batch, lex = useAttention ? sums.loss : 0
        return StepLosses(classification: lc, attention: lex, total: lc + lambda * lex,
                          globalBatch: Int(batch), covidCases: Int(global[4]))
    }

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
        let useAttention = model.config.attention && lambda > 0
        model.backward(dLogits: dLogits, dAttention: useAttention ? dAttention : nil)
    }
}
