import Foundation

/// One case's volumes on the shard grid: [D, H, W] with x fastest (index x + W·(y + H·z)), in
/// RAS+ voxel order as `dsan prepare` writes them (x towards the patient's Right, y Anterior,
/// z Superior), `spacing` in mm along x, y, z.
public struct CaseVolumes {
    /// [D, H, W].
    public var size: [Int]
    /// mm along x, y, z.
    public var spacing: [Double]
    /// The CT as stored, in [0, 1] (the preprocessing window −1350…150 HU).
    public var image: [Float]
    public var lung: [UInt8]?
    /// nil when the case has no infection mask.
    public var infection: [UInt8]?

    public init(size: [Int], spacing: [Double], image: [Float], lung: [UInt8]?, infection: [UInt8]?) {
        let n = size.reduce(1, *)
        precondition(size.count == 3 && image.count == n && (lung?.count ?? n) == n && (infection?.count ?? n) == n,
                     "CaseVolumes: volumes do not match size \(size)")
        self.size = size
        self.spacing = spacing
        self.image = image
        self.lung = lung
        self.infection = infection
    }
}

/// An attention map on the same grid as `CaseVolumes`, with the label of its panel.
public struct AttentionMap {
    public var name: String
    public var voxels: [Float]

    public init(name: String, voxels: [Float]) {
        self.name = name
        self.voxels = voxels
    }
}

/// The axial and coronal slices a case figure shows, and why they were chosen.
public struct SliceChoice: Sendable, Equatable {
    /// Axial slice index (z) and coronal slice index (y).
    public var z: Int
    public var y: Int
    public var reason: Reason

    public init(z: Int, y: Int, reason: Reason) {
        self.z = z
        self.y = y
        self.reason = reason
    }

    public enum Reason: Sendable, Equatable, CustomStringConvertible {
        /// Largest infection cross-section in each plane.
        case infection
        /// Through the voxel of the highest attention (no infection voxel).
        case attentionMaximum
        /// The middle of the volume (neither mask nor map).
        case centre

        public var description: String {
            switch self {
            case .infection: "through the largest infection cross-section"
            case .attentionMaximum: "through the attention maximum (no infection mask)"
            case .centre: "through the centre of the volume"
            }
        }
    }

    /// The axial slice with the most infection voxels and, separately, the coronal slice with the
    /// most; without infection voxels, both through the maximum of the mean attention map.
    public static func choose(size: [Int], infection: [UInt8]?, maps: [[Float]]) -> SliceChoice {
        let (d, h, w) = (size[0], size[1], size[2])
        if let infection, infection.contains(where: { $0 != 0 }) {
            var perZ = [Int](repeating: 0, count: d), perY = [Int](repeating: 0, count: h)
            for z in 0..<d {
                for y in 0..<h {
                    let row = (z * h + y) * w
                    var n = 0
                    for x in 0..<w where infection[row + x] != 0 { n += 1 }
                    perZ[z] += n
                    perY[y] += n
                }
            }
            return SliceChoice(z: perZ.indices.max { perZ[$0] < perZ[$1] }!,
                               y: perY.indices.max { perY[$0] < perY[$1] }!, reason: .infection)
        }
        if !maps.isEmpty {
            var best = -Float.infinity, at = 0
            for i in 0..<(d * h * w) {
                var v: Float = 0
                for m in maps { v += m[i] }
                if v > best { best = v; at = i }
            }
            if best.isFinite {
                return SliceChoice(z: at / (h * w), y: (at / w) % h, reason: .attentionMaximum)
            }
        }
        return SliceChoice(z: d / 2, y: h / 2, reason: .centre)
    }
}

/// The paper's Fig. 5 for one case: rows axial and coronal, columns the CT, the CT with the
/// infection (translucent red with its outline, the lung outlined in green), and the CT with each
/// model's attention map (jet colours, translucent, scaled to each map's maximum).
///
/// Slices are shown the way radiologists read them: axial with anterior at the top and the
/// patient's right on the image's left; coronal with superior at the top and the patient's right
/// on the left. Each panel carries the orientation letters at its edges. Pixels are square in
/// millimetres (the 1.25 mm slices are stretched against the 0.7168 mm in-plane voxels).
public enum SliceFigure {
    /// Width of one panel in pixels.
    public static let panelWidth = 256

    public static func render(title: String, volumes v: CaseVolumes, maps: [AttentionMap], choice: SliceChoice) -> RGBImage {
        let (d, h, w) = (v.size[0], v.size[1], v.size[2])
        for m in maps { precondition(m.voxels.count == d * h * w, "attention map \(m.name): \(m.voxels.count) voxels for \(v.size)") }
        let s = 2
        let charH = BitmapFont.glyphHeight * s
        let gap = 6
        let rowLabelW = charH + 8
        let headerH = charH + 8
        let titleH = charH + 12

        // The two planes: (columns, rows, mm per column, mm per row, voxel index of a pixel).
        // Columns run from the patient's right (x = W − 1) to left; rows from anterior (y = H − 1)
        // or superior (z = D − 1) down.
        let axial = Plane(columns: w, rows: h, columnMM: v.spacing[0], rowMM: v.spacing[1]) { c, r in
            (w - 1 - c) + w * ((h - 1 - r) + h * choice.z)
        }
        let coronal = Plane(columns: w, rows: d, columnMM: v.spacing[0], rowMM: v.spacing[2]) { c, r in
            (w - 1 - c) + w * (choice.y + h * (d - 1 - r))
        }
        let planes = [(axial, "axial z=\(choice.z)", ("A", "P")), (coronal, "coronal y=\(choice.y)", ("S", "I"))]

        let maxima = maps.map { m in max(m.voxels.filter(\.isFinite).max() ?? 0, Float.leastNormalMagnitude) }
        let columns = 2 + maps.count
        let panelH = planes.map { $0.0.displayHeight(width: panelWidth) }
        let colourBarH = charH * 2 + 26
        let width = rowLabelW + columns * (panelWidth + gap) + gap
        let height = titleH + headerH + panelH.reduce(0, +) + gap * planes.count + colourBarH
        var image = RGBImage(width: width, height: height)
        image.text(title, x: 6, y: 6, scale: s, .black)

        let headers = ["CT", "infection"] + maps.map(\.name)
        for (i, header) in headers.enumerated() {
            image.text(header, x: rowLabelW + i * (panelWidth + gap) + panelWidth / 2, y: titleH, scale: s, .black, anchor: .top)
        }
        var top = titleH + headerH
        for (p, (plane, label, (upper, lower))) in planes.enumerated() {
            let ph = panelH[p]
            image.verticalText(label, x: rowLabelW / 2, y: top + ph / 2, scale: s, .black)
            let grey = plane.sample(v.image, width: panelWidth, height: ph)
            for column in 0..<columns {
                var panel = RGBImage(width: panelWidth, height: ph, background: .black)
                for i in 0..<(panelWidth * ph) {
                    let g = Color(grey: Double(grey[i]))
                    panel.set(i % panelWidth, i / panelWidth, g)
                }
                if column == 1 {
                    if let lung = v.lung {
                        let mask = plane.nearest(lung, width: panelWidth, height: ph)
                        outline(&panel, mask, .green)
                    }
                    if let infection = v.infection {
                        let mask = plane.nearest(infection, width: panelWidth, height: ph)
                        for i in 0..<mask.count where mask[i] != 0 { panel.blend(i % panelWidth, i / panelWidth, .red, alpha: 0.45) }
                        outline(&panel, mask, .red)
                    } else {
                        panel.text("no mask", x: panelWidth / 2, y: ph / 2, scale: s, .yellow, anchor: .centre)
                    }
                } else if column >= 2 {
                    let m = column - 2
                    let values = plane.sample(maps[m].voxels, width: panelWidth, height: ph)
                    for i in 0..<values.count {
                        let t = Double(values[i] / maxima[m])
                        // Fully transparent below a tenth of the maximum, then up to 70 % opaque.
                        let alpha = min(max((t - 0.1) / 0.9, 0), 1) * 0.7
                        if alpha > 0 { panel.blend(i % panelWidth, i / panelWidth, Color.jet(t), alpha: alpha) }
                    }
                }
                orientationLetters(&panel, upper: upper, lower: lower)
                image.draw(panel, x: rowLabelW + column * (panelWidth + gap), y: top)
            }
            top += ph + gap
        }

        // Colour bar of the attention panels.
        if !maps.isEmpty {
            let barX = rowLabelW + 2 * (panelWidth + gap), barW = min(2 * panelWidth, width - barX - 40), barY = top + 6
            for i in 0..<barW {
                image.fillRect(x: barX + i, y: barY, width: 1, height: 12, Color.jet(Double(i) / Double(barW - 1)))
            }
            image.strokeRect(x: barX - 1, y: barY - 1, width: barW + 2, height: 14, .black)
            image.text("0", x: barX, y: barY + 16, scale: s, .black, anchor: .top)
            image.text("1", x: barX + barW, y: barY + 16, scale: s, .black, anchor: .top)
            image.text("attention / map maximum", x: barX + barW / 2, y: barY + 16, scale: s, .black, anchor: .top)
            image.text("infection", x: rowLabelW, y: barY, scale: s, .red)
            image.text("lung", x: rowLabelW + BitmapFont.size("infection ", scale: s).width, y: barY, scale: s, Color(20, 150, 40))
        }
        return image
    }

    /// The patient's right is on the image's left in both planes.
    static func orientationLetters(_ panel: inout RGBImage, upper: String, lower: String) {
        let s = 2
        func label(_ t: String, _ x: Int, _ y: Int, _ anchor: TextAnchor) {
            panel.text(t, x: x + 1, y: y + 1, scale: s, .black, anchor: anchor)
            panel.text(t, x: x, y: y, scale: s, .yellow, anchor: anchor)
        }
        label(upper, panel.width / 2, 3, .top)
        label(lower, panel.width / 2, panel.height - 3, .bottom)
        label("R", 3, panel.height / 2, .left)
        label("L", panel.width - 3, panel.height / 2, .right)
    }

    /// Colours the pixels of `mask` that touch a pixel outside it (4-neighbourhood).
    static func outline(_ panel: inout RGBImage, _ mask: [UInt8], _ c: Color) {
        let w = panel.width, h = panel.height
        for y in 0..<h {
            for x in 0..<w where mask[y * w + x] != 0 {
                let edge = x == 0 || y == 0 || x == w - 1 || y == h - 1
                    || mask[y * w + x - 1] == 0 || mask[y * w + x + 1] == 0
                    || mask[(y - 1) * w + x] == 0 || mask[(y + 1) * w + x] == 0
                if edge { panel.set(x, y, c) }
            }
        }
    }
}

/// A 2D view into a volume: `columns` × `rows` voxels of `columnMM` × `rowMM`, and the linear
/// voxel index of each (column, row).
struct Plane {
    var columns: Int
    var rows: Int
    var columnMM: Double
    var rowMM: Double
    var index: (Int, Int) -> Int

    /// Panel height that keeps millimetres square at `width` pixels across.
    func displayHeight(width: Int) -> Int {
        max(1, Int((Double(width) * Double(rows) * rowMM / (Double(columns) * columnMM)).rounded()))
    }

    /// Continuous voxel coordinate of a display pixel's centre along an axis of n voxels shown
    /// over `pixels` pixels.
    static func coordinate(_ p: Int, pixels: Int, voxels n: Int) -> Double {
        (Double(p) + 0.5) * Double(n) / Double(pixels) - 0.5
    }

    /// Bilinear samples of `values` at each display pixel, row-major [height, width].
    func sample(_ values: [Float], width: Int, height: Int) -> [Float] {
        var out = [Float](repeating: 0, count: width * height)
        for r in 0..<height {
            let fr = min(max(Plane.coordinate(r, pixels: height, voxels: rows), 0), Double(rows - 1))
            let r0 = Int(fr), r1 = min(r0 + 1, rows - 1), tr = Float(fr - Double(r0))
            for c in 0..<width {
                let fc = min(max(Plane.coordinate(c, pixels: width, voxels: columns), 0), Double(columns - 1))
                let c0 = Int(fc), c1 = min(c0 + 1, columns - 1), tc = Float(fc - Double(c0))
                let a = values[index(c0, r0)], b = values[index(c1, r0)]
                let e = values[index(c0, r1)], f = values[index(c1, r1)]
                let top = a + (b - a) * tc, bottom = e + (f - e) * tc
                let v = top + (bottom - top) * tr
                out[r * width + c] = v.isFinite ? v : 0
            }
        }
        return out
    }

    /// Nearest-voxel samples of a mask at each display pixel.
    func nearest(_ values: [UInt8], width: Int, height: Int) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: width * height)
        for r in 0..<height {
            let vr = min(max(Int(Plane.coordinate(r, pixels: height, voxels: rows).rounded()), 0), rows - 1)
            for c in 0..<width {
                let vc = min(max(Int(Plane.coordinate(c, pixels: width, voxels: columns).rounded()), 0), columns - 1)
                out[r * width + c] = values[index(vc, vr)]
            }
        }
        return out
    }
}
