import Foundation

/// The rules every command applies to the shards it reads (Docs/input-rules.md): what one
/// command refuses, all refuse, with the same sentence.
///
/// They apply at three points, each where it costs least:
/// - **opening a shard** (`ShardReader.init`, so `Cohort`, `inspect`, `train`, `cv` and
///   `predict`): datasets, types, agreeing shapes, at least one case, `format` and
///   `format_version` when present, labels 0 or 1, `infection_ratio` in [0, 1] or NaN;
///   opening a directory (`Cohort`) adds one size for all shards and unique case ids;
/// - **reading a case** (`Cohort.load`, every case any command feeds to the network, and
///   `Inspection.run`, every case): `caseProblems` — image finite and in [0, 1], masks 0 or 1,
///   lung mask not empty, `infection_ratio` equal to what the masks give. These passes cost a
///   few comparisons per voxel next to the gzip decoding of the same voxels;
/// - **command start** (`checkTraining`, called once by `train` before the trainer starts):
///   volumes at least the network's minimum edge, a non-empty training split and validation
///   set, the sampler's own checks.
public enum InputRules {
    /// The page the error messages point to.
    public static let page = "Docs/input-rules.md"
    /// Appended to every refusal.
    public static let seePage = " (see \(page))"

    // MARK: - Values of one case

    /// Every rule one case's volumes break, each a sentence naming the dataset, the value and
    /// what was expected (the caller adds the file and case). `image` is nil when it needs no
    /// check (uint8 images are in [0, 1] by construction). Lists every broken rule, first
    /// offending voxel of each.
    static func caseProblems(info: CaseInfo, image: UnsafeBufferPointer<Float>?,
                             lung: UnsafeBufferPointer<UInt8>, infection: UnsafeBufferPointer<UInt8>) -> [String] {
        var problems: [String] = []
        if let image {
            // One pass: `!(0 <= v && v <= 1)` is also true for NaN.
            if let bad = image.firstIndex(where: { !($0 >= 0 && $0 <= 1) }) {
                let value = image[bad]
                problems.append(value.isFinite
                    ? "dataset `image`: voxel \(bad) is \(value), expected a value in [0, 1] (CT windowed to [−1350, 150] HU)"
                    : "dataset `image`: voxel \(bad) is \(value), expected a finite value in [0, 1]; re-run prepare on the source scan")
            }
        }
        var lungCount = 0, infected = 0
        var badLung: Int?, badInfection: Int?
        for v in 0..<lung.count {
            let l = lung[v], i = infection[v]
            if l > 1 && badLung == nil { badLung = v }
            if i > 1 && badInfection == nil { badInfection = v }
            lungCount += l != 0 ? 1 : 0
            infected += i != 0 ? 1 : 0
        }
        if let v = badLung { problems.append("dataset `lung`: voxel \(v) is \(lung[v]), expected 0 or 1 (a binary mask)") }
        if let v = badInfection { problems.append("dataset `infection`: voxel \(v) is \(infection[v]), expected 0 or 1 (a binary mask)") }
        if lungCount == 0 { problems.append("lung mask is empty; the network input is image × lung") }
        if info.hasInfectionMask {
            let measured = lungCount > 0 ? Double(infected) / Double(lungCount) : 0
            let stored = Double(info.infectionRatio)
            if !(abs(measured - stored) <= Inspection.ratioTolerance * max(1e-3, abs(measured))) {
                problems.append("infection_ratio is \(stored) but the masks give \(infected) / \(lungCount) = \(String(format: "%.6g", measured))")
            }
        } else if infected > 0 {
            problems.append("infection_ratio is NaN (no infection mask) but the infection mask has \(infected) voxel(s)")
        }
        return problems.map { $0 + seePage }
    }

    // MARK: - Command start

    /// What `train` checks once before it starts, and what it should tell the user.
    public struct TrainingCheck {
        /// Sentences to print as warnings on rank 0 (e.g. an empty size-balanced group).
        public var warnings: [String] = []
        public var trainingCases = 0
        public var validationCases = 0
        /// [D, H, W] of the training volumes.
        public var size: [Int] = []
    }

    /// The data `train` was given, checked before any model is built: both directories open
    /// (every shard rule above), volumes are at least `minimumEdge` in every dimension, the
    /// fold split leaves training and validation cases (`fold` ≥ 0 splits `data` into `folds`
    /// folds by `seed`; otherwise `validation` is the validation directory, or none), and the
    /// sampler accepts the training split. Throws the first refusal; returns the warnings.
    public static func checkTraining(data: String, validation: String?, fold: Int, folds: Int, seed: UInt64,
                                     sampling: String, batch: Int, minimumEdge: Int) throws -> TrainingCheck {
        let cohort = try Cohort(directory: data)
        try checkSize(cohort, minimumEdge: minimumEdge)
        var check = TrainingCheck()
        check.size = cohort.size
        var train = Array(cohort.cases.indices)
        if fold >= 0 {
            let split = try Folds(cases: cohort.cases, folds: folds, seed: seed).split(fold)
            train = split.train
            check.validationCases = split.validation.count
        } else if let validation {
            let v = try Cohort(directory: validation)
            try checkSize(v, minimumEdge: minimumEdge)
            if v.size != cohort.size {
                throw DataError(file: validation, "volumes are \(v.size) but the training data has \(cohort.size); validation must share the size" + seePage)
            }
            check.validationCases = v.count
        }
        check.trainingCases = train.count
        switch sampling {
        case "size-balanced":
            let sampler = try SizeBalancedSampler(training: train, cases: train.map { cohort.cases[$0] }, batch: batch, seed: seed)
            check.warnings += sampler.warnings
        default:
            _ = try UniformSampler(training: train, batch: batch, seed: seed)
        }
        return check
    }

    /// Refuses a cohort whose volumes are smaller than `minimumEdge` in some dimension.
    public static func checkSize(_ cohort: Cohort, minimumEdge: Int) throws {
        if let problem = sizeProblem(cohort.size, minimumEdge: minimumEdge) {
            throw DataError(file: cohort.shards[0].path, problem)
        }
    }

    /// "volumes are D×H×W voxels …" when some dimension of `size` is below `minimumEdge`.
    static func sizeProblem(_ size: [Int], minimumEdge: Int) -> String? {
        guard let small = size.firstIndex(where: { $0 < minimumEdge }) else { return nil }
        let text = size.map(String.init).joined(separator: "×")
        return "volumes are \(text) voxels (\(["D", "H", "W"][small]) = \(size[small])), expected at least \(minimumEdge) in every dimension: the network downsamples by \(minimumEdge); prepare the data again with a larger --size" + seePage
    }
}
