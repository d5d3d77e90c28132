// The two losses of DESIGN §2: classification BCE on logits and the attention loss of Eq. (3).
// Both are split for data parallelism: the forward returns this rank's reducible sums, the caller
// all-reduces them, and the backward takes the GLOBAL normalisers, so R ranks compute the same
// gradient as one rank holding the whole global batch.
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Binary cross-entropy on logits, mean over the global batch: L_c = (1/B) Σ_i ℓ(z_i, y_i) with
/// ℓ(z, y) = max(z, 0) − z y + log(1 + e^(−|z|)) (stable for any z; `BCEWithLogitsLoss`). Labels
/// y are 1 for COVID-19 and 0 for CAP. Shapes: logits and targets `[N]` or `[N, 1]`, N the local
/// batch (possibly 0); B, the global batch size, is passed in.
public enum BinaryCrossEntropyWithLogits {
    /// Σ_i ℓ(z_i, y_i) over the LOCAL batch, in Double, not divided: all-reduce it and divide by
    /// the global batch size for L_c.
    public static func forward(logits: Tensor, targets: Tensor) -> Double {
        precondition(logits.count == targets.count, "BCE: logits \(logits) vs targets \(targets)")
        var sum: Double = 0
        for i in 0..<logits.count {
            let z = Double(logits.data[i]), y = Double(targets.data[i])
            sum += max(z, 0) - z * y + log1p(exp(-abs(z)))
        }
        return sum
    }

    /// WRITES dLogits_i = scale · (σ(z_i) − y_i) / normalizer, the gradient of scale · L_c for the
    /// local logits; `normalizer` is the GLOBAL batch size B (not the local N).
    public static func backward(logits: Tensor, targets: Tensor, normalizer: Double, scale: Double = 1,
                                into dLogits: Tensor) {
        precondition(logits.count == targets.count && logits.count == dLogits.count,
                     "BCE.backward: \(logits), \(targets), \(dLogits)")
        precondition(normalizer > 0, "BCE.backward: normalizer must be positive, got \(normalizer)")
        for i in 0..<logits.count {
            let z = Double(logits.data[i]), y = Double(targets.data[i])
            let p = z >= 0 ? 1 / (1 + exp(-z)) : exp(z) / (1 + exp(z))
            dLogits.data[i] = Float(scale * (p - y) / normalizer)
        }
    }
}

/// The reducible sums of the attention loss over COVID-19 samples: all-reduce `values` (sum) to
/// get the global batch's, then `loss` is Eq. (3) for the whole global batch.
public struct AttentionLossSums: Equatable, Sendable {
    /// Σ_{COVID i} Σ_voxels (T_i − M_i)².
    public var numerator: Double
    /// Σ_{COVID i} (Σ_voxels T_i + Σ_voxels M_i).
    public var denominator: Double
    /// Number of COVID-19 samples.
    public var covidCount: Double

    public init(numerator: Double = 0, denominator: Double = 0, covidCount: Double = 0) {
        self.numerator = numerator
        self.denominator = denominator
        self.covidCount = covidCount
    }

    /// [numerator, denominator, covidCount], the buffer to all-reduce.
    public var values: [Double] {
        get { [numerator, denominator, covidCount] }
        set {
            precondition(newValue.count == 3, "AttentionLossSums: expected 3 values, got \(newValue.count)")
            (numerator, denominator, covidCount) = (newValue[0], newValue[1], newValue[2])
        }
    }

    /// L_ex = numerator / denominator, or 0 when there is no COVID-19 sample (or the denominator is
    /// 0, which with T > 0 happens only then).
    public var loss: Double { covidCount > 0 && denominator > 0 ? numerator / denominator : 0 }
}

/// The attention loss of DESIGN §2 / paper Eq. (3), one ratio per global batch:
/// L_ex = Σ_{COVID i} Σ (T_i − M_i)² / Σ_{COVID i} (Σ T_i + Σ M_i).
/// Shapes: attention maps T and masks M `[N, 1, D, H, W]` (any `[N, *]`), labels `[N]` (> 0.5 is
/// COVID-19; CAP samples take no part and their masks are ignored).
public enum AttentionLoss {
    /// This rank's numerator, denominator and COVID-19 count, in Double over fixed blocks.
    public static func localSums(attention t: Tensor, mask m: Tensor, labels: Tensor) -> AttentionLossSums {
        let (n, per) = check(t, m, labels)
        var sums = AttentionLossSums()
        for sample in 0..<n where labels.data[sample] > 0.5 {
            let tp = t.data + sample * per, mp = m.data + sample * per
            sums.numerator += Parallel.blockedSum(per) { r in
                var s: Double = 0
                for i in r {
                    let e = Double(tp[i]) - Double(mp[i])
                    s += e * e
                }
                return s
            }
            sums.denominator += Parallel.blockedSum(per) { r in
                var s: Double = 0
                for i in r { s += Double(tp[i]) + Double(mp[i]) }
                return s
            }
            sums.covidCount += 1
        }
        return sums
    }

    /// WRITES dT = scale · ∂L_ex/∂T for the local samples, given the GLOBAL sums (after the
    /// all-reduce): for COVID-19 voxels 2 (T − M)/den − num/den² (the denominator depends on T
    /// too), 0 for CAP samples, and 0 everywhere when the global batch has no COVID-19 case.
    /// `scale` is the loss weight λ.
    public static func backward(attention t: Tensor, mask m: Tensor, labels: Tensor,
                                global: AttentionLossSums, scale: Double = 1, into dT: Tensor) {
        let (n, per) = check(t, m, labels)
        precondition(dT.count == t.count, "AttentionLoss.backward: dT \(dT) for \(t)")
        guard global.covidCount > 0 && global.denominator > 0 else {
            dT.zero()
            return
        }
        let a = Float(2 * scale / global.denominator)
        let b = Float(scale * global.numerator / (global.denominator * global.denominator))
        for sample in 0..<n {
            let tp = t.data + sample * per, mp = m.data + sample * per, dp = dT.data + sample * per
            if labels.data[sample] > 0.5 {
                Parallel.forEach(per, grain: elementwiseGrain) { r in
                    for i in r { dp[i] = a * (tp[i] - mp[i]) - b }
                }
            } else {
                dp.update(repeating: 0, count: per)
            }
        }
    }

    private static func check(_ t: Tensor, _ m: Tensor, _ labels: Tensor) -> (Int, Int) {
        precondition(t.rank >= 2 && t.count == m.count && t.shape[0] == labels.count,
                     "AttentionLoss: attention \(t), mask \(m), labels \(labels)")
        let n = t.shape[0]
        return (n, n == 0 ? 0 : t.count / n)
    }
}
