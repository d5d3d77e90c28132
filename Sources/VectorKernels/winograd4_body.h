// The Winograd F(4×4×4, 3×3×3) transforms, written once (Sources/NN/WinogradF4.swift has the maths,
// the layouts of V, M and U, and the block/tile numbering). Each kernels_<level>.c includes this
// file after winograd_body.h, whose helpers it uses (wk_f, wk_load, wk_load_n, wk_store_n,
// wk_copy_n, wk_min), with the same VK_LANES and VK_NAME.
//
// Vectorisation: the input and output transforms take VK_LANES consecutive tiles along w at once
// (the 6 input columns of L tiles are lanes j, j + 4, … of two 4L-float loads from a zero-padded
// copy of the row); the weight transform takes VK_LANES input channels at once. Lanes never mix and
// every value goes through the w4_* formulas below, the same IEEE operations in the same order as
// the scalar Swift reference (Tests/NNTests/WinogradF4ReferenceTransforms.swift), FMA contraction
// off, so each level gives the same bits. A run's last, partial chunk stores only its own lanes.
#pragma clang fp contract(off)

#include <string.h>
#include "VectorKernels.h"

typedef float w4_f2 __attribute__((ext_vector_type(2 * VK_LANES)));
typedef float w4_f4 __attribute__((ext_vector_type(4 * VK_LANES)));

#if VK_LANES == 4
#define W4_STRIDE4(j) (j) + 0, (j) + 4, (j) + 8, (j) + 12
#define W4_ZIP1 0, 4, 1, 5, 2, 6, 3, 7
#define W4_ZIP2 0, 8, 1, 9, 2, 10, 3, 11, 4, 12, 5, 13, 6, 14, 7, 15
#elif VK_LANES == 8
#define W4_STRIDE4(j) (j) + 0, (j) + 4, (j) + 8, (j) + 12, (j) + 16, (j) + 20, (j) + 24, (j) + 28
#define W4_ZIP1 0, 8, 1, 9, 2, 10, 3, 11, 4, 12, 5, 13, 6, 14, 7, 15
#define W4_ZIP2 0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23, 8, 24, 9, 25, 10, 26, 11, 27, \
    12, 28, 13, 29, 14, 30, 15, 31
#elif VK_LANES == 16
#define W4_STRIDE4(j) (j) + 0, (j) + 4, (j) + 8, (j) + 12, (j) + 16, (j) + 20, (j) + 24, (j) + 28,   \
    (j) + 32, (j) + 36, (j) + 40, (j) + 44, (j) + 48, (j) + 52, (j) + 56, (j) + 60
#define W4_ZIP1 0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23, 8, 24, 9, 25, 10, 26, 11, 27, \
    12, 28, 13, 29, 14, 30, 15, 31
#define W4_ZIP2 0, 32, 1, 33, 2, 34, 3, 35, 4, 36, 5, 37, 6, 38, 7, 39, 8, 40, 9, 41, 10, 42, 11, 43, \
    12, 44, 13, 45, 14, 46, 15, 47, 16, 48, 17, 49, 18, 50, 19, 51, 20, 52, 21, 53, 22, 54, 23, 55, \
    24, 56, 25, 57, 26, 58, 27, 59, 28, 60, 29, 61, 30, 62, 31, 63
#else
#error "VK_LANES must be 4, 8 or 16"
#endif

/// Row copies: index 0 is column −1, columns 0..<w at 1...w, zeros after. A chunk of L tiles at
/// tile column tw reads indices 4·tw … 4·tw + 4L + 3 ≤ w + 4L + 2, so 4·16 + 8 floats of padding
/// cover the widest level (dispatch.c's dsan_winograd4_scratch_floats uses the same 72).
#define W4_ROW_PAD 72

// The 1-D matrices of F(4, 3) (points 0, ±1, ±2, ∞; Sources/NN/WinogradF4.swift).
/// Bᵀ·(d0 … d5), into o[0], o[st], …, o[5·st].
static inline void w4_bt(wk_f d0, wk_f d1, wk_f d2, wk_f d3, wk_f d4, wk_f d5, wk_f *o, int st) {
    wk_f e = d4 - d2, f = d3 - d1;
    o[0] = 4.0f * (d0 - d2) + e;
    o[st] = (d3 + d4) - 4.0f * (d1 + d2);
    o[2 * st] = (d4 - d3) + 4.0f * (d1 - d2);
    o[3 * st] = e + 2.0f * f;
    o[4 * st] = e - 2.0f * f;
    o[5 * st] = 4.0f * (d1 - d3) + (d5 - d3);
}
/// Aᵀ·(m0 … m5), into o[0], o[st], o[2·st], o[3·st].
static inline void w4_at(wk_f m0, wk_f m1, wk_f m2, wk_f m3, wk_f m4, wk_f m5, wk_f *o, int st) {
    wk_f a = m1 + m2, b = m1 - m2, c = m3 + m4, e = m3 - m4;
    o[0] = (m0 + a) + c;
    o[st] = b + 2.0f * e;
    o[2 * st] = a + 4.0f * c;
    o[3 * st] = (b + 8.0f * e) + m5;
}
/// G·(g0, g1, g2), into o[0], o[st], …, o[5·st].
static inline void w4_g(wk_f g0, wk_f g1, wk_f g2, wk_f *o, int st) {
    const float sixth = (float)(1.0 / 6.0), twelfth = (float)(1.0 / 12.0), twentyFourth = (float)(1.0 / 24.0);
    wk_f p = g0 + g2, q = twentyFourth * g0 + sixth * g2, r = twelfth * g1;
    o[0] = 0.25f * g0;
    o[st] = (-sixth) * (p + g1);
    o[2 * st] = (-sixth) * (p - g1);
    o[3 * st] = q + r;
    o[4 * st] = q - r;
    o[5 * st] = g2;
}

void VK_NAME(winograd4_input_transform)(const dsan_winograd_geometry *g, const float *x, long channels,
                                        long c0, long c1, long t0, long t1, float *v, float *scratch) {
    const long d = g->d, h = g->h, w = g->w, rl = w + W4_ROW_PAD, xs = dsan_winograd_plane_floats(channels, g->ld);
    float *zeroRow = scratch + 36 * rl;
    const float *r[36];
    wk_f s[216];
    // Only columns 1...w of a row copy are ever written, so the padding stays zero.
    memset(scratch, 0, (size_t)(37 * rl) * sizeof(float));
    for (long c = c0; c < c1; c++) {
        wk_run run;
        for (long t = t0; t < t1; t += run.count) {
            run = wk_tile_run_at(g, 4, t0, t1, t);
            const long ni = run.ni, td = run.td, th = run.th, tw0 = run.tw0, count = run.count;
            wk_input_rows(x + (ni * channels + c) * d * h * w, d, h, w, 4 * td - 1, 4 * th - 1, 6, scratch, rl,
                          zeroRow, r);
            for (long k = 0; k < count; k += VK_LANES) {
                const long tw = tw0 + k, lanes = wk_min(VK_LANES, count - k);
                // Along w: s[(a·6 + b)·6 + γ].
                for (int ab = 0; ab < 36; ab++) {
                    w4_f4 lo, hi;
                    memcpy(&lo, r[ab] + 4 * tw, sizeof lo);
                    memcpy(&hi, r[ab] + 4 * tw + 4, sizeof hi);
                    w4_bt(__builtin_shufflevector(lo, lo, W4_STRIDE4(0)), __builtin_shufflevector(lo, lo, W4_STRIDE4(1)),
                          __builtin_shufflevector(lo, lo, W4_STRIDE4(2)), __builtin_shufflevector(lo, lo, W4_STRIDE4(3)),
                          __builtin_shufflevector(hi, hi, W4_STRIDE4(0)), __builtin_shufflevector(hi, hi, W4_STRIDE4(1)),
                          &s[ab * 6], 1);
                }
                // Along h (index b), in place.
                for (int aa = 0; aa < 6; aa++)
                    for (int cc = 0; cc < 6; cc++) {
                        int i = aa * 36 + cc;
                        w4_bt(s[i], s[i + 6], s[i + 12], s[i + 18], s[i + 24], s[i + 30], &s[i], 6);
                    }
                // Along d (index a), in place, then stored to V.
                for (int bc = 0; bc < 36; bc++)
                    w4_bt(s[bc], s[bc + 36], s[bc + 72], s[bc + 108], s[bc + 144], s[bc + 180], &s[bc], 36);
                float *out = v + c * g->ld + run.column + k;
                for (int xi = 0; xi < 216; xi++) wk_store_n(out + xi * xs, s[xi], lanes);
            }
        }
    }
}

void VK_NAME(winograd4_output_transform)(const dsan_winograd_geometry *g, const float *m, long channels,
                                         long c0, long c1, long t0, long t1, float *y) {
    const long d = g->d, h = g->h, w = g->w, xs = dsan_winograd_plane_floats(channels, g->ld);
    wk_f s1[144], s2[96];
    for (long c = c0; c < c1; c++) {
        wk_run run;
        for (long t = t0; t < t1; t += run.count) {
            run = wk_tile_run_at(g, 4, t0, t1, t);
            const long ni = run.ni, td = run.td, th = run.th, tw0 = run.tw0, count = run.count;
            for (long k = 0; k < count; k += VK_LANES) {
                const long lanes = wk_min(VK_LANES, count - k);
                const float *src = m + c * g->ld + run.column + k;
                // Along d (index α): 216 → 144, s1[ia·36 + β·6 + γ].
                for (int bc = 0; bc < 36; bc++)
                    w4_at(wk_load_n(src + bc * xs, lanes), wk_load_n(src + (36 + bc) * xs, lanes),
                          wk_load_n(src + (72 + bc) * xs, lanes), wk_load_n(src + (108 + bc) * xs, lanes),
                          wk_load_n(src + (144 + bc) * xs, lanes), wk_load_n(src + (180 + bc) * xs, lanes),
                          &s1[bc], 36);
                // Along h (index β): 144 → 96, s2[(ia·4 + ib)·6 + γ].
                for (int ia = 0; ia < 4; ia++)
                    for (int cc = 0; cc < 6; cc++) {
                        int i = ia * 36 + cc;
                        w4_at(s1[i], s1[i + 6], s1[i + 12], s1[i + 18], s1[i + 24], s1[i + 30], &s2[ia * 24 + cc], 6);
                    }
                // Along w: 96 → 64, interleaved into 4L consecutive outputs per (od, oh) row.
                const long tw = tw0 + k;
                const long valid = wk_min(4 * lanes, w - 4 * tw);
                for (int iab = 0; iab < 16; iab++) {
                    long od = 4 * td + iab / 4, oh = 4 * th + iab % 4;
                    if (od >= d || oh >= h) continue;
                    const wk_f *i = &s2[iab * 6];
                    wk_f q[4];
                    w4_at(i[0], i[1], i[2], i[3], i[4], i[5], q, 1);
                    w4_f2 a = __builtin_shufflevector(q[0], q[2], W4_ZIP1);
                    w4_f2 b = __builtin_shufflevector(q[1], q[3], W4_ZIP1);
                    w4_f4 row = __builtin_shufflevector(a, b, W4_ZIP2);
                    float *dst = y + (((ni * channels + c) * d + od) * h + oh) * w + 4 * tw;
                    if (valid == 4 * VK_LANES) {
                        memcpy(dst, &row, sizeof row);
                    } else {
                        float tmp[4 * VK_LANES];
                        memcpy(tmp, &row, sizeof row);
                        for (long e = 0; e < valid; e++) dst[e] = tmp[e];
                    }
                }
            }
        }
    }
}

void VK_NAME(winograd4_weight_transform)(const float *weight, long cout, long cin, long co0, long co1,
                                         int flip, float *u) {
    const long xs = cout * cin;
    wk_f t[27];
    wk_f s1[54], s2[108], s3[216];
    for (long co = co0; co < co1; co++) {
        for (long ci0 = 0; ci0 < cin; ci0 += VK_LANES) {
            const long lanes = wk_min(VK_LANES, cin - ci0);
            const float *src = weight + (co * cin + ci0) * 27;
            // Transposed (and, for flip, reversed along all three axes): t[k] lane l = g[co, ci0 + l][k'].
            wk_gather27_n(src, 27, lanes, t);
            if (flip)
                for (int k = 0; k < 13; k++) { wk_f swap = t[k]; t[k] = t[26 - k]; t[26 - k] = swap; }
            // Along w: s1[(kd·3 + kh)·6 + γ].
            for (int k9 = 0; k9 < 9; k9++)
                w4_g(t[k9 * 3], t[k9 * 3 + 1], t[k9 * 3 + 2], &s1[k9 * 6], 1);
            // Along h: s2[(kd·6 + β)·6 + γ].
            for (int kd = 0; kd < 3; kd++)
                for (int cc = 0; cc < 6; cc++) {
                    int i = kd * 18 + cc;
                    w4_g(s1[i], s1[i + 6], s1[i + 12], &s2[kd * 36 + cc], 6);
                }
            // Along d: s3[α·36 + β·6 + γ], stored to U.
            for (int bc = 0; bc < 36; bc++) w4_g(s2[bc], s2[36 + bc], s2[72 + bc], &s3[bc], 36);
            float *out = u + co * cin + ci0;
            for (int xi = 0; xi < 216; xi++) wk_store_n(out + xi * xs, s3[xi], lanes);
        }
    }
}

#undef W4_ROW_PAD
#undef W4_STRIDE4
#undef W4_ZIP1
#undef W4_ZIP2
