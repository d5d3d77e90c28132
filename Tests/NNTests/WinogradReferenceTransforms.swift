@testable import NN

// The Winograd transforms as Swift SIMD8 code (SSE2 in the baseline build), exactly as
// Sources/NN/Winograd.swift computed them before the transforms moved to the VectorKernels C target
// (winograd_body.h). They are the reference the C builds must match bit for bit at every ISA level
// (WinogradTransformTests), and F23 is the 1-D algebra WinogradTests.oneDimensionalIdentities checks.

extension WinogradPlan {
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

/// Offset in floats of the SIMD8 temporaries in a worker's scratch: after 16 padded input rows and
/// a zero row, rounded up to 64 bytes (SIMD8<Float> wants 32-byte alignment).
private func temporariesOffset(_ p: WinogradPlan) -> Int { (17 * p.rowLength + 15) / 16 * 16 }
/// Floats of per-worker scratch: the rows, 3 × 64 SIMD8 temporaries, then 16 row pointers; a
/// multiple of 64 bytes.
func referenceScratchFloats(_ p: WinogradPlan) -> Int { temporariesOffset(p) + 3 * 64 * 8 + 32 }
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
func referenceInputTransform(_ p: WinogradPlan, _ x: UnsafePointer<Float>, channels: Int, _ c0: Int, _ c1: Int,
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
                let xiStride = p.plane(channels)
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
func referenceOutputTransform(_ p: WinogradPlan, _ m: UnsafePointer<Float>, channels: Int, _ c0: Int, _ c1: Int,
                             _ t0: Int, _ t1: Int, _ y: UnsafeMutablePointer<Float>, _ scratch: UnsafeMutablePointer<Float>) {
    let (d, h, w) = (p.d, p.h, p.w)
    let s = temporaries(scratch, temporariesOffset(p))
    let xiStride = p.plane(channels)
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
func referenceGradientTransform(_ p: WinogradPlan, _ dy: UnsafePointer<Float>, channels: Int, _ c0: Int, _ c1: Int,
                               _ t0: Int, _ t1: Int, _ dm: UnsafeMutablePointer<Float>, _ scratch: UnsafeMutablePointer<Float>) {
    let rl = p.rowLength, (d, h, w) = (p.d, p.h, p.w)
    let zeroRow = scratch + 16 * rl
    let s = temporaries(scratch, temporariesOffset(p))
    scratch.update(repeating: 0, count: 17 * rl)
    let r = rowPointers(scratch, p)
    let xiStride = p.plane(channels)
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
func referenceWeightTransform(_ weight: UnsafePointer<Float>, cout: Int, cin: Int, _ co0: Int, _ co1: Int,
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
func referenceWeightGradientTransform(_ du: UnsafePointer<Float>, cout: Int, cin: Int, _ co0: Int, _ co1: Int,
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
