import Foundation

/// A self-contained HTML page under construction: every figure is a PNG embedded as a base64
/// `data:` URI, so the one file can be mailed or archived alone.
struct HTMLPage {
    var title: String
    private(set) var body: [String] = []
    private(set) var figures = 0

    init(title: String) { self.title = title }

    static func escape(_ s: String) -> String {
        var out = ""
        out.reserveCapacity(s.count)
        for c in s {
            switch c {
            case "&": out += "&amp;"
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            case "\"": out += "&quot;"
            default: out.append(c)
            }
        }
        return out
    }

    mutating func heading(_ text: String, level: Int = 2, id: String? = nil) {
        body.append("<h\(level)\(id.map { " id=\"\(Self.escape($0))\"" } ?? "")>\(Self.escape(text))</h\(level)>")
    }

    /// A paragraph of already-escaped HTML.
    mutating func paragraph(html: String, class cls: String? = nil) {
        body.append("<p\(cls.map { " class=\"\($0)\"" } ?? "")>\(html)</p>")
    }

    mutating func paragraph(_ text: String, class cls: String? = nil) {
        paragraph(html: Self.escape(text), class: cls)
    }

    mutating func raw(_ html: String) { body.append(html) }

    /// A table: `header` rows of cells (each `Cell` may span columns or rows), then `rows`.
    /// Row `highlight` (an index into `rows`) is set in bold.
    mutating func table(caption: String?, header: [[Cell]], rows: [[Cell]], highlight: Int? = nil, class cls: String = "metrics") {
        var html = "<table class=\"\(cls)\">"
        if let caption { html += "<caption>\(Self.escape(caption))</caption>" }
        html += "<thead>" + header.map { "<tr>" + $0.map { $0.html(tag: "th") }.joined() + "</tr>" }.joined() + "</thead>"
        html += "<tbody>" + rows.enumerated().map { i, row in
            (i == highlight ? "<tr class=\"best\">" : "<tr>") + row.map { $0.html(tag: $0.isHeader ? "th" : "td") }.joined() + "</tr>"
        }.joined() + "</tbody>"
        body.append(html + "</table>")
    }

    /// A figure: the PNG of `image` inline, with a caption.
    mutating func figure(_ image: RGBImage, name: String, caption: String) throws {
        let png = try PNG.encode(image, name: name)
        let data = Data(png).base64EncodedString()
        body.append("""
        <figure><img src="data:image/png;base64,\(data)" width="\(image.width)" height="\(image.height)" alt="\(Self.escape(name))">\
        <figcaption>\(Self.escape(caption))</figcaption></figure>
        """)
        figures += 1
    }

    func render() -> String {
        """
        <!DOCTYPE html>
        <html lang="en">
        <head>
        <meta charset="utf-8">
        <title>\(Self.escape(title))</title>
        <style>
        body { font-family: -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; margin: 2em auto; max-width: 1500px; padding: 0 1em; color: #222; }
        h1 { font-size: 1.6em; } h2 { margin-top: 2em; border-bottom: 1px solid #ccc; } h3 { margin-top: 1.5em; }
        table { border-collapse: collapse; margin: 1em 0; font-size: 0.92em; }
        caption { text-align: left; font-weight: bold; padding-bottom: 0.4em; }
        th, td { border: 1px solid #bbb; padding: 0.25em 0.6em; }
        th { background: #f0f0f0; } td { text-align: right; font-variant-numeric: tabular-nums; }
        td.text, th.row { text-align: left; } tr.best td { font-weight: bold; }
        figure { display: inline-block; margin: 0.5em 1em 1em 0; vertical-align: top; }
        figure img { max-width: 100%; height: auto; border: 1px solid #ddd; }
        figcaption { font-size: 0.9em; max-width: 640px; }
        .note { color: #8a5a00; } .muted { color: #666; font-size: 0.9em; }
        </style>
        </head>
        <body>
        <h1>\(Self.escape(title))</h1>
        \(body.joined(separator: "\n"))
        </body>
        </html>

        """
    }

    /// One table cell.
    struct Cell {
        var text: String
        var columns = 1
        var rows = 1
        var isHeader = false
        var isText = false

        static func header(_ text: String, columns: Int = 1, rows: Int = 1) -> Cell {
            Cell(text: text, columns: columns, rows: rows, isHeader: true)
        }
        static func value(_ text: String) -> Cell { Cell(text: text) }
        static func label(_ text: String, rows: Int = 1) -> Cell { Cell(text: text, rows: rows, isHeader: true, isText: true) }
        static func text(_ text: String) -> Cell { Cell(text: text, isText: true) }

        func html(tag: String) -> String {
            var attributes = ""
            if columns > 1 { attributes += " colspan=\"\(columns)\"" }
            if rows > 1 { attributes += " rowspan=\"\(rows)\"" }
            if isText { attributes += tag == "th" ? " class=\"row\"" : " class=\"text\"" }
            return "<\(tag)\(attributes)>\(HTMLPage.escape(text))</\(tag)>"
        }
    }
}
