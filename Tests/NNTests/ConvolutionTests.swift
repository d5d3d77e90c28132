import NumericalTesting
import Testing
@testable import NN

// Conv3d: the tiled vol2col + GEMM kernels against a six-loop reference, the backward against the
// reference's backward and against central finite differences of L = Σ g·conv(x, w).
//
// Tolerances (float32 throughout):
// - fast vs naive forward and backward: |Δ| ≤ 1e-4 · (1 + max |reference|) — different summation
//   orders of ≤ 400 terms of size ≤ 1;
// - finite differences: relative error ≤ 5e-3 with floor 1e-2 (eps = 0.25; the conv is linear in x
//   and in w, so central differences have no truncation error at any step and the only error is
//   the rounding of the float forward, which a large step shrinks relative to the difference. With
//   eps = 1e-2 the Winograd forward's rounding gave 5.3e-3 on a small weight gradient);
// - thread counts 1 and 2 of dsan's loops, and tile widths: bitwise equal / ≤ 1e-5 respectively.

private let forwardTolerance: Float = 1e-4
private let gradientTolerance = 5e-3

/// The textbook definition: six loops over output and window, on plain arrays (also the reference
/// of WinogradTests).
func naiveConvForward(_ x: [Float], _ s: Shape5, _ w: [Float], _ g: Conv3dGeometry) -> [Float] {
    let o = g.outputShape(for: s)
    let (k, st, p) = (g.kernel, g.stride, g.padding)
    var y = [Float](repeating: 0, count: o.count)
    for n in 0..<s.n { for co in 0..<o.c { for od in 0..<o.d { for oh in 0..<o.h { for ow in 0..<o.w {
        var acc: Float = 0
        for ci in 0..<s.c { for kd in 0..<k.d { for kh in 0..<k.h { for kw in 0..<k.w {
            let id = od * st.d - p.d + kd, ih = oh * st.h - p.h + kh, iw = ow * st.w - p.w + kw
            if id < 0 || id >= s.d || ih < 0 || ih >= s.h || iw < 0 || iw >= s.w { continue }
            let xv = x[(((n * s.c + ci) * s.d + id) * s.h + ih) * s.w + iw]
            let wv = w[(((co * s.c + ci) * k.d + kd) * k.h + kh) * k.w + kw]
            acc += xv * wv
        }}}}
        y[(((n * o.c + co) * o.d + od) * o.h + oh) * o.w + ow] = acc
    }}}}}
    return y
}

/// The same loops run backwards: dX and dW of L = Σ dY·y.
func naiveConvBackward(_ x: [Float], _ s: Shape5, _ w: [Float], _ dy: [Float],
                               _ g: Conv3dGeometry) -> (dx: [Float], dw: [Float]) {
    let o = g.outputShape(for: s)
    let (k, st, p) = (g.kernel, g.stride, g.padding)
    var dx = [Float](repeating: 0, count: x.count), dw = [Float](repeating: 0, count: w.count)
    for n in 0..<s.n { for co in 0..<o.c { for od in 0..<o.d { for oh in 0..<o.h { for ow in 0..<o.w {
        let gy = dy[(((n * o.c + co) * o.d + od) * o.h + oh) * o.w + ow]
        for ci in 0..<s.c { for kd in 0..<k.d { for kh in 0..<k.h { for kw in 0..<k.w {
            let id = od * st.d - p.d + kd, ih = oh * st.h - p.h + kh, iw = ow * st.w - p.w + kw
            if id < 0 || id >= s.d || ih < 0 || ih >= s.h || iw < 0 || iw >= s.w { continue }
            let xi = (((n * s.c + ci) * s.d + id) * s.h + ih) * s.w + iw
            let wi = (((co * s.c + ci) * k.d + kd) * k.h + kh) * k.w + kw
            dx[xi] += gy * w[wi]
            dw[wi] += gy * x[xi]
        }}}}
    }}}}}
    return (dx, dw)
}

private func expectClose(_ fast: Tensor, _ reference: [Float], _ what: String) {
    let scale = reference.map(abs).max() ?? 0
    var worst: Float = 0
    for i in 0..<reference.count { worst = max(worst, abs(fast.data[i] - reference[i])) }
    #expect(worst <= forwardTolerance * (1 + scale), "\(what): max |Δ| \(worst), reference scale \(scale)")
}

/// The cases the model needs (and a few it does not, to keep the kernel honest).
struct ConvCase: CustomStringConvertible, Sendable {
    var geometry: Conv3dGeometry
    var input: [Int]
    var maxTile: Int = .max
    var maxChannels: Int = .max
    var description: String {
        "\(geometry) on \(input)" + (maxTile == .max ? "" : " tile \(maxTile)")
            + (maxChannels == .max ? "" : " channel blocks of ≤ \(maxChannels)")
    }
}

private let convCases: [ConvCase] = [
    // 3³ s1 p1, odd non-cubic volume, batch 2, several channels.
    ConvCase(geometry: .init(inChannels: 3, outChannels: 4, kernel: 3, stride: 1, padding: 1), input: [2, 3, 5, 7, 9]),
    // 3³ s2 p1 (first conv of layers 2–4).
    ConvCase(geometry: .init(inChannels: 2, outChannels: 3, kernel: 3, stride: 2, padding: 1), input: [2, 2, 5, 7, 9]),
    // The stem: 7³ s2 p3 with one input channel.
    ConvCase(geometry: .init(inChannels: 1, outChannels: 4, kernel: 7, stride: 2, padding: 3), input: [2, 1, 7, 9, 11]),
    // 1³ s1: the direct GEMM path.
    ConvCase(geometry: .init(inChannels: 5, outChannels: 3, kernel: 1, stride: 1, padding: 0), input: [2, 5, 5, 7, 9]),
    // 1³ s2: the strided gather (downsample shortcut).
    ConvCase(geometry: .init(inChannels: 4, outChannels: 3, kernel: 1, stride: 2, padding: 0), input: [2, 4, 5, 7, 9]),
    // Anisotropic kernel, stride and padding.
    ConvCase(geometry: .init(inChannels: 2, outChannels: 3, kernel: Size3(3, 2, 1), stride: Size3(1, 2, 3),
                             padding: Size3(1, 0, 0)), input: [1, 2, 5, 7, 9]),
    // Tiles smaller than an output row and not dividing it: many tiles, partial rows.
    ConvCase(geometry: .init(inChannels: 3, outChannels: 4, kernel: 3, stride: 1, padding: 1), input: [2, 3, 5, 7, 9], maxTile: 5),
    ConvCase(geometry: .init(inChannels: 2, outChannels: 3, kernel: 3, stride: 2, padding: 1), input: [2, 2, 5, 7, 9], maxTile: 7),
    ConvCase(geometry: .init(inChannels: 1, outChannels: 2, kernel: 7, stride: 2, padding: 3), input: [1, 1, 7, 9, 11], maxTile: 11),
    ConvCase(geometry: .init(inChannels: 4, outChannels: 3, kernel: 1, stride: 2, padding: 0), input: [2, 4, 5, 7, 9], maxTile: 3),
    // Blocks of input channels (rows of the column matrix), alone and with column tiles.
    ConvCase(geometry: .init(inChannels: 3, outChannels: 4, kernel: 3, stride: 1, padding: 1), input: [2, 3, 5, 7, 9], maxChannels: 2),
    ConvCase(geometry: .init(inChannels: 5, outChannels: 2, kernel: 3, stride: 2, padding: 1), input: [1, 5, 5, 7, 9], maxTile: 6, maxChannels: 1),
    ConvCase(geometry: .init(inChannels: 4, outChannels: 3, kernel: 1, stride: 2, padding: 0), input: [2, 4, 5, 7, 9], maxTile: 8, maxChannels: 3),
    // Rows of 20 and 21 columns: the 8-wide SIMD copies with remainders, strides 1 and 2.
    ConvCase(geometry: .init(inChannels: 2, outChannels: 3, kernel: 3, stride: 1, padding: 1), input: [1, 2, 3, 4, 20]),
    ConvCase(geometry: .init(inChannels: 2, outChannels: 3, kernel: 3, stride: 2, padding: 1), input: [1, 2, 3, 4, 41]),
]

private struct ConvFixture {
    let c: ConvCase
    let x, w, y, g: Tensor
    let workspace: ConvWorkspace

    init(_ c: ConvCase, seed: UInt64) {
        self.c = c
        x = uniformTensor(c.input, seed: seed)
        w = uniformTensor(c.geometry.weightShape, seed: seed + 1, -0.5, 0.5)
        y = Tensor(zeros: c.geometry.outputShape(for: Shape5(c.input)).dims)
        g = projectionWeights(like: y, seed: seed + 2)
        workspace = ConvWorkspace(bytes: 1 << 20)
        workspace.maxTileColumns = c.maxTile
        workspace.maxTileChannels = c.maxChannels
    }

    func forward() { conv3dForward(y: y, x: x, weight: w, geometry: c.geometry, workspace: workspace) }
    func loss() -> Double { forward(); return dot(g, y) }
}

/// The conv's output by the textbook loops in float64 (the oracle of the packed-GEMM tests).
private func float64ConvForward(_ x: Tensor, _ w: Tensor, _ geometry: Conv3dGeometry) -> [Double] {
    let s = x.shape5, o = geometry.outputShape(for: s)
    let (xa, wa) = (x.array, w.array)
    var reference = [Double](repeating: 0, count: o.count)
    let (k, st, p) = (geometry.kernel, geometry.stride, geometry.padding)
    for n in 0..<s.n { for co in 0..<o.c { for od in 0..<o.d { for oh in 0..<o.h { for ow in 0..<o.w {
        var acc = 0.0
        for ci in 0..<s.c { for kd in 0..<k.d { for kh in 0..<k.h { for kw in 0..<k.w {
            let id = od * st.d - p.d + kd, ih = oh * st.h - p.h + kh, iw = ow * st.w - p.w + kw
            if id < 0 || id >= s.d || ih < 0 || ih >= s.h || iw < 0 || iw >= s.w { continue }
            acc += Double(xa[(((n * s.c + ci) * s.d + id) * s.h + ih) * s.w + iw])
                * Double(wa[(((co * s.c + ci) * k.d + kd) * k.h + kh) * k.w + kw])
        }}}}
        reference[(((n * o.c + co) * o.d + od) * o.h + oh) * o.w + ow] = acc
    }}}}}
    return reference
}

@Suite struct ConvolutionTests {
    @Test func outputSizeFormula() {
        #expect(convOutputSize(256, kernel: 7, stride: 2, padding: 3) == 128)
        #expect(convOutputSize(138, kernel: 7, stride: 2, padding: 3) == 69)
        #expect(convOutputSize(69, kernel: 3, stride: 2, padding: 1) == 35)
        #expect(convOutputSize(9, kernel: 1, stride: 2, padding: 0) == 5)
        #expect(convOutputSize(7, kernel: 3, stride: 1, padding: 1) == 7)
    }

    @Test(arguments: convCases)
    func forwardMatchesNaive(_ c: ConvCase) {
        let f = ConvFixture(c, seed: 11)
        f.forward()
        expectClose(f.y, naiveConvForward(f.x.array, Shape5(c.input), f.w.array, c.geometry), "forward \(c)")
    }

    @Test(arguments: convCases)
    func backwardMatchesNaive(_ c: ConvCase) {
        let f = ConvFixture(c, seed: 21)
        let dX = Tensor(shape: f.x.shape, repeating: 7)          // must be overwritten
        let dW = Tensor(shape: f.w.shape, repeating: 0.25)       // must be accumulated into
        conv3dBackward(dX: dX, dWeight: dW, dY: f.g, x: f.x, weight: f.w, geometry: c.geometry,
                       workspace: f.workspace)
        let ref = naiveConvBackward(f.x.array, Shape5(c.input), f.w.array, f.g.array, c.geometry)
        expectClose(dX, ref.dx, "dX \(c)")
        expectClose(dW, ref.dw.map { $0 + 0.25 }, "dWeight (accumulated onto 0.25) \(c)")
    }

    /// dW without dX (the stem's backward): where the input channels make fewer blocks than
    /// `minimumConvJobs`, jobs split the column tiles and add private partial sums in order
    /// (`directWeightGradientByPositions`). Accumulated onto 0.25, against the naive loops, on
    /// 1, 2 and 3 threads with the same bits.
    @Test(arguments: convCases)
    func weightGradientAloneMatchesNaive(_ c: ConvCase) {
        let f = ConvFixture(c, seed: 25)
        let ref = naiveConvBackward(f.x.array, Shape5(c.input), f.w.array, f.g.array, c.geometry)
        var results: [[Float]] = []
        for threads in [1, 2, 3] {
            let dW = Tensor(shape: f.w.shape, repeating: 0.25)
            ThreadSettings.with(parallel: threads, blas: threads) {
                conv3dBackward(dX: nil, dWeight: dW, dY: f.g, x: f.x, weight: f.w, geometry: c.geometry,
                               workspace: f.workspace)
            }
            expectClose(dW, ref.dw.map { $0 + 0.25 }, "dWeight alone, \(threads) threads, \(c)")
            results.append(dW.array)
        }
        #expect(results[0] == results[1] && results[0] == results[2], "dWeight alone depends on the threads: \(c)")
    }

    /// The chunks of a dW cut by positions: 8 jobs at least, up to 64 while a chunk keeps 2 tiles,
    /// never more chunks than tiles; the stem at 138×256×256 (1480 tiles of 764 columns) and at
    /// 64×128×128 (172 tiles) gets 64, at the demo's 32×64×64 (22 tiles) 11.
    @Test func positionChunksFollowTheShape() {
        #expect(positionChunks(tiles: 172, blocks: 1) == 64)
        #expect(positionChunks(tiles: 1480, blocks: 1) == 64)
        #expect(positionChunks(tiles: 22, blocks: 1) == 11)
        #expect(positionChunks(tiles: 96, blocks: 1) == 48)
        #expect(positionChunks(tiles: 10_000, blocks: 1) == 64)
        #expect(positionChunks(tiles: 172, blocks: 2) == 32)
        #expect(positionChunks(tiles: 40, blocks: 2) == 20)
        #expect(positionChunks(tiles: 1480, blocks: 2) == 32)
        #expect(positionChunks(tiles: 3, blocks: 1) == 3)
        #expect(positionChunks(tiles: 1, blocks: 3) == 1)
    }

    /// A stem-like dW (one input channel) over many tiles, cut into more chunks than
    /// `minimumConvJobs` (96 tiles of 4 columns: 48 chunks): against the naive loops, and the same
    /// bits on 1, 2, 3 and 5 threads.
    @Test func manyChunksOfTilesMatchNaive() {
        let geometry = Conv3dGeometry(inChannels: 1, outChannels: 5, kernel: 3, stride: 2, padding: 1)
        let input = [1, 1, 12, 16, 16]
        let x = uniformTensor(input, seed: 61), w = uniformTensor(geometry.weightShape, seed: 62)
        let outShape = geometry.outputShape(for: Shape5(input)).dims
        let g = uniformTensor(outShape, seed: 63)
        #expect(outShape.dropFirst(2).reduce(1, *) == 384)
        let ref = naiveConvBackward(x.array, Shape5(input), w.array, g.array, geometry)
        var results: [[Float]] = []
        for threads in [1, 2, 3, 5] {
            let workspace = ConvWorkspace(bytes: 8 << 20)
            workspace.maxTileColumns = 4
            let dW = Tensor(shape: w.shape, repeating: 0.25)
            ThreadSettings.with(parallel: threads, blas: threads) {
                conv3dBackward(dX: nil, dWeight: dW, dY: g, x: x, weight: w, geometry: geometry, workspace: workspace)
            }
            expectClose(dW, ref.dw.map { $0 + 0.25 }, "dWeight in 48 chunks, \(threads) threads")
            results.append(dW.array)
        }
        #expect(results.dropFirst().allSatisfy { $0 == results[0] }, "dWeight in chunks depends on the threads")
    }

    /// The direct backward's channel blocks: 8, and from 4096 positions up to 32 while a block
    /// keeps 4 channels; the 64×128×128 step's layer2.0.conv1 (2048 positions) keeps 8, the full
    /// size's (18 432) gets 16.
    @Test func backwardChannelBlocksFollowTheShape() {
        #expect(backwardChannelBlocks(channels: 64, positions: 2047) == 8)
        #expect(backwardChannelBlocks(channels: 64, positions: 2048) == 16)
        #expect(backwardChannelBlocks(channels: 128, positions: 2304) == 32)
        #expect(backwardChannelBlocks(channels: 128, positions: 256) == 8)
        #expect(backwardChannelBlocks(channels: 64, positions: 18_432) == 16)
        #expect(backwardChannelBlocks(channels: 128, positions: 4096) == 32)
        #expect(backwardChannelBlocks(channels: 512, positions: 1 << 20) == 64)
        #expect(backwardChannelBlocks(channels: 128, positions: 1 << 20) == 32)
        #expect(backwardChannelBlocks(channels: 16, positions: 1 << 20) == 8)
        #expect(backwardChannelBlocks(channels: 1, positions: 1 << 20) == 8)
    }

    /// A strided conv with many positions (4096), whose backward cuts its 64 input channels into
    /// 16 blocks: dX and dW (accumulated onto 0.25) against the naive loops, the same bits on 1, 2
    /// and 3 threads.
    @Test func manyChannelBlocksMatchNaive() {
        let geometry = Conv3dGeometry(inChannels: 64, outChannels: 4, kernel: 3, stride: 2, padding: 1)
        let input = [1, 64, 32, 32, 32]
        let x = uniformTensor(input, seed: 71), w = uniformTensor(geometry.weightShape, seed: 72)
        let outShape = geometry.outputShape(for: Shape5(input)).dims
        #expect(outShape.dropFirst(2).reduce(1, *) == 4096)
        let g = uniformTensor(outShape, seed: 73)
        let ref = naiveConvBackward(x.array, Shape5(input), w.array, g.array, geometry)
        var results: [[Float]] = []
        for threads in [1, 2, 3] {
            let dX = Tensor(shape: x.shape, repeating: 7), dW = Tensor(shape: w.shape, repeating: 0.25)
            ThreadSettings.with(parallel: threads, blas: threads) {
                conv3dBackward(dX: dX, dWeight: dW, dY: g, x: x, weight: w, geometry: geometry,
                               workspace: ConvWorkspace(bytes: 4 << 20))
            }
            expectClose(dX, ref.dx, "dX in 16 channel blocks, \(threads) threads")
            expectClose(dW, ref.dw.map { $0 + 0.25 }, "dWeight in 16 channel blocks, \(threads) threads")
            results.append(dX.array + dW.array)
        }
        #expect(results.dropFirst().allSatisfy { $0 == results[0] }, "the channel blocks' results depend on the threads")
    }

    @Test(arguments: convCases)
    func backwardMatchesFiniteDifferences(_ c: ConvCase) {
        let f = ConvFixture(c, seed: 31)
        let dX = Tensor(zeros: f.x.shape), dW = Tensor(zeros: f.w.shape)
        conv3dBackward(dX: dX, dWeight: dW, dY: f.g, x: f.x, weight: f.w, geometry: c.geometry,
                       workspace: f.workspace)
        let rx = checkGradient(f.x, analytic: dX, indices: sampleIndices(f.x.count, 40, seed: 1),
                               eps: 0.25, scale: 1e-2, loss: f.loss)
        #expect(rx.worstRelativeError <= gradientTolerance, "dX \(c): \(rx)")
        let rw = checkGradient(f.w, analytic: dW, indices: sampleIndices(f.w.count, 40, seed: 2),
                               eps: 0.25, scale: 1e-2, loss: f.loss)
        #expect(rw.worstRelativeError <= gradientTolerance, "dWeight \(c): \(rw)")
    }

    @Test func gradientsCanBeSkipped() {
        let c = convCases[1]
        let f = ConvFixture(c, seed: 41)
        let ref = naiveConvBackward(f.x.array, Shape5(c.input), f.w.array, f.g.array, c.geometry)
        let dX = Tensor(zeros: f.x.shape), dW = Tensor(zeros: f.w.shape)
        conv3dBackward(dX: nil, dWeight: dW, dY: f.g, x: f.x, weight: f.w, geometry: c.geometry, workspace: f.workspace)
        conv3dBackward(dX: dX, dWeight: nil, dY: f.g, x: f.x, weight: f.w, geometry: c.geometry, workspace: f.workspace)
        expectClose(dX, ref.dx, "dX alone")
        expectClose(dW, ref.dw, "dWeight alone")
    }

    /// Tiling changes only which GEMM calls are made and the order of the channel blocks' partial sums.
    /// The direct forward whose channels make one block (the stem, the strided 3³ convs) runs by
    /// dsan's packed GEMM (`DirectGEMM.packed`): at the paper's width, against a float64 loop,
    /// as close as OpenBLAS's sgemm (`DirectGEMM.openBLAS`), the same bits on 1, 2 and 3 threads,
    /// and not OpenBLAS's bits (the two sum in different orders: the packed path did run).
    @Test(arguments: [(Conv3dGeometry(inChannels: 1, outChannels: 64, kernel: 7, stride: 2, padding: 3), [2, 1, 9, 12, 14]),
                      (Conv3dGeometry(inChannels: 64, outChannels: 128, kernel: 3, stride: 2, padding: 1), [1, 64, 5, 6, 7])])
    func directForwardByThePackedGEMMAtThePapersWidth(_ geometry: Conv3dGeometry, _ input: [Int]) {
        let x = uniformTensor(input, seed: 71), w = uniformTensor(geometry.weightShape, seed: 72, -0.1, 0.1)
        let o = geometry.outputShape(for: Shape5(input))
        let reference = float64ConvForward(x, w, geometry)
        let scale = reference.map(abs).max()!
        func run(_ gemm: DirectGEMM, threads: Int) -> [Float] {
            DirectGEMM.choice.with(gemm) {
                ThreadSettings.with(parallel: threads) {
                    let y = Tensor(zeros: o.dims)
                    directConv3dForward(y: y, x: x, weight: w, geometry: geometry, workspace: ConvWorkspace(bytes: 1 << 20))
                    return y.array
                }
            }
        }
        let packed = run(.packed, threads: 1), openBLAS = run(.openBLAS, threads: 1)
        func worst(_ y: [Float]) -> Double { zip(y, reference).map { abs(Double($0) - $1) }.max()! / scale }
        // Relative to the largest |y|: the packed GEMM sums each element's K terms in one chain
        // (K = 1728 for the strided conv: 1.5e-6 measured), OpenBLAS in blocks of K (3.5e-7).
        #expect(worst(packed) <= 5e-6 && worst(openBLAS) <= 5e-6, "\(geometry): packed \(worst(packed)), OpenBLAS \(worst(openBLAS))")
        #expect(packed.map(\.bitPattern) == run(.packed, threads: 2).map(\.bitPattern))
        #expect(packed.map(\.bitPattern) == run(.packed, threads: 3).map(\.bitPattern))
        #expect(packed != openBLAS)
    }

    /// The direct forward by dsan's packed GEMM where the input channels make several blocks (a
    /// workspace that takes 16 or 32 channels per tile) and the (sample, tile) jobs are fewer than
    /// the workers, so that the jobs split the output rows too (`packedDirectForward`): at the
    /// paper's width (layer2.0.conv1, 64 → 128, and layer3.0.conv1, 128 → 256, stride 2) against a
    /// float64 loop, as close as OpenBLAS; the same bits on 1, 2, 3, 5 and 8 threads however the
    /// rows are grouped; not OpenBLAS's bits.
    @Test(arguments: [(Conv3dGeometry(inChannels: 64, outChannels: 128, kernel: 3, stride: 2, padding: 1), [1, 64, 5, 6, 7], 16),
                      (Conv3dGeometry(inChannels: 128, outChannels: 256, kernel: 3, stride: 2, padding: 1), [2, 128, 4, 5, 6], 32)])
    func directForwardInChannelBlocksAndRowGroups(_ geometry: Conv3dGeometry, _ input: [Int], _ blockChannels: Int) {
        let x = uniformTensor(input, seed: 91), w = uniformTensor(geometry.weightShape, seed: 92, -0.1, 0.1)
        let o = geometry.outputShape(for: Shape5(input))
        let reference = float64ConvForward(x, w, geometry)
        let scale = reference.map(abs).max()!
        func run(_ gemm: DirectGEMM, threads: Int) -> [Float] {
            DirectGEMM.choice.with(gemm) {
                ThreadSettings.with(parallel: threads, blas: threads) {
                    let y = Tensor(shape: o.dims, repeating: .nan)
                    let workspace = ConvWorkspace(bytes: 8 << 20)
                    workspace.maxTileChannels = blockChannels
                    directConv3dForward(y: y, x: x, weight: w, geometry: geometry, workspace: workspace)
                    return y.array
                }
            }
        }
        let packed = run(.packed, threads: 1), openBLAS = run(.openBLAS, threads: 1)
        func worst(_ y: [Float]) -> Double { zip(y, reference).map { abs(Double($0) - $1) }.max()! / scale }
        #expect(worst(packed) <= 5e-6 && worst(openBLAS) <= 5e-6, "\(geometry): packed \(worst(packed)), OpenBLAS \(worst(openBLAS))")
        for threads in [2, 3, 5, 8] {
            #expect(packed.map(\.bitPattern) == run(.packed, threads: threads).map(\.bitPattern), "\(geometry): \(threads) threads")
        }
        #expect(packed != openBLAS)
    }

    /// The strided convs' backward (dX and dW by blocks of input channels) runs by dsan's packed
    /// GEMM (`packedDirectBackward`): at the paper's width (layer2.0.conv1, 64 → 128, stride 2,
    /// and its 1×1×1 shortcut) on batches of 1 and 3, with 6 tiles per sample and 8 channel blocks,
    /// dX and dW (accumulated onto 0.25) against float64 loops, as close as OpenBLAS; the same
    /// bits on 1, 2, 3, 5 and 12 threads (12 workers: 11 thinner blocks); not OpenBLAS's bits,
    /// except for the 1×1×1 shortcut, whose backward stays with OpenBLAS.
    @Test(arguments: [(Conv3dGeometry(inChannels: 64, outChannels: 128, kernel: 3, stride: 2, padding: 1), 1),
                      (Conv3dGeometry(inChannels: 64, outChannels: 128, kernel: 3, stride: 2, padding: 1), 3),
                      (Conv3dGeometry(inChannels: 64, outChannels: 128, kernel: 1, stride: 2, padding: 0), 3)])
    func stridedBackwardByThePackedGEMMAtThePapersWidth(_ geometry: Conv3dGeometry, batch: Int) {
        let input = [batch, 64, 5, 6, 8]
        let x = uniformTensor(input, seed: 95), w = uniformTensor(geometry.weightShape, seed: 96, -0.1, 0.1)
        let s = Shape5(input), o = geometry.outputShape(for: s)
        let dy = uniformTensor(o.dims, seed: 97)
        let (xa, wa, ga) = (x.array, w.array, dy.array)
        var dxRef = [Double](repeating: 0, count: s.count), dwRef = [Double](repeating: 0.25, count: wa.count)
        let (k, st, p) = (geometry.kernel, geometry.stride, geometry.padding)
        for n in 0..<s.n { for co in 0..<o.c { for od in 0..<o.d { for oh in 0..<o.h { for ow in 0..<o.w {
            let g = Double(ga[(((n * o.c + co) * o.d + od) * o.h + oh) * o.w + ow])
            for ci in 0..<s.c { for kd in 0..<k.d { for kh in 0..<k.h { for kw in 0..<k.w {
                let id = od * st.d - p.d + kd, ih = oh * st.h - p.h + kh, iw = ow * st.w - p.w + kw
                if id < 0 || id >= s.d || ih < 0 || ih >= s.h || iw < 0 || iw >= s.w { continue }
                let xi = (((n * s.c + ci) * s.d + id) * s.h + ih) * s.w + iw
                let wi = (((co * s.c + ci) * k.d + kd) * k.h + kh) * k.w + kw
                dxRef[xi] += g * Double(wa[wi])
                dwRef[wi] += g * Double(xa[xi])
            }}}}
        }}}}}
        func run(_ gemm: DirectGEMM, threads: Int) -> (dx: [Float], dw: [Float]) {
            DirectGEMM.choice.with(gemm) {
                ThreadSettings.with(parallel: threads, blas: threads) {
                    let dX = Tensor(shape: x.shape, repeating: 7), dW = Tensor(shape: w.shape, repeating: 0.25)
                    let workspace = ConvWorkspace(bytes: 16 << 20)
                    workspace.maxTileColumns = 7
                    conv3dBackward(dX: dX, dWeight: dW, dY: dy, x: x, weight: w, geometry: geometry, workspace: workspace)
                    return (dX.array, dW.array)
                }
            }
        }
        func worst(_ a: [Float], _ ref: [Double]) -> Double {
            zip(a, ref).map { abs(Double($0) - $1) }.max()! / ref.map(abs).max()!
        }
        let packed = run(.packed, threads: 1), openBLAS = run(.openBLAS, threads: 1)
        for (name, got, ref) in [("packed dX", packed.dx, dxRef), ("packed dW", packed.dw, dwRef),
                                 ("OpenBLAS dX", openBLAS.dx, dxRef), ("OpenBLAS dW", openBLAS.dw, dwRef)] {
            #expect(worst(got, ref) <= 5e-6, "\(geometry) batch \(batch): \(name) \(worst(got, ref))")
        }
        for threads in [2, 3, 5, 12] {
            let other = run(.packed, threads: threads)
            #expect(packed.dx.map(\.bitPattern) == other.dx.map(\.bitPattern) && packed.dw.map(\.bitPattern) == other.dw.map(\.bitPattern),
                    "\(geometry) batch \(batch): \(threads) threads")
        }
        if geometry.kernel.volume > 1 {
            #expect(packed.dw != openBLAS.dw)
        } else {
            #expect(packed.dw == openBLAS.dw && packed.dx == openBLAS.dx)
        }
    }

    /// The stem's weight gradient (dW alone, cut by positions) runs by dsan's packed GEMM
    /// (`DirectGEMM.selectedForBackward`): at the paper's width (64 filters of 7³) on batches
    /// of 1, 2 and 3, with tiles of 10 positions (21 per sample, 8 chunks), against a float64
    /// loop, as close as OpenBLAS's sgemm; the same bits on 1, 2 and 3 threads, and not OpenBLAS's
    /// bits (the packed path did run). Accumulated onto 0.25.
    @Test(arguments: [1, 2, 3])
    func stemWeightGradientByThePackedGEMMAtThePapersWidth(batch: Int) {
        let geometry = Conv3dGeometry(inChannels: 1, outChannels: 64, kernel: 7, stride: 2, padding: 3)
        let input = [batch, 1, 9, 12, 14]
        let x = uniformTensor(input, seed: 81), s = Shape5(input), o = geometry.outputShape(for: s)
        let dy = uniformTensor(o.dims, seed: 82, -0.1, 0.1), w = uniformTensor(geometry.weightShape, seed: 83)
        let (xa, ga) = (x.array, dy.array)
        let (k, st, p) = (geometry.kernel, geometry.stride, geometry.padding)
        var reference = [Double](repeating: 0, count: geometry.weightShape.reduce(1, *))
        for co in 0..<o.c { for kd in 0..<k.d { for kh in 0..<k.h { for kw in 0..<k.w {
            var acc = 0.0
            for n in 0..<s.n { for od in 0..<o.d { for oh in 0..<o.h { for ow in 0..<o.w {
                let id = od * st.d - p.d + kd, ih = oh * st.h - p.h + kh, iw = ow * st.w - p.w + kw
                if id < 0 || id >= s.d || ih < 0 || ih >= s.h || iw < 0 || iw >= s.w { continue }
                acc += Double(xa[((n * s.d + id) * s.h + ih) * s.w + iw])
                    * Double(ga[(((n * o.c + co) * o.d + od) * o.h + oh) * o.w + ow])
            }}}}
            reference[((co * k.d + kd) * k.h + kh) * k.w + kw] = acc + 0.25
        }}}}
        let scale = reference.map(abs).max()!
        func run(_ gemm: DirectGEMM, threads: Int) -> [Float] {
            DirectGEMM.choice.with(gemm) {
                ThreadSettings.with(parallel: threads, blas: threads) {
                    let dW = Tensor(shape: w.shape, repeating: 0.25)
                    let workspace = ConvWorkspace(bytes: 4 << 20)
                    workspace.maxTileColumns = 10
                    conv3dBackward(dX: nil, dWeight: dW, dY: dy, x: x, weight: w, geometry: geometry, workspace: workspace)
                    return dW.array
                }
            }
        }
        let packed = run(.packed, threads: 1), openBLAS = run(.openBLAS, threads: 1)
        func worst(_ dw: [Float]) -> Double { zip(dw, reference).map { abs(Double($0) - $1) }.max()! / scale }
        #expect(worst(packed) <= 5e-6 && worst(openBLAS) <= 5e-6, "batch \(batch): packed \(worst(packed)), OpenBLAS \(worst(openBLAS))")
        #expect(packed.map(\.bitPattern) == run(.packed, threads: 2).map(\.bitPattern), "batch \(batch): 2 threads")
        #expect(packed.map(\.bitPattern) == run(.packed, threads: 3).map(\.bitPattern), "batch \(batch): 3 threads")
        #expect(packed != openBLAS)
    }

    @Test func tileWidthDoesNotChangeResults() {
        let geometry = Conv3dGeometry(inChannels: 3, outChannels: 5, kernel: 3, stride: 2, padding: 1)
        let x = uniformTensor([1, 3, 9, 11, 13], seed: 51)
        let w = uniformTensor(geometry.weightShape, seed: 52)
        let shape = geometry.outputShape(for: x.shape5).dims
        let ws = ConvWorkspace(bytes: 1 << 20)
        let whole = Tensor(zeros: shape), tiled = Tensor(zeros: shape)
        conv3dForward(y: whole, x: x, weight: w, geometry: geometry, workspace: ws)
        ws.maxTileColumns = 4
        ws.maxTileChannels = 2
        conv3dForward(y: tiled, x: x, weight: w, geometry: geometry, workspace: ws)
        #expect(maxAbsDifference(whole, tiled) <= 1e-5)
    }

    /// dsan's own loops (vol2col, col2vol) give the same bits on 1 and 2 threads.
    @Test func threadCountDoesNotChangeBits() {
        let geometry = Conv3dGeometry(inChannels: 4, outChannels: 3, kernel: 3, stride: 2, padding: 1)
        let x = uniformTensor([1, 4, 9, 10, 11], seed: 61)
        let w = uniformTensor(geometry.weightShape, seed: 62)
        let dy = uniformTensor(geometry.outputShape(for: x.shape5).dims, seed: 63)
        let ws = ConvWorkspace(bytes: 1 << 20)
        ws.maxTileColumns = 13
        ws.maxTileChannels = 3
        func run(threads: Int) -> (y: [Float], dx: [Float], dw: [Float]) {
            return ThreadSettings.with(parallel: threads) {
                let y = Tensor(zeros: dy.shape), dX = Tensor(zeros: x.shape), dW = Tensor(zeros: w.shape)
                conv3dForward(y: y, x: x, weight: w, geometry: geometry, workspace: ws)
                conv3dBackward(dX: dX, dWeight: dW, dY: dy, x: x, weight: w, geometry: geometry, workspace: ws)
                return (y.array, dX.array, dW.array)
            }
        }
        let one = run(threads: 1), two = run(threads: 2)
        #expect(one.y == two.y)
        #expect(one.dx == two.dx)
        #expect(one.dw == two.dw)
    }

    /// A default workspace made at 2 threads grows to one slice per thread when a direct conv runs
    /// on 6, and the conv engages 6 workers; one of explicit size keeps its 2 slices and its bound.
    /// The tiling, and so every bit of the result, is the same either way.
    @Test func defaultWorkspaceGrowsToTheThreadCount() {
        let geometry = Conv3dGeometry(inChannels: 4, outChannels: 8, kernel: 3, stride: 2, padding: 1)
        let x = uniformTensor([1, 4, 32, 32, 32], seed: 71)
        let w = uniformTensor(geometry.weightShape, seed: 72)
        let shape = geometry.outputShape(for: x.shape5).dims
        let slice = ConvWorkspace.tileBytes / 4
        let grown = ThreadSettings.with(parallel: 2) { ConvWorkspace() }
        let fixed = ConvWorkspace(bytes: 2 * ConvWorkspace.tileBytes)
        #expect(grown.followsThreads && !fixed.followsThreads)
        #expect(grown.capacity == 2 * slice && fixed.capacity == 2 * slice)
        let before = Tensor(zeros: shape)
        ThreadSettings.with(parallel: 2) {
            conv3dForward(y: before, x: x, weight: w, geometry: geometry, workspace: grown)
        }
        #expect(grown.capacity == 2 * slice, "no growth while the threads are those it was made for")
        // The conv's regions: the weights' packing (one item here), then the tiles.
        func run(_ ws: ConvWorkspace) -> (y: [Float], workers: [Int]) {
            ThreadSettings.with(parallel: 6) {
                let y = Tensor(zeros: shape)
                RegionProfile.start(loggingCalls: true)
                conv3dForward(y: y, x: x, weight: w, geometry: geometry, workspace: ws)
                _ = RegionProfile.stop()
                return (y.array, RegionProfile.calls().filter { $0.site.contains("Convolution.swift") }.map(\.workers))
            }
        }
        let g = run(grown), f = run(fixed)
        #expect(g.workers == [1, 6], "the grown workspace's conv: \(g.workers)")
        #expect(f.workers == [1, 2], "the fixed workspace's conv: \(f.workers)")
        #expect(grown.capacity == 6 * slice && grown.sliceFloats == slice)
        #expect(fixed.capacity == 2 * slice)
        #expect(g.y == before.array && f.y == before.array)
    }

    /// The workspace bounds memory: a tile never exceeds its capacity, whatever the input size.
    @Test func tileFitsWorkspace() {
        let ws = ConvWorkspace(bytes: 4 << 20)
        let stem = Conv3dGeometry(inChannels: 1, outChannels: 64, kernel: 7, stride: 2, padding: 3)
        let positions = stem.outputShape(for: Shape5(n: 1, c: 1, d: 138, h: 256, w: 256)).spatial
        let t = ws.tile(for: stem, positions: positions)
        #expect(t.channels == 1 && t.columns * stem.columnRows <= ws.capacity)
        #expect(t.columns >= ConvWorkspace.minimumTileColumns && t.columns < positions)
        // The widest conv: whole channel blocks of equal size, each tile within capacity.
        let wide = Conv3dGeometry(inChannels: 512, outChannels: 512, kernel: 3, stride: 1, padding: 1)
        let w = ws.tile(for: wide, positions: 256)
        let blocks = (512 + w.channels - 1) / w.channels
        #expect(w.columns == 256 && w.channels < 512 && blocks * w.channels - 512 < blocks)
        #expect(w.columns * w.channels * 27 * 4 <= ConvWorkspace.tileBytes)
    }
}
