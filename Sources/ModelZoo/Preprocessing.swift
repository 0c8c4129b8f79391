import TensorCore

/// The paper's Table 1: what each framework does to [0, 1] RGB pixels before the network.
///
/// Expressed as constant per-channel operations at the head of the graph, so attacks
/// differentiate through it and work in pixel space, as Foolbox's `preprocessing` does.
public enum Preprocessing: String, Sendable, Codable {
    /// torchvision: (x − mean) / std with ImageNet mean (0.485, 0.456, 0.406) and
    /// std (0.229, 0.224, 0.225), on x in [0, 1].
    case torchImageNet = "torch"
    /// Keras MobileNetV2 / InceptionV3 ("tf" mode): 255·x / 127.5 − 1, into [−1, 1].
    case kerasTF = "tf"
    /// Keras ResNet50 ("caffe" mode): RGB → BGR, then 255·x − (103.939, 116.779, 123.68).
    case kerasCaffe = "caffe"

    public static func of(_ architecture: Architecture, _ flavor: Flavor) -> Preprocessing {
        switch flavor {
        case .torch: .torchImageNet
        case .keras: architecture == .resnet50 ? .kerasCaffe : .kerasTF
        }
    }

    /// The per-channel scale and shift of the affine step, in the channel order it acts on.
    public var affine: (scale: [Float], shift: [Float]) {
        switch self {
        case .torchImageNet:
            let mean: [Float] = [0.485, 0.456, 0.406], std: [Float] = [0.229, 0.224, 0.225]
            return (std.map { 1 / $0 }, zip(mean, std).map { -$0 / $1 })
        case .kerasTF:
            return ([Float](repeating: 255 / 127.5, count: 3), [Float](repeating: -1, count: 3))
        case .kerasCaffe:
            // Applied after RGB → BGR, so the means are in BGR order.
            return ([Float](repeating: 255, count: 3), [-103.939, -116.779, -123.68])
        }
    }

    /// A human-readable statement, for `robustctl models`.
    public var summary: String {
        switch self {
        case .torchImageNet: "x/255, then (x - [0.485, 0.456, 0.406]) / [0.229, 0.224, 0.225]"
        case .kerasTF: "x/127.5 - 1"
        case .kerasCaffe: "RGB->BGR, then x - [103.939, 116.779, 123.68] (BGR)"
        }
    }

    /// Appends the preprocessing to `graph` after node `input`; returns the last node.
    func append(to graph: inout Graph, input: Int) -> Int {
        var node = input
        if self == .kerasCaffe { node = graph.add("preprocess.bgr", .permuteChannels([2, 1, 0]), inputs: [node]) }
        let (scale, shift) = affine
        return graph.add("preprocess.normalize", .affine(scale: scale, shift: shift), inputs: [node])
    }
}
