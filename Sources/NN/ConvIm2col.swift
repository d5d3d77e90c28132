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

// Short strided copies and adds on raw pointers. Output rows are short (Wo = 4…128), so these are
// written out with 8-wide SIMD instead of calling memmove per row; stride 2 reads 16 floats and
// keeps the even lanes. A 16-wide read at offset 2j touches 2j+15, so it runs only while j + 8 < n,
// which keeps it inside the `n` elements the stride-2 row addresses (last one 2n − 2).

@inline(__always)
private func zero(_ dst: UnsafeMutablePointer<Float>, _ n: Int) {
    var j = 0
    while j + 8 <= n {
        UnsafeMutableRawPointer(dst + j).storeBytes(of: SIMD8<Float>(), as: SIMD8<Float>.self)
        j += 8
    }
    while j < n { dst[j] = 0; j += 1 }
}

/// dst[j] = src[j·stride] for j in 0..<n.
@inline(__always)
private func gather(_ dst: UnsafeMutablePointer<Float>, _ src: UnsafePointer<Float>, _ n: Int, _ stride: Int) {
    var j = 0
    if stride == 1 {
        while j + 8 <= n {
            let v = UnsafeRawPointer(src + j).loadUnaligned(as: SIMD8<Float>.self)
            UnsafeMutableRawPointer(dst + j).storeBytes(of: v, as: SIMD8<Float>.self)
            j += 8
        }
    } else if stride == 2 {
        while j + 8 < n {
            let v = UnsafeRawPointer(src + 2 * j).loadUnaligned(as: SIMD16<Float>.self)
            UnsafeMutableRawPointer(dst + j).storeBytes(of: v.evenHalf, as: SIMD8<Float>.self)
            j += 8
        }
    }
    while j < n { dst[j] = src[j * stride]; j += 1 }
}

/// dst[j·stride] += src[j] for j in 0..<n.
@inline(__always)
private func scatterAdd(_ dst: UnsafeMutablePointer<Float>, _ src: UnsafePointer<Float>, _ n: Int, _ stride: Int) {
    var j = 0
    if stride == 1 {
        while j + 8 <= n {
            let a = UnsafeRawPointer(dst + j).loadUnaligned(as: SIMD8<Float>.self)
            let b = UnsafeRawPointer(src + j).loadUnaligned(as: SIMD8<Float>.self)
            UnsafeMutableRawPointer(dst + j).storeBytes(of: a + b, as: SIMD8<Float>.self)
            j += 8
        }
    } else if stride == 2 {
        while j + 8 < n {
            var a = UnsafeRawPointer(dst + 2 * j).loadUnaligned(as: SIMD16<Float>.self)
            a.evenHalf += UnsafeRawPointer(src + j).loadUnaligned(as: SIMD8<Float>.self)
            UnsafeMutableRawPointer(dst + 2 * j).storeBytes(of: a, as: SIMD16<Float>.self)
            j += 8
        }
    }
    while j < n { dst[j * stride] += src[j]; j += 1 }
}

/// cols[(c1 − c0)·k³, p1 − p0] ← the patches of input channels c0..<c1 of sample `x`
/// `[Cin, D, H, W]` for output positions p0..<p1 (flat over [Do, Ho, Wo]); zero where the window
/// hangs over the padding.
/// Parallel over rows r = (c, kd, kh, kw): each worker writes whole rows of `cols`.
/// With `parallel` false it runs on the calling thread (a caller that is itself one of the workers).
func vol2col(_ plan: ConvPlan, _ x: UnsafePointer<Float>, _ c0: Int, _ c1: Int, _ p0: Int, _ p1: Int,
             _ cols: UnsafeMutablePointer<Float>, parallel: Bool = true) {
    let T = p1 - p0
    let r0 = c0 * plan.kd * plan.kh * plan.kw
    let rows = (c1 - c0) * plan.kd * plan.kh * plan.kw
    let grain = parallel ? max(1, parallelThreshold / max(T, 1)) : rows
    Parallel.forEach(rows, grain: grain) { range in
        let (kd, kh, kw) = (plan.kd, plan.kh, plan.kw)
        let (d, h, w) = (plan.d, plan.h, plan.w)
        let (oh, ow) = (plan.oh, plan.ow)
        let (sd, sh, sw) = (plan.sd, plan.sh, plan.sw)
        // The output row (od, oh) of p0 and the column it starts at; stepped, not divided, below.
        let firstRow = p0 / ow, firstCol = p0 - firstRow * ow
        let firstOd = firstRow / oh, firstOh = firstRow - firstOd * oh
        for rr in range {
            let r = r0 + rr
            let kwI = r % kw, khI = (r / kw) % kh, kdI = (r / (kw * kh)) % kd, ci = r / (kw * kh * kd)
            let xc = x + ci * d * h * w
            let (lo, hi) = plan.validColumns(kwI)
            let shift = kwI - plan.pw                      // iw = ow·sw + shift
            var dst = cols + rr * T
            var left = T
            var ow0 = firstCol, odI = firstOd, ohI = firstOh
            while left > 0 {
                let count = min(ow - ow0, left), ow1 = ow0 + count
                let id = odI * sd - plan.pd + kdI, ih = ohI * sh - plan.ph + khI
                if id < 0 || id >= d || ih < 0 || ih >= h {
                    zero(dst, count)
                } else {
                    let src = xc + (id * h + ih) * w
                    let a = min(max(lo, ow0), ow1), b = max(min(hi, ow1), a)
                    zero(dst, a - ow0)
                    gather(dst + (a - ow0), src + (a * sw + shift), b - a, sw)
                    zero(dst + (b - ow0), ow1 - b)
                }
                dst += count
                left -= count
                ow0 = 0
                ohI += 1
                if ohI == oh { ohI = 0; odI += 1 }
            }
        }
    }
}

/// dx `[Cin, D, H, W]` += the scatter of cols[(c1 − c0)·k³, p1 − p0] (the adjoint of `vol2col`).
/// Parallel over input (channel, depth) planes: a worker owns whole planes of `dx` and visits the
/// (kd, od) pairs that land on them, so there are no races, and each voxel adds its terms in the
/// order (kd, kh, kw, p) for any thread count.
func col2vol(_ plan: ConvPlan, _ cols: UnsafePointer<Float>, _ c0: Int, _ c1: Int, _ p0: Int, _ p1: Int,
             _ dx: UnsafeMutablePointer<Float>, parallel: Bool = true) {
    let T = p1 - p0
    let planes = (c1 - c0) * plan.d
    let grain = parallel ? max(1, parallelThreshold / max(1, plan.kd * plan.kh * plan.kw * T / plan.d)) : planes
    Parallel.forEach(planes, grain: grain) { range in
        let (kd, kh, kw) = (plan.kd, plan.kh, plan.kw)
        let (d, h, w) = (plan.d, plan.h, plan.w)
        let (od, oh, ow) = (plan.od, plan.oh, plan.ow)
        let (sd, sh, sw) = (plan.sd, plan.sh, plan.sw)
        for item in range {
            let ci = c0 + item / d, id = item % d
            let dxPlane = dx + (ci * d + id) * h * w
            for kdI in 0..<kd {
                let t = id + plan.pd - kdI                 // = od·sd
                if t < 0 || t % sd != 0 { continue }
                let odI = t / sd
                if odI >= od { continue }
                // The part of this tile in output depth slice odI, as (first row, first column).
                let pa = max(p0, odI * oh * ow), pb = min(p1, (odI + 1) * oh * ow)
                if pa >= pb { continue }
                let firstRow = pa / ow, firstCol = pa - firstRow * ow
                for khI in 0..<kh {
                    for kwI in 0..<kw {
                        let r = (((ci - c0) * kd + kdI) * kh + khI) * kw + kwI   // row in this block
                        var src = cols + r * T + (pa - p0)
                        let (lo, hi) = plan.validColumns(kwI)
                        let shift = kwI - plan.pw
                        var left = pb - pa, ow0 = firstCol, ohI = firstRow - odI * oh
                        while left > 0 {
                            let count = min(ow - ow0, left), ow1 = ow0 + count
                            let ih = ohI * sh - plan.ph + khI
                            if ih >= 0 && ih < h {
                                let a = min(max(lo, ow0), ow1), b = max(min(hi, ow1), a)
                                scatterAdd(dxPlane + ih * w + (a * sw + shift), src + (a - ow0), b - a, sw)
                            }
                            src += count
                            left -= count
                            ow0 = 0
                            ohI += 1
                        }
                    }
                }
            }
        }
    }
}
