import ModelZoo
import TensorCore

/// The on-device inference engine: runs a mobile model, fp32 or int8, inference only.
///
/// fp32 models run channels-last float kernels (oneDNN convolutions with fused bias and
/// activation, `ChannelsLastInference`); int8 models run integer kernels (oneDNN u8×s8→s32
/// convolutions, each scheme's own requantization, `Int8Program`). Both start with the
/// float preprocessing. Threads: `Threading.setThreads`.
public final class MobileEngine: Sendable {
    public let model: MobileModel
    let program: Int8Program?
    let floatProgram: ChannelsLastInference?

    public init(_ model: MobileModel) {
        self.model = model
        program = model.quantization == nil ? nil : Int8Program(model)
        floatProgram = model.quantization == nil ? ChannelsLastInference(graph: model.graph, parameters: model.parameters) : nil
    }

    /// Logits (float; dequantized for int8) for [N, 3, S, S] RGB images in [0, 1].
    public func logits(_ images: Tensor) throws -> Tensor {
        let size = model.metadata.inputSize
        precondition(images.rank == 4 && images.shape[1] == 3 && images.shape[2] == size && images.shape[3] == size,
                     "mobile model expects [N, 3, \(size), \(size)] images, got \(images.shape)")
        if let program { return try program.run(images) }
        if let floatProgram { return try floatProgram.run(images) }
        return Executor().forward(model.graph, parameters: model.parameters, input: images)
    }

    /// The top-1 class of each image.
    public func predictions(_ images: Tensor) throws -> [Int] { Model.argmax(try logits(images)) }
}

extension MobileEngine: ImageClassifier {
    public var config: ModelConfig { model.metadata.modelConfig }
    public var engineName: String { "mobile-\(model.precision)" }
    public func classify(_ images: Tensor) throws -> Tensor { try logits(images) }
}
