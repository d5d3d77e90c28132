// The last two steps of the online attention module (DESIGN §1, paper §III-B): per-sample min-max
// normalisation of the upsampled map and the soft threshold T(A) = σ(α (A − β)).

/// Per-sample min-max normalisation y = (A − min) / max(max − min, 1e-5), min and max over all
/// elements of each sample (`[N, *]`, for the attention map `[N, 1, D, H, W]`).
///
/// Gradient as PyTorch's autograd of `(A - A.amin(dims, keepdim)) / (A.amax(...) - A.amin(...)).clamp(min: 1e-5)`:
/// the gradient of min (max) goes to the voxels equal to it, split evenly among ties; when
/// max − min < 1e-5 the denominator is the constant 1e-5 and max gets no gradient (at exactly
/// 1e-5 the clamp passes the gradient, like `clamp_min`'s backward). The extrema are cached in an
/// `[N, 2]` tensor (min, max) the caller owns. Reductions run in parallel over fixed blocks in
/// Double, so results do not depend on `Parallel.threads`.
public enum MinMaxNormalization {
    /// Floor of the denominator max − min.
    public static let minimumRange: Float = 1e-5

    /// y = (a − min) / max(max − min, 1e-5) per sample; writes `extrema[n] = (min, max)`.
    /// Shapes: a, y `[N, *]`, extrema `[N, 2]`. `y` may be `a`, but the backward needs the
    /// original a.
    public static func forward(_ a: Tensor, into y: Tensor, extrema: Tensor) {
        let (n, per) = check(a, y, extrema)
        for sample in 0..<n {
            let xs = a.data + sample * per, ys = y.data + sample * per
            let (lo, hi) = blockedExtrema(xs, per)
            extrema.data[2 * sample] = lo
            extrema.data[2 * sample + 1] = hi
            let den = max(hi - lo, minimumRange)
            Parallel.forEach(per, grain: elementwiseGrain) { r in
                for i in r { ys[i] = (xs[i] - lo) / den }
            }
        }
    }

    /// WRITES da, the gradient of the forward at input a (with the extrema that forward cached),
    /// given dy. Shapes: dy, a, da `[N, *]`, extrema `[N, 2]`. `da` may be `dy`.
    public static func backward(_ dy: Tensor, input a: Tensor, extrema: Tensor, into da: Tensor) {
        let (n, per) = check(a, dy, extrema)
        precondition(da.count == a.count, "MinMaxNormalization.backward: da \(da) for \(a)")
        for sample in 0..<n {
            let xs = a.data + sample * per, gs = dy.data + sample * per, ds = da.data + sample * per
            let lo = extrema.data[2 * sample], hi = extrema.data[2 * sample + 1]
            let range = hi - lo
            let active = range >= minimumRange
            let den = Double(max(range, minimumRange))
            // y_i = (a_i − lo)/den: ∂L/∂lo = −Σg/den + [active] Σg(a − lo)/den², ∂L/∂hi = −[active] Σg(a − lo)/den².
            let (sumG, sumGX, ties, hiTies) = gradientSums(gs, xs, per, lo: lo, hi: hi)
            let gLo = -sumG / den + (active ? sumGX / (den * den) : 0)
            let gHi = active ? -sumGX / (den * den) : 0
            let shareLo = Float(gLo / ties), shareHi = Float(gHi / hiTies)
            let invDen = Float(1 / den)
            Parallel.forEach(per, grain: elementwiseGrain) { r in
                for i in r {
                    let x = xs[i]
                    var g = gs[i] * invDen
                    if x == lo { g += shareLo }
                    if x == hi { g += shareHi }
                    ds[i] = g
                }
            }
        }
    }

    private static func check(_ a: Tensor, _ b: Tensor, _ extrema: Tensor) -> (Int, Int) {
        precondition(a.rank >= 2 && a.count == b.count, "MinMaxNormalization: \(a) vs \(b)")
        let n = a.shape[0]
        precondition(extrema.count == 2 * n, "MinMaxNormalization: extrema \(extrema) for batch \(n)")
        return (n, n == 0 ? 0 : a.count / n)
    }
}

/// The soft threshold of the attention module, T(A) = σ(α (A − β)) with α = 100, β = 0.4 (paper
/// Eq. (2)), elementwise on `[N, 1, D, H, W]` (any shape works).
public enum AttentionThreshold {
    public static let alpha: Float = 100
    public static let beta: Float = 0.4

    /// t = σ(α (a − β)). `t` may be `a`.
    public static func forward(_ a: Tensor, into t: Tensor) {
        precondition(a.count == t.count, "AttentionThreshold.forward: \(a) into \(t)")
        let ap = a.data, tp = t.data
        Parallel.forEach(a.count, grain: elementwiseGrain) { r in
            for i in r { tp[i] = Sigmoid.value(alpha * (ap[i] - beta)) }
        }
    }

    /// WRITES da = dt · α t (1 − t), from the forward output t. `da` may be `dt`.
    public static func backward(_ dt: Tensor, output t: Tensor, into da: Tensor) {
        precondition(dt.count == t.count && dt.count == da.count, "AttentionThreshold.backward: \(dt), \(t), \(da)")
        let gp = dt.data, tp = t.data, dp = da.data
        Parallel.forEach(dt.count, grain: elementwiseGrain) { r in
            for i in r { dp[i] = gp[i] * alpha * tp[i] * (1 - tp[i]) }
        }
    }
}

/// (min, max) of `n` floats, in parallel over fixed blocks (min and max are exact in any order).
private func blockedExtrema(_ p: UnsafeMutablePointer<Float>, _ n: Int) -> (Float, Float) {
    precondition(n > 0, "MinMaxNormalization: empty sample")
    let block = 1 << 16
    let blocks = (n + block - 1) / block
    var partial = [Float](repeating: 0, count: 2 * blocks)
    partial.withUnsafeMutableBufferPointer { buf in
        let out = buf.baseAddress!
        Parallel.forEach(blocks) { r in
            for b in r {
                var lo = p[b * block], hi = lo
                for i in (b * block)..<min(n, (b + 1) * block) {
                    let x = p[i]
                    lo = x < lo ? x : lo
                    hi = x > hi ? x : hi
                }
                out[2 * b] = lo
                out[2 * b + 1] = hi
            }
        }
    }
    var lo = partial[0], hi = partial[1]
    for b in 1..<blocks {
        lo = min(lo, partial[2 * b])
        hi = max(hi, partial[2 * b + 1])
    }
    return (lo, hi)
}

/// One pass over a sample for the min-max backward: (Σg, Σg·(x − lo), #{x = lo}, #{x = hi}), each
/// summed in Double per fixed block of 4096 and the blocks combined in order, so the result does
/// not depend on the thread count.
private func gradientSums(_ g: UnsafeMutablePointer<Float>, _ x: UnsafeMutablePointer<Float>, _ n: Int,
                          lo: Float, hi: Float) -> (Double, Double, Double, Double) {
    let block = 4096
    let blocks = (n + block - 1) / block
    var partial = [Double](repeating: 0, count: 4 * blocks)
    partial.withUnsafeMutableBufferPointer { buf in
        let out = buf.baseAddress!
        Parallel.forEach(blocks) { r in
            for b in r {
                var sg: Double = 0, sgx: Double = 0, nLo = 0, nHi = 0
                for i in (b * block)..<min(n, (b + 1) * block) {
                    let gi = Double(g[i]), xi = x[i]
                    sg += gi
                    sgx += gi * Double(xi - lo)
                    if xi == lo { nLo += 1 }
                    if xi == hi { nHi += 1 }
                }
                out[4 * b] = sg
                out[4 * b + 1] = sgx
                out[4 * b + 2] = Double(nLo)
                out[4 * b + 3] = Double(nHi)
            }
        }
    }
    var total = (0.0, 0.0, 0.0, 0.0)
    for b in 0..<blocks {
        total.0 += partial[4 * b]
        total.1 += partial[4 * b + 1]
        total.2 += partial[4 * b + 2]
        total.3 += partial[4 * b + 3]
    }
    return total
}
