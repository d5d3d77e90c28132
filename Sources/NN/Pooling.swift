// Max pooling and global average pooling over [N, C, D, H, W], as forward/backward pairs.
// Both are parallel over (n, c) planes: a worker owns whole planes of the output it writes, so the
// results do not depend on the thread count.

import VectorKernels

/// The hyper-parameters of a `MaxPool3d` (dilation 1, floor mode, as PyTorch's defaults).
/// Input `[N, C, D, H, W]`, output `[N, C, Do, Ho, Wo]` with extents from `convOutputSize`.
/// Padding is implicit −∞: a padded position is never the maximum.
public struct MaxPool3dGeometry: Equatable, Sendable, CustomStringConvertible {
    public var kernel: Size3
    public var stride: Size3
    public var padding: Size3

    public init(kernel: Size3, stride: Size3, padding: Size3) {
        precondition(kernel.d >= 1 && kernel.h >= 1 && kernel.w >= 1, "MaxPool3d: kernel \(kernel)")
        precondition(stride.d >= 1 && stride.h >= 1 && stride.w >= 1, "MaxPool3d: stride \(stride)")
        // PyTorch's rule: padding at most half the kernel, so every window holds a real voxel.
        precondition(2 * padding.d <= kernel.d && 2 * padding.h <= kernel.h && 2 * padding.w <= kernel.w,
                     "MaxPool3d: padding \(padding) must be at most half of kernel \(kernel)")
        self.kernel = kernel; self.stride = stride; self.padding = padding
    }

    /// A cubic kernel, stride and padding (the model's is kernel 3, stride 2, padding 1).
    public init(kernel: Int, stride: Int, padding: Int = 0) {
        self.init(kernel: Size3(kernel), stride: Size3(stride), padding: Size3(padding))
    }

    public func outputShape(for input: Shape5) -> Shape5 {
        Shape5(n: input.n, c: input.c,
               d: convOutputSize(input.d, kernel: kernel.d, stride: stride.d, padding: padding.d),
               h: convOutputSize(input.h, kernel: kernel.h, stride: stride.h, padding: padding.h),
               w: convOutputSize(input.w, kernel: kernel.w, stride: stride.w, padding: padding.w))
    }

    public var description: String { "MaxPool3d(k\(kernel), s\(stride), p\(padding))" }
}

/// Forward: `y` = the maximum of each window of `x`; `indices` records where it was, as the flat
/// offset d·H·W + h·W + w inside the sample's channel plane (PyTorch's `return_indices`
/// convention). The first maximum in (kd, kh, kw) scan order wins a tie, as in PyTorch; a NaN wins
/// over any number. Overwrites `y` and `indices`.
///
/// - Parameters:
///   - y: `[N, C, Do, Ho, Wo]`
///   - indices: `[N, C, Do, Ho, Wo]`, kept for the backward
///   - x: `[N, C, D, H, W]`
public func maxPool3dForward(y: Tensor, indices: IndexTensor, x: Tensor, geometry g: MaxPool3dGeometry) {
    let s = x.shape5, o = g.outputShape(for: s)
    precondition(y.shape == o.dims, "maxPool3dForward \(g): y \(y.shape), expected \(o)")
    precondition(indices.shape == o.dims, "maxPool3dForward \(g): indices \(indices.shape), expected \(o)")
    precondition(s.spatial <= Int(Int32.max), "maxPool3dForward: plane of \(s.spatial) voxels exceeds Int32")
    VectorLevel.configure()
    let (xp, yp, ip) = (UnsafePointer(x.data), y.data, indices.data)
    let (k, st, pad) = (g.kernel, g.stride, g.padding)
    let window = dsan_vk_window(d: s.d, h: s.h, w: s.w, od: o.d, oh: o.h, ow: o.w, kd: k.d, kh: k.h, kw: k.w,
                                sd: st.d, sh: st.h, sw: st.w, pd: pad.d, ph: pad.h, pw: pad.w)
    // VectorKernels' `dsan_vk_max_pool_forward` (layout_body.h): the windows wholly inside a row
    // are compared a vector of output columns at a time, the rest one by one, by the same rule.
    withUnsafePointer(to: window) { window in
        Parallel.forEach(s.n * s.c, grain: max(1, (1 << 15) / max(o.spatial * k.volume, 1))) { planes in
            dsan_vk_max_pool_forward(window, xp, yp, ip, planes.lowerBound, planes.upperBound)
        }
    }
}

/// Backward of `maxPool3dForward`: each output gradient goes to its window's recorded maximum.
/// `dX` `[N, C, D, H, W]` is WRITTEN (zeroed, then the scatter-add of `dY` `[N, C, Do, Ho, Wo]`;
/// overlapping windows that share a maximum add their gradients).
///
/// With `passingWhere` (the pool's output y `[N, C, Do, Ho, Wo]`), dY[j] reaches dX only where
/// y[j] > 0: the backward of a ReLU before the pool as well, without the ReLU's output. The
/// pool took y[j] from the ReLU's output at indices[j], so y[j] > 0 is exactly the ReLU's mask
/// there, and every window that picked a position saw the same value: the result is bit for bit
/// `ReLU.backward` (with the ReLU's output) of the plain pool backward.
public func maxPool3dBackward(dX: Tensor, dY: Tensor, indices: IndexTensor, passingWhere y: Tensor? = nil) {
    let s = dX.shape5, o = dY.shape5
    precondition(o.n == s.n && o.c == s.c, "maxPool3dBackward: dY \(dY.shape) vs dX \(dX.shape)")
    precondition(indices.shape == dY.shape, "maxPool3dBackward: indices \(indices.shape) vs dY \(dY.shape)")
    precondition(y.map { $0.shape == dY.shape } ?? true, "maxPool3dBackward: pool output \(y!.shape) vs dY \(dY.shape)")
    let (dxp, dyp, ip) = (dX.data, UnsafePointer(dY.data), UnsafePointer(indices.data))
    let yp = y.map { UnsafePointer($0.data) }
    let (inPlane, outPlane) = (s.spatial, o.spatial)
    Parallel.forEach(s.n * s.c, grain: max(1, (1 << 15) / max(inPlane, 1))) { planes in
        for plane in planes {
            let dxc = dxp + plane * inPlane
            dxc.update(repeating: 0, count: inPlane)
            let dyc = dyp + plane * outPlane, ic = ip + plane * outPlane
            if let yp {
                let yc = yp + plane * outPlane
                for j in 0..<outPlane where yc[j] > 0 { dxc[Int(ic[j])] += dyc[j] }
            } else {
                for j in 0..<outPlane { dxc[Int(ic[j])] += dyc[j] }
            }
        }
    }
}

/// Forward: `y[n, c]` = the mean of `x[n, c, :, :, :]`. Overwrites `y`.
///
/// - Parameters:
///   - y: `[N, C]`
///   - x: `[N, C, D, H, W]`
public func globalAveragePoolForward(y: Tensor, x: Tensor) {
    let s = x.shape5
    precondition(y.shape == [s.n, s.c], "globalAveragePoolForward: y \(y.shape), expected [\(s.n), \(s.c)]")
    let (xp, yp, plane) = (UnsafePointer(x.data), y.data, s.spatial)
    let scale = 1 / Double(plane)
    Parallel.forEach(s.n * s.c, grain: max(1, (1 << 15) / max(plane, 1))) { range in
        for i in range {
            let xc = xp + i * plane
            var sum: Double = 0                // double: a plane of the full CT is ~10⁶ voxels
            for j in 0..<plane { sum += Double(xc[j]) }
            yp[i] = Float(sum * scale)
        }
    }
}

/// Backward of `globalAveragePoolForward`: `dX[n, c, :, :, :] = dY[n, c] / (D·H·W)`.
/// `dX` `[N, C, D, H, W]` is WRITTEN; `dY` is `[N, C]`.
public func globalAveragePoolBackward(dX: Tensor, dY: Tensor) {
    let s = dX.shape5
    precondition(dY.shape == [s.n, s.c], "globalAveragePoolBackward: dY \(dY.shape), expected [\(s.n), \(s.c)]")
    let (dxp, dyp, plane) = (dX.data, UnsafePointer(dY.data), s.spatial)
    let scale = 1 / Float(plane)
    Parallel.forEach(s.n * s.c, grain: max(1, (1 << 15) / max(plane, 1))) { range in
        for i in range { (dxp + i * plane).update(repeating: dyp[i] * scale, count: plane) }
    }
}
