import Foundation
import TensorCore

/// A labelled image set a trainer or evaluator can draw batches from.
public protocol LabeledImageSource: Sendable {
    var count: Int { get }
    var classNames: [String] { get }
    /// The image at `index` (8-bit RGB) and its class.
    func sample(_ index: Int) throws -> (image: RGBImage, label: Int)
    /// Where the sample comes from (a file name, for an index of a prepared dataset).
    func sourceName(_ index: Int) -> String
}

extension LabeledImageSource {
    public func sourceName(_ index: Int) -> String { "#\(index)" }

    /// [N, 3, S, S] images in [0, 1] (resized and centre-cropped to `size` if needed) and labels.
    public func batch(_ indices: [Int], size: Int) throws -> (images: Tensor, labels: [Int]) {
        var tensors: [Tensor] = [], labels: [Int] = []
        for index in indices {
            var (image, label) = try sample(index)
            if image.width != size || image.height != size {
                image = image.resizedAndCentreCropped(resizeTo: size, cropTo: size)
            }
            tensors.append(image.tensor())
            labels.append(label)
        }
        return (Tensor.concatenateBatch(tensors), labels)
    }
}

/// The built-in procedural dataset: robustctl's default when no ImageNet is at hand.
///
/// `shapes`: ten classes of simple figures and textures — circle, square, triangle, ring,
/// cross, horizontal stripes, vertical stripes, checkerboard, diagonal stripes, dots — each
/// drawn in a random colour at a random position, scale and rotation-free placement on a
/// random two-colour gradient background, with Gaussian pixel noise. Every sample is a pure
/// function of (seed, split, index): nothing is stored, any sample can be regenerated, and the
/// same seed gives the same dataset on every machine. Training and validation splits use
/// disjoint generator streams.
public struct BuiltinDataset: LabeledImageSource {
    public enum Split: String, Sendable { case train, validation }

    public static let names = ["shapes"]
    public static let shapeClasses = ["circle", "square", "triangle", "ring", "cross",
                                      "horizontal_stripes", "vertical_stripes", "checkerboard", "diagonal_stripes", "dots"]

    public let name: String
    public let split: Split
    public let imageSize: Int
    public let count: Int
    public let seed: UInt64
    public var classNames: [String] { Self.shapeClasses }

    public struct UnknownDataset: Error, CustomStringConvertible, Equatable {
        public let name: String
        public var description: String { "unknown built-in dataset '\(name)' (available: \(BuiltinDataset.names.joined(separator: ", ")))" }
    }

    /// An image size or sample count outside what a built-in dataset renders.
    public struct InvalidParameter: Error, CustomStringConvertible, Equatable {
        public let description: String
    }

    /// Images per split at most: a typo of a few zeros should not fill the disk.
    public static let maximumCount = 1_000_000

    /// - Parameters:
    ///   - name: a built-in dataset name (`shapes`).
    ///   - count: samples in this split; labels cycle through the classes, so splits are balanced.
    public init(name: String, split: Split, imageSize: Int = 96, count: Int? = nil, seed: UInt64 = 0) throws {
        guard Self.names.contains(name) else { throw UnknownDataset(name: name) }
        guard (16...ModelConfig.maximumInputSize).contains(imageSize) else {
            throw InvalidParameter(description: "built-in images are 16 to \(ModelConfig.maximumInputSize) pixels, got \(imageSize)")
        }
        if let count, !(1...Self.maximumCount).contains(count) {
            throw InvalidParameter(description: "a built-in dataset split has 1 to \(Self.maximumCount) images, got \(count)")
        }
        self.name = name
        self.split = split
        self.imageSize = imageSize
        self.count = count ?? (split == .train ? 6000 : 1000)
        self.seed = seed
    }

    public func sample(_ index: Int) throws -> (image: RGBImage, label: Int) {
        precondition(index >= 0 && index < count, "sample \(index) outside 0..<\(count)")
        let label = index % Self.shapeClasses.count
        var generator = SeededGenerator(seed: seed &* 0x9E37_79B9_7F4A_7C15 &+ (split == .train ? 0 : 0xD1B5_4A32_D192_ED03)
                                             &+ UInt64(index) &* 0xBF58_476D_1CE4_E5B9)
        return (Self.render(label: label, size: imageSize, generator: &generator), label)
    }

    /// Draws one sample of class `label`.
    static func render(label: Int, size: Int, generator: inout SeededGenerator) -> RGBImage {
        func uniform(_ low: Float, _ high: Float) -> Float { low + (high - low) * generator.nextUniform() }
        func colour() -> (Float, Float, Float) { (uniform(0, 1), uniform(0, 1), uniform(0, 1)) }
        let backgroundA = colour(), backgroundB = colour()
        var foreground = colour()
        // Keep the figure visible: at least 0.35 luminance contrast with the mean background.
        let luminance = { (c: (Float, Float, Float)) in 0.299 * c.0 + 0.587 * c.1 + 0.114 * c.2 }
        let backgroundLuminance = (luminance(backgroundA) + luminance(backgroundB)) / 2
        if abs(luminance(foreground) - backgroundLuminance) < 0.35 {
            let shift: Float = backgroundLuminance > 0.5 ? -0.5 : 0.5
            foreground = (min(max(foreground.0 + shift, 0), 1), min(max(foreground.1 + shift, 0), 1), min(max(foreground.2 + shift, 0), 1))
        }
        let s = Float(size)
        let radius = uniform(0.22, 0.38) * s
        let cx = uniform(radius, s - radius), cy = uniform(radius, s - radius)
        let period = uniform(0.18, 0.3) * radius * 2 / 3
        let thickness = uniform(0.25, 0.4) * radius
        let angle = uniform(0, 2 * .pi)
        let gradient = (cos(angle), sin(angle))
        let noise = uniform(0.02, 0.08)
        var pixels = [UInt8](repeating: 0, count: size * size * 3)
        for y in 0..<size {
            for x in 0..<size {
                let px = Float(x) + 0.5, py = Float(y) + 0.5
                let dx = px - cx, dy = py - cy
                let inside: Bool
                let distance = (dx * dx + dy * dy).squareRoot()
                switch label {
                case 0: inside = distance <= radius
                case 1: inside = abs(dx) <= radius * 0.85 && abs(dy) <= radius * 0.85
                case 2: inside = dy <= radius * 0.7 && dy >= -radius && abs(dx) <= (dy + radius) * 0.6
                case 3: inside = distance <= radius && distance >= radius - thickness
                case 4: inside = (abs(dx) <= thickness / 2 && abs(dy) <= radius) || (abs(dy) <= thickness / 2 && abs(dx) <= radius)
                case 5: inside = distance <= radius && Int(((dy + radius) / period).rounded(.down)) % 2 == 0
                case 6: inside = distance <= radius && Int(((dx + radius) / period).rounded(.down)) % 2 == 0
                case 7: inside = abs(dx) <= radius * 0.85 && abs(dy) <= radius * 0.85
                    && (Int(((dx + radius) / period).rounded(.down)) + Int(((dy + radius) / period).rounded(.down))) % 2 == 0
                case 8: inside = distance <= radius && Int(((dx + dy + 2 * radius) / (period * 1.4)).rounded(.down)) % 2 == 0
                default:
                    let gx = ((dx + radius) / period).rounded(.down), gy = ((dy + radius) / period).rounded(.down)
                    let ox = dx + radius - (gx + 0.5) * period, oy = dy + radius - (gy + 0.5) * period
                    inside = distance <= radius && (ox * ox + oy * oy).squareRoot() <= period * 0.3
                }
                let t = min(max(((px / s - 0.5) * gradient.0 + (py / s - 0.5) * gradient.1) + 0.5, 0), 1)
                var value = inside ? foreground
                    : (backgroundA.0 + (backgroundB.0 - backgroundA.0) * t, backgroundA.1 + (backgroundB.1 - backgroundA.1) * t,
                       backgroundA.2 + (backgroundB.2 - backgroundA.2) * t)
                value.0 += noise * generator.nextNormal()
                value.1 += noise * generator.nextNormal()
                value.2 += noise * generator.nextNormal()
                let offset = (y * size + x) * 3
                pixels[offset] = RGBImage.quantize(value.0)
                pixels[offset + 1] = RGBImage.quantize(value.1)
                pixels[offset + 2] = RGBImage.quantize(value.2)
            }
        }
        return RGBImage(width: size, height: size, pixels: pixels)
    }
}

/// An ImageFolder dataset: `DIR/<class>/*.png|jpg`, classes in sorted order — except when
/// every class folder is an ImageNet WordNet id (`val/n01440764/…`): then labels are the
/// standard ImageNet-1k indices, so a subset of the classes keeps the models' numbering.
public struct ImageFolderDataset: LabeledImageSource {
    public let classNames: [String]
    let directory: String
    let files: [(path: String, label: Int)]
    public var count: Int { files.count }

    public struct FolderError: Error, CustomStringConvertible, Equatable {
        public let path: String
        public let reason: String
        public var description: String { "\(path): \(reason)" }
    }

    public init(directory: String) throws {
        let manager = FileManager.default
        var isDirectory: ObjCBool = false
        guard manager.fileExists(atPath: directory, isDirectory: &isDirectory), isDirectory.boolValue else {
            throw FolderError(path: directory, reason: "not a folder")
        }
        let entries = (try? manager.contentsOfDirectory(atPath: directory)) ?? []
        let classes = entries.filter { name in
            var sub: ObjCBool = false
            return !name.hasPrefix(".") && manager.fileExists(atPath: (directory as NSString).appendingPathComponent(name), isDirectory: &sub) && sub.boolValue
        }.sorted()
        guard !classes.isEmpty else { throw FolderError(path: directory, reason: "no class subfolders (expected DIR/<class>/<image>)") }
        // Every subfolder is a class, as in torchvision's ImageFolder; one that is not (a results
        // folder, say) would shift every later class's index, so both kinds of stray are named.
        let notWnids = classes.filter { ImageNet.indexByWnid[$0] == nil }
        if !notWnids.isEmpty && notWnids.count * 2 < classes.count {
            throw FolderError(path: directory, reason: "\(classes.count - notWnids.count) subfolders are ImageNet WordNet ids but "
                              + "\(Self.list(notWnids)) \(notWnids.count == 1 ? "is" : "are") not; move them out so that the classes get ImageNet's indices")
        }
        let imagenet = notWnids.isEmpty
        var files: [(String, Int)] = [], empty: [String] = []
        for (position, name) in classes.enumerated() {
            let label = imagenet ? ImageNet.indexByWnid[name]! : position
            let folder = (directory as NSString).appendingPathComponent(name)
            let images = ((try? manager.contentsOfDirectory(atPath: folder)) ?? [])
                .filter { ["png", "jpg", "jpeg"].contains(($0 as NSString).pathExtension.lowercased()) }.sorted()
            if images.isEmpty { empty.append(name) }
            files += images.map { ((folder as NSString).appendingPathComponent($0), label) }
        }
        guard empty.count < classes.count else { throw FolderError(path: directory, reason: "class subfolders hold no PNG or JPEG images") }
        guard empty.isEmpty else {
            let (noun, verb) = empty.count == 1 ? ("subfolder", "holds") : ("subfolders", "hold")
            throw FolderError(path: directory, reason: "class \(noun) \(Self.list(empty)) \(verb) no PNG or JPEG image (as in torchvision's "
                              + "ImageFolder, every subfolder is a class: move empty ones out, or they shift the classes after them)")
        }
        classNames = imagenet ? ImageNet.classes.map(\.wnid) : classes
        self.directory = directory
        self.files = files
    }

    public func sample(_ index: Int) throws -> (image: RGBImage, label: Int) {
        (try ImageCodec.read(files[index].path), files[index].label)
    }

    /// "a", "a, b", or "a, b, c and 4 more", quoted.
    private static func list(_ names: [String]) -> String {
        names.prefix(3).map { "'\($0)'" }.joined(separator: ", ") + (names.count > 3 ? " and \(names.count - 3) more" : "")
    }

    public func sourceName(_ index: Int) -> String {
        String(files[index].path.dropFirst(directory.count).drop { $0 == "/" })
    }
}
