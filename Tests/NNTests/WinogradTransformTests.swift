import NumericalTesting
import Testing
import VectorKernels
@testable import NN

// The C Winograd transforms (Sources/VectorKernels/winograd_body.h) at every ISA level this CPU
// supports, bit for bit against the Swift SIMD8 transforms they replace
// (WinogradReferenceTransforms.swift): the input, gradient and output transforms block by block
// (32-tile blocks cut mid tile-row and across samples, and whole-volume blocks), over odd extents,
// partial edge tiles and runs of 1 to 32 tiles along w (a 16-lane chunk and a partial one), and
// the weight and weight-gradient transforms over channel counts around multiples of 4, 8 and 16.
// The inputs hold −0, +0 and large values next to uniform ones, so a changed operation order or a
// +0/−0 difference (A's −y is 0 − y in both) shows. The C transforms must also leave every column
// outside a block untouched (the Swift ones wrote junk into the row slack).

private let volumeCases: [WinogradVolumeCase] = [
    WinogradVolumeCase(input: [2, 3, 5, 7, 9], outC: 5, blockBytes: 1),
    WinogradVolumeCase(input: [2, 3, 5, 7, 9], outC: 5, blockBytes: 8 << 20),
    // tW = 19: one 16-lane chunk and a partial one; 8-lane: two chunks and a partial one.
    WinogradVolumeCase(input: [1, 9, 4, 3, 37], outC: 6, blockBytes: 1),
    WinogradVolumeCase(input: [1, 9, 4, 3, 37], outC: 6, blockBytes: 8 << 20),
    // tW = 32: two whole 16-lane chunks per row; even extents.
    WinogradVolumeCase(input: [1, 4, 4, 2, 64], outC: 3, blockBytes: 8 << 20),
    // One voxel, thin volumes.
    WinogradVolumeCase(input: [1, 2, 1, 1, 1], outC: 3, blockBytes: 8 << 20),
    WinogradVolumeCase(input: [3, 2, 2, 1, 3], outC: 2, blockBytes: 1),
]

@Suite(.serialized) struct WinogradTransformTests {
    /// V (input transform) and dM (gradient transform) of each block, compared over the block's
    /// columns; the columns past the block keep their sentinel.
    @Test(arguments: volumeCases)
    func inputAndGradientTransformsMatchSwiftAtEveryLevel(_ c: WinogradVolumeCase) {
        let s = Shape5(c.input), inC = c.input[1], outC = c.outC
        let p = WinogradPlan(s, inC: inC, outC: outC, blockBytes: c.blockBytes)
        let x = AlignedFloats(bitTestValues(s.n * inC * s.d * s.h * s.w, seed: 11))
        let dy = AlignedFloats(bitTestValues(s.n * outC * s.d * s.h * s.w, seed: 12))
        let referenceScratch = AlignedFloats(referenceScratchFloats(p))
        var g = p.geometry
        let scratch = AlignedFloats(dsan_winograd_scratch_floats(&g))
        let sentinel = Float(bitPattern: 0x7fc0_1234)
        atEveryVectorLevelNamed { level in
            for block in 0..<p.blocks {
                let t0 = block * p.blockTiles, t1 = min(p.tiles, t0 + p.blockTiles), t = t1 - t0
                for (channels, source, isGradient) in [(inC, x, false), (outC, dy, true)] {
                    let plane = p.plane(channels)
                    let reference = AlignedFloats(64 * plane), fast = AlignedFloats(64 * plane, sentinel)
                    let half = channels / 2
                    if isGradient {
                        referenceGradientTransform(p, source.pointer, channels: channels, 0, channels, t0, t1,
                                                   reference.pointer, referenceScratch.pointer)
                        dsan_winograd_gradient_transform(&g, source.pointer, channels, 0, half, t0, t1, fast.pointer, scratch.pointer)
                        dsan_winograd_gradient_transform(&g, source.pointer, channels, half, channels, t0, t1, fast.pointer, scratch.pointer)
                    } else {
                        referenceInputTransform(p, source.pointer, channels: channels, 0, channels, t0, t1,
                                                reference.pointer, referenceScratch.pointer)
                        dsan_winograd_input_transform(&g, source.pointer, channels, 0, half, t0, t1, fast.pointer, scratch.pointer)
                        dsan_winograd_input_transform(&g, source.pointer, channels, half, channels, t0, t1, fast.pointer, scratch.pointer)
                    }
                    var inside: [Float] = [], expected: [Float] = [], outside: [Float] = []
                    // Each ξ's `channels` rows of `ld`, then the padding up to the next ξ (outside).
                    for i in 0..<(64 * plane) {
                        let (row, column) = ((i % plane) / p.ld, (i % plane) % p.ld)
                        if row < channels && column < t {
                            inside.append(fast.pointer[i])
                            expected.append(reference.pointer[i])
                        } else {
                            outside.append(fast.pointer[i])
                        }
                    }
                    let what = isGradient ? "gradient transform" : "input transform"
                    let first = firstBitDifference(inside, expected)
                    #expect(first == nil, "\(what) \(c), block \(block), level \(level): value \(first ?? -1) is \(first.map { inside[$0] } ?? 0), Swift \(first.map { expected[$0] } ?? 0)")
                    #expect(outside.allSatisfy { $0.bitPattern == sentinel.bitPattern },
                            "\(what) \(c), block \(block), level \(level) wrote outside the block's columns")
                }
            }
        }
    }

    /// y (output transform) after all blocks, from the same M.
    @Test(arguments: volumeCases)
    func outputTransformMatchesSwiftAtEveryLevel(_ c: WinogradVolumeCase) {
        let s = Shape5(c.input), outC = c.outC
        let p = WinogradPlan(s, inC: c.input[1], outC: outC, blockBytes: c.blockBytes)
        let m = AlignedFloats(bitTestValues(64 * p.plane(outC), seed: 21))
        let referenceScratch = AlignedFloats(referenceScratchFloats(p))
        var g = p.geometry
        let volume = s.n * outC * s.d * s.h * s.w
        atEveryVectorLevelNamed { level in
            let reference = AlignedFloats(volume, .nan), fast = AlignedFloats(volume, .nan)
            for block in 0..<p.blocks {
                let t0 = block * p.blockTiles, t1 = min(p.tiles, t0 + p.blockTiles)
                referenceOutputTransform(p, m.pointer, channels: outC, 0, outC, t0, t1, reference.pointer, referenceScratch.pointer)
                dsan_winograd_output_transform(&g, m.pointer, outC, 0, outC / 2, t0, t1, fast.pointer)
                dsan_winograd_output_transform(&g, m.pointer, outC, outC / 2, outC, t0, t1, fast.pointer)
            }
            let (a, b) = (fast.array, reference.array)
            #expect(!a.contains { $0.isNaN }, "output transform \(c), level \(level): an output was not written")
            let first = firstBitDifference(a, b)
            #expect(first == nil, "output transform \(c), level \(level): y[\(first ?? -1)] is \(first.map { a[$0] } ?? 0), Swift \(first.map { b[$0] } ?? 0)")
        }
    }

    /// U = G⊗³g, and dWeight += Gᵀ⊗³dU onto a non-zero dWeight, split over two output-channel ranges;
    /// with `overwrite`, dWeight = Gᵀ⊗³dU onto NaN (never read): the sum onto +0 (as values: a −0
    /// written stays −0 where +0 + −0 gives +0).
    @Test func weightTransformsMatchSwiftAtEveryLevel() {
        let referenceScratch = AlignedFloats(3 * 64 * 8)
        for (k, shape) in winogradWeightShapes.enumerated() {
            let (cout, cin) = shape
            let weight = AlignedFloats(bitTestValues(cout * cin * 27, seed: 31 + UInt64(k)))
            let du = AlignedFloats(bitTestValues(64 * cout * cin, seed: 41 + UInt64(k)))
            let start = bitTestValues(cout * cin * 27, seed: 51 + UInt64(k))
            let referenceU = AlignedFloats(64 * cout * cin, .nan), referenceDW = AlignedFloats(start)
            let referenceWritten = AlignedFloats(cout * cin * 27, 0)
            referenceWeightTransform(weight.pointer, cout: cout, cin: cin, 0, cout, referenceU.pointer, referenceScratch.pointer)
            referenceWeightGradientTransform(du.pointer, cout: cout, cin: cin, 0, cout, referenceDW.pointer, referenceScratch.pointer)
            referenceWeightGradientTransform(du.pointer, cout: cout, cin: cin, 0, cout, referenceWritten.pointer, referenceScratch.pointer)
            atEveryVectorLevelNamed { level in
                let u = AlignedFloats(64 * cout * cin, .nan), dW = AlignedFloats(start)
                let written = AlignedFloats(cout * cin * 27, .nan)
                for (co0, co1) in [(0, cout / 2), (cout / 2, cout)] {
                    dsan_winograd_weight_transform(weight.pointer, cout, cin, co0, co1, u.pointer)
                    dsan_winograd_weight_gradient_transform(du.pointer, cout, cin, co0, co1, dW.pointer, 0)
                    dsan_winograd_weight_gradient_transform(du.pointer, cout, cin, co0, co1, written.pointer, 1)
                }
                #expect(written.array == referenceWritten.array, "weight gradient transform \(cout)×\(cin), level \(level), overwrite")
                let firstU = firstBitDifference(u.array, referenceU.array)
                #expect(firstU == nil, "weight transform \(cout)×\(cin), level \(level): U[\(firstU ?? -1)] differs")
                let firstDW = firstBitDifference(dW.array, referenceDW.array)
                #expect(firstDW == nil, "weight gradient transform \(cout)×\(cin), level \(level): dWeight[\(firstDW ?? -1)] differs")
            }
        }
    }

    /// Whole Winograd convs (forward, dX, dW) give the same bits at every level.
    @Test func convolutionsGiveTheSameBitsAtEveryLevel() {
        let geometry = Conv3dGeometry(inChannels: 9, outChannels: 11, kernel: 3, stride: 1, padding: 1)
        let x = uniformTensor([2, 9, 5, 6, 37], seed: 61)
        let w = uniformTensor(geometry.weightShape, seed: 62, -0.5, 0.5)
        let dy = uniformTensor([2, 11, 5, 6, 37], seed: 63)
        let workspace = ConvWorkspace(bytes: 1 << 20)
        var results: [(String, [Float])] = []
        atEveryVectorLevelNamed { level in
            let y = Tensor(shape: dy.shape, repeating: .nan)
            let dX = Tensor(shape: x.shape, repeating: 7), dW = Tensor(shape: w.shape, repeating: 0.25)
            winogradForward(y: y, x: x, weight: w, geometry: geometry, buffers: workspace.winograd, blockBytes: 1)
            winogradBackward(dX: dX, dWeight: dW, dY: dy, x: x, weight: w, geometry: geometry,
                             buffers: workspace.winograd, blockBytes: 1)
            results.append((level, y.array + dX.array + dW.array))
        }
        for (level, r) in results.dropFirst() {
            #expect(firstBitDifference(r, results[0].1) == nil, "level \(level) differs from \(results[0].0)")
        }
    }
}
