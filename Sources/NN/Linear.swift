import BLAS

// Fully connected layer without bias (the model's head: fc Linear(512 → 1, no bias)).

/// Forward: `y = x · Wᵀ`. Overwrites `y`.
///
/// - Parameters:
///   - y: `[N, out]`
///   - x: `[N, in]` (a `[N, C, 1, 1, 1]`-like tensor must be reshaped to `[N, C]` by the caller)
///   - weight: `[out, in]` (PyTorch's layout)
public func linearForward(y: Tensor, x: Tensor, weight: Tensor) {
    precondition(x.rank == 2 && weight.rank == 2 && x.shape[1] == weight.shape[1],
                 "linearForward: x \(x.shape), weight \(weight.shape)")
    let (n, inF, outF) = (x.shape[0], x.shape[1], weight.shape[0])
    precondition(y.shape == [n, outF], "linearForward: y \(y.shape), expected [\(n), \(outF)]")
    BLAS.sgemm(.none, .transpose, m: n, n: outF, k: inF, a: x.data, lda: inF, b: weight.data, ldb: inF,
               c: y.data, ldc: outF)
}

/// Backward of `linearForward`. Pass nil for a gradient that is not needed.
///
/// - `dX` `[N, in]` is WRITTEN: dX = dY · W.
/// - `dWeight` `[out, in]` is ACCUMULATED: dWeight += dYᵀ · x.
/// - `dY` `[N, out]`; `x` `[N, in]` and `weight` `[out, in]` are the forward's inputs.
public func linearBackward(dX: Tensor?, dWeight: Tensor?, dY: Tensor, x: Tensor, weight: Tensor) {
    precondition(x.rank == 2 && weight.rank == 2 && x.shape[1] == weight.shape[1],
                 "linearBackward: x \(x.shape), weight \(weight.shape)")
    let (n, inF, outF) = (x.shape[0], x.shape[1], weight.shape[0])
    precondition(dY.shape == [n, outF], "linearBackward: dY \(dY.shape), expected [\(n), \(outF)]")
    if let dX {
        precondition(dX.shape == x.shape, "linearBackward: dX \(dX.shape) vs x \(x.shape)")
        BLAS.sgemm(.none, .none, m: n, n: inF, k: outF, a: dY.data, lda: outF, b: weight.data, ldb: inF,
                   c: dX.data, ldc: inF)
    }
    if let dWeight {
        precondition(dWeight.shape == weight.shape, "linearBackward: dWeight \(dWeight.shape) vs \(weight.shape)")
        dWeight.resolveLazyZero()   // [out, in]: one row at width 64, not worth a beta 0 path
        BLAS.sgemm(.transpose, .none, m: outF, n: inF, k: n, a: dY.data, lda: outF, b: x.data, ldb: inF,
                   beta: 1, c: dWeight.data, ldc: inF)
    }
}
