import CTData
import Foundation
import Tensor
import Testing
@testable import Evaluation

/// The ensemble rule of DESIGN.md §5, its grid-search fit and the ensemble file.
@Suite struct EnsembleTests {
    static func c(_ id: String, _ label: Label, _ ratio: Double?, us: Double, ss: Double) -> EnsembleCase {
        EnsembleCase(caseID: id, label: label, infectionRatio: ratio, us: us, ss: ss)
    }

    /// Validation predictions whose fit is unique: w_out = 0.20, w_in = 0.70.
    ///
    /// For a COVID case A and a CAP case B of the same group, A scores above B iff
    /// w (us_A − us_B) + (1 − w)(ss_A − ss_B) > 0, a condition w > w* or w < w*. Outer pair 1 needs
    /// w > 0.195 and outer pair 2 needs w < 0.205, so only w_out = 0.20 ranks both right; inner
    /// pairs 3 and 4 do the same around 0.70. The other pairs do not depend on the weights: the
    /// mixed pairs of a group differ by the same amount in both models, and inner scores
    /// (0.76–0.94) lie above every outer score (0.34–0.56) whatever the weights.
    static let knownWeights: [EnsembleCase] = [
        c("A1", .covid, 0.0005, us: 0.561, ss: 0.461), c("B1", .cap, 0.05, us: 0.40, ss: 0.50),
        c("A2", .covid, 0.2, us: 0.341, ss: 0.441), c("B2", .cap, 0.0, us: 0.50, ss: 0.40),
        c("A3", .covid, 0.01, us: 0.861, ss: 0.761), c("B3", .cap, 0.001, us: 0.80, ss: 0.90),
        c("A4", .covid, nil, us: 0.841, ss: 0.941), c("B4", .cap, 0.03, us: 0.90, ss: 0.80),
    ]

    @Test func ruleFollowsEquationFive() {
        let rule = EnsembleRule.paper
        #expect(rule.wOut == 0.35 && rule.wIn == 0.96)
        // w_out when r < 0.001 or r > 0.030; the boundaries themselves and unknown ratios take w_in.
        #expect([0, 0.0009, 0.001, 0.01, 0.03, 0.0301, 0.5, nil].map(rule.weight) == [0.35, 0.35, 0.96, 0.96, 0.96, 0.35, 0.35, 0.96])
        #expect(abs(rule.combine(us: 0.8, ss: 0.2, ratio: 0.1) - (0.35 * 0.8 + 0.65 * 0.2)) < 1e-15)
        #expect(abs(rule.combine(us: 0.8, ss: 0.2, ratio: nil) - (0.96 * 0.8 + 0.04 * 0.2)) < 1e-15)
    }

    @Test func fitRecoversKnownWeights() {
        let fit = EnsembleFit(Self.knownWeights)
        #expect(fit.rule.wOut == 0.2 && fit.rule.wIn == 0.7)
        #expect(fit.outerCases == 4 && fit.innerCases == 4 && fit.cases == 8)
        // 16 pairs; wrong whatever the weights: A2–B1, A3–B4 and the 4 outer-COVID/inner-CAP pairs.
        #expect(fit.auc == 10.0 / 16)
        let labels = Self.knownWeights.map { Int($0.label.rawValue) }
        let scores = Self.knownWeights.map { fit.rule.combine(us: $0.us, ss: $0.ss, ratio: $0.infectionRatio) }
        #expect(fit.auc == Metrics.auc(labels: labels, scores: scores))
        #expect(fit.accuracy == Metrics(labels: labels, scores: scores).accuracy)
        #expect(fit.usAUC == Metrics.auc(labels: labels, scores: Self.knownWeights.map(\.us)))
    }

    @Test func tiesGoToAccuracyThenThePaper() {
        // Perfectly separated by both models at every weight: the paper's values win.
        let easy = [Self.c("a", .covid, 0.1, us: 0.9, ss: 0.8), Self.c("b", .cap, 0.0, us: 0.1, ss: 0.2),
                    Self.c("c", .covid, 0.01, us: 0.9, ss: 0.8), Self.c("d", .cap, 0.02, us: 0.1, ss: 0.2)]
        let e = EnsembleFit(easy)
        #expect(e.rule == .paper && e.auc == 1 && e.accuracy == 1)

        // Inner cases only, AUC 1 at every weight; the COVID case is classified right only for
        // 0.45 w + 0.9 (1 − w) ≥ 0.5, i.e. w ≤ 0.888…: accuracy picks w_in ≤ 0.88, closeness 0.88.
        // No outer cases: w_out is free and stays at the paper's 0.35.
        let inner = [Self.c("a", .covid, 0.01, us: 0.45, ss: 0.9), Self.c("b", .cap, 0.01, us: 0.1, ss: 0.05)]
        let f = EnsembleFit(inner)
        #expect(f.rule.wIn == 0.88 && f.rule.wOut == 0.35 && f.accuracy == 1 && f.outerCases == 0)

        // One class only: no AUC, accuracy decides.
        let single = EnsembleFit([Self.c("a", .covid, 0.1, us: 0.45, ss: 0.9)])
        #expect(single.auc == nil && single.accuracy == 1 && single.rule == .paper)
    }

    @Test func fitMatchesABruteForceGridSearch() {
        var rng = SplitMix(seed: 7)
        let ratios: [Double?] = [0.0, 0.0005, 0.004, 0.02, 0.05, nil]
        let cases = (0..<30).map { k in
            // Coarse scores so that ties occur.
            Self.c("c\(k)", rng.next() % 2 == 0 ? .covid : .cap, ratios[Int(rng.next() % 6)],
                   us: Double(rng.next() % 11) / 10, ss: Double(rng.next() % 11) / 10)
        }
        let fit = EnsembleFit(cases)
        let labels = cases.map { Int($0.label.rawValue) }
        var bestAUC = -1.0
        for i in 0...100 {
            for j in 0...100 {
                let rule = EnsembleRule(wOut: Double(i) / 100, wIn: Double(j) / 100)
                let auc = Metrics.auc(labels: labels, scores: cases.map { rule.combine(us: $0.us, ss: $0.ss, ratio: $0.infectionRatio) })!
                bestAUC = max(bestAUC, auc)
            }
        }
        #expect(abs(fit.auc! - bestAUC) < 1e-12)
        let scores = cases.map { fit.rule.combine(us: $0.us, ss: $0.ss, ratio: $0.infectionRatio) }
        #expect(abs(Metrics.auc(labels: labels, scores: scores)! - fit.auc!) < 1e-12)
    }

    @Test func concordanceCountsPairsWithTiesHalf() {
        var rng = SplitMix(seed: 3)
        for _ in 0..<20 {
            let pos = (0..<Int(rng.next() % 9)).map { _ in Double(rng.next() % 5) }.sorted()
            let neg = (0..<Int(rng.next() % 9)).map { _ in Double(rng.next() % 5) }.sorted()
            var naive = 0
            for p in pos { for n in neg { naive += p > n ? 2 : (p == n ? 1 : 0) } }
            #expect(EnsembleFit.concordance(pos, neg) == naive)
        }
    }

    // MARK: - Joining two runs

    @Test func joinNeedsTheSameCases() {
        func p(_ id: String, _ label: Label = .covid, _ ratio: Double? = 0.01) -> Prediction {
            Prediction(caseID: id, patientID: id, label: label, infectionRatio: ratio, probability: 0.5)
        }
        func message(_ us: [Prediction], _ ss: [Prediction]) -> String {
            do { _ = try EnsembleCase.join(us: us, ss: ss, usFile: "us.csv", ssFile: "ss.csv"); return "no error" } catch { return "\(error)" }
        }
        #expect(message([p("a"), p("b")], [p("b"), p("c")])
                == "ss.csv: validation cases differ from us.csv: 1 case(s) only in us.csv (a); 1 case(s) only in ss.csv (c); train both runs with the same data, --folds and --fold")
        #expect(message([p("a")], [p("a", .cap)]) == "ss.csv: case a: label 0 but us.csv has 1")
        #expect(message([p("a")], [p("a", .covid, nil)]) == "ss.csv: case a: infection ratio unknown but us.csv has 0.01")
        let joined = try! EnsembleCase.join(us: [p("a"), p("b")], ss: [p("b"), p("a")], usFile: "u", ssFile: "s")
        #expect(joined.map(\.caseID) == ["a", "b"])
    }

    // MARK: - Ensemble file

    @Test func fileRoundTripWithRelativeCheckpoints() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("dsan-ens-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: dir) }
        for run in ["us", "ss"] {
            try FileManager.default.createDirectory(atPath: "\(dir)/runs/\(run)", withIntermediateDirectories: true)
            _ = FileManager.default.createFile(atPath: "\(dir)/runs/\(run)/best.h5", contents: Data())
        }
        try FileManager.default.createDirectory(atPath: "\(dir)/ens", withIntermediateDirectories: true)
        let rel = EnsembleFile.relativePath("\(dir)/runs/us/best.h5", from: "\(dir)/ens")
        #expect(rel == "../runs/us/best.h5")
        let file = EnsembleFile(usCheckpoint: rel, ssCheckpoint: "\(dir)/runs/ss/best.h5", fit: EnsembleFit(Self.knownWeights))
        try file.write(to: "\(dir)/ens/e.json")
        let back = try EnsembleFile.load("\(dir)/ens/e.json")
        #expect(back == file)
        #expect(back.resolvedCheckpoints(relativeTo: "\(dir)/ens/e.json").us == "\(dir)/ens/../runs/us/best.h5")
        #expect(back.combine(us: 1, ss: 0, ratio: 0.5) == 0.2 && back.combine(us: 1, ss: 0, ratio: nil) == 0.7)
        let text = try String(contentsOfFile: "\(dir)/ens/e.json", encoding: .utf8)
        #expect(text.hasPrefix("{\n  \"format\": \"dsan-ensemble\",\n  \"version\": 1,\n"))
        #expect(text.contains("\"w_out\": 0.2,\n  \"w_in\": 0.7,\n  \"ratio_low\": 0.001,\n  \"ratio_high\": 0.03,\n"))

        let paper = EnsembleFile(usCheckpoint: rel, ssCheckpoint: rel, rule: .paper)
        try paper.write(to: "\(dir)/ens/paper.json")
        #expect(try EnsembleFile.load("\(dir)/ens/paper.json") == paper)
    }

    @Test func loaderErrorsNameTheKey() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("dsan-ens-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        _ = FileManager.default.createFile(atPath: "\(dir)/m.h5", contents: Data())
        let good: [String: String] = [
            "format": "\"dsan-ensemble\"", "version": "1", "us": "{\"checkpoint\": \"m.h5\"}", "ss": "{\"checkpoint\": \"m.h5\"}",
            "w_out": "0.35", "w_in": "0.96", "ratio_low": "0.001", "ratio_high": "0.03",
        ]
        func message(_ changes: [String: String?]) -> String {
            var object = good
            for (k, v) in changes { object[k] = v }
            let text = "{" + object.sorted { $0.key < $1.key }.map { "\"\($0.key)\": \($0.value)" }.joined(separator: ", ") + "}"
            let path = "\(dir)/e.json"
            try! text.write(toFile: path, atomically: true, encoding: .utf8)
            do { _ = try EnsembleFile.load(path); return "ok" } catch { return "\(error)".replacingOccurrences(of: dir, with: "DIR") }
        }
        #expect(message([:]) == "ok")
        #expect(message(["w_in": nil]) == "DIR/e.json: missing key `w_in`")
        #expect(message(["w_out": "1.2"]) == "DIR/e.json: `w_out` = 1.2 is outside [0, 1]")
        #expect(message(["w_out": "true"]) == "DIR/e.json: `w_out` must be a number")
        #expect(message(["w_out": "\"0.3\""]) == "DIR/e.json: `w_out` must be a number")
        #expect(message(["ratio_low": "0.05"]) == "DIR/e.json: `ratio_low` = 0.05 is above `ratio_high` = 0.03")
        #expect(message(["format": "\"other\""]) == "DIR/e.json: `format` must be \"dsan-ensemble\"; not an ensemble file written by `dsan ensemble`")
        #expect(message(["version": "2"]) == "DIR/e.json: `version` must be 1 (this dsan reads version 1 only)")
        #expect(message(["ss": nil]) == "DIR/e.json: missing key `ss`; expected {\"checkpoint\": PATH}")
        #expect(message(["us": "{\"checkpoint\": \"gone.h5\"}"])
                == "DIR/e.json: `us.checkpoint` gone.h5 does not exist (looked for DIR/gone.h5; relative paths are relative to the ensemble file)")
        #expect(message(["validation": "{\"cases\": 3}"]) == "DIR/e.json: missing key `validation.outer_cases`")
        try "not json".write(toFile: "\(dir)/bad.json", atomically: true, encoding: .utf8)
        #expect(throws: DataError.self) { try EnsembleFile.load("\(dir)/bad.json") }
    }
}

/// A small deterministic generator for the randomised checks: dsan's own SplitMix64.
typealias SplitMix = SplitMix64
