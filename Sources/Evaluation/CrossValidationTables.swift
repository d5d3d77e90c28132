import CTData
import Foundation

/// The models of a cross-validation: the paper's two and, on request, the baseline.
public enum CVModel: String, CaseIterable, Sendable {
    case us, ss, baseline

    /// The paper's names (Tables II and III).
    public var title: String {
        switch self {
        case .us: return "Attention RN34 + US"
        case .ss: return "Attention RN34 + SS"
        case .baseline: return "RN34 + US"
        }
    }
}

/// Tables II and III of a cross-validation directory (`dsan cv`), from the prediction files it
/// holds: `fold-K/predictions/MODEL.csv` for each model and `ensemble`, and with a test set
/// `test/MODEL-fold-K.csv`. Written to `tables/` as Markdown, CSV and JSON, with `tests.json`.
public enum CrossValidationTables {
    /// The paper's Table II and Table III in its rows and columns. Rows: each metric ×
    /// each model (RN34 + US, Attention RN34 + US / SS / DS); Table III adds the image counts per
    /// band. Columns: "TV set" — the validation predictions of all folds combined, as the paper
    /// reports it — and "Test set" — mean ± sd over the folds' models on --test (n/a without).
    /// tables.json adds per-fold AUCs and paired t-test p-values of DS against each model.
    public static func write(in directory: String, models: [CVModel], folds: Int, test: Bool) throws -> String {
        func path(_ parts: String...) -> String {
            parts.reduce(directory) { ($0 as NSString).appendingPathComponent($1) }
        }
        let order: [CVModel] = [.baseline, .us, .ss].filter { models.contains($0) }
        let names = order.map(\.rawValue) + ["ensemble"]
        let titles = order.map(\.title) + ["Attention RN34 + DS"]
        var foldPredictions: [String: [[Prediction]]] = [:], testEvaluations: [String: [Evaluation]] = [:]
        for name in names {
            foldPredictions[name] = try (0..<folds).map { try PredictionsCSV.read(path("fold-\($0)", "predictions", name + ".csv")) }
            if test {
                testEvaluations[name] = try (0..<folds).map { Evaluation(try PredictionsCSV.read(path("test", "\(name)-fold-\($0).csv"))) }
            }
        }
        let pooled = names.map { Evaluation(foldPredictions[$0]!.flatMap { $0 }) }
        let metricNames = ["AUC", "Accuracy", "Sensitivity", "Specificity", "F1-score"]
        func values(_ m: Metrics?) -> [Double?] { [m?.auc, m?.accuracy, m?.sensitivity, m?.specificity, m?.f1] }
        func mean(_ s: FoldSummary?) -> [String] {
            guard let s else { return Array(repeating: "n/a", count: 5) }
            return [s.auc, s.accuracy, s.sensitivity, s.specificity, s.f1].map { $0?.description ?? "n/a" }
        }
        func f(_ v: Double?) -> String { v.map { String(format: "%.3f", $0) } ?? "n/a" }

        // Table II.
        var t2 = [["Results", "Model", "TV set", "Test set"]]
        for (mi, metric) in metricNames.enumerated() {
            for (k, name) in names.enumerated() {
                let tv = f(values(pooled[k].overall)[mi])
                let testCell = testEvaluations[name].map { mean(FoldSummary.of($0).overall)[mi] } ?? "n/a"
                t2.append([metric, titles[k], tv, testCell])
            }
        }
        // Table III.
        let bands = RatioBand.allCases
        let header3 = ["Results", "Model"] + bands.map { "TV \($0)" } + bands.map { "Test \($0)" }
        var t3 = [header3]
        let all = foldPredictions[names[0]]!.flatMap { $0 }
        func count(_ label: Label?, _ band: RatioBand) -> String {
            String(all.filter { ($0.infectionRatio.map { RatioBand(ratio: Float($0)) } == band) && (label == nil || $0.label == label!) }.count)
        }
        let testAll = test ? try PredictionsCSV.read(path("test", "\(names[0])-fold-0.csv")) : []
        func testCount(_ label: Label?, _ band: RatioBand) -> String {
            !test ? "n/a" : String(testAll.filter { ($0.infectionRatio.map { RatioBand(ratio: Float($0)) } == band) && (label == nil || $0.label == label!) }.count)
        }
        for (title, label) in [("COVID-19", Label.covid), ("CAP", Label.cap)] as [(String, Label)] {
            t3.append(["No. of images", title] + bands.map { count(label, $0) } + bands.map { testCount(label, $0) })
        }
        t3.append(["Total No.", ""] + bands.map { count(nil, $0) } + bands.map { testCount(nil, $0) })
        for (mi, metric) in metricNames.enumerated() {
            for (k, name) in names.enumerated() {
                let tv = bands.map { b in f(values(pooled[k].bands.first { $0.band == b }?.metrics)[mi]) }
                let testCells = bands.map { b in testEvaluations[name].map { mean(FoldSummary.of($0).bands[b])[mi] } ?? "n/a" }
                t3.append([metric, titles[k]] + tv + testCells)
            }
        }
        func markdown(_ rows: [[String]]) -> String {
            (["| " + rows[0].joined(separator: " | ") + " |", "|" + String(repeating: "---|", count: rows[0].count)]
             + rows.dropFirst().map { "| " + $0.joined(separator: " | ") + " |" }).joined(separator: "\n") + "\n"
        }
        func csv(_ rows: [[String]]) -> String { CSV.text(rows, quotingSpaces: true) }
        func json(_ rows: [[String]]) throws -> Data {
            let objects = rows.dropFirst().map { Dictionary(uniqueKeysWithValues: zip(rows[0], $0)) }
            return try JSONSerialization.data(withJSONObject: objects, options: [.prettyPrinted, .sortedKeys])
        }
        let dir = path("tables")
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let caption2 = "TABLE II: classification results over \(folds) folds. TV set: the \(folds) validation sets combined; Test set: mean ± sd of the \(folds) fold models" + (!test ? " (no test set given)" : "") + ". Threshold 0.5.\n\n"
        let caption3 = "TABLE III: group-wise results by infection ratio (infection / lung volume), as Table II.\n\n"
        try (caption2 + markdown(t2)).write(toFile: dir + "/table2.md", atomically: true, encoding: .utf8)
        try csv(t2).write(toFile: dir + "/table2.csv", atomically: true, encoding: .utf8)
        try json(t2).write(to: URL(fileURLWithPath: dir + "/table2.json"))
        try (caption3 + markdown(t3)).write(toFile: dir + "/table3.md", atomically: true, encoding: .utf8)
        try csv(t3).write(toFile: dir + "/table3.csv", atomically: true, encoding: .utf8)
        try json(t3).write(to: URL(fileURLWithPath: dir + "/table3.json"))
        // Per-fold AUCs and paired t-tests (DS against each model, on the folds' validation AUCs).
        var tests: [[String: Any]] = []
        let foldAUC = Dictionary(uniqueKeysWithValues: names.map { n in (n, foldPredictions[n]!.map { Evaluation($0).overall.auc }) })
        for (k, name) in names.enumerated() where name != "ensemble" {
            var entry: [String: Any] = ["model": titles[k], "fold_auc": foldAUC[name]!.map { $0 ?? .nan }]
            if let t = PairedTTest(foldAUC["ensemble"]!.compactMap { $0 }, foldAUC[name]!.compactMap { $0 }) {
                entry["ds_minus_model_auc_mean"] = t.meanDifference
                entry["p"] = t.p
            }
            tests.append(entry)
        }
        try JSONSerialization.data(withJSONObject: ["folds": folds, "ds_fold_auc": foldAUC["ensemble"]!.map { $0 ?? .nan },
                                                    "paired_t_tests": tests], options: [.prettyPrinted, .sortedKeys])
            .write(to: URL(fileURLWithPath: dir + "/tests.json"))
        return caption2 + markdown(t2)
    }
}
