// dsan's own GEMM for the Winograd convs, C[m×n] = A[m×k] · B[k×n], with A packed beforehand by
// the transform that computes it (winograd_weight_transform_packed, in winograd_body.h), written
// once and compiled per level like the other bodies (each kernels_<level>.c defines VK_LANES and
// VK_NAME and applies its target attribute).
//
// Why not OpenBLAS here: each of a Winograd conv's 64 GEMMs multiplies a different transformed
// weight matrix U_ξ by a block of tiles. OpenBLAS copies ("packs") both operands into its kernel's
// layout on every call; when the tiles are few (layers 3 and 4 at batch 1: 32 tiles) that copy of
// U_ξ costs about as much as the multiplication (Docs/performance.md, "dsan's packed GEMM"). Here
// the weight transform writes U_ξ straight into the layout this kernel reads, so A is never
// copied, and B (V_ξ, a block's transformed tiles) is read where it lies.
//
// Layout of A ("packed panels"): rows in panels of PG_MR = 2·VK_LANES; panel p holds rows
// p·PG_MR ..< p·PG_MR + PG_MR, column by column: A[p·PG_MR + r][kk] at a[(p·k + kk)·PG_MR + r].
// Rows past m are zero. So the panels of one matrix take ⌈m / PG_MR⌉·PG_MR·k floats.
//
// The micro-kernel keeps a PG_MR × PG_NR block of C in 2·PG_NR vector registers (12 of the 16
// YMM/XMM registers; AVX-512 has room to spare) and, per kk, loads 2 vectors of A and broadcasts
// PG_NR floats of B's row kk. Each C element is one sum over kk in increasing order, so the result
// does not depend on the thread count or on how the caller splits rows or columns. It does depend
// on the level: AVX2 and AVX-512 fuse each multiply-add (one rounding, like OpenBLAS's kernels),
// the baseline build (SSE2, no FMA) rounds the product and the sum separately. The tests hold
// every level to a float64 reference.
#include <string.h>
#include "VectorKernels.h"
#include "transpose8.h"

typedef float pg_f __attribute__((ext_vector_type(VK_LANES)));

#define PG_MR (2 * VK_LANES)
#define PG_NR 6
_Static_assert(PG_NR <= 8, "pg_block stores a block's rows through 8×8 transposes");

static inline pg_f pg_load(const float *p) { pg_f v; memcpy(&v, p, sizeof v); return v; }

#if VK_LANES == 4
#define PG_MADD(a, b, c) ((a) * (b) + (c))
#else
#define PG_MADD(a, b, c) __builtin_elementwise_fma((a), (b), (c))
#endif

/// One PG_MR × nr block of C (nr ≤ PG_NR, a constant after inlining): `rows` ≤ PG_MR of its rows
/// are stored, the rest (A's zero padding) dropped. The sums start at zero, or at the partial sums
/// `from` (nr columns of PG_MR floats, as `to` holds them); they end in C, or in `to`.
static inline __attribute__((always_inline)) void pg_block(const float *a, const float *b, long ldb,
                                                           long k, float *c, long ldc, long rows,
                                                           const int nr, const float *from, float *to) {
    pg_f c0[PG_NR], c1[PG_NR];
    for (int j = 0; j < PG_NR; j++) {
        c0[j] = from && j < nr ? pg_load(from + j * PG_MR) : (pg_f)0.0f;
        c1[j] = from && j < nr ? pg_load(from + j * PG_MR + VK_LANES) : (pg_f)0.0f;
    }
    for (long kk = 0; kk < k; kk++) {
        const pg_f a0 = pg_load(a), a1 = pg_load(a + VK_LANES);
        const float *br = b + kk * ldb;
        a += PG_MR;
        for (int j = 0; j < nr; j++) {
            const pg_f bj = (pg_f)br[j];
            c0[j] = PG_MADD(a0, bj, c0[j]);
            c1[j] = PG_MADD(a1, bj, c1[j]);
        }
    }
    if (to) {
        for (int j = 0; j < nr; j++) {
            memcpy(to + j * PG_MR, &c0[j], sizeof(pg_f));
            memcpy(to + j * PG_MR + VK_LANES, &c1[j], sizeof(pg_f));
        }
        return;
    }
    // C is row-major and the registers hold columns: transposed through t. A whole block (all
    // rows, PG_NR = 6 columns) goes by 8×8 transposes of t's 6 columns and 2 zero ones, each
    // row's 6 floats stored at once; with single-float stores, C cost a GEMM of k = 64 (F(4,3)'s,
    // layer1) a quarter of its time (Docs/performance.md, "dsan's packed GEMM").
    float t[8][PG_MR];
    for (int j = 0; j < nr; j++) {
        memcpy(&t[j][0], &c0[j], sizeof(pg_f));
        memcpy(&t[j][VK_LANES], &c1[j], sizeof(pg_f));
    }
#if VK_LANES >= 8
    if (nr == PG_NR && rows == PG_MR) {
        memset(t[PG_NR], 0, sizeof t[0] * (8 - PG_NR));
        for (int r0 = 0; r0 < PG_MR; r0 += 8) {
            vk_f8 rowsOf[8];
            vk_transpose8(&t[0][r0], PG_MR, rowsOf);
            for (int i = 0; i < 8; i++) memcpy(c + (r0 + i) * ldc, &rowsOf[i], PG_NR * sizeof(float));
        }
        return;
    }
#endif
    for (long r = 0; r < rows; r++)
        for (int j = 0; j < nr; j++) c[r * ldc + j] = t[j][r];
}

void VK_NAME(packed_gemm)(const float *a, long m, long k, const float *b, long ldb, float *c,
                          long ldc, long n, const float *from, float *to) {
    const long panels = (m + PG_MR - 1) / PG_MR;
    // Columns of B per sweep over the panels: k·nc floats (about 256 KiB) stay in L2 while every
    // panel of A passes over them (512 × 320 tiles of B, 640 KiB, did not).
    long nc = (65536 / (k > 0 ? k : 1)) / PG_NR * PG_NR;
    if (nc < PG_NR) nc = PG_NR;
    for (long j0 = 0; j0 < n; j0 += nc) {
        const long j1 = j0 + nc < n ? j0 + nc : n;
        for (long p = 0; p < panels; p++) {
            const float *ap = a + p * k * PG_MR;
            float *cp = c + p * PG_MR * ldc;
            const long rows = m - p * PG_MR < PG_MR ? m - p * PG_MR : PG_MR;
            // Partial sums of the panel's column j at (p·n + j)·PG_MR.
            const float *fp = from ? from + p * n * PG_MR : NULL;
            float *tp = to ? to + p * n * PG_MR : NULL;
#define PG_PARTIAL(j) fp ? fp + (j) * PG_MR : NULL, tp ? tp + (j) * PG_MR : NULL
            long j = j0;
            for (; j + PG_NR <= j1; j += PG_NR) pg_block(ap, b + j, ldb, k, cp + j, ldc, rows, PG_NR, PG_PARTIAL(j));
            switch (j1 - j) {
            case 5: pg_block(ap, b + j, ldb, k, cp + j, ldc, rows, 5, PG_PARTIAL(j)); break;
            case 4: pg_block(ap, b + j, ldb, k, cp + j, ldc, rows, 4, PG_PARTIAL(j)); break;
            case 3: pg_block(ap, b + j, ldb, k, cp + j, ldc, rows, 3, PG_PARTIAL(j)); break;
            case 2: pg_block(ap, b + j, ldb, k, cp + j, ldc, rows, 2, PG_PARTIAL(j)); break;
            case 1: pg_block(ap, b + j, ldb, k, cp + j, ldc, rows, 1, PG_PARTIAL(j)); break;
            default: break;
            }
        }
    }
}

#undef PG_PARTIAL

long VK_NAME(packed_gemm_panel_rows)(void) { return PG_MR; }

/// Rows r..<r + 8 and columns k0..<k0 + 8 of src into a packed panel: an 8×8 transpose in
/// registers (transpose8.h), each column's 8 rows stored as one vector.
static inline void pg_pack_8x8(const float *src, long ld, float *panel, long r, long k0) {
    vk_f8 columns[8];
    vk_transpose8(src, ld, columns);
    for (int j = 0; j < 8; j++) memcpy(panel + (k0 + j) * PG_MR + r, &columns[j], sizeof(vk_f8));
}

/// src [m × k] (row stride ld) into packed panels: 8 × 8 blocks transposed in registers, the
/// columns past the last whole 8 and the rows of a panel's last partial 8 one float at a time.
void VK_NAME(packed_gemm_pack)(const float *src, long ld, long m, long k, float *dst) {
    const long panels = (m + PG_MR - 1) / PG_MR, k8 = k / 8 * 8;
    for (long p = 0; p < panels; p++) {
        float *panel = dst + p * k * PG_MR;
        const long rows = m - p * PG_MR < PG_MR ? m - p * PG_MR : PG_MR, rows8 = rows / 8 * 8;
        for (long r = 0; r < rows8; r += 8) {
            const float *s = src + (p * PG_MR + r) * ld;
            for (long kk = 0; kk < k8; kk += 8) pg_pack_8x8(s + kk, ld, panel, r, kk);
            for (long i = 0; i < 8; i++)
                for (long kk = k8; kk < k; kk++) panel[kk * PG_MR + r + i] = s[i * ld + kk];
        }
        for (long r = rows8; r < rows; r++) {
            const float *s = src + (p * PG_MR + r) * ld;
            for (long kk = 0; kk < k; kk++) panel[kk * PG_MR + r] = s[kk];
        }
        for (long kk = 0; kk < k; kk++)
            for (long r = rows; r < PG_MR; r++) panel[kk * PG_MR + r] = 0.0f;
    }
}

/// The transpose of src into packed panels: A[i][kk] = src[kk·ld + i] (A is m × k; each packed
/// column is PG_MR contiguous floats of one src row), rows past m zero.
void VK_NAME(packed_gemm_pack_transposed)(const float *src, long ld, long m, long k, float *dst) {
    const long panels = (m + PG_MR - 1) / PG_MR;
    for (long p = 0; p < panels; p++) {
        float *panel = dst + p * k * PG_MR;
        const long rows = m - p * PG_MR < PG_MR ? m - p * PG_MR : PG_MR;
        for (long kk = 0; kk < k; kk++) {
            memcpy(panel + kk * PG_MR, src + kk * ld + p * PG_MR, (size_t)rows * sizeof(float));
            for (long r = rows; r < PG_MR; r++) panel[kk * PG_MR + r] = 0.0f;
        }
    }
}

/// The arithmetic probe of `dsan bench threads`: `iterations` × 12 vector multiply-adds
/// x = x·scale + shift on 12 independent registers, nothing read or written in memory, so its rate
/// is the core's multiply-add peak at this level (AVX2: 2 FMA units × 4-cycle latency need 8
/// chains; 12 leave room). Returns the sum of the lanes, so the loop is not optimised away.
float VK_NAME(multiply_add_probe)(long iterations, float scale, float shift) {
    pg_f x[12];
    for (int i = 0; i < 12; i++) x[i] = (pg_f)(float)(i + 1);
    const pg_f s = (pg_f)scale, t = (pg_f)shift;
    for (long k = 0; k < iterations; k++) {
        for (int i = 0; i < 12; i++) x[i] = PG_MADD(x[i], s, t);
    }
    float total = 0;
    for (int i = 0; i < 12; i++)
        for (int l = 0; l < VK_LANES; l++) total += x[i][l];
    return total;
}
long VK_NAME(multiply_add_probe_flops)(void) { return 12 * 2 * VK_LANES; }

#undef PG_MADD
#undef PG_MR
#undef PG_NR
