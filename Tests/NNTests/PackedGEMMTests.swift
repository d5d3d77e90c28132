import NumericalTesting
import Testing
import VectorKernels
@testable import NN

// dsan's packed GEMM and the weight transform that feeds it (Sources/VectorKernels/
// packed_gemm_body.h, winograd_body.h), at every ISA level this CPU supports:
// - the packed transform gives U's bits (those of dsan_winograd_weight_transform, itself held to
//   the Swift reference in WinogradTransformTests) at the packed positions, forward and adjoint
//   (transposed, at Pξ), with the padding rows +0, whichever way the panels are split;
// - the GEMM against a float64 sum within the worst-case rounding bound of a float sum of k
//   products, on shapes with partial panels, every column tail (1–5) and k = 1, writing nothing
//   outside its m × n block, also in slices of k;
// - the fused weight gradient against float64, and the arithmetic probe's recurrence.
// Whole convs on the packed path are in PackedWinogradConvTests.
//
// The GEMM fuses multiply-adds at AVX2 and AVX-512 and does not at the baseline level, so it is
// the one kernel whose bits depend on the level (packed_gemm_body.h); everything else in a
// Winograd conv is the same bits at every level (WinogradTransformTests). So it runs at a level
// fixed at start-up, and these tests reach each level through the _at functions instead of
// switching a process-wide level under the suites that run beside them.

/// Runs `body` with each level this CPU supports. It never switches a process-wide level: the
/// packed GEMM's bits depend on the level, and other suites compute convs at the same time.
private func atEveryLevel(_ body: (Int32, String) -> Void) {
    for level in 0...dsan_vk_supported_level() { body(level, String(cString: dsan_vk_level_name(level))) }
}

/// P of Winograd.swift: indices 0 and 3 swapped along each axis of ξ.
private func flipped(_ xi: Int) -> Int {
    func f(_ i: Int) -> Int { i == 0 ? 3 : i == 3 ? 0 : i }
    return (f(xi / 16) * 4 + f((xi / 4) % 4)) * 4 + f(xi % 4)
}

/// The packed A of a cout × cin conv's weights at `level`, forward or for dX (adjoint): rows per
/// panel R, the matrix's rows m and columns k, its panels and the floats of one matrix.
private func packedLayout(_ level: Int32, cout: Int, cin: Int, adjoint: Bool)
    -> (r: Int, m: Int, k: Int, panels: Int, plane: Int) {
    let r = dsan_vk_packed_gemm_panel_rows_at(level)
    let (m, k) = adjoint ? (cin, cout) : (cout, cin)
    let panels = (m + r - 1) / r
    return (r, m, k, panels, panels * r * k)
}

/// Columns k0..<k1 of the m × k row-major matrix `plain` in the packed GEMM's layout for panels of
/// r rows: A[i][kk] at ((i / r)·K + kk)·r + i % r with K = k1 − k0, rows past m zero.
private func packedRows(_ plain: [Float], m: Int, k: Int, r: Int, columns k0: Int = 0, _ k1: Int? = nil) -> AlignedFloats {
    let kc = (k1 ?? k) - k0
    let a = AlignedFloats((m + r - 1) / r * r * kc)
    for i in 0..<m { for kk in 0..<kc { a.pointer[((i / r) * kc + kk) * r + i % r] = plain[i * k + k0 + kk] } }
    return a
}

@Suite(.serialized) struct PackedGEMMTests {
    @Test func packedTransformHasUsBitsAtEveryLevel() {
        for (cout, cin) in [(5, 3), (11, 9), (17, 33), (40, 7), (64, 64), (3, 50)] {
            let weight = AlignedFloats(uniformTensor([cout * cin * 27], seed: UInt64(cout * 100 + cin)).array)
            let u = AlignedFloats(64 * cout * cin, .nan)
            dsan_winograd_weight_transform(weight.pointer, cout, cin, 0, cout, u.pointer)
            atEveryLevel { lv, level in
                for adjoint in [false, true] {
                    let (r, m, k, panels, plane) = packedLayout(lv, cout: cout, cin: cin, adjoint: adjoint)
                    let a = AlignedFloats(64 * plane, .nan)
                    // Calls that split the panels, as two workers would, and the second half's columns
                    // at 8 and at 13 (a run of the transform's staging, and one across it), as the
                    // items of many workers would; the buffer starts as NaN, so a column no call
                    // wrote shows.
                    let cut = min(8, k), odd = min(13, k)
                    for (p0, p1, k0, k1) in [(0, panels / 2, 0, k), (panels / 2, panels, 0, cut),
                                             (panels / 2, panels, cut, odd), (panels / 2, panels, odd, k)] where k0 < k1 {
                        dsan_vk_winograd_weight_transform_packed_at(lv, weight.pointer, cout, cin, adjoint ? 1 : 0, p0, p1,
                                                                    k0, k1, a.pointer)
                    }
                    var mismatches = 0, firstMismatch = ""
                    for xi in 0..<64 {
                        for row in 0..<(panels * r) {
                            for kk in 0..<k {
                                let packed = a.pointer[xi * plane + ((row / r) * k + kk) * r + row % r]
                                let expected: Float = row >= m ? 0
                                    : adjoint ? u.pointer[flipped(xi) * cout * cin + kk * cin + row]
                                    : u.pointer[xi * cout * cin + row * cin + kk]
                                if packed.bitPattern != expected.bitPattern {
                                    if mismatches == 0 { firstMismatch = "ξ \(xi) row \(row) column \(kk): \(packed) vs \(expected)" }
                                    mismatches += 1
                                }
                            }
                        }
                    }
                    #expect(mismatches == 0, "\(cout)×\(cin) adjoint \(adjoint) level \(level): \(mismatches) differ, first \(firstMismatch)")
                }
            }
        }
    }

    /// Columns k0..<k1 of panel p of part `part` of `parts` of the matrices, by
    /// `dsan_winograd_weight_transform_panel` at level `lv`, against the same columns of `whole`
    /// (the packed transform of every panel): the entries whose bits differ, and whether the
    /// call wrote nothing past its slice.
    private func panelSliceAgainstWhole(_ lv: Int32, _ weight: AlignedFloats, cout: Int, cin: Int, adjoint: Bool,
                                        whole: AlignedFloats, panel p: Int, columns k0: Int, _ k1: Int,
                                        part: Int, of parts: Int, staged: Int32) -> (mismatches: Int, nothingPast: Bool) {
        let (r, _, k, _, plane) = packedLayout(lv, cout: cout, cin: cin, adjoint: adjoint)
        var xis = [Int](repeating: 0, count: 64 / parts)
        dsan_winograd_panel_part_matrices(part, parts, &xis)
        let kc = k1 - k0, stride = dsan_vk_winograd_panel_plane_floats_at(lv, kc)
        let slice = AlignedFloats(xis.count * stride + 9, .nan)
        dsan_vk_winograd_weight_transform_panel_at(lv, weight.pointer, cout, cin, adjoint ? 1 : 0, p, k0, k1, part, parts,
                                                   staged, slice.pointer)
        var mismatches = 0
        for (j, xi) in xis.enumerated() {
            for kk in 0..<kc {
                for i in 0..<r {
                    let got = slice.pointer[j * stride + kk * r + i]
                    let expected = whole.pointer[xi * plane + (p * k + k0 + kk) * r + i]
                    if got.bitPattern != expected.bitPattern { mismatches += 1 }
                }
            }
        }
        // Nothing between the matrices (each one's padding) nor past the last.
        let gaps = (0..<xis.count).flatMap { j in (j * stride + kc * r)..<((j + 1) * stride) }
        return (mismatches, (gaps + (xis.count * stride..<xis.count * stride + 9)).allSatisfy { slice.pointer[$0].isNaN })
    }

    /// A slice of a panel's columns (`dsan_winograd_weight_transform_panel` with k0..<k1, what the
    /// one-block GEMM phase transforms at a time) holds the bits of those columns of the whole
    /// packed transform, forward and adjoint, at every level, with slice bounds that are not
    /// multiples of the transform's run of 8 columns, stored directly and staged, and writes
    /// nothing between its matrices (`dsan_winograd_panel_plane_floats` apart) or past them; so does
    /// a part of its matrices (2 or 4 parts: the γ halves {0, 3} and {1, 2}, or one γ each; for
    /// the adjoint a part is the flip of another γ's transform), whose ξ cover the 64 once each,
    /// in increasing order.
    @Test func panelSlicesAndPartsHoldThePackedTransformsBits() {
        for parts in [1, 2, 4] {
            var all: [Int] = []
            for part in 0..<parts {
                var xis = [Int](repeating: -1, count: 64 / parts)
                dsan_winograd_panel_part_matrices(part, parts, &xis)
                #expect(xis == xis.sorted() && xis.allSatisfy { (0..<64).contains($0) }, "part \(part) of \(parts): \(xis)")
                all += xis
            }
            #expect(all.sorted() == Array(0..<64), "\(parts) parts cover \(all.sorted())")
        }
        for (cout, cin) in [(17, 33), (40, 21), (8, 64)] {
            let weight = AlignedFloats(uniformTensor([cout * cin * 27], seed: UInt64(cout * 31 + cin)).array)
            atEveryLevel { lv, level in
                // The slices' matrices never lie a multiple of 4 KiB apart (the slice rule's 32,
                // 64 and 128 columns make exactly 4 KiB of floats at AVX-512, AVX2 and the baseline).
                let r = dsan_vk_packed_gemm_panel_rows_at(lv)
                for columns in [1, 8, 32, 64, 128, 512] {
                    let stride = dsan_vk_winograd_panel_plane_floats_at(lv, columns)
                    #expect(stride > columns * r && stride * 4 % 4096 != 0 && stride % (r / 2) == 0,
                            "level \(level): \(columns) columns, matrices \(stride) floats apart")
                }
                for adjoint in [false, true] {
                    let (_, _, k, panels, plane) = packedLayout(lv, cout: cout, cin: cin, adjoint: adjoint)
                    let whole = AlignedFloats(64 * plane, .nan)
                    dsan_vk_winograd_weight_transform_packed_at(lv, weight.pointer, cout, cin, adjoint ? 1 : 0, 0, panels, 0, k,
                                                                whole.pointer)
                    for p in 0..<panels {
                        for (k0, k1) in [(0, k), (0, 5), (5, 13), (13, k), (k - 1, k)] where k0 < k1 && k1 <= k {
                            for parts in [1, 2, 4] {
                                for part in 0..<parts {
                                    for staged: Int32 in [0, 1] {   // stored directly (the convs' way) and staged
                                        let (mismatches, past) = panelSliceAgainstWhole(lv, weight, cout: cout, cin: cin,
                                                                                        adjoint: adjoint, whole: whole, panel: p,
                                                                                        columns: k0, k1, part: part, of: parts,
                                                                                        staged: staged)
                                        #expect(mismatches == 0 && past,
                                                "\(cout)×\(cin) adjoint \(adjoint) level \(level) panel \(p) columns \(k0)..<\(k1) part \(part)/\(parts) staged \(staged): \(mismatches) differ, nothing past: \(past)")
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }

    /// The GEMM taken in slices of k (`dsan_packed_gemm_partial`: partial sums kept in the kernel's
    /// order between slices, C written by the last) gives the bits of one call over all of k at
    /// every level, on partial panels, column tails and layer4's shape, with uneven slices and
    /// slices of one column; it writes nothing outside C's block. A slice dropped or taken twice
    /// changes the bits, so the comparison fails when the slices do not chain.
    @Test func gemmInSlicesOfKGivesTheWholeProductsBits() {
        for (m, k, n) in [(17, 9, 13), (40, 17, 5), (33, 64, 6), (512, 512, 32), (5, 3, 1)] {
            let ldb = n + 3, ldc = n + 5
            let b = AlignedFloats(uniformTensor([k * ldb], seed: UInt64(m * 5 + k + n)).array)
            let aPlain = uniformTensor([m * k], seed: UInt64(m * 3 + k * 7 + n)).array
            let cuts = Array(Set([0, 1, k / 3, k / 2 + 1, k].filter { $0 <= k })).sorted()
            atEveryLevel { lv, level in
                let r = dsan_vk_packed_gemm_panel_rows_at(lv)
                let a = packedRows(aPlain, m: m, k: k, r: r)
                let whole = AlignedFloats(m * ldc + 7, .nan)
                dsan_vk_packed_gemm_at(lv, a.pointer, m, k, b.pointer, ldb, whole.pointer, ldc, n)
                let sliced = AlignedFloats(m * ldc + 7, .nan)
                let partial = AlignedFloats((m + r - 1) / r * r * n, .nan)
                var slices = 0
                for (k0, k1) in zip(cuts, cuts.dropFirst()) where k0 < k1 {
                    // The slice's columns of A, packed on their own as the transform's slices are.
                    let aSlice = packedRows(aPlain, m: m, k: k, r: r, columns: k0, k1)
                    dsan_vk_packed_gemm_partial_at(lv, aSlice.pointer, m, k1 - k0, b.pointer + k0 * ldb, ldb, n,
                                                   k0 == 0 ? nil : UnsafePointer(partial.pointer), k1 == k ? nil : partial.pointer,
                                                   sliced.pointer, ldc)
                    slices += 1
                }
                #expect(slices >= 2 || k < 3, "\(m)×\(k)×\(n): \(slices) slices")
                var mismatches = 0, untouched = true
                for i in 0..<(m * ldc + 7) {
                    let (got, expected) = (sliced.pointer[i], whole.pointer[i])
                    if expected.isNaN { untouched = untouched && got.isNaN } else if got.bitPattern != expected.bitPattern { mismatches += 1 }
                }
                #expect(mismatches == 0 && untouched, "\(m)×\(k)×\(n) level \(level) cuts \(cuts): \(mismatches) differ, untouched \(untouched)")
            }
        }
    }

    /// `dsan_packed_gemm_pack` writes what `packedRows` (the layout's definition) does, row stride
    /// apart from the columns, on whole and partial 8 × 8 blocks and panels, rows past m +0, and
    /// nothing past the packed matrix.
    @Test func packWritesThePackedLayoutAtEveryLevel() {
        for (m, k, ld) in [(64, 764, 800), (64, 5, 9), (5, 3, 3), (70, 17, 20), (33, 8, 8), (16, 1, 4), (8, 16, 16)] {
            let plain = uniformTensor([m * ld], seed: UInt64(m * 7 + k)).array
            let dense = (0..<(m * k)).map { plain[($0 / k) * ld + $0 % k] }
            expectPacking("pack", source: plain, as: dense, m: m, k: k, ld: ld) { dsan_vk_packed_gemm_pack_at($0, $1, $2, $3, $4, $5) }
        }
    }

    /// `dsan_packed_gemm_pack_transposed` packs the transpose of its source: what `packedRows`
    /// writes for srcᵀ, rows past m +0, nothing past the packed matrix.
    @Test func packTransposedWritesThePackedLayoutAtEveryLevel() {
        for (m, k, ld) in [(216, 128, 6912), (5, 3, 5), (70, 17, 75), (33, 8, 40), (16, 1, 16)] {
            let src = uniformTensor([k * ld], seed: UInt64(m * 5 + k)).array
            let transposed = (0..<(m * k)).map { src[($0 % k) * ld + $0 / k] }   // [m × k], row-major
            expectPacking("pack transposed", source: src, as: transposed, m: m, k: k, ld: ld) {
                dsan_vk_packed_gemm_pack_transposed_at($0, $1, $2, $3, $4, $5)
            }
        }
    }

    /// At every level, `pack(level, source, ld, m, k, out)` writes `packedRows` of `matrix` (the m × k
    /// matrix it should pack, row-major) bit for bit, and nothing past the packed matrix.
    private func expectPacking(_ name: String, source: [Float], as matrix: [Float], m: Int, k: Int, ld: Int,
                               _ pack: (Int32, UnsafePointer<Float>, Int, Int, Int, UnsafeMutablePointer<Float>) -> Void) {
        atEveryLevel { lv, level in
            let r = dsan_vk_packed_gemm_panel_rows_at(lv)
            let expected = packedRows(matrix, m: m, k: k, r: r)
            let count = (m + r - 1) / r * r * k
            let out = AlignedFloats(count + 9, .nan)
            source.withUnsafeBufferPointer { pack(lv, $0.baseAddress!, ld, m, k, out.pointer) }
            let differing = (0..<count).filter { out.pointer[$0].bitPattern != expected.pointer[$0].bitPattern }
            #expect(differing.isEmpty, "\(name) \(m)×\(k) ld \(ld) level \(level): \(differing.count) floats differ, first \(differing.first ?? -1)")
            #expect((count..<(count + 9)).allSatisfy { out.pointer[$0].isNaN }, "\(name) \(m)×\(k) level \(level) wrote past its matrix")
        }
    }

    @Test func gemmMatchesFloat64AtEveryLevel() {
        // (m, k, n): partial panels at every level (panels of 8, 16, 32 rows), every column tail,
        // k = 1, one row, and layer4's shape at batch 1 (512 × 512, 32 tiles).
        let shapes = [(1, 1, 1), (5, 3, 7), (17, 9, 13), (33, 64, 6), (40, 17, 5), (16, 8, 4), (8, 20, 3),
                      (31, 2, 2), (1, 100, 11), (512, 512, 32)]
        for (m, k, n) in shapes {
            let ldb = n + 3, ldc = n + 5
            let b = AlignedFloats(uniformTensor([k * ldb], seed: UInt64(m * 7 + k * 3 + n)).array)
            let aPlain = uniformTensor([m * k], seed: UInt64(m + k + n)).array
            atEveryLevel { lv, level in
                let r = dsan_vk_packed_gemm_panel_rows_at(lv)
                let a = packedRows(aPlain, m: m, k: k, r: r)
                let c = AlignedFloats(m * ldc + 7, .nan)
                dsan_vk_packed_gemm_at(lv, a.pointer, m, k, b.pointer, ldb, c.pointer, ldc, n)
                var worst = 0.0, untouched = true
                for i in 0..<m {
                    for j in 0..<ldc {
                        let value = c.pointer[i * ldc + j]
                        if j >= n { untouched = untouched && value.isNaN; continue }
                        var sum = 0.0, magnitude = 0.0
                        for kk in 0..<k {
                            let p = Double(aPlain[i * k + kk]) * Double(b.pointer[kk * ldb + j])
                            sum += p; magnitude += abs(p)
                        }
                        // A float sum of k products: |error| ≤ (k + 1)·2⁻²⁴·Σ|products| (+ a tiny floor).
                        let bound = Double(k + 1) * 0x1p-24 * magnitude + 1e-30
                        worst = max(worst, abs(Double(value) - sum) / bound)
                    }
                }
                for i in (m * ldc)..<(m * ldc + 7) { untouched = untouched && c.pointer[i].isNaN }
                #expect(worst <= 1, "\(m)×\(k)×\(n) level \(level): error \(worst) of the rounding bound")
                #expect(untouched, "\(m)×\(k)×\(n) level \(level): wrote outside its block")
            }
        }
    }

    /// The fused weight gradient (winograd_dw_body.h) against float64: dWeight₀ + Gᵀ⊗³ Σ_t dM_ξ·V_ξᵀ
    /// at every level, accumulating onto what dWeight held and writing nothing past it. Shapes:
    /// partial panels of output channels at every level (8, 16, 32 rows), input channels that leave
    /// a partial group of 6 and a partial chunk of 48, tiles beyond one chunk of 32 KiB at every
    /// level (more than 1024; 300 spans two chunks at AVX-512 only), fewer than one, and layer3's
    /// shape at batch 1 (256 × 256, 32 tiles). With
    /// `overwrite` it writes the same sums onto NaN (every entry written, none read). In two phases
    /// (products in parts of the 64 ξ, then the transforms) it gives the fused kernel's bits.
    @Test func fusedWeightGradientMatchesFloat64AtEveryLevel() {
        let gt: [[Double]] = [[1, 0.5, 0.5, 0], [0, 0.5, -0.5, 0], [0, 0.5, 0.5, 1]]
        for (cout, cin, tiles) in [(20, 53, 5), (16, 6, 300), (17, 7, 1100), (33, 100, 70), (8, 1, 1), (256, 256, 32)] {
            let ld = (tiles + 7) / 8 * 8 + 8
            let (dmPlane, vPlane) = (dsan_winograd_plane_floats(cout, ld), dsan_winograd_plane_floats(cin, ld))
            let dm = AlignedFloats(uniformTensor([64 * dmPlane], seed: UInt64(cout * 3 + tiles)).array)
            let v = AlignedFloats(uniformTensor([64 * vPlane], seed: UInt64(cin * 5 + tiles)).array)
            let start = uniformTensor([cout * cin * 27], seed: 77).array
            // Σ_t dM_ξ[co][t]·V_ξ[ci][t] and Σ|·| in float64, then Gᵀ⊗³ of both (of |·| with |Gᵀ|).
            var reference = [Double](repeating: 0, count: cout * cin * 27)
            var magnitude = [Double](repeating: 0, count: cout * cin * 27)
            var du = [Double](repeating: 0, count: 64), dua = [Double](repeating: 0, count: 64)
            for co in 0..<cout {
                for ci in 0..<cin {
                    for xi in 0..<64 {
                        var sum = 0.0, mag = 0.0
                        for t in 0..<tiles {
                            let p = Double(dm.pointer[xi * dmPlane + co * ld + t]) * Double(v.pointer[xi * vPlane + ci * ld + t])
                            sum += p; mag += abs(p)
                        }
                        du[xi] = sum; dua[xi] = mag
                    }
                    for k in 0..<27 {
                        let (a, b, c) = (k / 9, (k / 3) % 3, k % 3)
                        var value = 0.0, bound = 0.0
                        for xi in 0..<64 {
                            let coefficient = gt[a][xi / 16] * gt[b][(xi / 4) % 4] * gt[c][xi % 4]
                            value += coefficient * du[xi]; bound += abs(coefficient) * dua[xi]
                        }
                        reference[(co * cin + ci) * 27 + k] = Double(start[(co * cin + ci) * 27 + k]) + value
                        magnitude[(co * cin + ci) * 27 + k] = abs(Double(start[(co * cin + ci) * 27 + k])) + bound
                    }
                }
            }
            atEveryLevel { lv, level in
                let dw = AlignedFloats(cout * cin * 27 + 7, .nan)
                for i in 0..<(cout * cin * 27) { dw.pointer[i] = start[i] }
                dsan_vk_winograd_weight_gradient_at(lv, dm.pointer, v.pointer, cout, cin, tiles, ld, 1, dw.pointer, 0)
                var worst = 0.0
                for i in 0..<(cout * cin * 27) {
                    // A float sum of `tiles` products, three transform stages of two roundings each,
                    // and the final addition: |error| ≤ (tiles + 8)·2⁻²⁴·(the magnitudes' bound).
                    let bound = Double(tiles + 8) * 0x1p-24 * magnitude[i] + 1e-30
                    worst = max(worst, abs(Double(dw.pointer[i]) - reference[i]) / bound)
                }
                let untouched = (0..<7).allSatisfy { dw.pointer[cout * cin * 27 + $0].isNaN }
                #expect(worst <= 1, "\(cout)×\(cin), \(tiles) tiles, level \(level): error \(worst) of the rounding bound")
                #expect(untouched, "\(cout)×\(cin), \(tiles) tiles, level \(level): wrote past dWeight")
                // Overwriting: the sums alone, which added onto +0 are the same values.
                let written = AlignedFloats(cout * cin * 27 + 7, .nan), added = AlignedFloats(cout * cin * 27, 0)
                dsan_vk_winograd_weight_gradient_at(lv, dm.pointer, v.pointer, cout, cin, tiles, ld, 1, written.pointer, 1)
                dsan_vk_winograd_weight_gradient_at(lv, dm.pointer, v.pointer, cout, cin, tiles, ld, 1, added.pointer, 0)
                #expect(Array(written.array[0..<(cout * cin * 27)]) == added.array,
                        "\(cout)×\(cin), \(tiles) tiles, level \(level): overwrite differs from adding onto zero")
                #expect((0..<7).allSatisfy { written.pointer[cout * cin * 27 + $0].isNaN })
                // In two phases (the products of each job in 2, 3 or 16 parts of its 64 ξ, then the
                // transforms): the fused kernel's bits.
                for parts in [2, 3, 16] {
                    let split = AlignedFloats(cout * cin * 27 + 7, .nan)
                    for i in 0..<(cout * cin * 27) { split.pointer[i] = start[i] }
                    dsan_vk_winograd_weight_gradient_at(lv, dm.pointer, v.pointer, cout, cin, tiles, ld, parts, split.pointer, 0)
                    let same = (0..<(cout * cin * 27)).allSatisfy { split.pointer[$0].bitPattern == dw.pointer[$0].bitPattern }
                    #expect(same, "\(cout)×\(cin), \(tiles) tiles, level \(level): \(parts) parts differ from fused")
                    #expect((0..<7).allSatisfy { split.pointer[cout * cin * 27 + $0].isNaN })
                }
            }
        }
    }

    /// The arithmetic probe of `dsan bench threads` (beside the GEMM, at its level) computes its
    /// recurrence on all 12 registers and every lane: x ← x·0.5 + 1 from x = 1…12 (the product is
    /// exact, so fused and unfused multiply-adds give the same bits), summed register by register
    /// and lane by lane as the kernel does; and counts 2 operations per lane and register.
    @Test func multiplyAddProbeComputesItsRecurrenceAtEveryLevel() {
        atEveryLevel { level, name in
            let flops = dsan_vk_multiply_add_probe_flops_at(level)
            let lanes = [4, 8, 16][Int(level)]
            #expect(flops == 24 * lanes, "\(name)")
            for iterations in [0, 1, 7, 40] {
                var total: Float = 0
                for i in 0..<12 {
                    var x = Float(i + 1)
                    for _ in 0..<iterations { x = x * 0.5 + 1 }
                    for _ in 0..<lanes { total += x }
                }
                #expect(dsan_vk_multiply_add_probe_at(level, iterations, 0.5, 1) == total, "\(name), \(iterations) iterations")
            }
            #expect(dsan_vk_multiply_add_probe_at(level, 1000, 1, 0) == Float(78 * lanes), "\(name)")
        }
        #expect(dsan_multiply_add_probe_flops() == dsan_vk_multiply_add_probe_flops_at(dsan_vk_gemm_level()))
    }
}
