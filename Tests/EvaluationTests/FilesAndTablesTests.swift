import CTData
import Foundation
import Testing
@testable import Evaluation

/// The CSV helpers every writer shares, the float32 spelling of shard predictions, and the
/// cross-validation tables written from prediction files.
@Suite struct CSVAndSpellingTests {
    @Test func fieldsAreQuotedOnlyWhenTheyMustBe() {
        #expect(CSV.field("B4") == "B4")
        #expect(CSV.field("a,b") == "\"a,b\"")
        #expect(CSV.field("say \"hi\"") == "\"say \"\"hi\"\"\"")
        #expect(CSV.field("two\nlines") == "\"two\nlines\"")
        #expect(CSV.field("RN34 + US") == "RN34 + US")
        #expect(CSV.field("RN34 + US", quotingSpaces: true) == "\"RN34 + US\"")
        #expect(CSV.text([["a", "b c"], ["1", "2"]], quotingSpaces: true) == "a,\"b c\"\n1,2\n")
    }

    @Test func quotedFieldsReadBack() throws {
        let rows = [["case_id", "note"], ["a,1", "say \"hi\"\nthere"], ["b", ""]]
        let records = try CSV.records(CSV.text(rows), file: "t.csv")
        #expect(records.map(\.fields) == rows)
        #expect(records.map(\.line) == [1, 2, 4])
    }

    /// A shard's float32 ratio and probability are written as float32 spells them, whatever the
    /// value: the CSV `dsan predict` wrote before `PredictionsCSV.format` wrote it.
    @Test func float32ValuesKeepTheirSpelling() {
        var state: UInt32 = 12345
        var values: [Float] = [0, 1, 0.1, 0.5, 1e-05, 3.3e-07, .leastNormalMagnitude, .leastNonzeroMagnitude, 0.99999994]
        for _ in 0..<20_000 {
            state = state &* 1_664_525 &+ 1_013_904_223
            values.append(Float(bitPattern: state >> 9 | 0x3F00_0000) - 0.5)       // [0, 0.5)
            values.append(Float(bitPattern: (state >> 4) % 0x3F80_0000))             // (0, 1) across exponents
        }
        for v in values {
            #expect("\(Prediction.spelled(v))" == "\(v)", "\(v)")
        }
        let info = CaseInfo(caseID: "a,b", patientID: "P1", label: .covid, infectionRatio: 0.1)
        let text = PredictionsCSV.format([Prediction(case: info, probability: Float(0.7)),
                                          Prediction(case: CaseInfo(caseID: "c", patientID: "P2", label: .cap, infectionRatio: .nan),
                                                     probability: Float(1e-05))])
        #expect(text == "case_id,patient_id,label,infection_ratio,probability\n\"a,b\",P1,1,0.1,0.7\nc,P2,0,,1e-05\n")
    }
}

@Suite struct CrossValidationTablesTests {
    static func prediction(_ id: String, _ label: Label, _ ratio: Double?, _ p: Double) -> Prediction {
        Prediction(caseID: id, patientID: "P" + id, label: label, infectionRatio: ratio, probability: p)
    }

    /// Two folds of two models and their ensemble, every AUC known by hand.
    @Test func tablesFromPredictionFiles() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("dsan-tables-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: dir) }
        // Fold 0: us perfect (AUC 1), ss inverted (AUC 0), ensemble perfect.
        // Fold 1: us 0.75, ss 0.5, ensemble 1.
        let folds: [[String: [Double]]] = [
            ["us": [0.9, 0.8, 0.2, 0.1], "ss": [0.1, 0.2, 0.8, 0.9], "ensemble": [0.7, 0.6, 0.4, 0.3]],
            ["us": [0.9, 0.3, 0.4, 0.1], "ss": [0.5, 0.5, 0.5, 0.5], "ensemble": [0.9, 0.8, 0.2, 0.1]],
        ]
        let labels: [Label] = [.covid, .covid, .cap, .cap], ratios: [Double?] = [0.001, 0.02, 0.05, nil]
        for (k, fold) in folds.enumerated() {
            try FileManager.default.createDirectory(atPath: "\(dir)/fold-\(k)/predictions", withIntermediateDirectories: true)
            for (name, scores) in fold {
                let rows = scores.indices.map { Self.prediction("\(k)-\($0)", labels[$0], ratios[$0], scores[$0]) }
                try PredictionsCSV.write(rows, to: "\(dir)/fold-\(k)/predictions/\(name).csv")
            }
        }
        let table2 = try CrossValidationTables.write(in: dir, models: [.us, .ss], folds: 2, test: false)
        #expect(table2.hasPrefix("TABLE II: classification results over 2 folds."))
        #expect(table2.contains("(no test set given)"))
        // Pooled over both folds: 8 cases, AUC of DS = 1.
        #expect(table2.contains("| AUC | Attention RN34 + DS | 1.000 | n/a |"))
        let csv = try String(contentsOfFile: "\(dir)/tables/table2.csv", encoding: .utf8)
        #expect(csv.hasPrefix("Results,Model,\"TV set\",\"Test set\"\nAUC,\"Attention RN34 + US\","))
        let table3 = try String(contentsOfFile: "\(dir)/tables/table3.md", encoding: .utf8)
        // r < 0.005: one COVID-19 case per fold; 0.005–0.030: one; > 0.030: one CAP; one without ratio.
        #expect(table3.contains("| No. of images | COVID-19 | 2 | 2 | 0 | n/a | n/a | n/a |"))
        #expect(table3.contains("| Total No. |  | 2 | 2 | 2 | n/a | n/a | n/a |"))

        let tests = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: "\(dir)/tables/tests.json"))) as! [String: Any]
        #expect(tests["folds"] as? Int == 2)
        #expect(tests["ds_fold_auc"] as? [Double] == [1, 1])
        let paired = tests["paired_t_tests"] as! [[String: Any]]
        #expect(paired.map { $0["model"] as? String } == ["Attention RN34 + US", "Attention RN34 + SS"])
        #expect(paired[0]["fold_auc"] as? [Double] == [1, 0.75])
        // DS − US: differences 0 and 0.25, mean 0.125.
        #expect(paired[0]["ds_minus_model_auc_mean"] as? Double == 0.125)
        let t = try #require(PairedTTest([1, 1], [1, 0.75]))
        #expect(abs((paired[0]["p"] as? Double ?? -1) - t.p) < 1e-12)
    }

    @Test func aMissingFoldFileNamesIt() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("dsan-tables-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: dir) }
        #expect(throws: DataError.self) { try CrossValidationTables.write(in: dir, models: [.us, .ss], folds: 1, test: false) }
    }
}
