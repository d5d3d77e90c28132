#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import NumericalTesting
import Testing
@testable import NN

/// ReLU, the residual join and sigmoid against plain loops and finite differences.
@Suite struct ActivationTests {
    private let shape = [2, 3, 5, 7, 9]

    /// Uniform in [-1, 1) with every |x| ≥ `gap`, so that a finite-difference step smaller than
    /// `gap` never crosses the ReLU kink.
    private func awayFromZero(_ shape: [Int], seed: UInt64, gap: Float = 0.05) -> Tensor {
        var rng = SplitMix64(seed: seed)
        let x = Tensor(zeros: shape)
        x.fillUniform(-1, 1, rng: &rng)
        for i in 0..<x.count where abs(x.data[i]) < gap { x.data[i] = x.data[i] < 0 ? -gap - 0.01 : gap + 0.01 }
        return x
    }

    @Test func reluForwardMatchesNaive() {
        let x = awayFromZero(shape, seed: 1)
        x.data[0] = 0
        let y = Tensor(zeros: shape)
        ReLU.forward(x, into: y)
        for i in 0..<x.count { #expect(y.data[i] == (x.data[i] > 0 ? x.data[i] : 0)) }
        ReLU.forward(x, into: x)  // in place
        #expect(x.array == y.array)
    }

    @Test func reluBackwardMatchesFiniteDifferences() {
        let x = awayFromZero(shape, seed: 2)
        let g = projectionWeights(like: x, seed: 3)
        let y = Tensor(zeros: shape), dx = Tensor(zeros: shape)
        let loss = { ReLU.forward(x, into: y); return dot(g, y) }
        _ = loss()
        ReLU.backward(g, output: y, into: dx)
        // Piecewise linear and the step (1e-2) stays inside one piece: only float rounding remains.
        let r = checkGradient(x, analytic: dx, indices: sampleIndices(x.count, 80, seed: 4), eps: 1e-2, loss: loss)
        #expect(r.worstRelativeError < 1e-3, "\(r)")
    }

    @Test func reluGradientIsZeroAtZeroAndNegatives() {
        let x = Tensor(shape: [6], values: [0, -0.0, -1, -1e-30, 1e-30, 2])
        let y = Tensor(zeros: [6]), dx = Tensor(shape: [6], repeating: 9)
        ReLU.forward(x, into: y)
        ReLU.backward(Tensor(shape: [6], repeating: 1), output: y, into: dx)
        #expect(dx.array == [0, 0, 0, 0, 1, 1])
        // The fused residual join has the same rule where a + b is exactly 0.
        let a = Tensor(shape: [3], values: [1, -2, 3]), b = Tensor(shape: [3], values: [-1, 1, -4])
        let s = Tensor(zeros: [3]), ds = Tensor(shape: [3], repeating: 9)
        AddReLU.forward(a, b, into: s)
        AddReLU.backward(Tensor(shape: [3], repeating: 1), output: s, into: ds)
        #expect(s.array == [0, 0, 0] && ds.array == [0, 0, 0])
    }

    @Test func addAndAddReLUMatchNaive() {
        let a = awayFromZero(shape, seed: 5), b = awayFromZero(shape, seed: 6)
        let y = Tensor(zeros: shape), z = Tensor(zeros: shape)
        Add.forward(a, b, into: y)
        AddReLU.forward(a, b, into: z)
        for i in 0..<a.count {
            let s = a.data[i] + b.data[i]
            #expect(y.data[i] == s)
            #expect(z.data[i] == max(s, 0))
        }
        let dy = projectionWeights(like: a, seed: 7), da = Tensor(zeros: shape), db = Tensor(zeros: shape)
        Add.backward(dy, intoA: da, intoB: db)
        #expect(da.array == dy.array && db.array == dy.array)
    }

    @Test func addReLUBackwardMatchesFiniteDifferences() {
        // a + b kept away from 0 by building b = s − a with |s| ≥ 0.05.
        let a = awayFromZero(shape, seed: 8), s = awayFromZero(shape, seed: 9)
        let b = Tensor(zeros: shape)
        for i in 0..<a.count { b.data[i] = s.data[i] - a.data[i] }
        let g = projectionWeights(like: a, seed: 10)
        let y = Tensor(zeros: shape), dSum = Tensor(zeros: shape)
        let loss = { AddReLU.forward(a, b, into: y); return dot(g, y) }
        _ = loss()
        AddReLU.backward(g, output: y, into: dSum)
        // Step 1e-2 < half the 0.05 gap of a + b per operand step.
        let ra = checkGradient(a, analytic: dSum, indices: sampleIndices(a.count, 60, seed: 11), eps: 1e-2, loss: loss)
        let rb = checkGradient(b, analytic: dSum, indices: sampleIndices(b.count, 60, seed: 12), eps: 1e-2, loss: loss)
        #expect(ra.worstRelativeError < 1e-3, "\(ra)")
        #expect(rb.worstRelativeError < 1e-3, "\(rb)")
    }

    @Test func sigmoidMatchesNaiveAndFiniteDifferences() {
        var rng = SplitMix64(seed: 13)
        let x = Tensor(zeros: shape)
        x.fillUniform(-6, 6, rng: &rng)
        x.data[0] = -200
        x.data[1] = 200
        let y = Tensor(zeros: shape)
        Sigmoid.forward(x, into: y)
        for i in 0..<x.count {
            let expected = 1 / (1 + exp(-Double(x.data[i])))
            #expect(abs(Double(y.data[i]) - expected) < 1e-6)
        }
        x.data[0] = 0.5
        x.data[1] = -0.5
        let g = projectionWeights(like: x, seed: 14), dx = Tensor(zeros: shape)
        let loss = { Sigmoid.forward(x, into: y); return dot(g, y) }
        _ = loss()
        Sigmoid.backward(g, output: y, into: dx)
        // Smooth, |σ'''| ≤ 1/8: eps 1e-2 truncation ≈ 2e-6; float rounding of σ ≈ 1e-7 / 2e-2.
        let r = checkGradient(x, analytic: dx, indices: sampleIndices(x.count, 80, seed: 15), eps: 1e-2, loss: loss)
        #expect(r.worstRelativeError < 1e-2, "\(r)")
    }
}
