// What ranks sharing a node cost each other, and what R synchronised ranks lose waiting for the
// slowest (Docs/scaling.md, "Ranks on a node" and "Waiting for the slowest rank").

import Foundation

/// How much slower one copy of a compute-and-memory workload runs when `copies` copies, each on
/// its own `threadsPerCopy` cores, run together on one node, than when it runs alone: the
/// node's shared memory bandwidth and last-level cache, measured by `dsan plan --save-profile`
/// (k copies of its probe, a real training step, pinned to disjoint cores).
///
/// Between one copy (T busy cores, factor 1) and k copies (k·T busy cores, `slowdown`) the
/// factor is interpolated linearly in busy cores: every busy core adds the same demand on the
/// shared memory system. Beyond k·T it stays at `slowdown` (not measured, not extrapolated);
/// a measured factor below 1 (noise) counts as 1.
public struct NodeContention: Codable, Equatable, Sendable {
    /// k, the copies that ran together.
    public var copies: Int
    /// T, the cores (and threads) of each copy.
    public var threadsPerCopy: Int
    /// Median time of a copy's repetition with k copies running / median alone.
    public var slowdown: Double
    /// Relative standard deviation (standard deviation / mean) of the copies' repetition times
    /// while k ran together: how far apart ranks on such a node drift per step. nil if not
    /// measured (k = 1, or a hand-written profile).
    public var spread: Double?

    public init(copies: Int, threadsPerCopy: Int, slowdown: Double, spread: Double? = nil) {
        precondition(copies >= 1 && threadsPerCopy >= 1 && slowdown > 0 && (spread ?? 0) >= 0,
                     "NodeContention: \(copies) copies × \(threadsPerCopy) threads, slowdown \(slowdown)")
        self.copies = copies
        self.threadsPerCopy = threadsPerCopy
        self.slowdown = slowdown
        self.spread = spread
    }

    /// No contention: every rank runs as fast as alone.
    public static let none = NodeContention(copies: 1, threadsPerCopy: 1, slowdown: 1)

    /// The factor with `n` busy cores on the node:
    ///
    ///     s(n) = 1 + (s_k − 1) · (min(n, kT) − T) / (kT − T)     for n > T, else 1
    public func slowdown(busyCores n: Int) -> Double {
        let alone = threadsPerCopy, all = copies * threadsPerCopy
        guard copies > 1, n > alone else { return 1 }
        return 1 + (max(1, slowdown) - 1) * Double(min(n, all) - alone) / Double(all - alone)
    }
}

/// The expected time R synchronised ranks lose per step waiting for the slowest.
///
/// Each rank's compute between two synchronisation points varies (OS noise, a neighbour on the
/// memory bus, a core's clock); every rank waits at each point until the slowest arrives. If a
/// rank's compute time per step is its mean plus a normal deviation of standard deviation
/// σ = cv · compute, the step follows the slowest rank and takes longer than the mean by
///
///     W(R) = e_R · cv · compute,      e_R = E[max of R independent standard normals]
///
/// (e₁ = 0, e₂ = 1/√π = 0.564, e₄ = 1.029, e₈ = 1.424, e₁₆ = 1.766: it grows like √(2 ln R)).
/// The same W results when the deviation is spread over the step's synchronisation points as
/// long as a rank's deviations at successive points are alike (a slow rank stays slow); were
/// they independent, the step's spread would shrink and W would be smaller. cv is the measured
/// spread of the node's independent copies, or calibrated from one 2-rank step
/// (`StepModel.driftCV(twoRankStep:batch:)`).
public enum SyncWait {
    public static func seconds(compute: Double, relativeSpread cv: Double, ranks: Int) -> Double {
        precondition(compute >= 0 && cv >= 0 && ranks >= 1, "SyncWait: compute \(compute), cv \(cv), \(ranks) ranks")
        return expectedMaximum(ofNormals: ranks) * cv * compute
    }

    /// e_R = ∫ x · R φ(x) Φ(x)^(R−1) dx, by Simpson's rule on [−12, 12] in 4800 steps (error
    /// below 1e-9 for R ≤ 10⁶); 0 for R = 1.
    public static func expectedMaximum(ofNormals r: Int) -> Double {
        precondition(r >= 1, "expectedMaximum: \(r) normals")
        guard r > 1 else { return 0 }
        let a = -12.0, b = 12.0, steps = 4800
        let h = (b - a) / Double(steps)
        func f(_ x: Double) -> Double {
            let phi = exp(-x * x / 2) / (2 * Double.pi).squareRoot()
            let cdf = 0.5 * erfc(-x / 2.0.squareRoot())
            return x * Double(r) * phi * pow(cdf, Double(r - 1))
        }
        var sum = f(a) + f(b)
        for i in 1..<steps { sum += f(a + Double(i) * h) * (i % 2 == 1 ? 4 : 2) }
        return sum * h / 3
    }
}
