import CTData
import Foundation
import NIfTI
import NumericalTesting
import Report
import Testing
import Evaluation

/// A small cross-validation directory as `dsan cv` lays it out: a synthetic cohort, 2 folds of
/// predictions for us/ss/ensemble, test predictions, one run's logs, an ensemble file and
/// attention maps for one case.
struct FakeCV {
    let root: String
    let cv: String
    let data: String
    let infos: [CaseInfo]
    let size: [Int]

    init(size: [Int] = [16, 32, 32], cases: Int = 8) throws {
        root = temporaryPath("cv")
        cv = (root as NSString).appendingPathComponent("cv")
        data = (root as NSString).appendingPathComponent("data")
        self.size = size
        infos = try SyntheticCohort.write(directory: data, cases: cases, size: size, seed: 7, shardSize: 8)
        let fm = FileManager.default
        func dir(_ parts: String...) throws -> String {
            let p = parts.reduce(cv) { ($0 as NSString).appendingPathComponent($1) }
            try fm.createDirectory(atPath: p, withIntermediateDirectories: true)
            return p
        }
        func write(_ text: String, _ path: String) throws { try Data(text.utf8).write(to: URL(fileURLWithPath: path)) }
        _ = try dir()
        try write(#"{"folds": 2, "models": ["us", "ss", "ensemble"], "data": "\#(data)", "test": "\#(data)"}"#,
                  cv + "/cv.json")
        let halves = [Array(infos.prefix(infos.count / 2)), Array(infos.suffix(infos.count - infos.count / 2))]
        func predictions(_ cases: [CaseInfo], shift: Double) -> [Prediction] {
            cases.enumerated().map { i, c in
                let base = c.label == .covid ? 0.7 : 0.3
                let p = min(1, max(0, base + shift + Double(i % 3) * 0.1 - 0.1 + (i == 1 ? -0.5 : 0)))
                return Prediction(caseID: c.caseID, patientID: c.patientID, label: c.label,
                                  infectionRatio: c.hasInfectionMask ? Double(c.infectionRatio) : nil, probability: p)
            }
        }
        _ = try dir("test")
        for (k, cases) in halves.enumerated() {
            let fold = "fold-\(k + 1)"
            let p = try dir(fold, "predictions")
            for (m, shift) in [("us", 0.0), ("ss", 0.05), ("ensemble", 0.02)] {
                try PredictionsCSV.write(predictions(cases, shift: shift), to: p + "/\(m).csv")
                try PredictionsCSV.write(predictions(infos, shift: shift - 0.03 * Double(k)), to: cv + "/test/\(m)-fold-\(k + 1).csv")
            }
            try EnsembleFile(usCheckpoint: "us/best.h5", ssCheckpoint: "ss/best.h5", rule: .paper)
                .write(to: cv + "/\(fold)/ensemble.json")
        }
        // Fold 1's US run: 2 epochs of 3 steps.
        let run = try dir("fold-1", "us")
        var steps = ""
        for g in 0..<6 {
            let loss = 1.0 / Double(g + 1)
            steps += #"{"epoch":\#(g / 3),"step":\#(g % 3),"globalStep":\#(g),"loss":\#(loss),"classification":\#(loss * 0.7),"attention":\#(loss * 0.3),"lr":0.0002,"cases":4,"covid":2,"shares":[[0,1,2,3]]}"# + "\n"
        }
        try write(steps, run + "/steps.jsonl")
        try write("""
            {"epoch":0,"meanLoss":0.61,"lr":0.0002,"seconds":1.5,"samplesPerSecond":8,"validation":{"cases":4,"positives":2,"auc":0.75,"accuracy":0.5,"sensitivity":0.5,"specificity":0.5,"f1":0.5}}
            {"epoch":1,"meanLoss":0.2,"lr":0.0002,"seconds":1.4,"samplesPerSecond":8.5,"validation":{"cases":4,"positives":2,"auc":1,"accuracy":1,"sensitivity":1,"specificity":1,"f1":1}}

            """, run + "/metrics.jsonl")
        // Attention maps of the first case with infection in fold 1, as NIfTI [W, H, D].
        let chosen = halves[0].first { $0.hasInfectionMask && $0.infectionRatio > 0 } ?? halves[0][0]
        for (m, centre) in [("us", 0.3), ("ss", 0.6)] {
            let a = try dir("fold-1", "attention", m)
            var volume = Volume(dims: [size[2], size[1], size[0]], repeating: 0)
            for z in 0..<size[0] {
                for y in 0..<size[1] {
                    for x in 0..<size[2] {
                        let dx = Double(x) / Double(size[2]) - centre, dy = Double(y) / Double(size[1]) - 0.5
                        let dz = Double(z) / Double(size[0]) - 0.5
                        volume[x, y, z] = Float(exp(-(dx * dx + dy * dy + dz * dz) / 0.02))
                    }
                }
            }
            try NIfTI.write(volume, to: a + "/\(chosen.caseID).nii.gz")
        }
    }

    func remove() { try? FileManager.default.removeItem(atPath: root) }
}

func count(_ needle: String, in text: String) -> Int { text.components(separatedBy: needle).count - 1 }

@Suite(.serialized) struct ReportTests {
    @Test func crossValidationReport() throws {
        let fake = try FakeCV()
        defer { fake.remove() }
        let output = try Report.generate(directory: fake.cv)
        let html = output.html
        // Tables II and III with the paper's names.
        for name in ["Table II", "Table III", "Results", "TV set", "Test set", "AUC", "Accuracy", "Sensitivity", "Specificity",
                     "F1-score", "Attention RN34 + US", "Attention RN34 + SS", "Attention RN34 + DS", "No. of images",
                     "Total No.", "&lt; 0.005", "0.005–0.030", "&gt; 0.030", "±"] {
            #expect(html.contains(name), "missing \(name)")
        }
        // Figures: ROC pooled + 2 folds validation + 2 folds test, 1 loss curve, 1 case.
        #expect(output.figures == 7)
        #expect(count("<img src=\"data:image/png;base64,", in: html) == output.figures)
        #expect(output.warnings.isEmpty, "\(output.warnings)")
        // Every embedded image decodes as a PNG.
        for chunk in html.components(separatedBy: "data:image/png;base64,").dropFirst() {
            let b64 = String(chunk.prefix { $0 != "\"" })
            let bytes = try #require(Data(base64Encoded: b64))
            #expect(bytes.starts(with: [0x89, 0x50, 0x4E, 0x47]))
        }
        if let keep = ProcessInfo.processInfo.environment["DSAN_REPORT_KEEP"] {
            try Data(html.utf8).write(to: URL(fileURLWithPath: keep + "/cv.html"))
        }
    }

    /// Writes a report of a larger synthetic case to DSAN_REPORT_KEEP, to look at the figures.
    @Test(.enabled(if: ProcessInfo.processInfo.environment["DSAN_REPORT_KEEP"] != nil))
    func largerCaseForLooking() throws {
        let fake = try FakeCV(size: [48, 128, 128], cases: 8)
        defer { fake.remove() }
        let output = try Report.generate(directory: fake.cv)
        let keep = ProcessInfo.processInfo.environment["DSAN_REPORT_KEEP"]!
        try Data(output.html.utf8).write(to: URL(fileURLWithPath: keep + "/cv-large.html"))
    }

    @Test func runReport() throws {
        let fake = try FakeCV()
        defer { fake.remove() }
        let output = try Report.generate(directory: fake.cv + "/fold-1/us")
        #expect(output.figures == 2)  // loss, validation per epoch (no val_predictions.csv)
        #expect(output.html.contains("<tr class=\"best\"><td>1</td>"))
        #expect(count("<img src=\"data:image/png;base64,", in: output.html) == 2)
        #expect(!output.html.contains("<h2>Ranks</h2>"))   // its steps.jsonl predates the per-rank waits
        if let keep = ProcessInfo.processInfo.environment["DSAN_REPORT_KEEP"] {
            try Data(output.html.utf8).write(to: URL(fileURLWithPath: keep + "/run.html"))
        }
    }

    /// Three ranks over 12 steps; rank 2 waits least in 10 of them: the page says so and warns.
    @Test func runReportNamesTheStraggler() throws {
        let run = try Scratch.directory("report-ranks")
        func lines(_ waits: (Int) -> [Double]) -> String {
            (0..<12).map { g in
                #"{"epoch":0,"step":\#(g),"globalStep":\#(g),"loss":1,"classification":0.7,"attention":0.3,"lr":0.0002,"#
                    + #""batchNormSyncSecondsByRank":[\#(waits(g).map { String($0) }.joined(separator: ","))]}"#
            }.joined(separator: "\n") + "\n"
        }
        try Data(lines { g in g < 10 ? [0.30 + 0.01 * Double(g), 0.25, 0.05] : [0.02, 0.3, 0.2] }.utf8)
            .write(to: URL(fileURLWithPath: run + "/steps.jsonl"))
        let output = try Report.generate(directory: run)
        #expect(output.html.contains("<h2>Ranks</h2>"))
        #expect(output.html.contains("<td>10 of 12 steps</td>") && output.html.contains("<td>2 of 12 steps</td>"))
        #expect(output.warnings.contains { $0.hasPrefix("rank 2 waited least in 10 of 12 steps") }, "\(output.warnings)")
        // The role alternating between two ranks: no warning.
        try Data(lines { g in g % 2 == 0 ? [0.1, 0.2] : [0.2, 0.1] }.utf8).write(to: URL(fileURLWithPath: run + "/steps.jsonl"))
        let even = try Report.generate(directory: run)
        #expect(even.html.contains("<td>6 of 12 steps</td>"))
        #expect(!even.warnings.contains { $0.contains("waited least") })
    }

    @Test func missingPredictionsFileIsNamed() throws {
        let fake = try FakeCV()
        defer { fake.remove() }
        let missing = fake.cv + "/fold-2/predictions/ss.csv"
        try FileManager.default.removeItem(atPath: missing)
        #expect { try Report.generate(directory: fake.cv) } throws: { "\($0)".hasPrefix(missing + ": ") }
    }

    @Test func malformedLogLineIsNamed() throws {
        let fake = try FakeCV()
        defer { fake.remove() }
        let steps = fake.cv + "/fold-1/us/steps.jsonl"
        try Data((#"{"epoch":0,"step":0,"globalStep":0,"loss":1,"classification":1,"attention":0,"lr":1}"# + "\n{oops\n").utf8)
            .write(to: URL(fileURLWithPath: steps))
        #expect { try Report.generate(directory: fake.cv + "/fold-1/us") } throws: { "\($0)".hasPrefix(steps + ": line 2: ") }
        try Data(#"{"epoch":0,"step":0,"globalStep":0,"classification":1,"attention":0,"lr":1}"#.utf8).write(to: URL(fileURLWithPath: steps))
        #expect { try Report.generate(directory: fake.cv + "/fold-1/us") } throws: { "\($0)" == steps + ": line 1: missing field `loss`" }
    }

    @Test func neitherRunNorCrossValidation() throws {
        let dir = temporaryPath("empty")
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        #expect { try Report.generate(directory: dir) } throws: { "\($0)".hasPrefix(dir + ": is neither a training run") }
        #expect { try Report.generate(directory: dir + "/nope") } throws: { "\($0)".hasPrefix(dir + "/nope: no such directory") }
    }

    @Test func sliceChoiceFollowsTheLargestInfectionCrossSection() {
        let size = [4, 5, 6]
        var infection = [UInt8](repeating: 0, count: 120)
        // Axial: z = 2 holds three voxels, z = 0 and z = 1 one each. Coronal: y = 3 holds three, y = 1 two.
        for (x, y, z) in [(0, 1, 2), (1, 1, 2), (2, 3, 2), (4, 3, 0), (5, 3, 1)] { infection[x + 6 * (y + 5 * z)] = 1 }
        let choice = SliceChoice.choose(size: size, infection: infection, maps: [])
        #expect(choice == SliceChoice(z: 2, y: 3, reason: .infection))
        var map = [Float](repeating: 0, count: 120)
        map[2 + 6 * (4 + 5 * 1)] = 5
        #expect(SliceChoice.choose(size: size, infection: nil, maps: [map]) == SliceChoice(z: 1, y: 4, reason: .attentionMaximum))
        #expect(SliceChoice.choose(size: size, infection: nil, maps: []) == SliceChoice(z: 2, y: 2, reason: .centre))
    }
}
