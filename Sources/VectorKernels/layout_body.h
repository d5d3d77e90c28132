// The layout kernels (vol2col, col2vol, max pooling), written once. Each kernels_<level>.c defines
// VK_LANES and VK_NAME(name) and applies its target attribute with `#pragma clang attribute`, as
// kernels_<level>.c do, then includes this file.
//
// Same bits as the scalar loops: vol2col copies and writes +0; col2vol adds each term of a voxel
// in the same order as the scalar loop (a vector lane is one voxel, and lanes never alias because
// a row's stride is ≥ 1); max pooling compares each lane's window in the same (kd, kh, kw) order
// with the same `v > best || v is NaN` rule. Strides 1 and 2 take the vector paths (stride 2 reads
// 2·VK_LANES floats and keeps the even lanes; col2vol's stride-2 adds take 4 elements at a time,
// see lk_scatter_add); other strides and the window's borders run the scalar loops.
#pragma clang fp contract(off)

#include <stdint.h>
#include <string.h>
#include "VectorKernels.h"

typedef float lk_f __attribute__((ext_vector_type(VK_LANES)));
typedef int32_t lk_i __attribute__((ext_vector_type(VK_LANES)));
typedef float lk_f2 __attribute__((ext_vector_type(2 * VK_LANES)));

#if VK_LANES == 4
#define LK_EVEN(v) __builtin_shufflevector(v, v, 0, 2, 4, 6)
#elif VK_LANES == 8
#define LK_EVEN(v) __builtin_shufflevector(v, v, 0, 2, 4, 6, 8, 10, 12, 14)
#elif VK_LANES == 16
#define LK_EVEN(v) __builtin_shufflevector(v, v, 0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30)
#else
#error "VK_LANES must be 4, 8 or 16"
#endif
#if VK_LANES == 4
#define LK_ODD(v) __builtin_shufflevector(v, v, 1, 3, 5, 7)
#elif VK_LANES == 8
#define LK_ODD(v) __builtin_shufflevector(v, v, 1, 3, 5, 7, 9, 11, 13, 15)
#else
#define LK_ODD(v) __builtin_shufflevector(v, v, 1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31)
#endif

static inline lk_f lk_load(const float *p) { lk_f v; memcpy(&v, p, sizeof v); return v; }
static inline lk_f2 lk_load2(const float *p) { lk_f2 v; memcpy(&v, p, sizeof v); return v; }
static inline void lk_store(float *p, lk_f v) { memcpy(p, &v, sizeof v); }
static inline void lk_store2(float *p, lk_f2 v) { memcpy(p, &v, sizeof v); }
static inline void lk_store_i(int *p, lk_i v) { memcpy(p, &v, sizeof v); }

static inline ptrdiff_t lk_floor_div(ptrdiff_t a, ptrdiff_t b) {
    ptrdiff_t q = a / b;
    return (a % b != 0 && a < 0) ? q - 1 : q;
}
static inline ptrdiff_t lk_ceil_div(ptrdiff_t a, ptrdiff_t b) { return -lk_floor_div(-a, b); }
static inline ptrdiff_t lk_min(ptrdiff_t a, ptrdiff_t b) { return a < b ? a : b; }
static inline ptrdiff_t lk_max(ptrdiff_t a, ptrdiff_t b) { return a > b ? a : b; }

/// dst[0..<n] = +0.
static inline void lk_zero(float *dst, ptrdiff_t n) {
    ptrdiff_t j = 0;
    for (; j + VK_LANES <= n; j += VK_LANES) lk_store(dst + j, (lk_f)0.0f);
    for (; j < n; j++) dst[j] = 0.0f;
}

/// dst[j] = src[j·stride] for j in 0..<n. The stride-2 vector reads src[2j ..< 2j + 2·VK_LANES],
/// so it runs only while j + VK_LANES < n: inside the elements the row addresses (last 2n − 2).
/// The last VK_LANES elements (when n > VK_LANES) are then one vector that reads one float
/// earlier, src[2(n − VK_LANES) − 1 ..< 2n − 1], and keeps the odd lanes; it rewrites the
/// elements it shares with the loop's last vector with the same values.
static inline void lk_gather(float *dst, const float *src, ptrdiff_t n, ptrdiff_t stride) {
    ptrdiff_t j = 0;
    if (stride == 1) {
        for (; j + VK_LANES <= n; j += VK_LANES) lk_store(dst + j, lk_load(src + j));
    } else if (stride == 2) {
        for (; j + VK_LANES < n; j += VK_LANES) {
            lk_f2 v = lk_load2(src + 2 * j);
            lk_store(dst + j, LK_EVEN(v));
        }
        if (j < n && n > VK_LANES) {
            const ptrdiff_t last = n - VK_LANES;
            lk_f2 v = lk_load2(src + 2 * last - 1);
            lk_store(dst + last, LK_ODD(v));
            j = n;
        }
    }
    for (; j < n; j++) dst[j] = src[j * stride];
}

typedef float lk_f4 __attribute__((ext_vector_type(4)));
typedef float lk_f8 __attribute__((ext_vector_type(8)));

/// dst[j·stride] += src[j] for j in 0..<n (the odd lanes of a stride-2 vector are stored back
/// unchanged; they lie inside the row the caller owns). Stride 2 works on 4 elements (8 floats)
/// at a time at every level: de-interleaving and re-interleaving wider vectors takes shuffles
/// across 128-bit lanes, which made it slower than this on AVX2.
static inline void lk_scatter_add(float *dst, const float *src, ptrdiff_t n, ptrdiff_t stride) {
    ptrdiff_t j = 0;
    if (stride == 1) {
        for (; j + VK_LANES <= n; j += VK_LANES) lk_store(dst + j, lk_load(dst + j) + lk_load(src + j));
    } else if (stride == 2) {
        for (; j + 4 < n; j += 4) {
            lk_f8 a;
            lk_f4 b;
            memcpy(&a, dst + 2 * j, sizeof a);
            memcpy(&b, src + j, sizeof b);
            lk_f4 even = __builtin_shufflevector(a, a, 0, 2, 4, 6);
            const lk_f4 odd = __builtin_shufflevector(a, a, 1, 3, 5, 7);
            even = even + b;
            lk_f8 out = __builtin_shufflevector(even, odd, 0, 4, 1, 5, 2, 6, 3, 7);
            memcpy(dst + 2 * j, &out, sizeof out);
        }
    }
    for (; j < n; j++) dst[j * stride] += src[j];
}

/// The output columns ow whose input column ow·sw − pw + kw lies inside [0, W), as [lo, hi).
static inline void lk_valid_columns(const dsan_vk_window *g, ptrdiff_t kw, ptrdiff_t *lo, ptrdiff_t *hi) {
    ptrdiff_t a = lk_max(0, lk_ceil_div(g->pw - kw, g->sw));
    ptrdiff_t b = lk_min(g->ow, lk_floor_div(g->w - 1 + g->pw - kw, g->sw) + 1);
    *lo = a;
    *hi = lk_max(a, b);
}

void VK_NAME(vol2col_rows)(const dsan_vk_window *g, const float *x, ptrdiff_t r0,
                           ptrdiff_t rowBegin, ptrdiff_t rowEnd, ptrdiff_t p0, ptrdiff_t p1, float *cols) {
    const ptrdiff_t T = p1 - p0;
    const ptrdiff_t kd = g->kd, kh = g->kh, kw = g->kw, d = g->d, h = g->h, w = g->w;
    const ptrdiff_t oh = g->oh, ow = g->ow, sd = g->sd, sh = g->sh, sw = g->sw;
    // The output row (od, oh) of p0 and the column it starts at; stepped, not divided, below.
    const ptrdiff_t firstRow = p0 / ow, firstCol = p0 - firstRow * ow;
    const ptrdiff_t firstOd = firstRow / oh, firstOh = firstRow - firstOd * oh;
    for (ptrdiff_t rr = rowBegin; rr < rowEnd; rr++) {
        const ptrdiff_t r = r0 + rr;
        const ptrdiff_t kwI = r % kw, khI = (r / kw) % kh, kdI = (r / (kw * kh)) % kd, ci = r / (kw * kh * kd);
        const float *xc = x + ci * d * h * w;
        ptrdiff_t lo, hi;
        lk_valid_columns(g, kwI, &lo, &hi);
        const ptrdiff_t shift = kwI - g->pw;                  // iw = ow·sw + shift
        float *dst = cols + rr * T;
        ptrdiff_t left = T, ow0 = firstCol, odI = firstOd, ohI = firstOh;
        while (left > 0) {
            const ptrdiff_t count = lk_min(ow - ow0, left), ow1 = ow0 + count;
            const ptrdiff_t id = odI * sd - g->pd + kdI, ih = ohI * sh - g->ph + khI;
            if (id < 0 || id >= d || ih < 0 || ih >= h) {
                lk_zero(dst, count);
            } else {
                const float *src = xc + (id * h + ih) * w;
                const ptrdiff_t a = lk_min(lk_max(lo, ow0), ow1), b = lk_max(lk_min(hi, ow1), a);
                lk_zero(dst, a - ow0);
                lk_gather(dst + (a - ow0), src + (a * sw + shift), b - a, sw);
                lk_zero(dst + (b - ow0), ow1 - b);
            }
            dst += count;
            left -= count;
            ow0 = 0;
            ohI += 1;
            if (ohI == oh) { ohI = 0; odI += 1; }
        }
    }
}

/// A run of n ≤ kw floats of one input row: dst[j] = row[iw0 + j] for j in lo..<hi (the columns
/// inside the row), +0 elsewhere; no address outside the row is formed. A whole run of 4–8 floats
/// (the stem's kw = 7 inside the volume) is two overlapping 4-float copies.
static inline void lk_row_run(float *dst, const float *row, ptrdiff_t iw0, ptrdiff_t n, ptrdiff_t lo, ptrdiff_t hi) {
    if (lo == 0 && hi == n && n >= 4 && n <= 8) {
        lk_f4 a, b;
        memcpy(&a, row + iw0, sizeof a);
        memcpy(&b, row + iw0 + n - 4, sizeof b);
        memcpy(dst, &a, sizeof a);
        memcpy(dst + n - 4, &b, sizeof b);
        return;
    }
    ptrdiff_t j = 0;
    for (; j < lo; j++) dst[j] = 0.0f;
    for (; j < hi; j++) dst[j] = row[iw0 + j];
    for (; j < n; j++) dst[j] = 0.0f;
}

/// Most positions of a window (the stem's: 81 % at 64×128×128) lie wholly inside the volume
/// with at least 8 − kw floats to spare at the end of each row they read. Those copy each run of
/// kw ≤ 8 floats as one 8-float load and store, the store's extra floats overwritten by the runs
/// after it (the runs within 8 floats of the tile's end write kw floats only, so nothing past
/// `out` is touched), with the runs' offsets from the window's corner taken from a table. Runs
/// per position at most this many for the table (more: the general loop).
#define LK_MAX_RUNS 1024

void VK_NAME(vol2col_transposed)(const dsan_vk_window *g, const float *x, ptrdiff_t c0, ptrdiff_t c1,
                                 ptrdiff_t p0, ptrdiff_t p1, float *out) {
    const ptrdiff_t kd = g->kd, kh = g->kh, kw = g->kw, d = g->d, h = g->h, w = g->w;
    const ptrdiff_t oh = g->oh, ow = g->ow;
    const ptrdiff_t runs = (c1 - c0) * kd * kh, rows = runs * kw;
    const int wide = kw <= 8 && runs >= 1 && runs <= LK_MAX_RUNS;
    ptrdiff_t offsets[wide ? runs : 1];
    if (wide) {
        ptrdiff_t j = 0;
        for (ptrdiff_t c = c0; c < c1; c++)
            for (ptrdiff_t kdI = 0; kdI < kd; kdI++)
                for (ptrdiff_t khI = 0; khI < kh; khI++) offsets[j++] = ((c * d + kdI) * h + khI) * w;
    }
    // The output position (od, oh, ow) of p0; stepped, not divided, below.
    const ptrdiff_t firstRow = p0 / ow;
    ptrdiff_t owI = p0 - firstRow * ow, odI = firstRow / oh, ohI = firstRow - odI * oh;
    for (ptrdiff_t p = p0; p < p1; p++) {
        float *dst = out + (p - p0) * rows;
        const ptrdiff_t id0 = odI * g->sd - g->pd, ih0 = ohI * g->sh - g->ph;
        const ptrdiff_t iw0 = owI * g->sw - g->pw;   // the input column of kw = 0
        if (wide && id0 >= 0 && id0 + kd <= d && ih0 >= 0 && ih0 + kh <= h && iw0 >= 0 && iw0 + 8 <= w) {
            const float *corner = x + (id0 * h + ih0) * w + iw0;
            // Runs written 8 floats wide: those that end at least 8 floats before the tile's end.
            const ptrdiff_t room = rows * (p1 - p), wideRuns = room < 8 ? 0 : lk_min(runs, (room - 8) / kw + 1);
            ptrdiff_t j = 0;
            for (; j < wideRuns; j++, dst += kw) {
                lk_f8 v;
                memcpy(&v, corner + offsets[j], sizeof v);
                memcpy(dst, &v, sizeof v);
            }
            for (; j < runs; j++, dst += kw) lk_row_run(dst, corner + offsets[j], 0, kw, 0, kw);
        } else {
            const ptrdiff_t lo = lk_min(kw, lk_max(0, -iw0)), hi = lk_max(lo, lk_min(kw, w - iw0));
            for (ptrdiff_t c = c0; c < c1; c++) {
                const float *xc = x + c * d * h * w;
                for (ptrdiff_t kdI = 0; kdI < kd; kdI++) {
                    const ptrdiff_t id = id0 + kdI;
                    for (ptrdiff_t khI = 0; khI < kh; khI++, dst += kw) {
                        const ptrdiff_t ih = ih0 + khI;
                        if (id < 0 || id >= d || ih < 0 || ih >= h) {
                            for (ptrdiff_t j = 0; j < kw; j++) dst[j] = 0.0f;
                        } else {
                            lk_row_run(dst, xc + (id * h + ih) * w, iw0, kw, lo, hi);
                        }
                    }
                }
            }
        }
        owI += 1;
        if (owI == ow) {
            owI = 0;
            ohI += 1;
            if (ohI == oh) { ohI = 0; odI += 1; }
        }
    }
}

void VK_NAME(col2vol_planes)(const dsan_vk_window *g, const float *cols, ptrdiff_t c0,
                             ptrdiff_t p0, ptrdiff_t p1, ptrdiff_t itemBegin, ptrdiff_t itemEnd, float *dx) {
    const ptrdiff_t T = p1 - p0;
    const ptrdiff_t kd = g->kd, kh = g->kh, kw = g->kw, d = g->d, h = g->h, w = g->w;
    const ptrdiff_t od = g->od, oh = g->oh, ow = g->ow, sd = g->sd, sh = g->sh, sw = g->sw;
    for (ptrdiff_t item = itemBegin; item < itemEnd; item++) {
        const ptrdiff_t ci = c0 + item / d, id = item % d;
        float *dxPlane = dx + (ci * d + id) * h * w;
        for (ptrdiff_t kdI = 0; kdI < kd; kdI++) {
            const ptrdiff_t t = id + g->pd - kdI;                 // = od·sd
            if (t < 0 || t % sd != 0) continue;
            const ptrdiff_t odI = t / sd;
            if (odI >= od) continue;
            // The part of this tile in output depth slice odI, as (first row, first column).
            const ptrdiff_t pa = lk_max(p0, odI * oh * ow), pb = lk_min(p1, (odI + 1) * oh * ow);
            if (pa >= pb) continue;
            const ptrdiff_t firstRow = pa / ow, firstCol = pa - firstRow * ow;
            for (ptrdiff_t khI = 0; khI < kh; khI++) {
                for (ptrdiff_t kwI = 0; kwI < kw; kwI++) {
                    const ptrdiff_t r = (((ci - c0) * kd + kdI) * kh + khI) * kw + kwI;   // row in this block
                    const float *src = cols + r * T + (pa - p0);
                    ptrdiff_t lo, hi;
                    lk_valid_columns(g, kwI, &lo, &hi);
                    const ptrdiff_t shift = kwI - g->pw;
                    ptrdiff_t left = pb - pa, ow0 = firstCol, ohI = firstRow - odI * oh;
                    while (left > 0) {
                        const ptrdiff_t count = lk_min(ow - ow0, left), ow1 = ow0 + count;
                        const ptrdiff_t ih = ohI * sh - g->ph + khI;
                        if (ih >= 0 && ih < h) {
                            const ptrdiff_t a = lk_min(lk_max(lo, ow0), ow1), b = lk_max(lk_min(hi, ow1), a);
                            lk_scatter_add(dxPlane + ih * w + (a * sw + shift), src + (a - ow0), b - a, sw);
                        }
                        src += count;
                        left -= count;
                        ow0 = 0;
                        ohI += 1;
                    }
                }
            }
        }
    }
}

/// One output of max pooling, the scalar rule: window [da, db) × [ha, hb) × [wa, wb).
static inline void lk_pool_one(const float *xc, ptrdiff_t H, ptrdiff_t W, ptrdiff_t da, ptrdiff_t db,
                               ptrdiff_t ha, ptrdiff_t hb, ptrdiff_t wa, ptrdiff_t wb, float *y, int *at) {
    float best = -__builtin_inff();
    ptrdiff_t where = (da * H + ha) * W + wa;
    for (ptrdiff_t id = da; id < db; id++)
        for (ptrdiff_t ih = ha; ih < hb; ih++) {
            const ptrdiff_t row = (id * H + ih) * W;
            for (ptrdiff_t iw = wa; iw < wb; iw++) {
                const float v = xc[row + iw];
                if (v > best || v != v) { best = v; where = row + iw; }
            }
        }
    *y = best;
    *at = (int)where;
}

/// One vector of VK_LANES output columns whose windows lie wholly inside the row, the first
/// starting at input column w0 (sw = 1 or 2): the first maximum in scan order, a NaN winning.
static inline void lk_pool_vector(const float *xc, ptrdiff_t H, ptrdiff_t W, ptrdiff_t da, ptrdiff_t db,
                                  ptrdiff_t ha, ptrdiff_t hb, ptrdiff_t w0, ptrdiff_t kw, ptrdiff_t sw,
                                  lk_i lane, float *y, int *at) {
    lk_f best = (lk_f)(-__builtin_inff());
    lk_i where = (lk_i)(int32_t)((da * H + ha) * W + w0) + lane;
    for (ptrdiff_t id = da; id < db; id++)
        for (ptrdiff_t ih = ha; ih < hb; ih++) {
            const ptrdiff_t row = (id * H + ih) * W;
            for (ptrdiff_t k = 0; k < kw; k++) {
                const ptrdiff_t base = row + w0 + k;
                lk_f v;
                if (sw == 1) v = lk_load(xc + base);
                else { lk_f2 v2 = lk_load2(xc + base); v = LK_EVEN(v2); }
                const lk_i take = (v > best) | (v != v);
                best = (lk_f)(((lk_i)v & take) | ((lk_i)best & ~take));
                const lk_i idx = (lk_i)(int32_t)base + lane;
                where = (idx & take) | (where & ~take);
            }
        }
    lk_store(y, best);
    lk_store_i(at, where);
}

void VK_NAME(max_pool_forward)(const dsan_vk_window *g, const float *x, float *y, int *indices,
                               ptrdiff_t planeBegin, ptrdiff_t planeEnd) {
    const ptrdiff_t D = g->d, H = g->h, W = g->w, OD = g->od, OH = g->oh, OW = g->ow;
    const ptrdiff_t kd = g->kd, kh = g->kh, kw = g->kw, sd = g->sd, sh = g->sh, sw = g->sw;
    const ptrdiff_t pd = g->pd, ph = g->ph, pw = g->pw;
    // Output columns whose window lies wholly inside [0, W): ow·sw − pw ≥ 0 and ow·sw − pw + kw ≤ W.
    // Of those, a vector of VK_LANES columns starting at ow reads x up to
    // ow·sw − pw + (kw − 1) + VK_LANES·sw − 1 (stride 2 reads one float past its last column),
    // which must stay inside the row: ow ≤ vecHi.
    const ptrdiff_t inLo = lk_min(OW, lk_ceil_div(pw, sw));
    const ptrdiff_t inHi = lk_max(inLo, lk_min(OW, lk_floor_div(W - kw + pw, sw) + 1));
    const int vectorised = sw == 1 || sw == 2;
    const ptrdiff_t vecHi = lk_floor_div(W - 1 + pw - (kw - 1) - (VK_LANES * sw - 1), sw);   // last start
    lk_i lane;
    for (int l = 0; l < VK_LANES; l++) lane[l] = l * (int32_t)sw;
    for (ptrdiff_t plane = planeBegin; plane < planeEnd; plane++) {
        const float *xc = x + plane * D * H * W;
        float *yc = y + plane * OD * OH * OW;
        int *ic = indices + plane * OD * OH * OW;
        for (ptrdiff_t od = 0; od < OD; od++) {
            const ptrdiff_t d0 = od * sd - pd, da = lk_max(d0, 0), db = lk_min(d0 + kd, D);
            for (ptrdiff_t oh = 0; oh < OH; oh++) {
                const ptrdiff_t h0 = oh * sh - ph, ha = lk_max(h0, 0), hb = lk_min(h0 + kh, H);
                float *yr = yc + (od * OH + oh) * OW;
                int *ir = ic + (od * OH + oh) * OW;
                ptrdiff_t o = 0;
                for (; o < inLo; o++) {
                    const ptrdiff_t w0 = o * sw - pw;
                    lk_pool_one(xc, H, W, da, db, ha, hb, lk_max(w0, 0), lk_min(w0 + kw, W), yr + o, ir + o);
                }
                if (vectorised) {
                    for (; o + VK_LANES <= inHi && o <= vecHi; o += VK_LANES)
                        lk_pool_vector(xc, H, W, da, db, ha, hb, o * sw - pw, kw, sw, lane, yr + o, ir + o);
                    // The columns the vectors left before the row's edge (up to VK_LANES − 1: 7 of
                    // the stem pool's 32 per row at AVX2, each 27 branchy scalar compares, which made
                    // the scalar quarter of the row cost more than the vectors): one more vector,
                    // ending as late as it may, over columns already written. A column's maximum
                    // and index do not depend on which vector computes it: the same bits.
                    const ptrdiff_t last = lk_min(vecHi, inHi - VK_LANES);
                    if (o < inHi && last >= inLo && last + VK_LANES > o) {
                        lk_pool_vector(xc, H, W, da, db, ha, hb, last * sw - pw, kw, sw, lane, yr + last, ir + last);
                        o = last + VK_LANES;
                    }
                }
                for (; o < OW; o++) {
                    const ptrdiff_t w0 = o * sw - pw;
                    lk_pool_one(xc, H, W, da, db, ha, hb, lk_max(w0, 0), lk_min(w0 + kw, W), yr + o, ir + o);
                }
            }
        }
    }
}
