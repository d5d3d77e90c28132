import Foundation
import NumericalTesting
import Report
import Testing

func temporaryPath(_ name: String) -> String {
    (try! Scratch.directory("report") as NSString).appendingPathComponent(name)
}

@Suite struct PNGTests {
    @Test func roundTripKeepsEveryPixel() throws {
        var image = RGBImage(width: 37, height: 23)
        for y in 0..<23 {
            for x in 0..<37 { image[x, y] = Color(UInt8(x * 7 % 256), UInt8(y * 11 % 256), UInt8((x * y) % 256)) }
        }
        let path = temporaryPath("round.png")
        defer { try? FileManager.default.removeItem(atPath: path) }
        try PNG.write(image, to: path)
        let back = try PNG.read(path)
        #expect(back.width == 37 && back.height == 23)
        #expect(back == image)
        // The in-memory encoder writes the same image.
        let encoded = try PNG.encode(image)
        #expect(encoded.starts(with: [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]))
        let path2 = temporaryPath("round2.png")
        defer { try? FileManager.default.removeItem(atPath: path2) }
        try Data(encoded).write(to: URL(fileURLWithPath: path2))
        #expect(try PNG.read(path2) == image)
    }

    @Test func writeErrorNamesTheFileAndCarriesLibpngsMessage() throws {
        let path = "/nonexistent-dir-\(UUID().uuidString)/x.png"
        #expect {
            try PNG.write(RGBImage(width: 2, height: 2), to: path)
        } throws: { error in
            let e = error as? PNGError
            return e?.file == path && "\(error)".contains(path) && "\(error)".contains("libpng says")
        }
    }

    @Test func readErrorsNameTheFile() throws {
        let missing = temporaryPath("missing.png")
        #expect { try PNG.read(missing) } throws: { "\($0)" == "\(missing): no such file" }
        let garbage = temporaryPath("garbage.png")
        defer { try? FileManager.default.removeItem(atPath: garbage) }
        try Data("not a png at all".utf8).write(to: URL(fileURLWithPath: garbage))
        #expect { try PNG.read(garbage) } throws: { "\($0)".hasPrefix("\(garbage): cannot read the PNG header: libpng says") }
    }
}

@Suite struct DrawingTests {
    /// "T" is a full top row and a centre column: at scale 2 each font pixel is a 2 × 2 block.
    @Test func glyphPixels() {
        var image = RGBImage(width: 20, height: 20)
        image.text("T", x: 3, y: 4, scale: 2, .black)
        for row in 0..<7 {
            for column in 0..<5 {
                let expected = row == 0 || column == 2
                #expect(BitmapFont.isSet("T", column: column, row: row) == expected)
                for dy in 0..<2 {
                    for dx in 0..<2 {
                        #expect((image[3 + 2 * column + dx, 4 + 2 * row + dy] == .black) == expected, "T at (\(column), \(row))")
                    }
                }
            }
        }
        // Nothing outside the 10 × 14 cell.
        var inked = 0
        for y in 0..<20 { for x in 0..<20 where image[x, y] != .white { inked += 1 } }
        #expect(inked == (5 + 6) * 4)
    }

    @Test func textSizeAndAnchors() {
        #expect(BitmapFont.size("AUC", scale: 2) == (34, 14))
        var image = RGBImage(width: 40, height: 20)
        image.text("I", x: 20, y: 10, scale: 1, .black, anchor: .centre)
        // "I" is its middle column (x offset 2) over 7 rows; centred: left = 20 - 2, top = 10 - 3.
        #expect(image[20, 7] == .black && image[20, 13] == .black && image[20, 14] == .white)
    }

    @Test func thickLineCoversItsWidthOnly() {
        var image = RGBImage(width: 30, height: 30)
        image.line(5, 15.5, 25, 15.5, thickness: 5, .black)
        #expect(image[15, 15] == .black && image[15, 13] == .black && image[15, 17] == .black)
        #expect(image[15, 10] == .white && image[15, 20] == .white)
        #expect(image[3, 15] == .black && image[1, 15] == .white)  // round caps reach 2.5 px beyond the ends
    }

    @Test func jetRunsFromBlueToRed() {
        #expect(Color.jet(0).b > 100 && Color.jet(0).r == 0)
        #expect(Color.jet(1).r > 100 && Color.jet(1).b == 0)
        #expect(Color.jet(0.5).g == 255)
    }
}

@Suite struct ROCTests {
    /// Scores 0.9 (+), 0.8 (−), 0.7 (+), 0.7 (−), 0.2 (−): two positives, three negatives.
    @Test func handMadeCurve() throws {
        let curve = try #require(ROCCurve(labels: [1, 0, 1, 0, 0], scores: [0.9, 0.8, 0.7, 0.7, 0.2]))
        let expected: [(Double, Double)] = [(0, 0), (0, 0.5), (1.0 / 3, 0.5), (2.0 / 3, 1), (1, 1)]
        #expect(curve.points.count == expected.count)
        for (p, e) in zip(curve.points, expected) {
            #expect(abs(p.falsePositiveRate - e.0) < 1e-12 && abs(p.truePositiveRate - e.1) < 1e-12)
        }
        // Pairs won: (0.9 > all three) 3 + (0.7 > 0.2) 1 + tie with 0.7 ½ = 4.5 of 6.
        #expect(abs(curve.auc - 0.75) < 1e-12)
        #expect(abs(curve.trapezoidalArea - curve.auc) < 1e-12)
    }

    @Test func oneClassHasNoCurve() {
        #expect(ROCCurve(labels: [1, 1], scores: [0.2, 0.3]) == nil)
    }
}
