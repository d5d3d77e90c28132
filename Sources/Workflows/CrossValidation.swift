import CTData
import Distributed
import Evaluation
import Foundation
import Training

/// The cross-validation of `dsan cv`: for each fold (split by patient, stratified by label), trains
/// the uniform- and the size-balanced-sampling model (and the baseline on request), fits their
/// ensemble on the fold's validation predictions, predicts the fold's validation cases (and the
/// test set) with every model, writes attention maps for a few validation cases, and finally
/// Tables II and III (`CrossValidationTables`).
///
/// Layout of `out`: `cv.json`, `config.yaml`, `fold-K/{us,ss,baseline}/` (training runs, with the
/// `done` marker once finished), `fold-K/ensemble.json`, `fold-K/predictions/MODEL.csv`,
/// `fold-K/attention/MODEL/`, `test/MODEL-fold-K.csv`, `tables/`. Running again resumes: finished
/// trainings are kept, an interrupted one continues from its `last.h5`.
public struct CrossValidation: Sendable {
    /// Directory of shards to cross-validate on.
    public var data: String
    /// Output directory (created; an existing one is resumed).
    public var out: String
    /// The training configuration of every run (`fold`, `sampling` and `attention` are set per run).
    public var config: TrainConfig
    /// A separate test set of shards, predicted by every fold's models.
    public var test: String?
    /// Also train the baseline without the attention module.
    public var baseline: Bool
    /// Validation cases per infection-ratio band that get attention maps.
    public var maps: Int
    /// Replace what `out` holds from a cross-validation of other data or settings (`--overwrite`);
    /// without it such a directory is refused, naming what differs.
    public var overwrite = false

    public init(data: String, out: String, config: TrainConfig, test: String? = nil, baseline: Bool = false, maps: Int = 2) {
        self.data = data
        self.out = out
        self.config = config
        self.test = test
        self.baseline = baseline
        self.maps = maps
    }

    /// The models trained per fold, in training order.
    public var models: [CVModel] { baseline ? [.us, .ss, .baseline] : [.us, .ss] }

    /// `parts` joined below `out`.
    public func path(_ parts: String...) -> String {
        parts.reduce(out) { ($0 as NSString).appendingPathComponent($1) }
    }

    /// Runs the cross-validation as one rank of `collectives` (every rank trains, rank 0
    /// evaluates). Returns Table II as Markdown on rank 0 (nil on the others) for the caller to show.
    @discardableResult
    public func run(_ collectives: Collectives) throws -> String? {
        let base = config
        let rank = collectives.rank
        let log = RunLog(rank: rank, ranks: collectives.size)
        let cohort = try Cohort(directory: data)
        let testCohort = try test.map { try Cohort(directory: $0) }
        let folds = try Folds(cases: cohort.cases, folds: base.folds, seed: base.seed)
        // The input rules and the memory check of `dsan train`, once, on the first fold's split.
        var first = TrainRequest(data: data, out: path("fold-0"), config: base)
        first.config.fold = 0
        let warnings = try checkTrainingInputs(first, ranks: collectives.size)
        if rank == 0 { for w in warnings { log.warning(w) } }
        if rank == 0 {
            try writeSummary()
        }
        for k in 0..<base.folds {
            let (_, validation) = folds.split(k)
            log.info("fold \(k + 1)/\(base.folds): \(validation.count) validation cases")
            for model in models {
                guard let request = trainRequest(fold: k, model: model) else {
                    log.info("fold \(k + 1) \(model.title): already trained, kept")
                    continue
                }
                log.info("fold \(k + 1) \(model.title): training")
                let trainer = try Trainer(request: request, collectives: collectives)
                try trainer.run()
                if rank == 0 { try markTrained(fold: k, model: model) }
                try collectives.barrier("waiting for rank 0 to finish fold \(k + 1)")
            }
            if rank == 0 { try evaluateFold(k, validation: validation, cohort: cohort, testCohort: testCohort, models: models, log: log) }
            // Prediction on rank 0 can take a while: the others wait with the long timeout.
            try collectives.barrier("waiting for rank 0's predictions of fold \(k + 1)", seconds: max(base.timeoutSeconds, 3600))
        }
        guard rank == 0 else { return nil }
        let table = try CrossValidationTables.write(in: out, models: models, folds: base.folds, test: test != nil)
        log.info("cross-validation finished: tables in \(path("tables")); `dsan report \(out)` writes the HTML report")
        return table
    }

    /// Rank 0, at the start: `cv.json` (what was cross-validated, with absolute paths: the report
    /// may run from another directory) and the resolved `config.yaml`.
    func writeSummary() throws {
        func absolute(_ p: String) -> String { URL(fileURLWithPath: p).standardizedFileURL.path }
        let summary: [String: Any] = ["folds": config.folds, "models": models.map(\.rawValue) + ["ensemble"],
                                      "data": absolute(data), "test": test.map(absolute) ?? NSNull(), "seed": config.seed]
        let json = try JSONSerialization.data(withJSONObject: summary, options: [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes])
        let differences = try differencesFromEarlierRun(summary: json)
        if !differences.isEmpty {
            guard overwrite else {
                throw CrossValidationError(out: out, differences: differences)
            }
            try FileManager.default.removeItem(atPath: out)
        }
        try FileManager.default.createDirectory(atPath: out, withIntermediateDirectories: true)
        try json.write(to: URL(fileURLWithPath: path("cv.json")))
        try config.yaml.write(toFile: path("config.yaml"), atomically: true, encoding: .utf8)
    }

    /// What an earlier cross-validation in `out` ran with that this one does not: each line of
    /// its `cv.json` and `config.yaml` that differs. Empty for a new directory or a resumable one.
    func differencesFromEarlierRun(summary: Data) throws -> [String] {
        var differences: [String] = []
        for (name, new) in [("cv.json", String(decoding: summary, as: UTF8.self)), ("config.yaml", config.yaml)] {
            guard let old = try? String(contentsOfFile: path(name), encoding: .utf8) else { continue }
            func lines(_ text: String) -> [String] {
                text.split(separator: "\n").map { $0.trimmingCharacters(in: .whitespaces).trimmingCharacters(in: CharacterSet(charactersIn: ",")) }
                    .filter { !["{", "}", "[", "]", ""].contains($0) }
            }
            let was = Set(lines(old)), now = Set(lines(new))
            for line in lines(old) where !now.contains(line) { differences.append("\(name): was `\(line)`") }
            for line in lines(new) where !was.contains(line) { differences.append("\(name): now `\(line)`") }
        }
        let holdsRuns = (try? FileManager.default.contentsOfDirectory(atPath: out))?.contains { $0.hasPrefix("fold-") } ?? false
        if differences.isEmpty && holdsRuns && !FileManager.default.fileExists(atPath: path("cv.json")) {
            differences.append("it holds fold runs but no cv.json, so what they were trained on is unknown")
        }
        return differences
    }

    /// The marker a finished training leaves in its run directory; a run that has it is kept when
    /// the cross-validation runs again.
    public static let doneMarker = "done"

    /// What to train for `model` in fold `k`: nil when its run holds the done marker (kept), else
    /// the fold's configuration with the model's sampling and attention, resuming from `last.h5`
    /// when an interrupted run left one.
    public func trainRequest(fold k: Int, model: CVModel) -> TrainRequest? {
        let runDir = path("fold-\(k)", model.rawValue)
        if FileManager.default.fileExists(atPath: (runDir as NSString).appendingPathComponent(Self.doneMarker)) { return nil }
        var c = config
        c.fold = k
        c.sampling = model == .ss ? "size-balanced" : "uniform"
        c.attention = model != .baseline
        var request = TrainRequest(data: data, out: runDir, config: c)
        request.resume = FileManager.default.fileExists(atPath: (runDir as NSString).appendingPathComponent("last.h5"))
        request.overwrite = true   // a run without the done marker is this cross-validation's own, unfinished
        return request
    }

    /// Leaves the done marker in the run directory of `model` in fold `k`.
    public func markTrained(fold k: Int, model: CVModel) throws {
        try "".write(toFile: path("fold-\(k)", model.rawValue, Self.doneMarker), atomically: true, encoding: .utf8)
    }

    /// Rank 0: the fold's ensemble, its validation (and test) predictions, attention maps.
    public func evaluateFold(_ k: Int, validation: [Int], cohort: Cohort, testCohort: Cohort?, models: [CVModel], log: RunLog) throws {
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
            try ShardPrediction.predict(cohort: cohort, indices: validation, with: predictor, batch: 2,
                                csv: path("fold-\(k)", "predictions", name + ".csv"), attentionMaps: mapsDir, mapsFor: chosen)
            if let testCohort {
                try ShardPrediction.predict(cohort: testCohort, indices: Array(0..<testCohort.count), with: predictor, batch: 2,
                                    csv: path("test", "\(name)-fold-\(k).csv"), attentionMaps: nil)
            }
        }
        // The ensemble's predictions follow from the two models' (DESIGN.md §5, Eq. 5): combining
        // them gives the numbers `dsan predict --model ensemble.json` prints, without running both
        // networks a second time.
        var outputs: [(String) -> String] = [{ path("fold-\(k)", "predictions", $0 + ".csv") }]
        if testCohort != nil { outputs.append { path("test", "\($0)-fold-\(k).csv") } }
        for file in outputs {
            try PredictionsCSV.write(try Self.ensemblePredictions(rule: fit.rule, usFile: file("us"), ssFile: file("ss")),
                                     to: file("ensemble"))
        }
        log.info("fold \(k + 1): predictions written to \(path("fold-\(k)", "predictions"))")
    }

    /// The ensemble's predictions of the cases two prediction files share, as `EnsemblePredictor`
    /// computes them: both probabilities and the ratio are the float32 values the models printed,
    /// combined in double precision and rounded to float32.
    public static func ensemblePredictions(rule: EnsembleRule, usFile: String, ssFile: String) throws -> [Prediction] {
        let us = try PredictionsCSV.read(usFile), ss = try PredictionsCSV.read(ssFile)
        let joined = try EnsembleCase.join(us: us, ss: ss, usFile: usFile, ssFile: ssFile)
        return zip(us, joined).map { u, c in
            let ratio = c.infectionRatio.map { Double(Float($0)) }
            let p = rule.combine(us: Double(Float(c.us)), ss: Double(Float(c.ss)), ratio: ratio)
            return Prediction(caseID: u.caseID, patientID: u.patientID, label: u.label,
                              infectionRatio: u.infectionRatio, probability: Double(Float(p)))
        }
    }
}

/// A cross-validation directory that holds the runs of other data or settings: resuming it would
/// mix them with this run's.
public struct CrossValidationError: Error, CustomStringConvertible {
    public var out: String
    public var differences: [String]
    public var description: String {
        "\(out) holds a cross-validation of other data or settings (\(differences.joined(separator: "; "))); "
            + "its models would be kept as already trained. Choose another --out, or pass --overwrite to replace it (Docs/input-rules.md)"
    }
}
