// Start-up choice of the kernel build (see VectorKernels.h) and the scalar references.
//
// CPUID says what the CPU implements; XGETBV says whether the OS saves the YMM/ZMM registers on a
// context switch (a VM or kernel may not). Both must agree before a wider build is used. This is
// dsan's own minimal CPUID reader for the kernels; it reads nothing else.
#pragma clang fp contract(off)

#include "VectorKernels.h"
#include <stdatomic.h>
#include <stdlib.h>

#define VK_DECLARE(level)                                                                           \
    void dsan_vk_##level##_relu_forward(const float *, float *, size_t);                             \
    void dsan_vk_##level##_relu_backward(const float *, const float *, float *, size_t);             \
    void dsan_vk_##level##_add(const float *, const float *, float *, size_t);                       \
    void dsan_vk_##level##_add_relu(const float *, const float *, float *, size_t);                  \
    void dsan_vk_##level##_affine(const float *, float *, size_t, float, float);                     \
    void dsan_vk_##level##_bn_input_gradient(const float *, const float *, float *, size_t, float,    \
                                             float, float, float);                                  \
    void dsan_vk_##level##_scale(const float *, float *, size_t, float);                             \
    void dsan_vk_##level##_adam(float *, const float *, float *, float *, size_t, float, float,      \
                                float, float, float, float, float);                                 \
    size_t dsan_vk_##level##_first_nonfinite(const float *, size_t);

VK_DECLARE(baseline)
#if defined(__x86_64__)
VK_DECLARE(avx2)
VK_DECLARE(avx512)
#endif

typedef struct {
    void (*relu_forward)(const float *, float *, size_t);
    void (*relu_backward)(const float *, const float *, float *, size_t);
    void (*add)(const float *, const float *, float *, size_t);
    void (*add_relu)(const float *, const float *, float *, size_t);
    void (*affine)(const float *, float *, size_t, float, float);
    void (*bn_input_gradient)(const float *, const float *, float *, size_t, float, float, float, float);
    void (*scale)(const float *, float *, size_t, float);
    void (*adam)(float *, const float *, float *, float *, size_t, float, float, float, float, float,
                 float, float);
    size_t (*first_nonfinite)(const float *, size_t);
} vk_table;

#define VK_TABLE(level)                                                                             \
    { dsan_vk_##level##_relu_forward, dsan_vk_##level##_relu_backward, dsan_vk_##level##_add,       \
      dsan_vk_##level##_add_relu, dsan_vk_##level##_affine, dsan_vk_##level##_bn_input_gradient,    \
      dsan_vk_##level##_scale, dsan_vk_##level##_adam, dsan_vk_##level##_first_nonfinite }

static const vk_table tables[] = {
    VK_TABLE(baseline),
#if defined(__x86_64__)
    VK_TABLE(avx2),
    VK_TABLE(avx512),
#endif
};

#if defined(__x86_64__)
static void cpuid(unsigned leaf, unsigned sub, unsigned r[4]) {
    __asm__ volatile("cpuid" : "=a"(r[0]), "=b"(r[1]), "=c"(r[2]), "=d"(r[3]) : "a"(leaf), "c"(sub));
}
static unsigned long long xgetbv0(void) {
    unsigned lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    return ((unsigned long long)hi << 32) | lo;
}
#endif

static int detect(void) {
#if defined(__x86_64__)
    unsigned r[4];
    cpuid(0, 0, r);
    unsigned maxLeaf = r[0];
    if (maxLeaf < 7) return DSAN_VK_BASELINE;
    cpuid(1, 0, r);
    int fma = (r[2] >> 12) & 1, osxsave = (r[2] >> 27) & 1, avx = (r[2] >> 28) & 1;
    if (!(osxsave && avx && fma)) return DSAN_VK_BASELINE;
    unsigned long long xcr0 = xgetbv0();
    if ((xcr0 & 0x6) != 0x6) return DSAN_VK_BASELINE;           // XMM and YMM state
    cpuid(7, 0, r);
    int avx2 = (r[1] >> 5) & 1;
    if (!avx2) return DSAN_VK_BASELINE;
    int f = (r[1] >> 16) & 1, dq = (r[1] >> 17) & 1, bw = (r[1] >> 30) & 1, vl = (r[1] >> 31) & 1;
    if (f && dq && bw && vl && (xcr0 & 0xe6) == 0xe6) return DSAN_VK_AVX512;  // + opmask, ZMM
    return DSAN_VK_AVX2;
#else
    return DSAN_VK_BASELINE;
#endif
}

static int supported = -1;
static _Atomic(const vk_table *) active = 0;
static _Atomic int activeLevel = 0;

__attribute__((constructor)) static void dsan_vk_init(void) {
    supported = detect();
    atomic_store(&activeLevel, supported);
    atomic_store(&active, &tables[supported]);
}

static const vk_table *table(void) {
    const vk_table *t = atomic_load_explicit(&active, memory_order_relaxed);
    if (__builtin_expect(t == 0, 0)) { dsan_vk_init(); t = atomic_load(&active); }
    return t;
}

int dsan_vk_supported_level(void) { if (supported < 0) dsan_vk_init(); return supported; }
int dsan_vk_active_level(void) { table(); return atomic_load(&activeLevel); }

int dsan_vk_set_level(int level) {
    if (level < DSAN_VK_BASELINE || level > dsan_vk_supported_level()) return -1;
    atomic_store(&activeLevel, level);
    atomic_store(&active, &tables[level]);
    return 0;
}

const char *dsan_vk_level_name(int level) {
    switch (level) {
    case DSAN_VK_BASELINE: return "baseline";
    case DSAN_VK_AVX2: return "avx2";
    case DSAN_VK_AVX512: return "avx512";
    default: return "unknown";
    }
}

void dsan_vk_relu_forward(const float *x, float *y, size_t n) { table()->relu_forward(x, y, n); }
void dsan_vk_relu_backward(const float *dy, const float *y, float *dx, size_t n) {
    table()->relu_backward(dy, y, dx, n);
}
void dsan_vk_add(const float *a, const float *b, float *y, size_t n) { table()->add(a, b, y, n); }
void dsan_vk_add_relu(const float *a, const float *b, float *y, size_t n) { table()->add_relu(a, b, y, n); }
void dsan_vk_affine(const float *x, float *y, size_t n, float a, float b) { table()->affine(x, y, n, a, b); }
void dsan_vk_bn_input_gradient(const float *dy, const float *x, float *dx, size_t n,
                               float meanDy, float mu, float k, float scale) {
    table()->bn_input_gradient(dy, x, dx, n, meanDy, mu, k, scale);
}
void dsan_vk_scale(const float *dy, float *dx, size_t n, float scale) { table()->scale(dy, dx, n, scale); }
void dsan_vk_adam(float *p, const float *g, float *m, float *v, size_t n,
                  float stepSize, float bc2Sqrt, float b2, float w1, float w2, float wd, float eps) {
    table()->adam(p, g, m, v, n, stepSize, bc2Sqrt, b2, w1, w2, wd, eps);
}

size_t dsan_vk_first_nonfinite(const float *x, size_t n) { return table()->first_nonfinite(x, n); }

// MARK: scalar references (one element at a time, the formulas of the header)

void dsan_vk_reference_relu_forward(const float *x, float *y, size_t n) {
    for (size_t i = 0; i < n; i++) y[i] = x[i] > 0 ? x[i] : 0.0f;
}
void dsan_vk_reference_relu_backward(const float *dy, const float *y, float *dx, size_t n) {
    for (size_t i = 0; i < n; i++) dx[i] = y[i] > 0 ? dy[i] : 0.0f;
}
void dsan_vk_reference_add(const float *a, const float *b, float *y, size_t n) {
    for (size_t i = 0; i < n; i++) y[i] = a[i] + b[i];
}
void dsan_vk_reference_add_relu(const float *a, const float *b, float *y, size_t n) {
    for (size_t i = 0; i < n; i++) { float s = a[i] + b[i]; y[i] = s > 0 ? s : 0.0f; }
}
void dsan_vk_reference_affine(const float *x, float *y, size_t n, float a, float b) {
    for (size_t i = 0; i < n; i++) y[i] = x[i] * a + b;
}
void dsan_vk_reference_bn_input_gradient(const float *dy, const float *x, float *dx, size_t n,
                                         float meanDy, float mu, float k, float scale) {
    for (size_t i = 0; i < n; i++) dx[i] = (dy[i] - meanDy - (x[i] - mu) * k) * scale;
}
void dsan_vk_reference_scale(const float *dy, float *dx, size_t n, float scale) {
    for (size_t i = 0; i < n; i++) dx[i] = dy[i] * scale;
}
void dsan_vk_reference_adam(float *p, const float *g, float *m, float *v, size_t n,
                            float stepSize, float bc2Sqrt, float b2, float w1, float w2, float wd,
                            float eps) {
    for (size_t i = 0; i < n; i++) {
        float theta = p[i];
        float grad = g[i] + wd * theta;
        float mi = m[i] + w1 * (grad - m[i]);
        float vi = b2 * v[i] + w2 * grad * grad;
        m[i] = mi;
        v[i] = vi;
        p[i] = theta - stepSize * (mi / (__builtin_sqrtf(vi) / bc2Sqrt + eps));
    }
}

size_t dsan_vk_reference_first_nonfinite(const float *x, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (!__builtin_isfinite(x[i])) return i;
    return n;
}

// MARK: Winograd transforms (winograd_body.h, one build per level; same level as the table above)

#define WK_DECLARE(level)                                                                           \
    void dsan_vk_##level##_winograd_input_transform(const dsan_winograd_geometry *, const float *,    \
                                                    long, long, long, long, long, float *, float *); \
    void dsan_vk_##level##_winograd_gradient_transform(const dsan_winograd_geometry *, const float *, \
                                                       long, long, long, long, long, float *,       \
                                                       float *);                                    \
    void dsan_vk_##level##_winograd_output_transform(const dsan_winograd_geometry *, const float *,   \
                                                     long, long, long, long, long, float *);        \
    void dsan_vk_##level##_winograd_weight_transform(const float *, long, long, long, long, float *); \
    void dsan_vk_##level##_winograd_weight_gradient_transform(const float *, long, long, long, long,  \
                                                              float *, int);                        \
    void dsan_vk_##level##_winograd_weight_transform_packed(const float *, long, long, int, long, long, \
                                                            long, long, float *);                   \
    void dsan_vk_##level##_winograd_weight_transform_panel(const float *, long, long, int, long, long, \
                                                           long, long, long, int, float *);         \
    void dsan_vk_##level##_winograd_panel_part_matrices(long, long, long *);                        \
    long dsan_vk_##level##_winograd_panel_plane_floats(long);                                       \
    void dsan_vk_##level##_packed_gemm(const float *, long, long, const float *, long, float *, long,  \
                                       long, const float *, float *);                               \
    long dsan_vk_##level##_packed_gemm_panel_rows(void);                                            \
    void dsan_vk_##level##_packed_gemm_pack(const float *, long, long, long, float *);              \
    void dsan_vk_##level##_packed_gemm_pack_transposed(const float *, long, long, long, float *);   \
    float dsan_vk_##level##_multiply_add_probe(long, float, float);                                 \
    long dsan_vk_##level##_multiply_add_probe_flops(void);                                          \
    long dsan_vk_##level##_winograd_weight_gradient_jobs(long, long);                               \
    long dsan_vk_##level##_winograd_weight_gradient_scratch_floats(void);                           \
    long dsan_vk_##level##_winograd_weight_gradient_panel_rows(void);                               \
    void dsan_vk_##level##_winograd_weight_gradient_pack(const float *, long, long, long, long, long, \
                                                         long, long, float *);                      \
    void dsan_vk_##level##_winograd_weight_gradient_fused(const float *, const float *, long, long,   \
                                                          long, long, long, long, float *, int,     \
                                                          float *);                                 \
    void dsan_vk_##level##_winograd_weight_gradient_products(const float *, const float *, long,      \
                                                             long, long, long, long, long, long,    \
                                                             float *);                              \
    void dsan_vk_##level##_winograd_weight_gradient_finish(const float *, long, long, long, long,     \
                                                           float *, int, float *);                  \
    long dsan_vk_##level##_winograd_weight_gradient_sums_floats(void);

WK_DECLARE(baseline)
#if defined(__x86_64__)
WK_DECLARE(avx2)
WK_DECLARE(avx512)
#endif

typedef struct {
    void (*input)(const dsan_winograd_geometry *, const float *, long, long, long, long, long, float *,
                  float *);
    void (*gradient)(const dsan_winograd_geometry *, const float *, long, long, long, long, long,
                     float *, float *);
    void (*output)(const dsan_winograd_geometry *, const float *, long, long, long, long, long, float *);
    void (*weight)(const float *, long, long, long, long, float *);
    void (*weight_gradient)(const float *, long, long, long, long, float *, int);
    void (*weight_packed)(const float *, long, long, int, long, long, long, long, float *);
    void (*weight_panel)(const float *, long, long, int, long, long, long, long, long, int, float *);
    long (*panel_plane)(long);
    void (*packed_gemm)(const float *, long, long, const float *, long, float *, long, long, const float *,
                        float *);
    long (*panel_rows)(void);
    void (*pack)(const float *, long, long, long, float *);
    void (*pack_transposed)(const float *, long, long, long, float *);
    float (*probe)(long, float, float);
    long (*probe_flops)(void);
    long (*dw_jobs)(long, long);
    long (*dw_scratch)(void);
    long (*dw_panel_rows)(void);
    void (*dw_pack)(const float *, long, long, long, long, long, long, long, float *);
    void (*dw_fused)(const float *, const float *, long, long, long, long, long, long, float *, int, float *);
    void (*dw_products)(const float *, const float *, long, long, long, long, long, long, long, float *);
    void (*dw_finish)(const float *, long, long, long, long, float *, int, float *);
    long (*dw_sums)(void);
} wk_table;

#define WK_TABLE(level)                                                                             \
    { dsan_vk_##level##_winograd_input_transform, dsan_vk_##level##_winograd_gradient_transform,     \
      dsan_vk_##level##_winograd_output_transform, dsan_vk_##level##_winograd_weight_transform,      \
      dsan_vk_##level##_winograd_weight_gradient_transform,                                         \
      dsan_vk_##level##_winograd_weight_transform_packed,                                           \
      dsan_vk_##level##_winograd_weight_transform_panel,                                            \
      dsan_vk_##level##_winograd_panel_plane_floats, dsan_vk_##level##_packed_gemm,                 \
      dsan_vk_##level##_packed_gemm_panel_rows, dsan_vk_##level##_packed_gemm_pack,                 \
      dsan_vk_##level##_packed_gemm_pack_transposed,                                                \
      dsan_vk_##level##_multiply_add_probe,                                                         \
      dsan_vk_##level##_multiply_add_probe_flops, dsan_vk_##level##_winograd_weight_gradient_jobs,   \
      dsan_vk_##level##_winograd_weight_gradient_scratch_floats,                                    \
      dsan_vk_##level##_winograd_weight_gradient_panel_rows,                                        \
      dsan_vk_##level##_winograd_weight_gradient_pack, dsan_vk_##level##_winograd_weight_gradient_fused, \
      dsan_vk_##level##_winograd_weight_gradient_products,                                          \
      dsan_vk_##level##_winograd_weight_gradient_finish,                                            \
      dsan_vk_##level##_winograd_weight_gradient_sums_floats }

static const wk_table winogradTables[] = {
    WK_TABLE(baseline),
#if defined(__x86_64__)
    WK_TABLE(avx2),
    WK_TABLE(avx512),
#endif
};

static const wk_table *winogradTable(void) { return &winogradTables[dsan_vk_active_level()]; }

static _Atomic long planePadding = 16;
long dsan_winograd_plane_floats(long channels, long ld) {
    return channels * ld + atomic_load_explicit(&planePadding, memory_order_relaxed);
}
long dsan_winograd_set_plane_padding(long floats) { return atomic_exchange(&planePadding, floats); }

static _Atomic long weightPrefetch = 4;
long dsan_winograd_weight_prefetch(void) { return atomic_load_explicit(&weightPrefetch, memory_order_relaxed); }
long dsan_winograd_set_weight_prefetch(long columns) { return atomic_exchange(&weightPrefetch, columns); }

size_t dsan_winograd_scratch_floats(const dsan_winograd_geometry *g) {
    return (size_t)(17 * (g->w + 40));   // 16 row copies and a zero row (winograd_body.h, WK_ROW_PAD)
}
void dsan_winograd_input_transform(const dsan_winograd_geometry *g, const float *x, long channels,
                                   long c0, long c1, long t0, long t1, float *v, float *scratch) {
    winogradTable()->input(g, x, channels, c0, c1, t0, t1, v, scratch);
}
void dsan_winograd_gradient_transform(const dsan_winograd_geometry *g, const float *dy, long channels,
                                      long c0, long c1, long t0, long t1, float *dm, float *scratch) {
    winogradTable()->gradient(g, dy, channels, c0, c1, t0, t1, dm, scratch);
}
void dsan_winograd_output_transform(const dsan_winograd_geometry *g, const float *m, long channels,
                                    long c0, long c1, long t0, long t1, float *y) {
    winogradTable()->output(g, m, channels, c0, c1, t0, t1, y);
}
void dsan_winograd_weight_transform(const float *weight, long cout, long cin, long co0, long co1,
                                    float *u) {
    winogradTable()->weight(weight, cout, cin, co0, co1, u);
}
void dsan_winograd_weight_gradient_transform(const float *du, long cout, long cin, long co0,
                                             long co1, float *dWeight, int overwrite) {
    winogradTable()->weight_gradient(du, cout, cin, co0, co1, dWeight, overwrite);
}

// The packed GEMM's level is set once at start-up (the widest supported, or DSAN_SIMD's) and is
// NOT the switchable active level: its bits depend on the level (FMA or not), so a test that
// switches the active level to check the other kernels must not change the GEMMs that tests
// running beside it compute. The tests reach each level through the _at functions.
static _Atomic int gemmLevel = -1;
static const wk_table *packedTable(void) {
    int level = atomic_load_explicit(&gemmLevel, memory_order_relaxed);
    if (__builtin_expect(level < 0, 0)) {
        int expected = -1;
        atomic_compare_exchange_strong(&gemmLevel, &expected, dsan_vk_supported_level());
        level = atomic_load(&gemmLevel);
    }
    return &winogradTables[level];
}
int dsan_vk_gemm_level(void) { packedTable(); return atomic_load(&gemmLevel); }
int dsan_vk_set_gemm_level(int level) {
    if (level < DSAN_VK_BASELINE || level > dsan_vk_supported_level()) return -1;
    atomic_store(&gemmLevel, level);
    return 0;
}

long dsan_packed_gemm_panel_rows(void) { return packedTable()->panel_rows(); }
size_t dsan_packed_gemm_floats(long m, long k) {
    const long mr = dsan_packed_gemm_panel_rows();
    return (size_t)((m + mr - 1) / mr * mr * k);
}
void dsan_winograd_weight_transform_packed(const float *weight, long cout, long cin, int adjoint,
                                           long p0, long p1, long k0, long k1, float *a) {
    packedTable()->weight_packed(weight, cout, cin, adjoint, p0, p1, k0, k1, a);
}
void dsan_winograd_weight_transform_panel(const float *weight, long cout, long cin, int adjoint, long p,
                                          long k0, long k1, long part, long parts, int staged, float *a) {
    packedTable()->weight_panel(weight, cout, cin, adjoint, p, k0, k1, part, parts, staged, a);
}
long dsan_winograd_panel_plane_floats(long columns) { return packedTable()->panel_plane(columns); }
long dsan_vk_winograd_panel_plane_floats_at(int level, long columns) { return winogradTables[level].panel_plane(columns); }
void dsan_winograd_panel_part_matrices(long part, long parts, long *xi) {
    dsan_vk_baseline_winograd_panel_part_matrices(part, parts, xi);   // the same rule at every level
}
void dsan_packed_gemm_pack(const float *src, long ld, long m, long k, float *dst) {
    packedTable()->pack(src, ld, m, k, dst);
}
void dsan_vk_packed_gemm_pack_at(int level, const float *src, long ld, long m, long k, float *dst) {
    winogradTables[level].pack(src, ld, m, k, dst);
}
void dsan_packed_gemm_pack_transposed(const float *src, long ld, long m, long k, float *dst) {
    packedTable()->pack_transposed(src, ld, m, k, dst);
}
void dsan_vk_packed_gemm_pack_transposed_at(int level, const float *src, long ld, long m, long k, float *dst) {
    winogradTables[level].pack_transposed(src, ld, m, k, dst);
}
void dsan_packed_gemm(const float *a, long m, long k, const float *b, long ldb, float *c, long ldc,
                      long n) {
    packedTable()->packed_gemm(a, m, k, b, ldb, c, ldc, n, NULL, NULL);
}
void dsan_packed_gemm_partial(const float *a, long m, long k, const float *b, long ldb, long n,
                              const float *from, float *to, float *c, long ldc) {
    packedTable()->packed_gemm(a, m, k, b, ldb, c, ldc, n, from, to);
}
float dsan_multiply_add_probe(long iterations, float scale, float shift) {
    return packedTable()->probe(iterations, scale, shift);
}
long dsan_multiply_add_probe_flops(void) { return packedTable()->probe_flops(); }
float dsan_vk_multiply_add_probe_at(int level, long iterations, float scale, float shift) {
    return winogradTables[level].probe(iterations, scale, shift);
}
long dsan_vk_multiply_add_probe_flops_at(int level) { return winogradTables[level].probe_flops(); }
long dsan_vk_packed_gemm_panel_rows_at(int level) { return winogradTables[level].panel_rows(); }
void dsan_vk_winograd_weight_transform_packed_at(int level, const float *weight, long cout, long cin,
                                                 int adjoint, long p0, long p1, long k0, long k1, float *a) {
    winogradTables[level].weight_packed(weight, cout, cin, adjoint, p0, p1, k0, k1, a);
}
void dsan_vk_packed_gemm_at(int level, const float *a, long m, long k, const float *b, long ldb,
                            float *c, long ldc, long n) {
    winogradTables[level].packed_gemm(a, m, k, b, ldb, c, ldc, n, NULL, NULL);
}
void dsan_vk_packed_gemm_partial_at(int level, const float *a, long m, long k, const float *b, long ldb,
                                    long n, const float *from, float *to, float *c, long ldc) {
    winogradTables[level].packed_gemm(a, m, k, b, ldb, c, ldc, n, from, to);
}
void dsan_vk_winograd_weight_transform_panel_at(int level, const float *weight, long cout, long cin,
                                                int adjoint, long p, long k0, long k1, long part, long parts,
                                                int staged, float *a) {
    winogradTables[level].weight_panel(weight, cout, cin, adjoint, p, k0, k1, part, parts, staged, a);
}

long dsan_winograd_weight_gradient_jobs(long cout, long cin) { return packedTable()->dw_jobs(cout, cin); }
size_t dsan_winograd_weight_gradient_scratch_floats(void) { return (size_t)packedTable()->dw_scratch(); }
size_t dsan_winograd_weight_gradient_packed_floats(long cout, long tiles) {
    const long r = packedTable()->dw_panel_rows();
    return (size_t)((cout + r - 1) / r * r * 64 * tiles);
}
long dsan_winograd_weight_gradient_panels(long cout) {
    const long r = packedTable()->dw_panel_rows();
    return (cout + r - 1) / r;
}
void dsan_winograd_weight_gradient_pack(const float *dm, long cout, long tiles, long ld, long p0, long p1,
                                        long xi0, long xi1, float *packed) {
    packedTable()->dw_pack(dm, cout, tiles, ld, p0, p1, xi0, xi1, packed);
}
void dsan_winograd_weight_gradient_fused(const float *packed, const float *v, long cout, long cin,
                                         long tiles, long ld, long job0, long job1, float *dWeight,
                                         int overwrite, float *scratch) {
    packedTable()->dw_fused(packed, v, cout, cin, tiles, ld, job0, job1, dWeight, overwrite, scratch);
}
void dsan_winograd_weight_gradient_products(const float *packed, const float *v, long cout, long cin,
                                            long tiles, long ld, long item0, long item1, long parts,
                                            float *sums) {
    packedTable()->dw_products(packed, v, cout, cin, tiles, ld, item0, item1, parts, sums);
}
void dsan_winograd_weight_gradient_finish(const float *sums, long cout, long cin, long job0, long job1,
                                          float *dWeight, int overwrite, float *scratch) {
    packedTable()->dw_finish(sums, cout, cin, job0, job1, dWeight, overwrite, scratch);
}
size_t dsan_winograd_weight_gradient_sums_floats(void) { return (size_t)packedTable()->dw_sums(); }
void dsan_vk_winograd_weight_gradient_at(int level, const float *dm, const float *v, long cout,
                                         long cin, long tiles, long ld, long parts, float *dWeight,
                                         int overwrite) {
    const wk_table *table = &winogradTables[level];
    const long r = table->dw_panel_rows(), panels = (cout + r - 1) / r, jobs = table->dw_jobs(cout, cin);
    float *packed = malloc(sizeof(float) * (size_t)(panels * r * 64 * (tiles > 0 ? tiles : 1)));
    float *scratch = malloc(sizeof(float) * (size_t)table->dw_scratch());
    float *sums = parts > 1 ? malloc(sizeof(float) * (size_t)(jobs * table->dw_sums())) : NULL;
    if (!packed || !scratch || (parts > 1 && !sums)) abort();
    // In (panel, 8 ξ) items, last first: any split of the pack writes the same floats.
    for (long item = panels * 8 - 1; item >= 0; item--)
        table->dw_pack(dm, cout, tiles, ld, item / 8, item / 8 + 1, item % 8 * 8, item % 8 * 8 + 8, packed);
    if (parts > 1) {   // the items last first, as workers might take them
        for (long item = jobs * parts - 1; item >= 0; item--)
            table->dw_products(packed, v, cout, cin, tiles, ld, item, item + 1, parts, sums);
        table->dw_finish(sums, cout, cin, 0, jobs, dWeight, overwrite, scratch);
    } else {
        table->dw_fused(packed, v, cout, cin, tiles, ld, 0, jobs, dWeight, overwrite, scratch);
    }
    free(packed);
    free(scratch);
    free(sums);
}

// MARK: Winograd F(4,3) transforms (winograd4_body.h, one build per level; same level as above)

#define W4_DECLARE(level)                                                                           \
    void dsan_vk_##level##_winograd4_input_transform(const dsan_winograd_geometry *, const float *,   \
                                                     long, long, long, long, long, float *, float *); \
    void dsan_vk_##level##_winograd4_output_transform(const dsan_winograd_geometry *, const float *,  \
                                                      long, long, long, long, long, float *);       \
    void dsan_vk_##level##_winograd4_weight_transform(const float *, long, long, long, long, int,     \
                                                      float *);

W4_DECLARE(baseline)
#if defined(__x86_64__)
W4_DECLARE(avx2)
W4_DECLARE(avx512)
#endif

typedef struct {
    void (*input)(const dsan_winograd_geometry *, const float *, long, long, long, long, long, float *,
                  float *);
    void (*output)(const dsan_winograd_geometry *, const float *, long, long, long, long, long, float *);
    void (*weight)(const float *, long, long, long, long, int, float *);
} w4_table;

#define W4_TABLE(level)                                                                             \
    { dsan_vk_##level##_winograd4_input_transform, dsan_vk_##level##_winograd4_output_transform,     \
      dsan_vk_##level##_winograd4_weight_transform }

static const w4_table winograd4Tables[] = {
    W4_TABLE(baseline),
#if defined(__x86_64__)
    W4_TABLE(avx2),
    W4_TABLE(avx512),
#endif
};

static const w4_table *winograd4Table(void) { return &winograd4Tables[dsan_vk_active_level()]; }

size_t dsan_winograd4_scratch_floats(const dsan_winograd_geometry *g) {
    return (size_t)(37 * (g->w + 72));   // 36 row copies and a zero row (winograd4_body.h, W4_ROW_PAD)
}
void dsan_winograd4_input_transform(const dsan_winograd_geometry *g, const float *x, long channels,
                                    long c0, long c1, long t0, long t1, float *v, float *scratch) {
    winograd4Table()->input(g, x, channels, c0, c1, t0, t1, v, scratch);
}
void dsan_winograd4_output_transform(const dsan_winograd_geometry *g, const float *m, long channels,
                                     long c0, long c1, long t0, long t1, float *y) {
    winograd4Table()->output(g, m, channels, c0, c1, t0, t1, y);
}
void dsan_winograd4_weight_transform(const float *weight, long cout, long cin, long co0, long co1,
                                     int flip, float *u) {
    winograd4Table()->weight(weight, cout, cin, co0, co1, flip, u);
}

// MARK: layout kernels (vol2col, col2vol, max pooling): layout_body.h, one table per level, chosen
// by the same active level as the kernels above.

#define LK_DECLARE(level)                                                                           \
    void dsan_vk_##level##_vol2col_rows(const dsan_vk_window *, const float *, ptrdiff_t, ptrdiff_t, \
                                        ptrdiff_t, ptrdiff_t, ptrdiff_t, float *);                  \
    void dsan_vk_##level##_col2vol_planes(const dsan_vk_window *, const float *, ptrdiff_t,         \
                                          ptrdiff_t, ptrdiff_t, ptrdiff_t, ptrdiff_t, float *);     \
    void dsan_vk_##level##_max_pool_forward(const dsan_vk_window *, const float *, float *, int *,   \
                                            ptrdiff_t, ptrdiff_t);                                  \
    void dsan_vk_##level##_vol2col_transposed(const dsan_vk_window *, const float *, ptrdiff_t,       \
                                              ptrdiff_t, ptrdiff_t, ptrdiff_t, float *);

LK_DECLARE(baseline)
#if defined(__x86_64__)
LK_DECLARE(avx2)
LK_DECLARE(avx512)
#endif

typedef struct {
    void (*vol2col_rows)(const dsan_vk_window *, const float *, ptrdiff_t, ptrdiff_t, ptrdiff_t,
                         ptrdiff_t, ptrdiff_t, float *);
    void (*col2vol_planes)(const dsan_vk_window *, const float *, ptrdiff_t, ptrdiff_t, ptrdiff_t,
                           ptrdiff_t, ptrdiff_t, float *);
    void (*max_pool_forward)(const dsan_vk_window *, const float *, float *, int *, ptrdiff_t, ptrdiff_t);
    void (*vol2col_transposed)(const dsan_vk_window *, const float *, ptrdiff_t, ptrdiff_t, ptrdiff_t,
                               ptrdiff_t, float *);
} lk_table;

#define LK_TABLE(level)                                                                             \
    { dsan_vk_##level##_vol2col_rows, dsan_vk_##level##_col2vol_planes,                             \
      dsan_vk_##level##_max_pool_forward, dsan_vk_##level##_vol2col_transposed }

static const lk_table layoutTables[] = {
    LK_TABLE(baseline),
#if defined(__x86_64__)
    LK_TABLE(avx2),
    LK_TABLE(avx512),
#endif
};

static const lk_table *layoutTable(void) { return &layoutTables[dsan_vk_active_level()]; }

void dsan_vk_vol2col_rows(const dsan_vk_window *g, const float *x, ptrdiff_t r0, ptrdiff_t rowBegin,
                          ptrdiff_t rowEnd, ptrdiff_t p0, ptrdiff_t p1, float *cols) {
    layoutTable()->vol2col_rows(g, x, r0, rowBegin, rowEnd, p0, p1, cols);
}
void dsan_vk_col2vol_planes(const dsan_vk_window *g, const float *cols, ptrdiff_t c0, ptrdiff_t p0,
                            ptrdiff_t p1, ptrdiff_t itemBegin, ptrdiff_t itemEnd, float *dx) {
    layoutTable()->col2vol_planes(g, cols, c0, p0, p1, itemBegin, itemEnd, dx);
}
void dsan_vk_vol2col_transposed(const dsan_vk_window *g, const float *x, ptrdiff_t c0, ptrdiff_t c1,
                                ptrdiff_t p0, ptrdiff_t p1, float *out) {
    layoutTable()->vol2col_transposed(g, x, c0, c1, p0, p1, out);
}
void dsan_vk_max_pool_forward(const dsan_vk_window *g, const float *x, float *y, int *indices,
                              ptrdiff_t planeBegin, ptrdiff_t planeEnd) {
    layoutTable()->max_pool_forward(g, x, y, indices, planeBegin, planeEnd);
}

// Scalar references: every element computed on its own, by division, in the documented order.

void dsan_vk_reference_vol2col_rows(const dsan_vk_window *g, const float *x, ptrdiff_t r0,
                                    ptrdiff_t rowBegin, ptrdiff_t rowEnd, ptrdiff_t p0, ptrdiff_t p1,
                                    float *cols) {
    const ptrdiff_t T = p1 - p0;
    for (ptrdiff_t rr = rowBegin; rr < rowEnd; rr++) {
        const ptrdiff_t r = r0 + rr;
        const ptrdiff_t kw = r % g->kw, kh = (r / g->kw) % g->kh, kd = (r / (g->kw * g->kh)) % g->kd;
        const ptrdiff_t c = r / (g->kw * g->kh * g->kd);
        for (ptrdiff_t p = p0; p < p1; p++) {
            const ptrdiff_t od = p / (g->oh * g->ow), oh = (p / g->ow) % g->oh, ow = p % g->ow;
            const ptrdiff_t id = od * g->sd - g->pd + kd, ih = oh * g->sh - g->ph + kh;
            const ptrdiff_t iw = ow * g->sw - g->pw + kw;
            const int inside = id >= 0 && id < g->d && ih >= 0 && ih < g->h && iw >= 0 && iw < g->w;
            cols[rr * T + (p - p0)] = inside ? x[((c * g->d + id) * g->h + ih) * g->w + iw] : 0.0f;
        }
    }
}

void dsan_vk_reference_col2vol_planes(const dsan_vk_window *g, const float *cols, ptrdiff_t c0,
                                      ptrdiff_t p0, ptrdiff_t p1, ptrdiff_t itemBegin,
                                      ptrdiff_t itemEnd, float *dx) {
    const ptrdiff_t T = p1 - p0;
    for (ptrdiff_t item = itemBegin; item < itemEnd; item++) {
        const ptrdiff_t c = c0 + item / g->d, id = item % g->d;
        for (ptrdiff_t kd = 0; kd < g->kd; kd++)
            for (ptrdiff_t kh = 0; kh < g->kh; kh++)
                for (ptrdiff_t kw = 0; kw < g->kw; kw++) {
                    const ptrdiff_t r = (((c - c0) * g->kd + kd) * g->kh + kh) * g->kw + kw;
                    for (ptrdiff_t p = p0; p < p1; p++) {
                        const ptrdiff_t od = p / (g->oh * g->ow), oh = (p / g->ow) % g->oh, ow = p % g->ow;
                        if (od * g->sd - g->pd + kd != id) continue;
                        const ptrdiff_t ih = oh * g->sh - g->ph + kh, iw = ow * g->sw - g->pw + kw;
                        if (ih < 0 || ih >= g->h || iw < 0 || iw >= g->w) continue;
                        dx[((c * g->d + id) * g->h + ih) * g->w + iw] += cols[r * T + (p - p0)];
                    }
                }
    }
}

void dsan_vk_reference_max_pool_forward(const dsan_vk_window *g, const float *x, float *y,
                                        int *indices, ptrdiff_t planeBegin, ptrdiff_t planeEnd) {
    const ptrdiff_t inPlane = g->d * g->h * g->w, outPlane = g->od * g->oh * g->ow;
    for (ptrdiff_t plane = planeBegin; plane < planeEnd; plane++)
        for (ptrdiff_t o = 0; o < outPlane; o++) {
            const ptrdiff_t od = o / (g->oh * g->ow), oh = (o / g->ow) % g->oh, ow = o % g->ow;
            float best = -__builtin_inff();
            ptrdiff_t at = -1;
            for (ptrdiff_t kd = 0; kd < g->kd; kd++)
                for (ptrdiff_t kh = 0; kh < g->kh; kh++)
                    for (ptrdiff_t kw = 0; kw < g->kw; kw++) {
                        const ptrdiff_t id = od * g->sd - g->pd + kd, ih = oh * g->sh - g->ph + kh;
                        const ptrdiff_t iw = ow * g->sw - g->pw + kw;
                        if (id < 0 || id >= g->d || ih < 0 || ih >= g->h || iw < 0 || iw >= g->w) continue;
                        const ptrdiff_t where = (id * g->h + ih) * g->w + iw;
                        if (at < 0) at = where;     // no number beats −∞: the first voxel of the window
                        const float v = x[plane * inPlane + where];
                        if (v > best || v != v) { best = v; at = where; }
                    }
            y[plane * outPlane + o] = best;
            indices[plane * outPlane + o] = (int)at;
        }
}
