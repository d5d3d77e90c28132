// Baseline build: 4 lanes (SSE2 on x86-64, whatever the target has elsewhere).
#define VK_LANES 4
#define VK_NAME(name) dsan_vk_baseline_##name
// Every kernel body, compiled at this level: the elementwise kernels, the Winograd transforms
// the layout kernels (vol2col, col2vol, max pooling), the packed GEMM and the fused Winograd
// weight gradient.
#include "kernels_body.h"
#include "winograd_body.h"
#include "winograd4_body.h"
#include "layout_body.h"
#include "packed_gemm_body.h"
#include "winograd_dw_body.h"
