// Shim over zlib, used for gzip-compressed NIfTI (.nii.gz). zlib's macros that Swift cannot
// import are exposed as static inline getters.
#ifndef DSAN_CZLIB_SHIM_H
#define DSAN_CZLIB_SHIM_H
#include <zlib.h>

static inline int dsan_z_ok(void) { return Z_OK; }
static inline int dsan_z_stream_end(void) { return Z_STREAM_END; }
static inline int dsan_z_buf_error(void) { return Z_BUF_ERROR; }
static inline int dsan_z_no_flush(void) { return Z_NO_FLUSH; }
static inline int dsan_z_finish(void) { return Z_FINISH; }
static inline int dsan_z_deflated(void) { return Z_DEFLATED; }
static inline int dsan_z_default_strategy(void) { return Z_DEFAULT_STRATEGY; }
// windowBits 15 + 32: inflate detects gzip or zlib headers; 15 + 16: deflate writes gzip.
static inline int dsan_z_inflate_init(z_stream *s) { return inflateInit2(s, 15 + 32); }
static inline int dsan_z_deflate_init_gzip(z_stream *s, int level) {
    return deflateInit2(s, level, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY);
}
#endif
