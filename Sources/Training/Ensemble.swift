import Data
import Foundation

/// The dual-sampling ensemble rule of DESIGN.md §5 (paper §III-E, Eq. (5)):
/// P = w · P_US + (1 − w) · P_SS, with w = w_out when r < 0.001 or r > 0.030, else w = w_in.
///
/// w_out weights the cases at the extremes of the infection ratio, where the paper leans on the
/// size-balanced model (its w_out = 0.35); w_in the rest, where it leans on the uniform one
/// (w_in = 0.96). A case with an unknown ratio uses w_in: it cannot be placed among the minority
/// groups that size-balanced sampling was trained for, so it gets the weighting that trusts the
/// uniform-sampling model, which learned the cohort's own distribution (the paper's "relatively
/// robust" model) — the same choice the fit makes, so fitted and applied weights agree.
public struct EnsembleRule: Sendable, Equatable {
    public var wOut: Double
    public var wIn: Double
    /// w_out below this ratio (paper: 0.001).
    public var ratioLow: Double
    /// w_out above this ratio (paper: 0.030).
    public var ratioHigh: Double

    public static let paperRatioLow = 0.001
    public static let paperRatioHigh = 0.030
    /// The paper's weights (§III-E), used when there is no validation set to fit on.
    public static let paper = EnsembleRule(wOut: 0.35, wIn: 0.96)

    public init(wOut: Double, wIn: Double, ratioLow: Double = paperRatioLow, ratioHigh: Double = paperRatioHigh) {
        self.wOut = wOut
        self.wIn = wIn
        self.ratioLow = ratioLow
        self.ratioHigh = ratioHigh
    }

    /// Whether a case takes w_out: r < ratioLow or r > ratioHigh. Unknown ratio: no (w_in).
    public func isOuter(ratio: Double?) -> Bool {
        guard let r = ratio else { return false }
        return r < ratioLow || r > ratioHigh
    }

    /// The weight w of P_US for a case.
    public func weight(ratio: Double?) -> Double { isOuter(ratio: ratio) ? wOut : wIn }

    /// Eq. (5): the ensemble probability of a case from the two models' probabilities.
    public func combine(us: Double, ss: Double, ratio: Double?) -> Double {
        let w = weight(ratio: ratio)
        return w * us + (1 - w) * ss
    }
}

/// One validation case seen by both models.
public struct EnsembleCase: Sendable, Equatable {
    public var caseID: String
    public var label: Label
    public var infectionRatio: Double?
    /// P(COVID-19) of the uniform-sampling and of the size-balanced-sampling model.
    public var us: Double
    public var ss: Double

    public init(caseID: String, label: Label, infectionRatio: Double?, us: Double, ss: Double) {
        self.caseID = caseID
        self.label = label
        self.infectionRatio = infectionRatio
        self.us = us
        self.ss = ss
    }

    /// Joins two models' predictions of the same cases by case id, in the order of `us`.
    /// Throws when the case sets differ or a case's label or ratio disagrees; `usFile` and `ssFile`
    /// name the sources in errors.
    public static func join(us: [Prediction], ss: [Prediction], usFile: String, ssFile: String) throws -> [EnsembleCase] {
        let ssByID = Dictionary(ss.map { ($0.caseID, $0) }, uniquingKeysWith: { a, _ in a })
        let usIDs = Set(us.map(\.caseID))
        let onlyUS = us.map(\.caseID).filter { ssByID[$0] == nil }
        let onlySS = ss.map(\.caseID).filter { !usIDs.contains($0) }
        func examples(_ ids: [String]) -> String {
            ids.prefix(3).joined(separator: ", ") + (ids.count > 3 ? ", …" : "")
        }
        if !onlyUS.isEmpty || !onlySS.isEmpty {
            var parts: [String] = []
            if !onlyUS.isEmpty { parts.append("\(onlyUS.count) case(s) only in \(usFile) (\(examples(onlyUS)))") }
            if !onlySS.isEmpty { parts.append("\(onlySS.count) case(s) only in \(ssFile) (\(examples(onlySS)))") }
            throw DataError(file: ssFile, "validation cases differ from \(usFile): " + parts.joined(separator: "; ")
                            + "; train both runs with the same data, --folds and --fold")
        }
        return try us.map { u in
            let s = ssByID[u.caseID]!
            guard s.label == u.label else {
                throw DataError(file: ssFile, caseID: u.caseID, "label \(s.label.rawValue) but \(usFile) has \(u.label.rawValue)")
            }
            guard s.infectionRatio == u.infectionRatio
                    || (s.infectionRatio != nil && u.infectionRatio != nil && abs(s.infectionRatio! - u.infectionRatio!) <= 1e-6) else {
                let show = { (r: Double?) in r.map { "\($0)" } ?? "unknown" }
                throw DataError(file: ssFile, caseID: u.caseID, "infection ratio \(show(s.infectionRatio)) but \(usFile) has \(show(u.infectionRatio))")
            }
            return EnsembleCase(caseID: u.caseID, label: u.label, infectionRatio: u.infectionRatio, us: u.probability, ss: s.probability)
        }
    }
}

/// The grid search of DESIGN.md §5: w_out and w_in in {0, 0.01, …, 1} maximising the validation
/// AUC of the ensemble, ties broken by the accuracy at 0.5, then by the L1 distance to the paper's
/// (0.35, 0.96) in grid steps, then by the smaller w_out and w_in, so the result is deterministic.
///
/// AUC depends on both weights jointly (an outer case is compared with inner ones), but each case's
/// score depends on one weight only. So the search sorts each group's scores once per weight
/// (2 × 101 sorts), precomputes the within-group pair counts, and for each of the 101 × 101 pairs
/// counts the cross-group pairs by merging sorted lists: O(101 · n log n + 101² · n). Pair counts
/// are integers (2 per correctly ordered pair, 1 per tie), so AUC ties are exact, not
/// floating-point accidents.
public struct EnsembleFit: Sendable, Equatable {
    /// Grid steps per unit weight (step 0.01).
    public static let steps = 100

    public var rule: EnsembleRule
    public var cases: Int
    /// Validation cases that used w_out and w_in.
    public var outerCases: Int
    public var innerCases: Int
    /// Validation AUC of the ensemble with the fitted weights; nil with one class.
    public var auc: Double?
    /// Validation accuracy at 0.5 of the ensemble.
    public var accuracy: Double
    /// Validation AUC of each model alone.
    public var usAUC: Double?
    public var ssAUC: Double?

    /// Fits the weights on `validation` (at least one case). With one class only, every weight
    /// pair has an undefined AUC and the accuracy decides.
    public init(_ validation: [EnsembleCase], ratioLow: Double = EnsembleRule.paperRatioLow,
                ratioHigh: Double = EnsembleRule.paperRatioHigh) {
        precondition(!validation.isEmpty, "EnsembleFit: no validation cases")
        let shape = EnsembleRule(wOut: 0, wIn: 0, ratioLow: ratioLow, ratioHigh: ratioHigh)
        let outer = validation.filter { shape.isOuter(ratio: $0.infectionRatio) }
        let inner = validation.filter { !shape.isOuter(ratio: $0.infectionRatio) }
        let weights = (0...Self.steps).map { Double($0) / Double(Self.steps) }
        let o = weights.map { GroupScores(outer, w: $0) }
        let i = weights.map { GroupScores(inner, w: $0) }
        let paperOut = Int((EnsembleRule.paper.wOut * Double(Self.steps)).rounded())
        let paperIn = Int((EnsembleRule.paper.wIn * Double(Self.steps)).rounded())

        // Key to maximise: (2 × concordant pairs + ties, correct at 0.5, −distance to the paper).
        var best: (pairs: Int, correct: Int, distance: Int, jOut: Int, jIn: Int)?
        for jOut in 0...Self.steps {
            for jIn in 0...Self.steps {
                let pairs = o[jOut].within + i[jIn].within
                    + Self.concordance(o[jOut].positives, i[jIn].negatives)
                    + Self.concordance(i[jIn].positives, o[jOut].negatives)
                let correct = o[jOut].correct + i[jIn].correct
                let distance = abs(jOut - paperOut) + abs(jIn - paperIn)
                if let b = best {
                    if pairs != b.pairs { if pairs < b.pairs { continue } }
                    else if correct != b.correct { if correct < b.correct { continue } }
                    else if distance >= b.distance { continue }   // equal distance: keep the earlier (smaller) pair
                }
                best = (pairs, correct, distance, jOut, jIn)
            }
        }
        let b = best!
        rule = EnsembleRule(wOut: weights[b.jOut], wIn: weights[b.jIn], ratioLow: ratioLow, ratioHigh: ratioHigh)
        cases = validation.count
        outerCases = outer.count
        innerCases = inner.count
        let positives = validation.filter { $0.label == .covid }.count
        let totalPairs = positives * (validation.count - positives)
        auc = totalPairs > 0 ? Double(b.pairs) / Double(2 * totalPairs) : nil
        accuracy = Double(b.correct) / Double(validation.count)
        let labels = validation.map { Int($0.label.rawValue) }
        usAUC = Metrics.auc(labels: labels, scores: validation.map(\.us))
        ssAUC = Metrics.auc(labels: labels, scores: validation.map(\.ss))
    }

    /// The scores of one group of cases at one weight, sorted by class.
    struct GroupScores {
        var positives: [Double] = []
        var negatives: [Double] = []
        /// 2 × (positive above negative) + (tied) pairs within the group.
        var within = 0
        /// Cases classified correctly at 0.5.
        var correct = 0

        init(_ cases: [EnsembleCase], w: Double) {
            let rule = EnsembleRule(wOut: w, wIn: w)
            for c in cases {
                let p = rule.combine(us: c.us, ss: c.ss, ratio: nil)
                if c.label == .covid { positives.append(p) } else { negatives.append(p) }
                if (p >= 0.5) == (c.label == .covid) { correct += 1 }
            }
            positives.sort()
            negatives.sort()
            within = EnsembleFit.concordance(positives, negatives)
        }
    }

    /// 2 × #{(p, n): p > n} + #{(p, n): p = n} for sorted `positives` and `negatives`, by one merge.
    static func concordance(_ positives: [Double], _ negatives: [Double]) -> Int {
        var below = 0, notAbove = 0, total = 0
        for p in positives {
            while below < negatives.count && negatives[below] < p { below += 1 }
            if notAbove < below { notAbove = below }
            while notAbove < negatives.count && negatives[notAbove] <= p { notAbove += 1 }
            total += 2 * below + (notAbove - below)
        }
        return total
    }
}

/// An ensemble file: the JSON that `dsan ensemble` writes and `dsan predict --model` can name.
///
/// ```json
/// {
///   "format": "dsan-ensemble",
///   "version": 1,
///   "rule": "P = w * P_US + (1 - w) * P_SS; w = w_out when r < ratio_low or r > ratio_high, else w_in (also when r is unknown)",
///   "us": { "checkpoint": "us/best.h5", "validation_auc": 0.971 },
///   "ss": { "checkpoint": "ss/best.h5", "validation_auc": 0.965 },
///   "w_out": 0.35,
///   "w_in": 0.96,
///   "ratio_low": 0.001,
///   "ratio_high": 0.03,
///   "threshold": 0.5,
///   "validation": { "cases": 437, "outer_cases": 250, "inner_cases": 187, "auc": 0.978, "accuracy": 0.93 }
/// }
/// ```
/// Checkpoint paths are relative to the file's directory, or absolute. `validation` is `null`
/// when the weights were not fitted (the paper's defaults); `validation_auc` may be `null`.
public struct EnsembleFile: Sendable, Equatable {
    public static let format = "dsan-ensemble"
    public static let version = 1

    /// Checkpoint paths as written in the file.
    public var usCheckpoint: String
    public var ssCheckpoint: String
    public var rule: EnsembleRule
    /// Decision threshold on the ensemble probability.
    public var threshold: Double
    public var usAUC: Double?
    public var ssAUC: Double?
    /// Set when the weights were fitted.
    public var validation: Validation?

    public struct Validation: Sendable, Equatable {
        public var cases: Int
        public var outerCases: Int
        public var innerCases: Int
        public var auc: Double?
        public var accuracy: Double?

        public init(cases: Int, outerCases: Int, innerCases: Int, auc: Double?, accuracy: Double?) {
            self.cases = cases
            self.outerCases = outerCases
            self.innerCases = innerCases
            self.auc = auc
            self.accuracy = accuracy
        }
    }

    public init(usCheckpoint: String, ssCheckpoint: String, rule: EnsembleRule, threshold: Double = 0.5,
                usAUC: Double? = nil, ssAUC: Double? = nil, validation: Validation? = nil) {
        self.usCheckpoint = usCheckpoint
        self.ssCheckpoint = ssCheckpoint
        self.rule = rule
        self.threshold = threshold
        self.usAUC = usAUC
        self.ssAUC = ssAUC
        self.validation = validation
    }

    /// The file for a fit; checkpoint paths as given.
    public init(usCheckpoint: String, ssCheckpoint: String, fit: EnsembleFit) {
        self.init(usCheckpoint: usCheckpoint, ssCheckpoint: ssCheckpoint, rule: fit.rule, usAUC: fit.usAUC, ssAUC: fit.ssAUC,
                  validation: Validation(cases: fit.cases, outerCases: fit.outerCases, innerCases: fit.innerCases,
                                         auc: fit.auc, accuracy: fit.accuracy))
    }

    /// Eq. (5) with this file's weights and ratio thresholds.
    public func combine(us: Double, ss: Double, ratio: Double?) -> Double {
        rule.combine(us: us, ss: ss, ratio: ratio)
    }

    /// `path` resolved against the directory of the ensemble file at `file` unless absolute.
    public static func resolve(_ path: String, relativeTo file: String) -> String {
        if path.hasPrefix("/") { return path }
        let dir = (file as NSString).deletingLastPathComponent
        return ((dir.isEmpty ? "." : dir) as NSString).appendingPathComponent(path)
    }

    /// `target` relative to `directory` when both are absolute after standardising (`../` as needed),
    /// for writing checkpoint paths that survive moving the whole tree.
    public static func relativePath(_ target: String, from directory: String) -> String {
        func components(_ p: String) -> [String] {
            let absolute = p.hasPrefix("/") ? p : FileManager.default.currentDirectoryPath + "/" + p
            return (absolute as NSString).standardizingPath.split(separator: "/").map(String.init)
        }
        let t = components(target), d = components(directory)
        var common = 0
        while common < t.count, common < d.count, t[common] == d[common] { common += 1 }
        let parts = Array(repeating: "..", count: d.count - common) + t[common...]
        return parts.isEmpty ? "." : parts.joined(separator: "/")
    }

    public var json: OrderedJSON {
        func model(_ checkpoint: String, _ auc: Double?) -> OrderedJSON {
            .object([("checkpoint", .string(checkpoint)), ("validation_auc", .optional(auc))])
        }
        return .object([
            ("format", .string(Self.format)),
            ("version", .int(Self.version)),
            ("rule", .string("P = w * P_US + (1 - w) * P_SS; w = w_out when r < ratio_low or r > ratio_high, else w_in (also when r is unknown)")),
            ("us", model(usCheckpoint, usAUC)),
            ("ss", model(ssCheckpoint, ssAUC)),
            ("w_out", .number(rule.wOut)),
            ("w_in", .number(rule.wIn)),
            ("ratio_low", .number(rule.ratioLow)),
            ("ratio_high", .number(rule.ratioHigh)),
            ("threshold", .number(threshold)),
            ("validation", validation.map { v in
                .object([("cases", .int(v.cases)), ("outer_cases", .int(v.outerCases)), ("inner_cases", .int(v.innerCases)),
                         ("auc", .optional(v.auc)), ("accuracy", .optional(v.accuracy))])
            } ?? .null),
        ])
    }

    /// Writes the JSON to `path` atomically.
    public func write(to path: String) throws {
        do {
            try Foundation.Data(json.text.utf8).write(to: URL(fileURLWithPath: path), options: .atomic)
        } catch {
            throw DataError(file: path, "cannot write: \((error as NSError).localizedDescription)")
        }
    }

    /// Reads and validates an ensemble file. With `checkCheckpoints`, both checkpoints must exist
    /// (resolved against the file's directory). Every problem is a `DataError` naming the file and
    /// the key.
    public static func load(_ path: String, checkCheckpoints: Bool = true) throws -> EnsembleFile {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw DataError(file: path, "cannot read the ensemble file (missing or unreadable)")
        }
        let root: Any
        do { root = try JSONSerialization.jsonObject(with: data) } catch {
            throw DataError(file: path, "is not valid JSON; expected an ensemble file written by `dsan ensemble`")
        }
        guard let object = root as? [String: Any] else {
            throw DataError(file: path, "is not a JSON object; expected an ensemble file written by `dsan ensemble`")
        }
        func fail(_ message: String) -> DataError { DataError(file: path, message) }
        guard let format = object["format"] as? String, format == Self.format else {
            throw fail("`format` must be \"\(Self.format)\"; not an ensemble file written by `dsan ensemble`")
        }
        guard let version = object["version"] as? NSNumber, !isBool(version), version.doubleValue == Double(Self.version) else {
            throw fail("`version` must be \(Self.version) (this dsan reads version \(Self.version) only)")
        }
        func number(_ key: String, in dict: [String: Any], path keyPath: String? = nil, optional: Bool = false) throws -> Double? {
            let name = keyPath ?? key
            guard let value = dict[key] else {
                if optional { return nil }
                throw fail("missing key `\(name)`")
            }
            if value is NSNull {
                if optional { return nil }
                throw fail("`\(name)` is null; expected a number")
            }
            guard let n = value as? NSNumber, !isBool(n), n.doubleValue.isFinite else { throw fail("`\(name)` must be a number") }
            return n.doubleValue
        }
        func unit(_ key: String) throws -> Double {
            let v = try number(key, in: object)!
            guard v >= 0 && v <= 1 else { throw fail("`\(key)` = \(v) is outside [0, 1]") }
            return v
        }
        let wOut = try unit("w_out"), wIn = try unit("w_in")
        let low = try unit("ratio_low"), high = try unit("ratio_high")
        guard low <= high else { throw fail("`ratio_low` = \(low) is above `ratio_high` = \(high)") }
        let threshold = try number("threshold", in: object, optional: true) ?? 0.5
        guard threshold > 0 && threshold < 1 else { throw fail("`threshold` = \(threshold) is outside (0, 1)") }

        func model(_ key: String) throws -> (String, Double?) {
            guard let m = object[key] as? [String: Any] else {
                throw fail("missing key `\(key)`; expected {\"checkpoint\": PATH}")
            }
            guard let checkpoint = m["checkpoint"] as? String, !checkpoint.isEmpty else {
                throw fail("`\(key).checkpoint` must be a non-empty path")
            }
            if checkCheckpoints {
                let resolved = resolve(checkpoint, relativeTo: path)
                guard FileManager.default.fileExists(atPath: resolved) else {
                    throw fail("`\(key).checkpoint` \(checkpoint) does not exist (looked for \(resolved); relative paths are relative to the ensemble file)")
                }
            }
            let auc = try number("validation_auc", in: m, path: "\(key).validation_auc", optional: true)
            return (checkpoint, auc)
        }
        let (us, usAUC) = try model("us"), (ss, ssAUC) = try model("ss")

        var validation: Validation?
        if let v = object["validation"], !(v is NSNull) {
            guard let v = v as? [String: Any] else { throw fail("`validation` must be an object or null") }
            func count(_ key: String) throws -> Int {
                let x = try number(key, in: v, path: "validation.\(key)")!
                guard x >= 0, x == x.rounded() else { throw fail("`validation.\(key)` must be a non-negative integer") }
                return Int(x)
            }
            validation = Validation(cases: try count("cases"), outerCases: try count("outer_cases"), innerCases: try count("inner_cases"),
                                    auc: try number("auc", in: v, path: "validation.auc", optional: true),
                                    accuracy: try number("accuracy", in: v, path: "validation.accuracy", optional: true))
        }
        return EnsembleFile(usCheckpoint: us, ssCheckpoint: ss,
                            rule: EnsembleRule(wOut: wOut, wIn: wIn, ratioLow: low, ratioHigh: high),
                            threshold: threshold, usAUC: usAUC, ssAUC: ssAUC, validation: validation)
    }

    /// The checkpoints' paths resolved against the directory of the ensemble file at `file`.
    public func resolvedCheckpoints(relativeTo file: String) -> (us: String, ss: String) {
        (Self.resolve(usCheckpoint, relativeTo: file), Self.resolve(ssCheckpoint, relativeTo: file))
    }

    /// JSON `true`/`false` arrive as NSNumber too; tell them from numbers.
    private static func isBool(_ n: NSNumber) -> Bool {
        #if canImport(Darwin)
        return CFGetTypeID(n) == CFBooleanGetTypeID()
        #else
        return String(cString: n.objCType) == "c"   // corelibs JSONSerialization: Bool → "c", numbers → Int or Double
        #endif
    }
}
