// Baseline build of the layout kernels: 4 lanes (SSE2 on x86-64, whatever the target has elsewhere).
#define VK_LANES 4
#define VK_NAME(name) dsan_vk_baseline_##name
#include "layout_body.h"
