import CTData
import Foundation
import Evaluation

/// A generated page: the HTML text, how many figures it embeds, and what could not be shown
/// (for the command line to print).
public struct ReportOutput {
    public var html: String
    public var figures: Int
    public var warnings: [String]
}

/// Names of the models as in the paper's tables (RN34: 3D ResNet34; US: uniform sampling; SS:
/// size-balanced sampling; DS: dual sampling, the ensemble) and shorter ones for figure labels.
public enum ModelName {
    public static func long(_ key: String) -> String {
        switch key {
        case "baseline": "RN34 + US"
        case "us": "Attention RN34 + US"
        case "ss": "Attention RN34 + SS"
        case "ensemble": "Attention RN34 + DS"
        default: key
        }
    }

    public static func short(_ key: String) -> String {
        switch key {
        case "baseline": "RN34+US"
        case "us": "Att-RN34+US"
        case "ss": "Att-RN34+SS"
        case "ensemble": "Att-RN34+DS"
        default: key
        }
    }

    /// The paper's order: baseline, US, SS, DS, then anything else.
    static func ordered(_ keys: [String]) -> [String] {
        let order = ["baseline", "us", "ss", "ensemble"]
        return keys.sorted { (order.firstIndex(of: $0) ?? order.count, $0) < (order.firstIndex(of: $1) ?? order.count, $1) }
    }
}

/// The metrics of the paper's tables, in their order, with their column names.
enum MetricColumn: CaseIterable {
    case auc, accuracy, sensitivity, specificity, f1

    var title: String {
        switch self {
        case .auc: "AUC"
        case .accuracy: "Accuracy"
        case .sensitivity: "Sensitivity"
        case .specificity: "Specificity"
        case .f1: "F1-score"
        }
    }

    func value(_ m: Metrics) -> Double? {
        switch self {
        case .auc: m.auc
        case .accuracy: m.accuracy
        case .sensitivity: m.sensitivity
        case .specificity: m.specificity
        case .f1: m.f1
        }
    }

    func value(_ s: FoldSummary) -> MeanSD? {
        switch self {
        case .auc: s.auc
        case .accuracy: s.accuracy
        case .sensitivity: s.sensitivity
        case .specificity: s.specificity
        case .f1: s.f1
        }
    }
}

func format3(_ v: Double?) -> String { v.map { String(format: "%.3f", $0) } ?? "n/a" }

/// The page of one training run: the loss per optimizer step (`steps.jsonl`), the validation
/// metrics per epoch (`metrics.jsonl`) as a figure and a table, and, when the run wrote
/// `val_predictions.csv`, the metrics per infection-ratio band and the ROC curve.
public enum RunReport {
    public static func html(_ run: TrainingRun) throws -> ReportOutput {
        var page = HTMLPage(title: "dsan training run: \((run.directory as NSString).lastPathComponent)")
        var warnings: [String] = []
        page.paragraph("Run directory: \(run.directory)", class: "muted")

        page.heading("Training loss")
        if run.steps.isEmpty {
            let note = "\(join(run.directory, TrainingRun.stepsFile)): no steps logged"
            warnings.append(note)
            page.paragraph(note, class: "note")
        } else {
            try page.figure(lossPlot(run.steps), name: "loss.png", caption: """
                Loss per optimizer step (global step on the x axis; grey lines mark the start of each epoch): \
                the total objective, its classification (cross-entropy) term and its attention term (paper Eq. (3)).
                """)
        }

        let waits = run.steps.compactMap(\.batchNormSyncSecondsByRank).filter { $0.count > 1 }
        if let ranks = waits.first?.count, waits.allSatisfy({ $0.count == ranks }) {
            page.heading("Ranks")
            let summary = SyncWaits(waits)
            page.table(caption: "Seconds each rank spent per step in the synchronised batch norms' global sums, "
                           + "waiting for the slowest rank included (steps.jsonl, \(waits.count) steps)",
                       header: [["rank", "median s", "mean s", "least-waiting in"].map { .header($0) }],
                       rows: (0..<ranks).map { r in
                           [.value(String(r)), .value(String(format: "%.3f", summary.median[r])),
                            .value(String(format: "%.3f", summary.mean[r])), .value("\(summary.leastCount[r]) of \(waits.count) steps")]
                       })
            page.paragraph("""
                Every rank waits for the slowest one at each batch norm, so the rank that waits least is the one \
                the others wait for. With equal shares on equal hardware that role moves from step to step; a rank \
                that holds it in most steps is a straggler (a slower node, a busy or shared core).
                """)
            if let r = summary.straggler {
                let note = "rank \(r) waited least in \(summary.leastCount[r]) of \(waits.count) steps: the other ranks wait for it (a slower node or a busy core?)"
                warnings.append(note)
                page.paragraph(note, class: "note")
            }
        }

        page.heading("Validation per epoch")
        let validated = run.epochs.filter { $0.validation != nil }
        if !validated.isEmpty {
            var plot = LinePlot(title: "validation metrics per epoch",
                                x: .covering("epoch", validated.map { Double($0.epoch) }, integer: true), y: .unit("metric"))
            plot.legend = .lowerRight
            for (i, metric) in MetricColumn.allCases.enumerated() {
                let points = validated.compactMap { e in metric.value(e.validation!).map { (x: Double(e.epoch), y: $0) } }
                plot.series.append(LinePlot.Series(name: metric.title, points: points, color: Color.series[i], thickness: 2.5, dots: 7))
            }
            try page.figure(plot.render(), name: "validation.png",
                            caption: "Validation metrics after each epoch at threshold 0.5 (COVID-19 positive).")
        }
        if run.epochs.isEmpty {
            let note = "\(join(run.directory, TrainingRun.metricsFile)): no epochs logged"
            warnings.append(note)
            page.paragraph(note, class: "note")
        } else {
            let best = validated.max { ($0.validation!.auc ?? -1) < ($1.validation!.auc ?? -1) }?.epoch
            let rows: [[HTMLPage.Cell]] = run.epochs.map { e in
                let v = e.validation
                return [.value(String(e.epoch)), .value(String(format: "%.4f", e.meanLoss)), .value(String(format: "%.2e", e.lr)),
                        .value(String(format: "%.1f", e.seconds)), .value(String(format: "%.2f", e.samplesPerSecond)),
                        .value(v.map { String($0.cases) } ?? "–"), .value(v.map { String($0.positives) } ?? "–")]
                    + MetricColumn.allCases.map { column in .value(v.map { format3(column.value($0)) } ?? "–") }
            }
            page.table(caption: "Per-epoch log (metrics.jsonl); the epoch with the best validation AUC is in bold",
                       header: [["epoch", "mean loss", "lr", "seconds", "samples/s", "val cases", "COVID-19"].map { .header($0) }
                                + MetricColumn.allCases.map { .header($0.title) }],
                       rows: rows, highlight: best.flatMap { b in run.epochs.firstIndex { $0.epoch == b } })
        }

        if let predictions = run.validation {
            page.heading("Validation predictions")
            let evaluation = Evaluation(predictions)
            page.table(caption: "Metrics of \(TrainingRun.predictionsFile) (\(predictions.count) cases) overall and per infection-ratio band",
                       header: [["group", "cases", "COVID-19", "CAP"].map { .header($0) } + MetricColumn.allCases.map { .header($0.title) }],
                       rows: bandRows(evaluation))
            if let curve = ROCCurve(predictions) {
                try page.figure(ROCFigure.render(title: "validation ROC",
                                                 curves: [ROCFigure.Curve(name: "this run", curve: curve, color: Color.series[0])]),
                                name: "roc.png", caption: "ROC curve of the validation predictions; the dashed diagonal is chance.")
            } else {
                page.paragraph("No ROC curve: the validation set holds only one class.", class: "note")
            }
        }
        return ReportOutput(html: page.render(), figures: page.figures, warnings: warnings)
    }

    /// Per-rank summary of `batchNormSyncSecondsByRank` over a run's steps.
    struct SyncWaits {
        var median: [Double], mean: [Double]
        /// Steps in which each rank waited least.
        var leastCount: [Int]
        /// A rank that waited least in more than half the steps and at least twice its fair share,
        /// over 10 steps or more.
        var straggler: Int?

        init(_ waits: [[Double]]) {
            let ranks = waits[0].count
            median = (0..<ranks).map { r in let s = waits.map { $0[r] }.sorted(); return s[s.count / 2] }
            mean = (0..<ranks).map { r in waits.reduce(0) { $0 + $1[r] } / Double(waits.count) }
            leastCount = [Int](repeating: 0, count: ranks)
            for w in waits { leastCount[w.indices.min { w[$0] < w[$1] }!] += 1 }
            let top = leastCount.indices.max { leastCount[$0] < leastCount[$1] }!
            let share = Double(leastCount[top]) / Double(waits.count)
            straggler = waits.count >= 10 && share > 0.5 && share >= 2 / Double(ranks) ? top : nil
        }
    }

    static func bandRows(_ e: Evaluation) -> [[HTMLPage.Cell]] {
        func row(_ name: String, _ m: Metrics) -> [HTMLPage.Cell] {
            [.label(name), .value(String(m.cases)), .value(String(m.positives)), .value(String(m.cases - m.positives))]
                + MetricColumn.allCases.map { .value(format3($0.value(m))) }
        }
        return [row("overall", e.overall)] + e.bands.map { row(bandTitle($0.band), $0.metrics) }
    }

    /// The training loss of `steps` per global step, with epoch boundaries.
    static func lossPlot(_ steps: [StepLine], title: String = "training loss") -> RGBImage {
        let xs = steps.map { Double($0.globalStep) }
        let all = steps.flatMap { [$0.loss, $0.classification, $0.attention] }
        var plot = LinePlot(title: title, x: .covering("optimizer step", xs, integer: true), y: .covering("loss", all, includeZero: true))
        plot.width = 760
        plot.height = 480
        plot.legend = .upperRight
        plot.markers = epochMarkers(steps)
        let parts: [(String, KeyPath<StepLine, Double>)] = [("total", \.loss), ("classification", \.classification), ("attention", \.attention)]
        for (i, (name, key)) in parts.enumerated() {
            plot.series.append(LinePlot.Series(name: name, points: steps.map { (Double($0.globalStep), $0[keyPath: key]) },
                                               color: Color.series[i], thickness: i == 0 ? 2.5 : 1.5))
        }
        return plot.render()
    }
}

/// The first step of each epoch after the first, labelled with the epoch.
func epochMarkers(_ steps: [StepLine]) -> [(x: Double, label: String)] {
    zip(steps, steps.dropFirst()).filter { $0.epoch != $1.epoch }.map { (Double($1.globalStep), "epoch \($1.epoch)") }
}

/// `r < 0.005`, `0.005–0.030`, `r > 0.030` as in the paper's Table III.
func bandTitle(_ band: RatioBand) -> String {
    switch band {
    case .low: "< 0.005"
    case .middle: "0.005–0.030"
    case .high: "> 0.030"
    }
}
