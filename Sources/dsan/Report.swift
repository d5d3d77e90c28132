import ArgumentParser
import Foundation
import Report

struct ReportCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "report",
        abstract: "Write the HTML report of a training run or of a cross-validation.",
        discussion: """
        DIR is a training run (holds steps.jsonl / metrics.jsonl: loss curve, validation metrics \
        per epoch, metrics per infection-ratio band and ROC of val_predictions.csv) or a \
        cross-validation written by `dsan cv` (holds cv.json: the paper's Tables II and III, \
        paired t-tests, ROC curves per fold and pooled, training losses, CT slices with the \
        infection and attention maps). The page is one self-contained HTML file with the figures \
        embedded as PNG. See Docs/report.md.
        """
    )

    @Argument(help: "A training run directory or a cross-validation directory.")
    var directory: String

    @Option(help: "The HTML file to write (default: DIR/report.html).")
    var out: String?

    func run() throws {
        let output = try Report.generate(directory: directory)
        for warning in output.warnings { printError("dsan report: warning: \(warning)") }
        let path = out ?? (directory as NSString).appendingPathComponent("report.html")
        do {
            try Data(output.html.utf8).write(to: URL(fileURLWithPath: path), options: .atomic)
        } catch {
            throw ExitCode.failure.withMessage("\(path): cannot write the report (\((error as NSError).localizedDescription))")
        }
        print("wrote \(path) (\(output.figures) figure\(output.figures == 1 ? "" : "s"), \(output.html.utf8.count / 1024) KiB)")
    }
}
