import Foundation
import Testing

/// `dsan report DIR [--out FILE]`: the page it writes and the one line it prints for bad input.
@Suite struct ReportCLITests {
    static func writeRun(_ dir: String) throws {
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        var steps = ""
        for g in 0..<4 {
            steps += #"{"epoch":\#(g / 2),"step":\#(g % 2),"globalStep":\#(g),"loss":\#(1.0 / Double(g + 1)),"classification":0.5,"attention":0.1,"lr":0.0002,"cases":2,"covid":1,"shares":[[0,1]]}"# + "\n"
        }
        try Data(steps.utf8).write(to: URL(fileURLWithPath: dir + "/steps.jsonl"))
        try Data(#"{"epoch":0,"meanLoss":0.7,"lr":0.0002,"seconds":1,"samplesPerSecond":4,"validation":{"cases":4,"positives":2,"auc":0.75,"accuracy":0.5,"sensitivity":0.5,"specificity":0.5,"f1":0.5}}"#.utf8 + [10])
            .write(to: URL(fileURLWithPath: dir + "/metrics.jsonl"))
        try Data("case_id,patient_id,label,infection_ratio,probability\na,pa,1,0.04,0.9\nb,pb,0,0.001,0.2\nc,pc,1,,0.4\nd,pd,0,0.01,0.6\n".utf8)
            .write(to: URL(fileURLWithPath: dir + "/val_predictions.csv"))
    }

    @Test func runPage() throws {
        let dir = try scratchDirectory("report-run")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try Self.writeRun(dir + "/run")
        let result = try dsan("report", dir + "/run", "--out", dir + "/page.html")
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.stdout.hasPrefix("wrote \(dir)/page.html (3 figures"))
        let html = try String(contentsOfFile: dir + "/page.html", encoding: .utf8)
        #expect(html.components(separatedBy: "<img src=\"data:image/png;base64,").count - 1 == 3)
        // Default output: DIR/report.html.
        #expect(try dsan("report", dir + "/run").status == 0)
        #expect(FileManager.default.fileExists(atPath: dir + "/run/report.html"))
    }

    @Test func badInputIsOneLineNamingTheFile() throws {
        let dir = try scratchDirectory("report-bad")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let missing = try dsan("report", dir + "/nope")
        #expect(missing.status != 0)
        #expect(missing.stderr.contains("\(dir)/nope: no such directory"), "\(missing.stderr)")

        try FileManager.default.createDirectory(atPath: dir + "/cv/fold-0", withIntermediateDirectories: true)
        try Data(#"{"folds": 1, "models": ["us"], "data": null, "test": null}"#.utf8).write(to: URL(fileURLWithPath: dir + "/cv/cv.json"))
        let noPredictions = try dsan("report", dir + "/cv")
        #expect(noPredictions.status != 0)
        #expect(noPredictions.stderr.contains("\(dir)/cv/fold-0/predictions/us.csv: cannot read"), "\(noPredictions.stderr)")
        #expect(noPredictions.stderr.split(separator: "\n").count == 1, "\(noPredictions.stderr)")
    }
}
