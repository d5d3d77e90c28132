// vol2col and col2vol over one tile of output positions (see Convolution.swift for the scheme).
// Plain integers in a struct so the closures handed to `Parallel.forEach` capture no class
// references; the inner loops are C (VectorKernels' layout kernels) at the CPU's vector width.

import VectorKernels

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

    /// Zeroes channels c0..<c1 of every sample of an input-shaped `dx` (a block of the direct
    /// backward owns them and zeroes them itself before it scatters into them).
    func zeroChannels(_ dx: UnsafeMutablePointer<Float>, _ c0: Int, _ c1: Int) {
        let volume = d * h * w
        for sample in 0..<n { (dx + sample * inputPerSample + c0 * volume).update(repeating: 0, count: (c1 - c0) * volume) }
    }
}

/// Below this many floats per call, vol2col/col2vol run on the calling thread.
private let parallelThreshold = 1 << 15

extension ConvPlan {
    /// The window geometry in the form the VectorKernels layout kernels take.
    var window: dsan_vk_window {
        dsan_vk_window(d: d, h: h, w: w, od: od, oh: oh, ow: ow, kd: kd, kh: kh, kw: kw,
                       sd: sd, sh: sh, sw: sw, pd: pd, ph: ph, pw: pw)
    }
}

// The loops themselves are VectorKernels' `dsan_vk_vol2col_rows` and `dsan_vk_col2vol_planes`
// (layout_body.h), built for the CPU's vector width: output rows are short (Wo = 4…128), so each
// row is copied or added with vectors of the level's width (stride 2 reads 2·lanes floats and
// keeps the even ones) instead of one memmove per row.

/// cols[(c1 − c0)·k³, p1 − p0] ← the patches of input channels c0..<c1 of sample `x`
/// `[Cin, D, H, W]` for output positions p0..<p1 (flat over [Do, Ho, Wo]); zero where the window
/// hangs over the padding.
/// Parallel over rows r = (c, kd, kh, kw): each worker writes whole rows of `cols`.
/// With `parallel` false it runs on the calling thread (a caller that is itself one of the workers).
func vol2col(_ plan: ConvPlan, _ x: UnsafePointer<Float>, _ c0: Int, _ c1: Int, _ p0: Int, _ p1: Int,
             _ cols: UnsafeMutablePointer<Float>, parallel: Bool = true) {
    VectorLevel.configure()
    let T = p1 - p0
    let r0 = c0 * plan.kd * plan.kh * plan.kw
    let rows = (c1 - c0) * plan.kd * plan.kh * plan.kw
    let grain = parallel ? max(1, parallelThreshold / max(T, 1)) : rows
    withUnsafePointer(to: plan.window) { window in
        Parallel.forEach(rows, grain: grain) { range in
            dsan_vk_vol2col_rows(window, x, r0, range.lowerBound, range.upperBound, p0, p1, cols)
        }
    }
}

/// dx `[Cin, D, H, W]` += the scatter of cols[(c1 − c0)·k³, p1 − p0] (the adjoint of `vol2col`).
/// Parallel over input (channel, depth) planes: a worker owns whole planes of `dx` and visits the
/// (kd, od) pairs that land on them, so there are no races, and each voxel adds its terms in the
/// order (kd, kh, kw, p) for any thread count.
func col2vol(_ plan: ConvPlan, _ cols: UnsafePointer<Float>, _ c0: Int, _ c1: Int, _ p0: Int, _ p1: Int,
             _ dx: UnsafeMutablePointer<Float>, parallel: Bool = true) {
    VectorLevel.configure()
    let T = p1 - p0
    let planes = (c1 - c0) * plan.d
    let grain = parallel ? max(1, parallelThreshold / max(1, plan.kd * plan.kh * plan.kw * T / plan.d)) : planes
    withUnsafePointer(to: plan.window) { window in
        Parallel.forEach(planes, grain: grain) { range in
            dsan_vk_col2vol_planes(window, cols, c0, p0, p1, range.lowerBound, range.upperBound, dx)
        }
    }
}

/// out[p1 − p0, (c1 − c0)·k³] ← the transpose of what `vol2col` writes for the same arguments: one
/// output position's window per row (the B operand of a weight gradient dY·colsᵀ by dsan's packed
/// GEMM, whose reduction axis is the positions). On the calling thread (its callers are workers).
func vol2colTransposed(_ plan: ConvPlan, _ x: UnsafePointer<Float>, _ c0: Int, _ c1: Int, _ p0: Int, _ p1: Int,
                       _ out: UnsafeMutablePointer<Float>) {
    VectorLevel.configure()
    withUnsafePointer(to: plan.window) { window in
        dsan_vk_vol2col_transposed(window, x, c0, c1, p0, p1, out)
    }
}
