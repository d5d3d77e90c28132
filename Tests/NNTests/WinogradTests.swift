import NumericalTesting
import Testing
@testable import NN

// Winograd F(2×2×2, 3×3×3) (Winograd.swift) against the six-loop reference of ConvolutionTests and
// against the direct vol2col + GEMM path, for the forward, dX and dW; central finite differences of
// L = Σ g·conv(x, w) through the Winograd forward; and the 1-D F(2, 3) identities the kernels are
// built from.
//
// Tolerance: |Δ| ≤ 2e-5 · max |reference| (max |reference| ≥ 1 in every case here). Winograd
// rounds differently from the direct sum: each value goes through three 1-D transforms before and
// after the products (the rows of Bᵀ, G and Aᵀ have 1-norms 2, 1.5 and 3, so intermediate values
// grow by up to (2·1.5·3)³ ≈ 730 over single terms, while their sum stays of the size of the
// result). Measured on these cases (max |Δ| / max |reference| against the naive float
// loops): forward ≤ 9.2e-7, dX ≤ 4.3e-7, dW ≤ 1.1e-6. The bound leaves a ≥ 18× margin; a wrong
// coefficient or sign in any transform gives errors of order 1.
//
// Finite differences use eps = 0.25: the loss is linear in x and in w, so central differences
// have no truncation error at any step, and a large step keeps the float rounding of the forward
// (~1e-5 absolute on Σ g·y over 5 000 outputs) small next to the difference. With eps = 1e-2 that
// rounding alone gave relative errors of 1.6e-2 on small weight gradients.

private let relativeTolerance: Float = 2e-5
private let gradientTolerance = 5e-3

/// max |fast − reference| / max |reference|.
private func relativeError(_ fast: Tensor, _ reference: [Float]) -> Float {
    let scale = max(reference.map(abs).max() ?? 0, .leastNormalMagnitude)
    var worst: Float = 0
    for i in 0..<reference.count { worst = max(worst, abs(fast.data[i] - reference[i])) }
    return worst / scale
}

struct WinogradCase: CustomStringConvertible, Sendable {
    var cin, cout: Int
    var input: [Int]
    /// Bytes of V and M per block; 1 forces the smallest blocks (32 tiles), cut mid-row and across samples.
    var blockBytes: Int = WinogradConv.blockBytes
    var geometry: Conv3dGeometry { Conv3dGeometry(inChannels: cin, outChannels: cout, kernel: 3, stride: 1, padding: 1) }
    var description: String {
        "\(cin)→\(cout) on \(input)" + (blockBytes == WinogradConv.blockBytes ? "" : ", blocks of 32 tiles")
    }
}

private let winogradCases: [WinogradCase] = [
    // Odd extents in all three axes (partial edge tiles), batch 2, channel counts not multiples of 8.
    WinogradCase(cin: 3, cout: 5, input: [2, 3, 5, 7, 9]),
    // The same with 32-tile blocks: blocks end mid tile-row and span the two samples.
    WinogradCase(cin: 3, cout: 5, input: [2, 3, 5, 7, 9], blockBytes: 1),
    // 10 tiles along w (an 8-wide chunk and a partial one), 9/11 channels (SIMD remainders).
    WinogradCase(cin: 9, cout: 11, input: [2, 9, 3, 4, 19]),
    WinogradCase(cin: 9, cout: 11, input: [2, 9, 3, 4, 19], blockBytes: 1),
    // Even extents, more input than output channels, 17 input channels (2 chunks of 8 + 1).
    WinogradCase(cin: 17, cout: 6, input: [1, 17, 4, 6, 8]),
    // A single voxel: one tile, 7 of its 8 outputs outside the volume.
    WinogradCase(cin: 2, cout: 3, input: [1, 2, 1, 1, 1]),
    // Thin volumes: 1 and 2 voxels along an axis.
    WinogradCase(cin: 4, cout: 4, input: [2, 4, 2, 1, 3]),
]

private struct WinogradFixture {
    let c: WinogradCase
    let x, w, g: Tensor
    let workspace = ConvWorkspace(bytes: 1 << 20)

    init(_ c: WinogradCase, seed: UInt64) {
        self.c = c
        x = uniformTensor(c.input, seed: seed)
        w = uniformTensor(c.geometry.weightShape, seed: seed + 1, -0.5, 0.5)
        g = projectionWeights(like: Tensor(zeros: c.geometry.outputShape(for: Shape5(c.input)).dims), seed: seed + 2)
    }

    var outputShape: [Int] { c.geometry.outputShape(for: Shape5(c.input)).dims }

    func forward() -> Tensor {
        let y = Tensor(shape: outputShape, repeating: .nan)   // must be overwritten everywhere
        winogradForward(y: y, x: x, weight: w, geometry: c.geometry, buffers: workspace.winograd, blockBytes: c.blockBytes)
        return y
    }

    /// dX (written over 7s) and dWeight (accumulated onto 0.25) for dY = g.
    func backward() -> (dX: Tensor, dW: Tensor) {
        let dX = Tensor(shape: x.shape, repeating: 7), dW = Tensor(shape: w.shape, repeating: 0.25)
        winogradBackward(dX: dX, dWeight: dW, dY: g, x: x, weight: w, geometry: c.geometry,
                         buffers: workspace.winograd, blockBytes: c.blockBytes)
        return (dX, dW)
    }
}

@Suite struct WinogradTests {
    @Test(arguments: winogradCases)
    func forwardMatchesNaiveAndDirect(_ c: WinogradCase) {
        let f = WinogradFixture(c, seed: 101)
        let y = f.forward()
        let reference = naiveConvForward(f.x.array, Shape5(c.input), f.w.array, c.geometry)
        let error = relativeError(y, reference)
        #expect(error <= relativeTolerance, "forward \(c): relative error \(error)")
        let direct = Tensor(zeros: f.outputShape)
        directConv3dForward(y: direct, x: f.x, weight: f.w, geometry: c.geometry, workspace: f.workspace)
        #expect(relativeError(y, direct.array) <= relativeTolerance, "forward \(c) vs direct")
    }

    @Test(arguments: winogradCases)
    func backwardMatchesNaiveAndDirect(_ c: WinogradCase) {
        let f = WinogradFixture(c, seed: 201)
        let (dX, dW) = f.backward()
        let reference = naiveConvBackward(f.x.array, Shape5(c.input), f.w.array, f.g.array, c.geometry)
        let ex = relativeError(dX, reference.dx), ew = relativeError(dW, reference.dw.map { $0 + 0.25 })
        #expect(ex <= relativeTolerance, "dX \(c): relative error \(ex)")
        #expect(ew <= relativeTolerance, "dWeight \(c): relative error \(ew)")
        let directX = Tensor(zeros: f.x.shape), directW = Tensor(shape: f.w.shape, repeating: 0.25)
        directConv3dBackward(dX: directX, dWeight: directW, dY: f.g, x: f.x, weight: f.w, geometry: c.geometry,
                             workspace: f.workspace)
        #expect(relativeError(dX, directX.array) <= relativeTolerance, "dX \(c) vs direct")
        #expect(relativeError(dW, directW.array) <= relativeTolerance, "dWeight \(c) vs direct")
    }

    @Test(arguments: [winogradCases[1], winogradCases[3], winogradCases[6]])
    func backwardMatchesFiniteDifferences(_ c: WinogradCase) {
        let f = WinogradFixture(c, seed: 301)
        let (dX, dW0) = f.backward()
        let dW = Tensor(zeros: f.w.shape)
        for i in 0..<dW.count { dW.data[i] = dW0.data[i] - 0.25 }
        let loss = { dot(f.g, f.forward()) }
        let rx = checkGradient(f.x, analytic: dX, indices: sampleIndices(f.x.count, 40, seed: 1),
                               eps: 0.25, scale: 1e-2, loss: loss)
        #expect(rx.worstRelativeError <= gradientTolerance, "dX \(c): \(rx)")
        let rw = checkGradient(f.w, analytic: dW, indices: sampleIndices(f.w.count, 40, seed: 2),
                               eps: 0.25, scale: 1e-2, loss: loss)
        #expect(rw.worstRelativeError <= gradientTolerance, "dWeight \(c): \(rw)")
    }

    @Test func gradientsCanBeSkipped() {
        let f = WinogradFixture(winogradCases[0], seed: 401)
        let both = f.backward()
        let dX = Tensor(zeros: f.x.shape), dW = Tensor(shape: f.w.shape, repeating: 0.25)
        winogradBackward(dX: dX, dWeight: nil, dY: f.g, x: f.x, weight: f.w, geometry: f.c.geometry, buffers: f.workspace.winograd)
        winogradBackward(dX: nil, dWeight: dW, dY: f.g, x: f.x, weight: f.w, geometry: f.c.geometry, buffers: f.workspace.winograd)
        #expect(dX.array == both.dX.array)
        #expect(dW.array == both.dW.array)
    }

    /// Blocks are cut independently of the worker count and every value is computed by one worker
    /// in a fixed order, so 1 and 2 threads give the same bits.
    @Test func threadCountDoesNotChangeBits() {
        let f = WinogradFixture(WinogradCase(cin: 9, cout: 11, input: [2, 9, 5, 6, 19], blockBytes: 1), seed: 501)
        func run(threads: Int) -> [[Float]] {
            return ThreadSettings.with(parallel: threads) {
                let (dX, dW) = f.backward()
                return [f.forward().array, dX.array, dW.array]
            }
        }
        let one = run(threads: 1)
        #expect(one == run(threads: 2))
        #expect(one == run(threads: 3))
    }

    /// The rows of V and M are the tiles rounded up to 16 (a cache line), with a line more only
    /// where that is a multiple of 1 KiB; any padding (`winograd-row-padding`) gives the same
    /// bits, on the fused weight gradient's one-block path and on several blocks.
    @Test func rowStrideFollowsItsRuleAndKeepsTheBits() {
        #expect([1, 8, 9, 32, 33, 128, 255, 256, 512, 513].map { WinogradConv.rowStride(tiles: $0) }
                == [16, 16, 16, 32, 48, 128, 272, 272, 528, 528])
        #expect(ConvTuning.with(.winogradRowPadding, 8) { WinogradConv.rowStride(tiles: 32) } == 40)
        for (input, blockBytes) in [([1, 6, 8, 8, 8], 1 << 30), ([2, 6, 5, 6, 19], 1)] {
            let f = WinogradFixture(WinogradCase(cin: 6, cout: 7, input: input, blockBytes: blockBytes), seed: 521)
            func run(padding: Int) -> [[Float]] {
                ConvTuning.with(.winogradRowPadding, padding) {
                    let (dX, dW) = f.backward()
                    return [f.forward().array, dX.array, dW.array]
                }
            }
            let rule = run(padding: 0)
            for padding in [8, 3] {
                let same = rule == run(padding: padding)
                #expect(same, "\(input), padding \(padding): forward, dX or dW differs from the rule's")
            }
        }
    }

    /// On many threads the multi-block convs' packed weights are cut into (panel, run of columns)
    /// items (33 and 40 columns in runs of 8 on 16 threads): the same bits as whole panels on one.
    /// Each run has a workspace of its own, so a column no item wrote cannot keep another run's value.
    @Test func weightsCutIntoColumnRunsKeepTheBits() {
        func run(threads: Int) -> [[Float]] {
            let f = WinogradFixture(WinogradCase(cin: 33, cout: 40, input: [1, 33, 6, 8, 10], blockBytes: 1), seed: 511)
            return ThreadSettings.with(parallel: threads) {
                let (dX, dW) = f.backward()
                return [f.forward().array, dX.array, dW.array]
            }
        }
        let one = run(threads: 1)
        for threads in [16, 5] {
            let same = one == run(threads: threads)   // a Bool, so that a failure does not print the arrays
            #expect(same, "forward, dX or dW on \(threads) threads differs from 1 thread")
        }
    }

    /// The public entry points follow `ConvAlgorithm.selected` for 3³ stride-1 padding-1 convs only.
    @Test func dispatch() {
        #expect(WinogradConv.applies(to: Conv3dGeometry(inChannels: 4, outChannels: 4, kernel: 3, stride: 1, padding: 1)))
        #expect(!WinogradConv.applies(to: Conv3dGeometry(inChannels: 4, outChannels: 4, kernel: 3, stride: 2, padding: 1)))
        #expect(!WinogradConv.applies(to: Conv3dGeometry(inChannels: 4, outChannels: 4, kernel: 3, stride: 1, padding: 0)))
        #expect(!WinogradConv.applies(to: Conv3dGeometry(inChannels: 4, outChannels: 4, kernel: 1, stride: 1, padding: 0)))
        #expect(ConvAlgorithm(rawValue: "direct") == .direct && ConvAlgorithm(rawValue: "winograd") == .winograd)
    }

    /// The 1-D identities: Aᵀ[(G g) ⊙ (Bᵀ d)] is the valid correlation of d (4) with g (3), and A, Gᵀ
    /// are the adjoints of Aᵀ, G. A wrong coefficient or sign in any of them fails here (and in
    /// every conv test above).
    @Test func oneDimensionalIdentities() {
        var rng = SplitMix64(seed: 7)
        func maxAbs(_ v: V8) -> Float { (0..<8).map { abs(v[$0]) }.max()! }
        func random() -> V8 { V8((0..<8).map { _ in Float.random(in: -1...1, using: &rng) }) }
        let d = (random(), random(), random(), random()), g = (random(), random(), random())
        let v = F23.bt(d.0, d.1, d.2, d.3), u = F23.g(g.0, g.1, g.2)
        let y = F23.at(u.0 * v.0, u.1 * v.1, u.2 * v.2, u.3 * v.3)
        let y0 = d.0 * g.0 + d.1 * g.1 + d.2 * g.2, y1 = d.1 * g.0 + d.2 * g.1 + d.3 * g.2
        #expect(max(maxAbs(y.0 - y0), maxAbs(y.1 - y1)) <= 1e-6)
        // ⟨Aᵀ m, e⟩ = ⟨m, A e⟩ and ⟨G g, m⟩ = ⟨g, Gᵀ m⟩, lane by lane.
        let m = (random(), random(), random(), random()), e = (random(), random())
        let am = F23.at(m.0, m.1, m.2, m.3), ae = F23.a(e.0, e.1)
        let lhs = am.0 * e.0 + am.1 * e.1, rhs = m.0 * ae.0 + m.1 * ae.1 + m.2 * ae.2 + m.3 * ae.3
        #expect(maxAbs(lhs - rhs) <= 1e-6)
        let gm = F23.gT(m.0, m.1, m.2, m.3)
        let lhs2 = u.0 * m.0 + u.1 * m.1 + u.2 * m.2 + u.3 * m.3, rhs2 = g.0 * gm.0 + g.1 * gm.1 + g.2 * gm.2
        #expect(maxAbs(lhs2 - rhs2) <= 1e-6)
    }
}
