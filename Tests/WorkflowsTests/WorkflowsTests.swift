import CTData
import Evaluation
import Foundation
import Tensor
import Testing
import Training
@testable import Workflows

/// A predictor whose probability is a known function of the input: the mean voxel value, so a
/// test can recompute every row of the CSV from the shards.
final class MeanPredictor: Predictor {
    let name = "mean"
    let attention = true
    var calls: [(cases: Int, explain: Bool)] = []
    func check(size: [Int]) throws {}
    func predict(_ input: Tensor, ratios: [Double?], explain: Bool) -> (probabilities: [Float], maps: Tensor?) {
        let n = input.shape[0], per = input.count / n
        calls.append((n, explain))
        let p = (0..<n).map { k in (0..<per).reduce(Float(0)) { $0 + input.data[k * per + $1] } / Float(per) }
        return (p, explain ? Tensor(zeros: input.shape) : nil)
    }
}

@Suite struct ShardPredictionTests {
    static func scratch(_ name: String) -> String {
        FileManager.default.temporaryDirectory.appendingPathComponent("dsan-\(name)-\(UUID().uuidString)").path
    }

    @Test func writesOneRowPerCaseInOrderAndMapsOnlyWhereAsked() throws {
        let dir = Self.scratch("predict")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let infos = try SyntheticCohort.write(directory: "\(dir)/shards", cases: 5, size: [16, 16, 16], seed: 3, shardSize: 2)
        let cohort = try Cohort(directory: "\(dir)/shards")
        let predictor = MeanPredictor()
        var progress: [Int] = []
        try ShardPrediction.predict(cohort: cohort, indices: [4, 0, 2], with: predictor, batch: 2, csv: "\(dir)/out/p.csv",
                                    attentionMaps: "\(dir)/maps", mapsFor: [2]) { progress.append($0) }
        #expect(progress == [2, 3])
        // Batches [4, 0] (no map wanted) and [2] (map wanted).
        #expect(predictor.calls.map(\.cases) == [2, 1] && predictor.calls.map(\.explain) == [false, true])
        let rows = try PredictionsCSV.read("\(dir)/out/p.csv")
        #expect(rows.map(\.caseID) == [4, 0, 2].map { infos[$0].caseID })
        for (row, i) in zip(rows, [4, 0, 2]) {
            #expect(row.label == infos[i].label && row.patientID == infos[i].patientID)
            #expect(row.infectionRatio == (infos[i].infectionRatio.isNaN ? nil : Double("\(infos[i].infectionRatio)")))
            let loaded = try cohort.load(i)
            let mean = loaded.input.reduce(Float(0), +) / Float(loaded.input.count)
            #expect(row.probability == Double("\(mean)"))
        }
        let maps = try FileManager.default.contentsOfDirectory(atPath: "\(dir)/maps")
        #expect(maps == [ShardPrediction.fileName(infos[2].caseID) + ".nii.gz"])
    }

    @Test func caseIDsBecomeFileNames() {
        #expect(ShardPrediction.fileName("site/A/17") == "site_A_17")
    }
}

@Suite struct CrossValidationTests {
    @Test func modelsAndRunConfigurations() {
        var config = TrainConfig()
        config.folds = 3
        let cv = CrossValidation(data: "d", out: "/nowhere/cv", config: config)
        #expect(cv.models == [.us, .ss])
        #expect(CrossValidation(data: "d", out: "o", config: config, baseline: true).models == [.us, .ss, .baseline])
        let us = cv.trainRequest(fold: 2, model: .us)!, ss = cv.trainRequest(fold: 1, model: .ss)!
        #expect(us.out == "/nowhere/cv/fold-2/us" && us.config.fold == 2 && us.config.sampling == "uniform" && us.config.attention)
        #expect(ss.config.fold == 1 && ss.config.sampling == "size-balanced" && ss.config.attention && !ss.resume)
        let baseline = CrossValidation(data: "d", out: "o", config: config, baseline: true).trainRequest(fold: 0, model: .baseline)!
        #expect(baseline.config.sampling == "uniform" && !baseline.config.attention)
    }

    /// Running again keeps a finished training (its `done` marker) and resumes an interrupted one.
    @Test func resumesFromMarkers() throws {
        let dir = ShardPredictionTests.scratch("cv")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let cv = CrossValidation(data: "d", out: dir, config: TrainConfig())
        try FileManager.default.createDirectory(atPath: cv.path("fold-0", "us"), withIntermediateDirectories: true)
        try FileManager.default.createDirectory(atPath: cv.path("fold-0", "ss"), withIntermediateDirectories: true)
        #expect(cv.trainRequest(fold: 0, model: .us)?.resume == false)
        _ = FileManager.default.createFile(atPath: cv.path("fold-0", "ss", "last.h5"), contents: Data())
        #expect(cv.trainRequest(fold: 0, model: .ss)?.resume == true)
        try cv.markTrained(fold: 0, model: .us)
        #expect(FileManager.default.fileExists(atPath: cv.path("fold-0", "us", CrossValidation.doneMarker)))
        #expect(cv.trainRequest(fold: 0, model: .us) == nil)
        #expect(cv.trainRequest(fold: 1, model: .us) != nil)
    }

    /// Running again into a directory of another cross-validation is refused, naming what differs
    /// (issue 16: the old models would be kept as "already trained"); the same settings resume, and
    /// `overwrite` replaces the directory.
    @Test func refusesADirectoryOfOtherSettings() throws {
        let dir = ShardPredictionTests.scratch("cvagain")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        var config = TrainConfig()
        config.width = 4
        try CrossValidation(data: "d", out: dir, config: config).writeSummary()
        try FileManager.default.createDirectory(atPath: dir + "/fold-0/us", withIntermediateDirectories: true)
        try CrossValidation(data: "d", out: dir, config: config).writeSummary()   // same settings: resumes
        #expect(FileManager.default.fileExists(atPath: dir + "/fold-0/us"))
        var wider = config
        wider.width = 8
        do {
            try CrossValidation(data: "other", out: dir, config: wider).writeSummary()
            Issue.record("a directory of other settings was accepted")
        } catch let error as CrossValidationError {
            #expect(error.differences.contains("config.yaml: was `width: 4`"), "\(error)")
            #expect(error.differences.contains("config.yaml: now `width: 8`"), "\(error)")
            #expect(error.differences.contains { $0.hasPrefix("cv.json: now `\"data\"") && $0.hasSuffix("/other\"`") }, "\(error)")
            #expect("\(error)".hasSuffix("Choose another --out, or pass --overwrite to replace it (Docs/input-rules.md)"))
        }
        var replacing = CrossValidation(data: "other", out: dir, config: wider)
        replacing.overwrite = true
        try replacing.writeSummary()
        #expect(!FileManager.default.fileExists(atPath: dir + "/fold-0"))
        #expect(try String(contentsOfFile: dir + "/config.yaml", encoding: .utf8).contains("width: 8"))
    }

    /// The ensemble's rows are Eq. (5) of the two models' printed float32 values, rounded to float32.
    @Test func ensemblePredictionsCombineTheFiles() throws {
        let dir = ShardPredictionTests.scratch("cv-ens")
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        func p(_ id: String, _ ratio: Double?, _ probability: Double) -> Prediction {
            Prediction(caseID: id, patientID: "P", label: .covid, infectionRatio: ratio, probability: probability)
        }
        try PredictionsCSV.write([p("a", 0.0001, 0.8), p("b", 0.01, 0.6), p("c", nil, 0.3)], to: "\(dir)/us.csv")
        try PredictionsCSV.write([p("c", nil, 0.9), p("a", 0.0001, 0.2), p("b", 0.01, 0.4)], to: "\(dir)/ss.csv")
        let rule = EnsembleRule(wOut: 0.25, wIn: 0.5)
        let rows = try CrossValidation.ensemblePredictions(rule: rule, usFile: "\(dir)/us.csv", ssFile: "\(dir)/ss.csv")
        #expect(rows.map(\.caseID) == ["a", "b", "c"])
        // a is outer (r < 0.001): 0.25·0.8 + 0.75·0.2; b and c inner: 0.5·0.6 + 0.5·0.4, 0.5·0.3 + 0.5·0.9.
        func f(_ x: Double) -> Double { Double(Float(x)) }
        let a: Double = 0.25 * f(0.8) + 0.75 * f(0.2)
        let b: Double = 0.5 * f(0.6) + 0.5 * f(0.4)
        let c: Double = 0.5 * f(0.3) + 0.5 * f(0.9)
        let expected: [Double] = [f(a), f(b), f(c)]
        #expect(rows.map(\.probability) == expected)
        try PredictionsCSV.write([p("a", 0.0001, 0.8)], to: "\(dir)/short.csv")
        #expect(throws: DataError.self) { try CrossValidation.ensemblePredictions(rule: rule, usFile: "\(dir)/short.csv", ssFile: "\(dir)/ss.csv") }
    }
}
