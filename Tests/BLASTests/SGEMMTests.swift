import Testing
import NumericalTesting
@testable import BLAS

/// Naive row-major reference: C = alpha · op(A) · op(B) + beta · C.
private func naiveGEMM(_ ta: Transpose, _ tb: Transpose, m: Int, n: Int, k: Int, alpha: Float,
                       a: [Float], lda: Int, b: [Float], ldb: Int, beta: Float,
                       c: inout [Float], ldc: Int) {
    for i in 0..<m {
        for j in 0..<n {
            var s: Double = 0
            for p in 0..<k {
                let av = ta == .none ? a[i * lda + p] : a[p * lda + i]
                let bv = tb == .none ? b[p * ldb + j] : b[j * ldb + p]
                s += Double(av) * Double(bv)
            }
            c[i * ldc + j] = alpha * Float(s) + beta * c[i * ldc + j]
        }
    }
}

private struct LCG {
    var state: UInt64
    mutating func next() -> Float {
        state = state &* 6364136223846793005 &+ 1442695040888963407
        return Float(Int64(bitPattern: state >> 11) % 2001 - 1000) / 1000
    }
}

@Suite struct SGEMMTests {
    @Test(arguments: [(Transpose.none, Transpose.none), (.none, .transpose),
                      (.transpose, .none), (.transpose, .transpose)])
    func matchesNaiveLoop(ta: Transpose, tb: Transpose) {
        // Odd sizes and padded leading dimensions so that a stride mix-up cannot pass.
        let m = 13, n = 17, k = 11
        let lda = (ta == .none ? k : m) + 3
        let ldb = (tb == .none ? n : k) + 2
        let ldc = n + 5
        var rng = LCG(state: 42)
        let a = (0..<((ta == .none ? m : k) * lda)).map { _ in rng.next() }
        let b = (0..<((tb == .none ? k : n) * ldb)).map { _ in rng.next() }
        let c0 = (0..<(m * ldc)).map { _ in rng.next() }
        var expected = c0
        naiveGEMM(ta, tb, m: m, n: n, k: k, alpha: 0.75, a: a, lda: lda, b: b, ldb: ldb,
                  beta: 0.5, c: &expected, ldc: ldc)
        var got = c0
        got.withUnsafeMutableBufferPointer { cp in
            BLAS.sgemm(ta, tb, m: m, n: n, k: k, alpha: 0.75, a: a, lda: lda, b: b, ldb: ldb,
                       beta: 0.5, c: cp.baseAddress!, ldc: ldc)
        }
        for i in 0..<m {
            for j in 0..<n {
                #expect(abs(got[i * ldc + j] - expected[i * ldc + j]) <= 1e-5,
                        "C[\(i),\(j)] \(got[i * ldc + j]) vs \(expected[i * ldc + j])")
            }
            // Padding columns beyond n must be untouched.
            for j in n..<ldc { #expect(got[i * ldc + j] == c0[i * ldc + j]) }
        }
    }

    @Test func threadCountRoundTrips() {
        ThreadSettings.with {
            let before = BLAS.threads
            BLAS.threads = 1
            #expect(BLAS.threads == 1)
            BLAS.threads = before
            #expect(BLAS.threads == before)
        }
    }

    @Test func reportsCoreType() {
        #expect(!BLAS.coreName.isEmpty)
        #expect(BLAS.configuration.contains("OpenBLAS"))
    }
}
