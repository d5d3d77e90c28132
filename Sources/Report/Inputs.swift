import CTData
import Foundation
import NIfTI
import Evaluation

/// One line of a run's `steps.jsonl` (the fields of `StepRecord` a report plots).
public struct StepLine: Decodable, Sendable, Equatable {
    public var epoch: Int
    public var step: Int
    public var globalStep: Int
    public var loss: Double
    public var classification: Double
    public var attention: Double
    public var lr: Double
    /// Every rank's seconds in the synchronised batch norms (absent in runs before this field).
    public var batchNormSyncSecondsByRank: [Double]?
}

/// A training run directory as `dsan train` leaves it: `steps.jsonl`, `metrics.jsonl`,
/// `val_predictions.csv` (each optional, at least one of the logs present).
public struct TrainingRun {
    public var directory: String
    public var steps: [StepLine]
    public var epochs: [EpochRecord]
    /// nil when the run wrote no `val_predictions.csv`.
    public var validation: [Prediction]?

    public static let stepsFile = "steps.jsonl", metricsFile = "metrics.jsonl", predictionsFile = "val_predictions.csv"

    /// Whether `directory` looks like a run (holds `steps.jsonl` or `metrics.jsonl`).
    public static func isRun(_ directory: String) -> Bool {
        [stepsFile, metricsFile].contains { FileManager.default.fileExists(atPath: join(directory, $0)) }
    }

    public init(directory: String) throws {
        self.directory = directory
        guard Self.isRun(directory) else {
            throw DataError(file: directory, "is not a training run: it holds neither \(Self.stepsFile) nor \(Self.metricsFile)")
        }
        let stepsPath = join(directory, Self.stepsFile), metricsPath = join(directory, Self.metricsFile)
        steps = FileManager.default.fileExists(atPath: stepsPath) ? try JSONLines.read(stepsPath, as: StepLine.self) : []
        epochs = FileManager.default.fileExists(atPath: metricsPath) ? try JSONLines.read(metricsPath, as: EpochRecord.self) : []
        let predictions = join(directory, Self.predictionsFile)
        validation = FileManager.default.fileExists(atPath: predictions) ? try PredictionsCSV.read(predictions) : nil
    }
}

/// JSON Lines: one JSON object per line, blank lines skipped; errors name the file and line.
enum JSONLines {
    static func read<T: Decodable>(_ path: String, as: T.Type) throws -> [T] {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw DataError(file: path, "cannot read (missing or unreadable)")
        }
        guard let text = String(data: data, encoding: .utf8) else {
            throw DataError(file: path, "is not UTF-8 text; expected one JSON object per line")
        }
        let decoder = JSONDecoder()
        decoder.nonConformingFloatDecodingStrategy = .convertFromString(positiveInfinity: "Infinity", negativeInfinity: "-Infinity", nan: "NaN")
        var out: [T] = []
        for (i, line) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let trimmed = line.trimmingCharacters(in: .whitespacesAndNewlines)
            guard !trimmed.isEmpty else { continue }
            do {
                out.append(try decoder.decode(T.self, from: Data(trimmed.utf8)))
            } catch let DecodingError.keyNotFound(key, _) {
                throw DataError(file: path, "line \(i + 1): missing field `\(key.stringValue)`")
            } catch let DecodingError.typeMismatch(_, context), let DecodingError.valueNotFound(_, context) {
                let field = context.codingPath.map(\.stringValue).joined(separator: ".")
                throw DataError(file: path, "line \(i + 1): field `\(field)` has the wrong type")
            } catch {
                throw DataError(file: path, "line \(i + 1): not a JSON object (\((error as NSError).localizedDescription))")
            }
        }
        return out
    }
}

func join(_ directory: String, _ components: String...) -> String {
    components.reduce(directory) { ($0 as NSString).appendingPathComponent($1) }
}

/// A cross-validation directory as `dsan cv` writes it:
///
/// ```
/// cv.json                                   {"folds": F, "models": [...], "data": DIR, "test": DIR or null}
/// fold-K/us/, fold-K/ss/                    training runs
/// fold-K/ensemble.json                      the fitted ensemble
/// fold-K/predictions/<model>.csv            validation predictions of fold K
/// fold-K/attention/{us,ss}/<case>.nii.gz    attention maps at input size for a few validation cases
/// test/<model>-fold-K.csv                   test-set predictions of fold K's models
/// ```
public struct CrossValidation {
    public var directory: String
    public var folds: Int
    /// Model keys in the order of `cv.json` (`us`, `ss`, `ensemble`, optionally `baseline`).
    public var models: [String]
    /// The shards directory (resolved against the working directory, then the CV directory).
    public var data: String?
    /// The test shards directory, when `dsan cv` was given one.
    public var testData: String?
    /// Fold numbers K as they appear in the `fold-K` folder names, ascending.
    public var foldNumbers: [Int]
    /// validation[model][i]: predictions of fold `foldNumbers[i]`.
    public var validation: [String: [[Prediction]]]
    /// test[model][i]: test predictions of fold `foldNumbers[i]`'s model; absent without a test set.
    public var test: [String: [[Prediction]]]

    public static let file = "cv.json"

    public static func isCrossValidation(_ directory: String) -> Bool {
        FileManager.default.fileExists(atPath: join(directory, file))
    }

    public init(directory: String) throws {
        self.directory = directory
        let path = join(directory, Self.file)
        guard let data = FileManager.default.contents(atPath: path) else {
            throw DataError(file: path, "cannot read (missing or unreadable); `dsan cv` writes it")
        }
        guard let root = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any] else {
            throw DataError(file: path, "is not a JSON object")
        }
        guard let folds = root["folds"] as? Int, folds >= 1 else {
            throw DataError(file: path, "`folds` must be a positive integer")
        }
        guard let models = root["models"] as? [String], !models.isEmpty else {
            throw DataError(file: path, "`models` must be a non-empty list of names (us, ss, ensemble, baseline)")
        }
        self.folds = folds
        self.models = models
        self.data = (root["data"] as? String).map { Self.resolve($0, in: directory) }
        self.testData = (root["test"] as? String).map { Self.resolve($0, in: directory) }

        let entries = (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []
        let numbers = entries.compactMap { name -> Int? in
            guard name.hasPrefix("fold-") else { return nil }
            return Int(name.dropFirst("fold-".count))
        }.sorted()
        guard numbers.count == folds else {
            throw DataError(file: directory, "holds \(numbers.count) fold-K folders but \(path) says \(folds) folds")
        }
        foldNumbers = numbers
        var validation: [String: [[Prediction]]] = [:], test: [String: [[Prediction]]] = [:]
        for model in models {
            validation[model] = try numbers.map { k in
                try PredictionsCSV.read(join(directory, "fold-\(k)", "predictions", "\(model).csv"))
            }
            let testPaths = numbers.map { join(directory, "test", "\(model)-fold-\($0).csv") }
            let present = testPaths.filter { FileManager.default.fileExists(atPath: $0) }
            if !present.isEmpty {
                guard present.count == testPaths.count else {
                    let missing = testPaths.first { !FileManager.default.fileExists(atPath: $0) }!
                    throw DataError(file: missing, "missing: the test set of the other folds was predicted, not this one")
                }
                test[model] = try testPaths.map(PredictionsCSV.read)
            }
        }
        self.validation = validation
        self.test = test
    }

    /// `path` as given when it exists from the working directory, else relative to the CV directory.
    static func resolve(_ path: String, in directory: String) -> String {
        if path.hasPrefix("/") || FileManager.default.fileExists(atPath: path) { return path }
        let inside = join(directory, path)
        return FileManager.default.fileExists(atPath: inside) ? inside : path
    }

    public func foldDirectory(_ k: Int) -> String { join(directory, "fold-\(k)") }

    /// Case ids with an attention map of any model in fold `k`, sorted.
    public func attentionCases(fold k: Int) -> [String] {
        var ids = Set<String>()
        for model in ["us", "ss"] {
            let dir = join(foldDirectory(k), "attention", model)
            for name in (try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? [] {
                for suffix in [".nii.gz", ".nii"] where name.hasSuffix(suffix) { ids.insert(String(name.dropLast(suffix.count))) }
            }
        }
        return ids.sorted()
    }

    /// The attention map of `model` for a case in fold `k`, or nil when there is none.
    public func attentionPath(fold k: Int, model: String, caseID: String) -> String? {
        for suffix in [".nii.gz", ".nii"] {
            let p = join(foldDirectory(k), "attention", model, caseID + suffix)
            if FileManager.default.fileExists(atPath: p) { return p }
        }
        return nil
    }
}

/// Reading one case for a figure: the shard volumes and the attention maps brought onto the
/// shard grid.
enum CaseLoader {
    static func volumes(_ cohort: Cohort, case i: Int) throws -> CaseVolumes {
        let (reader, index) = cohort.shard(of: i)
        let n = reader.voxels
        var image = [Float](repeating: 0, count: n)
        var scratch = [UInt8](repeating: 0, count: n)
        try image.withUnsafeMutableBufferPointer { out in
            try scratch.withUnsafeMutableBufferPointer { s in try reader.readImage(index, into: out, scratch: s) }
        }
        var lung = [UInt8](repeating: 0, count: n)
        try lung.withUnsafeMutableBufferPointer { try reader.readMask(index, infection: false, into: $0) }
        var infection: [UInt8]?
        if cohort.cases[i].hasInfectionMask {
            var m = [UInt8](repeating: 0, count: n)
            try m.withUnsafeMutableBufferPointer { try reader.readMask(index, infection: true, into: $0) }
            infection = m
        }
        return CaseVolumes(size: reader.size, spacing: ShardFormat.spacing.map(Double.init), image: image, lung: lung, infection: infection)
    }

    /// A NIfTI attention map as voxels on the [D, H, W] grid. A map of another size (a network
    /// output not upsampled) is resampled by nearest neighbour, voxel edges aligned.
    static func attention(_ path: String, size: [Int]) throws -> [Float] {
        let volume = try NIfTI.read(path)
        let (d, h, w) = (size[0], size[1], size[2])
        let (mw, mh, md) = (volume.dims[0], volume.dims[1], volume.dims[2])
        if (mw, mh, md) == (w, h, d) { return volume.voxels }
        func source(_ i: Int, _ n: Int, _ m: Int) -> Int { min(m - 1, (2 * i + 1) * m / (2 * n)) }
        var out = [Float](repeating: 0, count: d * h * w)
        for z in 0..<d {
            let sz = source(z, d, md)
            for y in 0..<h {
                let sy = source(y, h, mh)
                for x in 0..<w { out[(z * h + y) * w + x] = volume.voxels[source(x, w, mw) + mw * (sy + mh * sz)] }
            }
        }
        return out
    }
}
