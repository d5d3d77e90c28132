/// The signature of `BLAS.sgemm` (row-major), so a test can hand the self-check a broken GEMM.
public typealias SGEMMFunction = (
    _ transA: Transpose, _ transB: Transpose, _ m: Int, _ n: Int, _ k: Int, _ alpha: Float,
    _ a: UnsafePointer<Float>, _ lda: Int, _ b: UnsafePointer<Float>, _ ldb: Int, _ beta: Float,
    _ c: UnsafeMutablePointer<Float>, _ ldc: Int
) -> Void

/// A few sgemm calls checked against a naive loop, run after dsan forces an OpenBLAS core: an
/// OpenBLAS release older than the CPU can pick kernels that compute wrong results on it.
///
/// The shapes cover the four transpose cases, odd sizes (edge kernels), padded leading dimensions,
/// alpha ≠ 1 and beta ≠ 0 on a non-zero C, and one 256³ product large enough for OpenBLAS to use
/// its threads. The reference sums in Double; an element passes when its error is within
/// `2·k·ε(Float)` of Σ|alpha·a·b| + |beta·c| (the standard bound on a k-term Float dot product),
/// so rounding passes and a wrong kernel (garbage, a skipped tile, NaN) does not.
public enum SGEMMSelfCheck {
    /// What differed: the first call and element outside the tolerance.
    public struct Mismatch: Error, CustomStringConvertible, Equatable {
        public var call: String
        public var row: Int, column: Int
        public var got: Float, expected: Double, tolerance: Double
        public var description: String {
            "sgemm \(call): C[\(row), \(column)] = \(got), the naive loop gives \(expected) (tolerance \(tolerance))"
        }
    }

    /// (transA, transB, m, n, k)
    static let calls: [(Transpose, Transpose, Int, Int, Int)] = [
        (.none, .none, 67, 45, 129), (.transpose, .none, 33, 70, 17),
        (.none, .transpose, 16, 96, 64), (.transpose, .transpose, 5, 3, 300),
        (.none, .none, 256, 256, 256),
    ]

    /// Runs the calls through `sgemm` and throws the first `Mismatch`.
    public static func verify(_ sgemm: SGEMMFunction = { BLAS.sgemm($0, $1, m: $2, n: $3, k: $4, alpha: $5, a: $6, lda: $7, b: $8, ldb: $9, beta: $10, c: $11, ldc: $12) }) throws {
        var state: UInt64 = 0x5EED
        func next() -> Float {
            state = state &* 6364136223846793005 &+ 1442695040888963407
            return Float(Int64(bitPattern: state >> 11) % 2001 - 1000) / 1000
        }
        let alpha: Float = 1.5, beta: Float = 0.5
        for (ta, tb, m, n, k) in calls {
            let (aRows, aCols) = ta == .none ? (m, k) : (k, m)
            let (bRows, bCols) = tb == .none ? (k, n) : (n, k)
            let lda = aCols + 3, ldb = bCols + 1, ldc = n + 2
            let a = (0..<(aRows * lda)).map { _ in next() }
            let b = (0..<(bRows * ldb)).map { _ in next() }
            let c0 = (0..<(m * ldc)).map { _ in next() }
            var c = c0
            c.withUnsafeMutableBufferPointer { cp in sgemm(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, cp.baseAddress!, ldc) }
            for i in 0..<m {
                for j in 0..<n {
                    var sum = 0.0, magnitude = 0.0
                    for p in 0..<k {
                        let av = Double(ta == .none ? a[i * lda + p] : a[p * lda + i])
                        let bv = Double(tb == .none ? b[p * ldb + j] : b[j * ldb + p])
                        sum += av * bv
                        magnitude += abs(av * bv)
                    }
                    let cv = Double(c0[i * ldc + j])
                    let expected = Double(alpha) * sum + Double(beta) * cv
                    let tolerance = 2 * Double(k + 2) * Double(Float.ulpOfOne) * (Double(alpha) * magnitude + Double(beta) * abs(cv))
                    let got = c[i * ldc + j]
                    if !(abs(Double(got) - expected) <= tolerance) {
                        throw Mismatch(call: "\(ta == .none ? "N" : "T")\(tb == .none ? "N" : "T") m=\(m) n=\(n) k=\(k)",
                                       row: i, column: j, got: got, expected: expected, tolerance: tolerance)
                    }
                }
            }
        }
    }
}
