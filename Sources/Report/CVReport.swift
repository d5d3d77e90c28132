import CTData
import Foundation
import NIfTI
import Evaluation

/// The report of a cross-validation (`dsan cv`): the paper's Tables II and III recomputed from
/// the predictions CSVs, paired t-tests between models across folds, the ROC curves of Fig. 4
/// (pooled validation and per fold, test per fold), the training loss of each fold, and Fig. 5's
/// slices with the infection and the attention maps for the cases that have maps.
public enum CVReport {
    /// At most this many case figures per fold (chosen across the infection-ratio bands).
    public static let casesPerFold = 3

    public static func html(_ cv: CrossValidation) throws -> ReportOutput {
        var page = HTMLPage(title: "dsan cross-validation: \((cv.directory as NSString).lastPathComponent)")
        var warnings: [String] = []
        let models = ModelName.ordered(cv.models)
        let folds = cv.foldNumbers
        page.paragraph("""
            \(cv.folds)-fold cross-validation in \(cv.directory); data \(cv.data ?? "not recorded")\
            \(cv.testData.map { "; test set \($0)" } ?? "; no test set"). Models: \
            \(models.map { "\(ModelName.long($0)) (\($0))" }.joined(separator: ", ")). \
            Metrics at threshold 0.5, COVID-19 positive; tables recomputed from the predictions CSVs.
            """, class: "muted")

        // Evaluations: pooled validation, per-fold validation, per-fold test.
        var pooled: [String: Evaluation] = [:], perFold: [String: [Evaluation]] = [:], test: [String: [Evaluation]] = [:]
        for m in models {
            pooled[m] = Evaluation(cv.validation[m]!.flatMap { $0 })
            perFold[m] = cv.validation[m]!.map { Evaluation($0) }
            test[m] = cv.test[m].map { $0.map { Evaluation($0) } }
        }
        let hasTest = models.contains { test[$0] != nil }

        // Table II.
        page.heading("Table II: classification results", id: "table2")
        var rows: [[HTMLPage.Cell]] = []
        for metric in MetricColumn.allCases {
            for (i, m) in models.enumerated() {
                var row: [HTMLPage.Cell] = i == 0 ? [.label(metric.title, rows: models.count)] : []
                row.append(.label(ModelName.long(m)))
                row.append(.value(format3(metric.value(pooled[m]!.overall))))
                row.append(.value(meanSD(metric.value(FoldSummary(perFold[m]!.map(\.overall))), folds: cv.folds)))
                if hasTest { row.append(.value(test[m].map { meanSD(metric.value(FoldSummary($0.map(\.overall))), folds: cv.folds) } ?? "–")) }
                rows.append(row)
            }
        }
        page.table(caption: "TV set: the \(cv.folds) validation sets combined, and mean ± std over the folds; "
                   + (hasTest ? "test set: mean ± std of the \(cv.folds) fold models." : "no test set."),
                   header: [[.header("Results"), .header("Model"), .header("TV set"), .header("TV set (mean ± std over folds)")]
                            + (hasTest ? [.header("Test set")] : [])],
                   rows: rows)

        // Table III.
        page.heading("Table III: results per infection-ratio band", id: "table3")
        let bands = RatioBand.allCases
        var header3: [[HTMLPage.Cell]] = [[.header("Results", rows: 2), .header("Model", rows: 2),
                                           .header("TV set", columns: 3), .header("TV set (mean ± std over folds)", columns: 3)]
                                          + (hasTest ? [.header("Test set", columns: 3)] : [])]
        header3.append(Array(repeating: bands.map { HTMLPage.Cell.header(bandTitle($0)) }, count: hasTest ? 3 : 2).flatMap { $0 })
        var rows3: [[HTMLPage.Cell]] = []
        // Counts: pooled validation, and the test set as predicted by the first fold's model.
        let reference = models[0]
        func counts(_ e: Evaluation) -> [(Int, Int)] { e.bands.map { ($0.metrics.positives, $0.metrics.cases - $0.metrics.positives) } }
        let tvCounts = counts(pooled[reference]!)
        let testCounts = test[reference]?.first.map(counts)
        for (name, pick) in [("COVID-19", { (c: (Int, Int)) in c.0 }), ("CAP", { $0.1 }), ("Total No.", { $0.0 + $0.1 })] {
            var row: [HTMLPage.Cell] = name == "COVID-19" ? [.label("No. of images", rows: 3)] : []
            row.append(.label(name))
            row += tvCounts.map { .value(String(pick($0))) }
            row += tvCounts.map { _ in .value("") }
            if hasTest { row += (testCounts ?? []).map { .value(String(pick($0))) } }
            rows3.append(row)
        }
        for metric in MetricColumn.allCases {
            for (i, m) in models.enumerated() {
                var row: [HTMLPage.Cell] = i == 0 ? [.label(metric.title, rows: models.count)] : []
                row.append(.label(ModelName.long(m)))
                row += pooled[m]!.bands.map { .value(format3(metric.value($0.metrics))) }
                let foldBands = FoldSummary.of(perFold[m]!).bands
                row += bands.map { .value(meanSD(metric.value(foldBands[$0]!), folds: cv.folds)) }
                if hasTest {
                    if let t = test[m] {
                        let testBands = FoldSummary.of(t).bands
                        row += bands.map { .value(meanSD(metric.value(testBands[$0]!), folds: cv.folds)) }
                    } else {
                        row += bands.map { _ in .value("–") }
                    }
                }
                rows3.append(row)
            }
        }
        page.table(caption: "Bands of the infection ratio r (infection volume / lung volume): < 0.005, 0.005–0.030, > 0.030. "
                   + "Cases without an infection mask count in Table II only.",
                   header: header3, rows: rows3)

        // Paired t-tests across folds.
        let pairs = comparisons(models)
        if cv.folds >= 2 && !pairs.isEmpty {
            page.heading("Paired t-tests across folds", id: "ttests")
            var rowsT: [[HTMLPage.Cell]] = []
            for (set, source) in [("TV set", perFold)] + (hasTest ? [("Test set", test.compactMapValues { $0 })] : []) {
                for (a, b) in pairs {
                    guard let ea = source[a], let eb = source[b] else { continue }
                    var row: [HTMLPage.Cell] = [.label(set), .label("\(ModelName.long(a)) vs \(ModelName.long(b))")]
                    for metric in MetricColumn.allCases {
                        let paired = zip(ea, eb).compactMap { x, y -> (Double, Double)? in
                            guard let u = metric.value(x.overall), let v = metric.value(y.overall) else { return nil }
                            return (u, v)
                        }
                        if let t = PairedTTest(paired.map(\.0), paired.map(\.1)) {
                            row.append(.value(String(format: "%+.3f, p = %.3g", t.meanDifference, t.p)))
                        } else {
                            row.append(.value("n/a"))
                        }
                    }
                    rowsT.append(row)
                }
            }
            page.table(caption: "Mean difference (first − second) and two-sided p of the paired t-test over the folds",
                       header: [[.header("Set"), .header("Models")] + MetricColumn.allCases.map { .header($0.title) }],
                       rows: rowsT)
        }

        // Fig. 4: ROC curves.
        page.heading("ROC curves (paper Fig. 4)", id: "roc")
        func rocCurves(_ predictions: (String) -> [Prediction]?) -> [ROCFigure.Curve] {
            models.enumerated().compactMap { i, m in
                guard let p = predictions(m), let curve = ROCCurve(p) else { return nil }
                return ROCFigure.Curve(name: ModelName.short(m), curve: curve, color: Color.series[i % Color.series.count])
            }
        }
        let pooledCurves = rocCurves { cv.validation[$0]!.flatMap { $0 } }
        if pooledCurves.isEmpty {
            page.paragraph("No ROC curve for the combined validation sets: they hold only one class.", class: "note")
        } else {
            try page.figure(ROCFigure.render(title: "TV set, \(cv.folds) folds combined", curves: pooledCurves), name: "roc-tv.png",
                            caption: "(A) ROC curves of the \(cv.folds) validation sets combined; the legend gives each model's AUC, the dashed diagonal is chance.")
        }
        for (i, k) in folds.enumerated() {
            let curves = rocCurves { cv.validation[$0]![i] }
            guard !curves.isEmpty else { continue }
            try page.figure(ROCFigure.render(title: "TV set, fold-\(k) validation", curves: curves), name: "roc-fold-\(k).png",
                            caption: "ROC curves on the validation set of fold-\(k).")
        }
        if hasTest {
            for (i, k) in folds.enumerated() {
                let curves = rocCurves { cv.test[$0]?[i] }
                guard !curves.isEmpty else { continue }
                try page.figure(ROCFigure.render(title: "test set, fold-\(k) models", curves: curves), name: "roc-test-fold-\(k).png",
                                caption: "ROC curves on the test set of the models trained in fold-\(k) (paper Fig. 4 B–F).")
            }
        }

        // Training curves per fold.
        page.heading("Training", id: "training")
        var lossFigures = 0
        for k in folds {
            var series: [(String, [StepLine])] = []
            for m in ["baseline", "us", "ss"] {
                let dir = join(cv.foldDirectory(k), m)
                guard TrainingRun.isRun(dir) else { continue }
                let run = try TrainingRun(directory: dir)
                if !run.steps.isEmpty { series.append((m, run.steps)) }
            }
            guard !series.isEmpty else { continue }
            try page.figure(foldLossPlot(fold: k, series), name: "loss-fold-\(k).png",
                            caption: "fold-\(k): total training loss per optimizer step of each model's run; dashed lines mark epochs.")
            lossFigures += 1
        }
        if lossFigures == 0 {
            page.paragraph("No training logs (steps.jsonl) under fold-K/us or fold-K/ss.", class: "note")
        }

        // Fig. 5: case figures.
        page.heading("Attention maps (paper Fig. 5)", id: "cases")
        try caseFigures(cv, models: models, page: &page, warnings: &warnings)
        return ReportOutput(html: page.render(), figures: page.figures, warnings: warnings)
    }

    /// `0.948 ± 0.003`, or n/a; `(2 of 5 folds)` added when the metric was undefined in some folds.
    static func meanSD(_ v: MeanSD?, folds: Int) -> String {
        guard let v else { return "n/a" }
        return v.count < folds ? "\(v) (\(v.count) of \(folds) folds)" : v.description
    }

    /// Every pair of models in table order: the paper's comparisons (the baseline against each
    /// attention model) and those of `CV/tables/tables.json` (DS against each) among them.
    static func comparisons(_ models: [String]) -> [(String, String)] {
        var pairs: [(String, String)] = []
        for (i, a) in models.enumerated() { for b in models[(i + 1)...] { pairs.append((a, b)) } }
        return pairs
    }

    static func foldLossPlot(fold k: Int, _ runs: [(String, [StepLine])]) -> RGBImage {
        let all = runs.flatMap { $0.1 }
        var plot = LinePlot(title: "fold-\(k): training loss", x: .covering("optimizer step", all.map { Double($0.globalStep) }, integer: true),
                            y: .covering("loss", all.map(\.loss), includeZero: true))
        plot.width = 760
        plot.height = 440
        plot.legend = .upperRight
        let first = runs[0].1
        plot.markers = epochMarkers(first)
        let colours = ["baseline": Color.series[0], "us": Color.series[1], "ss": Color.series[2]]
        for (m, steps) in runs {
            plot.series.append(LinePlot.Series(name: ModelName.short(m), points: steps.map { (Double($0.globalStep), $0.loss) },
                                               color: colours[m] ?? .black, thickness: 2))
        }
        return plot.render()
    }

    static func caseFigures(_ cv: CrossValidation, models: [String], page: inout HTMLPage, warnings: inout [String]) throws {
        let withMaps = cv.foldNumbers.map { (k: $0, cases: cv.attentionCases(fold: $0)) }.filter { !$0.cases.isEmpty }
        guard !withMaps.isEmpty else {
            page.paragraph("No attention maps under fold-K/attention/: no case figures.", class: "note")
            return
        }
        guard let data = cv.data else {
            let note = "\(join(cv.directory, CrossValidation.file)): no `data` directory recorded, so the CT slices cannot be shown"
            warnings.append(note)
            page.paragraph(note, class: "note")
            return
        }
        let cohort: Cohort
        do {
            cohort = try Cohort(directory: data)
        } catch {
            let note = "case figures skipped: \(error)"
            warnings.append(note)
            page.paragraph(note, class: "note")
            return
        }
        var index: [String: Int] = [:]
        for (i, c) in cohort.cases.enumerated() { index[c.caseID] = i }
        page.paragraph("""
            Each figure shows one validation case: axial (anterior at the top) and coronal (superior at the top) slices, \
            the patient's right on the image's left. Columns: the CT in the preprocessing window (−1350 to 150 HU), \
            the infection mask (red, with the lung outlined in green), and each model's attention map in jet colours \
            scaled to that map's maximum, transparent below a tenth of it. Slices pass through the largest infection \
            cross-section, or through the attention maximum when the case has no infection voxels.
            """)
        for (k, ids) in withMaps {
            let i = cv.foldNumbers.firstIndex(of: k)!
            var probabilities: [String: [String: Double]] = [:]
            for m in models { for p in cv.validation[m]![i] { probabilities[p.caseID, default: [:]][m] = p.probability } }
            let ensemble = try? EnsembleFile.load(join(cv.foldDirectory(k), "ensemble.json"), checkCheckpoints: false)
            for id in pick(ids, cohort: cohort, index: index, count: casesPerFold) {
                guard let ci = index[id] else {
                    let note = "fold-\(k): case \(id) has attention maps but is not in \(data)"
                    warnings.append(note)
                    page.paragraph(note, class: "note")
                    continue
                }
                let info = cohort.cases[ci]
                let volumes = try CaseLoader.volumes(cohort, case: ci)
                var maps: [AttentionMap] = []
                var raw: [String: [Float]] = [:]
                for m in ["baseline", "us", "ss"] {
                    guard let path = cv.attentionPath(fold: k, model: m, caseID: id) else { continue }
                    let voxels = try CaseLoader.attention(path, size: volumes.size)
                    raw[m] = voxels
                    maps.append(AttentionMap(name: ModelName.short(m), voxels: voxels))
                }
                let ratio: Double? = info.hasInfectionMask ? Double(info.infectionRatio) : nil
                if let ensemble, let us = raw["us"], let ss = raw["ss"] {
                    // Eq. (5) applied to the maps: the weight the ensemble gives this case's US model.
                    let w = Float(ensemble.rule.weight(ratio: ratio))
                    maps.append(AttentionMap(name: "DS w=" + String(format: "%.2f", w),
                                             voxels: zip(us, ss).map { w * $0 + (1 - w) * $1 }))
                }
                let choice = SliceChoice.choose(size: volumes.size, infection: volumes.infection, maps: maps.map(\.voxels))
                let label = info.label == .covid ? "COVID-19" : "CAP"
                let title = "fold-\(k)  case \(id)  \(label)" + (ratio.map { "  r=" + String(format: "%.4f", $0) } ?? "")
                let figure = SliceFigure.render(title: title, volumes: volumes, maps: maps, choice: choice)
                let probs = models.compactMap { m in probabilities[id]?[m].map { "\(ModelName.long(m)) \(String(format: "%.3f", $0))" } }
                try page.figure(figure, name: "case-\(k)-\(id).png", caption: """
                    fold-\(k), case \(id) (patient \(info.patientID)), \(label), infection ratio \
                    \(ratio.map { String(format: "%.4f (band %@)", $0, bandTitle(Evaluation.band($0))) } ?? "unknown (no mask)"); \
                    P(COVID-19): \(probs.isEmpty ? "not predicted" : probs.joined(separator: ", ")). \
                    Slices \(choice.reason).\(maps.contains { $0.name.hasPrefix("DS") } ? " DS: w·US + (1 − w)·SS with the ensemble's weight w for this case (Eq. (5))." : "")
                    """)
            }
        }
    }

    /// Up to `count` of `ids`, taken in turn from each infection-ratio band (as Fig. 5 shows one
    /// case per band), COVID-19 cases first.
    static func pick(_ ids: [String], cohort: Cohort, index: [String: Int], count: Int) -> [String] {
        func key(_ id: String) -> Int {
            guard let i = index[id] else { return 4 }
            let c = cohort.cases[i]
            return c.hasInfectionMask ? RatioBand(ratio: c.infectionRatio).rawValue : 3
        }
        let sorted = ids.sorted { (index[$0].map { cohort.cases[$0].label == .covid ? 0 : 1 } ?? 2, $0) < (index[$1].map { cohort.cases[$0].label == .covid ? 0 : 1 } ?? 2, $1) }
        var groups: [Int: [String]] = [:]
        for id in sorted { groups[key(id), default: []].append(id) }
        var out: [String] = []
        var round = 0
        while out.count < min(count, ids.count) {
            for g in groups.keys.sorted() where round < groups[g]!.count && out.count < count { out.append(groups[g]![round]) }
            round += 1
        }
        return out
    }
}

/// Writes the report of `directory`: a cross-validation when it holds `cv.json`, a training run
/// when it holds `steps.jsonl` or `metrics.jsonl`.
public enum Report {
    public static func generate(directory: String) throws -> ReportOutput {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: directory, isDirectory: &isDirectory), isDirectory.boolValue else {
            throw DataError(file: directory, "no such directory; pass a training run or a cross-validation directory")
        }
        if CrossValidation.isCrossValidation(directory) {
            return try CVReport.html(CrossValidation(directory: directory))
        }
        if TrainingRun.isRun(directory) {
            return try RunReport.html(TrainingRun(directory: directory))
        }
        throw DataError(file: directory, "is neither a training run (no \(TrainingRun.stepsFile) or \(TrainingRun.metricsFile)) nor a cross-validation (no \(CrossValidation.file))")
    }
}
