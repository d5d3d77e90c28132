/// The diagnosis of a case: 1 = COVID-19, 0 = community-acquired pneumonia (DESIGN.md §2).
public enum Label: UInt8, Sendable, CaseIterable, CustomStringConvertible {
    case cap = 0
    case covid = 1

    public var description: String { self == .covid ? "covid" : "cap" }

    /// Parses the manifest spelling (`covid` or `cap`, case-insensitive).
    public init?(manifest text: String) {
        switch text.lowercased() {
        case "covid", "covid-19", "covid19": self = .covid
        case "cap": self = .cap
        default: return nil
        }
    }
}

/// What dsan knows about a case without reading its volume.
public struct CaseInfo: Sendable, Equatable {
    public var caseID: String
    public var patientID: String
    public var label: Label
    /// Infection voxels / lung voxels; NaN when the case has no infection mask.
    public var infectionRatio: Float

    public init(caseID: String, patientID: String, label: Label, infectionRatio: Float) {
        self.caseID = caseID
        self.patientID = patientID
        self.label = label
        self.infectionRatio = infectionRatio
    }

    /// Whether the case came with an infection mask (required for training).
    public var hasInfectionMask: Bool { !infectionRatio.isNaN }
}

/// The four groups of size-balanced sampling (DESIGN.md §3, paper §III-C).
public enum SamplingGroup: Int, Sendable, CaseIterable, CustomStringConvertible {
    case covidSmall = 0, covidLarge, capSmall, capLarge

    /// COVID-19 cases with r below this are "small" (§3).
    public static let covidThreshold: Float = 0.030
    /// CAP cases with r at most this are "small" (§3).
    public static let capThreshold: Float = 0.001

    /// The group of a case: COVID small r < 0.030, COVID large r ≥ 0.030, CAP small r ≤ 0.001,
    /// CAP large r > 0.001.
    public init(label: Label, ratio: Float) {
        switch label {
        case .covid: self = ratio < Self.covidThreshold ? .covidSmall : .covidLarge
        case .cap: self = ratio <= Self.capThreshold ? .capSmall : .capLarge
        }
    }

    public var description: String {
        ["COVID small (r < 0.030)", "COVID large (r ≥ 0.030)", "CAP small (r ≤ 0.001)", "CAP large (r > 0.001)"][rawValue]
    }
}

/// The infection-ratio bands of the paper's Table III and of the metrics (DESIGN.md §8).
public enum RatioBand: Int, Sendable, CaseIterable, CustomStringConvertible {
    case low = 0, middle, high

    public static let lowUpper: Float = 0.005
    public static let highLower: Float = 0.030

    /// r < 0.005, 0.005 ≤ r ≤ 0.030, r > 0.030.
    public init(ratio: Float) {
        if ratio < Self.lowUpper { self = .low } else if ratio <= Self.highLower { self = .middle } else { self = .high }
    }

    public var description: String { ["< 0.005", "0.005–0.030", "> 0.030"][rawValue] }
}
