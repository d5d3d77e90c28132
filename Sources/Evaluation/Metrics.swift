import CTData

/// Binary classification metrics of DESIGN.md §8 at threshold 0.5.
public struct Metrics: Codable, Equatable, Sendable {
    public var cases: Int
    public var positives: Int
    /// Area under the ROC curve (Mann–Whitney U with ties counted ½); nil with one class only.
    public var auc: Double?
    public var accuracy: Double?
    /// TP / (TP + FN); nil without positives.
    public var sensitivity: Double?
    /// TN / (TN + FP); nil without negatives.
    public var specificity: Double?
    /// 2 TP / (2 TP + FP + FN); nil when undefined.
    public var f1: Double?

    /// `labels` 1 = COVID-19 (positive), 0 = CAP; `scores` probabilities.
    public init(labels: [Int], scores: [Double], threshold: Double = 0.5) {
        precondition(labels.count == scores.count, "Metrics: \(labels.count) labels, \(scores.count) scores")
        cases = labels.count
        positives = labels.filter { $0 == 1 }.count
        let negatives = cases - positives
        auc = Metrics.auc(labels: labels, scores: scores)
        var tp = 0, tn = 0, fp = 0, fn = 0
        for (y, s) in zip(labels, scores) {
            let predicted = s >= threshold
            switch (y == 1, predicted) {
            case (true, true): tp += 1
            case (true, false): fn += 1
            case (false, true): fp += 1
            case (false, false): tn += 1
            }
        }
        accuracy = cases > 0 ? Double(tp + tn) / Double(cases) : nil
        sensitivity = positives > 0 ? Double(tp) / Double(positives) : nil
        specificity = negatives > 0 ? Double(tn) / Double(negatives) : nil
        f1 = (2 * tp + fp + fn) > 0 ? Double(2 * tp) / Double(2 * tp + fp + fn) : nil
    }

    /// AUC as the probability that a random positive scores above a random negative, ties ½
    /// (rank statistic with mid-ranks). nil when either class is absent.
    public static func auc(labels: [Int], scores: [Double]) -> Double? {
        let pos = labels.filter { $0 == 1 }.count, neg = labels.count - pos
        guard pos > 0, neg > 0 else { return nil }
        let order = scores.indices.sorted { scores[$0] < scores[$1] }
        var rankSum = 0.0, i = 0
        while i < order.count {
            var j = i
            while j + 1 < order.count && scores[order[j + 1]] == scores[order[i]] { j += 1 }
            let midRank = Double(i + j) / 2 + 1
            for k in i...j where labels[order[k]] == 1 { rankSum += midRank }
            i = j + 1
        }
        let u = rankSum - Double(pos) * Double(pos + 1) / 2
        return u / (Double(pos) * Double(neg))
    }
}
