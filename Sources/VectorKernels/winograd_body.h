// The Winograd F(2×2×2, 3×3×3) transforms, written once (Sources/NN/Winograd.swift has the maths,
// the layouts of V, M and U, and the block/tile numbering). Each kernels_<level>.c defines
// VK_LANES and VK_NAME(name) and applies its target attribute with `#pragma clang attribute`, then
// includes this file.
//
// Vectorisation: the input, gradient and output transforms take VK_LANES consecutive tiles along w
// at once (the 4 input columns of L tiles are the even/odd lanes of two 2L-float loads from a
// zero-padded copy of the row); the weight transforms take VK_LANES input channels at once. Lanes
// never mix, and every value goes through the F23 formulas below, the same IEEE operations in the
// same order as Winograd.swift's Swift version had (FMA contraction off; A's −y is 0 − y, like
// Swift's SIMD negation), so each level gives the same bits. A run's last, partial chunk loads and
// stores only its own lanes (others read as zero), so nothing outside a block's columns is touched.
#pragma clang fp contract(off)

#include <string.h>
#include "VectorKernels.h"
#include "transpose8.h"

typedef float wk_f __attribute__((ext_vector_type(VK_LANES)));
typedef float wk_f2 __attribute__((ext_vector_type(2 * VK_LANES)));

#if VK_LANES == 4
#define WK_INTERLEAVE 0, 4, 1, 5, 2, 6, 3, 7
#elif VK_LANES == 8
#define WK_INTERLEAVE 0, 8, 1, 9, 2, 10, 3, 11, 4, 12, 5, 13, 6, 14, 7, 15
#elif VK_LANES == 16
#define WK_INTERLEAVE 0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23, \
    8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31
#else
#error "VK_LANES must be 4, 8 or 16"
#endif

/// The 27 taps of VK_LANES filters, transposed into lanes: t[q] lane l = src[l·stride + q] for
/// q < 27, each filter's 27 taps consecutive (a filter "record"). At 8 and 16 lanes by 8×8
/// transposes of whole-vector loads (transpose8.h), taps 24–26 as the last three columns of one
/// over taps 19–26, so that no load leaves the records; at 4 lanes one float at a time. (At 16
/// lanes it was 432 single-float inserts until 2026-12-03; the transposes made the transforms
/// 8–17 % faster where the weights are cached, and no faster where they come from memory:
/// Docs/performance.md, "The weight transform's gather".)
static inline void wk_gather27(const float *src, long stride, wk_f t[27]) {
#if VK_LANES == 8
    vk_f8 last[8];
    for (int c = 0; c < 3; c++) vk_transpose8(src + 8 * c, stride, &t[8 * c]);
    vk_transpose8(src + 19, stride, last);
    t[24] = last[5]; t[25] = last[6]; t[26] = last[7];
#elif VK_LANES == 16
    vk_f8 lo[8], hi[8];
    for (int c = 0; c < 4; c++) {
        const int first = c < 3 ? 8 * c : 19;
        vk_transpose8(src + first, stride, lo);
        vk_transpose8(src + 8 * stride + first, stride, hi);
        for (int j = c < 3 ? 0 : 5; j < 8; j++)
            t[first + j] = __builtin_shufflevector(lo[j], hi[j], 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    }
#else
    for (int q = 0; q < 27; q++) {
        wk_f v;
        for (int l = 0; l < VK_LANES; l++) v[l] = src[l * stride + q];
        t[q] = v;
    }
#endif
}

/// wk_gather27 of the first `lanes` ≤ VK_LANES records, zero in the lanes past them (none of
/// which is read: with `lanes` 0, `src` is never dereferenced).
static inline void wk_gather27_n(const float *src, long stride, long lanes, wk_f t[27]) {
    if (lanes == VK_LANES) { wk_gather27(src, stride, t); return; }
    for (int q = 0; q < 27; q++) {
        wk_f v = (wk_f)0.0f;
        for (long l = 0; l < lanes; l++) v[l] = src[l * stride + q];
        t[q] = v;
    }
}

/// Row copies are padded so that a chunk of the widest level (16 tiles, 2·16 + 2 floats past its
/// first column) stays inside its row: index 0 is column −1, columns 0..<w at 1...w, zeros after.
#define WK_ROW_PAD 40

static inline wk_f wk_load(const float *p) { wk_f v; memcpy(&v, p, sizeof v); return v; }
/// 2L floats from p into the wk_f2 `v` (a macro: a function returning wk_f2 would pass a vector
/// wider than the baseline level's registers, which -Wpsabi warns about).
#define WK_LOAD2(v, p) memcpy(&(v), (p), sizeof(v))
static inline void wk_store(float *p, wk_f v) { memcpy(p, &v, sizeof v); }
/// Copies n < 32 floats with fixed-size copies (a memcpy of variable size would be a libc call per
/// partial vector: the partial chunks are every chunk where a row has fewer tiles than lanes).
static inline void wk_copy_n(float *dst, const float *src, long n) {
    long i = 0;
    if (n & 16) { memcpy(dst + i, src + i, 16 * sizeof(float)); i += 16; }
    if (n & 8) { memcpy(dst + i, src + i, 8 * sizeof(float)); i += 8; }
    if (n & 4) { memcpy(dst + i, src + i, 4 * sizeof(float)); i += 4; }
    if (n & 2) { memcpy(dst + i, src + i, 2 * sizeof(float)); i += 2; }
    if (n & 1) dst[i] = src[i];
}
/// The first n lanes from p, zeros after (n ≤ VK_LANES). Four lanes (the 4 tiles of a row of
/// layers 3–4 at 64×128×128) are one 16-byte load into the low lanes, and at 16 lanes eight (the
/// 8 tiles of a row of layer 2, or of layer 1's 4³ tiles) one 32-byte load; any other partial
/// count goes through a zeroed buffer, whose narrower stores a wide load must wait for.
static inline wk_f wk_load_n(const float *p, long n) {
    if (n == VK_LANES) return wk_load(p);
#if VK_LANES > 4
    if (n == 4) {
        wk_f v = (wk_f)0.0f;
        memcpy(&v, p, 4 * sizeof(float));
        return v;
    }
#endif
#if VK_LANES > 8
    if (n == 8) {
        wk_f v = (wk_f)0.0f;
        memcpy(&v, p, 8 * sizeof(float));
        return v;
    }
#endif
    float t[VK_LANES] = {0};
    wk_copy_n(t, p, n);
    return wk_load(t);
}
/// Stores the first n lanes of v (n ≤ VK_LANES); four lanes (and at 16 lanes eight) at once.
static inline void wk_store_n(float *p, wk_f v, long n) {
    if (n == VK_LANES) { wk_store(p, v); return; }
#if VK_LANES > 4
    if (n == 4) { memcpy(p, &v, 4 * sizeof(float)); return; }
#endif
#if VK_LANES > 8
    if (n == 8) { memcpy(p, &v, 8 * sizeof(float)); return; }
#endif
    float t[VK_LANES];
    wk_store(t, v);
    wk_copy_n(p, t, n);
}
static inline long wk_min(long a, long b) { return a < b ? a : b; }

// The 1-D matrices of F(2, 3), as Winograd.swift's F23.
/// Bᵀ·(v0, v1, v2, v3).
static inline void wk_bt(wk_f v0, wk_f v1, wk_f v2, wk_f v3, wk_f *o0, wk_f *o1, wk_f *o2, wk_f *o3) {
    *o0 = v0 - v2; *o1 = v1 + v2; *o2 = v2 - v1; *o3 = v1 - v3;
}
/// Aᵀ·(m0, m1, m2, m3).
static inline void wk_at(wk_f m0, wk_f m1, wk_f m2, wk_f m3, wk_f *o0, wk_f *o1) {
    *o0 = m0 + m1 + m2; *o1 = m1 - m2 - m3;
}
/// A·(y0, y1), the adjoint of Aᵀ.
static inline void wk_a(wk_f y0, wk_f y1, wk_f *o0, wk_f *o1, wk_f *o2, wk_f *o3) {
    *o0 = y0; *o1 = y0 + y1; *o2 = y0 - y1; *o3 = (wk_f)0.0f - y1;
}
/// G·(g0, g1, g2).
static inline void wk_g(wk_f g0, wk_f g1, wk_f g2, wk_f *o0, wk_f *o1, wk_f *o2, wk_f *o3) {
    wk_f s = 0.5f * (g0 + g2);
    *o0 = g0; *o1 = s + 0.5f * g1; *o2 = s - 0.5f * g1; *o3 = g2;
}
/// Gᵀ·(u0, u1, u2, u3), the adjoint of G.
static inline void wk_gt(wk_f u0, wk_f u1, wk_f u2, wk_f u3, wk_f *o0, wk_f *o1, wk_f *o2) {
    wk_f s = 0.5f * (u1 + u2);
    *o0 = u0 + s; *o1 = 0.5f * (u1 - u2); *o2 = u3 + s;
}

/// The run of consecutive tiles along one row of the tile grid that starts at tile t of [t0, t1):
/// sample ni, tile row (td, th), first column tw0, `count` tiles, first block column `column`.
typedef struct { long ni, td, th, tw0, count, column; } wk_run;

/// wk_run for output tiles of `tile`³ points: 2 for F(2,3), 4 for F(4,3) (winograd4_body.h).
static inline __attribute__((always_inline)) wk_run wk_tile_run_at(const dsan_winograd_geometry *g, long tile,
                                                                    long t0, long t1, long t) {
    const long tD = (g->d + tile - 1) / tile, tH = (g->h + tile - 1) / tile, tW = (g->w + tile - 1) / tile;
    const long perSample = tD * tH * tW;
    wk_run run;
    run.ni = t / perSample;
    const long r = t - run.ni * perSample;
    run.td = r / (tH * tW); run.th = (r / tW) % tH; run.tw0 = r % tW;
    run.count = wk_min(tW - run.tw0, t1 - t);
    run.column = t - t0;
    return run;
}

static inline wk_run wk_run_at(const dsan_winograd_geometry *g, long t0, long t1, long t) {
    return wk_tile_run_at(g, 2, t0, t1, t);
}

/// The side × side input rows of a tile row, (depth, height) = (id0 + a, ih0 + b) of one channel's
/// plane [d, h, w]: r[a·side + b] is the row copied to scratch + (a·side + b)·rl + 1 (columns
/// 0..<w; the copy's padding stays zero), or `zeroRow` where the row lies outside the volume.
/// (Always inlined: `side` must be a constant where it is used, or the loop divides by it.)
static inline __attribute__((always_inline)) void wk_input_rows(const float *plane, long d, long h, long w,
                                                                long id0, long ih0, int side, float *scratch,
                                                                long rl, const float *zeroRow, const float **r) {
    for (int ab = 0; ab < side * side; ab++) {
        const long id = id0 + ab / side, ih = ih0 + ab % side;
        if (id < 0 || id >= d || ih < 0 || ih >= h) {
            r[ab] = zeroRow;
        } else {
            float *dst = scratch + ab * rl;
            memcpy(dst + 1, plane + (id * h + ih) * w, (size_t)w * sizeof(float));
            r[ab] = dst;
        }
    }
}

#define WK_RUN_FIELDS                                                                              \
    const long ni = run.ni, td = run.td, th = run.th, tw0 = run.tw0, count = run.count,            \
               column = run.column;

void VK_NAME(winograd_input_transform)(const dsan_winograd_geometry *g, const float *x, long channels,
                                       long c0, long c1, long t0, long t1, float *v, float *scratch) {
    const long d = g->d, h = g->h, w = g->w, rl = w + WK_ROW_PAD, xs = dsan_winograd_plane_floats(channels, g->ld);
    float *zeroRow = scratch + 16 * rl;
    const float *r[16];
    wk_f s[64];
    // Only columns 1...w of a row copy are ever written, so the padding stays zero.
    memset(scratch, 0, (size_t)(17 * rl) * sizeof(float));
    for (long c = c0; c < c1; c++) {
        wk_run run;
        for (long t = t0; t < t1; t += run.count) {
            run = wk_run_at(g, t0, t1, t);
            WK_RUN_FIELDS
            wk_input_rows(x + (ni * channels + c) * d * h * w, d, h, w, 2 * td - 1, 2 * th - 1, 4, scratch, rl,
                          zeroRow, r);
            for (long k = 0; k < count; k += VK_LANES) {
                const long tw = tw0 + k, lanes = wk_min(VK_LANES, count - k);
                // Along w: the 4 columns of L tiles are the even/odd lanes of two 2L-float loads.
                for (int ab = 0; ab < 16; ab++) {
                    wk_f2 lo, hi;
                    WK_LOAD2(lo, r[ab] + 2 * tw); WK_LOAD2(hi, r[ab] + 2 * tw + 2);
                    wk_bt(lo.even, lo.odd, hi.even, hi.odd, &s[ab * 4], &s[ab * 4 + 1], &s[ab * 4 + 2],
                          &s[ab * 4 + 3]);
                }
                // Along h (index b), in place.
                for (int aa = 0; aa < 4; aa++)
                    for (int cc = 0; cc < 4; cc++) {
                        int i = aa * 16 + cc;
                        wk_bt(s[i], s[i + 4], s[i + 8], s[i + 12], &s[i], &s[i + 4], &s[i + 8], &s[i + 12]);
                    }
                // Along d (index a), stored to V.
                float *out = v + c * g->ld + column + k;
                for (int bc = 0; bc < 16; bc++) {
                    wk_f q0, q1, q2, q3;
                    wk_bt(s[bc], s[bc + 16], s[bc + 32], s[bc + 48], &q0, &q1, &q2, &q3);
                    wk_store_n(out + bc * xs, q0, lanes);
                    wk_store_n(out + (16 + bc) * xs, q1, lanes);
                    wk_store_n(out + (32 + bc) * xs, q2, lanes);
                    wk_store_n(out + (48 + bc) * xs, q3, lanes);
                }
            }
        }
    }
}

void VK_NAME(winograd_output_transform)(const dsan_winograd_geometry *g, const float *m, long channels,
                                        long c0, long c1, long t0, long t1, float *y) {
    const long d = g->d, h = g->h, w = g->w, xs = dsan_winograd_plane_floats(channels, g->ld);
    wk_f s[48];
    for (long c = c0; c < c1; c++) {
        wk_run run;
        for (long t = t0; t < t1; t += run.count) {
            run = wk_run_at(g, t0, t1, t);
            WK_RUN_FIELDS
            for (long k = 0; k < count; k += VK_LANES) {
                const long lanes = wk_min(VK_LANES, count - k);
                const float *src = m + c * g->ld + column + k;
                // Along d (index a): 64 → 32, s[(ia·4 + b)·4 + c].
                for (int bc = 0; bc < 16; bc++)
                    wk_at(wk_load_n(src + bc * xs, lanes), wk_load_n(src + (16 + bc) * xs, lanes),
                          wk_load_n(src + (32 + bc) * xs, lanes), wk_load_n(src + (48 + bc) * xs, lanes),
                          &s[bc], &s[16 + bc]);
                // Along h: 32 → 16, s[32 + (ia·2 + ib)·4 + c].
                for (int ia = 0; ia < 2; ia++)
                    for (int cc = 0; cc < 4; cc++) {
                        int i = ia * 16 + cc;
                        wk_at(s[i], s[i + 4], s[i + 8], s[i + 12], &s[32 + (ia * 2) * 4 + cc],
                              &s[32 + (ia * 2 + 1) * 4 + cc]);
                    }
                // Along w: 16 → 8, interleaved into 2L consecutive outputs per (od, oh) row.
                const long tw = tw0 + k;
                const long valid = wk_min(wk_min(2 * VK_LANES, 2 * lanes), w - 2 * tw);
                for (int iab = 0; iab < 4; iab++) {
                    long od = 2 * td + iab / 2, oh = 2 * th + iab % 2;
                    if (od >= d || oh >= h) continue;
                    int i = 32 + iab * 4;
                    wk_f q0, q1;
                    wk_at(s[i], s[i + 1], s[i + 2], s[i + 3], &q0, &q1);
                    wk_f2 row = __builtin_shufflevector(q0, q1, WK_INTERLEAVE);
                    float *dst = y + (((ni * channels + c) * d + od) * h + oh) * w + 2 * tw;
                    if (valid == 2 * VK_LANES) {
                        memcpy(dst, &row, sizeof row);
                    } else {
                        float t[2 * VK_LANES];
                        memcpy(t, &row, sizeof row);
                        wk_copy_n(dst, t, valid);
                    }
                }
            }
        }
    }
}

void VK_NAME(winograd_gradient_transform)(const dsan_winograd_geometry *g, const float *dy, long channels,
                                          long c0, long c1, long t0, long t1, float *dm, float *scratch) {
    const long d = g->d, h = g->h, w = g->w, rl = w + WK_ROW_PAD, xs = dsan_winograd_plane_floats(channels, g->ld);
    float *zeroRow = scratch + 16 * rl;
    const float *r[4];
    wk_f s[96];
    memset(scratch, 0, (size_t)(17 * rl) * sizeof(float));
    for (long c = c0; c < c1; c++) {
        wk_run run;
        for (long t = t0; t < t1; t += run.count) {
            run = wk_run_at(g, t0, t1, t);
            WK_RUN_FIELDS
            for (int iab = 0; iab < 4; iab++) {
                long od = 2 * td + iab / 2, oh = 2 * th + iab % 2;
                if (od >= d || oh >= h) {
                    r[iab] = zeroRow;
                } else {
                    float *dst = scratch + iab * rl;   // columns 0..<w; the rest stays zero
                    memcpy(dst, dy + (((ni * channels + c) * d + od) * h + oh) * w, (size_t)w * sizeof(float));
                    r[iab] = dst;
                }
            }
            for (long k = 0; k < count; k += VK_LANES) {
                const long tw = tw0 + k, lanes = wk_min(VK_LANES, count - k);
                // Along w: 2 → 4, s[(ia·2 + ib)·4 + c].
                for (int iab = 0; iab < 4; iab++) {
                    wk_f2 v;
                    WK_LOAD2(v, r[iab] + 2 * tw);
                    wk_a(v.even, v.odd, &s[iab * 4], &s[iab * 4 + 1], &s[iab * 4 + 2], &s[iab * 4 + 3]);
                }
                // Along h: 2 → 4, s[64 + (ia·4 + b)·4 + c].
                for (int ia = 0; ia < 2; ia++)
                    for (int cc = 0; cc < 4; cc++) {
                        int o = 64 + ia * 16 + cc;
                        wk_a(s[(ia * 2) * 4 + cc], s[(ia * 2 + 1) * 4 + cc], &s[o], &s[o + 4], &s[o + 8], &s[o + 12]);
                    }
                // Along d: 2 → 4, stored to dM.
                float *out = dm + c * g->ld + column + k;
                for (int bc = 0; bc < 16; bc++) {
                    wk_f q0, q1, q2, q3;
                    wk_a(s[64 + bc], s[64 + 16 + bc], &q0, &q1, &q2, &q3);
                    wk_store_n(out + bc * xs, q0, lanes);
                    wk_store_n(out + (16 + bc) * xs, q1, lanes);
                    wk_store_n(out + (32 + bc) * xs, q2, lanes);
                    wk_store_n(out + (48 + bc) * xs, q3, lanes);
                }
            }
        }
    }
}

void VK_NAME(winograd_weight_transform)(const float *weight, long cout, long cin, long co0, long co1,
                                        float *u) {
    const long xs = cout * cin;
    wk_f t[27];
    wk_f s[112];
    for (long co = co0; co < co1; co++) {
        for (long ci0 = 0; ci0 < cin; ci0 += VK_LANES) {
            const long lanes = wk_min(VK_LANES, cin - ci0);
            const float *src = weight + (co * cin + ci0) * 27;
            // Transposed: t[k] lane l = g[co, ci0 + l][k], zero in lanes past cin.
            wk_gather27_n(src, 27, lanes, t);
            // s[(kd·3 + kh)·4 + γ]: along w, 3 → 4.
            for (int k9 = 0; k9 < 9; k9++)
                wk_g(t[k9 * 3], t[k9 * 3 + 1], t[k9 * 3 + 2], &s[k9 * 4],
                     &s[k9 * 4 + 1], &s[k9 * 4 + 2], &s[k9 * 4 + 3]);
            // s[64 + (kd·4 + β)·4 + γ]: along h.
            for (int kd = 0; kd < 3; kd++)
                for (int cc = 0; cc < 4; cc++) {
                    int i = kd * 12 + cc, o = 64 + kd * 16 + cc;
                    wk_g(s[i], s[i + 4], s[i + 8], &s[o], &s[o + 4], &s[o + 8], &s[o + 12]);
                }
            // Along d, stored to U.
            float *out = u + co * cin + ci0;
            for (int bc = 0; bc < 16; bc++) {
                wk_f q0, q1, q2, q3;
                wk_g(s[64 + bc], s[64 + 16 + bc], s[64 + 32 + bc], &q0, &q1, &q2, &q3);
                wk_store_n(out + bc * xs, q0, lanes);
                wk_store_n(out + (16 + bc) * xs, q1, lanes);
                wk_store_n(out + (32 + bc) * xs, q2, lanes);
                wk_store_n(out + (48 + bc) * xs, q3, lanes);
            }
        }
    }
}

/// Winograd.swift's "P": swaps indices 0 and 3 along each axis of ξ = (α·4 + β)·4 + γ.
static inline int wk_flip_xi(int xi) {
    int al = xi / 16, be = (xi / 4) % 4, ga = xi % 4;
    al = al == 0 ? 3 : al == 3 ? 0 : al;
    be = be == 0 ? 3 : be == 3 ? 0 : be;
    ga = ga == 0 ? 3 : ga == 3 ? 0 : ga;
    return (al * 4 + be) * 4 + ga;
}


/// G·(g0, g1, g2)'s output o alone, by wk_g's own expressions (so the same bits).
static inline __attribute__((always_inline)) wk_f wk_g_at(int o, wk_f g0, wk_f g1, wk_f g2) {
    if (o == 0) return g0;
    if (o == 3) return g2;
    wk_f s = 0.5f * (g0 + g2);
    return o == 1 ? s + 0.5f * g1 : s - 0.5f * g1;
}

/// G⊗³ of one filter's 27 taps t (k = (kd·3 + kh)·3 + kw) into out[ξ], ξ = (α·4 + β)·4 + γ, for
/// the γ in `gammas` (a bit mask) only; s[0..<112] is scratch. The transform is separable and γ is
/// its first stage's index (along kw), so a subset of γ costs its share of the work and no more:
/// stage 1 computes only those γ, stages 2 and 3 only the vectors that carry one. The same
/// operations, in the same order, as winograd_weight_transform for every ξ computed. Called with
/// a constant mask (wk_weight_stages below), so each mask compiles to straight-line code. (All
/// 64 ξ take wk_pack_body's own loops.)
static inline __attribute__((always_inline)) void wk_weight_stages_for(const wk_f t[27], wk_f s[112], wk_f *out,
                                                                        int gammas) {
    for (int k9 = 0; k9 < 9; k9++)
        for (int ga = 0; ga < 4; ga++)
            if (gammas & (1 << ga)) s[k9 * 4 + ga] = wk_g_at(ga, t[k9 * 3], t[k9 * 3 + 1], t[k9 * 3 + 2]);
    for (int kd = 0; kd < 3; kd++)
        for (int cc = 0; cc < 4; cc++) {
            if (!(gammas & (1 << cc))) continue;
            int i = kd * 12 + cc, o = 64 + kd * 16 + cc;
            wk_g(s[i], s[i + 4], s[i + 8], &s[o], &s[o + 4], &s[o + 8], &s[o + 12]);
        }
    for (int bc = 0; bc < 16; bc++) {
        if (!(gammas & (1 << (bc % 4)))) continue;
        wk_g(s[64 + bc], s[64 + 16 + bc], s[64 + 32 + bc], &out[bc], &out[16 + bc], &out[32 + bc], &out[48 + bc]);
    }
}

/// wk_weight_stages_for with the mask as a constant: the halves {0, 3} and {1, 2}, or one γ
/// (wk_part_gammas; any other mask by the general loops).
static inline void wk_weight_stages(const wk_f t[27], wk_f s[112], wk_f *out, int gammas) {
    switch (gammas) {
    case 0x9: wk_weight_stages_for(t, s, out, 0x9); break;
    case 0x6: wk_weight_stages_for(t, s, out, 0x6); break;
    case 0x1: wk_weight_stages_for(t, s, out, 0x1); break;
    case 0x2: wk_weight_stages_for(t, s, out, 0x2); break;
    case 0x4: wk_weight_stages_for(t, s, out, 0x4); break;
    case 0x8: wk_weight_stages_for(t, s, out, 0x8); break;
    default: wk_weight_stages_for(t, s, out, gammas); break;
    }
}

/// The γ (bit mask) of part `part` of `parts` (1, 2 or 4) of a panel's 64 matrices: all, the
/// halves {0, 3} and {1, 2} (each closed under P, which swaps 0 and 3 and 1 and 2, so a part
/// of the adjoint's matrices is the transform of the same γ of U), or γ = part alone.
static inline int wk_part_gammas(long part, long parts) {
    if (parts == 2) return part == 0 ? 0x9 : 0x6;
    if (parts == 4) return 1 << part;
    return 0xF;
}

/// Columns of A staged per ξ before they are copied out (see below): 8, and 4 at 16 lanes, where
/// 8 columns' stage (66 KiB) would not fit a 48 KiB L1.
#if VK_LANES == 16
#define WK_PACK_COLUMNS 4
#else
#define WK_PACK_COLUMNS 8
#endif

/// Columns k0..<k1 of panels p0..<p1 of the packed matrices, the ξ-th at a + ξ·plane, column kk
/// of panel p at ((p − origin)·panelColumns + kk − columnOrigin)·mr inside it: in the whole
/// matrices (plane = all panels, origin 0, panelColumns = k, columnOrigin 0) or in one panel's
/// slice of 64 matrices (plane = (k1 − k0)·mr, origin = p0, panelColumns = k1 − k0,
/// columnOrigin = k0).
static inline __attribute__((always_inline)) void VK_NAME(wk_pack_body)(
    const float *weight, long cout, long cin, int adjoint, long p0, long p1, long k0, long k1, float *a, long plane,
    long origin, long panelColumns, long columnOrigin, int gammas, int direct) {
    const long mr = 2 * VK_LANES;
    const long m = adjoint ? cin : cout, k = adjoint ? cout : cin;
    // Row r, column kk of A is the filter (co, ci) = (r, kk) forward and (kk, r) for the adjoint.
    const long rowStride = adjoint ? 27 : cin * 27, colStride = adjoint ? cin * 27 : 27;
    // Stores that bypass the cache when A is larger than the caches would keep (the 64 matrices of
    // a wide layer: 16–64 MiB), ordinary stores otherwise, so a small A stays cached for its GEMMs.
    const int streaming = !direct && 64 * plane * (long)sizeof(float) > (16l << 20);
    const long prefetch = dsan_winograd_weight_prefetch();
    wk_f t[27];
    wk_f s[112];
    // target[ξ]: where the matrix computed as ξ of the transform goes (the adjoint's matrix Pξ),
    // −1 when its γ is not in the part. A part's matrices are its ξ in increasing order.
    long target[64];
    int computed = 0;
    for (int xi = 0; xi < 64; xi++) {
        const int to = adjoint ? wk_flip_xi(xi) : xi;
        if (!(gammas & (1 << (to % 4)))) { target[xi] = -1; continue; }
        int rank = 0;
        for (int other = 0; other < to; other++) rank += (gammas >> (other % 4)) & 1;
        target[xi] = rank * plane;
        computed |= 1 << (xi % 4);
    }
    // `direct` (a panel's slice, whose matrices lie a few KiB apart and together fit L2): each
    // result vector is stored straight into its matrix, one whole cache line per store (L lanes
    // of one column: half of the column's R rows). The slice's matrices must then not lie a
    // multiple of 4 KiB apart (dsan_winograd_panel_plane_floats pads them by a line): 64 lines
    // of one L1 set would evict each other at every store. Unstaged, the transform skips the
    // stage's 64 stores and 64 reloads per L filters.
    //
    // Otherwise (the whole matrices) the 64 results of a filter go to 64 matrices megabytes apart. Written straight there, each
    // vector store opens a different page and cache line; staged, each matrix gets a run of
    // WK_PACK_COLUMNS·mr consecutive floats at once. WK_PACK_COLUMNS·2·65·L floats: 16–33 KiB. The 65th
    // vector is padding: the copy-out reads one ξ of every column, and with 64 a column's row
    // was 4 KiB (AVX2) after the previous one, as are the slices' matrices it writes (64 columns of
    // 16 rows): loads and stores a multiple of 4 KiB apart look alike to the core's
    // store-to-load check and wait on one another (Docs/performance.md, "The weight transform's
    // staging").
    static _Thread_local wk_f stage[WK_PACK_COLUMNS][2][65] __attribute__((aligned(64)));
    for (long p = p0; p < p1; p++) {
        for (long kk0 = k0; kk0 < k1; kk0 += WK_PACK_COLUMNS) {
            const long columns = wk_min(WK_PACK_COLUMNS, k1 - kk0);
            for (long c = 0; c < columns; c++) {
                const long kk = kk0 + c;
                for (int gi = 0; gi < 2; gi++) {
                    const long row0 = p * mr + gi * VK_LANES;
                    const long lanes = row0 >= m ? 0 : wk_min(VK_LANES, m - row0);
                    // Transposed: t[q] lane l = g[row0 + l, kk][q], zero in lanes past m. Built in
                    // registers: a vector load of 8 separate scalar stores would wait for all of
                    // them (no store forwarding), which made this loop 3× slower.
                    if (lanes == VK_LANES) {
                        const float *src = weight + row0 * rowStride + kk * colStride;
                        // The weights come from memory (all of them, once per pass), in 8 rows
                        // 27·cin floats apart (forward) or as one run of 8·27 floats per column
                        // 27·cin floats apart (adjoint): fetch the column `prefetch` ahead
                        // (dsan_winograd_weight_prefetch).
                        if (prefetch > 0 && kk + prefetch < k) {   // across the slice's end: the next slice's columns
                            const float *ahead = src + prefetch * colStride;
                            if (adjoint) {
                                for (int b = 0; b < 27 * VK_LANES * 4; b += 64)
                                    __builtin_prefetch((const char *)ahead + b);
                            } else {
                                for (int l = 0; l < VK_LANES; l++) {
                                    __builtin_prefetch(ahead + l * rowStride);
                                    __builtin_prefetch(ahead + l * rowStride + 26);
                                }
                            }
                        }
                        wk_gather27(src, rowStride, t);
                    } else {   // the last rows of a panel past m: zero lanes
                        wk_gather27_n(lanes > 0 ? weight + row0 * rowStride + kk * colStride : weight, rowStride,
                                      lanes, t);
                    }
                    // Column kk's L rows of this group in matrix ξ: dst + target[ξ].
                    float *dst = a + ((p - origin) * panelColumns + kk - columnOrigin) * mr + gi * VK_LANES;
                    if (gammas == 0xF) {   // all 64 ξ: the loops of winograd_weight_transform
                        for (int k9 = 0; k9 < 9; k9++)
                            wk_g(t[k9 * 3], t[k9 * 3 + 1], t[k9 * 3 + 2], &s[k9 * 4],
                                 &s[k9 * 4 + 1], &s[k9 * 4 + 2], &s[k9 * 4 + 3]);
                        for (int kd = 0; kd < 3; kd++)
                            for (int cc = 0; cc < 4; cc++) {
                                int i = kd * 12 + cc, o = 64 + kd * 16 + cc;
                                wk_g(s[i], s[i + 4], s[i + 8], &s[o], &s[o + 4], &s[o + 8], &s[o + 12]);
                            }
                        for (int bc = 0; bc < 16; bc++) {
                            if (direct) {
                                wk_f q0, q1, q2, q3;
                                wk_g(s[64 + bc], s[64 + 16 + bc], s[64 + 32 + bc], &q0, &q1, &q2, &q3);
                                wk_store(dst + target[bc], q0);
                                wk_store(dst + target[16 + bc], q1);
                                wk_store(dst + target[32 + bc], q2);
                                wk_store(dst + target[48 + bc], q3);
                            } else {
                                wk_g(s[64 + bc], s[64 + 16 + bc], s[64 + 32 + bc], &stage[c][gi][bc],
                                     &stage[c][gi][16 + bc], &stage[c][gi][32 + bc], &stage[c][gi][48 + bc]);
                            }
                        }
                    } else if (direct) {   // a part's ξ: through a filter's own 64 vectors
                        wk_f out[64];
                        wk_weight_stages(t, s, out, computed);
                        for (int xi = 0; xi < 64; xi++)
                            if (target[xi] >= 0) wk_store(dst + target[xi], out[xi]);
                    } else {
                        wk_weight_stages(t, s, stage[c][gi], computed);
                    }
                }
            }
            if (direct) continue;
            // Copy out: columns kk0..<kk0 + columns of panel p are consecutive in each matrix,
            // which holds columns k0..<k1.
            const long offset = ((p - origin) * panelColumns + kk0 - columnOrigin) * mr;
            for (int xi = 0; xi < 64; xi++) {
                if (target[xi] < 0) continue;
                wk_f *out = (wk_f *)(a + target[xi] + offset);
                if (streaming) {
                    for (long c = 0; c < columns; c++) {
                        __builtin_nontemporal_store(stage[c][0][xi], out + 2 * c);
                        __builtin_nontemporal_store(stage[c][1][xi], out + 2 * c + 1);
                    }
                } else {
                    for (long c = 0; c < columns; c++) { out[2 * c] = stage[c][0][xi]; out[2 * c + 1] = stage[c][1][xi]; }
                }
            }
        }
    }
    if (streaming) __builtin_ia32_sfence();
}

/// wk_pack_body compiled for each way it is called: staged (the whole matrices; a panel's slice
/// when asked, for comparisons) or stored directly (a panel's slice), each for all 64 ξ and for
/// a part of them.
static void VK_NAME(wk_pack)(const float *weight, long cout, long cin, int adjoint, long p0, long p1,
                             long k0, long k1, float *a, long plane, long origin, long panelColumns,
                             long columnOrigin, int gammas, int direct) {
    if (!direct && gammas == 0xF)
        VK_NAME(wk_pack_body)(weight, cout, cin, adjoint, p0, p1, k0, k1, a, plane, origin, panelColumns,
                              columnOrigin, 0xF, 0);
    else if (!direct)
        VK_NAME(wk_pack_body)(weight, cout, cin, adjoint, p0, p1, k0, k1, a, plane, origin, panelColumns,
                              columnOrigin, gammas, 0);
    else if (gammas == 0xF)
        VK_NAME(wk_pack_body)(weight, cout, cin, adjoint, p0, p1, k0, k1, a, plane, origin, panelColumns,
                              columnOrigin, 0xF, 1);
    else
        VK_NAME(wk_pack_body)(weight, cout, cin, adjoint, p0, p1, k0, k1, a, plane, origin, panelColumns,
                              columnOrigin, gammas, 1);
}

void VK_NAME(winograd_weight_transform_packed)(const float *weight, long cout, long cin, int adjoint,
                                               long p0, long p1, long k0, long k1, float *a) {
    const long mr = 2 * VK_LANES, m = adjoint ? cin : cout, k = adjoint ? cout : cin;
    VK_NAME(wk_pack)(weight, cout, cin, adjoint, p0, p1, k0, k1, a, (m + mr - 1) / mr * mr * k, 0, k, 0, 0xF, 0);
}

/// dsan_winograd_panel_plane_floats at this level (VectorKernels.h).
long VK_NAME(winograd_panel_plane_floats)(long columns) { return columns * 2 * VK_LANES + VK_LANES; }

void VK_NAME(winograd_weight_transform_panel)(const float *weight, long cout, long cin, int adjoint,
                                              long p, long k0, long k1, long part, long parts, int staged,
                                              float *a) {
    VK_NAME(wk_pack)(weight, cout, cin, adjoint, p, p + 1, k0, k1, a, VK_NAME(winograd_panel_plane_floats)(k1 - k0),
                     p, k1 - k0, k0, wk_part_gammas(part, parts), !staged);
}

void VK_NAME(winograd_panel_part_matrices)(long part, long parts, long *xi) {
    const int gammas = wk_part_gammas(part, parts);
    long n = 0;
    for (int x = 0; x < 64; x++)
        if (gammas & (1 << (x % 4))) xi[n++] = x;
}

/// Gᵀ⊗³ of the 64 vectors at src + ξ·stride (ξ = (α·4 + β)·4 + γ; the first `lanes` lanes, zero
/// past them) into t[k] (k = (kd·3 + kh)·3 + kw); s[0..<100] is scratch. The first stage reads
/// the vectors where they lie (copied into an array first, they cost the fused weight gradient's
/// finish 64 more stores and loads per group). Shared by the transform below and the fused
/// weight gradient (winograd_dw_body.h), so both take the same operations in the same order.
/// (Always inlined: with `lanes` a constant VK_LANES the loads are whole vectors.)
static inline __attribute__((always_inline)) void wk_weight_gradient_27(const float *src, long stride, long lanes,
                                                                         wk_f s[100], float t[27][VK_LANES]) {
    // Along d (α → kd): s[(kd·4 + β)·4 + γ].
    for (int bc = 0; bc < 16; bc++)
        wk_gt(wk_load_n(src + bc * stride, lanes), wk_load_n(src + (16 + bc) * stride, lanes),
              wk_load_n(src + (32 + bc) * stride, lanes), wk_load_n(src + (48 + bc) * stride, lanes),
              &s[bc], &s[16 + bc], &s[32 + bc]);
    // Along h (β → kh): s[64 + (kd·3 + kh)·4 + γ].
    for (int kd = 0; kd < 3; kd++)
        for (int cc = 0; cc < 4; cc++) {
            int i = kd * 16 + cc, o = 64 + kd * 12 + cc;
            wk_gt(s[i], s[i + 4], s[i + 8], s[i + 12], &s[o], &s[o + 4], &s[o + 8]);
        }
    // Along w (γ → kw).
    for (int k9 = 0; k9 < 9; k9++) {
        int i = 64 + k9 * 4;
        wk_f q0, q1, q2;
        wk_gt(s[i], s[i + 1], s[i + 2], s[i + 3], &q0, &q1, &q2);
        wk_store(t[k9 * 3], q0); wk_store(t[k9 * 3 + 1], q1); wk_store(t[k9 * 3 + 2], q2);
    }
}

void VK_NAME(winograd_weight_gradient_transform)(const float *du, long cout, long cin, long co0, long co1,
                                                 float *dWeight, int overwrite) {
    const long xs = cout * cin;
    float t[27][VK_LANES];
    wk_f s[100];
    for (long co = co0; co < co1; co++) {
        for (long ci0 = 0; ci0 < cin; ci0 += VK_LANES) {
            const long lanes = wk_min(VK_LANES, cin - ci0);
            wk_weight_gradient_27(du + co * cin + ci0, xs, lanes, s, t);   // transposed back into dWeight [Cout, Cin, 27]
            float *dst = dWeight + (co * cin + ci0) * 27;
            if (overwrite) {
                for (long l = 0; l < lanes; l++)
                    for (int k = 0; k < 27; k++) dst[l * 27 + k] = t[k][l];
            } else {
                for (long l = 0; l < lanes; l++)
                    for (int k = 0; k < 27; k++) dst[l * 27 + k] += t[k][l];
            }
        }
    }
}

#undef WK_RUN_FIELDS
#undef WK_LOAD2
#undef WK_INTERLEAVE
#undef WK_ROW_PAD
