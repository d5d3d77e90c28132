// AVX2 + FMA build of the layout kernels: 8 lanes. Only called after CPUID says the CPU has AVX2
// and FMA (dispatch.c).
#if defined(__x86_64__)
#pragma clang attribute push(__attribute__((target("avx2,fma"))), apply_to = function)
#define VK_LANES 8
#define VK_NAME(name) dsan_vk_avx2_##name
#include "layout_body.h"
#pragma clang attribute pop
#endif
