import Foundation
import NumericalTesting
import Testing
import VectorKernels
@testable import NN

// Winograd F(4×4×4, 3×3×3) (WinogradF4.swift, winograd4_body.h):
// - the 1-D matrices against a direct correlation in float64, and the scalar formulas against them;
// - the C transforms at every ISA level this CPU has, bit for bit against the scalar Swift
//   references (WinogradF4ReferenceTransforms.swift), over odd extents, partial edge tiles, blocks
//   cut mid-row and across samples, runs of 1 to 17 tiles along w, channel counts around 4, 8, 16;
// - forward and dX against a float64 direct conv, the same bits on 1, 2 and 3 threads and at every
//   level, and dX against central finite differences of Σ g·conv(x, w) through the F(4,3) forward;
// - the choice between F(4,3), F(2,3) and direct.
//
// Tolerance: max |Δ| ≤ 1e-4 · max |reference| against the float64 conv (WinogradTests allows F(2,3)
// 2e-5). F(4,3) rounds more: the rows of Bᵀ and Aᵀ have 1-norms up to 10 and 19, so transformed
// values grow by up to 10³ and 19³ over single terms. Measured (x uniform in [−1, 1), w in
// [−0.5, 0.5) or [−0.1, 0.1)): the small cases below ≤ 1.4e-5 forward and dX; at width 64 (64→64
// on 16×32×32, `precisionAtWidth64`) F(4,3) 2.7e-5 forward and 2.6e-5 dX, against F(2,3)'s
// 4.1e-7 and 3.8e-7 and the direct float conv's 4.7e-7 and 1.9e-7. The bound leaves ≥ 3.6×
// margin at width 64; a wrong coefficient or sign gives errors of order 1.

private let relativeTolerance = 1e-4
private let gradientTolerance = 5e-3

private let volumeCases: [WinogradVolumeCase] = [
    // Odd extents (partial edge tiles in every axis), batch 2; 16-tile blocks cut mid-row, across samples.
    WinogradVolumeCase(input: [2, 3, 5, 7, 9], outC: 5, blockBytes: 1),
    WinogradVolumeCase(input: [2, 3, 5, 7, 9], outC: 5, blockBytes: 8 << 20),
    // tW = 17: a 16-lane chunk and a 1-lane one; 8-lane: two chunks and a partial one.
    WinogradVolumeCase(input: [1, 9, 4, 3, 67], outC: 6, blockBytes: 1),
    WinogradVolumeCase(input: [1, 9, 4, 3, 67], outC: 6, blockBytes: 8 << 20),
    // tW = 16: one whole 16-lane chunk per row; extents multiples of 4.
    WinogradVolumeCase(input: [1, 4, 8, 8, 64], outC: 3, blockBytes: 8 << 20),
    // One voxel, thin volumes.
    WinogradVolumeCase(input: [1, 2, 1, 1, 1], outC: 3, blockBytes: 8 << 20),
    WinogradVolumeCase(input: [3, 2, 2, 1, 6], outC: 2, blockBytes: 1),
]

struct F4ConvCase: CustomStringConvertible, Sendable {
    var cin, cout: Int
    var input: [Int]
    var blockBytes: Int = WinogradF4Conv.blockBytes
    var geometry: Conv3dGeometry { Conv3dGeometry(inChannels: cin, outChannels: cout, kernel: 3, stride: 1, padding: 1) }
    var description: String { "\(cin)→\(cout) on \(input), blockBytes \(blockBytes)" }
}

private let convCases: [F4ConvCase] = [
    F4ConvCase(cin: 3, cout: 5, input: [2, 3, 5, 7, 9]),
    F4ConvCase(cin: 3, cout: 5, input: [2, 3, 5, 7, 9], blockBytes: 1),
    F4ConvCase(cin: 9, cout: 11, input: [2, 9, 6, 5, 37], blockBytes: 1),
    F4ConvCase(cin: 17, cout: 6, input: [1, 17, 8, 8, 67]),
    F4ConvCase(cin: 2, cout: 3, input: [1, 2, 1, 1, 1]),
    F4ConvCase(cin: 4, cout: 4, input: [2, 4, 2, 1, 3]),
]

private struct F4Fixture {
    let c: F4ConvCase
    let x, w, g: Tensor
    let workspace = ConvWorkspace(bytes: 1 << 20)

    init(_ c: F4ConvCase, seed: UInt64) {
        self.c = c
        x = uniformTensor(c.input, seed: seed)
        w = uniformTensor(c.geometry.weightShape, seed: seed + 1, -0.5, 0.5)
        g = projectionWeights(like: Tensor(zeros: c.geometry.outputShape(for: Shape5(c.input)).dims), seed: seed + 2)
    }

    func forward() -> Tensor {
        let y = Tensor(shape: g.shape, repeating: .nan)   // must be overwritten everywhere
        winogradF4Forward(y: y, x: x, weight: w, geometry: c.geometry, buffers: workspace.winograd, blockBytes: c.blockBytes)
        return y
    }

    /// dX (written over NaNs) for dY = g.
    func inputGradient() -> Tensor {
        let dX = Tensor(shape: x.shape, repeating: .nan)
        winogradF4InputGradient(dX: dX, dY: g, weight: w, geometry: c.geometry, buffers: workspace.winograd,
                                blockBytes: c.blockBytes)
        return dX
    }
}

@Suite(.serialized) struct WinogradF4Tests {
    /// Aᵀ[(G g) ⊙ (Bᵀ d)] is the valid correlation of d (6) with g (3), in float64 with the stated
    /// matrices; the float formulas of F43 (and so of the C) equal those matrices.
    @Test func oneDimensionalIdentities() {
        var rng = SplitMix64(seed: 9)
        func mul(_ m: [[Double]], _ v: [Double]) -> [Double] { m.map { row in zip(row, v).reduce(0) { $0 + $1.0 * $1.1 } } }
        for _ in 0..<20 {
            let d = (0..<6).map { _ in Double.random(in: -1...1, using: &rng) }
            let g = (0..<3).map { _ in Double.random(in: -1...1, using: &rng) }
            let u = mul(F43.gMatrix, g), v = mul(F43.btMatrix, d)
            let y = mul(F43.atMatrix, zip(u, v).map { $0 * $1 })
            for i in 0..<4 {
                let direct = d[i] * g[0] + d[i + 1] * g[1] + d[i + 2] * g[2]
                #expect(abs(y[i] - direct) <= 1e-12, "output \(i): \(y[i]) vs \(direct)")
            }
            let (df, gf) = (d.map(Float.init), g.map(Float.init))
            let (dd, gd) = (df.map(Double.init), gf.map(Double.init))
            for (fast, exact) in [(F43.bt(df), mul(F43.btMatrix, dd)), (F43.g(gf), mul(F43.gMatrix, gd)),
                                  (F43.at(df), mul(F43.atMatrix, dd))] {
                for i in 0..<exact.count { #expect(abs(Double(fast[i]) - exact[i]) <= 1e-5, "\(fast) vs \(exact)") }
            }
        }
    }

    /// V of each block, over the block's columns; the columns past the block keep their sentinel.
    @Test(arguments: volumeCases)
    func inputTransformMatchesReferenceAtEveryLevel(_ c: WinogradVolumeCase) {
        let s = Shape5(c.input), inC = c.input[1]
        let p = WinogradF4Plan(s, inC: inC, outC: c.outC, blockBytes: c.blockBytes)
        let x = AlignedFloats(bitTestValues(s.n * inC * s.d * s.h * s.w, seed: 11))
        var g = p.geometry
        let scratch = AlignedFloats(dsan_winograd4_scratch_floats(&g))
        let sentinel = Float(bitPattern: 0x7fc0_1234)
        atEveryVectorLevelNamed { level in
            for block in 0..<p.blocks {
                let t0 = block * p.blockTiles, t1 = min(p.tiles, t0 + p.blockTiles), t = t1 - t0
                let plane = p.plane(inC)
                let reference = AlignedFloats(216 * plane), fast = AlignedFloats(216 * plane, sentinel)
                referenceF4InputTransform(p, x.pointer, channels: inC, 0, inC, t0, t1, reference.pointer)
                dsan_winograd4_input_transform(&g, x.pointer, inC, 0, inC / 2, t0, t1, fast.pointer, scratch.pointer)
                dsan_winograd4_input_transform(&g, x.pointer, inC, inC / 2, inC, t0, t1, fast.pointer, scratch.pointer)
                var inside: [Float] = [], expected: [Float] = [], outside: [Float] = []
                // Each ξ's inC rows of `ld`, then the padding up to the next ξ (outside).
                for i in 0..<(216 * plane) {
                    let (row, column) = ((i % plane) / p.ld, (i % plane) % p.ld)
                    if row < inC && column < t {
                        inside.append(fast.pointer[i])
                        expected.append(reference.pointer[i])
                    } else {
                        outside.append(fast.pointer[i])
                    }
                }
                let first = firstBitDifference(inside, expected)
                #expect(first == nil, "input transform \(c), block \(block), level \(level): value \(first ?? -1) is \(first.map { inside[$0] } ?? 0), reference \(first.map { expected[$0] } ?? 0)")
                #expect(outside.allSatisfy { $0.bitPattern == sentinel.bitPattern },
                        "input transform \(c), block \(block), level \(level) wrote outside the block's columns")
            }
        }
    }

    /// y after all blocks, from the same M; every output written.
    @Test(arguments: volumeCases)
    func outputTransformMatchesReferenceAtEveryLevel(_ c: WinogradVolumeCase) {
        let s = Shape5(c.input), outC = c.outC
        let p = WinogradF4Plan(s, inC: c.input[1], outC: outC, blockBytes: c.blockBytes)
        let m = AlignedFloats(bitTestValues(216 * p.plane(outC), seed: 21))
        var g = p.geometry
        let volume = s.n * outC * s.d * s.h * s.w
        atEveryVectorLevelNamed { level in
            let reference = AlignedFloats(volume, .nan), fast = AlignedFloats(volume, .nan)
            for block in 0..<p.blocks {
                let t0 = block * p.blockTiles, t1 = min(p.tiles, t0 + p.blockTiles)
                referenceF4OutputTransform(p, m.pointer, channels: outC, 0, outC, t0, t1, reference.pointer)
                dsan_winograd4_output_transform(&g, m.pointer, outC, 0, outC / 2, t0, t1, fast.pointer)
                dsan_winograd4_output_transform(&g, m.pointer, outC, outC / 2, outC, t0, t1, fast.pointer)
            }
            let (a, b) = (fast.array, reference.array)
            #expect(!a.contains { $0.isNaN }, "output transform \(c), level \(level): an output was not written")
            let first = firstBitDifference(a, b)
            #expect(first == nil, "output transform \(c), level \(level): y[\(first ?? -1)] is \(first.map { a[$0] } ?? 0), reference \(first.map { b[$0] } ?? 0)")
        }
    }

    /// U = G⊗³g, plain and of the flipped kernel, split over two output-channel ranges.
    @Test func weightTransformMatchesReferenceAtEveryLevel() {
        for (k, shape) in winogradWeightShapes.enumerated() {
            let (cout, cin) = shape
            let weight = AlignedFloats(bitTestValues(cout * cin * 27, seed: 31 + UInt64(k)))
            for flip in [false, true] {
                let reference = AlignedFloats(216 * cout * cin, .nan)
                referenceF4WeightTransform(weight.pointer, cout: cout, cin: cin, 0, cout, flip: flip, reference.pointer)
                atEveryVectorLevelNamed { level in
                    let u = AlignedFloats(216 * cout * cin, .nan)
                    for (co0, co1) in [(0, cout / 2), (cout / 2, cout)] {
                        dsan_winograd4_weight_transform(weight.pointer, cout, cin, co0, co1, flip ? 1 : 0, u.pointer)
                    }
                    let first = firstBitDifference(u.array, reference.array)
                    #expect(first == nil, "weight transform \(cout)×\(cin) flip \(flip), level \(level): U[\(first ?? -1)] differs")
                }
            }
        }
    }

    @Test(arguments: convCases)
    func forwardAndInputGradientMatchFloat64(_ c: F4ConvCase) {
        let f = F4Fixture(c, seed: 101)
        let s = Shape5(c.input)
        let y = f.forward(), dX = f.inputGradient()
        let yReference = float64Conv3x3(f.x.array, s, f.w.array, outC: c.cout, transposedFlipped: false)
        let dyShape = Shape5(f.g.shape)
        let dxReference = float64Conv3x3(f.g.array, dyShape, f.w.array, outC: c.cin, transposedFlipped: true)
        let ey = relativeErrorAgainstFloat64(y.array, yReference), ex = relativeErrorAgainstFloat64(dX.array, dxReference)
        #expect(ey <= relativeTolerance, "forward \(c): relative error \(ey)")
        #expect(ex <= relativeTolerance, "dX \(c): relative error \(ex)")
    }

    /// The 216 GEMMs by dsan's packed GEMM (the default: partial panels of R rows here, cout 5, 6
    /// and 11) and by OpenBLAS (`packed-winograd4=0`, or `DSAN_WINOGRAD_GEMM=openblas`) both match
    /// float64, forward and dX. Only the packed path fills the workspace's packed buffer, and
    /// the setting and the GEMM choice reach the same OpenBLAS path (the same bits).
    @Test(arguments: convCases)
    func bothGEMMsMatchFloat64(_ c: F4ConvCase) {
        let s = Shape5(c.input)
        let seed: UInt64 = 131
        let probe = F4Fixture(c, seed: seed)
        let yReference = float64Conv3x3(probe.x.array, s, probe.w.array, outC: c.cout, transposedFlipped: false)
        let dxReference = float64Conv3x3(probe.g.array, Shape5(probe.g.shape), probe.w.array, outC: c.cin,
                                         transposedFlipped: true)
        func run(_ body: (() -> [[Float]]) -> [[Float]]) -> (result: [[Float]], packedFloats: Int) {
            let f = F4Fixture(c, seed: seed)
            let result = body { [f.forward().array, f.inputGradient().array] }
            return (result, f.workspace.winograd.packed.count)
        }
        let packed = run { $0() }
        let setting = run { body in ConvTuning.with(.packedWinograd4, 0) { body() } }
        let openBLAS = run { body in WinogradGEMM.choice.with(.openBLAS) { body() } }
        #expect(packed.packedFloats >= 216 * Int(max(dsan_packed_gemm_floats(c.cout, c.cin), dsan_packed_gemm_floats(c.cin, c.cout))))
        #expect(setting.packedFloats == 0 && openBLAS.packedFloats == 0)
        #expect(setting.result == openBLAS.result)
        for (name, r) in [("packed", packed.result), ("OpenBLAS", setting.result)] {
            let (ey, ex) = (relativeErrorAgainstFloat64(r[0], yReference), relativeErrorAgainstFloat64(r[1], dxReference))
            #expect(ey <= relativeTolerance && ex <= relativeTolerance, "\(name) \(c): forward \(ey), dX \(ex)")
        }
    }

    /// The float64 reference itself against the naive float loops of ConvolutionTests (so that a
    /// flaw in it cannot hide one of F(4,3)).
    @Test func float64ReferenceMatchesNaiveLoops() {
        let c = convCases[2]
        let f = F4Fixture(c, seed: 151)
        let s = Shape5(c.input)
        let naiveY = naiveConvForward(f.x.array, s, f.w.array, c.geometry)
        let naiveDX = naiveConvBackward(f.x.array, s, f.w.array, f.g.array, c.geometry).dx
        #expect(relativeErrorAgainstFloat64(naiveY, float64Conv3x3(f.x.array, s, f.w.array, outC: c.cout, transposedFlipped: false)) <= 1e-6)
        #expect(relativeErrorAgainstFloat64(naiveDX, float64Conv3x3(f.g.array, Shape5(f.g.shape), f.w.array, outC: c.cin,
                                                      transposedFlipped: true)) <= 1e-6)
    }

    /// Width 64 (the paper's layer1 channels), 64→64 on 16×32×32: F(4,3), F(2,3) and direct
    /// against float64, forward and dX. The figures are printed for Docs/performance.md.
    @Test func precisionAtWidth64() {
        let g = Conv3dGeometry(inChannels: 64, outChannels: 64, kernel: 3, stride: 1, padding: 1)
        let s = Shape5(n: 1, c: 64, d: 16, h: 32, w: 32)
        let x = uniformTensor(s.dims, seed: 71), w = uniformTensor(g.weightShape, seed: 72, -0.1, 0.1)
        let dy = uniformTensor(s.dims, seed: 73)
        let ws = ConvWorkspace()
        let yReference = float64Conv3x3(x.array, s, w.array, outC: 64, transposedFlipped: false)
        let dxReference = float64Conv3x3(dy.array, s, w.array, outC: 64, transposedFlipped: true)
        let y4 = Tensor(zeros: s.dims), dx4 = Tensor(zeros: s.dims)
        winogradF4Forward(y: y4, x: x, weight: w, geometry: g, buffers: ws.winograd)
        winogradF4InputGradient(dX: dx4, dY: dy, weight: w, geometry: g, buffers: ws.winograd)
        let y2 = Tensor(zeros: s.dims), dx2 = Tensor(zeros: s.dims)
        winogradForward(y: y2, x: x, weight: w, geometry: g, buffers: ws.winograd)
        winogradBackward(dX: dx2, dWeight: nil, dY: dy, x: x, weight: w, geometry: g, buffers: ws.winograd)
        let yd = Tensor(zeros: s.dims), dxd = Tensor(zeros: s.dims)
        directConv3dForward(y: yd, x: x, weight: w, geometry: g, workspace: ws)
        directConv3dBackward(dX: dxd, dWeight: nil, dY: dy, x: x, weight: w, geometry: g, workspace: ws)
        let e4 = (relativeErrorAgainstFloat64(y4.array, yReference), relativeErrorAgainstFloat64(dx4.array, dxReference))
        let e2 = (relativeErrorAgainstFloat64(y2.array, yReference), relativeErrorAgainstFloat64(dx2.array, dxReference))
        let ed = (relativeErrorAgainstFloat64(yd.array, yReference), relativeErrorAgainstFloat64(dxd.array, dxReference))
        print("precisionAtWidth64: max|Δ|/max|ref| vs float64 — F(4,3) forward \(e4.0) dX \(e4.1); "
              + "F(2,3) forward \(e2.0) dX \(e2.1); direct forward \(ed.0) dX \(ed.1)")
        #expect(e4.0 <= relativeTolerance && e4.1 <= relativeTolerance, "F(4,3) at width 64: \(e4)")
        #expect(e2.0 <= relativeTolerance && e2.1 <= relativeTolerance, "F(2,3) at width 64: \(e2)")
    }

    /// Blocks are cut independently of the worker count and every value is computed by one worker
    /// in a fixed order: 1, 2 and 3 threads give the same bits.
    @Test func threadCountDoesNotChangeBits() {
        let f = F4Fixture(F4ConvCase(cin: 9, cout: 11, input: [2, 9, 6, 5, 37], blockBytes: 1), seed: 501)
        func run(threads: Int) -> [[Float]] {
            ThreadSettings.with(parallel: threads, blas: threads) { [f.forward().array, f.inputGradient().array] }
        }
        let one = run(threads: 1)
        #expect(one == run(threads: 2))
        #expect(one == run(threads: 3))
    }

    /// Any padding of V's and M's rows (`winograd-row-padding`; 0 is the rule,
    /// `WinogradConv.rowStride`) gives the same bits, in one block and in several.
    @Test func rowPaddingKeepsTheBits() {
        for c in [convCases[0], convCases[2], convCases[3]] {
            let f = F4Fixture(c, seed: 531)
            func run(padding: Int) -> [[Float]] {
                ConvTuning.with(.winogradRowPadding, padding) { [f.forward().array, f.inputGradient().array] }
            }
            let rule = run(padding: 0)
            for padding in [8, 5] {
                let same = rule == run(padding: padding)
                #expect(same, "\(c), padding \(padding): y or dX differs from the rule's")
            }
        }
    }

    /// The public entry points at the paper's width where the rule picks F(4,3) (64→64 on 16³:
    /// 64 tiles, one block): y, dX and dW (dW by F(2,3)) are the same bits on 1, 2 and 3 threads.
    @Test func entryPointsAtWidth64DoNotDependOnThreads() {
        let g = Conv3dGeometry(inChannels: 64, outChannels: 64, kernel: 3, stride: 1, padding: 1)
        let s = Shape5(n: 1, c: 64, d: 16, h: 16, w: 16)
        let x = uniformTensor(s.dims, seed: 91), w = uniformTensor(g.weightShape, seed: 92, -0.1, 0.1)
        let dy = uniformTensor(s.dims, seed: 93)
        func run(threads: Int) -> [[Float]] {
            ConvAlgorithm.choice.with(.winograd) {
                #expect(WinogradF4Conv.isUsed(for: g, input: s))
                return ThreadSettings.with(parallel: threads, blas: threads) {
                    let ws = ConvWorkspace()
                    let y = Tensor(zeros: s.dims), dX = Tensor(zeros: s.dims), dW = Tensor(zeros: w.shape)
                    conv3dForward(y: y, x: x, weight: w, geometry: g, workspace: ws)
                    conv3dBackward(dX: dX, dWeight: dW, dY: dy, x: x, weight: w, geometry: g, workspace: ws)
                    return [y.array, dX.array, dW.array]
                }
            }
        }
        let one = run(threads: 1)
        for threads in [2, 3] {
            let other = run(threads: threads)
            for (part, name) in ["y", "dX", "dW"].enumerated() {
                #expect(other[part] == one[part], "\(name) on \(threads) threads differs from 1 thread")
            }
        }
    }

    /// Whole F(4,3) convs give the same bits at every ISA level.
    @Test func convolutionsGiveTheSameBitsAtEveryLevel() {
        let f = F4Fixture(F4ConvCase(cin: 9, cout: 11, input: [2, 9, 5, 6, 67], blockBytes: 1), seed: 61)
        var results: [(String, [Float])] = []
        atEveryVectorLevelNamed { level in results.append((level, f.forward().array + f.inputGradient().array)) }
        for (level, r) in results.dropFirst() {
            #expect(firstBitDifference(r, results[0].1) == nil, "level \(level) differs from \(results[0].0)")
        }
    }

    /// dX against central differences of L = Σ g·conv(x, w) through the F(4,3) forward (eps 0.25:
    /// L is linear in x, so no truncation error; see WinogradTests).
    @Test(arguments: [convCases[1], convCases[2], convCases[5]])
    func inputGradientMatchesFiniteDifferences(_ c: F4ConvCase) {
        let f = F4Fixture(c, seed: 301)
        let dX = f.inputGradient()
        let r = checkGradient(f.x, analytic: dX, indices: sampleIndices(f.x.count, 40, seed: 1),
                              eps: 0.25, scale: 1e-2, loss: { dot(f.g, f.forward()) })
        #expect(r.worstRelativeError <= gradientTolerance, "dX \(c): \(r)")
    }

    /// conv3dForward / conv3dBackward take F(4,3) for forward and dX under `.winograd` where the rule
    /// says so (dW as F(2,3) would), and F(2,3) under `.winograd2`.
    @Test func dispatchFollowsTheRule() {
        let g = Conv3dGeometry(inChannels: 9, outChannels: 11, kernel: 3, stride: 1, padding: 1)
        let s = Shape5(n: 1, c: 9, d: 8, h: 8, w: 67)   // 68 tiles
        #expect(ConvAlgorithm(rawValue: "winograd2") == .winograd2)
        ConvAlgorithm.choice.with(.winograd) { #expect(WinogradF4Conv.isUsed(for: g, input: s)) }
        ConvAlgorithm.choice.with(.winograd2) {
            #expect(!WinogradF4Conv.isUsed(for: g, input: s))
            #expect(WinogradConv.isUsed(for: g, input: s))
        }
        let f = F4Fixture(F4ConvCase(cin: 9, cout: 11, input: s.dims), seed: 81)
        for algorithm in [ConvAlgorithm.winograd, .winograd2] {
            ConvAlgorithm.choice.with(algorithm) {
                let ws = ConvWorkspace()
                let y = Tensor(zeros: f.g.shape), dX = Tensor(zeros: s.dims), dW = Tensor(shape: f.w.shape, repeating: 0.25)
                conv3dForward(y: y, x: f.x, weight: f.w, geometry: g, workspace: ws)
                conv3dBackward(dX: dX, dWeight: dW, dY: f.g, x: f.x, weight: f.w, geometry: g, workspace: ws)
                let y2 = Tensor(zeros: f.g.shape), dX2 = Tensor(zeros: s.dims), dW2 = Tensor(shape: f.w.shape, repeating: 0.25)
                winogradForward(y: y2, x: f.x, weight: f.w, geometry: g, buffers: ws.winograd)
                winogradBackward(dX: dX2, dWeight: dW2, dY: f.g, x: f.x, weight: f.w, geometry: g, buffers: ws.winograd)
                if algorithm == .winograd {
                    #expect(y.array == f.forward().array)
                    #expect(dX.array == f.inputGradient().array)
                } else {
                    #expect(y.array == y2.array)
                    #expect(dX.array == dX2.array)
                }
                #expect(dW.array == dW2.array, "\(algorithm): dW stays on F(2,3)")
            }
        }
    }

    /// The rule at the paper's sizes: layer1 (64→64 on 16×32×32 at a 64×128×128 input, 35×64×64
    /// at 138×256×256) and layer2 at 138×256×256 take F(4,3); wider layers, few tiles, empty
    /// batches and other convs do not.
    @Test func ruleAtThePapersSizes() {
        func used(_ c: Int, _ d: Int, _ h: Int, _ w: Int, n: Int = 1, stride: Int = 1) -> Bool {
            let g = Conv3dGeometry(inChannels: c, outChannels: c, kernel: 3, stride: stride, padding: 1)
            return ConvAlgorithm.choice.with(.winograd) { WinogradF4Conv.isUsed(for: g, input: Shape5(n: n, c: c, d: d, h: h, w: w)) }
        }
        #expect(used(64, 16, 32, 32))
        #expect(used(64, 35, 64, 64))
        #expect(!used(128, 8, 16, 16))    // layer2 at 64×128×128: 32 tiles
        #expect(used(128, 18, 32, 32))    // layer2 at 138×256×256: 320 tiles, 72 per block
        #expect(!used(256, 9, 16, 16))    // layer3 at 138×256×256: 48 tiles, 32 per block
        #expect(used(64, 16, 32, 32, n: 4))
        #expect(!used(64, 8, 16, 16))     // 16 tiles
        #expect(!used(64, 8, 16, 16, n: 4))   // 16 per sample: the batch does not count
        #expect(!used(256, 4, 8, 8))
        #expect(!used(512, 2, 4, 4))
        #expect(!used(64, 16, 32, 32, n: 0))
        #expect(!used(64, 16, 32, 32, stride: 2))
        // `winograd4-sample-tiles` (dsan bench tuning) moves the per-sample threshold only: a
        // block must still hold `minimumTiles`.
        ConvTuning.with(.winograd4SampleTiles, 32) {
            #expect(used(128, 8, 16, 16))     // layer2 at 64×128×128: 32 tiles
            #expect(!used(256, 9, 16, 16))    // layer3 at 138×256×256: 48 tiles, but 32 per block
            #expect(!used(64, 4, 8, 16))      // 8 tiles
        }
    }
}
