import BLAS
import VectorKernels

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
// 3.4× fewer multiply-adds) unless `ConvAlgorithm.selected` is `.direct` (env `DSAN_CONV=direct`),
// and F(4×4×4, 3×3×3) for forward and dX where tiles are many and channels few (WinogradF4.swift,
// 8× fewer; `DSAN_CONV=winograd2` keeps F(2,3) only).
//
// Threads: the work is cut into jobs whose boundaries depend on the shapes alone — (sample,
// tile) in the forward, (block of input channels, group of tiles) in
// the backward, column panels for 1×1×1 convs — and `Parallel.forEachWorker` hands whole jobs to
// workers, each with its own workspace slice and single-threaded GEMMs. Every element's sum is
// therefore taken by the same GEMM calls in the same order on any number of threads: the results
// are the same bits on 1 thread or 16. (OpenBLAS's own threading splits a GEMM by the thread
// count, and its kernels round an element differently depending on where a split falls; under
// mpirun a rank's thread count follows its binding, so a conv that used it made 3 ranks on 2
// cores differ from 1 rank by 1e-2 at width 64.) A job is at most a slice of the workspace, so a
// tile stays in its core's cache between vol2col and the GEMM.

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
    if WinogradF4Conv.isUsed(for: g, input: x.shape5) {
        winogradF4Forward(y: y, x: x, weight: weight, geometry: g, buffers: workspace.winograd)
    } else if WinogradConv.isUsed(for: g, input: x.shape5) {
        winogradForward(y: y, x: x, weight: weight, geometry: g, buffers: workspace.winograd)
    } else {
        directConv3dForward(y: y, x: x, weight: weight, geometry: g, workspace: workspace)
    }
}

/// What multiplies a direct conv's forward (the stem, the strided 3³ convs and the 1×1×1
/// stride-2 shortcuts) and backward (the stem's dW, the strided 3³ convs' dX and dW). The stride-1
/// 1×1×1 convs and the shortcuts' backward stay with OpenBLAS either way.
public enum DirectGEMM: String, Sendable, CaseIterable, CustomStringConvertible {
    /// dsan's packed GEMM (Sources/VectorKernels/packed_gemm_body.h), at the CPU's vector width
    /// whatever core OpenBLAS loaded, on the weights packed once per call. The default: with
    /// OpenBLAS's AVX2 kernels on an AVX-512 CPU (the Zen 5 VM, whose environment forces
    /// `OPENBLAS_CORETYPE=Haswell`) full-size inference ran about 10 % faster, with OpenBLAS's
    /// AVX-512 kernels as fast (Docs/performance.md, "The stem's forward by dsan's GEMM").
    case packed
    /// OpenBLAS's sgemm (`DSAN_DIRECT_GEMM=openblas`, for comparisons).
    case openBLAS = "openblas"

    /// The process-wide choice from the environment variable `DSAN_DIRECT_GEMM` (`packed` or
    /// `openblas`, read once; `.packed` when unset); between it and a task's own
    /// (`DirectGEMM.choice.with(.openBLAS) { … }`, tests), the task's `ConvTuning` override
    /// (`packed-direct-forward`, `dsan bench tuning`; `packed-direct-backward` for the backward).
    public static let choice = ImplementationSwitch<DirectGEMM>(environment: "DSAN_DIRECT_GEMM", default: .packed) {
        ConvTuning.overrides[.packedDirectForward].map { $0 == 1 ? .packed : .openBLAS }
    }

    /// The GEMM of a direct forward (`choice.selected`).
    public static var selected: DirectGEMM { choice.selected }

    /// The GEMMs of a direct backward: `choice`, with `packed-direct-backward` as its tuned setting.
    public static var selectedForBackward: DirectGEMM {
        choice.selected(tuned: ConvTuning.overrides[.packedDirectBackward].map { $0 == 1 ? .packed : .openBLAS })
    }

    public var description: String { rawValue }
}

/// `conv3dForward` by vol2col + GEMM, whatever `ConvAlgorithm.selected` says.
func directConv3dForward(y: Tensor, x: Tensor, weight: Tensor, geometry g: Conv3dGeometry,
                         workspace: ConvWorkspace) {
    let plan = ConvPlan(g, x.shape5)
    let K = plan.rows, P = plan.positions, cout = plan.outC
    let (w, xp, yp) = (UnsafePointer(weight.data), UnsafePointer(x.data), y.data)
    if g.isPointwise {   // Y_n[Cout, panel] = W[Cout, Cin] · x_n[Cin, panel]
        let (panel, panels) = pointwisePanels(P)
        BLAS.withThreads(1) {
            Parallel.forEach(plan.n * panels) { jobs in
                for job in jobs {
                    let n = job / panels, p0 = (job % panels) * panel
                    BLAS.sgemm(.none, .none, m: cout, n: min(panel, P - p0), k: K, a: w, lda: K,
                               b: xp + n * plan.inputPerSample + p0, ldb: P, c: yp + n * cout * P + p0, ldc: P)
                }
            }
        }
        return
    }
    // Jobs are (sample, tile of positions): Y[:, tile] is the sum over the channel blocks of
    // W[:, block] · cols[block, tile]. Tiles narrow (to `minimumSplitColumns` at least) until a
    // sample has `minimumConvJobs` of them.
    let (widest, C) = workspace.tile(for: g, positions: P)
    let T = splitColumns(widest, positions: P)
    let tiles = (P + T - 1) / T
    let kv = g.kernel.volume
    if DirectGEMM.selected == .packed {
        packedDirectForward(plan, x: xp, weight: w, y: yp, workspace: workspace, tileColumns: T, blockChannels: C)
        return
    }
    BLAS.withThreads(1) {
        Parallel.forEachWorkerDynamically(plan.n * tiles, maxWorkers: workspace.reserveSlices()) { worker, jobs in
            let cols = workspace.columns + worker * workspace.sliceFloats
            for job in jobs {
                let n = job / tiles, p0 = (job % tiles) * T, t = min(T, P - p0)
                let xn = xp + n * plan.inputPerSample               // [Cin, D, H, W]
                let yn = yp + n * cout * P                          // [Cout, P]
                var c0 = 0
                while c0 < plan.c {                                 // Y[:, tile] += W[:, block] · cols
                    let c1 = min(plan.c, c0 + C)
                    vol2col(plan, xn, c0, c1, p0, p0 + t, cols, parallel: false)
                    BLAS.sgemm(.none, .none, m: cout, n: t, k: (c1 - c0) * kv, a: w + c0 * kv, lda: K,
                               b: cols, ldb: t, beta: c0 == 0 ? 0 : 1, c: yn + p0, ldc: P)
                    c0 = c1
                }
            }
        }
    }
}


/// The direct forward by dsan's packed GEMM (`DirectGEMM.packed`). W is packed once per call,
/// block of input channels by block (each block's columns a packed matrix of its own), and each
/// job sums Y[its rows, tile] = Σ_block W[rows, block] · cols[block, tile] as slices of one
/// product (`dsan_packed_gemm_partial`): every output is one sum over K in order, whatever the
/// tiles, the channel blocks and the rows a job takes. So the rows can be cut by the thread count:
/// where the (sample, tile) jobs are fewer than the workers (the strided convs of layers 3–4 at
/// batch 1: 4–8 tiles), each is cut into groups of row panels, up to one per worker (the groups
/// repeat the tile's vol2col, which costs about 1/Cout of its GEMM); on 2 threads every conv of the
/// model has tiles enough, and nothing is cut.
private func packedDirectForward(_ plan: ConvPlan, x xp: UnsafePointer<Float>, weight w: UnsafePointer<Float>,
                                 y yp: UnsafeMutablePointer<Float>, workspace: ConvWorkspace,
                                 tileColumns T: Int, blockChannels C: Int) {
    VectorLevel.configure()   // DSAN_SIMD sets the packed GEMM's level before its first use
    let K = plan.rows, P = plan.positions, cout = plan.outC, kv = plan.kd * plan.kh * plan.kw
    let tiles = (P + T - 1) / T, blocks = (plan.c + C - 1) / C
    let R = dsan_packed_gemm_panel_rows(), panels = (cout + R - 1) / R
    // W[:, block] packed for each block, block b's matrix at cout_pad · c0·kv (one block: W packed),
    // a panel of a block per item (serial, layer4.0.conv1's 3.5 M floats took about a millisecond).
    let a = workspace.winograd.weights(panels * R * K)
    Parallel.forEach(blocks * panels) { items in
        for item in items {
            let block = item / panels, p = item % panels
            let c0 = block * C, rows = (min(plan.c, c0 + C) - c0) * kv
            dsan_packed_gemm_pack(w + p * R * K + c0 * kv, K, min(R, cout - p * R), rows,
                                  a + panels * R * c0 * kv + p * rows * R)
        }
    }
    let workers = workspace.reserveSlices()
    let groups = max(1, min(panels, (workers + plan.n * tiles - 1) / max(1, plan.n * tiles)))
    // Per worker, the running sums of a job's rows over the blocks (in the kernel's own order).
    let sumFloats = blocks > 1 ? panels * R * T : 0
    let sums = blocks > 1 ? workspace.packedOperands.reserve(workers * sumFloats) : nil
    let pa = UnsafePointer(a)
    Parallel.forEachWorkerDynamically(plan.n * tiles * groups, maxWorkers: workers) { worker, jobs in
        let cols = workspace.columns + worker * workspace.sliceFloats   // [block rows, t]
        let mine = sums.map { $0 + worker * sumFloats }
        for job in jobs {
            let group = job % groups, tile = (job / groups) % tiles, n = job / (groups * tiles)
            let p0 = tile * T, t = min(T, P - p0)
            let panel0 = panels * group / groups, panel1 = panels * (group + 1) / groups
            let m0 = panel0 * R, m = min(cout, panel1 * R) - m0
            let xn = xp + n * plan.inputPerSample, yn = yp + n * cout * P
            for block in 0..<blocks {
                let c0 = block * C, c1 = min(plan.c, c0 + C), rows = (c1 - c0) * kv
                vol2col(plan, xn, c0, c1, p0, p0 + t, cols, parallel: false)
                dsan_packed_gemm_partial(pa + panels * R * c0 * kv + panel0 * rows * R, m, rows, cols, t, t,
                                         block == 0 ? nil : UnsafePointer(mine), block == blocks - 1 ? nil : mine,
                                         yn + m0 * P + p0, P)
            }
        }
    }
}

/// Backward of `conv3dForward`. Pass nil for a gradient that is not needed (the stem's `dX`).
///
/// - `dX` `[N, Cin, D, H, W]` is WRITTEN (overwritten) with ∂L/∂x.
/// - `dWeight` `[Cout, Cin, kD, kH, kW]` is ACCUMULATED: ∂L/∂weight is added to its contents, so
///   the caller zeroes it once per step (and may sum micro-batches); lazily zero
///   (`Tensor.zeroLazily`) it is written, or zeroed first where the kernel only adds.
/// - `dY` `[N, Cout, Do, Ho, Wo]` is ∂L/∂y; `x` and `weight` are the forward's inputs.
public func conv3dBackward(dX: Tensor?, dWeight: Tensor?, dY: Tensor, x: Tensor, weight: Tensor,
                           geometry g: Conv3dGeometry, workspace: ConvWorkspace) {
    precondition(dY.shape == g.outputShape(for: x.shape5).dims, "conv3dBackward \(g): dY \(dY.shape), expected \(g.outputShape(for: x.shape5))")
    precondition(weight.shape == g.weightShape, "conv3dBackward \(g): weight \(weight.shape)")
    if let dX { precondition(dX.shape == x.shape, "conv3dBackward \(g): dX \(dX.shape) vs x \(x.shape)") }
    if let dWeight { precondition(dWeight.shape == g.weightShape, "conv3dBackward \(g): dWeight \(dWeight.shape)") }
    if WinogradF4Conv.isUsed(for: g, input: x.shape5) {   // dX by F(4,3), dW as F(2,3) would take it
        if let dX { winogradF4InputGradient(dX: dX, dY: dY, weight: weight, geometry: g, buffers: workspace.winograd) }
        if dWeight == nil { return }
        if WinogradConv.usesWinogradWeightGradient(for: g, input: x.shape5) {
            winogradBackward(dX: nil, dWeight: dWeight, dY: dY, x: x, weight: weight, geometry: g, buffers: workspace.winograd)
        } else {
            directConv3dBackward(dX: nil, dWeight: dWeight, dY: dY, x: x, weight: weight, geometry: g, workspace: workspace)
        }
    } else if WinogradConv.isUsed(for: g, input: x.shape5) {
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
    dWeight?.resolveLazyZero()   // its GEMMs add (beta 1) over samples and tiles
    let plan = ConvPlan(g, x.shape5)
    let K = plan.rows, P = plan.positions, cout = plan.outC
    let (w, xp, dyp) = (UnsafePointer(weight.data), UnsafePointer(x.data), UnsafePointer(dY.data))
    if g.isPointwise {
        BLAS.withThreads(1) {
            if let dWeight {   // dW[rows, Cin] += Σ_n dY_n[rows, P] · x_nᵀ[P, Cin], blocks of output rows
                let (panelRows, panels) = rowPanels(cout, tileJobs: 1)
                Parallel.forEach(panels) { jobs in
                    for job in jobs {
                        let m0 = job * panelRows
                        for n in 0..<plan.n {
                            BLAS.sgemm(.none, .transpose, m: min(panelRows, cout - m0), n: K, k: P,
                                       a: dyp + n * cout * P + m0 * P, lda: P, b: xp + n * plan.inputPerSample, ldb: P,
                                       beta: 1, c: dWeight.data + m0 * K, ldc: K)
                        }
                    }
                }
            }
            if let dX {        // dX_n[Cin, panel] = Wᵀ[Cin, Cout] · dY_n[Cout, panel]
                let (panel, panels) = pointwisePanels(P)
                Parallel.forEach(plan.n * panels) { jobs in
                    for job in jobs {
                        let n = job / panels, p0 = (job % panels) * panel
                        BLAS.sgemm(.transpose, .none, m: K, n: min(panel, P - p0), k: cout, a: w, lda: K,
                                   b: dyp + n * cout * P + p0, ldb: P, c: dX.data + n * plan.inputPerSample + p0, ldc: P)
                    }
                }
            }
        }
        return
    }
    // Jobs are (block of input channels, block of output rows). A block of input channels owns
    // its rows of dW and its channels of dX, which it zeroes itself (no serial pass over dX first);
    // the input channels are cut into at least `backwardChannelBlocks` blocks (8, more for many
    // positions) where there are channels for them. With fewer blocks and no dX to scatter (the
    // stem), the output rows of dW are cut into blocks as well (`rowPanels`). Per element the sums
    // run over samples, then tiles, in the same order whatever the thread count and however many
    // samples a rank holds.
    let (T, C) = workspace.tile(for: g, positions: P, minimumBlocks: backwardChannelBlocks(channels: plan.c, positions: P))
    let blocks = (plan.c + C - 1) / C, tiles = (P + T - 1) / T
    let kv = g.kernel.volume
    if dX == nil, let dWeight, blocks < minimumConvJobs, tiles > 1 {
        directWeightGradientByPositions(dWeight, plan: plan, x: xp, dY: dyp, geometry: g, workspace: workspace,
                                        tileColumns: T, blockChannels: C)
        return
    }
    let (panelRows, panels) = dX == nil && blocks < minimumConvJobs ? rowPanels(cout, tileJobs: blocks) : (cout, 1)
    // The 1×1×1 stride-2 shortcuts keep OpenBLAS: a block of theirs has as many rows as input
    // channels (8), too few for the packed GEMM's panels of 32 rows (1.4× slower, in pairs).
    if DirectGEMM.selectedForBackward == .packed && kv > 1 {
        // With dsan's GEMM each dcols element is one sum over Cout and each dW element its old value
        // plus one sum over the positions in order, whatever the channels of a block; col2vol adds a
        // voxel's terms tile by tile, so the tiles stay, and only the blocks may follow the workers:
        // more workers than blocks (16–64 cores) get thinner blocks, the same bits.
        let workers = workspace.reserveSlices()
        let channels = dX != nil && workers > blocks ? (plan.c + workers - 1) / workers : C
        packedDirectBackward(dX: dX, dWeight: dWeight, plan: plan, x: xp, dY: dyp, weight: w, workspace: workspace,
                             tileColumns: T, blockChannels: min(C, channels), panelRows: panelRows, panels: panels)
        return
    }
    BLAS.withThreads(1) {
        Parallel.forEachWorkerDynamically(blocks * panels, maxWorkers: workspace.reserveSlices()) { worker, jobs in
            let cols = workspace.columns + worker * workspace.sliceFloats   // [rows, t]
            for job in jobs {
                let block = job / panels, m0 = (job % panels) * panelRows, m = min(panelRows, cout - m0)
                let c0 = block * C, c1 = min(plan.c, c0 + C), rows = (c1 - c0) * kv
                if let dX { plan.zeroChannels(dX.data, c0, c1) }   // panels = 1 with dX
                for n in 0..<plan.n {
                    let xn = xp + n * plan.inputPerSample           // [Cin, D, H, W]
                    let dyn = dyp + n * cout * P                    // [Cout, P]
                    for tile in 0..<tiles {
                        let p0 = tile * T, t = min(T, P - p0)
                        if let dWeight {   // dW[rows of this job, block] += dY_n[rows, tile] · colsᵀ
                            vol2col(plan, xn, c0, c1, p0, p0 + t, cols, parallel: false)
                            BLAS.sgemm(.none, .transpose, m: m, n: rows, k: t, a: dyn + m0 * P + p0, lda: P, b: cols, ldb: t,
                                       beta: 1, c: dWeight.data + m0 * K + c0 * kv, ldc: K)
                        }
                        if let dX {        // dcols = W[:, block]ᵀ · dY_n[:, tile], scattered back into dX_n
                            BLAS.sgemm(.transpose, .none, m: rows, n: t, k: cout, a: w + c0 * kv, lda: K,
                                       b: dyn + p0, ldb: P, c: cols, ldc: t)
                            col2vol(plan, cols, c0, c1, p0, p0 + t, dX.data + n * plan.inputPerSample, parallel: false)
                        }
                    }
                }
            }
        }
    }
}

/// The channel-block backward by dsan's packed GEMM (`DirectGEMM.selectedForBackward`), the jobs
/// of OpenBLAS's (block of input channels, panel of output rows), or thinner blocks where the
/// workers outnumber them (the caller's choice; the bits do not depend on it). Per job, with dW:
/// dW[rows, block] is packed as the running sums' start (`dsan_packed_gemm_pack`: the sums'
/// layout is the packed one), and each (sample, tile) adds dY[rows, tile] (packed) times the
/// transposed vol2col tile as one slice of a product whose last slice writes dW: each dW element
/// is its old value plus one sum over the samples' positions in order. With dX: W[:, block]ᵀ is
/// packed once per job (`dsan_packed_gemm_pack_transposed`), dcols = W[:, block]ᵀ · dY_n[:, tile]
/// lands in the column slice and col2vol scatters it, as before.
private func packedDirectBackward(dX: Tensor?, dWeight: Tensor?, plan: ConvPlan, x xp: UnsafePointer<Float>,
                                  dY dyp: UnsafePointer<Float>, weight w: UnsafePointer<Float>,
                                  workspace: ConvWorkspace, tileColumns T: Int, blockChannels C: Int,
                                  panelRows: Int, panels: Int) {
    VectorLevel.configure()   // DSAN_SIMD sets the packed GEMM's level before its first use
    let K = plan.rows, P = plan.positions, cout = plan.outC, kv = plan.kd * plan.kh * plan.kw
    let blocks = (plan.c + C - 1) / C, tiles = (P + T - 1) / T
    let R = dsan_packed_gemm_panel_rows()
    func padded(_ n: Int) -> Int { (n + R - 1) / R * R }
    func aligned(_ n: Int) -> Int { (n + 15) / 16 * 16 }
    // Per worker: W[:, block]ᵀ packed (dX), dY's tile packed and the running sums (dW).
    let wFloats = dX == nil ? 0 : aligned(padded(C * kv) * cout)
    let dyFloats = dWeight == nil ? 0 : aligned(padded(panelRows) * T)
    let sumFloats = dWeight == nil ? 0 : aligned(padded(panelRows) * C * kv)
    let perWorker = wFloats + dyFloats + sumFloats
    let workers = workspace.reserveSlices()
    let scratch = workspace.packedOperands.reserve(workers * perWorker)
    let dWp = dWeight?.data, dXp = dX?.data
    let slices = plan.n * tiles
    Parallel.forEachWorkerDynamically(blocks * panels, maxWorkers: workers) { worker, jobs in
        let cols = workspace.columns + worker * workspace.sliceFloats   // [t, rows] for dW, then [rows, t] for dX
        let aW = scratch + worker * perWorker, aDY = aW + wFloats, sums = aDY + dyFloats
        for job in jobs {
            let block = job / panels, m0 = (job % panels) * panelRows, m = min(panelRows, cout - m0)
            let c0 = block * C, c1 = min(plan.c, c0 + C), rows = (c1 - c0) * kv
            if let dXp {        // panels = 1 with dX
                plan.zeroChannels(dXp, c0, c1)
                dsan_packed_gemm_pack_transposed(w + c0 * kv, K, rows, cout, aW)
            }
            let dWblock = dWp.map { $0 + m0 * K + c0 * kv }
            if let dWblock, slices > 0 { dsan_packed_gemm_pack(dWblock, K, m, rows, sums) }
            var slice = 0
            for n in 0..<plan.n {
                let xn = xp + n * plan.inputPerSample           // [Cin, D, H, W]
                let dyn = dyp + n * cout * P                    // [Cout, P]
                for tile in 0..<tiles {
                    let p0 = tile * T, t = min(T, P - p0)
                    if let dWblock {   // dW[rows of this job, block] += dY_n[rows, tile] · colsᵀ
                        dsan_packed_gemm_pack(dyn + m0 * P + p0, P, m, t, aDY)
                        vol2colTransposed(plan, xn, c0, c1, p0, p0 + t, cols)
                        let last = slice == slices - 1
                        dsan_packed_gemm_partial(aDY, m, t, cols, rows, rows, UnsafePointer(sums), last ? nil : sums,
                                                 dWblock, K)
                    }
                    slice += 1
                    if let dXp {        // dcols = W[:, block]ᵀ · dY_n[:, tile], scattered back into dX_n
                        dsan_packed_gemm(aW, rows, cout, dyn + p0, P, cols, t, t)
                        col2vol(plan, cols, c0, c1, p0, p0 + t, dXp + n * plan.inputPerSample, parallel: false)
                    }
                }
            }
        }
    }
}

/// dW alone where the input channels make fewer than `minimumConvJobs` blocks (the stem: one):
/// jobs are (block of input channels, chunk of column tiles), each summing its tiles of every
/// sample into a private partial dW [Cout, block rows] with GEMMs of all Cout rows, and the
/// partials are added into dW in chunk order afterwards. (Cutting the output rows instead gave
/// GEMMs of 16 rows, each job repeating vol2col for its rows: the stem's dW ran at 0.37 of
/// sgemm on one Zen 3 core.) The chunks (`positionChunks`) are a function of the shape, not of
/// the thread count.
///
/// The partials' GEMMs are dsan's packed GEMM by default (`DirectGEMM.selectedForBackward`):
/// per tile, dY's tile packed into panels is A [Cout × t] and the transposed vol2col tile is B
/// [t × rows], and the tiles of a job are slices of one product (`dsan_packed_gemm_partial`), so
/// each partial element is one sum over the job's positions in order. With OpenBLAS, per tile
/// partial += dY_tile · colsᵀ (sgemm NT, beta 1).
private func directWeightGradientByPositions(_ dWeight: Tensor, plan: ConvPlan, x xp: UnsafePointer<Float>,
                                             dY dyp: UnsafePointer<Float>, geometry g: Conv3dGeometry,
                                             workspace: ConvWorkspace, tileColumns T: Int, blockChannels C: Int) {
    let K = plan.rows, P = plan.positions, cout = plan.outC, kv = g.kernel.volume
    let blocks = (plan.c + C - 1) / C, tiles = (P + T - 1) / T
    let chunks = positionChunks(tiles: tiles, blocks: blocks)
    let partialFloats = cout * C * kv
    let partials = workspace.weightGradientPartials.reserve(blocks * chunks * partialFloats)
    if DirectGEMM.selectedForBackward == .packed {
        VectorLevel.configure()   // DSAN_SIMD sets the packed GEMM's level before its first use
        let R = dsan_packed_gemm_panel_rows(), panelRows = (cout + R - 1) / R * R
        // Per worker: dY's tile packed (panelRows × T) and the running sums (panelRows × rows).
        let aFloats = (panelRows * T + 15) / 16 * 16, perWorker = aFloats + panelRows * C * kv
        let workers = workspace.reserveSlices()
        let operands = workspace.packedOperands.reserve(workers * perWorker)
        Parallel.forEachWorkerDynamically(blocks * chunks, maxWorkers: workers) { worker, jobs in
            let colsT = workspace.columns + worker * workspace.sliceFloats   // [t, rows]
            let a = operands + worker * perWorker, sums = a + aFloats
            for job in jobs {
                let block = job / chunks, chunk = job % chunks
                let c0 = block * C, c1 = min(plan.c, c0 + C), rows = (c1 - c0) * kv
                let partial = partials + job * partialFloats                 // [Cout, rows]
                let tile0 = tiles * chunk / chunks, tile1 = tiles * (chunk + 1) / chunks
                let slices = plan.n * (tile1 - tile0)
                if slices == 0 { partial.update(repeating: 0, count: cout * rows); continue }   // an empty batch
                var slice = 0
                for n in 0..<plan.n {
                    let xn = xp + n * plan.inputPerSample, dyn = dyp + n * cout * P
                    for tile in tile0..<tile1 {
                        let p0 = tile * T, t = min(T, P - p0)
                        dsan_packed_gemm_pack(dyn + p0, P, cout, t, a)
                        vol2colTransposed(plan, xn, c0, c1, p0, p0 + t, colsT)
                        dsan_packed_gemm_partial(a, cout, t, colsT, rows, rows, slice == 0 ? nil : UnsafePointer(sums),
                                                 slice == slices - 1 ? nil : sums, partial, rows)
                        slice += 1
                    }
                }
            }
        }
    } else {
        BLAS.withThreads(1) {
            Parallel.forEachWorkerDynamically(blocks * chunks, maxWorkers: workspace.reserveSlices()) { worker, jobs in
                let cols = workspace.columns + worker * workspace.sliceFloats   // [rows, t]
                for job in jobs {
                    let block = job / chunks, chunk = job % chunks
                    let c0 = block * C, c1 = min(plan.c, c0 + C), rows = (c1 - c0) * kv
                    let partial = partials + job * partialFloats                 // [Cout, rows]
                    var first = true
                    for n in 0..<plan.n {
                        let xn = xp + n * plan.inputPerSample, dyn = dyp + n * cout * P
                        for tile in (tiles * chunk / chunks)..<(tiles * (chunk + 1) / chunks) {
                            let p0 = tile * T, t = min(T, P - p0)
                            vol2col(plan, xn, c0, c1, p0, p0 + t, cols, parallel: false)
                            BLAS.sgemm(.none, .transpose, m: cout, n: rows, k: t, a: dyn + p0, lda: P, b: cols, ldb: t,
                                       beta: first ? 0 : 1, c: partial, ldc: rows)
                            first = false
                        }
                    }
                    if first { partial.update(repeating: 0, count: cout * rows) }   // no tile (an empty batch)
                }
            }
        }
    }
    // dW[co, block] += Σ_chunk partial, chunks in order; workers split the output channels.
    Parallel.forEach(cout) { range in
        for block in 0..<blocks {
            let c0 = block * C, rows = (min(plan.c, c0 + C) - c0) * kv
            for co in range {
                let out = dWeight.data + co * K + c0 * kv
                for r in 0..<rows {
                    var sum = partials[(block * chunks) * partialFloats + co * rows + r]
                    for chunk in 1..<chunks { sum += partials[(block * chunks + chunk) * partialFloats + co * rows + r] }
                    out[r] += sum
                }
            }
        }
    }
}
