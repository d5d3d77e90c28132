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

/// The work of one conv is cut into at least this many jobs where its shape allows (more jobs
/// than this only where the tiling needs them), so up to this many workers share it. A function of
/// nothing but this constant and the shapes, which keeps the results independent of the threads.
public let minimumConvJobs = 8

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
/// by `columns` output positions, and it never exceeds one slice of min(`capacity`, `tileBytes`),
/// so memory is bounded whatever the input size: a tile that stays in the core's L2 cache between
/// vol2col writing it and the GEMM reading it is what makes the conv run near the sgemm rate
/// (Docs/performance.md). Each worker gets a slice of its own, so at most `slices` workers run
/// tiles at once; the slice size, and with it the tiling, does not depend on the worker count.
///
/// A workspace made with `init()` follows the thread count: it starts with one slice per thread
/// (`Parallel.threads`, at least 2) and grows to one per thread when a conv runs on more threads
/// than it was made for (`reserveSlices`), so a model created before the threads were set does not
/// cap its direct convs. One made with `init(bytes:)` keeps its size, and with it its bound on the
/// workers (tests and `dsan bench kernels --workspace-mib`).
public final class ConvWorkspace {
    /// The default size: one `tileBytes` slice per thread (`Parallel.threads`), at least 2.
    public static var defaultBytes: Int { max(2, Parallel.threads) * tileBytes }
    /// The most one worker's tile uses, 1 MiB: the L2 cache of one core of the target machine
    /// (AMD Zen 3), and the best of 1–32 MiB tiles measured there (Docs/performance.md).
    public static let tileBytes = 1 << 20
    /// Below this many columns a GEMM loses efficiency, so a tile rather splits the input channels.
    public static let minimumTileColumns = 256

    /// Capacity in floats.
    public private(set) var capacity: Int
    /// The column buffer, `capacity` floats, 64-byte aligned (it moves when the workspace grows).
    public private(set) var columns: UnsafeMutablePointer<Float>
    /// True when the workspace grows to one slice per thread (`init()`).
    public let followsThreads: Bool
    /// Upper bound on the tile width in output positions; tests set it small to force many tiles.
    public var maxTileColumns: Int = .max
    /// Upper bound on the input channels of a tile; tests set it small to force channel blocks.
    public var maxTileChannels: Int = .max

    /// A workspace of the default size that grows with `Parallel.threads`.
    public convenience init() {
        self.init(floats: ConvWorkspace.defaultBytes / MemoryLayout<Float>.stride, followsThreads: true)
    }

    /// A workspace of exactly `bytes` (rounded down to whole floats), never grown.
    public convenience init(bytes: Int) {
        precondition(bytes >= MemoryLayout<Float>.stride, "ConvWorkspace: \(bytes) bytes")
        self.init(floats: bytes / MemoryLayout<Float>.stride, followsThreads: false)
    }

    private init(floats: Int, followsThreads: Bool) {
        capacity = floats
        columns = ConvWorkspace.allocate(floats)
        self.followsThreads = followsThreads
    }

    private static func allocate(_ floats: Int) -> UnsafeMutablePointer<Float> {
        let raw = UnsafeMutableRawPointer.allocate(byteCount: floats * MemoryLayout<Float>.stride, alignment: 64)
        let p = raw.bindMemory(to: Float.self, capacity: floats)
        p.initialize(repeating: 0, count: floats)
        return p
    }

    deinit { UnsafeMutableRawPointer(columns).deallocate(); weightGradientPartials.free() }

    /// The Winograd convs' buffers (transformed weights, a block's transformed input and output),
    /// allocated at first use and grown to the widest conv: 64·Cout·Cin floats for U plus
    /// 2 × 64·C·T for a block (Winograd.swift).
    lazy var winograd = WinogradBuffers()

    /// The private partial weight gradients of `directWeightGradientByPositions` (the stem's dW:
    /// up to 64 chunks × 64·343 floats, 5.6 MB), kept so that a step allocates nothing.
    var weightGradientPartials = ScratchFloats()

    /// Floats in one worker's slice: min(`capacity`, `tileBytes` / 4). The same before and after
    /// the workspace grows (it starts with at least two slices), so the tiling never changes.
    public var sliceFloats: Int { min(capacity, ConvWorkspace.tileBytes / MemoryLayout<Float>.stride) }

    /// How many workers can run tiles at once: min(`Parallel.threads`, whole slices in `capacity`).
    public var slices: Int { max(1, min(Parallel.threads, capacity / sliceFloats)) }

    /// Grows a workspace that follows the threads to one slice per thread (`Parallel.threads`),
    /// then returns `slices`. Call it before a parallel region reads `columns`: growing moves the
    /// buffer (its contents are scratch and not kept).
    public func reserveSlices() -> Int {
        let wanted = Parallel.threads * sliceFloats
        if followsThreads && wanted > capacity {
            UnsafeMutableRawPointer(columns).deallocate()
            columns = ConvWorkspace.allocate(wanted)
            capacity = wanted
        }
        return slices
    }

    /// The tile for `geometry` over `positions` output positions: all input channels and as many
    /// columns as fit in one slice when that leaves at least `minimumTileColumns` columns (or all
    /// of them); otherwise `minimumTileColumns` columns and as many whole input channels as fit,
    /// in blocks of equal size. With `minimumBlocks` > 1 the input channels are cut into at least
    /// that many blocks (as far as there are channels), and the columns widen to fill the slice.
    /// The result depends on the geometry, `positions` and the slice size only.
    public func tile(for geometry: Conv3dGeometry, positions: Int, minimumBlocks: Int = 1) -> (columns: Int, channels: Int) {
        let kv = geometry.kernel.volume, cin = geometry.inChannels
        let budget = sliceFloats
        precondition(budget >= kv, "ConvWorkspace: \(budget) floats per worker cannot hold one column of \(kv) rows")
        var channels = cin, columns: Int
        let wanted = min(positions, ConvWorkspace.minimumTileColumns)
        if cin * kv * wanted <= budget {
            columns = min(positions, budget / (cin * kv))
        } else {
            columns = wanted
            channels = max(1, budget / (kv * columns))
        }
        channels = min(channels, maxTileChannels, (cin + minimumBlocks - 1) / max(1, minimumBlocks))
        let blocks = (cin + channels - 1) / channels
        channels = (cin + blocks - 1) / blocks
        columns = max(1, min(positions, maxTileColumns, budget / (kv * channels)))
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
    if WinogradF4Conv.isUsed(for: g, input: x.shape5) {
        winogradF4Forward(y: y, x: x, weight: weight, geometry: g, buffers: workspace.winograd)
    } else if WinogradConv.isUsed(for: g, input: x.shape5) {
        winogradForward(y: y, x: x, weight: weight, geometry: g, buffers: workspace.winograd)
    } else {
        directConv3dForward(y: y, x: x, weight: weight, geometry: g, workspace: workspace)
    }
}

/// What multiplies a direct conv's forward when its input channels make one block of columns
/// (the stem, and the strided 3³ convs at dsan's workspace sizes).
public enum DirectGEMM: String, Sendable, CaseIterable, CustomStringConvertible {
    /// dsan's packed GEMM (Sources/VectorKernels/packed_gemm_body.h), at the CPU's vector width
    /// whatever core OpenBLAS loaded, on the weights packed once per call. The default: with
    /// OpenBLAS's AVX2 kernels on an AVX-512 CPU (the Zen 5 VM, whose environment forces
    /// `OPENBLAS_CORETYPE=Haswell`) full-size inference ran about 10 % faster, with OpenBLAS's
    /// AVX-512 kernels as fast (Docs/performance.md, "The stem's forward by dsan's GEMM").
    case packed
    /// OpenBLAS's sgemm (`DSAN_DIRECT_GEMM=openblas`, for comparisons).
    case openBLAS = "openblas"

    /// The task's `scoped` choice when one is set, else its `ConvTuning` override
    /// (`packed-direct-forward`, `dsan bench tuning`), else the environment variable
    /// `DSAN_DIRECT_GEMM` (`packed` or `openblas`, read once), `.packed` when unset.
    public static var selected: DirectGEMM {
        if let scoped { return scoped }
        if let tuned = ConvTuning.overrides[.packedDirectForward] { return tuned == 1 ? .packed : .openBLAS }
        return processWide
    }
    nonisolated(unsafe) static var processWide: DirectGEMM = environmentChoice("DSAN_DIRECT_GEMM", default: .packed)
    /// A choice for one task: `DirectGEMM.$scoped.withValue(.openBLAS) { … }` (tests).
    @TaskLocal public static var scoped: DirectGEMM?

    public var description: String { rawValue }
}

/// `w` `[rows, columns]` (row-major) in `dsan_packed_gemm`'s layout: panels of R =
/// `dsan_packed_gemm_panel_rows()` rows, w[i][k] at ((i / R)·columns + k)·R + i % R, rows past
/// `rows` zero; in the buffers' weight scratch (free during a direct conv).
private func packedWeights(_ w: UnsafePointer<Float>, rows: Int, columns: Int,
                           into buffers: WinogradBuffers) -> UnsafeMutablePointer<Float> {
    VectorLevel.configure()   // DSAN_SIMD sets the packed GEMM's level before its first use
    let R = dsan_packed_gemm_panel_rows()
    let panels = (rows + R - 1) / R
    let a = buffers.weights(Int(dsan_packed_gemm_floats(rows, columns)))
    // Serial: at most 256 × 3456 floats (layer3.0.conv1), a millisecond beside its GEMMs.
    for p in 0..<panels {
        let panel = a + p * columns * R
        for r in 0..<R {
            let i = p * R + r
            if i < rows {
                let row = w + i * columns
                for k in 0..<columns { panel[k * R + r] = row[k] }
            } else {
                for k in 0..<columns { panel[k * R + r] = 0 }
            }
        }
    }
    return a
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
    if C >= plan.c && DirectGEMM.selected == .packed {
        // One block of channels: Y[:, tile] = W · cols by dsan's packed GEMM, W packed once per call.
        let a = UnsafePointer(packedWeights(w, rows: cout, columns: K, into: workspace.winograd))
        Parallel.forEachWorkerDynamically(plan.n * tiles, maxWorkers: workspace.reserveSlices()) { worker, jobs in
            let cols = workspace.columns + worker * workspace.sliceFloats
            for job in jobs {
                let n = job / tiles, p0 = (job % tiles) * T, t = min(T, P - p0)
                vol2col(plan, xp + n * plan.inputPerSample, 0, plan.c, p0, p0 + t, cols, parallel: false)
                dsan_packed_gemm(a, cout, K, cols, t, yp + n * cout * P + p0, P, t)
            }
        }
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

/// A 64-byte aligned float buffer that grows on demand and is kept between calls, so that a step
/// allocates nothing (the Winograd buffers, the stem's partial weight gradients). Its owner frees
/// it (`free`) in its deinit.
struct ScratchFloats {
    private(set) var pointer: UnsafeMutablePointer<Float>? = nil
    private(set) var count = 0

    /// At least `n` floats (zeros when newly allocated; the old contents are not kept on growth).
    mutating func reserve(_ n: Int) -> UnsafeMutablePointer<Float> {
        if n > count || pointer == nil {
            free()
            pointer = FloatStorage.allocate(n)
            pointer!.initialize(repeating: 0, count: max(n, 1))
            count = max(n, 1)
        }
        return pointer!
    }

    func free() { if let pointer { FloatStorage.free(pointer) } }
}

/// Columns below which a tile is not narrowed further for the sake of more jobs.
let minimumSplitColumns = 64

/// The tile width for `positions` positions: `widest` (what the workspace holds), narrowed until
/// one sample has `minimumConvJobs` tiles, but not below `minimumSplitColumns`. A function of the
/// geometry alone — not of the thread count, and not of the samples a rank holds: OpenBLAS rounds
/// an element differently depending on where in a GEMM's columns it falls, so a tile width that
/// followed a rank's share of the batch would make rank counts differ (3e-4 of a gradient at
/// width 64, global batch 3).
func splitColumns(_ widest: Int, positions P: Int) -> Int {
    max(1, min(widest, max(min(P, minimumSplitColumns), (P + minimumConvJobs - 1) / minimumConvJobs)))
}

/// Column panels of a 1×1×1 conv over P positions (see `splitColumns`).
func pointwisePanels(_ P: Int) -> (panel: Int, panels: Int) {
    let panel = splitColumns(P, positions: P)
    return (panel, (P + panel - 1) / panel)
}

/// Blocks of output rows (multiples of 16, the widest GEMM micro-kernel's rows) so that `tileJobs`
/// tiles make at least `minimumConvJobs` jobs where there are rows for them. A function of the
/// shape only.
func rowPanels(_ rows: Int, tileJobs: Int) -> (panelRows: Int, panels: Int) {
    if tileJobs >= minimumConvJobs || tileJobs == 0 || rows <= 16 { return (rows, 1) }
    let wanted = (minimumConvJobs + tileJobs - 1) / tileJobs
    let panelRows = max(16, ((rows + wanted - 1) / wanted + 15) / 16 * 16)
    return (panelRows, (rows + panelRows - 1) / panelRows)
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
    BLAS.withThreads(1) {
        Parallel.forEachWorkerDynamically(blocks * panels, maxWorkers: workspace.reserveSlices()) { worker, jobs in
            let cols = workspace.columns + worker * workspace.sliceFloats   // [rows, t]
            for job in jobs {
                let block = job / panels, m0 = (job % panels) * panelRows, m = min(panelRows, cout - m0)
                let c0 = block * C, c1 = min(plan.c, c0 + C), rows = (c1 - c0) * kv
                if let dX {        // this block's channels of every sample (panels = 1 with dX)
                    let volume = plan.d * plan.h * plan.w
                    for n in 0..<plan.n {
                        (dX.data + n * plan.inputPerSample + c0 * volume).update(repeating: 0, count: (c1 - c0) * volume)
                    }
                }
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

/// At most this many jobs where a direct conv's cut goes beyond `minimumConvJobs`: 64 workers of
/// a 64-core node. The stem's weight gradient (`positionChunks`: about 5 % of the step at
/// 64×128×128 and 138×256×256) and, at large sizes, the strided convs' backward
/// (`backwardChannelBlocks`: 3–4 % at 138×256×256) each keep a large share of the step in one
/// region: cut into 8 they left half of a 16-core node idle, and the stem's dW in 32 chunks half
/// of a 64-core one (Docs/performance.md, "On more cores than this machine has").
var maximumConvJobs: Int { ConvTuning.value(.convJobs) }
let defaultMaximumConvJobs = 64

/// Output positions per sample from which the direct backward cuts its input channels into more
/// than `minimumConvJobs` blocks (`backwardChannelBlocks`): below it the blocks' GEMMs are short
/// already. From 2048 (not 4096) since layer3.0.conv1 at 138×256×256 (2304 positions) was the
/// strided backward's last 8-block call there; the demo's strided convs (at most 256 positions)
/// keep their cut and bits.
var manyPositions: Int { ConvTuning.value(.stridedBackwardPositions) }
let defaultManyPositions = 2048

/// Input channels a block of the direct backward keeps at least when it is cut beyond
/// `minimumConvJobs`: 4 (108 rows of a 3³ kernel per GEMM).
let minimumBlockChannels = 4

/// The least number of input-channel blocks of the direct backward (dX and dW together, each
/// block owning its channels of dX and rows of dW): `minimumConvJobs`, and from `manyPositions`
/// output positions up to `maximumConvJobs` while a block keeps `minimumBlockChannels`. A function
/// of the shape alone, so the results do not follow the thread count. At 138×256×256,
/// layer2.0.conv1 (64 channels, 18 432 positions): 16 blocks, layer3.0.conv1 (128, 2304): 32;
/// at 64×128×128 layer2.0.conv1 (64, 2048): 16, layer3.0.conv1 (128, 256): 8.
func backwardChannelBlocks(channels: Int, positions: Int) -> Int {
    guard positions >= manyPositions else { return minimumConvJobs }
    return max(minimumConvJobs, min(maximumConvJobs, channels / minimumBlockChannels))
}

/// Column tiles a chunk keeps at least, when more chunks than `minimumConvJobs` asks for are
/// cut: each chunk's private partial (Cout·rows floats) is written once and read once, beside
/// the GEMMs of its tiles.
let minimumChunkTiles = 5

/// Chunks of column tiles per block of input channels in `directWeightGradientByPositions`: at
/// least `minimumConvJobs` jobs in all, up to `maximumConvJobs` while each chunk keeps
/// `minimumChunkTiles` tiles, and no more chunks than tiles. A function of the shape alone (the
/// partials are added in chunk order, so the chunks fix the result's rounding), never of the
/// thread count. The stem at 138×256×256 (1480 tiles): 64; at 64×128×128 (172 tiles): 34; at
/// 32×64×64 (22 tiles): 8, as before.
func positionChunks(tiles: Int, blocks: Int) -> Int {
    let least = (minimumConvJobs + blocks - 1) / blocks, most = (maximumConvJobs + blocks - 1) / blocks
    return max(1, min(tiles, max(least, min(most, tiles / minimumChunkTiles))))
}

/// dW alone where the input channels make fewer than `minimumConvJobs` blocks (the stem: one):
/// jobs are (block of input channels, chunk of column tiles), each summing its tiles of every
/// sample into a private partial dW [Cout, block rows] with GEMMs of all Cout rows, and the
/// partials are added into dW in chunk order afterwards. (Cutting the output rows instead gave
/// GEMMs of 16 rows, each job repeating vol2col for its rows: the stem's dW ran at 0.37 of
/// sgemm on one Zen 3 core.) The chunks (`positionChunks`) are a function of the shape, not of
/// the thread count.
private func directWeightGradientByPositions(_ dWeight: Tensor, plan: ConvPlan, x xp: UnsafePointer<Float>,
                                             dY dyp: UnsafePointer<Float>, geometry g: Conv3dGeometry,
                                             workspace: ConvWorkspace, tileColumns T: Int, blockChannels C: Int) {
    let K = plan.rows, P = plan.positions, cout = plan.outC, kv = g.kernel.volume
    let blocks = (plan.c + C - 1) / C, tiles = (P + T - 1) / T
    let chunks = positionChunks(tiles: tiles, blocks: blocks)
    let partialFloats = cout * C * kv
    let partials = workspace.weightGradientPartials.reserve(blocks * chunks * partialFloats)
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
}
