import Evaluation

/// The receiver operating characteristic of one model on one set of predictions.
///
/// Points are (1 − specificity, sensitivity) as the threshold falls from above the highest score
/// to below the lowest, COVID-19 the positive class: from (0, 0) to (1, 1). Cases with equal
/// scores move the curve in one diagonal step (they cannot be separated by any threshold), so the
/// trapezoidal area under the points equals the rank AUC of `Metrics.auc` with ties counted ½.
public struct ROCCurve: Sendable, Equatable {
    public var points: [Point]
    /// `Metrics.auc` of the same predictions.
    public var auc: Double

    public struct Point: Sendable, Equatable {
        public var falsePositiveRate: Double
        public var truePositiveRate: Double

        public init(_ fpr: Double, _ tpr: Double) {
            falsePositiveRate = fpr
            truePositiveRate = tpr
        }
    }

    /// nil when either class is absent (no curve exists). `labels` 1 = COVID-19, 0 = CAP.
    public init?(labels: [Int], scores: [Double]) {
        precondition(labels.count == scores.count, "ROCCurve: \(labels.count) labels, \(scores.count) scores")
        let positives = labels.filter { $0 == 1 }.count, negatives = labels.count - positives
        guard positives > 0, negatives > 0, let auc = Metrics.auc(labels: labels, scores: scores) else { return nil }
        self.auc = auc
        let order = scores.indices.sorted { scores[$0] > scores[$1] }
        var tp = 0, fp = 0, i = 0
        var points = [Point(0, 0)]
        while i < order.count {
            var j = i
            while j < order.count && scores[order[j]] == scores[order[i]] {
                if labels[order[j]] == 1 { tp += 1 } else { fp += 1 }
                j += 1
            }
            points.append(Point(Double(fp) / Double(negatives), Double(tp) / Double(positives)))
            i = j
        }
        self.points = points
    }

    public init?(_ predictions: [Prediction]) {
        self.init(labels: predictions.map { Int($0.label.rawValue) }, scores: predictions.map(\.probability))
    }

    /// The trapezoidal area under `points`.
    public var trapezoidalArea: Double {
        zip(points, points.dropFirst()).reduce(0) { sum, pair in
            let (a, b) = pair
            return sum + (b.falsePositiveRate - a.falsePositiveRate) * (a.truePositiveRate + b.truePositiveRate) / 2
        }
    }
}

/// ROC figures as in the paper's Fig. 4: one curve per model in its own colour, the chance
/// diagonal dashed, axes 0–1 titled "1 − specificity" and "sensitivity", a legend with each
/// model's AUC.
public enum ROCFigure {
    public struct Curve {
        public var name: String
        public var curve: ROCCurve
        public var color: Color

        public init(name: String, curve: ROCCurve, color: Color) {
            self.name = name
            self.curve = curve
            self.color = color
        }
    }

    public static func render(title: String, curves: [Curve], size: Int = 600) -> RGBImage {
        var plot = LinePlot(title: title, x: .unit("1 − specificity"), y: .unit("sensitivity"))
        plot.width = size
        plot.height = size
        plot.square = true
        plot.series.append(LinePlot.Series(name: nil, points: [(0, 0), (1, 1)], color: .grey, thickness: 1.5, dash: (6, 5)))
        // Earlier curves thicker, so a curve that coincides with a later one still shows at its edges.
        for (i, c) in curves.enumerated() {
            plot.series.append(LinePlot.Series(
                name: c.name + "  AUC " + String(format: "%.3f", c.curve.auc),
                points: c.curve.points.map { ($0.falsePositiveRate, $0.truePositiveRate) },
                color: c.color, thickness: max(1.5, 5 - 1.5 * Double(i))))
        }
        plot.legend = .lowerRight
        return plot.render()
    }
}
