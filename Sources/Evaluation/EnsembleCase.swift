import CTData
import Foundation

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
