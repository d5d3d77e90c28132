import BLAS
import VectorKernels

// Winograd F(2×2×2, 3×3×3) for the 3×3×3 stride-1 padding-1 convs (Lavin & Gray, "Fast Algorithms
// for Convolutional Neural Networks", CVPR 2016, Eq. (8)–(10), nested over three axes).
//
// The output is cut into tiles of 2×2×2 voxels; tile (td, th, tw) of channel c reads the 4×4×4
// input patch d[a, b, c'] = x[2td − 1 + a, 2th − 1 + b, 2tw − 1 + c'] (zero outside the volume).
// With the 1-D matrices of F(2, 3)
//
//     Bᵀ = | 1  0 −1  0 |      G = | 1    0    0  |      Aᵀ = | 1  1  1  0 |
//          | 0  1  1  0 |          | ½    ½    ½  |           | 0  1 −1 −1 |
//          | 0 −1  1  0 |          | ½   −½    ½  |
//          | 0  1  0 −1 |          | 0    0    1  |
//
// applied along each of the three axes (written ⊗³ below), one tile of one output channel is
//
//     Y = Aᵀ⊗³ [ Σ_ci (G⊗³ g[co, ci]) ⊙ (Bᵀ⊗³ d[ci]) ]                       (forward)
//
// and the sum over input channels at each of the 64 transform positions ξ = (α, β, γ) ∈ 4³ is a
// GEMM over a block of T tiles:
//
//     M_ξ[Cout, T] = U_ξ[Cout, Cin] · V_ξ[Cin, T]        U = G⊗³ g,  V = Bᵀ⊗³ d,  Y = Aᵀ⊗³ M
//
// 64 products per tile and channel pair instead of the direct conv's 8·27 = 216 (3.375× fewer
// multiply-adds); the transforms are O(C·T) adds next to the GEMMs' O(C²·T).
//
// Backward:
// - dX is the stride-1 padding-1 conv of dY with the flipped, in/out-transposed kernel
//   g'[ci, co] = flip(g[co, ci]). Since G·flip(g) = P·G·g with P the permutation that swaps rows
//   0 and 3, U'_ξ = (U_{Pξ})ᵀ: the forward kernel runs on dY with the same U read transposed at the
//   permuted position, so the weights are transformed once per backward.
// - dW is the adjoint of the forward's weight path: with dM = A⊗³ dY (the adjoint of Aᵀ),
//
//     dU_ξ[Cout, Cin] = Σ_samples Σ_tiles dM_ξ[Cout, T] · V_ξ[Cin, T]ᵀ,     dg = Gᵀ⊗³ dU
//
//   a GEMM with K = T accumulated (beta = 1) over the tile blocks in a fixed order. With dsan's
//   packed GEMM one fused kernel (winograd_dw_body.h) computes each job's dU in registers and
//   cache and adds Gᵀ⊗³ of it into dW block by block, never writing dU (`usesFusedWeightGradient`;
//   few jobs for many workers go in parts of the 64 ξ, `weightGradientParts`, the same bits).
//
// Work partition: the tiles are cut into blocks whose V and M fit `WinogradConv.blockBytes`; each
// block runs in three phases with dsan's workers: (1) input transform, workers split the input
// channels; (2) the 64 GEMMs, workers take ξ one at a time from a shared counter
// (`Parallel.forEachWorkerDynamically`, so that a core held up by the OS or the hypervisor does not
// hold up the region), each GEMM single-threaded (or, for the forward and dX of a conv of one
// block, the row panels: see `TransformedWeights.panels`); (3) output transform, workers split the
// output channels. Block boundaries do not depend on the worker count and every
// number is computed by one worker in a fixed order, so the result is the same bit for bit on any
// number of threads. Partial edge tiles (odd extents) read zeros and drop the outputs that fall
// outside; blocks run over the flat tile index (n, td, th, tw), so they span samples.
//
// The transforms are C (Sources/VectorKernels/winograd_body.h), built for baseline x86-64, AVX2
// and AVX-512 and chosen at start-up like the other VectorKernels: L = 4, 8 or 16 consecutive
// tiles along w at once (the 4 input columns of L tiles are the even/odd lanes of two 2L-float
// loads from a zero-padded copy of the input row), and L input channels at once for the weights.
// Every level computes each value with the same operations in the same order. The forward's and
// dX's GEMMs are dsan's own by default (`WinogradGEMM`, Sources/VectorKernels/packed_gemm_body.h:
// the weight transform writes U in that GEMM's layout, so U is never copied per call); that GEMM
// fuses multiply-adds at AVX2 and AVX-512, so those two passes round differently at the SSE2
// baseline, as OpenBLAS's GEMMs do from one of its cores to another.

// MARK: Plan and buffers

/// Extents of one Winograd conv: the spatial volume (input = output), the tile grid and the block.
struct WinogradPlan {
    let n, d, h, w: Int
    let tD, tH, tW: Int
    /// Tiles per block (T) and the row stride of V and M (`WinogradConv.rowStride`).
    let blockTiles, ld: Int

    /// Floats from one ξ's matrix of V or M to the next (`dsan_winograd_plane_floats`).
    func plane(_ channels: Int) -> Int { dsan_winograd_plane_floats(channels, ld) }

    init(_ s: Shape5, inC: Int, outC: Int, blockBytes: Int) {
        n = s.n; d = s.d; h = s.h; w = s.w
        tD = (d + 1) / 2; tH = (h + 1) / 2; tW = (w + 1) / 2
        let tiles = n * tD * tH * tW
        let perTile = 64 * (inC + outC) * MemoryLayout<Float>.stride
        var t = max(WinogradConv.minimumBlockTiles, blockBytes / perTile) / 8 * 8
        t = min(t, tiles)
        // Equal blocks: the same number of blocks, each as small as possible.
        let blocks = (tiles + t - 1) / t
        blockTiles = (tiles + blocks - 1) / blocks
        ld = WinogradConv.rowStride(tiles: blockTiles)
    }

    var tilesPerSample: Int { tD * tH * tW }
    var tiles: Int { n * tilesPerSample }
    var blocks: Int { (tiles + blockTiles - 1) / blockTiles }

    /// The extents as the C transforms take them.
    var geometry: dsan_winograd_geometry { dsan_winograd_geometry(n: n, d: d, h: h, w: w, ld: ld) }
}

/// M_ξ[outC × tiles] = A_ξ · V_ξ[inC × tiles] for ξ in 0..<count with single-threaded OpenBLAS
/// GEMMs, workers taking ξ from a counter: A_ξ = U_{source(ξ)} `[outC × inC]`, or its transpose
/// when `transposed` (U then `[inC × outC]`, the input gradient's). U, V and M are `[ξ][rows][·]`
/// with V's and M's rows `ld` apart and their ξ `dsan_winograd_plane_floats` apart. The F(2,3) and
/// F(4,3) convs' GEMM phase with OpenBLAS.
func transformedProducts(_ count: Int, u: UnsafePointer<Float>, v: UnsafePointer<Float>, m: UnsafeMutablePointer<Float>,
                         outC: Int, inC: Int, tiles t: Int, ld: Int, workers: Int, transposed: Bool,
                         source: (Int) -> Int = { $0 }) {
    let (vPlane, mPlane) = (dsan_winograd_plane_floats(inC, ld), dsan_winograd_plane_floats(outC, ld))
    Parallel.forEachWorkerDynamically(count, maxWorkers: workers) { _, r in
        for xi in r {
            BLAS.sgemm(transposed ? .transpose : .none, .none, m: outC, n: t, k: inC, a: u + source(xi) * outC * inC,
                       lda: transposed ? outC : inC, b: v + xi * vPlane, ldb: ld, c: m + xi * mPlane, ldc: ld)
        }
    }
}

/// The same products with dsan's packed GEMM: A_ξ packed `plane` floats apart
/// (`dsan_packed_gemm_floats`), adjoint or not already in them. The F(2,3) and F(4,3) convs'
/// GEMM phase for a conv of several blocks.
func packedProducts(_ count: Int, a: UnsafePointer<Float>, plane: Int, v: UnsafePointer<Float>, m: UnsafeMutablePointer<Float>,
                    outC: Int, inC: Int, tiles t: Int, ld: Int, workers: Int) {
    let (vPlane, mPlane) = (dsan_winograd_plane_floats(inC, ld), dsan_winograd_plane_floats(outC, ld))
    Parallel.forEachWorkerDynamically(count, maxWorkers: workers) { _, r in
        for xi in r { dsan_packed_gemm(a + xi * plane, outC, inC, v + xi * vPlane, ld, m + xi * mPlane, ld, t) }
    }
}

/// Channels per item of a transform phase that workers take dynamically: about four items per
/// worker (`defaultTransformItemsPerWorker`), so that a held-up core's share is taken by the
/// others, but not so small that the per-call setup (row copies) shows. 16 per worker made the
/// workers wait less but took no less time (Docs/performance.md, "Where the second thread loses
/// time"; `dsan bench tuning --setting transform-items-per-worker=16`).
func transformGrain(_ channels: Int, _ workers: Int) -> Int {
    let items = ConvTuning.value(.transformItemsPerWorker) * workers
    return max(1, (channels + items - 1) / items)
}

let defaultTransformItemsPerWorker = 4

/// Scratch for the Winograd convs, grown on demand and kept by the `ConvWorkspace`:
/// the transformed weights (or their gradient), the block's V and M, and per-worker row copies
/// (`dsan_winograd_scratch_floats` each).
final class WinogradBuffers {
    private(set) var weights = ScratchFloats()
    private(set) var input = ScratchFloats()
    private(set) var output = ScratchFloats()
    private(set) var scratch = ScratchFloats()
    /// F(4,3)'s 216 matrices packed for dsan's GEMM (`WinogradF4Conv.usesPackedGEMM`), next to U.
    private(set) var packed = ScratchFloats()

    deinit { weights.free(); input.free(); output.free(); scratch.free(); packed.free() }

    func weights(_ n: Int) -> UnsafeMutablePointer<Float> { weights.reserve(n) }
    func input(_ n: Int) -> UnsafeMutablePointer<Float> { input.reserve(n) }
    func output(_ n: Int) -> UnsafeMutablePointer<Float> { output.reserve(n) }
    func scratch(_ n: Int) -> UnsafeMutablePointer<Float> { scratch.reserve(n) }
    func packed(_ n: Int) -> UnsafeMutablePointer<Float> { packed.reserve(n) }
}

// MARK: The passes

/// U[ξ][Cout][Cin] for `weight` `[Cout, Cin, 3, 3, 3]`, in the workspace's weight buffer.
private func transformedWeights(_ weight: Tensor, _ g: Conv3dGeometry, _ buffers: WinogradBuffers) -> UnsafeMutablePointer<Float> {
    let (cout, cin) = (g.outChannels, g.inChannels)
    let u = buffers.weights(64 * cout * cin)
    // Output channels taken as the workers finish (each writes its own channels of U).
    let workers = max(1, Parallel.threads)
    Parallel.forEachWorkerDynamically(cout, maxWorkers: workers, grain: transformGrain(cout, workers)) { _, range in
        dsan_winograd_weight_transform(weight.data, cout, cin, range.lowerBound, range.upperBound, u)
    }
    return u
}

/// The 64 matrices A_ξ of `winogradConvolve` packed for `dsan_packed_gemm`, in the workspace's
/// weight buffer: U_ξ [Cout, Cin] forward, (U_{Pξ})ᵀ [Cin, Cout] for the input gradient
/// (`adjoint`). Workers split the row panels. Returns the buffer and the floats per matrix.
private func packedWeights(_ weight: Tensor, _ g: Conv3dGeometry, adjoint: Bool,
                           _ buffers: WinogradBuffers) -> (UnsafeMutablePointer<Float>, Int) {
    let (cout, cin) = (g.outChannels, g.inChannels)
    let rows = adjoint ? cin : cout, k = adjoint ? cout : cin
    let plane = Int(dsan_packed_gemm_floats(rows, k))
    let panelRows = dsan_packed_gemm_panel_rows()
    let panels = (rows + panelRows - 1) / panelRows
    let a = buffers.weights(64 * plane)
    // Items are (panel, run of columns), taken as the workers finish (each writes its own columns
    // of a panel of all 64 matrices). With few panels for the workers (8 at layer2 on 16 or more
    // threads) a panel's columns go in runs of whole multiples of 8 (the transform's staging), as
    // many as give about four items per worker; each element's bits are the same however it is cut.
    let workers = max(1, Parallel.threads)
    let runs = max(1, min((k + 7) / 8, (4 * workers + panels - 1) / panels))
    func column(_ run: Int) -> Int { run == runs ? k : k * run / runs / 8 * 8 }
    Parallel.forEachWorkerDynamically(panels * runs, maxWorkers: workers, grain: transformGrain(panels * runs, workers)) { _, range in
        for item in range {
            let p = item / runs, (k0, k1) = (column(item % runs), column(item % runs + 1))
            if k0 < k1 { dsan_winograd_weight_transform_packed(weight.data, cout, cin, adjoint ? 1 : 0, p, p + 1, k0, k1, a) }
        }
    }
    return (a, plane)
}

/// The weights of `winogradConvolve`, transformed for the GEMM `WinogradGEMM.selected` names.
private enum TransformedWeights {
    /// U in `[ξ][Cout][Cin]` for OpenBLAS (read transposed at Pξ for the input gradient).
    case plain(UnsafeMutablePointer<Float>, adjoint: Bool)
    /// A_ξ packed, `plane` floats apart (adjoint or not is already in them).
    case packed(UnsafeMutablePointer<Float>, plane: Int)
    /// Not transformed ahead: the GEMM phase transforms one row panel of all 64 A_ξ at a time,
    /// a slice of its columns at a time (`WinogradConv.panelSliceColumns`: 256 KiB), into a
    /// worker's own buffer and multiplies it at once, so A never goes to memory, nor to L3. Only
    /// for a conv of one block: with more, each block would transform the weights again.
    case panels(UnsafePointer<Float>, Conv3dGeometry, adjoint: Bool)

    init(_ weight: Tensor, _ g: Conv3dGeometry, adjoint: Bool, _ buffers: WinogradBuffers, blocks: Int) {
        guard WinogradGEMM.selected == .packed else {
            self = .plain(transformedWeights(weight, g, buffers), adjoint: adjoint)
            return
        }
        VectorLevel.configure()   // DSAN_SIMD sets the packed GEMM's level before its first use
        if blocks == 1 && WinogradConv.transformsPanelsInTheGEMM {
            self = .panels(UnsafePointer(weight.data), g, adjoint: adjoint)
        } else {
            let (a, plane) = packedWeights(weight, g, adjoint: adjoint, buffers)
            self = .packed(a, plane: plane)
        }
    }
}

/// Per-worker scratch of the input and gradient transforms for plan `p`, rounded up to 64 bytes.
private func scratchFloats(_ p: WinogradPlan) -> Int {
    var g = p.geometry
    return (dsan_winograd_scratch_floats(&g) + 15) / 16 * 16
}

/// out `[N, outC, D, H, W]` = the stride-1 padding-1 3³ conv of `input` `[N, inC, D, H, W]`, with
/// transformed weights `weights`: U_ξ[outC, inC] (forward), or for the input gradient
/// U'_ξ = (U_{Pξ})ᵀ, from the forward's [inC, outC] matrices (adjoint).
private func winogradConvolve(_ s: Shape5, input: UnsafePointer<Float>, inC: Int, output: UnsafeMutablePointer<Float>,
                              outC: Int, weight: Tensor, geometry g: Conv3dGeometry, adjoint: Bool,
                              _ buffers: WinogradBuffers, blockBytes: Int) {
    let p = WinogradPlan(s, inC: inC, outC: outC, blockBytes: blockBytes)
    let weights = TransformedWeights(weight, g, adjoint: adjoint, buffers, blocks: p.blocks)
    let workers = max(1, Parallel.threads)
    let per = scratchFloats(p)
    let scratch = buffers.scratch(workers * per)
    let (vPlane, mPlane) = (p.plane(inC), p.plane(outC))
    let v = buffers.input(64 * vPlane), m = buffers.output(64 * mPlane)
    var geometry = p.geometry
    BLAS.withThreads(workers > 1 ? 1 : BLAS.threads) {
        for block in 0..<p.blocks {
            let t0 = block * p.blockTiles, t1 = min(p.tiles, t0 + p.blockTiles), t = t1 - t0
            Parallel.forEachWorkerDynamically(inC, maxWorkers: workers, grain: transformGrain(inC, workers)) { worker, r in
                let sc = scratch + worker * per
                dsan_winograd_input_transform(&geometry, input, inC, r.lowerBound, r.upperBound, t0, t1, v, sc)
            }
            switch weights {
            case .panels(let w, let conv, let adjoint):
                oneBlockPanelPhase(weight: w, conv, adjoint: adjoint, plan: p, tiles: t0, t, v: v, m: m, inC: inC, outC: outC,
                                   output: output, buffers, workers: workers)
                continue
            case .packed(let a, let plane):   // workers split ξ
                packedProducts(64, a: a, plane: plane, v: v, m: m, outC: outC, inC: inC, tiles: t, ld: p.ld, workers: workers)
            case .plain(let u, let adjoint):   // workers take ξ; the adjoint reads U_{Pξ} transposed
                // P swaps indices 0 and 3 along each axis: G·flip(g) = P·G·g.
                func swapped(_ i: Int) -> Int { i == 0 ? 3 : i == 3 ? 0 : i }
                transformedProducts(64, u: u, v: v, m: m, outC: outC, inC: inC, tiles: t, ld: p.ld, workers: workers,
                                    transposed: adjoint) { xi in
                    adjoint ? (swapped(xi / 16) * 4 + swapped((xi / 4) % 4)) * 4 + swapped(xi % 4) : xi
                }
            }
            Parallel.forEachWorkerDynamically(outC, maxWorkers: workers, grain: transformGrain(outC, workers)) { _, r in
                dsan_winograd_output_transform(&geometry, m, outC, r.lowerBound, r.upperBound, t0, t1, output)
            }
        }
    }
}

/// The GEMM phase of a conv whose tiles make one block (`TransformedWeights.panels`), tiles
/// t0..<t0 + t of V into M and through the output transform into `output`. Workers split the row
/// panels of M_ξ (outC rows; K = inC). Each job transforms and multiplies its panel's matrices (or
/// a part of them) on its tiles (or a part), a slice of the panel's columns at a time, the slice
/// kept in L2 (`panelSlice`), and the last job of a panel's tiles output-transforms them.
private func oneBlockPanelPhase(weight w: UnsafePointer<Float>, _ conv: Conv3dGeometry, adjoint: Bool, plan p: WinogradPlan,
                                tiles t0: Int, _ t: Int, v: UnsafePointer<Float>, m: UnsafeMutablePointer<Float>,
                                inC: Int, outC: Int, output: UnsafeMutablePointer<Float>, _ buffers: WinogradBuffers,
                                workers: Int) {
    var geometry = p.geometry
    let (vPlane, mPlane) = (p.plane(inC), p.plane(outC))
    let rowsPerPanel = dsan_packed_gemm_panel_rows()
    let panels = (outC + rowsPerPanel - 1) / rowsPerPanel
    // A panel's 64 matrices go in `parts` jobs, and with fewer jobs than workers its tiles in
    // `tileParts` (`WinogradConv.panelCut`).
    let cut = WinogradConv.panelCut(panels: panels, tiles: t, workers: workers)
    let (parts, tileParts) = (cut.matrixParts, cut.tileParts), matrices = 64 / parts
    let partMatrices = WinogradConv.partMatrices[parts]!   // part q's ξ at q·matrices
    let slice = WinogradConv.panelSlice(columns: inC, panelRows: rowsPerPanel, matrices: matrices)
    // A slice's matrices lie `dsan_winograd_panel_plane_floats` apart (a vector more than their
    // floats: see VectorKernels.h). Between slices the GEMMs' partial sums wait in the worker's
    // buffer too, in the kernel's own order (matrices·R·t floats).
    let sliceFloats = matrices * dsan_winograd_panel_plane_floats(slice)
    let staged = Int32(ConvTuning.value(.panelStaging))   // 0 but in `dsan bench tuning`
    let partialFloats = slice < inC ? matrices * rowsPerPanel * t : 0
    let own = buffers.weights(workers * (sliceFloats + partialFloats))
    // Arrivals per (panel, tile part): the last of its matrix parts output-transforms its rows and
    // tiles, while they are in this core's cache or the other's. (None with one part.)
    var arrived = [Int](repeating: 0, count: parts > 1 ? panels * tileParts : 0)
    partMatrices.withUnsafeBufferPointer { xis in
        arrived.withUnsafeMutableBufferPointer { arrived in
            // Job order: the parts of one panel follow each other, so that the workers read a
            // panel's weights at about the same time.
            Parallel.forEachWorkerDynamically(panels * tileParts * parts, maxWorkers: workers) { worker, r in
                let a = own + worker * (sliceFloats + partialFloats), partial = a + sliceFloats
                for job in r {
                    let part = job % parts, unit = job / parts
                    let panel = unit / tileParts, tilePart = unit % tileParts
                    let j0 = t * tilePart / tileParts, n = t * (tilePart + 1) / tileParts - j0   // its columns of V and M
                    let c0 = panel * rowsPerPanel, rows = min(rowsPerPanel, outC - c0)
                    for k0 in stride(from: 0, to: inC, by: slice) {
                        let k = min(slice, inC - k0), last = k0 + k == inC
                        let plane = dsan_winograd_panel_plane_floats(k)
                        dsan_winograd_weight_transform_panel(w, conv.outChannels, conv.inChannels, adjoint ? 1 : 0,
                                                             panel, k0, k0 + k, part, parts, staged, a)
                        for j in 0..<matrices {
                            let xi = xis[part * matrices + j], sums = partial + j * rowsPerPanel * n
                            dsan_packed_gemm_partial(a + j * plane, rows, k, v + xi * vPlane + k0 * p.ld + j0,
                                                     p.ld, n, k0 == 0 ? nil : sums, last ? nil : sums,
                                                     m + xi * mPlane + c0 * p.ld + j0, p.ld)
                        }
                    }
                    // M's column j holds tile t0 + j: the part's tiles start at column j0.
                    if parts == 1 || Parallel.arrive(at: arrived.baseAddress! + unit) == parts - 1 {
                        dsan_winograd_output_transform(&geometry, m + j0, outC, c0, c0 + rows, t0 + j0, t0 + j0 + n, output)
                    }
                }
            }
        }
    }
}

/// Winograd forward of a 3³ stride-1 padding-1 conv (see the top of this file). Overwrites `y`.
///
/// `blockBytes` bounds V and M of a block of tiles (tests set it small to force many blocks).
func winogradForward(y: Tensor, x: Tensor, weight: Tensor, geometry g: Conv3dGeometry, buffers: WinogradBuffers,
                     blockBytes: Int = WinogradConv.blockBytes) {
    precondition(WinogradConv.applies(to: g), "winogradForward: \(g) is not 3³ stride 1 padding 1")
    winogradConvolve(x.shape5, input: x.data, inC: g.inChannels, output: y.data, outC: g.outChannels,
                     weight: weight, geometry: g, adjoint: false, buffers, blockBytes: blockBytes)
}

/// Winograd backward: WRITES dX, ACCUMULATES dWeight (either may be nil), like `conv3dBackward`;
/// a lazily zero dWeight (`Tensor.zeroLazily`) is written instead, never read.
func winogradBackward(dX: Tensor?, dWeight: Tensor?, dY: Tensor, x: Tensor, weight: Tensor,
                      geometry g: Conv3dGeometry, buffers: WinogradBuffers, blockBytes: Int = WinogradConv.blockBytes) {
    precondition(WinogradConv.applies(to: g), "winogradBackward: \(g) is not 3³ stride 1 padding 1")
    let (cout, cin) = (g.outChannels, g.inChannels)
    if let dX {   // the forward on dY with the flipped, transposed kernel
        winogradConvolve(x.shape5, input: dY.data, inC: cout, output: dX.data, outC: cin,
                         weight: weight, geometry: g, adjoint: true, buffers, blockBytes: blockBytes)
    }
    guard let dWeight else { return }
    let overwrite = dWeight.takeLazyZero()
    let p = WinogradPlan(x.shape5, inC: cin, outC: cout, blockBytes: blockBytes)
    if p.blocks == 0 {   // no tiles (an empty batch): nothing to add
        if overwrite { dWeight.zero() }
        return
    }
    let workers = max(1, Parallel.threads)
    let fused = WinogradConv.usesFusedWeightGradient(input: x.shape5)
    let per = max(scratchFloats(p), fused ? (dsan_winograd_weight_gradient_scratch_floats() + 15) / 16 * 16 : 0)
    let jobs = fused ? dsan_winograd_weight_gradient_jobs(cout, cin) : 0
    let xiParts = fused ? WinogradConv.weightGradientParts(jobs: jobs, workers: workers) : 1
    // With the jobs' products in parts, their sums wait in scratch for the transforms.
    let sumsFloats = xiParts > 1 ? jobs * dsan_winograd_weight_gradient_sums_floats() : 0
    let scratch = buffers.scratch(workers * per + sumsFloats)
    // Fused: the block's dM packed in panels of output channels; else all of dU.
    let du = buffers.weights(fused ? dsan_winograd_weight_gradient_packed_floats(cout, p.blockTiles) : 64 * cout * cin)
    let (vPlane, dmPlane) = (p.plane(cin), p.plane(cout))
    let v = buffers.input(64 * vPlane), dm = buffers.output(64 * dmPlane)
    let (xp, dyp) = (UnsafePointer(x.data), UnsafePointer(dY.data))
    var geometry = p.geometry
    BLAS.withThreads(workers > 1 ? 1 : BLAS.threads) {
        for block in 0..<p.blocks {
            let t0 = block * p.blockTiles, t1 = min(p.tiles, t0 + p.blockTiles), t = t1 - t0
            // Each item transforms a share of x's channels AND a share of dY's (about four items per
            // worker, taken dynamically): the input transform costs about twice the gradient
            // transform per channel, so one split of the channels of x followed by those of dY gave
            // worker 0 all of x and twice the work.
            let parts = min(4 * workers, max(cin, cout))
            Parallel.forEachWorkerDynamically(parts, maxWorkers: workers) { worker, r in
                let sc = scratch + worker * per
                for part in r {
                    let (x0, x1) = (cin * part / parts, cin * (part + 1) / parts)
                    let (d0, d1) = (cout * part / parts, cout * (part + 1) / parts)
                    if x0 < x1 { dsan_winograd_input_transform(&geometry, xp, cin, x0, x1, t0, t1, v, sc) }
                    if d0 < d1 { dsan_winograd_gradient_transform(&geometry, dyp, cout, d0, d1, t0, t1, dm, sc) }
                }
            }
            if fused {   // dWeight += Gᵀ⊗³ Σ_t dM_ξ · V_ξᵀ, dU kept in each job's cache (winograd_dw_body.h)
                // Items are (panel, ξ): layer1 has 2 panels at AVX-512, which would leave most of a
                // many-core node's workers idle.
                let panels = dsan_winograd_weight_gradient_panels(cout), items = panels * 64
                Parallel.forEachWorkerDynamically(items, maxWorkers: workers, grain: transformGrain(items, workers)) { _, r in
                    for item in r {
                        let panel = item / 64, xi = item % 64
                        dsan_winograd_weight_gradient_pack(dm, cout, t, p.ld, panel, panel + 1, xi, xi + 1, du)
                    }
                }
                // The first block writes every entry of a lazily zero dWeight; later blocks add.
                // With fewer jobs than the workers need, each job's products go in parts of the 64 ξ
                // into its sums in scratch, and the last part to arrive transforms them (the same
                // bits, winograd_dw_body.h): one region either way.
                let write: Int32 = overwrite && block == 0 ? 1 : 0
                let sums = scratch + workers * per
                var arrived = [Int](repeating: 0, count: xiParts > 1 ? jobs : 0)
                arrived.withUnsafeMutableBufferPointer { arrived in
                    Parallel.forEachWorkerDynamically(jobs * xiParts, maxWorkers: workers) { worker, r in
                        if xiParts == 1 {
                            dsan_winograd_weight_gradient_fused(du, v, cout, cin, t, p.ld, r.lowerBound, r.upperBound,
                                                                dWeight.data, write, scratch + worker * per)
                            return
                        }
                        for item in r {
                            dsan_winograd_weight_gradient_products(du, v, cout, cin, t, p.ld, item, item + 1, xiParts, sums)
                            let job = item / xiParts
                            if Parallel.arrive(at: arrived.baseAddress! + job) == xiParts - 1 {
                                dsan_winograd_weight_gradient_finish(sums, cout, cin, job, job + 1, dWeight.data, write,
                                                                     scratch + worker * per)
                            }
                        }
                    }
                }
                continue
            }
            Parallel.forEachWorkerDynamically(64, maxWorkers: workers) { _, r in   // dU_ξ[Cout, Cin] += dM_ξ[Cout, T] · V_ξ[Cin, T]ᵀ
                for xi in r {
                    BLAS.sgemm(.none, .transpose, m: cout, n: cin, k: t, a: dm + xi * dmPlane, lda: p.ld,
                               b: v + xi * vPlane, ldb: p.ld, beta: block == 0 ? 0 : 1, c: du + xi * cout * cin, ldc: cin)
                }
            }
        }
        if fused { return }
        Parallel.forEachWorker(cout, maxWorkers: workers) { _, r in
            dsan_winograd_weight_gradient_transform(du, cout, cin, r.lowerBound, r.upperBound, dWeight.data,
                                                    overwrite ? 1 : 0)
        }
    }
}

/// The first block of tiles of a Winograd conv, as its C transforms see it (`dsan bench winograd`
/// times them): the extents, the block's tiles, and whether F(4,3) computes it (216 ξ) or F(2,3)
/// (64). Nil for a conv that runs direct.
public struct WinogradBlock {
    public let geometry: dsan_winograd_geometry
    public let tiles: Int
    public let f4: Bool
    /// Blocks of tiles in the conv (1: an F(2,3) conv whose GEMM phase transforms the weights
    /// panel by panel, `TransformedWeights.panels`).
    public let blocks: Int
    /// ξ matrices per block of V or M.
    public var transforms: Int { f4 ? 216 : 64 }

    public init?(_ g: Conv3dGeometry, input: Shape5) {
        if WinogradF4Conv.isUsed(for: g, input: input) {
            let p = WinogradF4Plan(input, inC: g.inChannels, outC: g.outChannels, blockBytes: WinogradF4Conv.blockBytes)
            (geometry, tiles, f4, blocks) = (p.geometry, min(p.blockTiles, p.tiles), true, p.blocks)
        } else if WinogradConv.isUsed(for: g, input: input) {
            let p = WinogradPlan(input, inC: g.inChannels, outC: g.outChannels, blockBytes: WinogradConv.blockBytes)
            (geometry, tiles, f4, blocks) = (p.geometry, min(p.blockTiles, p.tiles), false, p.blocks)
        } else {
            return nil
        }
    }
}
