import NumericalTesting
import Testing
import VectorKernels
@testable import NN

/// VectorKernels' layout kernels (vol2col, col2vol, max pooling) at every level this CPU supports
/// against their scalar references `dsan_vk_reference_*`, bit for bit: they move, add in a fixed
/// order and compare floats, so no level may change a bit. The shapes put rows shorter and longer
/// than one 16-lane vector, tiles that start and end inside an output row, strides 1, 2 (the vector
/// paths) and 3 (scalar), and windows that hang over the padding; the values include ±0, NaN, −∞
/// and ties.
@Suite(.serialized) struct LayoutKernelsTests {

    private func expectSameBits(_ a: [Float], _ b: [Float], _ what: String, _ level: Int32) {
        let name = String(cString: dsan_vk_level_name(level))
        #expect(a.count == b.count)
        let first = (0..<min(a.count, b.count)).first { a[$0].bitPattern != b[$0].bitPattern }
        #expect(first == nil, "\(what) at level \(name): element \(first ?? -1) is \(first.map { a[$0] } ?? 0), reference \(first.map { b[$0] } ?? 0)")
    }

    /// Uniform values in [−2, 2) with ±0, NaN and −∞ sprinkled in; `ties` rounds them to a few
    /// levels so windows hold equal maxima.
    private func values(_ count: Int, seed: UInt64, ties: Bool = false) -> [Float] {
        var rng = SplitMix64(seed: seed)
        let t = Tensor(zeros: [count])
        t.fillUniform(-2, 2, rng: &rng)
        var v = Array(UnsafeBufferPointer(start: t.data, count: count))
        if ties { v = v.map { ($0 * 2).rounded() / 2 } }
        for i in stride(from: 5, to: count, by: 97) { v[i] = 0 }
        for i in stride(from: 11, to: count, by: 89) { v[i] = -0.0 }
        for i in stride(from: 23, to: count, by: 211) { v[i] = .nan }
        for i in stride(from: 31, to: count, by: 157) { v[i] = -.infinity }
        return v
    }

    /// (input [C, D, H, W], kernel, stride, padding), conv-like windows.
    private let convCases: [(input: [Int], k: Size3, s: Size3, p: Size3)] = [
        ([2, 9, 11, 70], Size3(7), Size3(2), Size3(3)),           // the stem's window, rows of 35
        ([3, 7, 9, 37], Size3(3), Size3(2), Size3(1)),            // a strided 3³ conv, rows of 19
        ([4, 6, 8, 40], Size3(1), Size3(2), Size3(0)),            // the 1×1×1 stride-2 shortcut
        ([2, 5, 6, 53], Size3(3), Size3(1), Size3(1)),            // stride 1, rows of 53
        ([2, 8, 7, 29], Size3(3, 2, 4), Size3(3, 1, 3), Size3(1, 0, 2)),   // stride 3: scalar path
        ([3, 4, 5, 6], Size3(3), Size3(2), Size3(1)),             // rows of 3, shorter than a vector
        ([2, 5, 6, 16], Size3(3), Size3(2), Size3(1)),            // rows of 8: one AVX2 vector
        ([2, 5, 6, 34], Size3(3), Size3(2), Size3(1)),            // rows of 17: a vector and one more
    ]

    private func window(_ c: (input: [Int], k: Size3, s: Size3, p: Size3)) -> (dsan_vk_window, ConvPlan) {
        let g = Conv3dGeometry(inChannels: c.input[0], outChannels: 1, kernel: c.k, stride: c.s, padding: c.p)
        let plan = ConvPlan(g, Shape5([1] + c.input))
        return (plan.window, plan)
    }

    /// Tiles of output positions: the whole, and pieces starting and ending inside output rows.
    private func tiles(_ positions: Int) -> [(Int, Int)] {
        [(0, positions), (min(3, positions - 1), min(positions, positions / 2 + 7)),
         (positions / 3, positions)]
    }

    @Test func vol2colMatchesReferenceAtEveryLevel() {
        for c in convCases {
            let (g0, plan) = window(c)
            var g = g0
            let x = values(plan.inputPerSample, seed: 1)
            for (c0, c1) in [(0, plan.c), (1, plan.c)] {
                let rows = (c1 - c0) * c.k.volume, r0 = c0 * c.k.volume
                for (p0, p1) in tiles(plan.positions) {
                    var ref = [Float](repeating: 7, count: rows * (p1 - p0))
                    dsan_vk_reference_vol2col_rows(&g, x, r0, 0, rows, p0, p1, &ref)
                    atEveryVectorLevel { level in
                        var out = [Float](repeating: .nan, count: ref.count)
                        out.withUnsafeMutableBufferPointer { o in
                            x.withUnsafeBufferPointer { vol2col(plan, $0.baseAddress!, c0, c1, p0, p1, o.baseAddress!) }
                        }
                        expectSameBits(out, ref, "vol2col \(c.input) k\(c.k) s\(c.s) p\(c.p) c\(c0)..<\(c1) p\(p0)..<\(p1)", level)
                        // A part of the rows, as one worker of a parallel call writes it.
                        var part = [Float](repeating: .nan, count: ref.count)
                        dsan_vk_vol2col_rows(&g, x, r0, 1, rows, p0, p1, &part)
                        let t = p1 - p0
                        expectSameBits(Array(part[t...]), Array(ref[t...]), "vol2col rows 1..<\(rows)", level)
                    }
                }
            }
        }
    }

    /// The transposed tile (one output position's window per row, the stem's weight gradient by
    /// the packed GEMM) holds the reference tile's bits transposed, and nothing past it is
    /// written: also with kw = 8 and kw = 9 (no 8-wide runs) and more runs per position than the
    /// offset table takes (114 channels × 3 × 3).
    @Test func vol2colTransposedMatchesReferenceAtEveryLevel() {
        let cases = convCases + [
            ([2, 6, 7, 30], Size3(3, 2, 8), Size3(1, 1, 1), Size3(1, 0, 3)),
            ([1, 4, 5, 25], Size3(1, 2, 9), Size3(1, 1, 2), Size3(0, 1, 4)),
            ([114, 3, 3, 10], Size3(3), Size3(1), Size3(1)),
        ]
        for c in cases {
            let (g0, plan) = window(c)
            var g = g0
            let x = values(plan.inputPerSample, seed: 3)
            for (c0, c1) in [(0, plan.c), (1, plan.c)] {
                let rows = (c1 - c0) * c.k.volume, r0 = c0 * c.k.volume
                for (p0, p1) in tiles(plan.positions) {
                    let t = p1 - p0
                    var ref = [Float](repeating: 7, count: rows * t)
                    dsan_vk_reference_vol2col_rows(&g, x, r0, 0, rows, p0, p1, &ref)
                    let expected = (0..<(rows * t)).map { ref[($0 % rows) * t + $0 / rows] }
                    atEveryVectorLevel { level in
                        var out = [Float](repeating: .nan, count: rows * t + 9)
                        out.withUnsafeMutableBufferPointer { o in
                            x.withUnsafeBufferPointer { vol2colTransposed(plan, $0.baseAddress!, c0, c1, p0, p1, o.baseAddress!) }
                        }
                        let what = "vol2col transposed \(c.input) k\(c.k) s\(c.s) p\(c.p) c\(c0)..<\(c1) p\(p0)..<\(p1)"
                        expectSameBits(Array(out[..<(rows * t)]), expected, what, level)
                        let untouched = out[(rows * t)...].allSatisfy { $0.isNaN }
                        #expect(untouched, "\(what): wrote past its tile")
                    }
                }
            }
        }
    }

    @Test func col2volMatchesReferenceAtEveryLevel() {
        for c in convCases {
            let (g0, plan) = window(c)
            var g = g0
            let dx0 = values(plan.inputPerSample, seed: 2)
            for (c0, c1) in [(0, plan.c), (1, plan.c)] {
                let rows = (c1 - c0) * c.k.volume
                for (p0, p1) in tiles(plan.positions) {
                    let cols = values(rows * (p1 - p0), seed: 3)
                    var ref = dx0
                    dsan_vk_reference_col2vol_planes(&g, cols, c0, p0, p1, 0, (c1 - c0) * plan.d, &ref)
                    atEveryVectorLevel { level in
                        var out = dx0
                        out.withUnsafeMutableBufferPointer { o in
                            cols.withUnsafeBufferPointer { col2vol(plan, $0.baseAddress!, c0, c1, p0, p1, o.baseAddress!) }
                        }
                        expectSameBits(out, ref, "col2vol \(c.input) k\(c.k) s\(c.s) p\(c.p) c\(c0)..<\(c1) p\(p0)..<\(p1)", level)
                    }
                }
            }
        }
    }

    @Test func maxPoolForwardMatchesReferenceAtEveryLevel() {
        let cases: [(input: [Int], g: MaxPool3dGeometry)] = [
            ([2, 3, 9, 10, 70], MaxPool3dGeometry(kernel: 3, stride: 2, padding: 1)),   // the model's pool
            ([1, 2, 7, 6, 37], MaxPool3dGeometry(kernel: 3, stride: 2, padding: 1)),
            ([1, 2, 6, 8, 40], MaxPool3dGeometry(kernel: 2, stride: 2, padding: 0)),
            ([1, 2, 5, 6, 45], MaxPool3dGeometry(kernel: 3, stride: 1, padding: 1)),
            ([1, 2, 7, 8, 50], MaxPool3dGeometry(kernel: 3, stride: 3, padding: 1)),   // scalar path
            ([1, 1, 5, 7, 33], MaxPool3dGeometry(kernel: Size3(1, 3, 5), stride: Size3(1, 2, 2), padding: Size3(0, 1, 2))),
            ([1, 2, 3, 4, 5], MaxPool3dGeometry(kernel: 3, stride: 2, padding: 1)),    // rows of 3
        ]
        for c in cases {
            let s = Shape5(c.input), o = c.g.outputShape(for: s)
            let (k, st, p) = (c.g.kernel, c.g.stride, c.g.padding)
            var g = dsan_vk_window(d: s.d, h: s.h, w: s.w, od: o.d, oh: o.h, ow: o.w, kd: k.d, kh: k.h, kw: k.w,
                                   sd: st.d, sh: st.h, sw: st.w, pd: p.d, ph: p.h, pw: p.w)
            for ties in [false, true] {
                let x = values(s.count, seed: ties ? 5 : 4, ties: ties)
                var refY = [Float](repeating: 7, count: o.count), refAt = [Int32](repeating: -1, count: o.count)
                dsan_vk_reference_max_pool_forward(&g, x, &refY, &refAt, 0, s.n * s.c)
                atEveryVectorLevel { level in
                    let xt = Tensor(shape: s.dims, values: x), y = Tensor(shape: o.dims, repeating: .nan)
                    let at = IndexTensor(zeros: o.dims)
                    maxPool3dForward(y: y, indices: at, x: xt, geometry: c.g)
                    expectSameBits(y.array, refY, "maxPool \(c.input) \(c.g) ties \(ties)", level)
                    let indices = Array(UnsafeBufferPointer(start: at.data, count: o.count))
                    let first = (0..<o.count).first { indices[$0] != refAt[$0] }
                    #expect(first == nil, "maxPool indices \(c.input) \(c.g) ties \(ties) at level \(level): element \(first ?? -1)")
                }
            }
        }
    }

    /// The references against the textbook loops, so the comparisons above test the documented
    /// semantics: vol2col is the patch matrix of Convolution.swift's header, max pooling keeps the
    /// first maximum in scan order and lets a NaN win.
    @Test func referencesAreTheTextbookLoops() {
        // vol2col of a 1-channel [4, 5, 6] volume, 3³ stride 2 padding 1, all positions.
        let (d, h, w) = (4, 5, 6)
        let (g0, plan) = window(([1, d, h, w], Size3(3), Size3(2), Size3(1)))
        var g = g0
        let x = (0..<(d * h * w)).map { Float($0 + 1) }
        var cols = [Float](repeating: -1, count: 27 * plan.positions)
        dsan_vk_reference_vol2col_rows(&g, x, 0, 0, 27, 0, plan.positions, &cols)
        for r in 0..<27 {
            let (kd, kh, kw) = (r / 9, (r / 3) % 3, r % 3)
            for p in 0..<plan.positions {
                let (od, oh, ow) = (p / (plan.oh * plan.ow), (p / plan.ow) % plan.oh, p % plan.ow)
                let (id, ih, iw) = (od * 2 - 1 + kd, oh * 2 - 1 + kh, ow * 2 - 1 + kw)
                let inside = id >= 0 && id < d && ih >= 0 && ih < h && iw >= 0 && iw < w
                #expect(cols[r * plan.positions + p] == (inside ? x[(id * h + ih) * w + iw] : 0))
            }
        }
        // Max pooling of one window [1, 3, 3] over a row with a tie, then a NaN.
        var pg = dsan_vk_window(d: 1, h: 1, w: 6, od: 1, oh: 1, ow: 2, kd: 1, kh: 1, kw: 3,
                                sd: 1, sh: 1, sw: 3, pd: 0, ph: 0, pw: 0)
        var y = [Float](repeating: 0, count: 2), at = [Int32](repeating: 0, count: 2)
        dsan_vk_reference_max_pool_forward(&pg, [1, 5, 5, .nan, 2, .nan], &y, &at, 0, 1)
        #expect(y[0] == 5 && at[0] == 1)
        #expect(y[1].isNaN && at[1] == 5)
    }
}
