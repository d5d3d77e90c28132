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
