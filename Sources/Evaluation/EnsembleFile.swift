import CTData
import Foundation

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

    /// The keys of the file, shared by the reader (`Decodable`) and the writer (`json`).
    enum CodingKeys: String, CodingKey {
        case format, version, rule, us, ss
        case wOut = "w_out", wIn = "w_in", ratioLow = "ratio_low", ratioHigh = "ratio_high"
        case threshold, validation
    }

    enum ModelKeys: String, CodingKey {
        case checkpoint
        case validationAUC = "validation_auc"
    }

    enum ValidationKeys: String, CodingKey {
        case cases
        case outerCases = "outer_cases", innerCases = "inner_cases"
        case auc, accuracy
    }

    /// The rule as the file spells it out for a reader.
    static let ruleText = "P = w * P_US + (1 - w) * P_SS; w = w_out when r < ratio_low or r > ratio_high, else w_in (also when r is unknown)"

    /// The file's JSON, keys in the order above (the order `dsan ensemble` has always written).
    public var json: OrderedJSON {
        func model(_ checkpoint: String, _ auc: Double?) -> OrderedJSON {
            .object([(ModelKeys.checkpoint.rawValue, .string(checkpoint)), (ModelKeys.validationAUC.rawValue, .optional(auc))])
        }
        return .object([
            (CodingKeys.format.rawValue, .string(Self.format)),
            (CodingKeys.version.rawValue, .int(Self.version)),
            (CodingKeys.rule.rawValue, .string(Self.ruleText)),
            (CodingKeys.us.rawValue, model(usCheckpoint, usAUC)),
            (CodingKeys.ss.rawValue, model(ssCheckpoint, ssAUC)),
            (CodingKeys.wOut.rawValue, .number(rule.wOut)),
            (CodingKeys.wIn.rawValue, .number(rule.wIn)),
            (CodingKeys.ratioLow.rawValue, .number(rule.ratioLow)),
            (CodingKeys.ratioHigh.rawValue, .number(rule.ratioHigh)),
            (CodingKeys.threshold.rawValue, .number(threshold)),
            (CodingKeys.validation.rawValue, validation.map { v in
                .object([(ValidationKeys.cases.rawValue, .int(v.cases)),
                         (ValidationKeys.outerCases.rawValue, .int(v.outerCases)),
                         (ValidationKeys.innerCases.rawValue, .int(v.innerCases)),
                         (ValidationKeys.auc.rawValue, .optional(v.auc)),
                         (ValidationKeys.accuracy.rawValue, .optional(v.accuracy))])
            } ?? .null),
        ])
    }

    /// Writes the JSON to `path` atomically.
    public func write(to path: String) throws {
        try TextFile.write(json.text, to: path)
    }

    /// Reads and validates an ensemble file. With `checkCheckpoints`, both checkpoints must exist
    /// (resolved against the file's directory). Every problem is a `DataError` naming the file and
    /// the key.
    public static func load(_ path: String, checkCheckpoints: Bool = true) throws -> EnsembleFile {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw DataError(file: path, "cannot read the ensemble file (missing or unreadable)")
        }
        let file: EnsembleFile
        do {
            file = try JSONDecoder().decode(EnsembleFile.self, from: data)
        } catch let problem as Problem {
            throw DataError(file: path, problem.message)
        } catch let error as DecodingError {
            throw DataError(file: path, Problem(error).message)
        }
        if checkCheckpoints {
            for (key, checkpoint) in [(CodingKeys.us, file.usCheckpoint), (CodingKeys.ss, file.ssCheckpoint)] {
                let resolved = resolve(checkpoint, relativeTo: path)
                guard FileManager.default.fileExists(atPath: resolved) else {
                    throw DataError(file: path, "`\(key.rawValue).checkpoint` \(checkpoint) does not exist (looked for \(resolved); relative paths are relative to the ensemble file)")
                }
            }
        }
        return file
    }

    /// The checkpoints' paths resolved against the directory of the ensemble file at `file`.
    public func resolvedCheckpoints(relativeTo file: String) -> (us: String, ss: String) {
        (Self.resolve(usCheckpoint, relativeTo: file), Self.resolve(ssCheckpoint, relativeTo: file))
    }

    /// What is wrong with the file, as a sentence that names the key (`load` adds the path).
    struct Problem: Error, Equatable {
        var message: String

        init(_ message: String) { self.message = message }

        /// A decoder's error in the file's own words: the dotted key path and what it must hold.
        init(_ error: DecodingError) {
            func name(_ path: [any CodingKey], _ last: (any CodingKey)? = nil) -> String {
                (path + (last.map { [$0] } ?? [])).map(\.stringValue).joined(separator: ".")
            }
            switch error {
            case .keyNotFound(let key, let context):
                let key = name(context.codingPath, key)
                message = "missing key `\(key)`" + (key == "us" || key == "ss" ? "; expected {\"checkpoint\": PATH}" : "")
            case .valueNotFound(_, let context):
                message = "`\(name(context.codingPath))` is null; expected \(Self.expected(name(context.codingPath)))"
            case .typeMismatch(_, let context):
                message = "`\(name(context.codingPath))` must be \(Self.expected(name(context.codingPath)))"
            case .dataCorrupted(let context) where context.codingPath.isEmpty:
                message = "is not valid JSON; expected an ensemble file written by `dsan ensemble`"
            case .dataCorrupted(let context):
                message = "`\(name(context.codingPath))` must be \(Self.expected(name(context.codingPath)))"
            @unknown default:
                message = "is not an ensemble file written by `dsan ensemble` (\(error))"
            }
        }

        /// What the key at `path` holds, for messages.
        static func expected(_ path: String) -> String {
            switch path {
            case "": "a JSON object (an ensemble file written by `dsan ensemble`)"
            case "us", "ss": "an object {\"checkpoint\": PATH}"
            case "us.checkpoint", "ss.checkpoint": "a non-empty path"
            case "validation": "an object or null"
            default: "a number"
            }
        }
    }
}

extension EnsembleFile: Decodable {
    /// Reads the keys of `json`, checks each value, and throws a `Problem` naming the first key
    /// that is wrong. `threshold` is optional (0.5); `validation` and `validation_auc` may be null.
    public init(from decoder: any Decoder) throws {
        let object: KeyedDecodingContainer<CodingKeys>
        do { object = try decoder.container(keyedBy: CodingKeys.self) } catch {
            throw Problem("is not a JSON object; expected an ensemble file written by `dsan ensemble`")
        }
        guard (try? object.decode(String.self, forKey: .format)) == Self.format else {
            throw Problem("`format` must be \"\(Self.format)\"; not an ensemble file written by `dsan ensemble`")
        }
        guard (try? object.decode(Double.self, forKey: .version)) == Double(Self.version) else {
            throw Problem("`version` must be \(Self.version) (this dsan reads version \(Self.version) only)")
        }
        func unit(_ key: CodingKeys) throws -> Double {
            let v = try object.decode(Double.self, forKey: key)
            guard v >= 0 && v <= 1 else { throw Problem("`\(key.rawValue)` = \(v) is outside [0, 1]") }
            return v
        }
        let wOut = try unit(.wOut), wIn = try unit(.wIn)
        let low = try unit(.ratioLow), high = try unit(.ratioHigh)
        guard low <= high else { throw Problem("`ratio_low` = \(low) is above `ratio_high` = \(high)") }
        let threshold = try object.decodeIfPresent(Double.self, forKey: .threshold) ?? 0.5
        guard threshold > 0 && threshold < 1 else { throw Problem("`threshold` = \(threshold) is outside (0, 1)") }

        func model(_ key: CodingKeys) throws -> (String, Double?) {
            let m = try object.nestedContainer(keyedBy: ModelKeys.self, forKey: key)
            guard let checkpoint = try? m.decode(String.self, forKey: .checkpoint), !checkpoint.isEmpty else {
                throw Problem("`\(key.rawValue).checkpoint` must be a non-empty path")
            }
            return (checkpoint, try m.decodeIfPresent(Double.self, forKey: .validationAUC))
        }
        let (us, usAUC) = try model(.us), (ss, ssAUC) = try model(.ss)

        var validation: Validation?
        if try object.contains(.validation) && !object.decodeNil(forKey: .validation) {
            let v = try object.nestedContainer(keyedBy: ValidationKeys.self, forKey: .validation)
            func count(_ key: ValidationKeys) throws -> Int {
                let x = try v.decode(Double.self, forKey: key)
                guard x >= 0, x == x.rounded(), x < 1e15 else {
                    throw Problem("`validation.\(key.rawValue)` must be a non-negative integer")
                }
                return Int(x)
            }
            validation = Validation(cases: try count(.cases), outerCases: try count(.outerCases), innerCases: try count(.innerCases),
                                    auc: try v.decodeIfPresent(Double.self, forKey: .auc),
                                    accuracy: try v.decodeIfPresent(Double.self, forKey: .accuracy))
        }
        self.init(usCheckpoint: us, ssCheckpoint: ss,
                  rule: EnsembleRule(wOut: wOut, wIn: wIn, ratioLow: low, ratioHigh: high),
                  threshold: threshold, usAUC: usAUC, ssAUC: ssAUC, validation: validation)
    }
}
