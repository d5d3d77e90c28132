// The Winograd F(2×2×2, 3×3×3) weight gradient as one fused kernel: the 64 products
// dU_ξ[Cout, Cin] = Σ_t dM_ξ[Cout, t]·V_ξ[Cin, t] of a block of tiles and the transform
// dWeight += Gᵀ⊗³ dU, with dU never leaving the cache. Compiled per level after winograd_body.h
// (whose wk_ helpers it uses) and packed_gemm_body.h (whose micro-kernel shape it shares).
//
// Why: the unfused path (Winograd.swift, `WinogradGEMM.openBLAS`) writes all of dU, 64·Cout·Cin
// floats (64 MiB for a 512→512 conv), through 64 OpenBLAS GEMMs whose inner dimension is the
// block's tiles, then reads it back to transform. With 32 tiles per sample (layers 3–4 at a
// 64×128×128 input) that traffic and OpenBLAS's per-call packing ate the 3.4× fewer multiply-adds,
// so those convs' weight gradients stayed direct (Docs/performance.md, "dsan's packed GEMM").
//
// First dM is copied into panels of R = 2·VK_LANES output channels, transposed:
// packed[p][ξ][t][r] = dM_ξ[p·R + r][t], rows past Cout zero (winograd_weight_gradient_pack, the
// workers splitting the (panel, ξ) pairs). Then a job is one panel × one chunk of at most DW_CB input
// channels (jobs ordered chunk by chunk, so consecutive jobs read the same V): for
// each chunk of at most DW_TC tiles, each ξ and each group of 6 input channels, a micro-kernel
// keeps the R × 6 block of dU_ξ in 12 vector registers over the chunk's tiles, reading V_ξ where
// it lies. The blocks go to `s` ([group][ξ][6][R], the job's share of dU:
// 64·DW_CB·R floats, L2-sized), and the next tile chunk resumes from them. After the last chunk
// each (co, ci) of the job gets Gᵀ⊗³ of its 64 sums, added into dWeight [Cout, Cin, 27] (or
// written there with `overwrite`, for the first block of a step whose gradient counts as zero:
// then dWeight is never read).
//
// Every dU element is one sum over the block's tiles in increasing order (the chunks resume the
// same accumulator through memory), and each (co, ci) belongs to exactly one job: the result
// does not depend on how jobs are shared among threads. With fewer jobs than the workers need
// (many cores, few channels), a job's 64 ξ go in parts (winograd_weight_gradient_products), each
// part's sums to the job's own slot, and one call transforms them once every part is in
// (winograd_weight_gradient_finish): each sum is still one sum in tile order, so the bits are
// those of the one-call kernel. Like the packed GEMM it fuses
// multiply-adds at AVX2 and AVX-512 and not at the baseline, so it runs at the GEMM level.
#include <string.h>
#include "VectorKernels.h"

#define DW_MR (2 * VK_LANES)
#define DW_NR 6
/// Input channels per job: 8 groups of 6, so that the job's dU (64·48·R floats: 96, 192 or
/// 384 KiB) stays in L2 while the tile chunks pass.
#define DW_CB 48
/// Tiles per chunk: one ξ's transposed panel (DW_TC·R floats, 32 KiB at every level: L1 on Zen 5,
/// L2 elsewhere) is read by the job's 8 groups in turn. Chunks of 8 KiB (64 tiles at AVX-512)
/// read V in runs of 256 bytes per channel, too short for the prefetchers: on layers 1–2 at
/// 138×256×256 the kernel then ran at about OpenBLAS's speed; with 32 KiB (and the prefetch
/// below) it takes 0.65–0.85 of the time of OpenBLAS's GEMMs (Docs/performance.md, "The fused
/// Winograd weight gradient").
#define DW_TC (8192 / DW_MR)
// A chunk holds at most ⌈groups / chunks⌉ ≤ DW_CB / DW_NR groups (dw_chunk_start) only when
// DW_CB is a whole number of groups: s and the transform's buffer are sized by DW_CB.
_Static_assert(DW_CB % DW_NR == 0, "DW_CB must be a multiple of DW_NR");

#if VK_LANES == 4
#define DW_MADD(a, b, c) ((a) * (b) + (c))
#else
#define DW_MADD(a, b, c) __builtin_elementwise_fma((a), (b), (c))
#endif

/// The R × nr block of dU_ξ over tiles 0..<t: a = the ξ's transposed panel ([t][R]), b[j] = row j
/// of V_ξ, s = [nr][R] partial sums, resumed when `resume`.
static inline __attribute__((always_inline)) void dw_block(const float *a, const float *const *b, long t,
                                                           float *s, int resume, const int nr) {
    wk_f c0[DW_NR], c1[DW_NR];
    for (int j = 0; j < DW_NR; j++) {
        c0[j] = resume && j < nr ? wk_load(s + j * DW_MR) : (wk_f)0.0f;
        c1[j] = resume && j < nr ? wk_load(s + j * DW_MR + VK_LANES) : (wk_f)0.0f;
    }
    for (long tt = 0; tt < t; tt++) {
        const wk_f a0 = wk_load(a), a1 = wk_load(a + VK_LANES);
        a += DW_MR;
        for (int j = 0; j < nr; j++) {
            const wk_f bj = (wk_f)b[j][tt];
            c0[j] = DW_MADD(a0, bj, c0[j]);
            c1[j] = DW_MADD(a1, bj, c1[j]);
        }
    }
    for (int j = 0; j < nr; j++) {
        wk_store(s + j * DW_MR, c0[j]);
        wk_store(s + j * DW_MR + VK_LANES, c1[j]);
    }
}

/// Input channels are cut into ⌈cin / DW_CB⌉ chunks of whole groups of 6, as equal as they go
/// (256 channels: 43 groups as 7, 7, 7, 7, 7, 8), so that jobs cost about the same and an even
/// split of the jobs is an even split of the work. Chunk c starts at group c·groups / chunks.
static inline long dw_chunks(long cin) { return (cin + DW_CB - 1) / DW_CB; }
static inline long dw_chunk_start(long cin, long c) {
    return c * ((cin + DW_NR - 1) / DW_NR) / dw_chunks(cin) * DW_NR;
}

long VK_NAME(winograd_weight_gradient_jobs)(long cout, long cin) {
    return (cout + DW_MR - 1) / DW_MR * dw_chunks(cin);
}

long VK_NAME(winograd_weight_gradient_scratch_floats)(void) { return 64 * DW_CB * DW_MR + DW_MR * DW_CB * 27; }

long VK_NAME(winograd_weight_gradient_panel_rows)(void) { return DW_MR; }

void VK_NAME(winograd_weight_gradient_pack)(const float *dm, long cout, long tiles, long ld, long p0,
                                            long p1, long xi0, long xi1, float *packed) {
    const long plane = dsan_winograd_plane_floats(cout, ld);
    for (long p = p0; p < p1; p++) {
        const long co0 = p * DW_MR, rows = wk_min(DW_MR, cout - co0);
        for (long xi = xi0; xi < xi1; xi++)   // the same floats as packed_gemm_pack lays out one panel
            VK_NAME(packed_gemm_pack)(dm + xi * plane + co0 * ld, ld, rows, tiles,
                                      packed + (p * 64 + xi) * tiles * DW_MR);
    }
}

/// The job's panel p, and its chunk's input channels ci0..<ci1.
static inline void dw_job(long job, long cout, long cin, long *p, long *ci0, long *ci1) {
    const long panels = (cout + DW_MR - 1) / DW_MR, chunk = job / panels;
    *p = job % panels;
    *ci0 = dw_chunk_start(cin, chunk);
    *ci1 = wk_min(cin, dw_chunk_start(cin, chunk + 1));
}

/// The job's sums of matrices ξ0..<ξ1 over the block's tiles into s ([group][ξ][6][R]).
static void dw_products(const float *packed, const float *v, long cout, long cin, long tiles, long ld,
                        long job, long xi0, long xi1, float *s) {
    const long plane = dsan_winograd_plane_floats(cin, ld);
    long p, ci0, ci1;
    dw_job(job, cout, cin, &p, &ci0, &ci1);
    const long cis = ci1 - ci0, groups = (cis + DW_NR - 1) / DW_NR;
    for (long tc0 = 0; tc0 < tiles; tc0 += DW_TC) {
        const long t = wk_min(DW_TC, tiles - tc0);
        const int resume = tc0 > 0;
        for (long xi = xi0; xi < xi1; xi++) {
            const float *a = packed + ((p * 64 + xi) * tiles + tc0) * DW_MR;
            const float *vx = v + xi * plane + ci0 * ld + tc0;
            for (long g = 0; g < groups; g++) {
                const long nr = wk_min(DW_NR, cis - g * DW_NR);
                const float *b[DW_NR];
                for (int j = 0; j < DW_NR; j++) b[j] = vx + (g * DW_NR + (j < nr ? j : 0)) * ld;
                // The next group's rows of V (the next ξ's first group after the last): their
                // lines are in flight while this group computes (with 32 KiB chunks, 1 thread,
                // 138×256×256: 0.77 of the old rule's time on layer1's dW with it, 0.87 without).
                const float *next = g + 1 < groups ? vx + (g + 1) * DW_NR * ld : xi + 1 < 64 ? vx + plane : NULL;
                const long nextRows = g + 1 < groups ? wk_min(DW_NR, cis - (g + 1) * DW_NR) : wk_min(DW_NR, cis);
                if (next)
                    for (long j = 0; j < nextRows; j++)
                        for (long o = 0; o < t; o += 16) __builtin_prefetch(next + j * ld + o, 0, 3);
                float *sb = s + (g * 64 + xi) * DW_NR * DW_MR;
                switch (nr) {
                case 6: dw_block(a, b, t, sb, resume, 6); break;
                case 5: dw_block(a, b, t, sb, resume, 5); break;
                case 4: dw_block(a, b, t, sb, resume, 4); break;
                case 3: dw_block(a, b, t, sb, resume, 3); break;
                case 2: dw_block(a, b, t, sb, resume, 2); break;
                default: dw_block(a, b, t, sb, resume, 1); break;
                }
            }
        }
    }
}

/// Gᵀ⊗³ of the job's sums s (all 64 ξ) added into dWeight (written with `overwrite`), through
/// `out` (DW_MR·DW_CB·27 floats).
static void dw_finish(const float *s, long cout, long cin, long job, float *dWeight, int overwrite, float *out) {
    long p, ci0, ci1;
    dw_job(job, cout, cin, &p, &ci0, &ci1);
    const long co0 = p * DW_MR, rows = wk_min(DW_MR, cout - co0), cis = ci1 - ci0;
    // Gᵀ⊗³ of each (co, ci)'s 64 sums, VK_LANES output channels at a time, into `out` laid out
    // like the job's part of dWeight ([row][ci][27]), then added to dWeight row by row: the
    // scattered stores stay in L1 and dWeight is read and written in contiguous runs.
    const long run = cis * 27;
    wk_f sv[100];
    float t27[27][VK_LANES];
    for (long c = 0; c < cis; c++) {
        const float *sc = s + ((c / DW_NR) * 64 * DW_NR + c % DW_NR) * DW_MR;
        for (long h = 0; h < rows; h += VK_LANES) {
            wk_weight_gradient_27(sc + h, DW_NR * DW_MR, VK_LANES, sv, t27);
            const long lanes = wk_min(VK_LANES, rows - h);
            float *o = out + h * run + c * 27;
#if VK_LANES >= 8
            if (lanes == VK_LANES) {
                // Each 8 lanes' 27 taps by four 8×8 transposes, of taps 0–7, 8–15, 16–23 and
                // 19–26 (whose first five rewrite the same values: no store leaves the 27), instead
                // of 27 single-float stores per lane, which at 16 lanes were most of this
                // function's time (Docs/performance.md, "The fused Winograd weight gradient").
                for (int lb = 0; lb < VK_LANES; lb += 8)
                    for (int q = 0; q < 4; q++) {
                        const int k0 = q < 3 ? 8 * q : 19;
                        vk_f8 tr[8];
                        vk_transpose8(&t27[k0][lb], VK_LANES, tr);
                        for (int l = 0; l < 8; l++) memcpy(o + (lb + l) * run + k0, &tr[l], sizeof tr[l]);
                    }
                continue;
            }
#endif
            for (long l = 0; l < lanes; l++)
                for (int k = 0; k < 27; k++) o[l * run + k] = t27[k][l];
        }
    }
    for (long r = 0; r < rows; r++) {
        float *dst = dWeight + ((co0 + r) * cin + ci0) * 27;
        const float *src = out + r * run;
        if (overwrite) memcpy(dst, src, sizeof(float) * (size_t)run);
        else for (long i = 0; i < run; i++) dst[i] += src[i];
    }
}

void VK_NAME(winograd_weight_gradient_fused)(const float *packed, const float *v, long cout, long cin,
                                             long tiles, long ld, long job0, long job1,
                                             float *dWeight, int overwrite, float *scratch) {
    for (long job = job0; job < job1; job++) {
        dw_products(packed, v, cout, cin, tiles, ld, job, 0, 64, scratch);
        dw_finish(scratch, cout, cin, job, dWeight, overwrite, scratch + 64 * DW_CB * DW_MR);
    }
}

void VK_NAME(winograd_weight_gradient_products)(const float *packed, const float *v, long cout, long cin,
                                                long tiles, long ld, long item0, long item1, long parts,
                                                float *sums) {
    for (long item = item0; item < item1; item++) {
        const long job = item / parts, part = item % parts;
        dw_products(packed, v, cout, cin, tiles, ld, job, 64 * part / parts, 64 * (part + 1) / parts,
                    sums + job * 64 * DW_CB * DW_MR);
    }
}

void VK_NAME(winograd_weight_gradient_finish)(const float *sums, long cout, long cin, long job0, long job1,
                                              float *dWeight, int overwrite, float *scratch) {
    for (long job = job0; job < job1; job++)
        dw_finish(sums + job * 64 * DW_CB * DW_MR, cout, cin, job, dWeight, overwrite, scratch);
}

long VK_NAME(winograd_weight_gradient_sums_floats)(void) { return 64 * DW_CB * DW_MR; }

#undef DW_MADD
#undef DW_MR
#undef DW_NR
#undef DW_CB
#undef DW_TC
