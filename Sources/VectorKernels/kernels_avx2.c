// AVX2 + FMA build: 8 lanes. Only called after CPUID says the CPU has AVX2 and FMA (dispatch.c).
#if defined(__x86_64__)
#pragma clang attribute push(__attribute__((target("avx2,fma"))), apply_to = function)
#define VK_LANES 8
#define VK_NAME(name) dsan_vk_avx2_##name
// Every kernel body, compiled at this level: the elementwise kernels, the Winograd transforms
// the layout kernels (vol2col, col2vol, max pooling), the packed GEMM and the fused Winograd
// weight gradient.
#include "kernels_body.h"
#include "winograd_body.h"
#include "winograd4_body.h"
#include "layout_body.h"
#include "packed_gemm_body.h"
#include "winograd_dw_body.h"
#pragma clang attribute pop
#endif
