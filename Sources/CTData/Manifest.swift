import Foundation

/// One row of a `dsan prepare` manifest: a case and its NIfTI files (DESIGN.md §9).
public struct ManifestEntry: Sendable, Equatable {
    public var line: Int
    public var caseID: String
    public var patientID: String
    public var label: Label
    /// Absolute paths (the manifest's are relative to its own directory).
    public var image: String
    public var lung: String
    /// nil when the cell is empty: the case has no infection mask (predict only).
    public var infection: String?
}

/// The CSV manifest of `dsan prepare`: a header naming at least the columns
/// `case_id,patient_id,label,image,lung,infection` (any order, extra columns ignored), then one
/// case per line. RFC 4180 quoting ("a, b" and doubled quotes), CRLF line ends, a UTF-8 byte-order
/// mark and blank lines are accepted. Every problem names the file and the line.
public enum Manifest {
    public static let columns = ["case_id", "patient_id", "label", "image", "lung", "infection"]

    public static func read(_ path: String) throws -> [ManifestEntry] {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw DataError(file: path, "cannot read the manifest (missing or unreadable)")
        }
        guard let text = String(data: data, encoding: .utf8) else {
            throw DataError(file: path, "is not UTF-8 text; save the manifest as UTF-8 CSV")
        }
        return try parse(text, path: path)
    }

    /// Parses manifest text; relative paths are resolved against `path`'s directory.
    public static func parse(_ text: String, path: String) throws -> [ManifestEntry] {
        let base = (path as NSString).deletingLastPathComponent
        let rows = try splitRecords(text, path: path)
        guard let (headerLine, header) = rows.first else {
            throw DataError(file: path, "is empty; expected a header line `\(columns.joined(separator: ","))`")
        }
        let names = header.map { $0.trimmingCharacters(in: .whitespaces).lowercased() }
        var index: [String: Int] = [:]
        for c in columns {
            guard let i = names.firstIndex(of: c) else {
                throw DataError(file: path, "line \(headerLine): header lacks column `\(c)`; expected `\(columns.joined(separator: ","))`")
            }
            index[c] = i
        }
        var entries: [ManifestEntry] = []
        var seen: [String: Int] = [:]
        for (line, fields) in rows.dropFirst() {
            guard fields.count == names.count else {
                throw DataError(file: path, "line \(line): expected \(names.count) fields like the header, found \(fields.count)")
            }
            func field(_ c: String) -> String { fields[index[c]!].trimmingCharacters(in: .whitespaces) }
            let caseID = field("case_id"), patientID = field("patient_id")
            guard !caseID.isEmpty else { throw DataError(file: path, "line \(line): empty case_id") }
            guard !patientID.isEmpty else { throw DataError(file: path, "line \(line): case \(caseID): empty patient_id") }
            if let first = seen[caseID] {
                throw DataError(file: path, "line \(line): duplicate case id \(caseID), first on line \(first)")
            }
            seen[caseID] = line
            guard let label = Label(manifest: field("label")) else {
                throw DataError(file: path, "line \(line): case \(caseID): unknown label `\(field("label"))`; use `covid` or `cap`")
            }
            func resolve(_ p: String) -> String { p.hasPrefix("/") ? p : (base as NSString).appendingPathComponent(p) }
            let image = field("image"), lung = field("lung"), infection = field("infection")
            guard !image.isEmpty else { throw DataError(file: path, "line \(line): case \(caseID): empty image path") }
            guard !lung.isEmpty else { throw DataError(file: path, "line \(line): case \(caseID): empty lung path; a lung mask is required") }
            entries.append(ManifestEntry(line: line, caseID: caseID, patientID: patientID, label: label,
                                         image: resolve(image), lung: resolve(lung),
                                         infection: infection.isEmpty ? nil : resolve(infection)))
        }
        guard !entries.isEmpty else { throw DataError(file: path, "lists no cases after the header") }
        return entries
    }

    /// Splits CSV text into records of fields, with the 1-based line where each record starts;
    /// blank lines are skipped.
    static func splitRecords(_ text: String, path: String) throws -> [(Int, [String])] {
        var records: [(Int, [String])] = []
        var fields: [String] = [], field = "", inQuotes = false, quotedField = false
        var line = 1, recordLine = 1
        var chars = Array(text.unicodeScalars)
        if chars.first == "\u{FEFF}" { chars.removeFirst() }
        var i = 0
        func endRecord() {
            fields.append(field)
            if !(fields.count == 1 && fields[0].trimmingCharacters(in: .whitespaces).isEmpty && !quotedField) {
                records.append((recordLine, fields))
            }
            fields = []; field = ""; quotedField = false
        }
        while i < chars.count {
            let c = chars[i]
            if inQuotes {
                if c == "\"" {
                    if i + 1 < chars.count && chars[i + 1] == "\"" { field.unicodeScalars.append("\""); i += 1 } else { inQuotes = false }
                } else {
                    if c == "\n" { line += 1 }
                    field.unicodeScalars.append(c)
                }
            } else if c == "\"" && field.trimmingCharacters(in: .whitespaces).isEmpty {
                inQuotes = true; quotedField = true; field = ""
            } else if c == "," {
                fields.append(field); field = ""
            } else if c == "\n" || c == "\r" {
                if c == "\r" && i + 1 < chars.count && chars[i + 1] == "\n" { i += 1 }
                endRecord()
                line += 1
                recordLine = line
            } else {
                field.unicodeScalars.append(c)
            }
            i += 1
        }
        if inQuotes { throw DataError(file: path, "line \(recordLine): unterminated quoted field") }
        if !field.isEmpty || !fields.isEmpty || quotedField { endRecord() }
        return records
    }
}
