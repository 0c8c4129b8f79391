import Foundation
import Synchronization
import TensorCore

/// When `ImageInput` resizes an image.
public enum ResizePolicy: String, Sendable, CaseIterable, Codable {
    /// Images already at the model's input size are used as they are; others get the
    /// paper's resize and centre crop.
    case auto
    /// Always the paper's resize (shorter side to 256, or 299) and centre crop.
    case always
    /// Never resize: an image of another size is an error.
    case never
}

/// An image that cannot be fed to a model, naming the file and the constraint.
public struct ImageInputError: Error, CustomStringConvertible, Equatable {
    public let file: String
    public let reason: String
    public var description: String { "\(file): \(reason)" }
}

/// Turns image files into the [N, 3, S, S] pixel tensors models take.
public enum ImageInput {
    /// The shorter side the paper resizes to before cropping `inputSize`: 256 for 224
    /// (299 for InceptionV3's 299), scaled proportionally for other input sizes.
    public static func resizeSize(for config: ModelConfig) -> Int {
        let architecture = config.architecture
        if config.inputSize == architecture.defaultInputSize { return architecture.defaultResizeSize }
        return Int((Double(config.inputSize) * Double(architecture.defaultResizeSize) / Double(architecture.defaultInputSize)).rounded())
    }

    /// The image as the model sees it, resized and cropped as `policy` says.
    public static func prepare(_ image: RGBImage, file: String, config: ModelConfig, policy: ResizePolicy) throws -> RGBImage {
        let size = config.inputSize
        let fits = image.width == size && image.height == size
        switch policy {
        case .never:
            guard fits else {
                throw ImageInputError(file: file, reason: "image is \(image.width)x\(image.height), the model takes \(size)x\(size), and resizing is off (--resize never)")
            }
            return image
        case .auto where fits:
            return image
        case .auto, .always:
            guard image.width > 0 && image.height > 0 else { throw ImageInputError(file: file, reason: "image is empty") }
            return image.resizedAndCentreCropped(resizeTo: resizeSize(for: config), cropTo: size)
        }
    }

    /// Reads, prepares and batches image files (decoded as `images` does).
    public static func load(_ files: [String], config: ModelConfig, policy: ResizePolicy = .auto) throws -> Tensor {
        precondition(!files.isEmpty, "no images to load")
        return Tensor.concatenateBatch(try images(files, config: config, policy: policy).map { $0.tensor() })
    }

    /// Reads and prepares image files, decoding up to `Threading.threads` at a time; the
    /// images come back in file order, and the first file (in order) that fails is the error.
    public static func images(_ files: [String], config: ModelConfig, policy: ResizePolicy = .auto) throws -> [RGBImage] {
        let results = Mutex<[Int: Result<RGBImage, any Error>]>([:])
        Threading.parallelForBalanced(files.count) { range in
            for index in range {
                let result = Result { try prepare(ImageCodec.read(files[index]), file: files[index], config: config, policy: policy) }
                results.withLock { $0[index] = result }
            }
        }
        let done = results.withLock { $0 }
        return try files.indices.map { try done[$0]!.get() }
    }

    /// `count` of `items` (all of them when there are no more) spread evenly over their order,
    /// positions ⌊i·n/count⌋: a folder of class subfolders, listed in path order, then gives
    /// every class its share, where its first `count` images would come from the first few
    /// classes (ImageNet's train/<wnid>/ has 1,300 images per class).
    /// - Complexity: O(count).
    public static func evenlySpread<T>(_ items: [T], count: Int) -> [T] {
        guard count < items.count else { return items }
        return (0..<Swift.max(count, 0)).map { items[$0 * items.count / count] }
    }

    /// Image files (PNG, JPEG) under a folder, recursively, sorted by relative path.
    public static func imageFiles(in directory: String) throws -> [String] {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: directory, isDirectory: &isDirectory), isDirectory.boolValue else {
            throw ImageInputError(file: directory, reason: "not a folder")
        }
        guard let enumerator = FileManager.default.enumerator(atPath: directory) else {
            throw ImageInputError(file: directory, reason: "cannot list the folder")
        }
        let extensions: Set<String> = ["png", "jpg", "jpeg"]
        var files: [String] = []
        for case let relative as String in enumerator where extensions.contains((relative as NSString).pathExtension.lowercased()) {
            files.append(relative)
        }
        return files.sorted().map { (directory as NSString).appendingPathComponent($0) }
    }
}
