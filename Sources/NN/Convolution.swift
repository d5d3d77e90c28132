import BLAS

// 3-D convolution without bias, as a forward/backward pair (llm.c style).
//
// Per sample n the convolution is one GEMM (Caffe's im2col formulation, here "vol2col"):
//
//     Y_n[Cout, P] = W[Cout, K] · cols_n[K, P]      K = Cin·kD·kH·kW,  P = Do·Ho·Wo
//
// where row r = (c, kd, kh, kw) of `cols_n` holds, for every output position p = (od, oh, ow), the
// input voxel x[n, c, od·sd − pd + kd, oh·sh − ph + kh, ow·sw − pw + kw] (zero outside the volume).
// The full `cols_n` of the stem at 138×256×256 would be 1.5 GB, so it is cut into tiles that fit a
// caller-owned `ConvWorkspace`: T output positions (columns) by a block of input channels (rows
// c0·k³..<c1·k³). Memory is bounded at any input size, and each tile stays in cache between its
// vol2col and its GEMM. The forward sums the channel blocks of a column tile into Y (beta = 1 after
// the first); the backward reuses the same tiles:
//
//     dW[:, rows]     += dY_n[:, tile] · cols_tileᵀ          (vol2col recomputed, not stored)
//     dcols           = W[:, rows]ᵀ · dY_n[:, tile]  →  col2vol scatter-add into dX_n
//
// 1×1×1 stride-1 unpadded convs skip vol2col entirely (x_n already is cols_n); 1×1×1 stride-2
// convs go through the tiled path, whose vol2col then is a plain strided gather of K = Cin rows.
//
// 3×3×3 stride-1 padding-1 convs take the Winograd F(2×2×2, 3×3×3) path instead (Winograd.swift,
// 3.4× fewer multiply-adds) unless `ConvAlgorithm.selected` is `.direct` (env `DSAN_CONV=direct`).
//
// Threads: OpenBLAS threads inside each GEMM (`BLAS.threads`), `Parallel.forEach` over the rows of
// a tile in vol2col and over (input channel, input depth) planes in col2vol. Each worker writes a
// disjoint part of the output and every voxel's sum is taken in the same order for any thread
// count, so results depend on the thread count only through OpenBLAS's own rounding.

/// Three extents along depth, height and width (a kernel size, stride or padding).
public struct Size3: Equatable, Sendable, CustomStringConvertible {
    public var d, h, w: Int
    public init(_ d: Int, _ h: Int, _ w: Int) { self.d = d; self.h = h; self.w = w }
    /// The same extent along all three axes.
    public init(_ all: Int) { self.init(all, all, all) }
    public var volume: Int { d * h * w }
    public var description: String { d == h && h == w ? "\(d)" : "\(d)×\(h)×\(w)" }
}

/// Output length of a convolution or pooling window along one axis:
/// floor((input + 2·padding − kernel) / stride) + 1 (PyTorch's formula, dilation 1).
public func convOutputSize(_ input: Int, kernel: Int, stride: Int, padding: Int) -> Int {
    precondition(kernel >= 1 && stride >= 1 && padding >= 0,
                 "convOutputSize: kernel \(kernel), stride \(stride), padding \(padding)")
    let span = input + 2 * padding - kernel
    precondition(span >= 0, "convOutputSize: input \(input) + 2·\(padding) is smaller than kernel \(kernel)")
    return span / stride + 1
}

/// The hyper-parameters of a `Conv3d` without bias. Weight `[Cout, Cin, kD, kH, kW]` (PyTorch's
/// layout), input `[N, Cin, D, H, W]`, output `[N, Cout, Do, Ho, Wo]` with each output extent given
/// by `convOutputSize`.
public struct Conv3dGeometry: Equatable, Sendable, CustomStringConvertible {
    public var inChannels: Int
    public var outChannels: Int
    public var kernel: Size3
    public var stride: Size3
    public var padding: Size3

    public init(inChannels: Int, outChannels: Int, kernel: Size3, stride: Size3, padding: Size3) {
        precondition(inChannels >= 1 && outChannels >= 1, "Conv3d: channels \(inChannels)→\(outChannels)")
        precondition(kernel.d >= 1 && kernel.h >= 1 && kernel.w >= 1, "Conv3d: kernel \(kernel)")
        precondition(stride.d >= 1 && stride.h >= 1 && stride.w >= 1, "Conv3d: stride \(stride)")
        precondition(padding.d >= 0 && padding.h >= 0 && padding.w >= 0, "Conv3d: padding \(padding)")
        self.inChannels = inChannels; self.outChannels = outChannels
        self.kernel = kernel; self.stride = stride; self.padding = padding
    }

    /// A cubic kernel, stride and padding.
    public init(inChannels: Int, outChannels: Int, kernel: Int, stride: Int = 1, padding: Int = 0) {
        self.init(inChannels: inChannels, outChannels: outChannels,
                  kernel: Size3(kernel), stride: Size3(stride), padding: Size3(padding))
    }

    /// `[Cout, Cin, kD, kH, kW]`.
    public var weightShape: [Int] { [outChannels, inChannels, kernel.d, kernel.h, kernel.w] }

    /// Rows of the column matrix, K = Cin·kD·kH·kW (the GEMM's inner dimension).
    public var columnRows: Int { inChannels * kernel.volume }

    /// The output shape for an input of shape `[N, Cin, D, H, W]`.
    public func outputShape(for input: Shape5) -> Shape5 {
        precondition(input.c == inChannels, "Conv3d \(self): input \(input) has \(input.c) channels")
        return Shape5(n: input.n, c: outChannels,
                      d: convOutputSize(input.d, kernel: kernel.d, stride: stride.d, padding: padding.d),
                      h: convOutputSize(input.h, kernel: kernel.h, stride: stride.h, padding: padding.h),
                      w: convOutputSize(input.w, kernel: kernel.w, stride: stride.w, padding: padding.w))
    }

    /// Floating-point operations of one pass (forward, input gradient or weight gradient) over an
    /// input of shape `input`: 2·N·Cout·K·P.
    public func flops(input: Shape5) -> Double {
        let out = outputShape(for: input)
        return 2 * Double(input.n) * Double(outChannels) * Double(columnRows) * Double(out.spatial)
    }

    /// True when the conv is a plain matrix product per sample (1×1×1, stride 1, no padding).
    public var isPointwise: Bool {
        kernel == Size3(1) && stride == Size3(1) && padding == Size3(0)
    }

    public var description: String {
        "Conv3d(\(inChannels)→\(outChannels), k\(kernel), s\(stride), p\(padding))"
    }
}

/// Scratch memory for the column tiles of `conv3dForward` / `conv3dBackward`, owned by the caller
/// (one per model, shared by all its convs) so that the hot path never allocates.
///
/// A tile is a block of the column matrix: the rows of `channels` input channels (channels·k³ rows)
/// by `columns` output positions, and it never exceeds `capacity` floats, so memory is bounded
/// whatever the input size. Each worker (`Parallel.threads`) gets its own slice of at most
/// `tileBytes`: a tile that stays in the core's L2 cache between vol2col writing it and the GEMM
/// reading it is what makes the conv run near the sgemm rate (Docs/performance.md).
public final class ConvWorkspace {
    /// The default size: one `tileBytes` slice for each of 2 workers.
    public static let defaultBytes = 2 << 20
    /// The most one worker's tile uses, 1 MiB: the L2 cache of one core of the target machine
    /// (AMD Zen 3), and the best of 1–32 MiB tiles measured there (Docs/performance.md).
    public static let tileBytes = 1 << 20
    /// Below this many columns a GEMM loses efficiency, so a tile rather splits the input channels.
    public static let minimumTileColumns = 256

    /// Capacity in floats.
    public let capacity: Int
    /// The column buffer, `capacity` floats, 64-byte aligned.
    public let columns: UnsafeMutablePointer<Float>
    /// Upper bound on the tile width in output positions; tests set it small to force many tiles.
    public var maxTileColumns: Int = .max
    /// Upper bound on the input channels of a tile; tests set it small to force channel blocks.
    public var maxTileChannels: Int = .max

    public init(bytes: Int = ConvWorkspace.defaultBytes) {
        precondition(bytes >= MemoryLayout<Float>.stride, "ConvWorkspace: \(bytes) bytes")
        capacity = bytes / MemoryLayout<Float>.stride
        let raw = UnsafeMutableRawPointer.allocate(byteCount: capacity * MemoryLayout<Float>.stride,
                                                   alignment: 64)
        columns = raw.bindMemory(to: Float.self, capacity: capacity)
        columns.initialize(repeating: 0, count: capacity)
    }

    deinit { UnsafeMutableRawPointer(columns).deallocate() }

    /// The Winograd convs' buffers (transformed weights, a block's transformed input and output),
    /// allocated at first use and grown to the widest conv: 64·Cout·Cin floats for U plus
    /// 2 × 64·C·T for a block (Winograd.swift).
    lazy var winograd = WinogradBuffers()

    /// The tile for `geometry` over `positions` output positions: all input channels and as many
    /// columns as fit when that leaves at least `minimumTileColumns` columns (or all of them);
    /// otherwise `minimumTileColumns` columns and as many whole input channels as fit, in blocks of
    /// equal size.
    ///
    /// Each worker gets min(capacity / workers, tileBytes); with `workers` > 1 the columns are capped at
    /// ⌈positions / workers⌉, so that every worker has a tile of its own.
    public func tile(for geometry: Conv3dGeometry, positions: Int, workers: Int = 1) -> (columns: Int, channels: Int) {
        tile(for: geometry, positions: positions, workers: workers, splitPositions: true)
    }

    func tile(for geometry: Conv3dGeometry, positions: Int, workers: Int, splitPositions: Bool) -> (columns: Int, channels: Int) {
        let kv = geometry.kernel.volume, cin = geometry.inChannels
        let budget = min(capacity / max(1, workers), ConvWorkspace.tileBytes / MemoryLayout<Float>.stride)
        precondition(budget >= kv, "ConvWorkspace: \(budget) floats per worker cannot hold one column of \(kv) rows")
        let share = splitPositions ? (positions + workers - 1) / max(1, workers) : positions
        var channels = cin, columns: Int
        let wanted = min(share, ConvWorkspace.minimumTileColumns)
        if cin * kv * wanted <= budget {
            columns = min(share, budget / (cin * kv))
        } else {
            columns = wanted
            channels = max(1, budget / (kv * columns))
        }
        channels = min(channels, maxTileChannels)
        let blocks = (cin + channels - 1) / channels
        channels = (cin + blocks - 1) / blocks
        columns = max(1, min(columns, maxTileColumns, budget / (kv * channels)))
        return (columns, channels)
    }
}

/// Forward: `y = conv3d(x, weight)`, no bias. Overwrites `y`.
///
/// - Parameters:
///   - y: output `[N, Cout, Do, Ho, Wo]` (see `Conv3dGeometry.outputShape`)
///   - x: input `[N, Cin, D, H, W]`
///   - weight: `[Cout, Cin, kD, kH, kW]`
///   - workspace: column scratch (contents are clobbered)
public func conv3dForward(y: Tensor, x: Tensor, weight: Tensor, geometry g: Conv3dGeometry,
                          workspace: ConvWorkspace) {
    precondition(y.shape == g.outputShape(for: x.shape5).dims, "conv3dForward \(g): y \(y.shape), expected \(g.outputShape(for: x.shape5))")
    precondition(weight.shape == g.weightShape, "conv3dForward \(g): weight \(weight.shape)")
    if WinogradConv.isUsed(for: g, input: x.shape5) {
        winogradForward(y: y, x: x, weight: weight, geometry: g, buffers: workspace.winograd)
    } else {
        directConv3dForward(y: y, x: x, weight: weight, geometry: g, workspace: workspace)
    }
}

/// `conv3dForward` by vol2col + GEMM, whatever `ConvAlgorithm.selected` says.
func directConv3dForward(y: Tensor, x: Tensor, weight: Tensor, geometry g: Conv3dGeometry,
                         workspace: ConvWorkspace) {
    let plan = ConvPlan(g, x.shape5)
    let K = plan.rows, P = plan.positions, cout = plan.outC
    let w = UnsafePointer(weight.data)
    if g.isPointwise {
        for n in 0..<plan.n {   // Y_n[Cout, P] = W[Cout, Cin] · x_n[Cin, P]
            BLAS.sgemm(.none, .none, m: cout, n: P, k: K, a: w, lda: K,
                       b: x.data + n * plan.inputPerSample, ldb: P, c: y.data + n * cout * P, ldc: P)
        }
        return
    }
    // Tiles are independent in the forward (each writes its own columns of Y), so with several
    // workers each takes a contiguous run of (sample, tile) jobs, with its own slice of the
    // workspace and a single-threaded GEMM: vol2col and GEMM of a tile stay on one core, in that
    // core's cache, and no thread waits for another between them.
    let workers = max(1, Parallel.threads)
    let (T, C) = workspace.tile(for: g, positions: P, workers: workers)
    let tiles = (P + T - 1) / T, jobs = plan.n * tiles
    let kv = g.kernel.volume
    let (xp, yp, slice) = (UnsafePointer(x.data), y.data, workspace.capacity / workers)
    func run(_ job: Int, _ cols: UnsafeMutablePointer<Float>, parallel: Bool) {
        let n = job / tiles, p0 = (job % tiles) * T, t = min(T, P - p0)
        let xn = xp + n * plan.inputPerSample                     // [Cin, D, H, W]
        let yn = yp + n * cout * P                                 // [Cout, P]
        var c0 = 0
        while c0 < plan.c {                                        // Y[:, tile] += W[:, rows] · cols
            let c1 = min(plan.c, c0 + C)
            vol2col(plan, xn, c0, c1, p0, p0 + t, cols, parallel: parallel)
            BLAS.sgemm(.none, .none, m: cout, n: t, k: (c1 - c0) * kv, a: w + c0 * kv, lda: K,
                       b: cols, ldb: t, beta: c0 == 0 ? 0 : 1, c: yn + p0, ldc: P)
            c0 = c1
        }
    }
    if workers > 1 && jobs >= workers {
        let saved = BLAS.threads
        BLAS.threads = 1
        defer { BLAS.threads = saved }
        Parallel.forEachWorker(jobs) { worker, range in
            for job in range { run(job, workspace.columns + worker * slice, parallel: false) }
        }
    } else {
        for job in 0..<jobs { run(job, workspace.columns, parallel: true) }
    }
}

/// Backward of `conv3dForward`. Pass nil for a gradient that is not needed (the stem's `dX`).
///
/// - `dX` `[N, Cin, D, H, W]` is WRITTEN (overwritten) with ∂L/∂x.
/// - `dWeight` `[Cout, Cin, kD, kH, kW]` is ACCUMULATED: ∂L/∂weight is added to its contents, so
///   the caller zeroes it once per step (and may sum micro-batches).
/// - `dY` `[N, Cout, Do, Ho, Wo]` is ∂L/∂y; `x` and `weight` are the forward's inputs.
public func conv3dBackward(dX: Tensor?, dWeight: Tensor?, dY: Tensor, x: Tensor, weight: Tensor,
                           geometry g: Conv3dGeometry, workspace: ConvWorkspace) {
    precondition(dY.shape == g.outputShape(for: x.shape5).dims, "conv3dBackward \(g): dY \(dY.shape), expected \(g.outputShape(for: x.shape5))")
    precondition(weight.shape == g.weightShape, "conv3dBackward \(g): weight \(weight.shape)")
    if let dX { precondition(dX.shape == x.shape, "conv3dBackward \(g): dX \(dX.shape) vs x \(x.shape)") }
    if let dWeight { precondition(dWeight.shape == g.weightShape, "conv3dBackward \(g): dWeight \(dWeight.shape)") }
    if WinogradConv.isUsed(for: g, input: x.shape5) {
        if dWeight == nil || WinogradConv.usesWinogradWeightGradient(for: g, input: x.shape5) {
            winogradBackward(dX: dX, dWeight: dWeight, dY: dY, x: x, weight: weight, geometry: g, buffers: workspace.winograd)
        } else {   // few tiles: dX by Winograd, dWeight direct
            winogradBackward(dX: dX, dWeight: nil, dY: dY, x: x, weight: weight, geometry: g, buffers: workspace.winograd)
            directConv3dBackward(dX: nil, dWeight: dWeight, dY: dY, x: x, weight: weight, geometry: g, workspace: workspace)
        }
    } else {
        directConv3dBackward(dX: dX, dWeight: dWeight, dY: dY, x: x, weight: weight, geometry: g, workspace: workspace)
    }
}

/// `conv3dBackward` by vol2col + GEMM, whatever `ConvAlgorithm.selected` says.
func directConv3dBackward(dX: Tensor?, dWeight: Tensor?, dY: Tensor, x: Tensor, weight: Tensor,
                          geometry g: Conv3dGeometry, workspace: ConvWorkspace) {
    let plan = ConvPlan(g, x.shape5)
    let K = plan.rows, P = plan.positions, cout = plan.outC
    let w = UnsafePointer(weight.data)
    if g.isPointwise {
        for n in 0..<plan.n {
            let xn = UnsafePointer(x.data + n * plan.inputPerSample)   // [Cin, P]
            let dyn = UnsafePointer(dY.data + n * cout * P)            // [Cout, P]
            if let dWeight {   // dW[Cout, Cin] += dY_n[Cout, P] · x_nᵀ[P, Cin]
                BLAS.sgemm(.none, .transpose, m: cout, n: K, k: P, a: dyn, lda: P, b: xn, ldb: P,
                           beta: 1, c: dWeight.data, ldc: K)
            }
            if let dX {        // dX_n[Cin, P] = Wᵀ[Cin, Cout] · dY_n[Cout, P]
                BLAS.sgemm(.transpose, .none, m: K, n: P, k: cout, a: w, lda: K, b: dyn, ldb: P,
                           c: dX.data + n * plan.inputPerSample, ldc: P)
            }
        }
        return
    }
    dX?.zero()
    // Each channel block owns its rows of dW and its channels of dX, so with several workers each
    // takes whole blocks (single-threaded GEMMs, its own workspace slice); otherwise blocks run in
    // turn with threaded GEMMs and parallel vol2col/col2vol. Per element the sums run in the same
    // order (samples, then tiles) either way.
    let workers = max(1, Parallel.threads)
    var (T, C) = workspace.tile(for: g, positions: P, workers: workers, splitPositions: false)
    if workers > 1 {
        C = min(C, (plan.c + workers - 1) / workers)
        C = (plan.c + (plan.c + C - 1) / C - 1) / ((plan.c + C - 1) / C)   // equal blocks
        T = max(1, min(T, min(workspace.capacity / workers, ConvWorkspace.tileBytes / 4) / (C * g.kernel.volume)))
    }
    let blocks = (plan.c + C - 1) / C
    let kv = g.kernel.volume
    let (xp, dyp, slice) = (UnsafePointer(x.data), UnsafePointer(dY.data), workspace.capacity / workers)
    func run(_ block: Int, _ cols: UnsafeMutablePointer<Float>, parallel: Bool) {   // cols [rows, t]
        let c0 = block * C, c1 = min(plan.c, c0 + C), rows = (c1 - c0) * kv
        for n in 0..<plan.n {
            let xn = xp + n * plan.inputPerSample                   // [Cin, D, H, W]
            let dyn = dyp + n * cout * P                            // [Cout, P]
            var p0 = 0
            while p0 < P {
                let t = min(T, P - p0)
                if let dWeight {   // dW[:, rows] += dY_n[:, tile] · colsᵀ
                    vol2col(plan, xn, c0, c1, p0, p0 + t, cols, parallel: parallel)
                    BLAS.sgemm(.none, .transpose, m: cout, n: rows, k: t, a: dyn + p0, lda: P, b: cols, ldb: t,
                               beta: 1, c: dWeight.data + c0 * kv, ldc: K)
                }
                if let dX {        // dcols = W[:, rows]ᵀ · dY_n[:, tile], scattered back into dX_n
                    BLAS.sgemm(.transpose, .none, m: rows, n: t, k: cout, a: w + c0 * kv, lda: K,
                               b: dyn + p0, ldb: P, c: cols, ldc: t)
                    col2vol(plan, cols, c0, c1, p0, p0 + t, dX.data + n * plan.inputPerSample, parallel: parallel)
                }
                p0 += t
            }
        }
    }
    if workers > 1 && blocks >= workers {
        let saved = BLAS.threads
        BLAS.threads = 1
        defer { BLAS.threads = saved }
        Parallel.forEachWorker(blocks) { worker, range in
            for block in range { run(block, workspace.columns + worker * slice, parallel: false) }
        }
    } else {
        for block in 0..<blocks { run(block, workspace.columns, parallel: true) }
    }
}
