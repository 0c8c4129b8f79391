import Foundation

/// Interpolation kernels of `RGBImage.resized`, computed as OpenCV's `cv2.resize` computes
/// them on 8-bit images: half-pixel centres, replicated borders, coefficients in 11-bit
/// fixed point, and a final rounding shift.
public enum ResizeInterpolation: String, Sendable, CaseIterable, Codable {
    /// `cv2.INTER_CUBIC` (Keys kernel, a = −0.75): the paper's preprocessing.
    case bicubic
    /// `cv2.INTER_LINEAR`.
    case bilinear
}

extension RGBImage {
    private static let coefficientBits = 11
    private static let coefficientScale: Float = 2048

    /// For every output coordinate, the source taps and their fixed-point weights.
    private static func taps(source: Int, destination: Int, interpolation: ResizeInterpolation) -> (offsets: [Int], weights: [Int32], size: Int) {
        let scale = Double(source) / Double(destination)
        let size = interpolation == .bicubic ? 4 : 2
        var offsets = [Int](repeating: 0, count: destination * size)
        var weights = [Int32](repeating: 0, count: destination * size)
        for d in 0..<destination {
            var fraction = Float((Double(d) + 0.5) * scale - 0.5)
            var start = Int(fraction.rounded(.down))
            fraction -= Float(start)
            var coefficients: [Float]
            switch interpolation {
            case .bicubic:
                let a: Float = -0.75, x = fraction
                let c0 = ((a * (x + 1) - 5 * a) * (x + 1) + 8 * a) * (x + 1) - 4 * a
                let c1 = ((a + 2) * x - (a + 3)) * x * x + 1
                let c2 = ((a + 2) * (1 - x) - (a + 3)) * (1 - x) * (1 - x) + 1
                coefficients = [c0, c1, c2, 1 - c0 - c1 - c2]
                start -= 1
            case .bilinear:
                if start < 0 { fraction = 0; start = 0 }
                if start >= source - 1 { fraction = 0; start = source - 1 }
                coefficients = [1 - fraction, fraction]
            }
            for k in 0..<size {
                offsets[d * size + k] = Swift.min(Swift.max(start + k, 0), source - 1)
                weights[d * size + k] = Int32((coefficients[k] * coefficientScale).rounded(.toNearestOrEven))
            }
        }
        return (offsets, weights, size)
    }

    /// This image resampled to `width`×`height`.
    /// - Complexity: O(width · height · taps), separable (rows, then columns).
    public func resized(width: Int, height: Int, interpolation: ResizeInterpolation = .bicubic) -> RGBImage {
        precondition(width > 0 && height > 0 && self.width > 0 && self.height > 0,
                     "cannot resize a \(self.width)x\(self.height) image to \(width)x\(height)")
        if width == self.width && height == self.height { return self }
        let horizontal = RGBImage.taps(source: self.width, destination: width, interpolation: interpolation)
        let vertical = RGBImage.taps(source: self.height, destination: height, interpolation: interpolation)
        // Horizontal pass into 32-bit rows (value · 2^11), then vertical pass with rounding by 2^22.
        let rowLength = width * 3
        var rows = [Int32](repeating: 0, count: self.height * rowLength)
        pixels.withUnsafeBufferPointer { source in
            rows.withUnsafeMutableBufferPointer { buffer in
                for y in 0..<self.height {
                    let sourceRow = source.baseAddress! + y * self.width * 3
                    let row = buffer.baseAddress! + y * rowLength
                    for x in 0..<width {
                        for channel in 0..<3 {
                            var sum: Int32 = 0
                            for k in 0..<horizontal.size {
                                let tap = x * horizontal.size + k
                                sum += Int32(sourceRow[horizontal.offsets[tap] * 3 + channel]) * horizontal.weights[tap]
                            }
                            row[x * 3 + channel] = sum
                        }
                    }
                }
            }
        }
        var output = [UInt8](repeating: 0, count: height * rowLength)
        let rounding: Int64 = 1 << (2 * RGBImage.coefficientBits - 1)
        rows.withUnsafeBufferPointer { buffer in
            output.withUnsafeMutableBufferPointer { out in
                for y in 0..<height {
                    for i in 0..<rowLength {
                        var sum: Int64 = 0
                        for k in 0..<vertical.size {
                            let tap = y * vertical.size + k
                            sum += Int64(buffer[vertical.offsets[tap] * rowLength + i]) * Int64(vertical.weights[tap])
                        }
                        let value = (sum + rounding) >> Int64(2 * RGBImage.coefficientBits)
                        out[y * rowLength + i] = UInt8(clamping: value)
                    }
                }
            }
        }
        return RGBImage(width: width, height: height, pixels: output)
    }

    /// Resizes so the shorter side equals `size`, keeping the aspect ratio; the longer
    /// side is truncated as torchvision's `Resize(size)` does (`int(size · long / short)`).
    public func resizedShorterSide(to size: Int, interpolation: ResizeInterpolation = .bicubic) -> RGBImage {
        precondition(size > 0, "resize target must be positive")
        if width <= height {
            return resized(width: size, height: Int(Double(size) * Double(height) / Double(width)), interpolation: interpolation)
        }
        return resized(width: Int(Double(size) * Double(width) / Double(height)), height: size, interpolation: interpolation)
    }

    /// The paper's preprocessing: shorter side to `resizeTo` (256, or 299 for InceptionV3),
    /// then the centred `cropTo`×`cropTo` square.
    public func resizedAndCentreCropped(resizeTo: Int, cropTo: Int, interpolation: ResizeInterpolation = .bicubic) -> RGBImage {
        precondition(cropTo <= resizeTo, "crop \(cropTo) larger than resize \(resizeTo)")
        return resizedShorterSide(to: resizeTo, interpolation: interpolation).centerCropped(width: cropTo, height: cropTo)
    }
}
