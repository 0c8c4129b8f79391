import XCTest
@testable import TensorCore

/// Asserts that two tensors have equal shapes and agree within `absolute + relative·|expected|`.
func assertClose(_ actual: Tensor, _ expected: Tensor, absolute: Float = 1e-4, relative: Float = 1e-4,
                 _ message: @autoclosure () -> String = "", file: StaticString = #filePath, line: UInt = #line) {
    XCTAssertEqual(actual.shape, expected.shape, "shape " + message(), file: file, line: line)
    guard actual.shape == expected.shape else { return }
    let a = actual.scalars, e = expected.scalars
    var worst = 0, worstExcess: Float = -.infinity
    for i in a.indices {
        let excess = abs(a[i] - e[i]) - (absolute + relative * abs(e[i]))
        if excess > worstExcess { worstExcess = excess; worst = i }
    }
    if !a.isEmpty && (worstExcess > 0 || a[worst].isNaN) {
        XCTFail("element \(worst): \(a[worst]) vs expected \(e[worst]) (tolerance \(absolute) + \(relative)·|x|) \(message())",
                file: file, line: line)
    }
}

/// Central finite differences of a scalar function at `x`, one coordinate at a time,
/// evaluated on at most `samples` coordinates (chosen by the generator) to keep tests fast.
func numericalGradient(of function: (Tensor) -> Double, at x: Tensor, step: Float = 1e-2,
                       samples: Int = 40, generator: inout SeededGenerator) -> [(index: Int, value: Double)] {
    let indices: [Int] = x.count <= samples ? Array(0..<x.count)
        : (0..<samples).map { _ in Int(generator.next() % UInt64(x.count)) }
    return indices.map { index in
        var plus = x, minus = x
        plus.withUnsafeMutableBufferPointer { $0[index] += step }
        minus.withUnsafeMutableBufferPointer { $0[index] -= step }
        return (index, (function(plus) - function(minus)) / Double(2 * step))
    }
}

/// Checks an analytic gradient against finite differences at sampled coordinates.
func assertGradientMatches(_ analytic: Tensor, _ function: (Tensor) -> Double, at x: Tensor, step: Float = 1e-2,
                           tolerance: Double = 2e-2, seed: UInt64 = 7, _ label: String = "",
                           file: StaticString = #filePath, line: UInt = #line) {
    var generator = SeededGenerator(seed: seed)
    let numeric = numericalGradient(of: function, at: x, step: step, generator: &generator)
    let values = analytic.scalars
    let scale = max(1e-3, numeric.map { abs($0.value) }.max() ?? 0)
    for (index, expected) in numeric {
        let error = abs(Double(values[index]) - expected)
        if error > tolerance * scale + 1e-4 {
            XCTFail("\(label) gradient at \(index): analytic \(values[index]) vs numeric \(expected)", file: file, line: line)
            return
        }
    }
}

/// Σ y ⊙ r in double precision: a scalar loss whose gradient with respect to y is r.
func projection(_ y: Tensor, _ r: Tensor) -> Double {
    zip(y.scalars, r.scalars).reduce(0) { $0 + Double($1.0) * Double($1.1) }
}

func random(_ shape: [Int], seed: UInt64, lower: Float = -1, upper: Float = 1) -> Tensor {
    var generator = SeededGenerator(seed: seed)
    return Tensor.randomUniform(shape: shape, lower: lower, upper: upper, generator: &generator)
}

/// Direct 7-loop convolution, the definition itself.
func naiveConv2D(_ x: Tensor, _ w: Tensor, _ b: Tensor?, _ c: Conv2DConfig) -> Tensor {
    let outShape = c.outputShape(input: x.shape, weight: w.shape)
    let (n, cin, h, wd) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3])
    let (cout, kh, kw) = (w.shape[0], w.shape[2], w.shape[3])
    let (oh, ow) = (outShape[2], outShape[3])
    let gin = cin / c.groups, gout = cout / c.groups
    let xs = x.scalars, ws = w.scalars, bs = b?.scalars
    var out = [Float](repeating: 0, count: n * cout * oh * ow)
    for img in 0..<n { for o in 0..<cout {
        let g = o / gout
        for oy in 0..<oh { for ox in 0..<ow {
            var sum: Double = Double(bs?[o] ?? 0)
            for ci in 0..<gin { for ky in 0..<kh { for kx in 0..<kw {
                let iy = oy * c.strideH - c.padding.top + ky * c.dilationH
                let ix = ox * c.strideW - c.padding.left + kx * c.dilationW
                if iy < 0 || iy >= h || ix < 0 || ix >= wd { continue }
                sum += Double(xs[((img * cin + g * gin + ci) * h + iy) * wd + ix]) * Double(ws[((o * gin + ci) * kh + ky) * kw + kx])
            } } }
            out[((img * cout + o) * oh + oy) * ow + ox] = Float(sum)
        } }
    } }
    _ = h
    return Tensor(shape: outShape, scalars: out)
}
