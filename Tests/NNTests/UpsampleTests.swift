import NumericalTesting
import Testing
@testable import NN

/// Trilinear upsampling (align_corners = false) against hand-computed PyTorch weights, a naive
/// per-voxel reference, the adjoint identity and finite differences.
@Suite struct UpsampleTests {
    /// Hand-computed 1-D weights (i0, i1, λ1) of PyTorch's align_corners = false for n → m:
    /// s = max((i + 0.5)·n/m − 0.5, 0), i0 = ⌊s⌋ capped at n − 1, λ1 = s − i0 (same source at the end).
    private static let twoToFour: [(Int, Int, Double)] = [(0, 1, 0), (0, 1, 0.25), (0, 1, 0.75), (1, 1, 0.25)]
    /// 3 → 7: s = (3i − 2)/7 → −2/7→0, 1/7, 4/7, 1, 1 + 3/7, 1 + 6/7, 2 + 2/7 (last source).
    private static let threeToSeven: [(Int, Int, Double)] = [
        (0, 1, 0), (0, 1, 1.0 / 7), (0, 1, 4.0 / 7), (1, 2, 0), (1, 2, 3.0 / 7), (1, 2, 6.0 / 7), (2, 2, 2.0 / 7),
    ]
    /// 5 → 13: s = (5i − 4)/13 → −4/13→0, 1/13, 6/13, 11/13, 1 + 3/13, 1 + 8/13, 2, 2 + 5/13,
    /// 2 + 10/13, 3 + 2/13, 3 + 7/13, 3 + 12/13, 4 + 4/13 (last source).
    private static let fiveToThirteen: [(Int, Int, Double)] = [
        (0, 1, 0), (0, 1, 1.0 / 13), (0, 1, 6.0 / 13), (0, 1, 11.0 / 13), (1, 2, 3.0 / 13), (1, 2, 8.0 / 13),
        (2, 3, 0), (2, 3, 5.0 / 13), (2, 3, 10.0 / 13), (3, 4, 2.0 / 13), (3, 4, 7.0 / 13), (3, 4, 12.0 / 13),
        (4, 4, 4.0 / 13),
    ]

    @Test func twoToFourAlongOneAxisIsPyTorchsQuarterWeights() {
        let x = Tensor(shape: [1, 1, 1, 1, 2], values: [3, 7])
        let y = Tensor(zeros: [1, 1, 1, 1, 4])
        TrilinearUpsample(input: (1, 1, 2), output: (1, 1, 4)).forward(x, into: y)
        let expected: [Float] = [3, 0.75 * 3 + 0.25 * 7, 0.25 * 3 + 0.75 * 7, 7]  // 3, 4, 6, 7
        #expect(y.array == expected)
    }

    /// Hand tables along each axis combined as a tensor product: 3 → 7 (D), 5 → 13 (H), 2 → 4 (W),
    /// two samples and two channels.
    @Test func nonIntegerScalesMatchHandComputedWeights() {
        var rng = SplitMix64(seed: 1)
        let x = Tensor(zeros: [2, 2, 3, 5, 2])
        x.fillUniform(-1, 1, rng: &rng)
        let y = Tensor(zeros: [2, 2, 7, 13, 4])
        TrilinearUpsample(input: (3, 5, 2), output: (7, 13, 4)).forward(x, into: y)
        let (td, th, tw) = (Self.threeToSeven, Self.fiveToThirteen, Self.twoToFour)
        var worst: Double = 0
        for p in 0..<4 {
            for od in 0..<7 {
                for oh in 0..<13 {
                    for ow in 0..<4 {
                        var v: Double = 0
                        for (id, wd) in [(td[od].0, 1 - td[od].2), (td[od].1, td[od].2)] {
                            for (ih, wh) in [(th[oh].0, 1 - th[oh].2), (th[oh].1, th[oh].2)] {
                                for (iw, ww) in [(tw[ow].0, 1 - tw[ow].2), (tw[ow].1, tw[ow].2)] {
                                    v += wd * wh * ww * Double(x.data[((p * 3 + id) * 5 + ih) * 2 + iw])
                                }
                            }
                        }
                        worst = max(worst, abs(v - Double(y.data[((p * 7 + od) * 13 + oh) * 4 + ow])))
                    }
                }
            }
        }
        // |x| ≤ 1; the float scale n/m and weights round at 1e-7.
        #expect(worst < 1e-5)
    }

    /// The backward against the adjoint of the naive formula in Double (each output gradient
    /// scattered to its eight taps), on shapes whose border rows read one input row twice, and the
    /// same bits on 1, 2, 3 and 7 threads: its items are input rows, each gathering its terms in a
    /// fixed order.
    @Test(arguments: [((4, 8, 8), (16, 32, 32)), ((3, 4, 5), (7, 9, 13)), ((2, 3, 3), (9, 13, 7))])
    func backwardMatchesTheNaiveAdjointOnEveryThreadCount(input: (Int, Int, Int), output: (Int, Int, Int)) {
        var rng = SplitMix64(seed: 6)
        let g = Tensor(zeros: [1, 2, output.0, output.1, output.2])
        g.fillUniform(-1, 1, rng: &rng)
        func taps(_ i: Int, _ n: Int, _ m: Int) -> [(Int, Double)] {
            let src = max((Double(i) + 0.5) * Double(n) / Double(m) - 0.5, 0)
            let i0 = min(Int(src), n - 1), l = min(src - Double(i0), 1)
            return [(i0, 1 - l), (min(i0 + 1, n - 1), l)]
        }
        var expected = [Double](repeating: 0, count: 2 * input.0 * input.1 * input.2)
        for p in 0..<2 {
            for od in 0..<output.0 {
                for oh in 0..<output.1 {
                    for ow in 0..<output.2 {
                        let v = Double(g.data[((p * output.0 + od) * output.1 + oh) * output.2 + ow])
                        for (id, wd) in taps(od, input.0, output.0) {
                            for (ih, wh) in taps(oh, input.1, output.1) {
                                for (iw, ww) in taps(ow, input.2, output.2) {
                                    expected[((p * input.0 + id) * input.1 + ih) * input.2 + iw] += wd * wh * ww * v
                                }
                            }
                        }
                    }
                }
            }
        }
        var results: [[Float]] = []
        for threads in [1, 2, 3, 7] {
            let dx = Tensor(shape: [1, 2, input.0, input.1, input.2], repeating: 5)   // overwritten
            ThreadSettings.with(parallel: threads) {
                TrilinearUpsample(input: input, output: output).backward(g, into: dx)
            }
            // Up to 4·4·4 output voxels feed one input voxel per scale-4 step; |g| ≤ 1.
            let worst = zip(dx.array, expected).map { abs(Double($0) - $1) }.max() ?? 0
            #expect(worst < 1e-5, "\(input) → \(output), \(threads) threads: \(worst)")
            results.append(dx.array)
        }
        #expect(results.dropFirst().allSatisfy { $0 == results[0] }, "\(input) → \(output): the bits depend on the threads")
    }

    /// PyTorch's formula per output voxel in Double, eight explicit taps.
    private func naiveUpsample(_ x: Tensor, to out: (Int, Int, Int)) -> Tensor {
        let s = x.shape5
        let y = Tensor(zeros: [s.n, s.c, out.0, out.1, out.2])
        func taps(_ i: Int, _ n: Int, _ m: Int) -> (Int, Int, Double) {
            let src = max((Double(i) + 0.5) * Double(n) / Double(m) - 0.5, 0)
            let i0 = min(Int(src), n - 1)
            return (i0, min(i0 + 1, n - 1), min(src - Double(i0), 1))
        }
        for p in 0..<(s.n * s.c) {
            for od in 0..<out.0 {
                let (d0, d1, ld) = taps(od, s.d, out.0)
                for oh in 0..<out.1 {
                    let (h0, h1, lh) = taps(oh, s.h, out.1)
                    for ow in 0..<out.2 {
                        let (w0, w1, lw) = taps(ow, s.w, out.2)
                        func v(_ d: Int, _ h: Int, _ w: Int) -> Double {
                            Double(x.data[((p * s.d + d) * s.h + h) * s.w + w])
                        }
                        let value = (1 - ld) * ((1 - lh) * ((1 - lw) * v(d0, h0, w0) + lw * v(d0, h0, w1))
                                                + lh * ((1 - lw) * v(d0, h1, w0) + lw * v(d0, h1, w1)))
                            + ld * ((1 - lh) * ((1 - lw) * v(d1, h0, w0) + lw * v(d1, h0, w1))
                                    + lh * ((1 - lw) * v(d1, h1, w0) + lw * v(d1, h1, w1)))
                        y.data[((p * out.0 + od) * out.1 + oh) * out.2 + ow] = Float(value)
                    }
                }
            }
        }
        return y
    }

    @Test(arguments: [((3, 4, 5), (5, 7, 9)), ((2, 3, 3), (9, 13, 7)), ((5, 7, 9), (5, 7, 9))])
    func forwardMatchesNaive(input: (Int, Int, Int), output: (Int, Int, Int)) {
        var rng = SplitMix64(seed: 2)
        let x = Tensor(zeros: [2, 3, input.0, input.1, input.2])
        x.fillUniform(-1, 1, rng: &rng)
        let y = Tensor(zeros: [2, 3, output.0, output.1, output.2])
        TrilinearUpsample(input: input, output: output).forward(x, into: y)
        let expected = naiveUpsample(x, to: output)
        #expect(maxAbsDifference(y, expected) < 1e-5)
        if input == output { #expect(y.array == x.array) }
    }

    @Test func backwardIsTheAdjointAndMatchesFiniteDifferences() {
        var rng = SplitMix64(seed: 3)
        let x = Tensor(zeros: [2, 3, 3, 4, 5])
        x.fillUniform(-1, 1, rng: &rng)
        let up = TrilinearUpsample(input: (3, 4, 5), output: (7, 9, 13))
        let y = Tensor(zeros: [2, 3, 7, 9, 13])
        let g = projectionWeights(like: y, seed: 4)
        let dx = Tensor(shape: x.shape, repeating: 5)  // garbage: backward must overwrite
        up.backward(g, into: dx)
        // ⟨g, U x⟩ = ⟨Uᵀ g, x⟩ exactly in real arithmetic; float sums of ~10³ terms.
        up.forward(x, into: y)
        #expect(abs(dot(g, y) - dot(dx, x)) < 1e-4)
        let loss = { up.forward(x, into: y); return dot(g, y) }
        // Linear map: central differences are exact up to float rounding of the loss.
        let r = checkGradient(x, analytic: dx, indices: sampleIndices(x.count, 60, seed: 5), eps: 1e-2, loss: loss)
        #expect(r.worstRelativeError < 1e-3, "\(r)")
    }
}
