// vol2col and col2vol over one tile of output positions (see Convolution.swift for the scheme).
// Plain integers in a struct so the closures handed to `Parallel.forEach` capture no class
// references: the inner loops run over raw pointers without retain/release or bounds checks.

/// Every extent a conv's tiled kernels need, for one input shape.
@usableFromInline
struct ConvPlan {
    let n, c, d, h, w: Int          // input [N, Cin, D, H, W]
    let outC, od, oh, ow: Int       // output [N, Cout, Do, Ho, Wo]
    let kd, kh, kw: Int
    let sd, sh, sw: Int
    let pd, ph, pw: Int

    init(_ g: Conv3dGeometry, _ input: Shape5) {
        let out = g.outputShape(for: input)
        n = input.n; c = input.c; d = input.d; h = input.h; w = input.w
        outC = g.outChannels; od = out.d; oh = out.h; ow = out.w
        kd = g.kernel.d; kh = g.kernel.h; kw = g.kernel.w
        sd = g.stride.d; sh = g.stride.h; sw = g.stride.w
        pd = g.padding.d; ph = g.padding.h; pw = g.padding.w
    }

    var outputShape: Shape5 { Shape5(n: n, c: outC, d: od, h: oh, w: ow) }
    /// K = Cin·kD·kH·kW.
    var rows: Int { c * kd * kh * kw }
    /// P = Do·Ho·Wo.
    var positions: Int { od * oh * ow }
    var inputPerSample: Int { c * d * h * w }

    /// The output columns ow whose input column ow·sw − pw + kwI lies inside [0, W):
    /// ceil((pw − kwI)/sw) ≤ ow ≤ floor((W − 1 + pw − kwI)/sw), clipped to [0, Wo).
    @inline(__always)
    func validColumns(_ kwI: Int) -> (lo: Int, hi: Int) {
        let lo = max(0, ceilDiv(pw - kwI, sw))
        let hi = min(ow, floorDiv(w - 1 + pw - kwI, sw) + 1)
        return (lo, max(lo, hi))
    }
}

@inline(__always) func floorDiv(_ a: Int, _ b: Int) -> Int {
    let q = a / b
    return (a % b != 0 && a < 0) ? q - 1 : q
}

@inline(__always) func ceilDiv(_ a: Int, _ b: Int) -> Int { -floorDiv(-a, b) }

/// Below this many floats per call, vol2col/col2vol run on the calling thread.
private let parallelThreshold = 1 << 15

/// cols[K, p1 − p0] ← the input patches of sample `x` `[Cin, D, H, W]` for output positions
/// p0..<p1 (flat over [Do, Ho, Wo]); zero where the window hangs over the padding.
/// Parallel over rows r = (c, kd, kh, kw): each worker writes whole rows of `cols`.
func vol2col(_ plan: ConvPlan, _ x: UnsafePointer<Float>, _ p0: Int, _ p1: Int,
             _ cols: UnsafeMutablePointer<Float>) {
    let T = p1 - p0
    let rows = plan.rows
    let grain = max(1, parallelThreshold / max(T, 1))
    Parallel.forEach(rows, grain: grain) { range in
        let (kd, kh, kw) = (plan.kd, plan.kh, plan.kw)
        let (d, h, w) = (plan.d, plan.h, plan.w)
        let (oh, ow) = (plan.oh, plan.ow)
        let (sd, sh, sw) = (plan.sd, plan.sh, plan.sw)
        for r in range {
            let kwI = r % kw, khI = (r / kw) % kh, kdI = (r / (kw * kh)) % kd, ci = r / (kw * kh * kd)
            let xc = x + ci * d * h * w
            let (lo, hi) = plan.validColumns(kwI)
            let shift = kwI - plan.pw                      // iw = ow·sw + shift
            var dst = cols + r * T
            var p = p0
            while p < p1 {
                let row = p / ow, ow0 = p - row * ow
                let count = min(ow - ow0, p1 - p), ow1 = ow0 + count
                let odI = row / oh, ohI = row - odI * oh
                let id = odI * sd - plan.pd + kdI, ih = ohI * sh - plan.ph + khI
                if id < 0 || id >= d || ih < 0 || ih >= h {
                    dst.update(repeating: 0, count: count)
                } else {
                    let src = xc + (id * h + ih) * w
                    let a = min(max(lo, ow0), ow1), b = max(min(hi, ow1), a)
                    if a > ow0 { dst.update(repeating: 0, count: a - ow0) }
                    let out = dst + (a - ow0)
                    if sw == 1 {
                        out.update(from: src + (a + shift), count: b - a)
                    } else {
                        var iw = a * sw + shift
                        for j in 0..<(b - a) { out[j] = src[iw]; iw += sw }
                    }
                    if ow1 > b { (dst + (b - ow0)).update(repeating: 0, count: ow1 - b) }
                }
                dst += count
                p += count
            }
        }
    }
}

/// dx `[Cin, D, H, W]` += the scatter of cols[K, p1 − p0] (the adjoint of `vol2col`).
/// Parallel over input (channel, depth) planes: a worker owns whole planes of `dx` and visits the
/// (kd, od) pairs that land on them, so there are no races, and each voxel adds its terms in the
/// order (kd, kh, kw, p) for any thread count.
func col2vol(_ plan: ConvPlan, _ cols: UnsafePointer<Float>, _ p0: Int, _ p1: Int,
             _ dx: UnsafeMutablePointer<Float>) {
    let T = p1 - p0
    let planes = plan.c * plan.d
    let grain = max(1, parallelThreshold / max(1, plan.rows * T / max(planes, 1)))
    Parallel.forEach(planes, grain: grain) { range in
        let (kd, kh, kw) = (plan.kd, plan.kh, plan.kw)
        let (d, h, w) = (plan.d, plan.h, plan.w)
        let (od, oh, ow) = (plan.od, plan.oh, plan.ow)
        let (sd, sh, sw) = (plan.sd, plan.sh, plan.sw)
        for item in range {
            let ci = item / d, id = item - ci * d
            let dxPlane = dx + item * h * w
            for kdI in 0..<kd {
                let t = id + plan.pd - kdI                 // = od·sd
                if t < 0 || t % sd != 0 { continue }
                let odI = t / sd
                if odI >= od { continue }
                let pa = max(p0, odI * oh * ow), pb = min(p1, (odI + 1) * oh * ow)
                if pa >= pb { continue }
                for khI in 0..<kh {
                    for kwI in 0..<kw {
                        let r = ((ci * kd + kdI) * kh + khI) * kw + kwI
                        let src = cols + r * T - p0         // indexed by p
                        let (lo, hi) = plan.validColumns(kwI)
                        let shift = kwI - plan.pw
                        var p = pa
                        while p < pb {
                            let row = p / ow, ow0 = p - row * ow
                            let count = min(ow - ow0, pb - p), ow1 = ow0 + count
                            let ih = (row - odI * oh) * sh - plan.ph + khI
                            if ih >= 0 && ih < h {
                                let a = min(max(lo, ow0), ow1), b = max(min(hi, ow1), a)
                                let dst = dxPlane + ih * w
                                let s = src + row * ow
                                if sw == 1 {
                                    for o in a..<b { dst[o + shift] += s[o] }
                                } else {
                                    var iw = a * sw + shift
                                    for o in a..<b { dst[iw] += s[o]; iw += sw }
                                }
                            }
                            p += count
                        }
                    }
                }
            }
        }
    }
}
