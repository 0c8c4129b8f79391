import Foundation
import XCTest
@testable import ModelZoo
import TensorCore

final class TrainingTests: XCTestCase {
    /// A short run on the built-in dataset learns far beyond chance (10 %).
    func testBriefTrainingLearnsTheBuiltinDataset() throws {
        Threading.setThreads(2)
        let definition = try NetworkDefinition(ModelConfig(architecture: .resnet50, flavor: .torch, widthMultiplier: 0.25,
                                                           inputSize: 48, numClasses: 10))
        let train = try BuiltinDataset(name: "shapes", split: .train, imageSize: 48, count: 1500, seed: 0)
        let validation = try BuiltinDataset(name: "shapes", split: .validation, imageSize: 48, count: 300, seed: 0)
        var reports: [EpochReport] = []
        let options = TrainingOptions(epochs: 4, batchSize: 32, learningRate: 0.003, optimizer: .adam, weightDecay: 0, seed: 3)
        let model = try Trainer.train(definition, on: train, validation: validation, options: options, onEpoch: { reports.append($0) })
        XCTAssertEqual(reports.count, 4)
        XCTAssertLessThan(reports.last!.trainLoss, reports.first!.trainLoss, "the loss falls")
        let accuracy = try Trainer.accuracy(model, on: validation)
        XCTAssertEqual(accuracy, reports.last!.validationAccuracy!, accuracy: 1e-12)
        XCTAssertGreaterThan(accuracy, 0.25, "well above chance (0.1) after four short epochs")
        // Batch-norm running statistics were updated from their initial 0 / 1.
        let mean = model.parameters["bn1.running_mean"]!
        XCTAssertGreaterThan(mean.maxAbs(), 0)
    }

    /// Same seed and thread count → the same weights, bit for bit.
    func testTrainingIsDeterministic() throws {
        Threading.setThreads(2)
        let definition = try NetworkDefinition(ModelConfig(architecture: .resnet50, flavor: .keras, widthMultiplier: 0.0625,
                                                           inputSize: 32, numClasses: 10))
        let train = try BuiltinDataset(name: "shapes", split: .train, imageSize: 32, count: 96, seed: 4)
        let options = TrainingOptions(epochs: 1, batchSize: 32, learningRate: 0.01, seed: 9)
        let a = try Trainer.train(definition, on: train, options: options)
        let b = try Trainer.train(definition, on: train, options: options)
        for (name, tensor) in a.parameters { XCTAssertEqual(tensor, b.parameters[name]!, name) }
        let c = try Trainer.train(definition, on: train, options: TrainingOptions(epochs: 1, batchSize: 32, learningRate: 0.01, seed: 10))
        XCTAssertNotEqual(a.parameters["conv1_conv/kernel"], c.parameters["conv1_conv/kernel"], "another seed, other weights")
    }

    /// A learning rate far too large makes the loss infinite or NaN within a few batches:
    /// training stops there with an error naming the batch instead of carrying NaN weights on.
    func testDivergingTrainingStopsWithAnError() throws {
        Threading.setThreads(2)
        let definition = try NetworkDefinition(ModelConfig(architecture: .resnet50, flavor: .keras, widthMultiplier: 0.0625,
                                                           inputSize: 32, numClasses: 10))
        let train = try BuiltinDataset(name: "shapes", split: .train, imageSize: 32, count: 256, seed: 4)
        var batches = 0
        let options = TrainingOptions(epochs: 2, batchSize: 32, learningRate: 1e30, seed: 9)
        XCTAssertThrowsError(try Trainer.train(definition, on: train, options: options, onBatch: { done, _ in batches = done })) { error in
            guard let diverged = error as? Trainer.Diverged else { return XCTFail("\(error)") }
            XCTAssertEqual(diverged.epoch, 1)
            XCTAssertEqual(diverged.batch, batches + 1, "the first batch whose loss is not finite")
            XCTAssertGreaterThan(diverged.batch, 1, "the first batch starts from finite weights")
        }
    }

    /// The batch-norm momentum override reaches every batch-norm layer: with 0, the running
    /// statistics never move from their initial 0 / 1.
    func testBatchNormMomentumOverride() throws {
        let definition = try NetworkDefinition(ModelConfig(architecture: .mobilenetV2, flavor: .keras, widthMultiplier: 0.35,
                                                           inputSize: 32, numClasses: 10))
        let train = try BuiltinDataset(name: "shapes", split: .train, imageSize: 32, count: 32, seed: 4)
        let frozen = try Trainer.train(definition, on: train, options: TrainingOptions(epochs: 1, batchSize: 32, learningRate: 0.01,
                                                                                       batchNormMomentum: 0))
        let moving = try Trainer.train(definition, on: train, options: TrainingOptions(epochs: 1, batchSize: 32, learningRate: 0.01,
                                                                                       batchNormMomentum: 0.5))
        let means = definition.parameters.map(\.name).filter { $0.hasSuffix("moving_mean") }
        XCTAssertGreaterThan(means.count, 10)
        for name in means {
            XCTAssertEqual(frozen.parameters[name]!.maxAbs(), 0, name)
            XCTAssertGreaterThan(moving.parameters[name]!.maxAbs(), 0, name)
        }
    }

    /// An ImageFolder's subfolders are its classes (torchvision's rule): an empty one, or a
    /// stray folder among ImageNet's WordNet ids, would shift the labels, and is named instead.
    func testImageFolderNamesStraySubfolders() throws {
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("folder-\(UUID())")
        defer { try? FileManager.default.removeItem(at: root) }
        func folder(_ classes: [String], images: Bool = true) throws -> String {
            let directory = root.appendingPathComponent(UUID().uuidString)
            for name in classes {
                let sub = directory.appendingPathComponent(name)
                try FileManager.default.createDirectory(at: sub, withIntermediateDirectories: true)
                if images && name != "empty" { try ImageCodec.writePNG(RGBImage(width: 2, height: 2, pixels: Array(repeating: 9, count: 12)), to: sub.appendingPathComponent("a.png").path) }
            }
            return directory.path
        }
        let wnids = ["n01440764", "n01443537", "n01484850"]
        let imagenet = try ImageFolderDataset(directory: try folder(wnids))
        XCTAssertEqual((0..<3).map { try? imagenet.sample($0).label }, wnids.map { ImageNet.indexByWnid[$0]! })
        let plain = try ImageFolderDataset(directory: try folder(["bird", "cat"]))
        XCTAssertEqual((0..<2).map { try? plain.sample($0).label }, [0, 1])
        let cases: [([String], String)] = [
            (["empty", "bird", "cat"], "class subfolder 'empty' holds no PNG or JPEG image"),
            (wnids + ["results"], "3 subfolders are ImageNet WordNet ids but 'results' is not"),
        ]
        for (classes, message) in cases {
            XCTAssertThrowsError(try ImageFolderDataset(directory: try folder(classes)), "\(classes)") { error in
                XCTAssertTrue("\(error)".contains(message), "\(error)")
            }
        }
    }

    func testBuiltinDatasetIsAPureFunctionOfItsSeed() throws {
        let a = try BuiltinDataset(name: "shapes", split: .train, imageSize: 40, count: 30, seed: 5)
        let b = try BuiltinDataset(name: "shapes", split: .train, imageSize: 40, count: 30, seed: 5)
        let validation = try BuiltinDataset(name: "shapes", split: .validation, imageSize: 40, count: 30, seed: 5)
        XCTAssertEqual(try a.sample(17).image, try b.sample(17).image)
        XCTAssertNotEqual(try a.sample(17).image, try validation.sample(17).image, "splits use disjoint streams")
        XCTAssertEqual((0..<30).map { try! a.sample($0).label }, (0..<30).map { $0 % 10 }, "balanced classes")
        XCTAssertThrowsError(try BuiltinDataset(name: "imagenet", split: .train)) {
            XCTAssertTrue("\($0)".contains("unknown built-in dataset 'imagenet'"))
        }
    }

    /// What `train` writes, the loaders read back exactly (Keras itself reads the .h5: checked by hand
    /// with tf_keras load_weights; see Docs/TRAINING.md).
    func testWrittenWeightFilesRoundTrip() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("weights-\(UUID())")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        for (flavor, file) in [(Flavor.torch, "w.safetensors"), (.keras, "w.h5")] {
            for architecture in Architecture.allCases {
                let config = ModelConfig(architecture: architecture, flavor: flavor, widthMultiplier: architecture == .mobilenetV2 ? 0.35 : 0.0625,
                                         inputSize: 75, numClasses: 10)
                let definition = try NetworkDefinition(config)
                let model = try Model(randomlyInitialized: definition, seed: 3)
                let tensors = Dictionary(uniqueKeysWithValues: definition.parameters.map { ($0.name, model.parameters[$0.name]!) })
                let path = directory.appendingPathComponent(file).path
                if flavor == .torch { try SafeTensors.write(tensors, to: path) } else { try KerasWeights.write(tensors, definition: definition, to: path) }
                let loaded = try Model(config: config, weights: path)
                for (name, tensor) in tensors { XCTAssertEqual(loaded.parameters[name], tensor, "\(flavor) \(architecture) \(name)") }
            }
        }
        // A folder at the path is refused and kept whole (it was once removed to make room).
        let folder = directory.appendingPathComponent("keep.h5")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        try Data("x".utf8).write(to: folder.appendingPathComponent("inside"))
        let definition = try NetworkDefinition(ModelConfig(architecture: .resnet50, flavor: .keras, widthMultiplier: 0.0625, inputSize: 75, numClasses: 10))
        let model = try Model(randomlyInitialized: definition, seed: 3)
        XCTAssertThrowsError(try KerasWeights.write(model.parameters, definition: definition, to: folder.path)) { error in
            XCTAssertTrue("\(error)".contains("keep.h5"), "\(error)")
        }
        XCTAssertEqual(try Data(contentsOf: folder.appendingPathComponent("inside")), Data("x".utf8))
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: directory.path).filter { $0.contains("partial") }, [])
    }
}
