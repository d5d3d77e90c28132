import Tensor

/// Outcome of comparing an analytic gradient with central finite differences.
public struct GradientCheckResult: CustomStringConvertible {
    /// Largest |analytic − numeric| / max(scale, |analytic|, |numeric|) over the checked entries.
    public var worstRelativeError: Double
    /// The flat index where it occurred, with both values.
    public var worstIndex: Int
    public var analytic: Double
    public var numeric: Double
    public var checked: Int

    public var description: String {
        "worst rel. error \(worstRelativeError) at [\(worstIndex)]: analytic \(analytic), numeric \(numeric) (\(checked) entries)"
    }
}

/// Central finite differences of a scalar `loss()` with respect to entries of `parameter`,
/// compared with `analytic` (the gradient the backward pass produced for the same loss).
///
/// `loss` must recompute the forward pass from `parameter`'s current contents and return the scalar
/// in double precision. `indices` picks which entries to check (all when nil). The relative error
/// uses `scale` as a floor on the denominator so that near-zero gradients are compared absolutely.
/// `parameter` is restored exactly afterwards.
public func checkGradient(
    _ parameter: Tensor, analytic: Tensor, indices: [Int]? = nil,
    eps: Float = 1e-2, scale: Double = 1e-2, loss: () -> Double
) -> GradientCheckResult {
    precondition(parameter.count == analytic.count, "checkGradient: \(parameter) vs \(analytic)")
    var result = GradientCheckResult(worstRelativeError: 0, worstIndex: -1, analytic: 0, numeric: 0, checked: 0)
    for i in indices ?? Array(0..<parameter.count) {
        let saved = parameter.data[i]
        parameter.data[i] = saved + eps
        let plus = loss()
        parameter.data[i] = saved - eps
        let minus = loss()
        parameter.data[i] = saved
        // The actual step in float, which can differ slightly from 2·eps.
        let step = Double(saved + eps) - Double(saved - eps)
        let numeric = (plus - minus) / step
        let a = Double(analytic.data[i])
        let rel = abs(a - numeric) / max(scale, abs(a), abs(numeric))
        result.checked += 1
        if rel > result.worstRelativeError || result.worstIndex < 0 {
            result.worstRelativeError = rel
            result.worstIndex = i
            result.analytic = a
            result.numeric = numeric
        }
    }
    return result
}

/// A fixed random weighting `g` of an output, so that the scalar loss Σ g·y exercises every output
/// element with a distinct coefficient (a plain sum would hide transposition errors).
public func projectionWeights(like t: Tensor, seed: UInt64) -> Tensor {
    uniformTensor(t.shape, seed: seed)
}

/// A tensor of `shape` with entries uniform in [lo, hi), drawn from SplitMix64(`seed`).
public func uniformTensor(_ shape: [Int], seed: UInt64, _ lo: Float = -1, _ hi: Float = 1) -> Tensor {
    var rng = SplitMix64(seed: seed)
    let t = Tensor(zeros: shape)
    t.fillUniform(lo, hi, rng: &rng)
    return t
}

/// Σ g·y in double precision.
public func dot(_ g: Tensor, _ y: Tensor) -> Double {
    precondition(g.count == y.count, "dot: \(g) vs \(y)")
    var s: Double = 0
    for i in 0..<g.count { s += Double(g.data[i]) * Double(y.data[i]) }
    return s
}

/// Largest absolute elementwise difference of two tensors with equal counts.
public func maxAbsDifference(_ a: Tensor, _ b: Tensor) -> Float {
    precondition(a.count == b.count, "maxAbsDifference: \(a) vs \(b)")
    var m: Float = 0
    for i in 0..<a.count { m = max(m, abs(a.data[i] - b.data[i])) }
    return m
}

/// A deterministic sample of `k` distinct flat indices in `0..<n` (all of them when n ≤ k).
public func sampleIndices(_ n: Int, _ k: Int, seed: UInt64) -> [Int] {
    if n <= k { return Array(0..<n) }
    var rng = SplitMix64(seed: seed)
    var chosen = Set<Int>()
    while chosen.count < k { chosen.insert(Int(rng.next() % UInt64(n))) }
    return chosen.sorted()
}
