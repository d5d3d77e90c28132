import BLAS
import VectorKernels
#if canImport(Glibc)
import Glibc
#endif

// Winograd F(4×4×4, 3×3×3) for the 3×3×3 stride-1 padding-1 convs where tiles are many and
// channels few (Lavin & Gray 2016, points 0, ±1, ±2, ∞; the structure of Winograd.swift with
// bigger tiles). The output is cut into tiles of 4×4×4 voxels; tile (td, th, tw) of a channel reads
// the 6×6×6 input patch d[a, b, c'] = x[4td − 1 + a, 4th − 1 + b, 4tw − 1 + c'] (zero outside).
// With the 1-D matrices
//
//     Bᵀ = | 4  0 −5  0  1  0 |     G = |  1/4    0     0   |     Aᵀ = | 1  1  1  1  1  0 |
//          | 0 −4 −4  1  1  0 |         | −1/6 −1/6  −1/6  |          | 0  1 −1  2 −2  0 |
//          | 0  4 −4 −1  1  0 |         | −1/6  1/6  −1/6  |          | 0  1  1  4  4  0 |
//          | 0 −2 −1  2  1  0 |         |  1/24 1/12  1/6  |          | 0  1 −1  8 −8  1 |
//          | 0  2 −1 −2  1  0 |         |  1/24 −1/12 1/6  |
//          | 0  4  0 −5  0  1 |         |  0     0     1   |
//
// (checked against a direct 1-D correlation by WinogradF4Tests.oneDimensionalIdentities) applied
// along each axis, one tile of one output channel is Y = Aᵀ⊗³ [Σ_ci (G⊗³ g[co, ci]) ⊙ (Bᵀ⊗³ d[ci])],
// and the sum over input channels at each of the 216 positions ξ = (α, β, γ) ∈ 6³ (flat index
// (α·6 + β)·6 + γ, α along d) is a GEMM over a block of T tiles:
//
//     M_ξ[Cout, T] = U_ξ[Cout, Cin] · V_ξ[Cin, T]        U = G⊗³ g,  V = Bᵀ⊗³ d,  Y = Aᵀ⊗³ M
//
// 216 products per 64 outputs and channel pair: 8× fewer multiply-adds than the direct conv (F(2,3):
// 3.375×), and 2.4× less V and M per output. The price: U is 216·Cin·Cout floats (3.4× F(2,3)'s)
// and the float32 error is larger (Docs/performance.md, "Winograd F(4×4×4, 3×3×3)").
//
// Backward:
// - dX is the stride-1 padding-1 conv of dY with the flipped, in/out-transposed kernel
//   g'[ci, co] = flip(g[co, ci]). F(2,3)'s trick (G·flip(g) is a row permutation of G·g) does not
//   carry over: reversing a kernel maps the interpolation point p to 1/p, and ±2 go to ±½, which
//   are not points of this F(4,3). So the backward transforms the flipped weights (the weight
//   transform with `flip`), U'_ξ[Cin, Cout] = (G⊗³ flip(g))ᵀ, and runs the forward's kernel on dY.
// - dW stays on F(2,3) or direct (`conv3dBackward`), as Winograd.swift would choose for the conv.
//
// Work partition, determinism, partial edge tiles and the transforms' ISA levels are those of
// Winograd.swift: blocks of tiles whose V and M fit `WinogradF4Conv.blockBytes`, three phases per
// block (input transform split over input channels, the 216 GEMMs split over ξ, output transform
// split over output channels), every number computed by one worker in a fixed order, so the result
// is the same bits on any thread count and any of the C levels (winograd4_body.h).

/// Where F(4×4×4, 3×3×3) replaces F(2×2×2, 3×3×3).
public enum WinogradF4Conv {
    /// Bytes of transformed input and output (V and M) per block of tiles (F(2,3):
    /// `WinogradConv.blockBytes`, 8 MiB). 16 MiB lets 128→128 convs have 64-tile blocks; layer1 at
    /// 64×128×128 measured the same with 8 and 16 MiB (Docs/performance.md).
    nonisolated(unsafe) public static var blockBytes = 16 << 20
    /// Fewest tiles in a block (when the channels are so wide that `blockBytes` holds fewer).
    public static let minimumBlockTiles = 16

    /// F(4,3) is used when both the input and a block of `blockBytes` hold at least this many 4³
    /// tiles. The block's tiles are the n of its 216 GEMMs [Cout×Cin]·[Cin×T]; below 64 OpenBLAS's
    /// per-call packing of U_ξ and the narrow panels ate the 2.4× fewer multiply-adds; with dsan's
    /// packed GEMM (`usesPackedGEMM`) F(4,3) still took 1.34–1.53× F(2,3)'s time on layer2 at
    /// 64×128×128, 32 tiles (`dsan bench tuning --setting winograd4-sample-tiles=32 --conv
    /// layer2.0.conv2`, forward, dX and backward on 1 and 2 threads). Measured
    /// (same-run ratios to the direct conv, Docs/performance.md, "Winograd F(4×4×4, 3×3×3)"):
    /// layer1 (64→64) at 64×128×128, 256 tiles: F(4,3) 3.0–3.9× against F(2,3)'s 1.4–2.0×;
    /// layer2 (128→128) at 138×256×256, 320 tiles in 64-tile blocks: 2.8–2.9× against 2.3×; but
    /// layer2 at 64×128×128 (32 tiles) 1.1–2.2× against 1.4–2.3×, and layer3 at 138×256×256
    /// (256→256, 32-tile blocks) 1.3–1.5× against 2.0–2.3×. With 16 MiB blocks the rule admits
    /// Cin + Cout ≤ 303, so U is at most 216·151²·4 B = 20 MB.
    public static let minimumTiles = 64
    /// The 4³ tiles N·⌈D/4⌉·⌈H/4⌉·⌈W/4⌉ of an input.
    static func tiles(_ s: Shape5) -> Int { s.n * ((s.d + 3) / 4) * ((s.h + 3) / 4) * ((s.w + 3) / 4) }

    /// 4³ tiles per block of `blockBytes` for `inC` input and `outC` output channels (at least
    /// `minimumBlockTiles`, before `WinogradF4Plan` evens the blocks out).
    static func blockTiles(inC: Int, outC: Int, blockBytes: Int = blockBytes) -> Int {
        max(minimumBlockTiles, blockBytes / (216 * (inC + outC) * MemoryLayout<Float>.stride)) / 8 * 8
    }

    /// True when the 216 GEMMs go through dsan's packed GEMM (packed_gemm_body.h, at the CPU's
    /// vector width whatever core OpenBLAS loaded), their matrices packed once per call after the
    /// weight transform: with dsan's GEMM for the Winograd convs (`WinogradGEMM.selected`, the
    /// default) and `packed-winograd4` at its default, 1. Otherwise OpenBLAS's single-threaded
    /// sgemm per ξ, which copies U_ξ into its own layout at every call and, where OpenBLAS runs
    /// an older core than the CPU has (the VM's forced Haswell on an AVX-512 CPU), at half the
    /// width. Read on the calling thread, like `WinogradGEMM.selected`.
    static var usesPackedGEMM: Bool {
        WinogradGEMM.selected == .packed && ConvTuning.value(.packedWinograd4) == 1
    }

    /// True when `conv3dForward` / `conv3dBackward` (dX) take the F(4,3) path for `g` on `input`:
    /// `ConvAlgorithm.selected` is `.winograd` (not `.winograd2`), the conv is 3³ stride 1 padding 1,
    /// one sample holds at least `minimumTiles` tiles (`winograd4-sample-tiles` in `dsan bench
    /// tuning` moves this one) and a block at least `minimumTiles`. A pure function of the
    /// geometry, the input shape and the settings; per sample, so that a rank's share of the batch
    /// never chooses a sample's algorithm.
    public static func isUsed(for g: Conv3dGeometry, input: Shape5) -> Bool {
        ConvAlgorithm.selected == .winograd && WinogradConv.applies(to: g) && input.n > 0
            && tiles(Shape5(n: 1, c: input.c, d: input.d, h: input.h, w: input.w)) >= ConvTuning.value(.winograd4SampleTiles)
            && blockTiles(inC: g.inChannels, outC: g.outChannels) >= minimumTiles
    }
}

/// Extents of one F(4,3) conv: the volume, the 4³ tile grid and the block.
struct WinogradF4Plan {
    let n, d, h, w: Int
    let tD, tH, tW: Int
    /// Tiles per block (T) and the row stride of V and M (`WinogradConv.rowStride`, as F(2,3)'s).
    let blockTiles, ld: Int

    init(_ s: Shape5, inC: Int, outC: Int, blockBytes: Int) {
        n = s.n; d = s.d; h = s.h; w = s.w
        tD = (d + 3) / 4; tH = (h + 3) / 4; tW = (w + 3) / 4
        let tiles = n * tD * tH * tW
        let t = max(1, min(WinogradF4Conv.blockTiles(inC: inC, outC: outC, blockBytes: blockBytes), tiles))
        let blocks = (tiles + t - 1) / t
        blockTiles = max(1, (tiles + blocks - 1) / max(1, blocks))
        ld = WinogradConv.rowStride(tiles: blockTiles)
    }

    var tiles: Int { n * tD * tH * tW }
    var blocks: Int { (tiles + blockTiles - 1) / blockTiles }
    var geometry: dsan_winograd_geometry { dsan_winograd_geometry(n: n, d: d, h: h, w: w, ld: ld) }
    /// Floats from one ξ's matrix of V or M to the next (`dsan_winograd_plane_floats`).
    func plane(_ channels: Int) -> Int { dsan_winograd_plane_floats(channels, ld) }
}

/// U[ξ][Cout][Cin] = G⊗³ g (or of the flipped kernel) for `weight` `[Cout, Cin, 3, 3, 3]`.
private func transformedWeightsF4(_ weight: Tensor, _ g: Conv3dGeometry, flip: Bool,
                                  _ buffers: WinogradBuffers) -> UnsafeMutablePointer<Float> {
    let (cout, cin) = (g.outChannels, g.inChannels)
    let u = buffers.weights(216 * cout * cin)
    // Output channels taken as the workers finish (each writes its own channels of U).
    let workers = max(1, Parallel.threads)
    Parallel.forEachWorkerDynamically(cout, maxWorkers: workers, grain: transformGrain(cout, workers)) { _, range in
        dsan_winograd4_weight_transform(weight.data, cout, cin, range.lowerBound, range.upperBound, flip ? 1 : 0, u)
    }
    return u
}

/// The 216 matrices A_ξ [outC × inC] of `winogradF4Convolve` packed for `dsan_packed_gemm`, in
/// the workspace's own buffer (U stays in the weight buffer): A_ξ = U_ξ, or U_ξᵀ when `transposed`
/// (U_ξ then `[inC, outC]`). Workers take ξ from a counter; packing moves floats, so the product's
/// bits are the packed GEMM's whatever the cut. Returns the buffer and the floats per matrix.
private func packedMatrices(_ u: UnsafePointer<Float>, outC: Int, inC: Int, transposed: Bool,
                            _ buffers: WinogradBuffers) -> (UnsafeMutablePointer<Float>, Int) {
    VectorLevel.configure()   // DSAN_SIMD sets the packed GEMM's level before its first use
    let plane = Int(dsan_packed_gemm_floats(outC, inC))
    let a = buffers.packed(216 * plane)
    let workers = max(1, Parallel.threads)
    Parallel.forEachWorkerDynamically(216, maxWorkers: workers, grain: transformGrain(216, workers)) { _, r in
        for xi in r {
            let src = u + xi * outC * inC
            if transposed {
                dsan_packed_gemm_pack_transposed(src, outC, outC, inC, a + xi * plane)
            } else {
                dsan_packed_gemm_pack(src, inC, outC, inC, a + xi * plane)
            }
        }
    }
    return (a, plane)
}

/// out `[N, outC, D, H, W]` = the 3³ stride-1 padding-1 conv of `input` `[N, inC, D, H, W]` by
/// F(4,3), with U_ξ[outC, inC] at ξ·outC·inC (`transposed` false), or U_ξ stored as [inC, outC]
/// and read transposed (`transposed` true: the input gradient's flipped weights).
private func winogradF4Convolve(_ s: Shape5, input: UnsafePointer<Float>, inC: Int, output: UnsafeMutablePointer<Float>,
                                outC: Int, u: UnsafePointer<Float>, transposed: Bool, _ buffers: WinogradBuffers,
                                blockBytes: Int) {
    let p = WinogradF4Plan(s, inC: inC, outC: outC, blockBytes: blockBytes)
    let workers = max(1, Parallel.threads)
    var geometry = p.geometry
    let per = (dsan_winograd4_scratch_floats(&geometry) + 15) / 16 * 16
    let scratch = buffers.scratch(workers * per)
    let v = buffers.input(216 * p.plane(inC)), m = buffers.output(216 * p.plane(outC))
    let packed = WinogradF4Conv.usesPackedGEMM ? packedMatrices(u, outC: outC, inC: inC, transposed: transposed, buffers) : nil
    BLAS.withThreads(workers > 1 ? 1 : BLAS.threads) {
        for block in 0..<p.blocks {
            let t0 = block * p.blockTiles, t1 = min(p.tiles, t0 + p.blockTiles), t = t1 - t0
            Parallel.forEachWorkerDynamically(inC, maxWorkers: workers, grain: transformGrain(inC, workers)) { worker, r in
                dsan_winograd4_input_transform(&geometry, input, inC, r.lowerBound, r.upperBound, t0, t1, v,
                                               scratch + worker * per)
            }
            if let (a, plane) = packed {
                packedProducts(216, a: a, plane: plane, v: v, m: m, outC: outC, inC: inC, tiles: t, ld: p.ld, workers: workers)
            } else {
                transformedProducts(216, u: u, v: v, m: m, outC: outC, inC: inC, tiles: t, ld: p.ld, workers: workers,
                                    transposed: transposed)
            }
            Parallel.forEachWorkerDynamically(outC, maxWorkers: workers, grain: transformGrain(outC, workers)) { _, r in
                dsan_winograd4_output_transform(&geometry, m, outC, r.lowerBound, r.upperBound, t0, t1, output)
            }
        }
    }
}

/// F(4,3) forward of a 3³ stride-1 padding-1 conv. Overwrites `y`. `blockBytes` bounds a block's
/// V and M (tests set it small to force many blocks).
func winogradF4Forward(y: Tensor, x: Tensor, weight: Tensor, geometry g: Conv3dGeometry, buffers: WinogradBuffers,
                       blockBytes: Int = WinogradF4Conv.blockBytes) {
    precondition(WinogradConv.applies(to: g), "winogradF4Forward: \(g) is not 3³ stride 1 padding 1")
    let u = transformedWeightsF4(weight, g, flip: false, buffers)
    winogradF4Convolve(x.shape5, input: x.data, inC: g.inChannels, output: y.data, outC: g.outChannels,
                       u: u, transposed: false, buffers, blockBytes: blockBytes)
}

/// F(4,3) input gradient: WRITES dX `[N, Cin, D, H, W]`, the conv of dY with the flipped,
/// transposed kernel.
func winogradF4InputGradient(dX: Tensor, dY: Tensor, weight: Tensor, geometry g: Conv3dGeometry,
                             buffers: WinogradBuffers, blockBytes: Int = WinogradF4Conv.blockBytes) {
    precondition(WinogradConv.applies(to: g), "winogradF4InputGradient: \(g) is not 3³ stride 1 padding 1")
    let u = transformedWeightsF4(weight, g, flip: true, buffers)   // [ξ][Cout][Cin], read as [Cin, Cout]ᵀ
    winogradF4Convolve(dX.shape5, input: dY.data, inC: g.outChannels, output: dX.data, outC: g.inChannels,
                       u: u, transposed: true, buffers, blockBytes: blockBytes)
}
