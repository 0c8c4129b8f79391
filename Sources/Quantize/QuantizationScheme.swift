import Foundation

/// How a network is quantized and how its integer arithmetic rounds: one scheme per mobile
/// framework of the study.
public enum QuantizationScheme: String, Codable, Sendable, CaseIterable {
    /// TensorFlow Lite: int8 asymmetric per-tensor activations, int8 symmetric per-channel
    /// weights in [−127, 127], int32 bias, fixed-point requantization (gemmlowp rounding).
    case tflite
    /// PyTorch eager mode with the qnnpack engine: uint8 asymmetric activations (histogram
    /// observer), int8 symmetric per-tensor weights, fp32 requantization rounded to nearest
    /// even. ReLU6 becomes ReLU, as torchvision's quantizable models do.
    case qnnpack

    /// The observer the scheme's reference toolchain uses by default.
    public var defaultObserver: ObserverKind { self == .tflite ? .minmax : .histogram }

    /// Activations are stored as uint8 in both schemes; TFLite's int8 values are stored
    /// shifted by +128 (zero points too), which leaves every real value unchanged.
    var storageOffset: Int32 { self == .tflite ? 128 : 0 }
}

/// How an activation's range is estimated from calibration data.
public enum ObserverKind: String, Codable, Sendable, CaseIterable {
    /// The extreme values seen over all calibration batches.
    case minmax
    /// PyTorch's MovingAverageMinMaxObserver (averaging constant 0.01 per batch).
    case movingAverage = "moving-average"
    /// PyTorch's HistogramObserver: 2048-bin histogram, range chosen by L2 error search.
    case histogram
}

/// Affine quantization of a tensor: real = scale × (q − zeroPoint), with q stored as uint8.
public struct AffineQuantization: Codable, Hashable, Sendable {
    public var scale: Float
    /// In storage (uint8) units; for TFLite's int8 tensors this is the int8 zero point + 128.
    public var zeroPoint: Int32

    public init(scale: Float, zeroPoint: Int32) {
        self.scale = scale
        self.zeroPoint = zeroPoint
    }

    /// Activation quantization for an observed range [minimum, maximum], as the scheme's
    /// reference computes it. The range is widened to contain 0 so that 0 is exact.
    public static func activation(minimum: Float, maximum: Float, scheme: QuantizationScheme) -> AffineQuantization {
        switch scheme {
        case .tflite:
            // TFLite's converter (gemmlowp ChooseQuantizationParams) in double precision on int8 [−128, 127].
            let low = Double(Swift.min(minimum, 0)), high = Double(Swift.max(maximum, 0))
            guard high > low else { return AffineQuantization(scale: 1, zeroPoint: 128) }
            let (qmin, qmax) = (-128.0, 127.0)
            let scale = (high - low) / (qmax - qmin)
            let fromMin = qmin - low / scale, fromMax = qmax - high / scale
            let fromMinError = abs(qmin) + abs(low / scale), fromMaxError = abs(qmax) + abs(high / scale)
            let zero = fromMinError < fromMaxError ? fromMin : fromMax
            let nudged: Double = zero < qmin ? qmin : (zero > qmax ? qmax : zero.rounded(.toNearestOrAwayFromZero))
            return AffineQuantization(scale: Float(scale), zeroPoint: Int32(nudged) + 128)
        case .qnnpack:
            // torch.ao.quantization ObserverBase._calculate_qparams, float32, quint8 [0, 255].
            let low = Swift.min(minimum, 0), high = Swift.max(maximum, 0)
            let scale = Swift.max((high - low) / 255, Float.ulpOfOne)
            var zero = Int32(0) - Int32((low / scale).rounded(.toNearestOrEven))
            zero = Swift.min(Swift.max(zero, 0), 255)
            return AffineQuantization(scale: scale, zeroPoint: zero)
        }
    }

    /// The storage value of a real value (round half away from zero for TFLite, half to
    /// even for PyTorch), saturated to [0, 255].
    @inlinable
    public func quantize(_ value: Float, scheme: QuantizationScheme) -> UInt8 {
        let q: Float = scheme == .tflite ? (value / scale).rounded(.toNearestOrAwayFromZero)
                                         : (value * (1 / scale)).rounded(.toNearestOrEven)
        let shifted = Swift.min(Swift.max(q + Float(zeroPoint), 0), 255)
        return UInt8(shifted)
    }

    @inlinable
    public func dequantize(_ value: UInt8) -> Float { Float(Int32(value) - zeroPoint) * scale }

    /// The storage range a fused activation leaves, as the schemes compute it
    /// (TFLite's CalculateActivationRangeQuantized; PyTorch fuses only ReLU).
    func clampRange(_ activation: FusedClamp) -> (lower: Int32, upper: Int32) {
        switch activation {
        case .none: return (0, 255)
        case .relu: return (Swift.max(0, zeroPoint), 255)
        case .relu6:
            let six = saturatingInt32((6 / scale).rounded(.toNearestOrAwayFromZero))
            return (Swift.max(0, zeroPoint), Int32(Swift.min(255, Int64(zeroPoint) + Int64(six))))
        }
    }
}

/// The activation fused into an integer op's output.
enum FusedClamp: Hashable, Sendable { case none, relu, relu6 }

/// A real multiplier as TFLite encodes it: a Q31 fixed-point value and a power-of-two shift
/// (tflite::QuantizeMultiplier).
public struct FixedPointMultiplier: Hashable, Sendable {
    public var multiplier: Int32
    /// Positive: shift left before multiplying; negative: rounding shift right after.
    public var shift: Int32

    public init(_ real: Double) {
        guard real != 0, real.isFinite else { multiplier = 0; shift = 0; return }
        let exponent = real.exponent + 1          // frexp: real = q · 2^exponent, q ∈ [0.5, 1)
        let q = real / Double(sign: .plus, exponent: Int(exponent), significand: 1)
        var fixed = Int64((q * Double(Int64(1) << 31)).rounded(.toNearestOrAwayFromZero))
        var e = Int32(exponent)
        if fixed == Int64(1) << 31 { fixed /= 2; e += 1 }
        if e < -31 { e = 0; fixed = 0 }
        multiplier = Int32(fixed)
        shift = e
    }

    var leftShift: Int32 { Swift.max(shift, 0) }
    var rightShift: Int32 { Swift.max(-shift, 0) }
}

/// The nearest Int32 to an already-rounded float, saturating (and NaN → 0) instead of trapping.
@inline(__always)
func saturatingInt32(_ value: Float) -> Int32 {
    if value.isNaN { return 0 }
    if value >= 2_147_483_520 { return Int32.max }
    if value <= -2_147_483_648 { return Int32.min }
    return Int32(value)
}
