import ArgumentParser
import CTData
import Foundation
import Evaluation

struct Evaluate: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Metrics of a predictions CSV, overall and per infection-ratio band.",
        discussion: """
        Reads the CSV written by `dsan train` (RUN/val_predictions.csv) or `dsan predict` (columns \
        case_id,patient_id,label,infection_ratio,probability; label 1 = COVID-19, 0 = CAP) and \
        prints AUC, accuracy, sensitivity, specificity and F1 at threshold 0.5 overall and for the \
        bands r < 0.005, 0.005 ≤ r ≤ 0.030 and r > 0.030 (the paper's Tables II and III). A case \
        without an infection ratio counts only overall. "n/a" marks a value that is undefined (AUC \
        with one class, sensitivity without COVID-19 cases, specificity without CAP cases).
        """
    )

    @Option(help: "Predictions CSV (from `dsan train` or `dsan predict`).")
    var predictions: String

    @Option(help: "Also write the metrics as JSON to this file (null where undefined).")
    var out: String?

    func run() throws {
        try CommandErrors.reporting {
            let rows = try PredictionsCSV.read(predictions)
            let evaluation = Evaluation(rows)
            print("\(predictions): \(rows.count) cases")
            print(evaluation.table(), terminator: "")
            if let out {
                try TextFile.write(evaluation.json(predictions: predictions).text, to: out)
                print("wrote \(out)")
            }
        }
    }
}
