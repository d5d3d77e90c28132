import BLAS
import Dispatch
#if canImport(Glibc)
import Glibc
#endif

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
//   a GEMM with K = T accumulated (beta = 1) over the tile blocks in a fixed order.
//
// Work partition: the tiles are cut into blocks whose V and M fit `WinogradConv.blockBytes`; each
// block runs in three phases with dsan's workers: (1) input transform, workers split the input
// channels; (2) the 64 GEMMs, workers split ξ, each GEMM single-threaded; (3) output transform,
// workers split the output channels. Block boundaries do not depend on the worker count and every
// number is computed by one worker in a fixed order, so the result is the same bit for bit on any
// number of threads. Partial edge tiles (odd extents) read zeros and drop the outputs that fall
// outside; blocks run over the flat tile index (n, td, th, tw), so they span samples.
//
// Transforms are 8-wide SIMD over 8 consecutive tiles along w: the 4 input columns of 8 tiles are
// the even/odd lanes of two 16-float loads from a zero-padded copy of the input row.

/// Which algorithm computes the 3×3×3 stride-1 padding-1 convs. Every other conv is direct
/// (vol2col + GEMM) whatever the setting.
public enum ConvAlgorithm: String, Sendable, CaseIterable, CustomStringConvertible {
    /// vol2col + GEMM (Convolution.swift).
    case direct
    /// Winograd F(2×2×2, 3×3×3) where `WinogradConv.isUsed(for:input:)` says it pays
    /// (Winograd.swift); the other convs stay direct.
    case winograd

    /// The algorithm `conv3dForward` / `conv3dBackward` use. Defaults to the environment variable
    /// `DSAN_CONV` (`direct` or `winograd`, read once), and to `.winograd` when it is unset.
    nonisolated(unsafe) public static var selected: ConvAlgorithm = fromEnvironment

    /// `DSAN_CONV` parsed; an unknown value is a configuration error that stops the program with
    /// a message naming the variable and the accepted values.
    static var fromEnvironment: ConvAlgorithm {
        guard let raw = getenv("DSAN_CONV") else { return .winograd }
        let value = String(cString: raw)
        if value.isEmpty { return .winograd }
        guard let algorithm = ConvAlgorithm(rawValue: value.lowercased()) else {
            preconditionFailure("DSAN_CONV=\(value): expected one of \(allCases.map(\.rawValue).joined(separator: ", "))")
        }
        return algorithm
    }

    public var description: String { rawValue }
}

/// Tuning and dispatch of the Winograd convs.
public enum WinogradConv {
    /// Bytes of transformed input and output (V and M) per block of tiles. The 64 GEMMs of a block
    /// each read one U_ξ (Cout·Cin floats, from memory for the wide layers), so the block must hold
    /// enough tiles to amortise it, while V_ξ and M_ξ of one GEMM stay in L2.
    nonisolated(unsafe) public static var blockBytes = 8 << 20
    /// Fewest tiles in a block (when the channels are so wide that `blockBytes` holds fewer).
    public static let minimumBlockTiles = 32

    /// True for the convs Winograd F(2,3) computes: 3×3×3 kernel, stride 1, padding 1.
    public static func applies(to g: Conv3dGeometry) -> Bool {
        g.kernel == Size3(3) && g.stride == Size3(1) && g.padding == Size3(1)
    }

    /// Below this many tiles (N·⌈D/2⌉·⌈H/2⌉·⌈W/2⌉) the weight gradient stays direct: its GEMMs
    /// have K = tiles, and at 32 tiles (layers 3–4 at a 64×128×128 input, batch 1) Winograd's dW
    /// measured 0.85–1.0× the direct one while forward and dX still gained 1.2–1.4×
    /// (Docs/performance.md, "Winograd").
    public static let minimumWeightGradientTiles = 64

    /// Each pass writes and reads the transformed weights, 64·Cin·Cout floats, once; Winograd pays
    /// when that is at most 1 MiB per tile, i.e. at least Cin·Cout / 4096 tiles. At a 64×128×128
    /// input (batch 1) this keeps layer4's 512→512 convs (32 tiles, 64 MiB of U) direct: there
    /// Winograd measured 0.65–1.28× (median 1.19×) forward and 0.89–1.22× (0.94×) dX.
    public static let weightFloatsPerTile = 4096

    /// The tiles N·⌈D/2⌉·⌈H/2⌉·⌈W/2⌉ of an input.
    static func tiles(_ s: Shape5) -> Int { s.n * ((s.d + 1) / 2) * ((s.h + 1) / 2) * ((s.w + 1) / 2) }

    /// True when `conv3dForward` / `conv3dBackward` take the Winograd path for `g` on `input`
    /// (for the weight gradient, see also `usesWinogradWeightGradient`).
    public static func isUsed(for g: Conv3dGeometry, input: Shape5) -> Bool {
        ConvAlgorithm.selected == .winograd && applies(to: g)
            && tiles(input) * weightFloatsPerTile >= g.inChannels * g.outChannels
    }

    /// True when `conv3dBackward` computes dWeight by Winograd for `g` on `input`.
    public static func usesWinogradWeightGradient(for g: Conv3dGeometry, input: Shape5) -> Bool {
        isUsed(for: g, input: input) && tiles(input) >= minimumWeightGradientTiles
    }
}

// MARK: Plan and buffers

/// Extents of one Winograd conv: the spatial volume (input = output), the tile grid and the block.
struct WinogradPlan {
    let n, d, h, w: Int
    let tD, tH, tW: Int
    /// Tiles per block (T) and the row stride of V and M (T rounded up, plus 8 lanes of slack for
    /// the 8-wide stores of a block's last chunk).
    let blockTiles, ld: Int

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
        ld = (blockTiles + 7) / 8 * 8 + 8
    }

    var tilesPerSample: Int { tD * tH * tW }
    var tiles: Int { n * tilesPerSample }
    var blocks: Int { (tiles + blockTiles - 1) / blockTiles }
    /// Length of a zero-padded row copy: index 0 is column −1; 8-wide chunk loads reach 2·tW + 16.
    var rowLength: Int { w + 24 }

    /// Calls `body(n, td, th, tw, count, column)` for each run of tiles of [t0, t1) along one row of
    /// the tile grid; `column` is the run's first column in the block's V/M rows.
    @inline(__always)
    func forEachRun(_ t0: Int, _ t1: Int, _ body: (Int, Int, Int, Int, Int, Int) -> Void) {
        var t = t0
        while t < t1 {
            let ni = t / tilesPerSample, r = t - ni * tilesPerSample
            let td = r / (tH * tW), th = (r / tW) % tH, tw = r % tW
            let count = min(tW - tw, t1 - t)
            body(ni, td, th, tw, count, t - t0)
            t += count
        }
    }
}

/// Scratch for the Winograd convs, grown on demand and kept by the `ConvWorkspace`:
/// the transformed weights (or their gradient), the block's V and M, and per-worker row copies.
final class WinogradBuffers {
    private(set) var weights = Buffer()
    private(set) var input = Buffer()
    private(set) var output = Buffer()
    private(set) var scratch = Buffer()

    struct Buffer {
        var pointer: UnsafeMutablePointer<Float>? = nil
        var count = 0
        mutating func reserve(_ n: Int) -> UnsafeMutablePointer<Float> {
            if n > count || pointer == nil {
                if let pointer { UnsafeMutableRawPointer(pointer).deallocate() }
                let raw = UnsafeMutableRawPointer.allocate(byteCount: max(n, 1) * 4, alignment: 64)
                pointer = raw.bindMemory(to: Float.self, capacity: max(n, 1))
                pointer!.initialize(repeating: 0, count: max(n, 1))
                count = max(n, 1)
            }
            return pointer!
        }
        func free() { if let pointer { UnsafeMutableRawPointer(pointer).deallocate() } }
    }

    deinit { weights.free(); input.free(); output.free(); scratch.free() }

    func weights(_ n: Int) -> UnsafeMutablePointer<Float> { weights.reserve(n) }
    func input(_ n: Int) -> UnsafeMutablePointer<Float> { input.reserve(n) }
    func output(_ n: Int) -> UnsafeMutablePointer<Float> { output.reserve(n) }
    func scratch(_ n: Int) -> UnsafeMutablePointer<Float> { scratch.reserve(n) }
}

/// Offset in floats of the SIMD8 temporaries in a worker's scratch: after 16 padded input rows and
/// a zero row, rounded up to 64 bytes (SIMD8<Float> wants 32-byte alignment).
private func temporariesOffset(_ p: WinogradPlan) -> Int { (17 * p.rowLength + 15) / 16 * 16 }
/// Floats of per-worker scratch: the rows, 3 × 64 SIMD8 temporaries, then 16 row pointers; a
/// multiple of 64 bytes.
private func scratchFloats(_ p: WinogradPlan) -> Int { temporariesOffset(p) + 3 * 64 * 8 + 32 }
/// The 16 row pointers of a worker's scratch.
@inline(__always)
private func rowPointers(_ scratch: UnsafeMutablePointer<Float>, _ p: WinogradPlan) -> UnsafeMutablePointer<UnsafePointer<Float>> {
    UnsafeMutableRawPointer(scratch + temporariesOffset(p) + 3 * 64 * 8).bindMemory(to: UnsafePointer<Float>.self, capacity: 16)
}
/// The SIMD8 temporaries of a worker's scratch.
@inline(__always)
private func temporaries(_ scratch: UnsafeMutablePointer<Float>, _ offset: Int) -> UnsafeMutablePointer<SIMD8<Float>> {
    UnsafeMutableRawPointer(scratch + offset).bindMemory(to: SIMD8<Float>.self, capacity: 3 * 64)
}

// MARK: SIMD helpers

typealias V8 = SIMD8<Float>

@inline(__always) private func load8(_ p: UnsafePointer<Float>) -> V8 {
    UnsafeRawPointer(p).loadUnaligned(as: V8.self)
}
@inline(__always) private func load16(_ p: UnsafePointer<Float>) -> SIMD16<Float> {
    UnsafeRawPointer(p).loadUnaligned(as: SIMD16<Float>.self)
}
@inline(__always) private func store8(_ v: V8, _ p: UnsafeMutablePointer<Float>) {
    UnsafeMutableRawPointer(p).storeBytes(of: v, as: V8.self)
}

/// The 1-D matrices of F(2, 3) (see the top of the file), each applied to 8 tiles or channels at once.
enum F23 {
    /// Bᵀ·(v0, v1, v2, v3).
    @inline(__always) static func bt(_ v0: V8, _ v1: V8, _ v2: V8, _ v3: V8) -> (V8, V8, V8, V8) {
        (v0 - v2, v1 + v2, v2 - v1, v1 - v3)
    }
    /// Aᵀ·(m0, m1, m2, m3).
    @inline(__always) static func at(_ m0: V8, _ m1: V8, _ m2: V8, _ m3: V8) -> (V8, V8) {
        (m0 + m1 + m2, m1 - m2 - m3)
    }
    /// A·(y0, y1), the adjoint of Aᵀ.
    @inline(__always) static func a(_ y0: V8, _ y1: V8) -> (V8, V8, V8, V8) {
        (y0, y0 + y1, y0 - y1, -y1)
    }
    /// G·(g0, g1, g2).
    @inline(__always) static func g(_ g0: V8, _ g1: V8, _ g2: V8) -> (V8, V8, V8, V8) {
        let s = 0.5 * (g0 + g2)
        return (g0, s + 0.5 * g1, s - 0.5 * g1, g2)
    }
    /// Gᵀ·(u0, u1, u2, u3), the adjoint of G.
    @inline(__always) static func gT(_ u0: V8, _ u1: V8, _ u2: V8, _ u3: V8) -> (V8, V8, V8) {
        let s = 0.5 * (u1 + u2)
        return (u0 + s, 0.5 * (u1 - u2), u3 + s)
    }
}

// MARK: Transforms

/// V[ξ][c][column] = (Bᵀ⊗³ d)_ξ for channels c0..<c1 of `x` `[N, C, D, H, W]` and the tiles
/// t0..<t1 (block columns 0..<t1 − t0, row stride `p.ld`, channel stride `channels`).
private func inputTransform(_ p: WinogradPlan, _ x: UnsafePointer<Float>, channels: Int, _ c0: Int, _ c1: Int,
                            _ t0: Int, _ t1: Int, _ v: UnsafeMutablePointer<Float>, _ scratch: UnsafeMutablePointer<Float>) {
    let rl = p.rowLength, (d, h, w) = (p.d, p.h, p.w)
    let rowBase = scratch, zeroRow = scratch + 16 * rl
    let s = temporaries(scratch, temporariesOffset(p))
    // Only columns 1...w of a row copy are ever written, so the padding stays zero.
    scratch.update(repeating: 0, count: 17 * rl)
    let r = rowPointers(scratch, p)
    for c in c0..<c1 {
        p.forEachRun(t0, t1) { ni, td, th, tw0, count, column in
            let plane = x + (ni * channels + c) * d * h * w
            for ab in 0..<16 {
                let id = 2 * td - 1 + ab / 4, ih = 2 * th - 1 + ab % 4
                if id < 0 || id >= d || ih < 0 || ih >= h {
                    r[ab] = UnsafePointer(zeroRow)
                } else {
                    let dst = rowBase + ab * rl
                    (dst + 1).update(from: plane + (id * h + ih) * w, count: w)
                    r[ab] = UnsafePointer(dst)
                }
            }
            var k = 0
            while k < count {
                let tw = tw0 + k
                // Along w: the 4 columns of 8 tiles are the even/odd lanes of two 16-float loads.
                for ab in 0..<16 {
                    let lo = load16(r[ab] + 2 * tw), hi = load16(r[ab] + 2 * tw + 2)
                    let q = F23.bt(lo.evenHalf, lo.oddHalf, hi.evenHalf, hi.oddHalf)
                    s[ab * 4] = q.0; s[ab * 4 + 1] = q.1; s[ab * 4 + 2] = q.2; s[ab * 4 + 3] = q.3
                }
                // Along h (index b), in place.
                for aa in 0..<4 {
                    for cc in 0..<4 {
                        let i = aa * 16 + cc
                        let q = F23.bt(s[i], s[i + 4], s[i + 8], s[i + 12])
                        s[i] = q.0; s[i + 4] = q.1; s[i + 8] = q.2; s[i + 12] = q.3
                    }
                }
                // Along d (index a), stored to V.
                let out = v + c * p.ld + column + k
                let xiStride = channels * p.ld
                for bc in 0..<16 {
                    let q = F23.bt(s[bc], s[bc + 16], s[bc + 32], s[bc + 48])
                    store8(q.0, out + bc * xiStride)
                    store8(q.1, out + (16 + bc) * xiStride)
                    store8(q.2, out + (32 + bc) * xiStride)
                    store8(q.3, out + (48 + bc) * xiStride)
                }
                k += 8
            }
        }
    }
}

/// y `[N, C, D, H, W]` ← (Aᵀ⊗³ M) for channels c0..<c1 and the tiles t0..<t1 of M[ξ][c][column];
/// outputs of partial edge tiles that fall outside the volume are dropped.
private func outputTransform(_ p: WinogradPlan, _ m: UnsafePointer<Float>, channels: Int, _ c0: Int, _ c1: Int,
                             _ t0: Int, _ t1: Int, _ y: UnsafeMutablePointer<Float>, _ scratch: UnsafeMutablePointer<Float>) {
    let (d, h, w) = (p.d, p.h, p.w)
    let s = temporaries(scratch, temporariesOffset(p))
    let xiStride = channels * p.ld
    for c in c0..<c1 {
        p.forEachRun(t0, t1) { ni, td, th, tw0, count, column in
            var k = 0
            while k < count {
                let src = m + c * p.ld + column + k
                // Along d (index a): 64 → 32, s[(ia·4 + b)·4 + c].
                for bc in 0..<16 {
                    let q = F23.at(load8(src + bc * xiStride), load8(src + (16 + bc) * xiStride),
                               load8(src + (32 + bc) * xiStride), load8(src + (48 + bc) * xiStride))
                    s[bc] = q.0; s[16 + bc] = q.1
                }
                // Along h: 32 → 16, s[(ia·2 + ib)·4 + c] (written below what is still to be read).
                for ia in 0..<2 {
                    for cc in 0..<4 {
                        let i = ia * 16 + cc
                        let q = F23.at(s[i], s[i + 4], s[i + 8], s[i + 12])
                        s[32 + (ia * 2) * 4 + cc] = q.0; s[32 + (ia * 2 + 1) * 4 + cc] = q.1
                    }
                }
                // Along w: 16 → 8, interleaved into 16 consecutive outputs per (od, oh) row.
                let tw = tw0 + k
                let valid = min(16, 2 * (count - k), w - 2 * tw)
                for iab in 0..<4 {
                    let od = 2 * td + iab / 2, oh = 2 * th + iab % 2
                    if od >= d || oh >= h { continue }
                    let i = 32 + iab * 4
                    let q = F23.at(s[i], s[i + 1], s[i + 2], s[i + 3])
                    var row = SIMD16<Float>()
                    row.evenHalf = q.0
                    row.oddHalf = q.1
                    let dst = y + (((ni * channels + c) * d + od) * h + oh) * w + 2 * tw
                    if valid == 16 {
                        UnsafeMutableRawPointer(dst).storeBytes(of: row, as: SIMD16<Float>.self)
                    } else {
                        for j in 0..<valid { dst[j] = row[j] }
                    }
                }
                k += 8
            }
        }
    }
}

/// dM[ξ][c][column] = (A⊗³ dY)_ξ for channels c0..<c1 of `dy` `[N, C, D, H, W]` and tiles t0..<t1;
/// outputs outside the volume count as zero.
private func gradientTransform(_ p: WinogradPlan, _ dy: UnsafePointer<Float>, channels: Int, _ c0: Int, _ c1: Int,
                               _ t0: Int, _ t1: Int, _ dm: UnsafeMutablePointer<Float>, _ scratch: UnsafeMutablePointer<Float>) {
    let rl = p.rowLength, (d, h, w) = (p.d, p.h, p.w)
    let zeroRow = scratch + 16 * rl
    let s = temporaries(scratch, temporariesOffset(p))
    scratch.update(repeating: 0, count: 17 * rl)
    let r = rowPointers(scratch, p)
    let xiStride = channels * p.ld
    for c in c0..<c1 {
        p.forEachRun(t0, t1) { ni, td, th, tw0, count, column in
            for iab in 0..<4 {
                let od = 2 * td + iab / 2, oh = 2 * th + iab % 2
                if od >= d || oh >= h {
                    r[iab] = UnsafePointer(zeroRow)
                } else {
                    let dst = scratch + iab * rl     // columns 0..<w; the rest stays zero
                    dst.update(from: dy + (((ni * channels + c) * d + od) * h + oh) * w, count: w)
                    r[iab] = UnsafePointer(dst)
                }
            }
            var k = 0
            while k < count {
                let tw = tw0 + k
                // Along w: 2 → 4, s[(ia·2 + ib)·4 + c].
                for iab in 0..<4 {
                    let v = load16(r[iab] + 2 * tw)
                    let q = F23.a(v.evenHalf, v.oddHalf)
                    s[iab * 4] = q.0; s[iab * 4 + 1] = q.1; s[iab * 4 + 2] = q.2; s[iab * 4 + 3] = q.3
                }
                // Along h: 2 → 4, s[64 + (ia·4 + b)·4 + c].
                for ia in 0..<2 {
                    for cc in 0..<4 {
                        let q = F23.a(s[(ia * 2) * 4 + cc], s[(ia * 2 + 1) * 4 + cc])
                        let o = 64 + ia * 16 + cc
                        s[o] = q.0; s[o + 4] = q.1; s[o + 8] = q.2; s[o + 12] = q.3
                    }
                }
                // Along d: 2 → 4, stored to dM.
                let out = dm + c * p.ld + column + k
                for bc in 0..<16 {
                    let q = F23.a(s[64 + bc], s[64 + 16 + bc])
                    store8(q.0, out + bc * xiStride)
                    store8(q.1, out + (16 + bc) * xiStride)
                    store8(q.2, out + (32 + bc) * xiStride)
                    store8(q.3, out + (48 + bc) * xiStride)
                }
                k += 8
            }
        }
    }
}

/// U[ξ][co][ci] = (G⊗³ g[co, ci])_ξ for output channels co0..<co1 of `weight` `[Cout, Cin, 3, 3, 3]`,
/// 8 input channels at a time.
private func weightTransform(_ weight: UnsafePointer<Float>, cout: Int, cin: Int, _ co0: Int, _ co1: Int,
                             _ u: UnsafeMutablePointer<Float>, _ scratch: UnsafeMutablePointer<Float>) {
    let s = temporaries(scratch, 0)
    let xiStride = cout * cin
    for co in co0..<co1 {
        var ci0 = 0
        while ci0 < cin {
            let lanes = min(8, cin - ci0)
            let src = weight + (co * cin + ci0) * 27
            // s[(kd·3 + kh)·4 + γ]: along w, 3 → 4.
            for k9 in 0..<9 {
                var g0 = V8(), g1 = V8(), g2 = V8()
                for l in 0..<lanes {
                    g0[l] = src[l * 27 + k9 * 3]; g1[l] = src[l * 27 + k9 * 3 + 1]; g2[l] = src[l * 27 + k9 * 3 + 2]
                }
                let q = F23.g(g0, g1, g2)
                s[k9 * 4] = q.0; s[k9 * 4 + 1] = q.1; s[k9 * 4 + 2] = q.2; s[k9 * 4 + 3] = q.3
            }
            // s[64 + (kd·4 + β)·4 + γ]: along h.
            for kd in 0..<3 {
                for cc in 0..<4 {
                    let i = kd * 12 + cc
                    let q = F23.g(s[i], s[i + 4], s[i + 8])
                    let o = 64 + kd * 16 + cc
                    s[o] = q.0; s[o + 4] = q.1; s[o + 8] = q.2; s[o + 12] = q.3
                }
            }
            // Along d, stored to U.
            let out = u + co * cin + ci0
            for bc in 0..<16 {
                let q = F23.g(s[64 + bc], s[64 + 16 + bc], s[64 + 32 + bc])
                @inline(__always) func put(_ value: V8, _ aa: Int) {
                    let dst = out + (aa * 16 + bc) * xiStride
                    if lanes == 8 { store8(value, dst) } else { for l in 0..<lanes { dst[l] = value[l] } }
                }
                put(q.0, 0); put(q.1, 1); put(q.2, 2); put(q.3, 3)
            }
            ci0 += 8
        }
    }
}

/// dWeight[co][ci] += (Gᵀ⊗³ dU[·][co][ci]) for output channels co0..<co1, 8 input channels at a time.
private func weightGradientTransform(_ du: UnsafePointer<Float>, cout: Int, cin: Int, _ co0: Int, _ co1: Int,
                                     _ dWeight: UnsafeMutablePointer<Float>, _ scratch: UnsafeMutablePointer<Float>) {
    let s = temporaries(scratch, 0)
    let xiStride = cout * cin
    for co in co0..<co1 {
        var ci0 = 0
        while ci0 < cin {
            let lanes = min(8, cin - ci0)
            let src = du + co * cin + ci0
            @inline(__always) func load(_ xi: Int) -> V8 {
                if lanes == 8 { return load8(src + xi * xiStride) }
                var v = V8()
                for l in 0..<lanes { v[l] = src[xi * xiStride + l] }
                return v
            }
            // Along d (α → kd): s[(kd·4 + β)·4 + γ].
            for bc in 0..<16 {
                let q = F23.gT(load(bc), load(16 + bc), load(32 + bc), load(48 + bc))
                s[bc] = q.0; s[16 + bc] = q.1; s[32 + bc] = q.2
            }
            // Along h (β → kh): s[64 + (kd·3 + kh)·4 + γ].
            for kd in 0..<3 {
                for cc in 0..<4 {
                    let i = kd * 16 + cc
                    let q = F23.gT(s[i], s[i + 4], s[i + 8], s[i + 12])
                    let o = 64 + kd * 12 + cc
                    s[o] = q.0; s[o + 4] = q.1; s[o + 8] = q.2
                }
            }
            // Along w (γ → kw), added into dWeight [Cout, Cin, 27].
            let dst = dWeight + (co * cin + ci0) * 27
            for k9 in 0..<9 {
                let i = 64 + k9 * 4
                let q = F23.gT(s[i], s[i + 1], s[i + 2], s[i + 3])
                for l in 0..<lanes {
                    dst[l * 27 + k9 * 3] += q.0[l]; dst[l * 27 + k9 * 3 + 1] += q.1[l]; dst[l * 27 + k9 * 3 + 2] += q.2[l]
                }
            }
            ci0 += 8
        }
    }
}

// MARK: The passes



/// U[ξ][Cout][Cin] for `weight` `[Cout, Cin, 3, 3, 3]`, in the workspace's weight buffer.
private func transformedWeights(_ weight: Tensor, _ g: Conv3dGeometry, _ buffers: WinogradBuffers) -> UnsafeMutablePointer<Float> {
    let (cout, cin) = (g.outChannels, g.inChannels)
    let u = buffers.weights(64 * cout * cin)
    let workers = max(1, Parallel.threads)
    let scratch = buffers.scratch(workers * 3 * 64 * 8)
    Parallel.forEachWorker(cout, maxWorkers: workers) { worker, range in
        let s = scratch + worker * 3 * 64 * 8
        weightTransform(UnsafePointer(weight.data), cout: cout, cin: cin, range.lowerBound, range.upperBound, u, s)
    }
    return u
}

/// out `[N, outC, D, H, W]` = the stride-1 padding-1 3³ conv of `input` `[N, inC, D, H, W]`, with
/// transformed weights `u`: U_ξ[outC, inC] at ξ·outC·inC (`adjoint` false), or for the input
/// gradient U'_ξ = (U_{Pξ})ᵀ where `u` holds the forward's [inC, outC] matrices (`adjoint` true).
private func winogradConvolve(_ s: Shape5, input: UnsafePointer<Float>, inC: Int, output: UnsafeMutablePointer<Float>,
                              outC: Int, u: UnsafePointer<Float>, adjoint: Bool, _ buffers: WinogradBuffers, blockBytes: Int) {
    let p = WinogradPlan(s, inC: inC, outC: outC, blockBytes: blockBytes)
    let workers = max(1, Parallel.threads)
    let per = scratchFloats(p)
    let scratch = buffers.scratch(workers * per)
    let v = buffers.input(64 * inC * p.ld), m = buffers.output(64 * outC * p.ld)
    BLAS.withThreads(workers > 1 ? 1 : BLAS.threads) {
        for block in 0..<p.blocks {
            let t0 = block * p.blockTiles, t1 = min(p.tiles, t0 + p.blockTiles), t = t1 - t0
            Parallel.forEachWorker(inC, maxWorkers: workers) { worker, r in
                let sc = scratch + worker * per
                inputTransform(p, input, channels: inC, r.lowerBound, r.upperBound, t0, t1, v, sc)
            }
            Parallel.forEachWorker(64, maxWorkers: workers) { _, r in
                for xi in r {
                    if adjoint {
                        // P swaps indices 0 and 3 along each axis: G·flip(g) = P·G·g.
                        let (al, be, ga) = (xi / 16, (xi / 4) % 4, xi % 4)
                        let pxi = ((al == 0 ? 3 : al == 3 ? 0 : al) * 4 + (be == 0 ? 3 : be == 3 ? 0 : be)) * 4
                            + (ga == 0 ? 3 : ga == 3 ? 0 : ga)
                        BLAS.sgemm(.transpose, .none, m: outC, n: t, k: inC, a: u + pxi * outC * inC, lda: outC,
                                   b: v + xi * inC * p.ld, ldb: p.ld, c: m + xi * outC * p.ld, ldc: p.ld)
                    } else {
                        BLAS.sgemm(.none, .none, m: outC, n: t, k: inC, a: u + xi * outC * inC, lda: inC,
                                   b: v + xi * inC * p.ld, ldb: p.ld, c: m + xi * outC * p.ld, ldc: p.ld)
                    }
                }
            }
            Parallel.forEachWorker(outC, maxWorkers: workers) { worker, r in
                let sc = scratch + worker * per
                outputTransform(p, m, channels: outC, r.lowerBound, r.upperBound, t0, t1, output, sc)
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
    let u = transformedWeights(weight, g, buffers)
    winogradConvolve(x.shape5, input: x.data, inC: g.inChannels, output: y.data, outC: g.outChannels,
                     u: u, adjoint: false, buffers, blockBytes: blockBytes)
}

/// Winograd backward: WRITES dX, ACCUMULATES dWeight (either may be nil), like `conv3dBackward`.
func winogradBackward(dX: Tensor?, dWeight: Tensor?, dY: Tensor, x: Tensor, weight: Tensor,
                      geometry g: Conv3dGeometry, buffers: WinogradBuffers, blockBytes: Int = WinogradConv.blockBytes) {
    precondition(WinogradConv.applies(to: g), "winogradBackward: \(g) is not 3³ stride 1 padding 1")
    let (cout, cin) = (g.outChannels, g.inChannels)
    if let dX {   // the forward on dY with the flipped, transposed kernel
        let u = transformedWeights(weight, g, buffers)
        winogradConvolve(x.shape5, input: dY.data, inC: cout, output: dX.data, outC: cin,
                         u: u, adjoint: true, buffers, blockBytes: blockBytes)
    }
    guard let dWeight else { return }
    let p = WinogradPlan(x.shape5, inC: cin, outC: cout, blockBytes: blockBytes)
    let workers = max(1, Parallel.threads)
    let per = scratchFloats(p)
    let scratch = buffers.scratch(workers * per)
    let du = buffers.weights(64 * cout * cin)
    let v = buffers.input(64 * cin * p.ld), dm = buffers.output(64 * cout * p.ld)
    let (xp, dyp) = (UnsafePointer(x.data), UnsafePointer(dY.data))
    BLAS.withThreads(workers > 1 ? 1 : BLAS.threads) {
        for block in 0..<p.blocks {
            let t0 = block * p.blockTiles, t1 = min(p.tiles, t0 + p.blockTiles), t = t1 - t0
            Parallel.forEachWorker(cin + cout, maxWorkers: workers) { worker, r in   // channels of x, then of dY
                let sc = scratch + worker * per
                let xr = r.clamped(to: 0..<cin), dr = r.clamped(to: cin..<(cin + cout))
                if !xr.isEmpty { inputTransform(p, xp, channels: cin, xr.lowerBound, xr.upperBound, t0, t1, v, sc) }
                if !dr.isEmpty {
                    gradientTransform(p, dyp, channels: cout, dr.lowerBound - cin, dr.upperBound - cin, t0, t1, dm, sc)
                }
            }
            Parallel.forEachWorker(64, maxWorkers: workers) { _, r in   // dU_ξ[Cout, Cin] += dM_ξ[Cout, T] · V_ξ[Cin, T]ᵀ
                for xi in r {
                    BLAS.sgemm(.none, .transpose, m: cout, n: cin, k: t, a: dm + xi * cout * p.ld, lda: p.ld,
                               b: v + xi * cin * p.ld, ldb: p.ld, beta: block == 0 ? 0 : 1, c: du + xi * cout * cin, ldc: cin)
                }
            }
        }
        Parallel.forEachWorker(cout, maxWorkers: workers) { worker, r in
            let sc = scratch + worker * per
            weightGradientTransform(du, cout: cout, cin: cin, r.lowerBound, r.upperBound, dWeight.data, sc)
        }
    }
}
