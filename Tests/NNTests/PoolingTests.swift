import NumericalTesting
import Testing
@testable import NN

// MaxPool3d and global average pooling against naive loops and finite differences.
//
// Tolerances: max-pool forward, indices and backward are exact (a max and a scatter of single
// values involve no rounding). Global average pooling: |Δ| ≤ 1e-5 against a double-precision
// reference. Finite differences: relative error ≤ 5e-3 with floor 1e-2 (1e-4 for the small
// gradients of average pooling), eps = 1e-2. For max-pool
// the inputs are a permutation of distinct values 0.05 apart (> 2·eps), so no step of ±eps moves an
// argmax across a kink.

private let gradientTolerance = 5e-3

/// A permutation of {0, 0.05, 0.1, …}: all values distinct and spaced 0.05 > 2·eps apart.
private func distinctTensor(_ shape: [Int], seed: UInt64) -> Tensor {
    let t = Tensor(zeros: shape)
    var rng = SplitMix64(seed: seed)
    var values = (0..<t.count).map { Float($0) * 0.05 }
    values.shuffle(using: &rng)
    for i in 0..<t.count { t.data[i] = values[i] }
    return t
}

/// The textbook max-pool: scan each window in (kd, kh, kw) order, keep the first strict maximum.
private func naiveMaxPool(_ x: [Float], _ s: Shape5, _ g: MaxPool3dGeometry) -> (y: [Float], at: [Int]) {
    let o = g.outputShape(for: s)
    var y = [Float](repeating: 0, count: o.count), at = [Int](repeating: -1, count: o.count)
    for n in 0..<s.n { for c in 0..<s.c { for od in 0..<o.d { for oh in 0..<o.h { for ow in 0..<o.w {
        var best = -Float.infinity, where_ = -1
        for kd in 0..<g.kernel.d { for kh in 0..<g.kernel.h { for kw in 0..<g.kernel.w {
            let id = od * g.stride.d - g.padding.d + kd
            let ih = oh * g.stride.h - g.padding.h + kh
            let iw = ow * g.stride.w - g.padding.w + kw
            if id < 0 || id >= s.d || ih < 0 || ih >= s.h || iw < 0 || iw >= s.w { continue }
            let plane = (id * s.h + ih) * s.w + iw
            let v = x[(n * s.c + c) * s.spatial + plane]
            if where_ < 0 || v > best { best = v; where_ = plane }
        }}}
        let oi = (((n * s.c + c) * o.d + od) * o.h + oh) * o.w + ow
        y[oi] = best; at[oi] = where_
    }}}}}
    return (y, at)
}

struct PoolCase: CustomStringConvertible, Sendable {
    var geometry: MaxPool3dGeometry
    var input: [Int]
    var description: String { "\(geometry) on \(input)" }
}

private let poolCases: [PoolCase] = [
    // The model's: kernel 3, stride 2, padding 1 (overlapping windows), odd non-cubic, batch 2.
    PoolCase(geometry: .init(kernel: 3, stride: 2, padding: 1), input: [2, 3, 5, 7, 9]),
    // Non-overlapping windows with a ragged edge.
    PoolCase(geometry: .init(kernel: 2, stride: 2, padding: 0), input: [1, 2, 5, 7, 9]),
    // Anisotropic, stride 1 (each voxel in many windows).
    PoolCase(geometry: .init(kernel: Size3(3, 2, 1), stride: Size3(1, 2, 1), padding: Size3(1, 1, 0)),
             input: [2, 2, 4, 6, 5]),
]

@Suite struct PoolingTests {
    @Test(arguments: poolCases)
    func maxPoolForwardMatchesNaive(_ c: PoolCase) {
        let x = distinctTensor(c.input, seed: 3)
        let o = c.geometry.outputShape(for: x.shape5)
        let y = Tensor(zeros: o.dims), at = IndexTensor(zeros: o.dims)
        maxPool3dForward(y: y, indices: at, x: x, geometry: c.geometry)
        let ref = naiveMaxPool(x.array, x.shape5, c.geometry)
        #expect(y.array == ref.y)
        #expect(at.array.map(Int.init) == ref.at)
    }

    @Test(arguments: poolCases)
    func maxPoolBackwardMatchesNaiveAndFiniteDifferences(_ c: PoolCase) {
        let x = distinctTensor(c.input, seed: 4)
        let s = x.shape5, o = c.geometry.outputShape(for: s)
        let y = Tensor(zeros: o.dims), at = IndexTensor(zeros: o.dims)
        let g = projectionWeights(like: y, seed: 5)
        maxPool3dForward(y: y, indices: at, x: x, geometry: c.geometry)
        let dX = Tensor(shape: x.shape, repeating: 3)              // must be overwritten
        maxPool3dBackward(dX: dX, dY: g, indices: at)

        // Naive backward: scatter-add each output gradient to its window's maximum.
        let ref = naiveMaxPool(x.array, s, c.geometry)
        var dxRef = [Float](repeating: 0, count: x.count)
        for oi in 0..<o.count { dxRef[(oi / o.spatial) * s.spatial + ref.at[oi]] += g.data[oi] }
        #expect(dX.array == dxRef)

        let r = checkGradient(x, analytic: dX, eps: 1e-2, scale: 1e-2) {
            maxPool3dForward(y: y, indices: at, x: x, geometry: c.geometry)
            return dot(g, y)
        }
        #expect(r.worstRelativeError <= gradientTolerance, "\(c): \(r)")
    }

    /// ReLU → max pool, backward without the ReLU's output (the model's stem, whose output the
    /// gradient overwrites): gating dY by the pool's output gives the bits of the pool backward
    /// followed by the ReLU backward, for values at zero (whole windows of them, ties among them),
    /// negative gradients (−0 where the ReLU blocks) and NaN.
    @Test(arguments: poolCases)
    func maxPoolBackwardThroughReLUEqualsTheTwoBackwards(_ c: PoolCase) {
        // About half negative, and the first sample's first channel wholly negative (windows
        // that are all zero after the ReLU), with a NaN in the second sample.
        let pre = distinctTensor(c.input, seed: 6)
        for i in 0..<pre.count { pre.data[i] -= Float(pre.count) * 0.05 / 2 }
        let plane = pre.shape5.spatial
        for i in 0..<plane { pre.data[i] = -1 - abs(pre.data[i]) }
        pre.data[pre.count - 1] = .nan
        let x = Tensor(zeros: pre.shape)
        ReLU.forward(pre, into: x)
        let o = c.geometry.outputShape(for: x.shape5)
        let y = Tensor(zeros: o.dims), at = IndexTensor(zeros: o.dims)
        maxPool3dForward(y: y, indices: at, x: x, geometry: c.geometry)
        let dY = projectionWeights(like: y, seed: 7)
        for i in stride(from: 0, to: dY.count, by: 3) { dY.data[i] = -abs(dY.data[i]) }
        #expect(y.array.contains(0) && y.array.contains { $0 > 0 })

        let twoPasses = Tensor(zeros: x.shape)
        maxPool3dBackward(dX: twoPasses, dY: dY, indices: at)
        ReLU.backward(twoPasses, output: x, into: twoPasses)
        let gated = Tensor(shape: x.shape, repeating: 3)             // must be overwritten
        maxPool3dBackward(dX: gated, dY: dY, indices: at, passingWhere: y)
        #expect(gated.array.map(\.bitPattern) == twoPasses.array.map(\.bitPattern))
        // The gate did block something that the plain backward passes.
        let plain = Tensor(zeros: x.shape)
        maxPool3dBackward(dX: plain, dY: dY, indices: at)
        #expect(zip(plain.array, gated.array).contains { $0 != 0 && $1 == 0 })
    }

    /// Ties: the first maximum in (kd, kh, kw) scan order wins, as in PyTorch, and only it gets
    /// the gradient.
    @Test func maxPoolTiesGoToFirstMaximum() {
        // A constant volume: every window is one big tie.
        let g = MaxPool3dGeometry(kernel: 3, stride: 2, padding: 1)
        let x = Tensor(shape: [1, 1, 3, 4, 5], repeating: 2)
        let o = g.outputShape(for: x.shape5)
        let y = Tensor(zeros: o.dims), at = IndexTensor(zeros: o.dims)
        maxPool3dForward(y: y, indices: at, x: x, geometry: g)
        for od in 0..<o.d { for oh in 0..<o.h { for ow in 0..<o.w {
            // The window's first in-volume voxel: its start, clamped at the padding.
            let first = (max(0, 2 * od - 1) * 4 + max(0, 2 * oh - 1)) * 5 + max(0, 2 * ow - 1)
            #expect(at[[0, 0, od, oh, ow]] == Int32(first))
            #expect(y[0, 0, od, oh, ow] == 2)
        }}}

        // Two equal maxima in one window: the earlier one takes the whole gradient.
        let two = Tensor(zeros: [1, 1, 1, 1, 4])
        two.data[1] = 5; two.data[3] = 5
        let pool = MaxPool3dGeometry(kernel: Size3(1, 1, 4), stride: Size3(1), padding: Size3(0))
        let y2 = Tensor(zeros: [1, 1, 1, 1, 1]), at2 = IndexTensor(zeros: [1, 1, 1, 1, 1])
        maxPool3dForward(y: y2, indices: at2, x: two, geometry: pool)
        #expect(at2.data[0] == 1)
        let dX = Tensor(zeros: two.shape)
        maxPool3dBackward(dX: dX, dY: Tensor(shape: [1, 1, 1, 1, 1], values: [1]), indices: at2)
        #expect(dX.array == [0, 1, 0, 0])
    }

    @Test func globalAveragePoolMatchesNaiveAndFiniteDifferences() {
        var rng = SplitMix64(seed: 7)
        let x = Tensor(zeros: [2, 3, 5, 7, 9])
        x.fillUniform(-1, 1, rng: &rng)
        let s = x.shape5
        let y = Tensor(zeros: [2, 3])
        globalAveragePoolForward(y: y, x: x)
        for i in 0..<(s.n * s.c) {
            var sum: Double = 0
            for j in 0..<s.spatial { sum += Double(x.data[i * s.spatial + j]) }
            #expect(abs(Double(y.data[i]) - sum / Double(s.spatial)) <= 1e-5)
        }

        let g = projectionWeights(like: y, seed: 8)
        let dX = Tensor(shape: x.shape, repeating: 3)              // must be overwritten
        globalAveragePoolBackward(dX: dX, dY: g)
        for i in 0..<x.count {
            #expect(abs(dX.data[i] - g.data[i / s.spatial] / Float(s.spatial)) <= 1e-7)
        }
        // Floor 1e-4: every entry of dX is g/315 ≈ 3e-3, and must be compared relatively.
        let r = checkGradient(x, analytic: dX, indices: sampleIndices(x.count, 40, seed: 9),
                              eps: 1e-2, scale: 1e-4) {
            globalAveragePoolForward(y: y, x: x)
            return dot(g, y)
        }
        #expect(r.worstRelativeError <= gradientTolerance, "\(r)")
    }
}

private extension IndexTensor {
    subscript(_ index: [Int]) -> Int32 {
        var o = 0
        for (x, n) in zip(index, shape) { o = o * n + x }
        return data[o]
    }
}
