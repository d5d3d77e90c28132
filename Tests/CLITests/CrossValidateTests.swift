import CTData
import Foundation
import Testing
import Training

@Suite(.serialized, .enabled(if: mpirunPath != nil, "needs mpirun (openmpi-bin)"))
struct CrossValidateTests {
    @Test func twoFoldsEndToEndWithTestSetBaselineAndResume() throws {
        let base = try scratchDirectory("cv")
        try SyntheticCohort.write(directory: base + "/test", cases: 5, size: [16, 32, 32], seed: 9, prefix: "test")
        let out = base + "/cv"
        let args = ["cv", "--data", trainingData, "--test", base + "/test", "--out", out, "--folds", "2", "--epochs", "1",
                    "--width", "2", "--batch", "4", "--timeout", "60", "--baseline", "--maps", "1"]
        let first = try run(mpirunPath!, mpirunFlags + ["-np", "2", dsanPath] + args)
        #expect(first.status == 0, "\(first.stderr)")

        let files = FileManager.default
        #expect(files.fileExists(atPath: out + "/cv.json"))
        for k in 0..<2 {
            for model in ["us", "ss", "baseline"] {
                #expect(files.fileExists(atPath: "\(out)/fold-\(k)/\(model)/best.h5"), "fold \(k) \(model)")
                // Both ranks trained: every step lists two shares.
                let steps = try String(contentsOfFile: "\(out)/fold-\(k)/\(model)/steps.jsonl", encoding: .utf8)
                #expect(steps.split(separator: "\n").allSatisfy { $0.contains("\"shares\":[[") && $0.contains("],[") })
            }
            #expect(files.fileExists(atPath: "\(out)/fold-\(k)/ensemble.json"))
            for model in ["us", "ss", "baseline", "ensemble"] {
                #expect(files.fileExists(atPath: "\(out)/fold-\(k)/predictions/\(model).csv"), "fold \(k) \(model)")
                #expect(files.fileExists(atPath: "\(out)/test/\(model)-fold-\(k).csv"), "test \(model) fold \(k)")
            }
            let maps = (try? files.contentsOfDirectory(atPath: "\(out)/fold-\(k)/attention/us")) ?? []
            #expect(!maps.isEmpty && maps.allSatisfy { $0.hasSuffix(".nii.gz") })
        }
        // The ensemble's predictions, combined from the two models' in `dsan cv`, are what
        // `dsan predict` prints when it runs both networks of the ensemble file.
        let direct = base + "/ensemble-fold-1.csv"
        let predicted = try dsan("predict", "--model", out + "/fold-1/ensemble.json", "--data", base + "/test", "--out", direct)
        #expect(predicted.status == 0, "\(predicted.stderr)")
        let combined = try PredictionsCSV.read(out + "/test/ensemble-fold-1.csv")
        let reference = try PredictionsCSV.read(direct)
        #expect(combined.map(\.caseID) == reference.map(\.caseID) && combined.count == 5)
        for (a, b) in zip(combined, reference) {
            #expect(Float(a.probability) == Float(b.probability), "\(a.caseID): \(a.probability) vs \(b.probability)")
        }
        for table in ["table2", "table3"] {
            for ext in ["md", "csv", "json"] { #expect(files.fileExists(atPath: "\(out)/tables/\(table).\(ext)")) }
        }
        // The paper's rows and columns.
        let t2 = try String(contentsOfFile: out + "/tables/table2.md", encoding: .utf8)
        #expect(t2.contains("| Results | Model | TV set | Test set |"))
        for metric in ["AUC", "Accuracy", "Sensitivity", "Specificity", "F1-score"] {
            for model in ["RN34 + US", "Attention RN34 + US", "Attention RN34 + SS", "Attention RN34 + DS"] {
                #expect(t2.contains("| \(metric) | \(model) | "), "\(metric) / \(model)")
            }
        }
        let t3 = try String(contentsOfFile: out + "/tables/table3.md", encoding: .utf8)
        #expect(t3.contains("| Results | Model | TV < 0.005 | TV 0.005–0.030 | TV > 0.030 | Test < 0.005 | Test 0.005–0.030 | Test > 0.030 |"))
        #expect(t3.contains("| No. of images | COVID-19 |") && t3.contains("| Total No. |"))

        // Running it again keeps the trained models (resumable fold by fold).
        let again = try run(mpirunPath!, mpirunFlags + ["-np", "2", dsanPath] + args)
        #expect(again.status == 0, "\(again.stderr)")
        #expect(again.stderr.contains("fold 2 Attention RN34 + SS: already trained, kept"), "\(again.stderr)")
        #expect(try String(contentsOfFile: out + "/tables/table2.md", encoding: .utf8) == t2)
    }
}
