import Foundation
import TensorCore

/// A figure as a list of axis-aligned rectangles and text runs, drawn as SVG or as pixels
/// (for the PNG reports). Coordinates are pixels from the top-left corner.
public struct Chart: Sendable {
    public struct Color: Hashable, Sendable {
        public var red, green, blue: UInt8
        public init(_ red: UInt8, _ green: UInt8, _ blue: UInt8) { self.red = red; self.green = green; self.blue = blue }
        var hex: String { String(format: "#%02X%02X%02X", red, green, blue) }
    }

    enum Mark: Sendable {
        case rect(x: Int, y: Int, width: Int, height: Int, color: Color)
        /// (x, y) is the top-left of the run (rotated runs: its top-right, reading downwards).
        case text(x: Int, y: Int, string: String, size: Int, anchorEnd: Bool, rotated: Bool)
    }

    public let width: Int
    public let height: Int
    var marks: [Mark] = []

    public init(width: Int, height: Int) { self.width = width; self.height = height }

    public mutating func rect(_ x: Int, _ y: Int, _ width: Int, _ height: Int, _ color: Color) {
        marks.append(.rect(x: x, y: y, width: width, height: height, color: color))
    }

    /// A run of text with its top at `y`; `anchorEnd` right-aligns it at `x`; `rotated` turns
    /// it 90° clockwise, reading downwards from (x, y).
    public mutating func text(_ x: Int, _ y: Int, _ string: String, size: Int = 10, anchorEnd: Bool = false, rotated: Bool = false) {
        marks.append(.text(x: x, y: y, string: string, size: size, anchorEnd: anchorEnd, rotated: rotated))
    }

    static func escape(_ text: String) -> String {
        text.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;").replacingOccurrences(of: ">", with: "&gt;")
    }

    public var svg: String {
        var lines = ["<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"\(width)\" height=\"\(height)\" font-family=\"DejaVu Sans Mono, monospace\">",
                     "<rect width=\"\(width)\" height=\"\(height)\" fill=\"#FFFFFF\"/>"]
        for mark in marks {
            switch mark {
            case let .rect(x, y, w, h, color):
                lines.append("<rect x=\"\(x)\" y=\"\(y)\" width=\"\(w)\" height=\"\(h)\" fill=\"\(color.hex)\"/>")
            case let .text(x, y, string, size, anchorEnd, rotated):
                let anchor = anchorEnd ? " text-anchor=\"end\"" : ""
                if rotated {
                    lines.append("<text transform=\"translate(\(x),\(y)) rotate(90)\" y=\"-2\" font-size=\"\(size)\"\(anchor)>\(Self.escape(string))</text>")
                } else {
                    lines.append("<text x=\"\(x)\" y=\"\(y + size)\" font-size=\"\(size)\"\(anchor)>\(Self.escape(string))</text>")
                }
            }
        }
        lines.append("</svg>")
        return lines.joined(separator: "\n") + "\n"
    }

    /// The chart in pixels, text from a built-in bitmap font (one size).
    public var image: RGBImage {
        var pixels = [UInt8](repeating: 255, count: width * height * 3)
        func blend(_ x: Int, _ y: Int, _ color: Color, _ coverage: UInt8) {
            guard x >= 0, y >= 0, x < width, y < height, coverage > 0 else { return }
            let base = (y * width + x) * 3, alpha = Int(coverage)
            for (k, value) in [color.red, color.green, color.blue].enumerated() {
                pixels[base + k] = UInt8((Int(value) * alpha + Int(pixels[base + k]) * (255 - alpha) + 127) / 255)
            }
        }
        let atlas = [UInt8](Data(base64Encoded: ChartFont.atlasBase64)!)
        let black = Color(0, 0, 0)
        for mark in marks {
            switch mark {
            case let .rect(x, y, w, h, color):
                for row in Swift.max(y, 0)..<Swift.max(Swift.min(y + h, height), Swift.max(y, 0)) {
                    for column in Swift.max(x, 0)..<Swift.max(Swift.min(x + w, width), Swift.max(x, 0)) { blend(column, row, color, 255) }
                }
            case let .text(x, y, string, _, anchorEnd, rotated):
                let glyphs = Array(string.utf8)
                let start = anchorEnd ? x - glyphs.count * ChartFont.width : x
                for (index, code) in glyphs.enumerated() {
                    let glyph = (ChartFont.first...ChartFont.last).contains(code) ? Int(code - ChartFont.first) : Int(UInt8(ascii: "?") - ChartFont.first)
                    let cell = glyph * ChartFont.width * ChartFont.height
                    for gy in 0..<ChartFont.height {
                        for gx in 0..<ChartFont.width {
                            let coverage = atlas[cell + gy * ChartFont.width + gx]
                            if rotated {
                                // 90° clockwise: the run goes down, glyph tops face right.
                                blend(x + ChartFont.height - 1 - gy, y + index * ChartFont.width + gx, black, coverage)
                            } else {
                                blend(start + index * ChartFont.width + gx, y + gy, black, coverage)
                            }
                        }
                    }
                }
            }
        }
        return RGBImage(width: width, height: height, pixels: pixels)
    }
}
