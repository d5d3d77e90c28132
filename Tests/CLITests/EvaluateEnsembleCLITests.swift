import Foundation
import Testing

/// `dsan evaluate` and `dsan ensemble` run like a user, on small CSVs written here.
@Suite struct EvaluateEnsembleCLITests {
    static let header = "case_id,patient_id,label,infection_ratio,probability\n"

    /// Three bands and a case without ratio; the numbers are worked out by hand in
    /// Tests/TrainingTests/EvaluationTests.swift (overall AUC 12.5 / 15 with one tie).
    static let predictions = header + """
        c1,p1,1,0.001,0.9
        c2,p2,0,0.002,0.4
        c3,p3,0,0.0,0.6
        c4,p4,1,0.01,0.7
        c5,p5,0,0.02,0.3
        c6,p6,1,0.05,0.8
        c7,p7,1,0.1,0.4
        "c,8",p8,1,,0.55

        """

    @Test func evaluatePrintsTheTableAndWritesJSON() throws {
        let dir = try scratchDirectory("evaluate")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try Self.predictions.write(toFile: "\(dir)/p.csv", atomically: true, encoding: .utf8)
        let r = try dsan("evaluate", "--predictions", "\(dir)/p.csv", "--out", "\(dir)/m.json")
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stdout == """
            \(dir)/p.csv: 8 cases
            group              cases  COVID  CAP     AUC  accuracy  sensitivity  specificity      F1
            overall                8      5    3  0.8333    0.7500       0.8000       0.6667  0.8000
            r < 0.005              3      1    2  1.0000    0.6667       1.0000       0.5000  0.6667
            0.005 ≤ r ≤ 0.030      2      1    1  1.0000    1.0000       1.0000       1.0000  1.0000
            r > 0.030              2      2    0     n/a    0.5000       0.5000          n/a  0.6667
            1 case without infection ratio: counted overall only
            wrote \(dir)/m.json

            """)
        let json = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: "\(dir)/m.json"))) as! [String: Any]
        let overall = json["overall"] as! [String: Any]
        #expect(json["predictions"] as? String == "\(dir)/p.csv" && json["threshold"] as? Double == 0.5)
        #expect(overall["cases"] as? Int == 8 && abs((overall["auc"] as! Double) - 12.5 / 15) < 1e-12)
        let bands = json["bands"] as! [[String: Any]]
        #expect(bands.map { $0["band"] as! String } == ["< 0.005", "0.005–0.030", "> 0.030"])
        #expect(bands.map { $0["cases"] as! Int } == [3, 2, 2])
        #expect(bands[2]["auc"] is NSNull && bands[2]["specificity"] is NSNull && bands[2]["f1"] as? Double == 2.0 / 3)
        #expect(json["without_ratio"] as? Int == 1)
    }

    @Test func evaluateBadInputGoldenErrors() throws {
        let dir = try scratchDirectory("evaluate-bad")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try (Self.header + "c1,p1,1,0.01,0.9\nc2,p2,0,0.02,1.5\n").write(toFile: "\(dir)/range.csv", atomically: true, encoding: .utf8)
        let range = try dsan("evaluate", "--predictions", "\(dir)/range.csv")
        #expect(range.status != 0 && range.stdout.isEmpty)
        #expect(range.stderr == "dsan: \(dir)/range.csv: line 3: case c2: probability `1.5` is not a number in [0, 1]\n")

        try "case_id,label,infection_ratio,probability\nc1,1,0.01,0.9\n".write(toFile: "\(dir)/column.csv", atomically: true, encoding: .utf8)
        let column = try dsan("evaluate", "--predictions", "\(dir)/column.csv")
        #expect(column.status != 0)
        #expect(column.stderr == "dsan: \(dir)/column.csv: line 1: missing column `patient_id`; the header needs at least case_id,patient_id,label,infection_ratio,probability\n")

        let missing = try dsan("evaluate", "--predictions", "\(dir)/none.csv")
        #expect(missing.stderr == "dsan: \(dir)/none.csv: cannot read the predictions (missing or unreadable)\n")
    }

    // MARK: - Ensemble

    /// Validation predictions of two runs whose fit is unique, w_out = 0.20 and w_in = 0.70
    /// (constructed in Tests/TrainingTests/EnsembleTests.swift), as (id, label, ratio, us, ss).
    static let validation: [(String, Int, String, Double, Double)] = [
        ("A1", 1, "0.0005", 0.561, 0.461), ("B1", 0, "0.05", 0.40, 0.50),
        ("A2", 1, "0.2", 0.341, 0.441), ("B2", 0, "0", 0.50, 0.40),
        ("A3", 1, "0.01", 0.861, 0.761), ("B3", 0, "0.001", 0.80, 0.90),
        ("A4", 1, "", 0.841, 0.941), ("B4", 0, "0.03", 0.90, 0.80),
    ]

    /// RUN/best.h5 (contents irrelevant to `dsan ensemble`) and RUN/val_predictions.csv.
    static func writeRun(_ run: String, ss: Bool, drop: String? = nil, predictions: Bool = true) throws {
        try FileManager.default.createDirectory(atPath: run, withIntermediateDirectories: true)
        _ = FileManager.default.createFile(atPath: "\(run)/best.h5", contents: Data("checkpoint".utf8))
        guard predictions else { return }
        let rows = validation.filter { $0.0 != drop }.map { "\($0.0),p\($0.0),\($0.1),\($0.2),\(ss ? $0.4 : $0.3)" }
        try (header + rows.joined(separator: "\n") + "\n").write(toFile: "\(run)/val_predictions.csv", atomically: true, encoding: .utf8)
    }

    @Test func ensembleFitsAndWritesTheFile() throws {
        let dir = try scratchDirectory("ensemble")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try Self.writeRun("\(dir)/us", ss: false)
        try Self.writeRun("\(dir)/ss", ss: true)
        let r = try dsan("ensemble", "--us", "\(dir)/us", "--ss", "\(dir)/ss", "--out", "\(dir)/ens/e.json")
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stdout == """
            validation: 8 cases (4 COVID-19, 4 CAP); 4 weighted by w_out, 4 by w_in
            w_out = 0.2 (r < 0.001 or r > 0.030), w_in = 0.7
            validation AUC: US 0.5000, SS 0.5000, ensemble 0.6250 (accuracy 0.5000)
            wrote \(dir)/ens/e.json

            """)
        let text = try String(contentsOfFile: "\(dir)/ens/e.json", encoding: .utf8)
        #expect(text == """
            {
              "format": "dsan-ensemble",
              "version": 1,
              "rule": "P = w * P_US + (1 - w) * P_SS; w = w_out when r < ratio_low or r > ratio_high, else w_in (also when r is unknown)",
              "us": {
                "checkpoint": "../us/best.h5",
                "validation_auc": 0.5
              },
              "ss": {
                "checkpoint": "../ss/best.h5",
                "validation_auc": 0.5
              },
              "w_out": 0.2,
              "w_in": 0.7,
              "ratio_low": 0.001,
              "ratio_high": 0.03,
              "threshold": 0.5,
              "validation": {
                "cases": 8,
                "outer_cases": 4,
                "inner_cases": 4,
                "auc": 0.625,
                "accuracy": 0.5
              }
            }

            """)

        let paper = try dsan("ensemble", "--us", "\(dir)/us", "--ss", "\(dir)/ss", "--out", "\(dir)/paper.json", "--paper-weights")
        #expect(paper.status == 0, "\(paper.stderr)")
        let p = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: "\(dir)/paper.json"))) as! [String: Any]
        #expect(p["w_out"] as? Double == 0.35 && p["w_in"] as? Double == 0.96 && p["validation"] is NSNull)
        #expect((p["us"] as! [String: Any])["checkpoint"] as? String == "us/best.h5")
    }

    @Test func ensembleBadInputGoldenErrors() throws {
        let dir = try scratchDirectory("ensemble-bad")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try Self.writeRun("\(dir)/us", ss: false)
        try Self.writeRun("\(dir)/ss", ss: true, predictions: false)
        let missing = try dsan("ensemble", "--us", "\(dir)/us", "--ss", "\(dir)/ss", "--out", "\(dir)/e.json")
        #expect(missing.status != 0 && !FileManager.default.fileExists(atPath: "\(dir)/e.json"))
        #expect(missing.stderr == "dsan: \(dir)/ss/val_predictions.csv: no such file; the ensemble is fitted on validation predictions: train both runs with a validation set (--fold K, or --val DIR), or pass --paper-weights\n")

        try Self.writeRun("\(dir)/ss", ss: true, drop: "B4")
        let differ = try dsan("ensemble", "--us", "\(dir)/us", "--ss", "\(dir)/ss", "--out", "\(dir)/e.json")
        #expect(differ.status != 0)
        #expect(differ.stderr == "dsan: \(dir)/ss/val_predictions.csv: validation cases differ from \(dir)/us/val_predictions.csv: 1 case(s) only in \(dir)/us/val_predictions.csv (B4); train both runs with the same data, --folds and --fold\n")

        let noRun = try dsan("ensemble", "--us", "\(dir)/nothing", "--ss", "\(dir)/ss", "--out", "\(dir)/e.json")
        #expect(noRun.stderr == "dsan: \(dir)/nothing/best.h5: no such file; --us and --ss take run directories written by `dsan train`\n")
    }

    // MARK: - Help

    /// Golden help: a change to the flags or their wording shows up here (STYLE.md, "Tests that can fail").
    @Test func help() throws {
        let evaluate = try dsan("evaluate", "--help")
        #expect(evaluate.status == 0)
        #expect(evaluate.stdout == Self.evaluateHelp + "\n")
        let ensemble = try dsan("ensemble", "--help")
        #expect(ensemble.status == 0)
        #expect(ensemble.stdout == Self.ensembleHelp + "\n")
    }

    static let evaluateHelp = #"""
OVERVIEW: Metrics of a predictions CSV, overall and per infection-ratio band.

Reads the CSV written by `dsan train` (RUN/val_predictions.csv) or `dsan
predict` (columns case_id,patient_id,label,infection_ratio,probability; label 1
= COVID-19, 0 = CAP) and prints AUC, accuracy, sensitivity, specificity and F1
at threshold 0.5 overall and for the bands r < 0.005, 0.005 ≤ r ≤ 0.030 and r >
0.030 (the paper's Tables II and III). A case without an infection ratio counts
only overall. "n/a" marks a value that is undefined (AUC with one class,
sensitivity without COVID-19 cases, specificity without CAP cases).

USAGE: dsan evaluate --predictions <predictions> [--out <out>]

OPTIONS:
  --predictions <predictions>
                          Predictions CSV (from `dsan train` or `dsan predict`).
  --out <out>             Also write the metrics as JSON to this file (null
                          where undefined).
  --version               Show the version.
  -h, --help              Show help information.

"""#

    static let ensembleHelp = #"""
OVERVIEW: Fit the dual-sampling ensemble of a uniform- and a
size-balanced-sampling run.

P = w * P_US + (1 - w) * P_SS with w = w_out when the infection ratio r < 0.001
or r > 0.030 and w = w_in otherwise (also when r is unknown), as in the paper's
Eq. (5). w_out and w_in are searched on a 0.01 grid to maximise the AUC on the
validation predictions of both runs (RUN/val_predictions.csv, the same cases in
both); ties go to the higher accuracy at 0.5, then to the weights closest to
the paper's (0.35, 0.96). The ensemble file (JSON, see Docs/evaluation.md)
names RUN/best.h5 of each run relative to itself. With --paper-weights, nothing
is fitted and the paper's weights are written.

USAGE: dsan ensemble --us <us> --ss <ss> --out <out> [--paper-weights]

OPTIONS:
  --us <us>               Run directory of the uniform-sampling model
                          (RUN/best.h5, RUN/val_predictions.csv).
  --ss <ss>               Run directory of the size-balanced-sampling model.
  --out <out>             Ensemble file to write (JSON).
  --paper-weights         Write the paper's weights (w_out 0.35, w_in 0.96)
                          without fitting (runs without a validation set).
  --version               Show the version.
  -h, --help              Show help information.

"""#
}
