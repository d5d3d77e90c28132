// dsan's memory-bound kernels at the CPU's vector width, chosen at start-up.
//
// Each kernel exists in three builds of the same source (kernels_body.h): baseline x86-64 (SSE2,
// 4 lanes), AVX2 + FMA (8 lanes) and AVX-512F/BW/VL/DQ (16 lanes). A dispatch table picks the
// widest build the CPU and the OS support (CPUID + XGETBV) when the library loads, so one binary
// runs on every x86-64 CPU without SIGILL. On other architectures only the baseline build exists.
//
// Every kernel is elementwise and computes each element with the same IEEE operations in the same
// order in every build (no FMA contraction, no reassociation), so all levels produce the same bits
// as the scalar reference `dsan_vk_reference_*` — the tests assert that for every level this CPU
// supports (`dsan_vk_set_level`).
#ifndef DSAN_VECTOR_KERNELS_H
#define DSAN_VECTOR_KERNELS_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/// Instruction-set levels, narrowest first.
typedef enum {
    DSAN_VK_BASELINE = 0,   ///< x86-64 baseline (SSE2), or the portable build elsewhere
    DSAN_VK_AVX2 = 1,       ///< AVX2 + FMA
    DSAN_VK_AVX512 = 2,     ///< AVX-512 F + BW + VL + DQ
} dsan_vk_level;

/// The widest level this CPU and OS support.
int dsan_vk_supported_level(void);
/// The level the kernels use now (the supported one unless a test forced another, or
/// `DSAN_SIMD=baseline|avx2|avx512` narrowed it at start-up).
int dsan_vk_active_level(void);
/// Forces `level` (test seam). Returns 0, or -1 and changes nothing when the CPU lacks it.
int dsan_vk_set_level(int level);
/// "baseline", "avx2" or "avx512".
const char *dsan_vk_level_name(int level);

/// y[i] = x[i] > 0 ? x[i] : 0. y may be x.
void dsan_vk_relu_forward(const float *x, float *y, size_t n);
/// dx[i] = y[i] > 0 ? dy[i] : 0. dx may be dy.
void dsan_vk_relu_backward(const float *dy, const float *y, float *dx, size_t n);
/// y[i] = a[i] + b[i]. y may be a or b.
void dsan_vk_add(const float *a, const float *b, float *y, size_t n);
/// y[i] = max(a[i] + b[i], 0) with ReLU's convention. y may be a or b.
void dsan_vk_add_relu(const float *a, const float *b, float *y, size_t n);
/// y[i] = x[i]·a + b (batch norm's normalisation of one plane). y may be x.
void dsan_vk_affine(const float *x, float *y, size_t n, float a, float b);
/// dx[i] = (dy[i] − meanDy − (x[i] − mu)·k)·scale (batch norm's input gradient, one plane).
/// dx may be dy.
void dsan_vk_bn_input_gradient(const float *dy, const float *x, float *dx, size_t n,
                               float meanDy, float mu, float k, float scale);
/// dx[i] = dy[i]·scale. dx may be dy.
void dsan_vk_scale(const float *dy, float *dx, size_t n, float scale);
/// One Adam step over n elements (Sources/NN/Optimizer.swift has the formula):
/// g' = g + wd·θ; m = m + w1(g' − m); v = b2·v + w2·g'·g'; θ = θ − stepSize·(m / (√v / bc2Sqrt + eps)).
/// p, g, m, v are distinct arrays.
void dsan_vk_adam(float *p, const float *g, float *m, float *v, size_t n,
                  float stepSize, float bc2Sqrt, float b2, float w1, float w2, float wd, float eps);
/// The first i < n with x[i] NaN, +∞ or −∞; n when every element is finite.
size_t dsan_vk_first_nonfinite(const float *x, size_t n);

/// The scalar references, one element at a time, for the tests.
void dsan_vk_reference_relu_forward(const float *x, float *y, size_t n);
void dsan_vk_reference_relu_backward(const float *dy, const float *y, float *dx, size_t n);
void dsan_vk_reference_add(const float *a, const float *b, float *y, size_t n);
void dsan_vk_reference_add_relu(const float *a, const float *b, float *y, size_t n);
void dsan_vk_reference_affine(const float *x, float *y, size_t n, float a, float b);
void dsan_vk_reference_bn_input_gradient(const float *dy, const float *x, float *dx, size_t n,
                                         float meanDy, float mu, float k, float scale);
void dsan_vk_reference_scale(const float *dy, float *dx, size_t n, float scale);
void dsan_vk_reference_adam(float *p, const float *g, float *m, float *v, size_t n,
                            float stepSize, float bc2Sqrt, float b2, float w1, float w2, float wd,
                            float eps);
size_t dsan_vk_reference_first_nonfinite(const float *x, size_t n);


// MARK: Winograd F(2×2×2, 3×3×3) transforms (Sources/NN/Winograd.swift has the maths and layouts)
//
// Built per level from winograd_body.h, vectorised over L = 4, 8 or 16 lanes: tiles along w for
// the input, output and gradient transforms, input channels for the weight transforms. Lanes are
// independent and each value goes through the same IEEE operations in the same order as in
// Winograd.swift's F23 formulas (no FMA contraction), so every level gives the same bits.

/// The extents of one Winograd conv: the volume `[N, ·, D, H, W]` (input = output) and the row
/// stride of a block's V / M (at least the block's tiles). Tiles are ⌈D/2⌉·⌈H/2⌉·⌈W/2⌉ per sample,
/// numbered (n, td, th, tw) row-major; a block holds the tiles t0..<t1 in columns 0..<t1 − t0.
typedef struct {
    long n, d, h, w;
    long ld;
} dsan_winograd_geometry;

/// Floats from one ξ's matrix of a block's V or M (`channels` rows, `ld` apart) to the next ξ's:
/// channels·ld plus 16. Without the 16 every ξ matrix would start at the same offset modulo 4 KiB
/// (channels·ld·4 bytes is a multiple of 4096 for 64–512 channels and ld a multiple of 8), so the
/// 64 (F(2,3)) or 216 (F(4,3)) rows a transform writes or reads for one tile would all fall in one
/// L1 set, 8 ways deep; with 16 floats (one cache line) more, consecutive ξ fall in consecutive
/// sets (Docs/performance.md, "Layout of V and M"; `dsan bench winograd` measures both).
long dsan_winograd_plane_floats(long channels, long ld);
/// The floats added to channels·ld above: 16, or 0 to measure the layout without them. Only for
/// `dsan bench winograd`, a process that runs no conv while it switches; returns the previous.
long dsan_winograd_set_plane_padding(long floats);
/// Columns ahead whose weights the packed weight transforms prefetch: 4 (they read every weight
/// from memory, in strided rows whose loads were the transform's hot spot), or 0 to measure
/// them without. Set only by `dsan bench winograd`; returns the previous.
long dsan_winograd_weight_prefetch(void);
long dsan_winograd_set_weight_prefetch(long columns);

/// Floats of per-thread scratch the input and gradient transforms need (zero-padded row copies).
size_t dsan_winograd_scratch_floats(const dsan_winograd_geometry *g);
/// V[ξ][c][t − t0] = (Bᵀ⊗³ d)_ξ for channels c0..<c1 of x `[N, channels, D, H, W]`, tiles t0..<t1;
/// ξ stride dsan_winograd_plane_floats(channels, ld), channel stride ld. Writes only columns
/// 0..<t1 − t0.
void dsan_winograd_input_transform(const dsan_winograd_geometry *g, const float *x, long channels,
                                   long c0, long c1, long t0, long t1, float *v, float *scratch);
/// dM[ξ][c][t − t0] = (A⊗³ dY)_ξ for channels c0..<c1 of dy `[N, channels, D, H, W]`, tiles
/// t0..<t1 (outputs outside the volume count as zero). Writes only columns 0..<t1 − t0.
void dsan_winograd_gradient_transform(const dsan_winograd_geometry *g, const float *dy, long channels,
                                      long c0, long c1, long t0, long t1, float *dm, float *scratch);
/// y `[N, channels, D, H, W]` ← (Aᵀ⊗³ M) for channels c0..<c1 and tiles t0..<t1 of M (layout of
/// V); outputs of partial edge tiles outside the volume are dropped. Reads only columns 0..<t1 − t0.
void dsan_winograd_output_transform(const dsan_winograd_geometry *g, const float *m, long channels,
                                    long c0, long c1, long t0, long t1, float *y);
/// U[ξ][co][ci] = (G⊗³ g[co, ci])_ξ for co in co0..<co1 of weight `[cout, cin, 3, 3, 3]`.
void dsan_winograd_weight_transform(const float *weight, long cout, long cin, long co0, long co1,
                                    float *u);
/// dWeight[co][ci] += Gᵀ⊗³ dU[·][co][ci] for co in co0..<co1 (dU in U's layout); with
/// `overwrite`, dWeight[co][ci] = Gᵀ⊗³ dU[·][co][ci] (dWeight is not read).
void dsan_winograd_weight_gradient_transform(const float *du, long cout, long cin, long co0,
                                             long co1, float *dWeight, int overwrite);

// MARK: Packed GEMM for the Winograd convs (packed_gemm_body.h, same level as the transforms)
//
// C[m×n] = A[m×k]·B[k×n] with A in "packed panels" written by the transform that computes it:
// rows in panels of R = dsan_packed_gemm_panel_rows() (2 vectors of the level: 8, 16 or 32),
// A[i][kk] at a[((i / R)·k + kk)·R + i % R], rows past m zero. B and C are row-major with row
// strides ldb and ldc. Every C element is one sum over kk in order: the result does not depend
// on the thread count or on how rows or columns are split, but AVX2 and AVX-512 fuse each
// multiply-add and the baseline level does not, so the bits differ between levels (as
// OpenBLAS's do between its cores). Hence the GEMM and the packed transform run at their own
// level, set once at start-up (dsan_vk_set_gemm_level: the widest, or DSAN_SIMD's), which
// dsan_vk_set_level (the tests' switch for the other kernels) does not change.

/// The packed GEMM's level (a DSAN_VK_* value) and its start-up setter (-1: not supported here).
int dsan_vk_gemm_level(void);
int dsan_vk_set_gemm_level(int level);
/// Rows per panel of a packed A at the GEMM's level.
long dsan_packed_gemm_panel_rows(void);
/// Floats of one packed m×k matrix at the GEMM's level (m rounded up to whole panels).
size_t dsan_packed_gemm_floats(long m, long k);
/// For each ξ < 64, A_ξ packed at a + ξ·dsan_packed_gemm_floats(M, K), columns k0..<k1 of
/// panels p0..<p1 only (0..<K for whole panels; any split of the panels and columns writes the
/// same bits): forward (adjoint 0) A_ξ = U_ξ [cout × cin]; adjoint A_ξ = (U_{Pξ})ᵀ [cin × cout],
/// the matrices of the input gradient (P swaps indices 0 and 3 along each axis). U as in
/// dsan_winograd_weight_transform, the same bits.
void dsan_winograd_weight_transform_packed(const float *weight, long cout, long cin, int adjoint,
                                           long p0, long p1, long k0, long k1, float *a);
/// Columns k0..<k1 of panel p of the 64 matrices of dsan_winograd_weight_transform_packed, or
/// of part `part` of `parts` (1, 2 or 4) of them: the j-th matrix of the part, ξ =
/// dsan_winograd_panel_part_matrices(part, parts)[j], its (k1 − k0)·R floats at
/// a + j·dsan_winograd_panel_plane_floats(k1 − k0) (columns: cin forward, cout for the adjoint;
/// R = dsan_packed_gemm_panel_rows()): the same bits, for a GEMM that takes one panel of rows,
/// one slice of its columns and one part of its matrices at a time. The floats between two
/// matrices are never written. The parts split the transform's work too (its first stage's
/// index, γ = ξ mod 4): 2 or 4 workers can share a panel without repeating it. Each result
/// vector is stored straight into its matrix (staged 0, what the convs do), or staged and copied
/// out as the whole-matrix transform does (staged 1, for comparisons): the same bits.
void dsan_winograd_weight_transform_panel(const float *weight, long cout, long cin, int adjoint, long p,
                                          long k0, long k1, long part, long parts, int staged, float *a);
/// The distance in floats between two matrices of a panel's slice of `columns` columns
/// (dsan_winograd_weight_transform_panel): columns·R and one vector more, so that the slice's
/// matrices (32 columns × 32 rows at AVX-512: 4 KiB) do not lie a multiple of 4 KiB apart,
/// where the transform's stores to all of them would fall in one L1 set.
long dsan_winograd_panel_plane_floats(long columns);
/// The 64 / parts matrices ξ of part `part` of `parts` (1: all; 2: γ ∈ {0, 3}, then {1, 2}; 4:
/// γ = part), in increasing order, into xi.
void dsan_winograd_panel_part_matrices(long part, long parts, long *xi);
/// Packs src [m × k] (row-major, row stride ld) into dst in the layout above (rows past m zero):
/// the same floats, moved.
void dsan_packed_gemm_pack(const float *src, long ld, long m, long k, float *dst);
/// Packs the transpose of src: A [m × k] with A[i][kk] = src[kk·ld + i] (src is k × m, row stride
/// ld), into dst in the layout above: the same floats, moved.
void dsan_packed_gemm_pack_transposed(const float *src, long ld, long m, long k, float *dst);
/// C[m×n] = A·B, A packed (above).
void dsan_packed_gemm(const float *a, long m, long k, const float *b, long ldb, float *c, long ldc,
                      long n);
/// A·B over one slice of the columns of A (and the matching rows of B) of a product taken in
/// slices: the sums start at zero (`from` NULL) or at the partial sums `from` of the slices before,
/// and end in `to` (partial sums, ⌈m / R⌉·R·n floats in the kernel's own order) or, for the last
/// slice (`to` NULL), in C. Each C element is the one sum over the columns in order: slices give the
/// bits of dsan_packed_gemm over all of them. `from` and `to` may be the same buffer.
void dsan_packed_gemm_partial(const float *a, long m, long k, const float *b, long ldb, long n,
                              const float *from, float *to, float *c, long ldc);
/// `iterations` rounds of multiply-adds on registers only, at the GEMM's level (the core's
/// arithmetic peak; `dsan bench threads` runs it on every worker), and its floating-point
/// operations per iteration. Returns the sum of its registers (with scale 1, shift 0 exactly
/// 78·lanes: the registers start at 1…12).
float dsan_multiply_add_probe(long iterations, float scale, float shift);
long dsan_multiply_add_probe_flops(void);
/// The same functions at a given level ≤ dsan_vk_supported_level() (the tests' seam).
long dsan_vk_packed_gemm_panel_rows_at(int level);
void dsan_vk_winograd_weight_transform_packed_at(int level, const float *weight, long cout, long cin,
                                                 int adjoint, long p0, long p1, long k0, long k1, float *a);
void dsan_vk_packed_gemm_pack_at(int level, const float *src, long ld, long m, long k, float *dst);
void dsan_vk_packed_gemm_pack_transposed_at(int level, const float *src, long ld, long m, long k, float *dst);
void dsan_vk_packed_gemm_at(int level, const float *a, long m, long k, const float *b, long ldb,
                            float *c, long ldc, long n);
void dsan_vk_packed_gemm_partial_at(int level, const float *a, long m, long k, const float *b, long ldb,
                                    long n, const float *from, float *to, float *c, long ldc);
void dsan_vk_winograd_weight_transform_panel_at(int level, const float *weight, long cout, long cin,
                                                int adjoint, long p, long k0, long k1, long part, long parts,
                                                int staged, float *a);
long dsan_vk_winograd_panel_plane_floats_at(int level, long columns);
float dsan_vk_multiply_add_probe_at(int level, long iterations, float scale, float shift);
long dsan_vk_multiply_add_probe_flops_at(int level);

// MARK: Fused Winograd F(2,3) weight gradient (winograd_dw_body.h, at the packed GEMM's level)
//
// dWeight[co][ci] += Gᵀ⊗³ Σ_t dM_ξ[co][t]·V_ξ[ci][t] for a block of `tiles` tiles, dM and V as the
// gradient and input transforms write them (ξ stride dsan_winograd_plane_floats(channels, ld),
// channel stride ld), without writing dU. First dM is packed (dsan_winograd_weight_gradient_pack,
// panels of output channels, split among workers), then the jobs (dsan_winograd_weight_gradient_jobs: a panel of output
// channels × a chunk of input channels each) are split among workers, each with its own scratch.
// Each dU element is one sum over the tiles in order and each (co, ci) is one job's: the result
// does not depend on the thread count; like the packed GEMM it depends on the level.

/// Jobs of the fused weight gradient of a cout × cin conv.
long dsan_winograd_weight_gradient_jobs(long cout, long cin);
/// Floats of per-worker scratch of the fused weight gradient.
size_t dsan_winograd_weight_gradient_scratch_floats(void);
/// Panels of output channels, and floats of the packed dM of a block of `tiles` tiles.
long dsan_winograd_weight_gradient_panels(long cout);
size_t dsan_winograd_weight_gradient_packed_floats(long cout, long tiles);
/// Packs matrices ξ0..<ξ1 of panels p0..<p1 of dM (tiles 0..<tiles of each row) into `packed`
/// (any split of the panels and ξ writes the same floats).
void dsan_winograd_weight_gradient_pack(const float *dm, long cout, long tiles, long ld, long p0, long p1,
                                        long xi0, long xi1, float *packed);
/// Runs jobs job0..<job1 on the packed dM and V, adding into dWeight [cout, cin, 27] (with
/// `overwrite`: writing its entries, which are not read).
void dsan_winograd_weight_gradient_fused(const float *packed, const float *v, long cout, long cin,
                                         long tiles, long ld, long job0, long job1, float *dWeight,
                                         int overwrite, float *scratch);
/// The same in two phases, for more workers than jobs: the products of items item0..<item1
/// (item = job·parts + part: the job's matrices ξ in 64·part/parts ..< 64·(part + 1)/parts) into
/// the job's sums at sums + job·dsan_winograd_weight_gradient_sums_floats(), then, once every item
/// of the block is done, the transform of jobs job0..<job1 from their sums (scratch: a worker's
/// dsan_winograd_weight_gradient_scratch_floats). Each sum is the one the fused job computes and
/// the transform the same code: the same bits as dsan_winograd_weight_gradient_fused, whatever
/// `parts` and the split of the items.
void dsan_winograd_weight_gradient_products(const float *packed, const float *v, long cout, long cin,
                                            long tiles, long ld, long item0, long item1, long parts,
                                            float *sums);
void dsan_winograd_weight_gradient_finish(const float *sums, long cout, long cin, long job0, long job1,
                                          float *dWeight, int overwrite, float *scratch);
size_t dsan_winograd_weight_gradient_sums_floats(void);
/// Pack and all jobs at a given level ≤ dsan_vk_supported_level(), single-threaded, fused (`parts`
/// ≤ 1) or in two phases with `parts` parts per job (the tests' seam).
void dsan_vk_winograd_weight_gradient_at(int level, const float *dm, const float *v, long cout,
                                         long cin, long tiles, long ld, long parts, float *dWeight,
                                         int overwrite);

// MARK: Winograd F(4×4×4, 3×3×3) transforms (Sources/NN/WinogradF4.swift has the maths and layouts)
//
// Built per level from winograd4_body.h like the F(2×2×2) ones above, with the same geometry struct
// (tiles are then ⌈D/4⌉·⌈H/4⌉·⌈W/4⌉ per sample, numbered (n, td, th, tw) row-major) and 216
// transform positions ξ = (α·6 + β)·6 + γ. Every level gives the same bits.

/// Floats of per-thread scratch the F(4,3) input transform needs (zero-padded row copies).
size_t dsan_winograd4_scratch_floats(const dsan_winograd_geometry *g);
/// V[ξ][c][t − t0] = (Bᵀ⊗³ d)_ξ for channels c0..<c1 of x `[N, channels, D, H, W]`, 4³ tiles
/// t0..<t1 (6³ patches); ξ stride dsan_winograd_plane_floats(channels, ld), channel stride ld.
/// Writes only columns 0..<t1 − t0.
void dsan_winograd4_input_transform(const dsan_winograd_geometry *g, const float *x, long channels,
                                    long c0, long c1, long t0, long t1, float *v, float *scratch);
/// y `[N, channels, D, H, W]` ← (Aᵀ⊗³ M) for channels c0..<c1 and 4³ tiles t0..<t1 of M (layout
/// of V); outputs of partial edge tiles outside the volume are dropped.
void dsan_winograd4_output_transform(const dsan_winograd_geometry *g, const float *m, long channels,
                                     long c0, long c1, long t0, long t1, float *y);
/// U[ξ][co][ci] = (G⊗³ g[co, ci])_ξ for co in co0..<co1 of weight `[cout, cin, 3, 3, 3]`; with
/// `flip` non-zero, of the kernel reversed along all three axes (for the input gradient).
void dsan_winograd4_weight_transform(const float *weight, long cout, long cin, long co0, long co1,
                                     int flip, float *u);

// MARK: layout kernels (vol2col, col2vol, max pooling) — data movement and max selection
//
// The same three builds and the same dispatch as above (layout_body.h, one file per level). They
// move, add and compare floats exactly as the scalar loops they replaced (the Swift code of
// Sources/NN/ConvIm2col.swift and Pooling.swift): every output element is the same bits on every
// level and thread count.

/// The window geometry of a conv or pooling over one [D, H, W] volume: input extents, output
/// extents, kernel, stride and padding along (d, h, w).
typedef struct {
    ptrdiff_t d, h, w;
    ptrdiff_t od, oh, ow;
    ptrdiff_t kd, kh, kw;
    ptrdiff_t sd, sh, sw;
    ptrdiff_t pd, ph, pw;
} dsan_vk_window;

/// Rows rowBegin..<rowEnd of a vol2col tile: for each block row rr (global row r = r0 + rr, i.e.
/// r = (c, kd, kh, kw) over x's channels), cols[rr·T + (p − p0)] = x[c, od·sd − pd + kd,
/// oh·sh − ph + kh, ow·sw − pw + kw] for the flat output positions p = (od, oh, ow) in p0..<p1,
/// T = p1 − p0; +0 where the window hangs over the padding. x is one sample [C, D, H, W].
void dsan_vk_vol2col_rows(const dsan_vk_window *g, const float *x, ptrdiff_t r0,
                          ptrdiff_t rowBegin, ptrdiff_t rowEnd, ptrdiff_t p0, ptrdiff_t p1, float *cols);
/// Channels c0..<c1 of a vol2col tile, transposed: out[(p − p0)·rows + rr] = what
/// `dsan_vk_vol2col_rows` writes at cols[rr·T + (p − p0)] for r0 = c0·k³, rows = (c1 − c0)·k³
/// (one output position's window per row of out: a GEMM operand B with the positions as its
/// reduction axis, for a weight gradient dY·colsᵀ by dsan's packed GEMM). The same floats.
void dsan_vk_vol2col_transposed(const dsan_vk_window *g, const float *x, ptrdiff_t c0, ptrdiff_t c1,
                                ptrdiff_t p0, ptrdiff_t p1, float *out);
/// The adjoint of `dsan_vk_vol2col_rows` for the input planes item = (c − c0)·D + id in
/// itemBegin..<itemEnd: dx[c, id, :, :] += every term of cols (rows of channels c0.., positions
/// p0..<p1) that lands there, each voxel adding its terms in the order (kd, kh, kw, p).
void dsan_vk_col2vol_planes(const dsan_vk_window *g, const float *cols, ptrdiff_t c0,
                            ptrdiff_t p0, ptrdiff_t p1, ptrdiff_t itemBegin, ptrdiff_t itemEnd,
                            float *dx);
/// Max pooling of planes planeBegin..<planeEnd of x [planes, D, H, W] into y and indices
/// [planes, Do, Ho, Wo]: the first maximum in (kd, kh, kw) scan order wins, a NaN wins over any
/// number (a later NaN over an earlier one); padding is −∞. indices hold d·H·W + h·W + w.
void dsan_vk_max_pool_forward(const dsan_vk_window *g, const float *x, float *y, int *indices,
                              ptrdiff_t planeBegin, ptrdiff_t planeEnd);

/// Scalar references, one element at a time in the documented order, for the tests.
void dsan_vk_reference_vol2col_rows(const dsan_vk_window *g, const float *x, ptrdiff_t r0,
                                    ptrdiff_t rowBegin, ptrdiff_t rowEnd, ptrdiff_t p0, ptrdiff_t p1,
                                    float *cols);
void dsan_vk_reference_col2vol_planes(const dsan_vk_window *g, const float *cols, ptrdiff_t c0,
                                      ptrdiff_t p0, ptrdiff_t p1, ptrdiff_t itemBegin,
                                      ptrdiff_t itemEnd, float *dx);
void dsan_vk_reference_max_pool_forward(const dsan_vk_window *g, const float *x, float *y,
                                        int *indices, ptrdiff_t planeBegin, ptrdiff_t planeEnd);
// MARK: end of layout kernels

#ifdef __cplusplus
}
#endif
#endif
