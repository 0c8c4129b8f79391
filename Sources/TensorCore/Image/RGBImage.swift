/// An 8-bit RGB image, interleaved (HWC), rows top to bottom.
public struct RGBImage: Hashable, Sendable {
    public let width: Int
    public let height: Int
    /// width × height × 3 bytes.
    public var pixels: [UInt8]

    /// - Precondition: `pixels.count == width * height * 3`.
    public init(width: Int, height: Int, pixels: [UInt8]) {
        precondition(width >= 0 && height >= 0 && pixels.count == width * height * 3,
                     "RGB image \(width)x\(height) needs \(width * height * 3) bytes, got \(pixels.count)")
        self.width = width
        self.height = height
        self.pixels = pixels
    }

    /// The pixel at (x, y) as (r, g, b).
    public subscript(x: Int, y: Int) -> (UInt8, UInt8, UInt8) {
        let offset = (y * width + x) * 3
        return (pixels[offset], pixels[offset + 1], pixels[offset + 2])
    }

    /// The `width`×`height` region whose top-left corner is (left, top).
    public func cropped(left: Int, top: Int, width: Int, height: Int) -> RGBImage {
        precondition(left >= 0 && top >= 0 && left + width <= self.width && top + height <= self.height,
                     "crop \(width)x\(height) at (\(left), \(top)) outside a \(self.width)x\(self.height) image")
        var out = [UInt8](repeating: 0, count: width * height * 3)
        for y in 0..<height {
            let source = ((top + y) * self.width + left) * 3
            out.replaceSubrange((y * width * 3)..<((y + 1) * width * 3), with: pixels[source..<(source + width * 3)])
        }
        return RGBImage(width: width, height: height, pixels: out)
    }

    /// The centred `width`×`height` region, offsets rounded as torchvision's `CenterCrop`
    /// (Python's `round`, halves to even).
    public func centerCropped(width: Int, height: Int) -> RGBImage {
        precondition(width <= self.width && height <= self.height,
                     "center crop \(width)x\(height) larger than the \(self.width)x\(self.height) image")
        let top = Int((Double(self.height - height) / 2).rounded(.toNearestOrEven))
        let left = Int((Double(self.width - width) / 2).rounded(.toNearestOrEven))
        return cropped(left: left, top: top, width: width, height: height)
    }

    /// A [1, 3, H, W] tensor with values in [0, 1] (pixel / 255).
    public func tensor() -> Tensor {
        let plane = width * height
        return Tensor.build(shape: [1, 3, height, width]) { out in
            pixels.withUnsafeBufferPointer { source in
                for i in 0..<plane {
                    out[i] = Float(source[3 * i]) / 255
                    out[plane + i] = Float(source[3 * i + 1]) / 255
                    out[2 * plane + i] = Float(source[3 * i + 2]) / 255
                }
            }
        }
    }

    /// The image of one [1, 3, H, W] (or [3, H, W]) tensor in [0, 1]: values are scaled by 255,
    /// rounded to nearest (ties to even) and clipped to 0…255.
    public init(tensor: Tensor) {
        let shape = tensor.shape
        precondition((shape.count == 4 && shape[0] == 1 && shape[1] == 3) || (shape.count == 3 && shape[0] == 3),
                     "an RGB image needs a [1, 3, H, W] or [3, H, W] tensor, got \(shape)")
        let (h, w) = (shape[shape.count - 2], shape[shape.count - 1])
        let plane = w * h
        var pixels = [UInt8](repeating: 0, count: plane * 3)
        tensor.withUnsafeBufferPointer { x in
            for i in 0..<plane {
                for c in 0..<3 { pixels[3 * i + c] = RGBImage.quantize(x[c * plane + i]) }
            }
        }
        self.init(width: w, height: h, pixels: pixels)
    }

    /// A [0, 1] value on the 8-bit grid: round(v · 255), ties to even, clipped.
    @inlinable public static func quantize(_ value: Float) -> UInt8 {
        let scaled = (value * 255).rounded(.toNearestOrEven)
        return scaled.isNaN ? 0 : UInt8(Swift.min(Swift.max(scaled, 0), 255))
    }
}
