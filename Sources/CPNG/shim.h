// Shim over libpng (1.6+), used only through its simplified API (`png_image_*`), which reports
// failures as a zero return with a message in `image.message` instead of longjmp. libpng's macros
// that Swift cannot import are exposed as static inline functions.
#ifndef DSAN_CPNG_SHIM_H
#define DSAN_CPNG_SHIM_H
#include <png.h>
#include <string.h>

static inline png_uint_32 dsan_png_image_version(void) { return PNG_IMAGE_VERSION; }
static inline png_uint_32 dsan_png_format_rgb(void) { return PNG_FORMAT_RGB; }
static inline png_uint_32 dsan_png_format_rgba(void) { return PNG_FORMAT_RGBA; }
static inline png_uint_32 dsan_png_image_failed(const png_image *image) { return PNG_IMAGE_FAILED(*image); }

/// A zeroed `png_image` with `version` set, as the simplified API requires.
static inline png_image dsan_png_image_new(void) {
    png_image image;
    memset(&image, 0, sizeof image);
    image.version = PNG_IMAGE_VERSION;
    return image;
}

/// The NUL-terminated message libpng left in `image->message` (a char[64]).
static inline const char *dsan_png_image_message(const png_image *image) { return image->message; }
#endif
