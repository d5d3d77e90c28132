import CTData
import Foundation

/// One row of a predictions CSV: what a model said about one case.
///
/// `dsan train` writes these for the validation cases (`RUN/val_predictions.csv`) and
/// `dsan predict` for any shards; `dsan evaluate` and `dsan ensemble` read them.
public struct Prediction: Sendable, Equatable {
    public var caseID: String
    public var patientID: String
    /// Ground truth: COVID-19 (positive) or CAP.
    public var label: Label
    /// Infection voxels / lung voxels; nil when the case has no infection mask.
    public var infectionRatio: Double?
    /// P(COVID-19) in [0, 1].
    public var probability: Double

    public init(caseID: String, patientID: String, label: Label, infectionRatio: Double?, probability: Double) {
        self.caseID = caseID
        self.patientID = patientID
        self.label = label
        self.infectionRatio = infectionRatio
        self.probability = probability
    }
}

extension Prediction {
    /// A model's prediction of a shard case: the case's ids, label and ratio (NaN: unknown) as the
    /// shard stores them. The float32 values keep their float32 spelling in the CSV (`0.1`, not
    /// `0.10000000149011612`): they are held as the double nearest to that spelling, which
    /// `PredictionsCSV.format` writes back the same.
    public init(case info: CaseInfo, probability: Float) {
        self.init(case: info, probability: Self.spelled(probability))
    }

    /// As `init(case:probability:)` for a probability computed in double precision (written as is).
    public init(case info: CaseInfo, probability: Double) {
        self.init(caseID: info.caseID, patientID: info.patientID, label: info.label,
                  infectionRatio: info.infectionRatio.isNaN ? nil : Self.spelled(info.infectionRatio), probability: probability)
    }

    /// The double nearest to `value`'s shortest float32 spelling.
    public static func spelled(_ value: Float) -> Double { Double(value.description)! }
}

/// The predictions CSV (RFC 4180): a header naming at least the columns
/// `case_id,patient_id,label,infection_ratio,probability` in any order (other columns are
/// ignored), then one row per case. `label` is 1 (COVID-19) or 0 (CAP) (`covid`/`cap` are also
/// accepted); `infection_ratio` is empty when unknown; `probability` is P(COVID-19) in [0, 1].
/// Case ids are unique. Every error is a `DataError` naming the file and the line.
public enum PredictionsCSV {
    public static let columns = ["case_id", "patient_id", "label", "infection_ratio", "probability"]

    /// Reads and validates `path`.
    public static func read(_ path: String) throws -> [Prediction] {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw DataError(file: path, "cannot read the predictions (missing or unreadable)")
        }
        guard let text = String(data: data, encoding: .utf8) else {
            throw DataError(file: path, "is not UTF-8 text; expected a predictions CSV")
        }
        return try parse(text, file: path)
    }

    /// Parses the text of a predictions CSV; `file` names it in errors.
    public static func parse(_ text: String, file: String) throws -> [Prediction] {
        let records = try CSV.records(text, file: file)
        guard let header = records.first else {
            throw DataError(file: file, "is empty; expected the header \(columns.joined(separator: ","))")
        }
        let names = header.fields.map { $0.trimmingCharacters(in: .whitespaces).lowercased() }
        var index: [String: Int] = [:]
        for name in columns {
            guard let i = names.firstIndex(of: name) else {
                throw DataError(file: file, "line \(header.line): missing column `\(name)`; the header needs at least \(columns.joined(separator: ","))")
            }
            index[name] = i
        }
        var predictions: [Prediction] = []
        var firstLine: [String: Int] = [:]
        for record in records.dropFirst() {
            let line = record.line
            func fail(_ message: String, _ caseID: String? = nil) -> DataError {
                DataError(file: file, "line \(line): " + (caseID.map { "case \($0): " } ?? "") + message)
            }
            guard record.fields.count == header.fields.count else {
                throw fail("\(record.fields.count) fields, the header has \(header.fields.count)")
            }
            func field(_ name: String) -> String { record.fields[index[name]!].trimmingCharacters(in: .whitespaces) }
            let caseID = field("case_id")
            guard !caseID.isEmpty else { throw fail("empty case_id") }
            if let first = firstLine[caseID] {
                throw fail("appears again (first on line \(first)); case ids must be unique", caseID)
            }
            firstLine[caseID] = line
            let labelText = field("label")
            let label: Label
            switch labelText.lowercased() {
            case "1": label = .covid
            case "0": label = .cap
            default:
                guard let l = Label(manifest: labelText) else {
                    throw fail("unknown label `\(labelText)`; use 1 (COVID-19) or 0 (CAP)", caseID)
                }
                label = l
            }
            let ratioText = field("infection_ratio")
            var ratio: Double?
            if !ratioText.isEmpty {
                guard let r = Double(ratioText), r >= 0, r <= 1 else {
                    throw fail("infection_ratio `\(ratioText)` is not a number in [0, 1]; leave it empty when unknown", caseID)
                }
                ratio = r
            }
            let pText = field("probability")
            guard let p = Double(pText), p >= 0, p <= 1 else {
                throw fail("probability `\(pText)` is not a number in [0, 1]", caseID)
            }
            predictions.append(Prediction(caseID: caseID, patientID: field("patient_id"), label: label,
                                          infectionRatio: ratio, probability: p))
        }
        return predictions
    }

    /// The CSV text: header and one row per prediction (fields quoted per RFC 4180 when needed,
    /// numbers in their shortest round-trip spelling).
    public static func format(_ predictions: [Prediction]) -> String {
        var lines = [columns.joined(separator: ",")]
        for p in predictions {
            lines.append([CSV.field(p.caseID), CSV.field(p.patientID), String(p.label.rawValue),
                          p.infectionRatio.map { "\($0)" } ?? "", "\(p.probability)"].joined(separator: ","))
        }
        return lines.joined(separator: "\n") + "\n"
    }

    /// Writes `format(predictions)` to `path` atomically.
    public static func write(_ predictions: [Prediction], to path: String) throws {
        try TextFile.write(format(predictions), to: path)
    }
}

/// RFC 4180 reading and quoting: the one CSV implementation of dsan (predictions, run logs, tables).
public enum CSV {
    /// One record with the line it starts on (1-based; a quoted field may span lines).
    struct Record {
        var line: Int
        var fields: [String]
    }

    /// Splits `text` into records. Fields are separated by commas, records by LF or CRLF; a field
    /// in double quotes may hold commas, line breaks and doubled quotes. Blank lines are skipped;
    /// a leading byte-order mark is ignored.
    static func records(_ text: String, file: String) throws -> [Record] {
        let quote = UInt8(ascii: "\""), comma = UInt8(ascii: ","), lf = UInt8(ascii: "\n"), cr = UInt8(ascii: "\r")
        var bytes = Array(text.utf8)
        if bytes.starts(with: [0xEF, 0xBB, 0xBF]) { bytes.removeFirst(3) }
        var records: [Record] = []
        var fields: [String] = []
        var field: [UInt8] = []
        var line = 1, recordLine = 1
        var inQuotes = false, closedQuote = false, sawQuote = false
        func endField() {
            fields.append(String(decoding: field, as: UTF8.self))
            field = []
            closedQuote = false
        }
        func endRecord() {
            endField()
            if !(fields.count == 1 && fields[0].isEmpty && !sawQuote) {
                records.append(Record(line: recordLine, fields: fields))
            }
            fields = []
            sawQuote = false
            line += 1
            recordLine = line
        }
        var i = 0
        while i < bytes.count {
            let b = bytes[i]
            i += 1
            if inQuotes {
                if b == quote {
                    if i < bytes.count && bytes[i] == quote {
                        field.append(quote)
                        i += 1
                    } else {
                        inQuotes = false
                        closedQuote = true
                    }
                } else {
                    if b == lf { line += 1 }
                    field.append(b)
                }
                continue
            }
            switch b {
            case comma: endField()
            case lf: endRecord()
            case cr:
                if i < bytes.count && bytes[i] == lf { i += 1 }
                endRecord()
            case quote:
                guard field.isEmpty && !closedQuote else {
                    throw DataError(file: file, "line \(line): a quote inside an unquoted field; quote the whole field and double the quote (RFC 4180)")
                }
                inQuotes = true
                sawQuote = true
            default:
                guard !closedQuote else {
                    throw DataError(file: file, "line \(line): text after the closing quote of a field")
                }
                field.append(b)
            }
        }
        if inQuotes {
            throw DataError(file: file, "line \(recordLine): a quoted field is never closed")
        }
        if !field.isEmpty || !fields.isEmpty || sawQuote { endRecord() }
        return records
    }

    /// `s` quoted when it holds a comma, a quote or a line break (RFC 4180); with
    /// `quotingSpaces`, also when it holds a space (the tables of `dsan cv` quote their titles).
    public static func field(_ s: String, quotingSpaces: Bool = false) -> String {
        s.contains(where: { $0 == "," || $0 == "\"" || $0 == "\n" || $0 == "\r" || (quotingSpaces && $0 == " ") })
            ? "\"" + s.replacingOccurrences(of: "\"", with: "\"\"") + "\"" : s
    }

    /// Records as CSV text: fields joined by commas, records by LF, a final LF.
    public static func text(_ rows: [[String]], quotingSpaces: Bool = false) -> String {
        rows.map { $0.map { field($0, quotingSpaces: quotingSpaces) }.joined(separator: ",") }.joined(separator: "\n") + "\n"
    }
}
