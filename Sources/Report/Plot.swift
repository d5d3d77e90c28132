import Foundation

/// A line plot rendered to an `RGBImage`: axes with tick labels and titles, grid lines, series
/// clipped to the plot area, optional vertical markers and a legend.
///
/// Text is the 5 × 7 bitmap font at `textScale` (2 = 10 × 14-pixel letters, readable when the
/// PNG is shown at its own size).
public struct LinePlot {
    public struct Axis {
        public var title: String
        public var lower: Double
        public var upper: Double
        public var ticks: [Double]
        /// Decimals of the tick labels.
        public var decimals: Int

        public init(title: String, lower: Double, upper: Double, ticks: [Double], decimals: Int) {
            precondition(upper > lower, "Axis \(title): empty range \(lower)…\(upper)")
            self.title = title
            self.lower = lower
            self.upper = upper
            self.ticks = ticks
            self.decimals = decimals
        }

        /// An axis from 0 to 1 with ticks every 0.2 (ROC plots), padded by 2 % on both sides so a
        /// curve along 0 or 1 stays visible inside the frame.
        public static func unit(_ title: String) -> Axis {
            Axis(title: title, lower: -0.02, upper: 1.02, ticks: stride(from: 0, through: 1.0001, by: 0.2).map { $0 }, decimals: 1)
        }

        /// An axis covering `values` with about `count` round ticks (steps of 1, 2 or 5 × 10^k).
        /// `integer` keeps the step at least 1 (epochs, steps).
        public static func covering(_ title: String, _ values: [Double], count: Int = 5, includeZero: Bool = false,
                                    integer: Bool = false) -> Axis {
            var lo = values.filter(\.isFinite).min() ?? 0, hi = values.filter(\.isFinite).max() ?? 1
            if includeZero { lo = min(lo, 0); hi = max(hi, 0) }
            if hi <= lo { hi = lo + (lo == 0 ? 1 : abs(lo) * 0.1) }
            let raw = (hi - lo) / Double(max(count, 1))
            let magnitude = pow(10, (log10(raw)).rounded(.down))
            var step = [1.0, 2, 5, 10].map { $0 * magnitude }.first { $0 >= raw } ?? 10 * magnitude
            if integer { step = max(step, 1) }
            let lower = (lo / step).rounded(.down) * step, upper = (hi / step).rounded(.up) * step
            let ticks = stride(from: lower, through: upper + step / 2, by: step).map { $0 }
            let decimals = max(0, -Int(log10(step).rounded(.down)))
            return Axis(title: title, lower: lower, upper: max(upper, lower + step), ticks: ticks, decimals: decimals)
        }

        func label(_ v: Double) -> String {
            let s = String(format: "%.\(decimals)f", v)
            return s.hasPrefix("-") && Double(s) == 0 ? String(s.dropFirst()) : s
        }
    }

    public struct Series {
        public var name: String?
        public var points: [(x: Double, y: Double)]
        public var color: Color
        public var thickness: Double
        public var dash: (on: Double, off: Double)?
        /// A dot of this diameter (pixels) at every point.
        public var dots: Double?

        public init(name: String?, points: [(x: Double, y: Double)], color: Color, thickness: Double = 2.5,
                    dash: (on: Double, off: Double)? = nil, dots: Double? = nil) {
            self.name = name
            self.dots = dots
            self.points = points
            self.color = color
            self.thickness = thickness
            self.dash = dash
        }
    }

    public enum LegendPlace { case lowerRight, upperRight, none }

    public var title: String
    public var x: Axis
    public var y: Axis
    public var series: [Series] = []
    /// Vertical dashed lines at these x values (e.g. epoch boundaries) under the series, each
    /// with its label at the top when there is room.
    public var markers: [(x: Double, label: String)] = []
    public var legend: LegendPlace = .lowerRight
    public var width = 620
    public var height = 560
    public var textScale = 2
    /// Equal units on both axes (ROC plots are square).
    public var square = false

    public init(title: String, x: Axis, y: Axis) {
        self.title = title
        self.x = x
        self.y = y
    }

    public func render() -> RGBImage {
        let s = textScale
        let charH = BitmapFont.glyphHeight * s
        let tickLabelWidth = y.ticks.map { BitmapFont.size(y.label($0), scale: s).width }.max() ?? 0
        let left = charH + 3 * s + tickLabelWidth + 8 * s + 6
        let bottom = 2 * charH + 14 * s
        // Marker labels sit in a band between the title and the plot, clear of the legend.
        let top = (title.isEmpty ? 6 * s : charH + 10 * s) + (markers.isEmpty ? 0 : charH + 4 * s)
        let right = 12 * s
        var plotW = width - left - right, plotH = height - top - bottom
        if square { plotW = min(plotW, plotH); plotH = plotW }
        var image = RGBImage(width: left + plotW + right, height: top + plotH + bottom)

        func px(_ v: Double) -> Double { (v - x.lower) / (x.upper - x.lower) * Double(plotW) }
        func py(_ v: Double) -> Double { Double(plotH) - (v - y.lower) / (y.upper - y.lower) * Double(plotH) }

        // Plot area: grid, markers, series, clipped by drawing into its own image.
        var area = RGBImage(width: plotW, height: plotH)
        for t in x.ticks { area.line(px(t), 0, px(t), Double(plotH), thickness: 1, Color(235, 235, 235)) }
        for t in y.ticks { area.line(0, py(t), Double(plotW), py(t), thickness: 1, Color(235, 235, 235)) }
        for m in markers {
            area.polyline([(px(m.x), 0), (px(m.x), Double(plotH))], thickness: 1, Color(160, 160, 160), dash: (4, 4))
        }
        for series in self.series {
            let points = series.points.map { (x: px($0.x), y: py($0.y)) }
            area.polyline(points, thickness: series.thickness, series.color, dash: series.dash)
            if let d = series.dots { for p in points { area.line(p.x, p.y, p.x, p.y, thickness: d, series.color) } }
        }
        image.draw(area, x: left, y: top)
        var lastLabel = -Double.infinity
        for m in markers {
            let x = px(m.x), w = Double(BitmapFont.size(m.label, scale: s).width)
            if x - w / 2 > lastLabel + Double(4 * s) && x + w / 2 < Double(plotW + right) {
                image.text(m.label, x: left + Int(x), y: top - 3 * s, scale: s, Color(110, 110, 110), anchor: .bottom)
                lastLabel = x + w / 2
            }
        }
        image.strokeRect(x: left - 1, y: top - 1, width: plotW + 2, height: plotH + 2, .black)

        // Ticks and their labels.
        let tick = 4 * s
        for t in x.ticks {
            let cx = left + Int(px(t).rounded())
            image.fillRect(x: cx, y: top + plotH + 1, width: 1 + s / 2, height: tick, .black)
            image.text(x.label(t), x: cx, y: top + plotH + tick + 3 * s, scale: s, .black, anchor: .top)
        }
        for t in y.ticks {
            let cy = top + Int(py(t).rounded())
            image.fillRect(x: left - 1 - tick, y: cy, width: tick, height: 1 + s / 2, .black)
            image.text(y.label(t), x: left - tick - 4 * s, y: cy, scale: s, .black, anchor: .right)
        }
        // Axis titles and the plot title.
        image.text(x.title, x: left + plotW / 2, y: image.height - 4 * s, scale: s, .black, anchor: .bottom)
        image.verticalText(y.title, x: 2 * s + charH / 2, y: top + plotH / 2, scale: s, .black)
        if !title.isEmpty { image.text(title, x: left + plotW / 2, y: 4 * s, scale: s, .black, anchor: .top) }

        // Legend.
        let named = self.series.filter { $0.name != nil }
        if legend != .none && !named.isEmpty {
            let swatch = 14 * s, gap = 4 * s, lineH = charH + 4 * s
            let textW = named.map { BitmapFont.size($0.name!, scale: s).width }.max()!
            let boxW = gap + swatch + gap + textW + gap, boxH = gap + named.count * lineH
            let bx = left + plotW - boxW - 4 * s
            let by = legend == .lowerRight ? top + plotH - boxH - 4 * s : top + 4 * s
            image.fillRect(x: bx, y: by, width: boxW, height: boxH, .white)
            image.strokeRect(x: bx, y: by, width: boxW, height: boxH, .grey)
            for (i, series) in named.enumerated() {
                let cy = by + gap + i * lineH + charH / 2
                var sample = [(x: Double(bx + gap), y: Double(cy) + 0.5), (x: Double(bx + gap + swatch), y: Double(cy) + 0.5)]
                if series.dash != nil { sample = [sample[0], sample[1]] }
                image.polyline(sample, thickness: series.thickness, series.color, dash: series.dash)
                image.text(series.name!, x: bx + gap + swatch + gap, y: cy, scale: s, .black, anchor: .left)
            }
        }
        return image
    }
}
