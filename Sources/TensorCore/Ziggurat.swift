import Foundation

/// Marsaglia & Tsang's ziggurat method for standard normal samples (128 layers): one 32-bit
/// draw, one table compare and one multiply for ≈ 98.8 % of samples, exact rejection
/// sampling for the rest. Several times faster than Box–Muller, which matters where millions
/// of Gaussian numbers are drawn per step (the Boundary attack's random directions).
enum Ziggurat {
    static let tables: (k: [UInt32], w: [Float], f: [Float]) = {
        let m1 = 2_147_483_648.0
        var dn = 3.442619855899, tn = dn
        let vn = 9.91256303526217e-3
        var k = [UInt32](repeating: 0, count: 128), w = [Float](repeating: 0, count: 128), f = [Float](repeating: 0, count: 128)
        let q = vn / exp(-0.5 * dn * dn)
        k[0] = UInt32(dn / q * m1)
        k[1] = 0
        w[0] = Float(q / m1)
        w[127] = Float(dn / m1)
        f[0] = 1
        f[127] = Float(exp(-0.5 * dn * dn))
        for i in stride(from: 126, through: 1, by: -1) {
            dn = (-2 * log(vn / dn + exp(-0.5 * dn * dn))).squareRoot()
            k[i + 1] = UInt32(dn / tn * m1)
            tn = dn
            f[i] = Float(exp(-0.5 * dn * dn))
            w[i] = Float(dn / m1)
        }
        return (k, w, f)
    }()

    /// The tail start: samples beyond ±r come from the exact tail algorithm.
    static let r: Float = 3.442620
}

extension SeededGenerator {
    /// A standard normal sample by the ziggurat method, from the 32-bit value `hz`.
    @inline(__always)
    mutating func ziggurat(_ hz: Int32, _ tables: (k: [UInt32], w: [Float], f: [Float])) -> Float {
        var hz = hz
        var iz = Int(hz & 127)
        if UInt32(hz.magnitude) < tables.k[iz] { return Float(hz) * tables.w[iz] }
        while true {
            let x = Float(hz) * tables.w[iz]
            if iz == 0 {
                var tail: Float, y: Float
                repeat {
                    tail = -logf(max(nextUniform(), Float.leastNonzeroMagnitude)) * 0.2904764
                    y = -logf(max(nextUniform(), Float.leastNonzeroMagnitude))
                } while y + y < tail * tail
                return hz > 0 ? Ziggurat.r + tail : -Ziggurat.r - tail
            }
            if tables.f[iz] + nextUniform() * (tables.f[iz - 1] - tables.f[iz]) < expf(-0.5 * x * x) { return x }
            hz = Int32(truncatingIfNeeded: next())
            iz = Int(hz & 127)
            if UInt32(hz.magnitude) < tables.k[iz] { return Float(hz) * tables.w[iz] }
        }
    }
}
