import CTData
import Foundation

/// The files of a training run's directory (`dsan train --out DIR`), each written here:
/// `config.yaml`, `steps.jsonl` and `metrics.jsonl` (one JSON object per line, keys sorted),
/// `val_predictions_last.csv` and `val_predictions.csv` (the best epoch's), and the checkpoints
/// `last.h5` and `best.h5` (written by `Checkpoint`, at the paths given here).
public struct RunDirectory {
    public let path: String

    public init(_ path: String) { self.path = path }

    public func file(_ name: String) -> String { (path as NSString).appendingPathComponent(name) }
    /// The checkpoint `--resume` continues from.
    public var lastCheckpoint: String { file("last.h5") }
    /// The checkpoint of the epoch with the best validation AUC (the last epoch without validation).
    public var bestCheckpoint: String { file("best.h5") }

    /// Creates the directory (and its parents) if it does not exist.
    public func create() throws {
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    }

    /// The files of an earlier run that a new run (not resuming) would replace.
    public static let runFiles = ["last.h5", "best.h5", "metrics.jsonl", "steps.jsonl", "val_predictions.csv",
                                  "val_predictions_last.csv", "config.yaml"]

    /// Before a new run (not `--resume`): refuses a directory that holds an earlier run's results
    /// (a checkpoint or `metrics.jsonl`) unless `overwrite`, which removes that run's files.
    public func claimForNewRun(overwrite: Bool) throws {
        let results = ["last.h5", "best.h5", "metrics.jsonl"].filter { FileManager.default.fileExists(atPath: file($0)) }
        guard !results.isEmpty else { return }
        guard overwrite else {
            throw RunDirectoryError(path: path, found: results)
        }
        for name in Self.runFiles { try? FileManager.default.removeItem(atPath: file(name)) }
    }

    /// Writes `config.yaml`; a fresh run (not `resuming`) also drops the step and epoch logs of an
    /// earlier run there.
    public func writeStart(config: TrainConfig, resuming: Bool) throws {
        try config.yaml.write(toFile: file("config.yaml"), atomically: true, encoding: .utf8)
        if !resuming {
            for name in ["steps.jsonl", "metrics.jsonl"] { try? FileManager.default.removeItem(atPath: file(name)) }
        }
    }

    /// Appends one line to `steps.jsonl`.
    public func append(_ record: StepRecord) throws { try JSONLines.append(record, to: file("steps.jsonl")) }

    /// Appends one line to `metrics.jsonl`.
    public func append(_ record: EpochRecord) throws { try JSONLines.append(record, to: file("metrics.jsonl")) }

    /// Writes an epoch's validation predictions to `val_predictions_last.csv`, and to
    /// `val_predictions.csv` too when the epoch is the best so far.
    public func writeValidationPredictions(_ predictions: [Prediction], best: Bool) throws {
        let text = PredictionsCSV.format(predictions)
        try text.write(toFile: file("val_predictions_last.csv"), atomically: true, encoding: .utf8)
        if best { try text.write(toFile: file("val_predictions.csv"), atomically: true, encoding: .utf8) }
    }
}

/// A file of JSON lines: one object per line, keys sorted.
enum JSONLines {
    /// Appends `value` as one line, creating the file if needed.
    static func append<T: Encodable>(_ value: T, to path: String) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        var data = try encoder.encode(value)
        data.append(0x0A)
        if let handle = FileHandle(forWritingAtPath: path) {
            defer { try? handle.close() }
            try handle.seekToEnd()
            try handle.write(contentsOf: data)
        } else {
            try data.write(to: URL(fileURLWithPath: path))
        }
    }
}

/// A run directory that already holds a run: a new run would replace its checkpoints and logs.
public struct RunDirectoryError: Error, CustomStringConvertible {
    public var path: String
    public var found: [String]
    public var description: String {
        "\(path) already holds a training run (\(found.joined(separator: ", "))); continue it with --resume, "
            + "replace it with --overwrite, or choose another --out (Docs/input-rules.md)"
    }
}
