import CShims
import XCTest
@testable import Quantize
import TensorCore

/// Quantize / requantize rounding at edge values, against values worked out by hand from
/// the reference definitions (gemmlowp, TFLite quantization_util, torch.ao observers).
final class ArithmeticTests: XCTestCase {
    func testFixedPointMultiplierEncoding() {
        // tflite::QuantizeMultiplier: frexp, Q31 rounding half away, carry into the shift.
        let cases: [(Double, Int32, Int32)] = [
            (0.5, 1 << 30, 0), (1.0, 1 << 30, 1), (0.75, 1_610_612_736, 0), (0.1, 1_717_986_918, -3),
            (1 - 1e-12, 1 << 30, 1),    // rounds to 2^31: halved, shift + 1
            (1e-12, 0, 0),              // below 2^-31: zero
        ]
        for (real, multiplier, shift) in cases {
            let fixed = FixedPointMultiplier(real)
            XCTAssertEqual(fixed.multiplier, multiplier, "\(real)")
            XCTAssertEqual(fixed.shift, shift, "\(real)")
        }
    }

    func testGemmlowpRoundingAtTiesAndSaturation() {
        // SaturatingRoundingDoublingHighMul rounds halves up (towards +∞) ...
        XCTAssertEqual(rc_tflite_multiply(1, 1 << 30, 0, 0), 1)      // 0.5 → 1
        XCTAssertEqual(rc_tflite_multiply(-1, 1 << 30, 0, 0), 0)     // −0.5 → 0
        XCTAssertEqual(rc_tflite_multiply(3, 1 << 30, 0, 0), 2)      // 1.5 → 2
        // ... and RoundingDivideByPOT rounds halves away from zero: with a multiplier of
        // 1 − 2⁻³¹ the high multiply returns x itself, then x / 2 is rounded.
        XCTAssertEqual(rc_tflite_multiply(5, Int32.max, 0, 1), 3)    // 2.5 → 3
        XCTAssertEqual(rc_tflite_multiply(-5, Int32.max, 0, 1), -3)
        XCTAssertEqual(rc_tflite_multiply(-3, Int32.max, 0, 1), -2)
        // The one overflow case saturates.
        XCTAssertEqual(rc_tflite_multiply(Int32.min, Int32.min, 0, 0), Int32.max)
        // Against exact arithmetic on random values: never more than one step away.
        var generator = SeededGenerator(seed: 3)
        for _ in 0..<10_000 {
            let real = Double(generator.nextUniform()) * 0.9 + 0.001
            let x = Int32(truncatingIfNeeded: Int64(generator.next() % 2_000_001) - 1_000_000)
            let fixed = FixedPointMultiplier(real)
            let result = rc_tflite_multiply(x, fixed.multiplier, fixed.leftShift, fixed.rightShift)
            XCTAssertLessThanOrEqual(abs(Double(result) - Double(x) * real), 1.0)
        }
    }

    func testActivationParametersPerScheme() {
        // TFLite: [−1, 1] → scale 2/255, zero point from the max (smaller error) −0.5 → −1 (half away).
        let symmetric = AffineQuantization.activation(minimum: -1, maximum: 1, scheme: .tflite)
        XCTAssertEqual(symmetric.scale, Float(2.0 / 255.0))
        XCTAssertEqual(symmetric.zeroPoint, -1 + 128)
        // Ranges are widened to contain zero: all-positive → int8 −128; all-negative → 127.
        XCTAssertEqual(AffineQuantization.activation(minimum: 0.5, maximum: 2, scheme: .tflite).zeroPoint, 0)
        XCTAssertEqual(AffineQuantization.activation(minimum: -3, maximum: -1, scheme: .tflite).zeroPoint, 255)
        // PyTorch: zero point = −round_half_even(min / scale) in float32; for [−1, 1],
        // −1 / fl(2/255) = −127.49999… → 127 (MinMaxObserver gives (0.0078431377, 127)).
        let torch = AffineQuantization.activation(minimum: -1, maximum: 1, scheme: .qnnpack)
        XCTAssertEqual(torch.scale, Float(2) / 255)
        XCTAssertEqual(torch.zeroPoint, 127)
        XCTAssertEqual(AffineQuantization.activation(minimum: -2, maximum: 0.55, scheme: .qnnpack).zeroPoint, 200)
        // A constant-zero tensor: PyTorch's eps scale, zero point 0.
        XCTAssertEqual(AffineQuantization.activation(minimum: 0, maximum: 0, scheme: .qnnpack), AffineQuantization(scale: .ulpOfOne, zeroPoint: 0))
    }

    func testQuantizeRoundsAndSaturatesPerScheme() {
        let q = AffineQuantization(scale: 0.5, zeroPoint: 10)
        // Ties: TFLite half away from zero, PyTorch half to even.
        XCTAssertEqual(q.quantize(0.25, scheme: .tflite), 11)
        XCTAssertEqual(q.quantize(-0.25, scheme: .tflite), 9)
        XCTAssertEqual(q.quantize(0.25, scheme: .qnnpack), 10)
        XCTAssertEqual(q.quantize(0.75, scheme: .qnnpack), 12)
        // Saturation at both ends, including a value whose zero point is far from 0.
        XCTAssertEqual(q.quantize(1e9, scheme: .tflite), 255)
        XCTAssertEqual(q.quantize(-1e9, scheme: .qnnpack), 0)
        XCTAssertEqual(q.quantize(-5, scheme: .tflite), 0)
        XCTAssertEqual(q.dequantize(0), -5)
    }

    func testRequantizationKernelsClampToFusedActivations() {
        // TFLite: 1000 · 0.25 = 250 → + zp 3 → clamp to relu6's upper bound zp + round(6/scale).
        let output = AffineQuantization(scale: 0.1, zeroPoint: 3)
        let (lower, upper) = output.clampRange(.relu6)
        XCTAssertEqual(lower, 3)
        XCTAssertEqual(upper, 63)
        let fixed = FixedPointMultiplier(0.25)
        var accumulators: [Int32] = [1000, -1000, 2, -2]
        var result = [UInt8](repeating: 0, count: 4)
        let bias: [Int32] = [0, 0, 0, 0]
        let multipliers = [Int32](repeating: fixed.multiplier, count: 4)
        let lefts = [Int32](repeating: fixed.leftShift, count: 4), rights = [Int32](repeating: fixed.rightShift, count: 4)
        rc_requantize_tflite(&accumulators, 1, 4, bias, multipliers, lefts, rights, 3, lower, upper, &result)
        // 250 + 3 → 63 (ReLU6 bound), −250 + 3 → 3 (ReLU bound), 0.5 → 1 → 4, −0.5 → 0 (half up) → 3.
        XCTAssertEqual(result, [63, 3, 4, 3])
        // QNNPACK: float scaling rounded half to even: 2 · 0.25 = 0.5 → 0, 6 · 0.25 = 1.5 → 2.
        var torchAccumulators: [Int32] = [2, 6, -2, -6]
        rc_requantize_float(&torchAccumulators, 1, 4, bias, [0.25, 0.25, 0.25, 0.25], 100, 0, 255, &result)
        XCTAssertEqual(result, [100, 102, 100, 98])
    }

    func testAveragePoolingRoundsTiesPerScheme() {
        // Window of two int8 values −1 and −2 (storage 127, 126): mean −1.5.
        let q = AffineQuantization(scale: 1, zeroPoint: 128)
        // TFLite rounds the int8 sum half away from zero: −1.5 → −2 → storage 126.
        XCTAssertEqual(Int8Kernels.averagePoolValue(sum: 253, valid: 2, divisor: 2, q, scheme: .tflite), 126)
        // QNNPACK rounds half to even: −1.5 → −2 as well; −0.5 → 0.
        XCTAssertEqual(Int8Kernels.averagePoolValue(sum: 253, valid: 2, divisor: 2, q, scheme: .qnnpack), 126)
        XCTAssertEqual(Int8Kernels.averagePoolValue(sum: 255, valid: 2, divisor: 2, q, scheme: .qnnpack), 128)
        XCTAssertEqual(Int8Kernels.averagePoolValue(sum: 255, valid: 2, divisor: 2, q, scheme: .tflite), 127)
        // A padded cell counted by the divisor holds the zero point (a real 0).
        XCTAssertEqual(Int8Kernels.averagePoolValue(sum: 131, valid: 1, divisor: 2, AffineQuantization(scale: 1, zeroPoint: 128),
                                                    scheme: .qnnpack), 130)  // (3 + 0) / 2 = 1.5 → 2
    }
}
