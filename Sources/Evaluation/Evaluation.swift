import CTData
import Foundation

/// The metrics of DESIGN.md §8 for one set of predictions: overall and per infection-ratio band
/// (the paper's Tables II and III). A case without an infection ratio counts only overall.
/// Undefined values (AUC of one class, sensitivity without positives, anything of an empty band)
/// are nil and print as `n/a`.
public struct Evaluation: Sendable, Equatable {
    /// Metrics of the cases of one `RatioBand`.
    public struct Band: Sendable, Equatable {
        public var band: RatioBand
        public var metrics: Metrics
    }

    /// Decision threshold on P(COVID-19) for accuracy, sensitivity, specificity and F1.
    public var threshold: Double
    public var overall: Metrics
    /// One entry per `RatioBand`, in order (< 0.005, 0.005–0.030, > 0.030), empty bands included.
    public var bands: [Band]
    /// Cases without an infection ratio (in `overall` only).
    public var withoutRatio: Int

    public init(_ predictions: [Prediction], threshold: Double = 0.5) {
        self.threshold = threshold
        func metrics(_ subset: [Prediction]) -> Metrics {
            Metrics(labels: subset.map { Int($0.label.rawValue) }, scores: subset.map(\.probability), threshold: threshold)
        }
        overall = metrics(predictions)
        bands = RatioBand.allCases.map { band in
            Band(band: band, metrics: metrics(predictions.filter { $0.infectionRatio.map(Evaluation.band) == band }))
        }
        withoutRatio = predictions.filter { $0.infectionRatio == nil }.count
    }

    /// The band of a ratio read from a CSV. Ratios are float32 in the shards and written with
    /// float32's shortest spelling, so the comparison is made in float32 like `RatioBand` itself.
    public static func band(_ ratio: Double) -> RatioBand { RatioBand(ratio: Float(ratio)) }

    /// A fixed-width table: one row overall and one per band, `n/a` where undefined.
    public func table() -> String {
        let header = ["group", "cases", "COVID", "CAP", "AUC", "accuracy", "sensitivity", "specificity", "F1"]
        var rows: [[String]] = [Self.row("overall", overall)]
        for b in bands { rows.append(Self.row(Self.bandName(b.band), b.metrics)) }
        let widths = header.indices.map { c in ([header] + rows).map { $0[c].count }.max()! }
        func line(_ cells: [String]) -> String {
            cells.enumerated().map { c, cell in
                let pad = String(repeating: " ", count: widths[c] - cell.count)
                return c == 0 ? cell + pad : pad + cell
            }.joined(separator: "  ")
        }
        var out = ([header] + rows).map(line)
        if withoutRatio > 0 {
            out.append("\(withoutRatio) case\(withoutRatio == 1 ? "" : "s") without infection ratio: counted overall only")
        }
        return out.joined(separator: "\n") + "\n"
    }

    /// `r < 0.005`, `0.005 ≤ r ≤ 0.030`, `r > 0.030`.
    static func bandName(_ band: RatioBand) -> String {
        switch band {
        case .low: "r < 0.005"
        case .middle: "0.005 ≤ r ≤ 0.030"
        case .high: "r > 0.030"
        }
    }

    static func row(_ name: String, _ m: Metrics) -> [String] {
        [name, String(m.cases), String(m.positives), String(m.cases - m.positives)]
            + [m.auc, m.accuracy, m.sensitivity, m.specificity, m.f1].map(format)
    }

    /// Four decimals, or `n/a`.
    public static func format(_ v: Double?) -> String { v.map { String(format: "%.4f", $0) } ?? "n/a" }

    /// The JSON form (`dsan evaluate --out`): `null` where undefined.
    public func json(predictions source: String? = nil) -> OrderedJSON {
        var members: [(String, OrderedJSON)] = []
        if let source { members.append(("predictions", .string(source))) }
        members += [
            ("threshold", .number(threshold)),
            ("overall", Self.json(overall)),
            ("bands", .array(bands.map { b in
                let bounds: [(String, OrderedJSON)] = switch b.band {
                case .low: [("lower", .null), ("upper", .number(0.005))]
                case .middle: [("lower", .number(0.005)), ("upper", .number(0.030))]
                case .high: [("lower", .number(0.030)), ("upper", .null)]
                }
                guard case .object(let m) = Self.json(b.metrics) else { fatalError("metrics are an object") }
                return .object([("band", .string(b.band.description))] + bounds + m)
            })),
            ("without_ratio", .int(withoutRatio)),
        ]
        return .object(members)
    }

    static func json(_ m: Metrics) -> OrderedJSON {
        .object([
            ("cases", .int(m.cases)), ("covid", .int(m.positives)), ("cap", .int(m.cases - m.positives)),
            ("auc", .optional(m.auc)), ("accuracy", .optional(m.accuracy)), ("sensitivity", .optional(m.sensitivity)),
            ("specificity", .optional(m.specificity)), ("f1", .optional(m.f1)),
        ])
    }
}

// MARK: - Across folds

/// Mean and sample standard deviation (n − 1 in the denominator) of a metric over folds, as the
/// paper's "mean ± std" of Tables II and III. `sd` is nil for a single value.
public struct MeanSD: Sendable, Equatable, CustomStringConvertible {
    public var count: Int
    public var mean: Double
    public var sd: Double?

    /// nil for no values.
    public init?(_ values: [Double]) {
        guard !values.isEmpty else { return nil }
        count = values.count
        mean = values.reduce(0, +) / Double(count)
        let m = mean
        sd = count > 1 ? (values.map { ($0 - m) * ($0 - m) }.reduce(0, +) / Double(count - 1)).squareRoot() : nil
    }

    /// `0.948 ± 0.003` (three decimals as in the paper), or just the mean for one value.
    public var description: String {
        String(format: "%.3f", mean) + (sd.map { String(format: " ± %.3f", $0) } ?? "")
    }
}

/// Each metric's mean ± sd over folds; a fold where a metric is undefined is left out of that
/// metric (so `count` may differ between metrics), and a metric undefined in every fold is nil.
public struct FoldSummary: Sendable, Equatable {
    public var auc, accuracy, sensitivity, specificity, f1: MeanSD?

    public init(_ folds: [Metrics]) {
        auc = MeanSD(folds.compactMap(\.auc))
        accuracy = MeanSD(folds.compactMap(\.accuracy))
        sensitivity = MeanSD(folds.compactMap(\.sensitivity))
        specificity = MeanSD(folds.compactMap(\.specificity))
        f1 = MeanSD(folds.compactMap(\.f1))
    }

    /// Overall and per band over the folds' evaluations.
    public static func of(_ evaluations: [Evaluation]) -> (overall: FoldSummary, bands: [RatioBand: FoldSummary]) {
        var bands: [RatioBand: FoldSummary] = [:]
        for band in RatioBand.allCases {
            bands[band] = FoldSummary(evaluations.compactMap { $0.bands.first { $0.band == band }?.metrics })
        }
        return (FoldSummary(evaluations.map(\.overall)), bands)
    }
}

/// Paired two-sided Student t-test between two models' values of a metric across the same folds
/// (the paper's §IV-D, "paired t-tests"): d_k = a_k − b_k, t = mean(d) / (sd(d) / √n), df = n − 1.
public struct PairedTTest: Sendable, Equatable {
    public var n: Int
    public var meanDifference: Double
    /// ±infinity when every difference is the same non-zero value (sd = 0).
    public var t: Double
    public var degreesOfFreedom: Int
    /// Two-sided p-value: P(|T| ≥ |t|) for T ~ Student t(df). 1 when every difference is 0,
    /// 0 when every difference is the same non-zero value.
    public var p: Double

    /// nil with fewer than two pairs (no degrees of freedom). `a` and `b` are paired by index.
    public init?(_ a: [Double], _ b: [Double]) {
        precondition(a.count == b.count, "PairedTTest: \(a.count) values against \(b.count)")
        guard a.count >= 2, let stats = MeanSD(zip(a, b).map { $0 - $1 }), let sd = stats.sd else { return nil }
        n = a.count
        degreesOfFreedom = n - 1
        meanDifference = stats.mean
        if sd > 0 {
            t = stats.mean / (sd / Double(n).squareRoot())
            p = StudentT.twoSidedP(t: t, degreesOfFreedom: Double(degreesOfFreedom))
        } else if stats.mean == 0 {
            t = 0
            p = 1
        } else {
            t = stats.mean > 0 ? .infinity : -.infinity
            p = 0
        }
    }
}

/// The Student t distribution through the regularized incomplete beta function.
public enum StudentT {
    /// P(|T| ≥ |t|) = I_{ν/(ν+t²)}(ν/2, 1/2) for ν degrees of freedom.
    public static func twoSidedP(t: Double, degreesOfFreedom nu: Double) -> Double {
        precondition(nu > 0, "StudentT: \(nu) degrees of freedom")
        if t.isNaN { return .nan }
        if t.isInfinite { return 0 }
        let t2 = t * t
        let x = nu / (nu + t2), y = t2 / (nu + t2)   // x + y = 1, each computed without cancellation
        // For small |t|, x is close to 1: use I_x(a, b) = 1 − I_{1−x}(b, a) with 1 − x = y exactly.
        return x < y ? IncompleteBeta.regularized(a: nu / 2, b: 0.5, x: x)
                     : 1 - IncompleteBeta.regularized(a: 0.5, b: nu / 2, x: y)
    }

    /// P(T ≤ t).
    public static func cdf(_ t: Double, degreesOfFreedom nu: Double) -> Double {
        let tail = twoSidedP(t: t, degreesOfFreedom: nu) / 2
        return t >= 0 ? 1 - tail : tail
    }
}

/// The regularized incomplete beta function I_x(a, b) = B(x; a, b) / B(a, b).
public enum IncompleteBeta {
    /// Relative accuracy of the continued fraction.
    static let epsilon = 1e-15
    /// Guards the modified Lentz iteration against division by zero.
    static let tiny = 1e-300
    /// The continued fraction converges in O(√max(a, b)) terms; this bounds it generously.
    static let maxIterations = 10_000

    /// I_x(a, b) for a, b > 0 and x in [0, 1] (Numerical Recipes §6.4, `betai`): the front factor
    /// x^a (1−x)^b / (a B(a, b)) times the continued fraction, which converges quickly for
    /// x < (a+1)/(a+b+2); otherwise the symmetry I_x(a, b) = 1 − I_{1−x}(b, a).
    public static func regularized(a: Double, b: Double, x: Double) -> Double {
        precondition(a > 0 && b > 0, "IncompleteBeta: a = \(a), b = \(b) must be positive")
        precondition(x >= 0 && x <= 1, "IncompleteBeta: x = \(x) outside [0, 1]")
        if x == 0 { return 0 }
        if x == 1 { return 1 }
        let logFront = lgamma(a + b) - lgamma(a) - lgamma(b) + a * log(x) + b * log1p(-x)
        let front = exp(logFront)
        if x < (a + 1) / (a + b + 2) {
            return front * continuedFraction(a: a, b: b, x: x) / a
        }
        return 1 - front * continuedFraction(a: b, b: a, x: 1 - x) / b
    }

    /// NR's `betacf`: the continued fraction for I_x(a, b) by the modified Lentz method,
    /// d_{2m+1} = −(a+m)(a+b+m) x / ((a+2m)(a+2m+1)), d_{2m} = m(b−m) x / ((a+2m−1)(a+2m)).
    static func continuedFraction(a: Double, b: Double, x: Double) -> Double {
        func guarded(_ v: Double) -> Double { abs(v) < tiny ? tiny : v }
        let qab = a + b, qap = a + 1, qam = a - 1
        var c = 1.0
        var d = 1 / guarded(1 - qab * x / qap)
        var h = d
        for m in 1...maxIterations {
            let m = Double(m), m2 = 2 * m
            // Even step.
            var aa = m * (b - m) * x / ((qam + m2) * (a + m2))
            d = 1 / guarded(1 + aa * d)
            c = guarded(1 + aa / c)
            h *= d * c
            // Odd step.
            aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))
            d = 1 / guarded(1 + aa * d)
            c = guarded(1 + aa / c)
            let delta = d * c
            h *= delta
            if abs(delta - 1) < epsilon { break }
        }
        return h
    }
}
