import ArgumentParser
import BLAS
import Data
import Distributed
import Foundation
import MPI
import Tensor
import Training

/// The models of a cross-validation: the paper's two and, on request, the baseline.
enum CVModel: String, CaseIterable {
    case us, ss, baseline

    /// The paper's names (Tables II and III).
    var title: String {
        switch self {
        case .us: return "Attention RN34 + US"
        case .ss: return "Attention RN34 + SS"
        case .baseline: return "RN34 + US"
        }
    }
}

struct CrossValidate: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "cv",
        abstract: "Cross-validation: per fold, the uniform and the size-balanced model, their ensemble, predictions and tables.",
        discussion: """
        For each of --folds folds (split by patient, stratified by label), trains RN34 + US \
        (uniform sampling) and RN34 + SS (size-balanced sampling) with the attention module \
        (and with --baseline RN34 + US without attention), fits the ensemble of DESIGN.md §5 on \
        the fold's validation predictions, predicts the fold's validation cases with every model \
        (and the --test cases), writes attention maps for a few validation cases, and finally \
        the paper's Table II and Table III as mean ± sd over folds (Markdown, CSV, JSON).

        Runs under one mpirun (folds in sequence, every rank trains; rank 0 predicts) or alone. \
        Running it again resumes: finished trainings are kept, an interrupted one continues \
        from its last.h5. `dsan report DIR` turns the result into an HTML page.

        Example: mpirun -np 2 dsan cv --data data/all --test data/test --out cv --config configs/debug.yaml
        """
    )

    @Option(help: "Directory of shards to cross-validate on.") var data: String
    @Option(help: "Output directory (created; an existing one is resumed).") var out: String
    @OptionGroup var settings: ConfigOptions
    @Option(help: "A separate test set of shards, predicted by every fold's models.") var test: String?
    @Flag(help: "Also train the baseline without the attention module.") var baseline = false
    @Option(help: "Validation cases per infection-ratio band that get attention maps.") var maps = 2

    func resolvedConfiguration() throws -> TrainConfig {
        try settings.resolve { $0.steps = 0 }
    }

    func run() throws {
        let base: TrainConfig
        do { base = try resolvedConfiguration() } catch { throw ValidationError("\(error)") }
        guard maps >= 0 else { throw ValidationError("--maps must be ≥ 0, got \(maps)") }
        try runMPIJob(timeout: base.timeoutSeconds) { collectives in
            try crossValidate(base, collectives)
        }
    }

    func path(_ parts: String...) -> String {
        parts.reduce(out) { ($0 as NSString).appendingPathComponent($1) }
    }

    func crossValidate(_ base: TrainConfig, _ collectives: Collectives) throws {
        let rank = collectives.rank
        let log = RunLog(rank: rank, ranks: collectives.size)
        let models: [CVModel] = baseline ? [.us, .ss, .baseline] : [.us, .ss]
        let cohort = try Cohort(directory: data)
        let testCohort = try test.map { try Cohort(directory: $0) }
        let folds = try Folds(cases: cohort.cases, folds: base.folds, seed: base.seed)
        if rank == 0 {
            try FileManager.default.createDirectory(atPath: out, withIntermediateDirectories: true)
            // Absolute paths: the report may run from another directory.
            func absolute(_ p: String) -> String { URL(fileURLWithPath: p).standardizedFileURL.path }
            let summary: [String: Any] = ["folds": base.folds, "models": models.map(\.rawValue) + ["ensemble"],
                                          "data": absolute(data), "test": test.map(absolute) ?? NSNull(), "seed": base.seed]
            let json = try JSONSerialization.data(withJSONObject: summary, options: [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes])
            try json.write(to: URL(fileURLWithPath: path("cv.json")))
            try base.yaml.write(toFile: path("config.yaml"), atomically: true, encoding: .utf8)
        }
        for k in 0..<base.folds {
            let (_, validation) = folds.split(k)
            log.info("fold \(k + 1)/\(base.folds): \(validation.count) validation cases")
            for model in models {
                let runDir = path("fold-\(k)", model.rawValue)
                if FileManager.default.fileExists(atPath: (runDir as NSString).appendingPathComponent("done")) {
                    log.info("fold \(k + 1) \(model.title): already trained, kept")
                    continue
                }
                var c = base
                c.fold = k
                c.sampling = model == .ss ? "size-balanced" : "uniform"
                c.attention = model != .baseline
                var request = TrainRequest(data: data, out: runDir, config: c)
                request.resume = FileManager.default.fileExists(atPath: (runDir as NSString).appendingPathComponent("last.h5"))
                log.info("fold \(k + 1) \(model.title): training")
                let trainer = try Trainer(request: request, collectives: collectives)
                try trainer.run()
                if rank == 0 { try "".write(toFile: (runDir as NSString).appendingPathComponent("done"), atomically: true, encoding: .utf8) }
                try collectives.barrier("waiting for rank 0 to finish fold \(k + 1)")
            }
            if rank == 0 { try evaluateFold(k, validation: validation, cohort: cohort, testCohort: testCohort, models: models, log: log) }
            // Prediction on rank 0 can take a while: the others wait with the long timeout.
            try collectives.barrier("waiting for rank 0's predictions of fold \(k + 1)", seconds: max(base.timeoutSeconds, 3600))
        }
        if rank == 0 {
            try writeTables(models: models, folds: base.folds)
            log.info("cross-validation finished: tables in \(path("tables")); `dsan report \(out)` writes the HTML report")
        }
    }

    /// Rank 0: the fold's ensemble, its validation (and test) predictions, attention maps.
    func evaluateFold(_ k: Int, validation: [Int], cohort: Cohort, testCohort: Cohort?, models: [CVModel], log: RunLog) throws {
        let fold = path("fold-\(k)")
        let usRun = path("fold-\(k)", "us"), ssRun = path("fold-\(k)", "ss")
        // The ensemble, fitted on the runs' validation predictions (the best epochs').
        let usVal = try PredictionsCSV.read((usRun as NSString).appendingPathComponent("val_predictions.csv"))
        let ssVal = try PredictionsCSV.read((ssRun as NSString).appendingPathComponent("val_predictions.csv"))
        let cases = try EnsembleCase.join(us: usVal, ss: ssVal, usFile: usRun, ssFile: ssRun)
        let fit = EnsembleFit(cases)
        let ensemblePath = (fold as NSString).appendingPathComponent("ensemble.json")
        try EnsembleFile(usCheckpoint: "us/best.h5", ssCheckpoint: "ss/best.h5", fit: fit).write(to: ensemblePath)
        log.info(String(format: "fold %d ensemble: w_out %.2f, w_in %.2f, validation AUC %@ (US %@, SS %@)", k + 1,
                        fit.rule.wOut, fit.rule.wIn, Evaluation.format(fit.auc) as NSString,
                        Evaluation.format(fit.usAUC) as NSString, Evaluation.format(fit.ssAUC) as NSString))
        // A few validation cases per band get attention maps.
        var chosen = Set<Int>()
        for band in RatioBand.allCases {
            let inBand = validation.filter { cohort.cases[$0].hasInfectionMask && RatioBand(ratio: cohort.cases[$0].infectionRatio) == band }
            chosen.formUnion(inBand.prefix(maps))
        }
        for model in models {
            let name = model.rawValue
            let predictor = try ModelSource.identify(path("fold-\(k)", name, "best.h5")).load(attention: nil)
            let mapsDir: String? = model != .baseline && !chosen.isEmpty ? path("fold-\(k)", "attention", name) : nil
            try Predict.predict(cohort: cohort, indices: validation, with: predictor, batch: 2,
                                csv: path("fold-\(k)", "predictions", name + ".csv"), attentionMaps: mapsDir, mapsFor: chosen)
            if let testCohort {
                try Predict.predict(cohort: testCohort, indices: Array(0..<testCohort.count), with: predictor, batch: 2,
                                    csv: path("test", "\(name)-fold-\(k).csv"), attentionMaps: nil)
            }
        }
        // The ensemble's predictions follow from the two models' (DESIGN.md §5, Eq. 5): combining
        // them gives the numbers `dsan predict --model ensemble.json` prints, without running both
        // networks a second time.
        var outputs: [(String) -> String] = [{ path("fold-\(k)", "predictions", $0 + ".csv") }]
        if testCohort != nil { outputs.append { path("test", "\($0)-fold-\(k).csv") } }
        for file in outputs {
            try PredictionsCSV.write(try ensemblePredictions(rule: fit.rule, usFile: file("us"), ssFile: file("ss")),
                                     to: file("ensemble"))
        }
        log.info("fold \(k + 1): predictions written to \(path("fold-\(k)", "predictions"))")
    }

    /// The ensemble's predictions of the cases two prediction files share, as `EnsemblePredictor`
    /// computes them: both probabilities and the ratio are the float32 values the models printed,
    /// combined in double precision and rounded to float32.
    func ensemblePredictions(rule: EnsembleRule, usFile: String, ssFile: String) throws -> [Prediction] {
        let us = try PredictionsCSV.read(usFile), ss = try PredictionsCSV.read(ssFile)
        let joined = try EnsembleCase.join(us: us, ss: ss, usFile: usFile, ssFile: ssFile)
        return zip(us, joined).map { u, c in
            let ratio = c.infectionRatio.map { Double(Float($0)) }
            let p = rule.combine(us: Double(Float(c.us)), ss: Double(Float(c.ss)), ratio: ratio)
            return Prediction(caseID: u.caseID, patientID: u.patientID, label: u.label,
                              infectionRatio: u.infectionRatio, probability: Double(Float(p)))
        }
    }

    /// Rank 0: the paper's Table II and Table III in its rows and columns. Rows: each metric ×
    /// each model (RN34 + US, Attention RN34 + US / SS / DS); Table III adds the image counts per
    /// band. Columns: "TV set" — the validation predictions of all folds combined, as the paper
    /// reports it — and "Test set" — mean ± sd over the folds' models on --test (n/a without).
    /// tables.json adds per-fold AUCs and paired t-test p-values of DS against each model.
    func writeTables(models: [CVModel], folds: Int) throws {
        let order: [CVModel] = [.baseline, .us, .ss].filter { models.contains($0) }
        let names = order.map(\.rawValue) + ["ensemble"]
        let titles = order.map(\.title) + ["Attention RN34 + DS"]
        var foldPredictions: [String: [[Prediction]]] = [:], testEvaluations: [String: [Evaluation]] = [:]
        for name in names {
            foldPredictions[name] = try (0..<folds).map { try PredictionsCSV.read(path("fold-\($0)", "predictions", name + ".csv")) }
            if test != nil {
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
        let testAll = test != nil ? try PredictionsCSV.read(path("test", "\(names[0])-fold-0.csv")) : []
        func testCount(_ label: Label?, _ band: RatioBand) -> String {
            test == nil ? "n/a" : String(testAll.filter { ($0.infectionRatio.map { RatioBand(ratio: Float($0)) } == band) && (label == nil || $0.label == label!) }.count)
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
        func csv(_ rows: [[String]]) -> String {
            rows.map { $0.map { $0.contains(",") || $0.contains(" ") ? "\"\($0)\"" : $0 }.joined(separator: ",") }.joined(separator: "\n") + "\n"
        }
        func json(_ rows: [[String]]) throws -> Data {
            let objects = rows.dropFirst().map { Dictionary(uniqueKeysWithValues: zip(rows[0], $0)) }
            return try JSONSerialization.data(withJSONObject: objects, options: [.prettyPrinted, .sortedKeys])
        }
        let dir = path("tables")
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let caption2 = "TABLE II: classification results over \(folds) folds. TV set: the \(folds) validation sets combined; Test set: mean ± sd of the \(folds) fold models" + (test == nil ? " (no test set given)" : "") + ". Threshold 0.5.\n\n"
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
        print(caption2 + markdown(t2))
    }
}
