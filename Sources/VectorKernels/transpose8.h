// An 8×8 float transpose in registers, shared by the bodies that need one (winograd_body.h's
// weight gathers at AVX2, packed_gemm_body.h's packer at every level). Included once per
// kernels_<level>.c, inside its target attribute, so it is compiled at that level.
#ifndef DSAN_VK_TRANSPOSE8_H
#define DSAN_VK_TRANSPOSE8_H

#include <string.h>

typedef float vk_f8 __attribute__((ext_vector_type(8)));

/// out[j] lane r = src[r·stride + j] for r, j < 8: unpack, shuffle, swap halves.
static inline void vk_transpose8(const float *src, long stride, vk_f8 *out) {
    vk_f8 r[8], t[8], u[8];
    for (int i = 0; i < 8; i++) memcpy(&r[i], src + i * stride, sizeof(vk_f8));
    for (int i = 0; i < 8; i += 2) {
        t[i] = __builtin_shufflevector(r[i], r[i + 1], 0, 8, 1, 9, 4, 12, 5, 13);
        t[i + 1] = __builtin_shufflevector(r[i], r[i + 1], 2, 10, 3, 11, 6, 14, 7, 15);
    }
    for (int i = 0; i < 8; i += 4) {
        u[i] = __builtin_shufflevector(t[i], t[i + 2], 0, 1, 8, 9, 4, 5, 12, 13);
        u[i + 1] = __builtin_shufflevector(t[i], t[i + 2], 2, 3, 10, 11, 6, 7, 14, 15);
        u[i + 2] = __builtin_shufflevector(t[i + 1], t[i + 3], 0, 1, 8, 9, 4, 5, 12, 13);
        u[i + 3] = __builtin_shufflevector(t[i + 1], t[i + 3], 2, 3, 10, 11, 6, 7, 14, 15);
    }
    // u[i] (i < 4) holds rows 0–3 of column i in its low half and of column i + 4 in its high
    // half, u[i + 4] the same for rows 4–7.
    for (int i = 0; i < 4; i++) {
        out[i] = __builtin_shufflevector(u[i], u[i + 4], 0, 1, 2, 3, 8, 9, 10, 11);
        out[i + 4] = __builtin_shufflevector(u[i], u[i + 4], 4, 5, 6, 7, 12, 13, 14, 15);
    }
}

#endif
