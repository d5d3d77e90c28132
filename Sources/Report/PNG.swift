import CPNG
import Foundation

/// A failure of libpng, or of the file system around it: names the file and carries libpng's
/// own message.
public struct PNGError: Error, CustomStringConvertible, Sendable, Equatable {
    public var file: String
    public var message: String

    public init(file: String, _ message: String) {
        self.file = file
        self.message = message
    }

    public var description: String { "\(file): \(message)" }
}

/// PNG reading and writing through libpng's simplified API (`png_image_*`, libpng ≥ 1.6), which
/// reports every failure as a zero return with a message in `png_image.message` rather than with
/// `longjmp`, so no C error handler has to unwind Swift frames.
///
/// Three layers, as elsewhere in dsan: the raw call, its result checked into a `PNGError` with
/// libpng's message, and the public throwing function.
public enum PNG {
    /// Writes `image` as an 8-bit RGB PNG at `path`.
    /// The corresponding C function is `png_image_write_to_file`.
    public static func write(_ image: RGBImage, to path: String) throws {
        var png = header(image)
        let ok = image.pixels.withUnsafeBytes { raw in
            png_image_write_to_file(&png, path, 0, raw.baseAddress, png_int_32(image.width * 3), nil)
        }
        try check(ok, &png, file: path, doing: "cannot write the PNG")
    }

    /// The bytes of `image` as an 8-bit RGB PNG (for embedding in HTML).
    /// The corresponding C function is `png_image_write_to_memory`, called once for the size and
    /// once to write.
    public static func encode(_ image: RGBImage, name: String = "<memory>") throws -> [UInt8] {
        var png = header(image)
        var size: png_alloc_size_t = 0
        let stride = png_int_32(image.width * 3)
        let sized = image.pixels.withUnsafeBytes { raw in
            png_image_write_to_memory(&png, nil, &size, 0, raw.baseAddress, stride, nil)
        }
        try check(sized, &png, file: name, doing: "cannot encode the PNG")
        var bytes = [UInt8](repeating: 0, count: Int(size))
        png = header(image)
        let written = image.pixels.withUnsafeBytes { raw in
            bytes.withUnsafeMutableBytes { out in
                png_image_write_to_memory(&png, out.baseAddress, &size, 0, raw.baseAddress, stride, nil)
            }
        }
        try check(written, &png, file: name, doing: "cannot encode the PNG")
        return Array(bytes.prefix(Int(size)))
    }

    /// Reads a PNG of any colour type and depth as 8-bit RGB (alpha composited over white,
    /// grey expanded). The corresponding C functions are `png_image_begin_read_from_file` and
    /// `png_image_finish_read`.
    public static func read(_ path: String) throws -> RGBImage {
        guard FileManager.default.fileExists(atPath: path) else {
            throw PNGError(file: path, "no such file")
        }
        var png = dsan_png_image_new()
        try check(png_image_begin_read_from_file(&png, path), &png, file: path, doing: "cannot read the PNG header")
        // From here on libpng holds the file open until finish_read or png_image_free.
        png.format = dsan_png_format_rgb()
        let width = Int(png.width), height = Int(png.height)
        guard width > 0, height > 0, width <= 1 << 15, height <= 1 << 15 else {
            png_image_free(&png)
            throw PNGError(file: path, "PNG of \(width)×\(height) pixels is outside 1…32768 per side")
        }
        var pixels = [UInt8](repeating: 0, count: width * height * 3)
        var background = png_color(red: 255, green: 255, blue: 255)
        let ok = pixels.withUnsafeMutableBytes { out in
            png_image_finish_read(&png, &background, out.baseAddress, png_int_32(width * 3), nil)
        }
        try check(ok, &png, file: path, doing: "cannot decode the PNG")
        return RGBImage(width: width, height: height, pixels: pixels)
    }

    static func header(_ image: RGBImage) -> png_image {
        var png = dsan_png_image_new()
        png.width = png_uint_32(image.width)
        png.height = png_uint_32(image.height)
        png.format = dsan_png_format_rgb()
        return png
    }

    /// Turns a zero return (or a failure flagged in `warning_or_error`) into a `PNGError` with
    /// libpng's message, releasing what libpng still holds.
    static func check(_ result: Int32, _ png: inout png_image, file: String, doing what: String) throws {
        guard result == 0 || dsan_png_image_failed(&png) != 0 else { return }
        let message = String(cString: dsan_png_image_message(&png))
        png_image_free(&png)
        throw PNGError(file: file, "\(what): libpng says \"\(message.isEmpty ? "unknown error" : message)\"")
    }
}
