/// An sRGB colour, 8 bits per channel.
public struct Color: Sendable, Equatable, Hashable, CustomStringConvertible {
    public var r: UInt8
    public var g: UInt8
    public var b: UInt8

    public init(_ r: UInt8, _ g: UInt8, _ b: UInt8) {
        self.r = r
        self.g = g
        self.b = b
    }

    /// Grey level `v` in [0, 1] (clamped).
    public init(grey v: Double) {
        let g = Color.byte(v)
        self.init(g, g, g)
    }

    public static let black = Color(0, 0, 0)
    public static let white = Color(255, 255, 255)
    public static let grey = Color(128, 128, 128)
    public static let lightGrey = Color(215, 215, 215)
    public static let red = Color(230, 30, 30)
    public static let green = Color(40, 200, 60)
    public static let yellow = Color(255, 230, 0)

    /// Colours of the models' curves: distinguishable, also for the common colour-vision
    /// deficiencies (Okabe–Ito palette).
    public static let series: [Color] = [
        Color(0, 114, 178),   // blue
        Color(213, 94, 0),    // vermillion
        Color(0, 158, 115),   // bluish green
        Color(204, 121, 167), // reddish purple
        Color(230, 159, 0),   // orange
        Color(86, 180, 233),  // sky blue
        Color(0, 0, 0),       // black
    ]

    /// `a` over `self` with opacity `alpha` in [0, 1].
    public func blended(with a: Color, alpha: Double) -> Color {
        let t = min(max(alpha, 0), 1)
        func mix(_ x: UInt8, _ y: UInt8) -> UInt8 { UInt8((Double(x) * (1 - t) + Double(y) * t).rounded()) }
        return Color(mix(r, a.r), mix(g, a.g), mix(b, a.b))
    }

    /// `#rrggbb`.
    public var description: String {
        "#" + [r, g, b].map { ($0 < 16 ? "0" : "") + String($0, radix: 16) }.joined()
    }

    static func byte(_ v: Double) -> UInt8 {
        guard v.isFinite else { return 0 }
        return UInt8((min(max(v, 0), 1) * 255).rounded())
    }

    /// The jet colour map (dark blue → blue → cyan → yellow → red → dark red) at `v` in [0, 1],
    /// the usual colour scale of attention and saliency maps.
    public static func jet(_ v: Double) -> Color {
        let t = v.isFinite ? min(max(v, 0), 1) : 0
        func channel(_ centre: Double) -> Double { min(max(1.5 - abs(4 * t - centre), 0), 1) }
        return Color(byte(channel(3)), byte(channel(2)), byte(channel(1)))
    }
}

/// An RGB raster image: `width` × `height` pixels, rows top to bottom, 3 bytes per pixel.
///
/// Drawing clips at the borders, so callers may draw partly outside. Coordinates are pixel
/// indices, x to the right and y downwards; a pixel's centre is at (x + ½, y + ½) for the
/// anti-aliased primitives that take `Double` coordinates.
public struct RGBImage: Sendable, Equatable {
    public let width: Int
    public let height: Int
    /// [height, width, 3], row-major.
    public var pixels: [UInt8]

    public init(width: Int, height: Int, background: Color = .white) {
        precondition(width > 0 && height > 0, "RGBImage: size \(width)×\(height)")
        self.width = width
        self.height = height
        pixels = [UInt8](repeating: 0, count: width * height * 3)
        if background != .black { fill(background) }
    }

    /// An image over existing RGB bytes ([height, width, 3]).
    public init(width: Int, height: Int, pixels: [UInt8]) {
        precondition(width > 0 && height > 0 && pixels.count == width * height * 3,
                     "RGBImage: \(pixels.count) bytes for \(width)×\(height)")
        self.width = width
        self.height = height
        self.pixels = pixels
    }

    public subscript(x: Int, y: Int) -> Color {
        get {
            precondition(x >= 0 && x < width && y >= 0 && y < height, "RGBImage: pixel (\(x), \(y)) of \(width)×\(height)")
            let i = (y * width + x) * 3
            return Color(pixels[i], pixels[i + 1], pixels[i + 2])
        }
        set { set(x, y, newValue) }
    }

    /// Sets a pixel; outside the image nothing happens.
    @inline(__always)
    public mutating func set(_ x: Int, _ y: Int, _ c: Color) {
        guard x >= 0 && x < width && y >= 0 && y < height else { return }
        let i = (y * width + x) * 3
        pixels[i] = c.r
        pixels[i + 1] = c.g
        pixels[i + 2] = c.b
    }

    /// Blends `c` over a pixel with opacity `alpha`; outside the image nothing happens.
    @inline(__always)
    public mutating func blend(_ x: Int, _ y: Int, _ c: Color, alpha: Double) {
        guard x >= 0 && x < width && y >= 0 && y < height, alpha > 0 else { return }
        if alpha >= 1 { set(x, y, c); return }
        let i = (y * width + x) * 3
        let old = Color(pixels[i], pixels[i + 1], pixels[i + 2]).blended(with: c, alpha: alpha)
        pixels[i] = old.r
        pixels[i + 1] = old.g
        pixels[i + 2] = old.b
    }

    public mutating func fill(_ c: Color) {
        fillRect(x: 0, y: 0, width: width, height: height, c)
    }

    /// Fills the rectangle of pixels [x, x + width) × [y, y + height), clipped.
    public mutating func fillRect(x: Int, y: Int, width w: Int, height h: Int, _ c: Color, alpha: Double = 1) {
        let x0 = max(0, x), x1 = min(width, x + w), y0 = max(0, y), y1 = min(height, y + h)
        guard x0 < x1 && y0 < y1 else { return }
        for py in y0..<y1 {
            for px in x0..<x1 { blend(px, py, c, alpha: alpha) }
        }
    }

    /// A one-pixel rectangle outline around [x, x + width) × [y, y + height).
    public mutating func strokeRect(x: Int, y: Int, width w: Int, height h: Int, _ c: Color) {
        fillRect(x: x, y: y, width: w, height: 1, c)
        fillRect(x: x, y: y + h - 1, width: w, height: 1, c)
        fillRect(x: x, y: y, width: 1, height: h, c)
        fillRect(x: x + w - 1, y: y, width: 1, height: h, c)
    }

    /// An anti-aliased line segment of `thickness` pixels with round caps from (x0, y0) to
    /// (x1, y1) in continuous coordinates (pixel (i, j) covers [i, i + 1) × [j, j + 1)).
    /// Coverage is 1 within thickness/2 of the segment and falls off linearly over one pixel.
    public mutating func line(_ x0: Double, _ y0: Double, _ x1: Double, _ y1: Double,
                              thickness: Double = 1, _ c: Color) {
        let r = max(thickness, 0.5) / 2
        let minX = Int((min(x0, x1) - r - 1).rounded(.down)), maxX = Int((max(x0, x1) + r + 1).rounded(.up))
        let minY = Int((min(y0, y1) - r - 1).rounded(.down)), maxY = Int((max(y0, y1) + r + 1).rounded(.up))
        let dx = x1 - x0, dy = y1 - y0, length2 = dx * dx + dy * dy
        for py in max(0, minY)...min(height - 1, max(0, maxY)) {
            for px in max(0, minX)...min(width - 1, max(0, maxX)) {
                let cx = Double(px) + 0.5, cy = Double(py) + 0.5
                // Distance from the pixel centre to the segment.
                var t = length2 > 0 ? ((cx - x0) * dx + (cy - y0) * dy) / length2 : 0
                t = min(max(t, 0), 1)
                let ex = cx - (x0 + t * dx), ey = cy - (y0 + t * dy)
                let d = (ex * ex + ey * ey).squareRoot()
                let coverage = min(max(r + 0.5 - d, 0), 1)
                if coverage > 0 { blend(px, py, c, alpha: coverage) }
            }
        }
    }

    /// Consecutive segments through `points`; `dash` = (on, off) lengths in pixels draws a dashed
    /// line whose pattern runs on across the vertices.
    public mutating func polyline(_ points: [(x: Double, y: Double)], thickness: Double = 1, _ c: Color,
                                  dash: (on: Double, off: Double)? = nil) {
        guard points.count >= 2 else {
            if let p = points.first { line(p.x, p.y, p.x, p.y, thickness: thickness, c) }
            return
        }
        var phase = 0.0  // distance along the current dash period
        for (a, b) in zip(points, points.dropFirst()) {
            guard let dash else {
                line(a.x, a.y, b.x, b.y, thickness: thickness, c)
                continue
            }
            let length = ((b.x - a.x) * (b.x - a.x) + (b.y - a.y) * (b.y - a.y)).squareRoot()
            guard length > 0 else { continue }
            var s = 0.0
            while s < length {
                let period = dash.on + dash.off
                let inOn = phase < dash.on
                let step = min(length - s, inOn ? dash.on - phase : period - phase)
                if inOn {
                    let t0 = s / length, t1 = (s + step) / length
                    line(a.x + t0 * (b.x - a.x), a.y + t0 * (b.y - a.y), a.x + t1 * (b.x - a.x), a.y + t1 * (b.y - a.y),
                         thickness: thickness, c)
                }
                s += step
                phase += step
                if phase >= period { phase -= period }
            }
        }
    }

    /// Copies `image` with its top-left corner at (x, y), clipped.
    public mutating func draw(_ image: RGBImage, x: Int, y: Int) {
        for sy in 0..<image.height {
            let ty = y + sy
            guard ty >= 0 && ty < height else { continue }
            for sx in 0..<image.width {
                let tx = x + sx
                guard tx >= 0 && tx < width else { continue }
                let s = (sy * image.width + sx) * 3, t = (ty * width + tx) * 3
                pixels[t] = image.pixels[s]
                pixels[t + 1] = image.pixels[s + 1]
                pixels[t + 2] = image.pixels[s + 2]
            }
        }
    }

    /// The image turned a quarter turn counter-clockwise (for vertical axis titles).
    public func rotatedCounterClockwise() -> RGBImage {
        var out = RGBImage(width: height, height: width, background: .black)
        for y in 0..<height {
            for x in 0..<width {
                // (x, y) → (y, width − 1 − x)
                out.set(y, width - 1 - x, self[x, y])
            }
        }
        return out
    }
}
