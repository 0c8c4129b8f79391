/// Which implementation runs the heavy kernels (convolution and pooling).
///
/// Both compute the same function; tests cross-check them op by op.
public enum KernelBackend: String, Sendable, CaseIterable, Codable {
    /// oneDNN primitives: the fast default, the library PyTorch uses on CPU.
    case onednn
    /// im2col + OpenBLAS `cblas_sgemm` and plain loops: portable and simple.
    case reference
}

/// Per-side zero padding of the two spatial dimensions. Asymmetric values express
/// TensorFlow's 'same' padding (more after than before at even sizes).
public struct Padding2D: Hashable, Sendable, Codable {
    public var top: Int
    public var bottom: Int
    public var left: Int
    public var right: Int

    public init(top: Int, bottom: Int, left: Int, right: Int) {
        precondition(top >= 0 && bottom >= 0 && left >= 0 && right >= 0, "negative padding")
        self.top = top; self.bottom = bottom; self.left = left; self.right = right
    }

    /// The same padding on every side.
    public static func symmetric(_ size: Int) -> Padding2D {
        Padding2D(top: size, bottom: size, left: size, right: size)
    }

    public static let zero = Padding2D.symmetric(0)

    /// TensorFlow 'same' padding for one input extent: output = ceil(input / stride), the
    /// extra cell, if any, after.
    public static func same(inputHeight: Int, inputWidth: Int, kernel: (Int, Int),
                            stride: (Int, Int), dilation: (Int, Int) = (1, 1)) -> Padding2D {
        func split(_ size: Int, _ k: Int, _ s: Int, _ d: Int) -> (Int, Int) {
            let effective = (k - 1) * d + 1
            let output = (size + s - 1) / s
            let total = Swift.max((output - 1) * s + effective - size, 0)
            return (total / 2, total - total / 2)
        }
        let (top, bottom) = split(inputHeight, kernel.0, stride.0, dilation.0)
        let (left, right) = split(inputWidth, kernel.1, stride.1, dilation.1)
        return Padding2D(top: top, bottom: bottom, left: left, right: right)
    }
}

/// The geometry of a 2-D convolution (weights are OIHW: out, in / groups, kernel h, kernel w).
public struct Conv2DConfig: Hashable, Sendable, Codable {
    public var strideH: Int
    public var strideW: Int
    public var padding: Padding2D
    public var dilationH: Int
    public var dilationW: Int
    public var groups: Int

    public init(stride: Int = 1, padding: Padding2D = .zero, dilation: Int = 1, groups: Int = 1) {
        self.init(strideH: stride, strideW: stride, padding: padding,
                  dilationH: dilation, dilationW: dilation, groups: groups)
    }

    public init(strideH: Int, strideW: Int, padding: Padding2D, dilationH: Int, dilationW: Int, groups: Int) {
        precondition(strideH >= 1 && strideW >= 1 && dilationH >= 1 && dilationW >= 1 && groups >= 1,
                     "invalid convolution geometry: stride \(strideH)x\(strideW), dilation \(dilationH)x\(dilationW), groups \(groups)")
        self.strideH = strideH; self.strideW = strideW; self.padding = padding
        self.dilationH = dilationH; self.dilationW = dilationW; self.groups = groups
    }

    /// The NCHW output shape for an NCHW input and OIHW weights.
    /// - Precondition: the shapes are compatible (channels divisible by groups, output non-empty).
    public func outputShape(input: [Int], weight: [Int]) -> [Int] {
        precondition(input.count == 4 && weight.count == 4,
                     "conv2d expects NCHW input and OIHW weight, got \(input) and \(weight)")
        precondition(input[1] == weight[1] * groups && weight[0] % groups == 0,
                     "conv2d: input \(input) does not match weight \(weight) with \(groups) groups")
        let height = outputExtent(input[2], kernel: weight[2], stride: strideH, dilation: dilationH,
                                  before: padding.top, after: padding.bottom)
        let width = outputExtent(input[3], kernel: weight[3], stride: strideW, dilation: dilationW,
                                 before: padding.left, after: padding.right)
        precondition(height > 0 && width > 0,
                     "conv2d: input \(input) too small for kernel \(weight[2])x\(weight[3]) with \(self)")
        return [input[0], weight[0], height, width]
    }
}

@inlinable
func outputExtent(_ size: Int, kernel: Int, stride: Int, dilation: Int, before: Int, after: Int) -> Int {
    let effective = (kernel - 1) * dilation + 1
    let span = size + before + after - effective
    return span < 0 ? 0 : span / stride + 1
}

/// The geometry of a 2-D max or average pooling window.
public struct Pool2DConfig: Hashable, Sendable, Codable {
    public var kernelH: Int
    public var kernelW: Int
    public var strideH: Int
    public var strideW: Int
    public var padding: Padding2D
    /// Ceil mode (PyTorch `ceil_mode=True`): a last, partial window is kept if it starts
    /// inside the input or the leading padding.
    public var ceilMode: Bool
    /// Average pooling only: whether padded cells count in the divisor
    /// (PyTorch `count_include_pad`, true by default there; Keras 'same' excludes them).
    public var countIncludesPadding: Bool

    public init(kernel: Int, stride: Int, padding: Padding2D = .zero, ceilMode: Bool = false,
                countIncludesPadding: Bool = true) {
        self.init(kernelH: kernel, kernelW: kernel, strideH: stride, strideW: stride, padding: padding,
                  ceilMode: ceilMode, countIncludesPadding: countIncludesPadding)
    }

    public init(kernelH: Int, kernelW: Int, strideH: Int, strideW: Int, padding: Padding2D,
                ceilMode: Bool, countIncludesPadding: Bool) {
        precondition(kernelH >= 1 && kernelW >= 1 && strideH >= 1 && strideW >= 1, "invalid pooling geometry")
        self.kernelH = kernelH; self.kernelW = kernelW; self.strideH = strideH; self.strideW = strideW
        self.padding = padding; self.ceilMode = ceilMode; self.countIncludesPadding = countIncludesPadding
    }

    func extent(_ size: Int, kernel: Int, stride: Int, before: Int, after: Int) -> Int {
        let span = size + before + after - kernel
        precondition(span >= 0, "pooling window \(kernel) larger than padded input \(size + before + after)")
        if !ceilMode { return span / stride + 1 }
        var output = (span + stride - 1) / stride + 1
        // PyTorch rule: the last window must start inside the input or the leading padding.
        if (output - 1) * stride >= size + before { output -= 1 }
        return output
    }

    /// The NCHW output shape for an NCHW input.
    public func outputShape(input: [Int]) -> [Int] {
        precondition(input.count == 4, "pooling expects an NCHW input, got \(input)")
        return [input[0], input[1],
                extent(input[2], kernel: kernelH, stride: strideH, before: padding.top, after: padding.bottom),
                extent(input[3], kernel: kernelW, stride: strideW, before: padding.left, after: padding.right)]
    }
}

/// An activation applied to a convolution's output inside the convolution (oneDNN post-op).
public enum FusedActivation: String, Hashable, Sendable, Codable {
    case none
    case relu
    case relu6

    /// Applies the activation in place.
    func apply(_ values: UnsafeMutableBufferPointer<Float>) {
        switch self {
        case .none: return
        case .relu: for i in values.indices { values[i] = Swift.max(values[i], 0) }
        case .relu6: for i in values.indices { values[i] = Swift.min(Swift.max(values[i], 0), 6) }
        }
    }

    /// dL/d(pre-activation) from dL/d(output) and the output itself: ReLU passes where
    /// y > 0, ReLU6 where 0 < y < 6 — the same cells as from the input (PyTorch's rule).
    func backward(_ gradOutput: Tensor, output: Tensor) -> Tensor {
        switch self {
        case .none: return gradOutput
        case .relu: return gradOutput.zipMap(output, "fused relu backward") { $1 > 0 ? $0 : 0 }
        case .relu6: return gradOutput.zipMap(output, "fused relu6 backward") { ($1 > 0 && $1 < 6) ? $0 : 0 }
        }
    }
}
