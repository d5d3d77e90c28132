// Trilinear upsampling of the attention map to the input size (DESIGN §1, attention step 2).

/// Trilinear interpolation `[N, C, d, h, w] → [N, C, D, H, W]` with `align_corners = false`, as
/// PyTorch's `F.interpolate(mode: "trilinear", size: (D, H, W))` (`upsample_trilinear3d`).
///
/// Per axis (input size `n`, output size `m`), output index `i` reads source position
/// s = max((i + 0.5)·(n/m) − 0.5, 0) (scale in float, as PyTorch's `area_pixel_compute_scale`);
/// i0 = min(⌊s⌋, n − 1), i1 = i0 + 1 unless i0 = n − 1 (then i1 = i0), λ1 = clamp(s − i0, 0, 1),
/// λ0 = 1 − λ1 (PyTorch's `guard_index_and_lambda`). The tables are computed once in `init`, so
/// forward and backward allocate nothing. Both run in parallel over output (forward) or input
/// (backward) depth slices of every (sample, channel) plane; every output element is written by
/// one thread in a fixed order, so results do not depend on `Parallel.threads`.
public final class TrilinearUpsample {
    /// Input and output spatial sizes (d, h, w) and (D, H, W).
    public let inputSize: (d: Int, h: Int, w: Int)
    public let outputSize: (d: Int, h: Int, w: Int)

    private let depth: LinearAxis, height: LinearAxis, width: LinearAxis

    public init(input: (d: Int, h: Int, w: Int), output: (d: Int, h: Int, w: Int)) {
        precondition(input.d > 0 && input.h > 0 && input.w > 0 && output.d > 0 && output.h > 0 && output.w > 0,
                     "TrilinearUpsample: sizes must be positive, got \(input) → \(output)")
        inputSize = input
        outputSize = output
        depth = LinearAxis(input: input.d, output: output.d)
        height = LinearAxis(input: input.h, output: output.h)
        width = LinearAxis(input: input.w, output: output.w)
    }

    /// y = trilinear(x). Shapes: x `[N, C, d, h, w]`, y `[N, C, D, H, W]` (same N, C).
    public func forward(_ x: Tensor, into y: Tensor) {
        let (planes, inD, inH, inW) = check(input: x, output: y)
        let (outD, outH, outW) = outputSize
        let inSlice = inH * inW, inPlane = inD * inSlice, outSlice = outH * outW
        let xp = x.data, yp = y.data
        let d = depth, h = height, w = width
        Parallel.forEach(planes * outD, grain: 4) { slices in
            for slice in slices {
                let plane = slice / outD, od = slice % outD
                let src = xp + plane * inPlane
                let s0 = src + d.i0[od] * inSlice, s1 = src + d.i1[od] * inSlice
                let t0 = d.l0[od], t1 = d.l1[od]
                let dst = yp + slice * outSlice
                for oh in 0..<outH {
                    let r0 = h.i0[oh] * inW, r1 = h.i1[oh] * inW
                    let h0 = h.l0[oh], h1 = h.l1[oh]
                    let row = dst + oh * outW
                    for ow in 0..<outW {
                        let c0 = w.i0[ow], c1 = w.i1[ow]
                        let w0 = w.l0[ow], w1 = w.l1[ow]
                        let a = h0 * (w0 * s0[r0 + c0] + w1 * s0[r0 + c1]) + h1 * (w0 * s0[r1 + c0] + w1 * s0[r1 + c1])
                        let b = h0 * (w0 * s1[r0 + c0] + w1 * s1[r0 + c1]) + h1 * (w0 * s1[r1 + c0] + w1 * s1[r1 + c1])
                        row[ow] = t0 * a + t1 * b
                    }
                }
            }
        }
    }

    /// WRITES dx, the adjoint of `forward` applied to dy: every output gradient is scattered to its
    /// eight source voxels with the interpolation weights. Shapes: dy `[N, C, D, H, W]`,
    /// dx `[N, C, d, h, w]`. Race-free: each input row (a plane's depth slice's row) gathers from
    /// the output slices that read its slice (a fixed list per slice) and, in them, the output rows
    /// that read it, so one thread owns each dx row. Items are rows, not slices: the attention
    /// map's 4 depth slices at 64×128×128 left all but 4 workers idle (`dsan bench granularity`).
    /// Each element receives the same terms in the same order as a pass over the whole slice
    /// (output rows, then columns, the top row's terms before the bottom's), so the cut does not
    /// change the bits.
    public func backward(_ dy: Tensor, into dx: Tensor) {
        let (planes, inD, inH, inW) = check(input: dx, output: dy)
        let (outD, outH, outW) = outputSize
        let outSlice = outH * outW, outPlane = outD * outSlice
        let gp = dy.data, dp = dx.data
        let d = depth, h = height, w = width
        Parallel.forEach(planes * inD * inH, grain: 1) { rows in
            for item in rows {
                let slice = item / inH, ih = item % inH
                let plane = slice / inD, id = slice % inD
                let dst = dp + item * inW
                dst.update(repeating: 0, count: inW)
                for e in d.readerStart[id]..<d.readerStart[id + 1] {
                    let td = d.readerWeight[e]
                    let src = gp + plane * outPlane + d.readerIndex[e] * outSlice
                    for oh in 0..<outH {
                        let top = h.i0[oh] == ih, bottom = h.i1[oh] == ih
                        if !top && !bottom { continue }
                        let h0 = td * h.l0[oh], h1 = td * h.l1[oh]
                        let row = src + oh * outW
                        for ow in 0..<outW {
                            let g = row[ow]
                            let c0 = w.i0[ow], c1 = w.i1[ow]
                            let gw0 = g * w.l0[ow], gw1 = g * w.l1[ow]
                            if top {
                                dst[c0] += h0 * gw0
                                dst[c1] += h0 * gw1
                            }
                            if bottom {
                                dst[c0] += h1 * gw0
                                dst[c1] += h1 * gw1
                            }
                        }
                    }
                }
            }
        }
    }

    /// (N·C, d, h, w) after checking both shapes against the sizes this upsampler was built for.
    private func check(input: Tensor, output: Tensor) -> (Int, Int, Int, Int) {
        let i = input.shape5, o = output.shape5
        precondition(i.n == o.n && i.c == o.c
                     && (i.d, i.h, i.w) == inputSize && (o.d, o.h, o.w) == outputSize,
                     "TrilinearUpsample \(inputSize) → \(outputSize): got \(i) and \(o)")
        return (i.n * i.c, i.d, i.h, i.w)
    }
}

/// Source indices and weights of linear interpolation along one axis (align_corners = false), plus
/// the transposed table: for each input index, the output indices that read it and with what weight.
private final class LinearAxis {
    let i0: UnsafeMutablePointer<Int>, i1: UnsafeMutablePointer<Int>
    let l0: UnsafeMutablePointer<Float>, l1: UnsafeMutablePointer<Float>
    /// CSR of readers: entries readerStart[j]..<readerStart[j + 1] are (output index, weight) pairs
    /// reading input index j, in increasing output index (i0 before i1 for the same output).
    let readerStart: UnsafeMutablePointer<Int>
    let readerIndex: UnsafeMutablePointer<Int>
    let readerWeight: UnsafeMutablePointer<Float>
    let output: Int

    init(input: Int, output: Int) {
        self.output = output
        i0 = .allocate(capacity: output); i1 = .allocate(capacity: output)
        l0 = .allocate(capacity: output); l1 = .allocate(capacity: output)
        // PyTorch: scale = float(in) / out (area_pixel_compute_scale), source index clamped at 0.
        let scale = Float(input) / Float(output)
        for i in 0..<output {
            let s = max(scale * (Float(i) + 0.5) - 0.5, 0)
            let lo = min(Int(s.rounded(.down)), input - 1)
            let lambda = min(max(s - Float(lo), 0), 1)
            i0[i] = lo
            i1[i] = lo < input - 1 ? lo + 1 : lo
            l1[i] = lambda
            l0[i] = 1 - lambda
        }
        readerStart = .allocate(capacity: input + 1)
        readerIndex = .allocate(capacity: 2 * output)
        readerWeight = .allocate(capacity: 2 * output)
        var counts = [Int](repeating: 0, count: input)
        for i in 0..<output { counts[i0[i]] += 1; counts[i1[i]] += 1 }
        readerStart[0] = 0
        for j in 0..<input { readerStart[j + 1] = readerStart[j] + counts[j] }
        var next = (0..<input).map { readerStart[$0] }
        for i in 0..<output {
            for (j, l) in [(i0[i], l0[i]), (i1[i], l1[i])] {
                readerIndex[next[j]] = i
                readerWeight[next[j]] = l
                next[j] += 1
            }
        }
    }

    deinit {
        i0.deallocate(); i1.deallocate(); l0.deallocate(); l1.deallocate()
        readerStart.deallocate(); readerIndex.deallocate(); readerWeight.deallocate()
    }
}
