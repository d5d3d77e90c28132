import Foundation

/// A distribution-free confidence interval for the median of a few noisy measurements (the sign
/// test's interval): between the k-th smallest and the k-th largest of n values, with k the largest
/// count for which fewer than k values fall below the median with probability at most
/// (1 − confidence) / 2, for any continuous distribution (each value lies below the median with
/// probability ½, independently). `dsan bench threads` gives it for the rounds' step gain ÷ sgemm
/// gain: on a host whose speed moves by tens of percent between rounds, whether the median ratio
/// is above or below 1 says little unless the interval is on one side of 1.
public struct MedianInterval: Codable, Equatable, Sendable {
    public var median: Double
    public var low: Double, high: Double
    /// The probability that the interval holds the median: 1 − 2·P(Binomial(n, ½) ≤ k − 1).
    public var coverage: Double
    /// How many values it is taken over.
    public var count: Int

    /// The interval of `values` with coverage at least `confidence`; nil when there are too few
    /// values for one (at 0.95: fewer than 6, whose widest interval, the smallest to the largest,
    /// covers only 1 − 2/2⁵ = 0.94 with 5).
    public init?(_ values: [Double], confidence: Double = 0.95) {
        precondition(confidence > 0 && confidence < 1, "MedianInterval: confidence \(confidence) is not in (0, 1)")
        precondition(values.allSatisfy(\.isFinite), "MedianInterval: non-finite values \(values)")
        let n = values.count
        guard n >= 1 else { return nil }
        let tail = (1 - confidence) / 2
        var k = 0   // the largest k with P(B ≤ k − 1) ≤ tail
        while k + 1 <= (n + 1) / 2 && Self.binomialHalfCDF(n, k) <= tail { k += 1 }
        guard k >= 1 else { return nil }
        let sorted = values.sorted()
        median = sorted.count % 2 == 1 ? sorted[n / 2] : (sorted[n / 2 - 1] + sorted[n / 2]) / 2
        low = sorted[k - 1]
        high = sorted[n - k]
        coverage = 1 - 2 * Self.binomialHalfCDF(n, k - 1)
        count = n
    }

    /// P(Binomial(n, ½) ≤ j), summed exactly in Double (C(n, i) / 2ⁿ term by term).
    static func binomialHalfCDF(_ n: Int, _ j: Int) -> Double {
        if j < 0 { return 0 }
        var term = pow(0.5, Double(n)), sum = 0.0   // C(n, 0) / 2ⁿ
        for i in 0...min(j, n) {
            sum += term
            term *= Double(n - i) / Double(i + 1)
        }
        return min(1, sum)
    }

    /// Where the interval lies against `reference`: -1 wholly below it, 1 wholly above, 0 across it.
    public func side(of reference: Double) -> Int { high < reference ? -1 : low > reference ? 1 : 0 }
}
