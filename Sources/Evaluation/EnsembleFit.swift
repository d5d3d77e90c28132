import CTData

/// The grid search of DESIGN.md §5: w_out and w_in in {0, 0.01, …, 1} maximising the validation
/// AUC of the ensemble, ties broken by the accuracy at 0.5, then by the L1 distance to the paper's
/// (0.35, 0.96) in grid steps, then by the smaller w_out and w_in, so the result is deterministic.
///
/// AUC depends on both weights jointly (an outer case is compared with inner ones), but each case's
/// score depends on one weight only. So the search sorts each group's scores once per weight
/// (2 × 101 sorts), precomputes the within-group pair counts, and for each of the 101 × 101 pairs
/// counts the cross-group pairs by merging sorted lists: O(101 · n log n + 101² · n). Pair counts
/// are integers (2 per correctly ordered pair, 1 per tie), so AUC ties are exact, not
/// floating-point accidents.
public struct EnsembleFit: Sendable, Equatable {
    /// Grid steps per unit weight (step 0.01).
    public static let steps = 100

    public var rule: EnsembleRule
    public var cases: Int
    /// Validation cases that used w_out and w_in.
    public var outerCases: Int
    public var innerCases: Int
    /// Validation AUC of the ensemble with the fitted weights; nil with one class.
    public var auc: Double?
    /// Validation accuracy at 0.5 of the ensemble.
    public var accuracy: Double
    /// Validation AUC of each model alone.
    public var usAUC: Double?
    public var ssAUC: Double?

    /// Fits the weights on `validation` (at least one case). With one class only, every weight
    /// pair has an undefined AUC and the accuracy decides.
    public init(_ validation: [EnsembleCase], ratioLow: Double = EnsembleRule.paperRatioLow,
                ratioHigh: Double = EnsembleRule.paperRatioHigh) {
        precondition(!validation.isEmpty, "EnsembleFit: no validation cases")
        let shape = EnsembleRule(wOut: 0, wIn: 0, ratioLow: ratioLow, ratioHigh: ratioHigh)
        let outer = validation.filter { shape.isOuter(ratio: $0.infectionRatio) }
        let inner = validation.filter { !shape.isOuter(ratio: $0.infectionRatio) }
        let weights = (0...Self.steps).map { Double($0) / Double(Self.steps) }
        let o = weights.map { GroupScores(outer, w: $0) }
        let i = weights.map { GroupScores(inner, w: $0) }
        let paperOut = Int((EnsembleRule.paper.wOut * Double(Self.steps)).rounded())
        let paperIn = Int((EnsembleRule.paper.wIn * Double(Self.steps)).rounded())

        // Key to maximise: (2 × concordant pairs + ties, correct at 0.5, −distance to the paper).
        var best: (pairs: Int, correct: Int, distance: Int, jOut: Int, jIn: Int)?
        for jOut in 0...Self.steps {
            for jIn in 0...Self.steps {
                let pairs = o[jOut].within + i[jIn].within
                    + Self.concordance(o[jOut].positives, i[jIn].negatives)
                    + Self.concordance(i[jIn].positives, o[jOut].negatives)
                let correct = o[jOut].correct + i[jIn].correct
                let distance = abs(jOut - paperOut) + abs(jIn - paperIn)
                if let b = best {
                    if pairs != b.pairs { if pairs < b.pairs { continue } }
                    else if correct != b.correct { if correct < b.correct { continue } }
                    else if distance >= b.distance { continue }   // equal distance: keep the earlier (smaller) pair
                }
                best = (pairs, correct, distance, jOut, jIn)
            }
        }
        let b = best!
        rule = EnsembleRule(wOut: weights[b.jOut], wIn: weights[b.jIn], ratioLow: ratioLow, ratioHigh: ratioHigh)
        cases = validation.count
        outerCases = outer.count
        innerCases = inner.count
        let positives = validation.filter { $0.label == .covid }.count
        let totalPairs = positives * (validation.count - positives)
        auc = totalPairs > 0 ? Double(b.pairs) / Double(2 * totalPairs) : nil
        accuracy = Double(b.correct) / Double(validation.count)
        let labels = validation.map { Int($0.label.rawValue) }
        usAUC = Metrics.auc(labels: labels, scores: validation.map(\.us))
        ssAUC = Metrics.auc(labels: labels, scores: validation.map(\.ss))
    }

    /// The scores of one group of cases at one weight, sorted by class.
    struct GroupScores {
        var positives: [Double] = []
        var negatives: [Double] = []
        /// 2 × (positive above negative) + (tied) pairs within the group.
        var within = 0
        /// Cases classified correctly at 0.5.
        var correct = 0

        init(_ cases: [EnsembleCase], w: Double) {
            let rule = EnsembleRule(wOut: w, wIn: w)
            for c in cases {
                let p = rule.combine(us: c.us, ss: c.ss, ratio: nil)
                if c.label == .covid { positives.append(p) } else { negatives.append(p) }
                if (p >= 0.5) == (c.label == .covid) { correct += 1 }
            }
            positives.sort()
            negatives.sort()
            within = EnsembleFit.concordance(positives, negatives)
        }
    }

    /// 2 × #{(p, n): p > n} + #{(p, n): p = n} for sorted `positives` and `negatives`, by one merge.
    static func concordance(_ positives: [Double], _ negatives: [Double]) -> Int {
        var below = 0, notAbove = 0, total = 0
        for p in positives {
            while below < negatives.count && negatives[below] < p { below += 1 }
            if notAbove < below { notAbove = below }
            while notAbove < negatives.count && negatives[notAbove] <= p { notAbove += 1 }
            total += 2 * below + (notAbove - below)
        }
        return total
    }
}
