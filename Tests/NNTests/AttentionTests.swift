#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import NumericalTesting
import Testing
@testable import NN

/// Min-max normalisation (with amin/amax tie semantics and the 1e-5 floor) and T(A) against plain
/// loops and finite differences, and the whole attention chain up to the loss.
@Suite struct AttentionTests {
    /// [3, 1, 5, 7, 9]: each sample a random permutation of a grid with spacing 0.01 (so a
    /// finite-difference step below 0.005 never changes which voxel is the min or the max) plus a
    /// per-sample offset and scale.
    private func distinctInput(seed: UInt64) -> Tensor {
        var rng = SplitMix64(seed: seed)
        let x = Tensor(zeros: [3, 1, 5, 7, 9])
        let per = 315
        for n in 0..<3 {
            var grid = (0..<per).map { Float($0) * 0.01 }
            grid.shuffle(using: &rng)
            let offset = Float(n) - 1
            for i in 0..<per { x.data[n * per + i] = offset + grid[i] }
        }
        return x
    }

    @Test func minMaxForwardMatchesNaive() {
        let a = distinctInput(seed: 1)
        let y = Tensor(zeros: a.shape), extrema = Tensor(zeros: [3, 2])
        MinMaxNormalization.forward(a, into: y, extrema: extrema)
        for n in 0..<3 {
            let sample = Array(a.array[(n * 315)..<((n + 1) * 315)])
            let lo = Double(sample.min()!), hi = Double(sample.max()!)
            #expect(extrema[n, 0] == Float(lo) && extrema[n, 1] == Float(hi))
            for i in 0..<315 {
                let expected = (Double(sample[i]) - lo) / max(hi - lo, 1e-5)
                #expect(abs(Double(y.data[n * 315 + i]) - expected) < 1e-6)
            }
        }
    }

    @Test func minMaxBackwardMatchesFiniteDifferences() {
        let a = distinctInput(seed: 2)
        let g = projectionWeights(like: a, seed: 3)
        let y = Tensor(zeros: a.shape), extrema = Tensor(zeros: [3, 2]), da = Tensor(zeros: a.shape)
        let loss = { MinMaxNormalization.forward(a, into: y, extrema: extrema); return dot(g, y) }
        _ = loss()
        MinMaxNormalization.backward(g, input: a, extrema: extrema, into: da)
        // Always check the argmin and argmax of every sample: that is where min/max gradients land.
        var indices = sampleIndices(a.count, 40, seed: 4)
        for n in 0..<3 {
            let sample = a.array[(n * 315)..<((n + 1) * 315)]
            indices.append(sample.firstIndex(of: sample.min()!)!)
            indices.append(sample.firstIndex(of: sample.max()!)!)
        }
        // Smooth away from ties, step 2e-3 < half the 0.01 spacing; values O(1), range ≈ 3.
        let r = checkGradient(a, analytic: da, indices: indices, eps: 2e-3, loss: loss)
        #expect(r.worstRelativeError < 1e-2, "\(r)")
    }

    /// Ties: the min is attained 3 times and the max twice; each tied voxel gets an equal share, and
    /// the shares add up to the derivative along the direction that moves all tied voxels together
    /// (which keeps the tie). A constant sample (every voxel both min and max, range 0 < 1e-5) and a
    /// sample inside the 1e-5 floor are in the same batch.
    @Test func tiesShareMinAndMaxGradientsEvenly() {
        let values: [Float] = [0.2, 0.9, 0.2, 0.5, 0.9, 0.2, 0.3, 0.7]  // min ×3 at 0, 2, 5; max ×2 at 1, 4
            + [Float](repeating: 0.25, count: 8)                         // constant
            + (0..<8).map { Float($0) * 1e-6 }                           // range 7e-6 < 1e-5
        let a = Tensor(shape: [3, 1, 2, 2, 2], values: values)
        let g = Tensor(shape: a.shape, values: (0..<24).map { Float($0 % 7) * 0.3 - 0.8 })
        let y = Tensor(zeros: a.shape), extrema = Tensor(zeros: [3, 2]), da = Tensor(zeros: a.shape)
        MinMaxNormalization.forward(a, into: y, extrema: extrema)
        MinMaxNormalization.backward(g, input: a, extrema: extrema, into: da)

        // Sample 0 by hand: y = (a − lo)/(hi − lo), den = 0.7.
        let gs = (0..<8).map { Double(g.data[$0]) }, xs = values[0..<8].map(Double.init)
        let den = Double(Float(0.9) - Float(0.2))
        let sumG = gs.reduce(0, +)
        let sumGX = zip(gs, xs).map { $0 * ($1 - Double(Float(0.2))) }.reduce(0, +)
        let gLo = -sumG / den + sumGX / (den * den), gHi = -sumGX / (den * den)
        for i in 0..<8 {
            var expected = gs[i] / den
            if [0, 2, 5].contains(i) { expected += gLo / 3 }
            if [1, 4].contains(i) { expected += gHi / 2 }
            #expect(abs(Double(da.data[i]) - expected) < 1e-5, "voxel \(i)")
        }
        // Directional finite differences along "all min ties together" and "all max ties together".
        func directional(_ tied: [Int], eps: Float) -> Double {
            let saved = a.copy()
            func loss(_ step: Float) -> Double {
                a.assign(saved)
                for i in tied { a.data[i] += step }
                MinMaxNormalization.forward(a, into: y, extrema: extrema)
                return dot(g, y)
            }
            let d = (loss(eps) - loss(-eps)) / Double(2 * eps)
            a.assign(saved)
            return d
        }
        let minShares = [0, 2, 5].map { Double(da.data[$0]) }.reduce(0, +)
        let maxShares = [1, 4].map { Double(da.data[$0]) }.reduce(0, +)
        #expect(abs(directional([0, 2, 5], eps: 1e-3) - minShares) < 1e-3 * max(1, abs(minShares)))
        #expect(abs(directional([1, 4], eps: 1e-3) - maxShares) < 1e-3 * max(1, abs(maxShares)))

        // Constant sample: den is the constant 1e-5 and max gets nothing: da = g/den − Σg/(8 den).
        // Tiny-range sample: the same formula (min at voxel 16 only, max gets nothing).
        let floor = Double(Float(1e-5))
        for n in 1...2 {
            let gn = (0..<8).map { Double(g.data[n * 8 + $0]) }
            let sum = gn.reduce(0, +)
            for i in 0..<8 {
                let isMin = n == 1 || i == 0
                let expected = gn[i] / floor - (isMin ? sum / floor / Double(n == 1 ? 8 : 1) : 0)
                #expect(abs(Double(da.data[n * 8 + i]) - expected) < 1e-6 * max(1, abs(expected)), "sample \(n) voxel \(i)")
            }
        }
        // And finite differences inside the floor (step 1e-8 < half the 1e-6 spacing, values near 0).
        let loss = { MinMaxNormalization.forward(a, into: y, extrema: extrema); return dot(g, y) }
        let r = checkGradient(a, analytic: da, indices: Array(16..<24), eps: 1e-8, scale: 1, loss: loss)
        #expect(r.worstRelativeError < 1e-2, "\(r)")
    }

    @Test func thresholdMatchesNaiveAndFiniteDifferences() {
        var rng = SplitMix64(seed: 5)
        let a = Tensor(zeros: [2, 1, 5, 7, 9])
        a.fillUniform(0, 1, rng: &rng)
        let t = Tensor(zeros: a.shape)
        AttentionThreshold.forward(a, into: t)
        for i in 0..<a.count {
            let expected = 1 / (1 + exp(-100 * (Double(a.data[i]) - 0.4)))
            #expect(abs(Double(t.data[i]) - expected) < 1e-6)
        }
        let g = projectionWeights(like: a, seed: 6), da = Tensor(zeros: a.shape)
        AttentionThreshold.backward(g, output: t, into: da)
        let loss = { AttentionThreshold.forward(a, into: t); return dot(g, t) }
        // α = 100 makes σ steep: step 1e-4 (truncation ≈ α³ eps² / 6 ≈ 2e-3 relative at worst).
        let r = checkGradient(a, analytic: da, indices: sampleIndices(a.count, 80, seed: 7), eps: 1e-4, scale: 1, loss: loss)
        #expect(r.worstRelativeError < 2e-2, "\(r)")
    }

    /// The attention module after the 1×1×1 conv and ReLU, end to end: A `[N, 1, d, h, w]` →
    /// upsample → min-max → T → L_ex with labels [COVID, CAP, COVID]; the gradient of L_ex with
    /// respect to the low-resolution A by finite differences.
    @Test func attentionChainMatchesFiniteDifferences() {
        var rng = SplitMix64(seed: 8)
        let a = Tensor(zeros: [3, 1, 2, 3, 3])
        a.fillUniform(0, 1, rng: &rng)
        let mask = Tensor(zeros: [3, 1, 4, 5, 7])
        for i in 0..<mask.count { mask.data[i] = rng.uniform() < 0.3 ? 1 : 0 }
        let labels = Tensor(shape: [3], values: [1, 0, 1])
        let up = TrilinearUpsample(input: (2, 3, 3), output: (4, 5, 7))
        let big = Tensor(zeros: mask.shape), normed = Tensor(zeros: mask.shape), t = Tensor(zeros: mask.shape)
        let extrema = Tensor(zeros: [3, 2])
        let loss = {
            up.forward(a, into: big)
            MinMaxNormalization.forward(big, into: normed, extrema: extrema)
            AttentionThreshold.forward(normed, into: t)
            return AttentionLoss.localSums(attention: t, mask: mask, labels: labels).loss
        }
        _ = loss()
        let sums = AttentionLoss.localSums(attention: t, mask: mask, labels: labels)
        let dT = Tensor(zeros: t.shape), dN = Tensor(zeros: t.shape), dBig = Tensor(zeros: t.shape)
        let da = Tensor(zeros: a.shape)
        AttentionLoss.backward(attention: t, mask: mask, labels: labels, global: sums, into: dT)
        AttentionThreshold.backward(dT, output: t, into: dN)
        MinMaxNormalization.backward(dN, input: big, extrema: extrema, into: dBig)
        up.backward(dBig, into: da)
        // Steep T (α = 100) and a ratio loss: step 1e-4; CAP entries (sample 1) must be exactly 0.
        let r = checkGradient(a, analytic: da, eps: 1e-4, scale: 1e-2, loss: loss)
        #expect(r.worstRelativeError < 3e-2, "\(r)")
        for i in 18..<36 { #expect(da.data[i] == 0) }
    }
}
