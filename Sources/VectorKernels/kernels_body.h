// The kernels, written once. Each kernels_<level>.c defines VK_LANES (floats per vector) and
// VK_NAME(name) (the level's suffix) and applies its target attribute to everything below with
// `#pragma clang attribute`, then includes this file.
//
// Bit-identity with the scalar references: each element goes through the same IEEE operations in
// the same order as in the reference, in vector lanes and in the scalar tail alike. FMA contraction
// is off (it would round a·b + c once instead of twice); sqrt and division are correctly rounded
// in every ISA; selects are bit masks, so ReLU gives +0 for x ≤ 0, −0 and NaN, as the reference.
#pragma clang fp contract(off)

#include <string.h>
#include "VectorKernels.h"

typedef float vk_f __attribute__((ext_vector_type(VK_LANES)));
typedef int vk_i __attribute__((ext_vector_type(VK_LANES)));

static inline vk_f vk_load(const float *p) { vk_f v; memcpy(&v, p, sizeof v); return v; }
static inline void vk_store(float *p, vk_f v) { memcpy(p, &v, sizeof v); }
static inline vk_f vk_splat(float s) { return (vk_f)s; }
/// v where mask lanes are set, +0 elsewhere.
static inline vk_f vk_keep(vk_f v, vk_i mask) { return (vk_f)((vk_i)v & mask); }
static inline float vk_keep1(float v, int keep) { return keep ? v : 0.0f; }

void VK_NAME(relu_forward)(const float *x, float *y, size_t n) {
    size_t i = 0;
    for (; i + VK_LANES <= n; i += VK_LANES) {
        vk_f v = vk_load(x + i);
        vk_store(y + i, vk_keep(v, v > vk_splat(0)));
    }
    for (; i < n; i++) y[i] = vk_keep1(x[i], x[i] > 0);
}

void VK_NAME(relu_backward)(const float *dy, const float *y, float *dx, size_t n) {
    size_t i = 0;
    for (; i + VK_LANES <= n; i += VK_LANES)
        vk_store(dx + i, vk_keep(vk_load(dy + i), vk_load(y + i) > vk_splat(0)));
    for (; i < n; i++) dx[i] = vk_keep1(dy[i], y[i] > 0);
}

void VK_NAME(add)(const float *a, const float *b, float *y, size_t n) {
    size_t i = 0;
    for (; i + VK_LANES <= n; i += VK_LANES) vk_store(y + i, vk_load(a + i) + vk_load(b + i));
    for (; i < n; i++) y[i] = a[i] + b[i];
}

void VK_NAME(add_relu)(const float *a, const float *b, float *y, size_t n) {
    size_t i = 0;
    for (; i + VK_LANES <= n; i += VK_LANES) {
        vk_f s = vk_load(a + i) + vk_load(b + i);
        vk_store(y + i, vk_keep(s, s > vk_splat(0)));
    }
    for (; i < n; i++) { float s = a[i] + b[i]; y[i] = vk_keep1(s, s > 0); }
}

void VK_NAME(affine)(const float *x, float *y, size_t n, float a, float b) {
    const vk_f av = vk_splat(a), bv = vk_splat(b);
    size_t i = 0;
    for (; i + VK_LANES <= n; i += VK_LANES) vk_store(y + i, vk_load(x + i) * av + bv);
    for (; i < n; i++) y[i] = x[i] * a + b;
}

void VK_NAME(bn_input_gradient)(const float *dy, const float *x, float *dx, size_t n,
                                float meanDy, float mu, float k, float scale) {
    const vk_f md = vk_splat(meanDy), mv = vk_splat(mu), kv = vk_splat(k), sv = vk_splat(scale);
    size_t i = 0;
    for (; i + VK_LANES <= n; i += VK_LANES)
        vk_store(dx + i, (vk_load(dy + i) - md - (vk_load(x + i) - mv) * kv) * sv);
    for (; i < n; i++) dx[i] = (dy[i] - meanDy - (x[i] - mu) * k) * scale;
}

void VK_NAME(scale)(const float *dy, float *dx, size_t n, float scale) {
    const vk_f sv = vk_splat(scale);
    size_t i = 0;
    for (; i + VK_LANES <= n; i += VK_LANES) vk_store(dx + i, vk_load(dy + i) * sv);
    for (; i < n; i++) dx[i] = dy[i] * scale;
}

/// The first i with x[i] NaN or ±∞ (all exponent bits set), or n: vectors of 4·VK_LANES floats
/// are tested together and the scalar loop finds the element in the first vector group that holds
/// one. It reads the gradients before each Adam step, a pass bound by memory.
size_t VK_NAME(first_nonfinite)(const float *x, size_t n) {
    const vk_i e = (vk_i)0x7f800000;
    size_t i = 0;
    for (; i + 4 * VK_LANES <= n; i += 4 * VK_LANES) {
        const vk_i a = ((vk_i)vk_load(x + i) & e) == e, b = ((vk_i)vk_load(x + i + VK_LANES) & e) == e;
        const vk_i c = ((vk_i)vk_load(x + i + 2 * VK_LANES) & e) == e;
        const vk_i d = ((vk_i)vk_load(x + i + 3 * VK_LANES) & e) == e;
        if (__builtin_reduce_or((a | b) | (c | d))) break;
    }
    for (; i < n; i++) {
        unsigned bits;
        memcpy(&bits, x + i, sizeof bits);
        if ((bits & 0x7f800000u) == 0x7f800000u) return i;
    }
    return n;
}

void VK_NAME(adam)(float *p, const float *g, float *m, float *v, size_t n,
                   float stepSize, float bc2Sqrt, float b2, float w1, float w2, float wd, float eps) {
    const vk_f ss = vk_splat(stepSize), bc = vk_splat(bc2Sqrt), b2v = vk_splat(b2);
    const vk_f w1v = vk_splat(w1), w2v = vk_splat(w2), wdv = vk_splat(wd), ev = vk_splat(eps);
    size_t i = 0;
    for (; i + VK_LANES <= n; i += VK_LANES) {
        vk_f theta = vk_load(p + i);
        vk_f grad = vk_load(g + i) + wdv * theta;
        vk_f m0 = vk_load(m + i);
        vk_f mi = m0 + w1v * (grad - m0);
        vk_f vi = b2v * vk_load(v + i) + w2v * grad * grad;
        vk_store(m + i, mi);
        vk_store(v + i, vi);
        vk_f denom = __builtin_elementwise_sqrt(vi) / bc + ev;
        vk_store(p + i, theta - ss * (mi / denom));
    }
    for (; i < n; i++) {
        float theta = p[i];
        float grad = g[i] + wd * theta;
        float mi = m[i] + w1 * (grad - m[i]);
        float vi = b2 * v[i] + w2 * grad * grad;
        m[i] = mi;
        v[i] = vi;
        p[i] = theta - stepSize * (mi / (__builtin_sqrtf(vi) / bc2Sqrt + eps));
    }
}
