import TensorCore

/// Anything that turns a batch of images into logits: the PC engine's `Model`, or the
/// mobile engine of the Quantize module. Evaluation works on either.
public protocol ImageClassifier: Sendable {
    /// The network's identity and input size.
    var config: ModelConfig { get }
    /// A short name of the engine, for reports ("pc", "mobile-fp32", "mobile-int8-tflite").
    var engineName: String { get }
    /// Logits for [N, 3, S, S] RGB images in [0, 1].
    func classify(_ images: Tensor) throws -> Tensor
}

extension Model: ImageClassifier {
    public var engineName: String { "pc" }
    public func classify(_ images: Tensor) throws -> Tensor { logits(images) }
}
