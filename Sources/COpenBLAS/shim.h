// Shim over OpenBLAS: the CBLAS interface plus OpenBLAS's own thread and core-type queries.
#ifndef DSAN_COPENBLAS_SHIM_H
#define DSAN_COPENBLAS_SHIM_H
#include <cblas.h>

static inline int dsan_cblas_row_major(void) { return CblasRowMajor; }
#endif
