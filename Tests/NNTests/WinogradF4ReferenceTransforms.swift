@testable import NN

// The Winograd F(4×4×4, 3×3×3) transforms as plain scalar Swift loops, one tile (or one weight) at
// a time: the naive references the C builds of winograd4_body.h must match bit for bit at every
// ISA level (WinogradF4Tests). F43 holds the 1-D matrices with the same IEEE operations in the same
// order as the C's w4_bt, w4_at and w4_g (Swift does not contract a·b + c into an FMA), and each
// 3-D transform applies them along w, then h, then d (input, weights) or d, h, w (output), as the C.

enum F43 {
    /// Bᵀ·(d0 … d5).
    static func bt(_ d: [Float]) -> [Float] {
        let e = d[4] - d[2], f = d[3] - d[1]
        return [4 * (d[0] - d[2]) + e, (d[3] + d[4]) - 4 * (d[1] + d[2]), (d[4] - d[3]) + 4 * (d[1] - d[2]),
                e + 2 * f, e - 2 * f, 4 * (d[1] - d[3]) + (d[5] - d[3])]
    }
    /// Aᵀ·(m0 … m5).
    static func at(_ m: [Float]) -> [Float] {
        let a = m[1] + m[2], b = m[1] - m[2], c = m[3] + m[4], e = m[3] - m[4]
        return [(m[0] + a) + c, b + 2 * e, a + 4 * c, (b + 8 * e) + m[5]]
    }
    /// G·(g0, g1, g2).
    static func g(_ g: [Float]) -> [Float] {
        let sixth = Float(1.0 / 6.0), twelfth = Float(1.0 / 12.0), twentyFourth = Float(1.0 / 24.0)
        let p = g[0] + g[2], q = twentyFourth * g[0] + sixth * g[2], r = twelfth * g[1]
        return [0.25 * g[0], (-sixth) * (p + g[1]), (-sixth) * (p - g[1]), q + r, q - r, g[2]]
    }

    /// The 1-D matrices in float64, as the task states them (Lavin & Gray 2016).
    static let btMatrix: [[Double]] = [[4, 0, -5, 0, 1, 0], [0, -4, -4, 1, 1, 0], [0, 4, -4, -1, 1, 0],
                                       [0, -2, -1, 2, 1, 0], [0, 2, -1, -2, 1, 0], [0, 4, 0, -5, 0, 1]]
    static let gMatrix: [[Double]] = [[1.0 / 4, 0, 0], [-1.0 / 6, -1.0 / 6, -1.0 / 6], [-1.0 / 6, 1.0 / 6, -1.0 / 6],
                                      [1.0 / 24, 1.0 / 12, 1.0 / 6], [1.0 / 24, -1.0 / 12, 1.0 / 6], [0, 0, 1]]
    static let atMatrix: [[Double]] = [[1, 1, 1, 1, 1, 0], [0, 1, -1, 2, -2, 0], [0, 1, 1, 4, 4, 0], [0, 1, -1, 8, -8, 1]]
}

/// Applies the 1-D `f` (n inputs) along one axis of a row-major cube with extents `dims`, `axis`
/// 0 = d, 1 = h, 2 = w; the axis' extent becomes the output count of `f`.
private func alongAxis(_ v: [Float], _ dims: [Int], _ axis: Int, _ f: ([Float]) -> [Float]) -> ([Float], [Int]) {
    let outCount = f([Float](repeating: 0, count: dims[axis])).count
    var od = dims
    od[axis] = outCount
    var out = [Float](repeating: 0, count: od[0] * od[1] * od[2])
    for i in 0..<dims[0] {
        for j in 0..<dims[1] {
            for k in 0..<dims[2] {
                // Visit each line once, at its first element along `axis`.
                let idx = [i, j, k]
                if idx[axis] != 0 { continue }
                var line: [Float] = []
                for e in 0..<dims[axis] {
                    var p = idx
                    p[axis] = e
                    line.append(v[(p[0] * dims[1] + p[1]) * dims[2] + p[2]])
                }
                let r = f(line)
                for e in 0..<outCount {
                    var p = idx
                    p[axis] = e
                    out[(p[0] * od[1] + p[1]) * od[2] + p[2]] = r[e]
                }
            }
        }
    }
    return (out, od)
}

extension WinogradF4Plan {
    /// (n, td, th, tw) of flat tile t.
    func tile(_ t: Int) -> (n: Int, td: Int, th: Int, tw: Int) {
        let per = tD * tH * tW, ni = t / per, r = t % per
        return (ni, r / (tH * tW), (r / tW) % tH, r % tW)
    }
}

/// V[ξ][c][t − t0] = (Bᵀ⊗³ d)_ξ for channels c0..<c1, tiles t0..<t1 (layout of the C transform).
func referenceF4InputTransform(_ p: WinogradF4Plan, _ x: UnsafePointer<Float>, channels: Int, _ c0: Int, _ c1: Int,
                               _ t0: Int, _ t1: Int, _ v: UnsafeMutablePointer<Float>) {
    let xs = p.plane(channels)
    for c in c0..<c1 {
        for t in t0..<t1 {
            let (ni, td, th, tw) = p.tile(t)
            var patch = [Float](repeating: 0, count: 216)
            for a in 0..<6 { for b in 0..<6 { for e in 0..<6 {
                let id = 4 * td - 1 + a, ih = 4 * th - 1 + b, iw = 4 * tw - 1 + e
                if id < 0 || id >= p.d || ih < 0 || ih >= p.h || iw < 0 || iw >= p.w { continue }
                patch[(a * 6 + b) * 6 + e] = x[(((ni * channels + c) * p.d + id) * p.h + ih) * p.w + iw]
            }}}
            var (s, dims) = alongAxis(patch, [6, 6, 6], 2, F43.bt)
            (s, dims) = alongAxis(s, dims, 1, F43.bt)
            (s, dims) = alongAxis(s, dims, 0, F43.bt)
            for xi in 0..<216 { v[xi * xs + c * p.ld + t - t0] = s[xi] }
        }
    }
}

/// y ← Aᵀ⊗³ M for channels c0..<c1 and tiles t0..<t1 (outputs outside the volume dropped).
func referenceF4OutputTransform(_ p: WinogradF4Plan, _ m: UnsafePointer<Float>, channels: Int, _ c0: Int, _ c1: Int,
                                _ t0: Int, _ t1: Int, _ y: UnsafeMutablePointer<Float>) {
    let xs = p.plane(channels)
    for c in c0..<c1 {
        for t in t0..<t1 {
            let (ni, td, th, tw) = p.tile(t)
            let tileM = (0..<216).map { m[$0 * xs + c * p.ld + t - t0] }
            var (s, dims) = alongAxis(tileM, [6, 6, 6], 0, F43.at)
            (s, dims) = alongAxis(s, dims, 1, F43.at)
            (s, dims) = alongAxis(s, dims, 2, F43.at)
            for a in 0..<4 { for b in 0..<4 { for e in 0..<4 {
                let od = 4 * td + a, oh = 4 * th + b, ow = 4 * tw + e
                if od >= p.d || oh >= p.h || ow >= p.w { continue }
                y[(((ni * channels + c) * p.d + od) * p.h + oh) * p.w + ow] = s[(a * 4 + b) * 4 + e]
            }}}
        }
    }
}

/// U[ξ][co][ci] = (G⊗³ g[co, ci])_ξ for co in co0..<co1, of the kernel reversed along all three
/// axes when `flip`.
func referenceF4WeightTransform(_ weight: UnsafePointer<Float>, cout: Int, cin: Int, _ co0: Int, _ co1: Int,
                                flip: Bool, _ u: UnsafeMutablePointer<Float>) {
    for co in co0..<co1 {
        for ci in 0..<cin {
            let g = (0..<27).map { weight[(co * cin + ci) * 27 + (flip ? 26 - $0 : $0)] }
            var (s, dims) = alongAxis(g, [3, 3, 3], 2, F43.g)
            (s, dims) = alongAxis(s, dims, 1, F43.g)
            (s, dims) = alongAxis(s, dims, 0, F43.g)
            for xi in 0..<216 { u[xi * cout * cin + co * cin + ci] = s[xi] }
        }
    }
}

/// The rows that tap k = (kd·3 + kh)·3 + kw of a stride-1 padding-1 3³ correlation on a d×h×w
/// volume touches: `body(outputRow, inputRow, columns)` per output row, with the offsets of the
/// output row and of the input row it reads (shifted by the tap, within one channel's plane) and
/// the output columns whose input lies inside the volume.
@inline(__always)
private func forEachRowOfTap(_ k: Int, d: Int, h: Int, w: Int, _ body: (Int, Int, Range<Int>) -> Void) {
    let (kd, kh, kw) = (k / 9 - 1, (k / 3) % 3 - 1, k % 3 - 1)
    let columns = max(0, -kw)..<min(w, w - kw)
    for od in max(0, -kd)..<min(d, d - kd) {
        for oh in max(0, -kh)..<min(h, h - kh) {
            body((od * h + oh) * w, ((od + kd) * h + oh + kh) * w + kw, columns)
        }
    }
}

/// Every (output channel, input channel, tap) of a stride-1 padding-1 3³ correlation of `s` with
/// `outC` output channels, for each sample: `body(co, ci, k, yBase, xBase)` with the offsets of
/// the output and input channels' planes.
@inline(__always)
private func forEachChannelPairAndTap(_ s: Shape5, outC: Int, _ body: (Int, Int, Int, Int, Int) -> Void) {
    let plane = s.d * s.h * s.w
    for ni in 0..<s.n {
        for co in 0..<outC {
            for ci in 0..<s.c {
                for k in 0..<27 { body(co, ci, k, (ni * outC + co) * plane, (ni * s.c + ci) * plane) }
            }
        }
    }
}

/// The stride-1 padding-1 3³ correlation in float64: y[n, co] = Σ_ci x[n, ci] ⋆ w[co, ci], with x
/// `[N, Cin, D, H, W]` and w `[Cout, Cin, 3, 3, 3]` (`transposedFlipped`: w is read as the input
/// gradient's kernel, w'[ci, co] = flip(w[co, ci]) with x holding dY `[N, Cout, …]`).
func float64Conv3x3(_ x: [Float], _ s: Shape5, _ w: [Float], outC: Int, transposedFlipped: Bool) -> [Double] {
    var y = [Double](repeating: 0, count: s.n * outC * s.d * s.h * s.w)
    let xd = x.map(Double.init)
    // Pointers, not the arrays, in the closures: an array captured and mutated there is boxed and
    // checked on every access (5–7× slower).
    y.withUnsafeMutableBufferPointer { yp in
        xd.withUnsafeBufferPointer { xp in
            forEachChannelPairAndTap(s, outC: outC) { co, ci, k, yBase, xBase in
                let weight: Double = transposedFlipped
                    ? Double(w[(ci * outC + co) * 27 + 26 - k])   // w is [inC(=Cout of the conv), outC, 27]
                    : Double(w[(co * s.c + ci) * 27 + k])
                forEachRowOfTap(k, d: s.d, h: s.h, w: s.w) { yRow, xRow, columns in
                    for ow in columns { yp[yBase + yRow + ow] += weight * xp[xBase + xRow + ow] }
                }
            }
        }
    }
    return y
}

/// The weight gradient of the stride-1 padding-1 3³ correlation in float64:
/// dW[co, ci, k] = Σ_n Σ_positions dY[n, co, p]·x[n, ci, p + k − 1], with x `[N, Cin, D, H, W]`
/// (`s`) and dY `[N, outC, D, H, W]`; `[outC, Cin, 3, 3, 3]` row-major.
func float64WeightGradient3x3(_ s: Shape5, _ x: [Float], _ dy: [Float], outC: Int) -> [Double] {
    let xd = x.map(Double.init), dyd = dy.map(Double.init)
    var dw = [Double](repeating: 0, count: outC * s.c * 27)
    dyd.withUnsafeBufferPointer { yp in
        xd.withUnsafeBufferPointer { xp in
            forEachChannelPairAndTap(s, outC: outC) { co, ci, k, yBase, xBase in
                var sum = 0.0
                forEachRowOfTap(k, d: s.d, h: s.h, w: s.w) { yRow, xRow, columns in
                    for ow in columns { sum += yp[yBase + yRow + ow] * xp[xBase + xRow + ow] }
                }
                dw[(co * s.c + ci) * 27 + k] += sum
            }
        }
    }
    return dw
}
