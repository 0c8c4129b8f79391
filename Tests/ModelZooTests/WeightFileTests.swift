import Foundation
import XCTest
@testable import ModelZoo
import TensorCore

final class WeightFileTests: XCTestCase {
    var fixtures: URL { ParityTests.fixtures }

    func resnetEntry() throws -> ParityTests.Entry {
        try ParityTests.manifest().first { $0.architecture == "resnet50" && $0.flavor == "torch" }!
    }

    func testAllFormatsOfOneCheckpointAgreeExactly() throws {
        let entry = try resnetEntry()
        let reference = try SafeTensors.read(fixtures.appendingPathComponent(entry.files["safetensors"]!).path)
        for format in ["pth", "legacy_pth"] {
            let tensors = try TorchCheckpoint.read(fixtures.appendingPathComponent(entry.files[format]!).path)
            XCTAssertEqual(Set(tensors.keys), Set(reference.keys), format)
            for (name, tensor) in reference { XCTAssertEqual(tensors[name], tensor, "\(format) \(name)") }
        }
        XCTAssertEqual(reference["bn1.num_batches_tracked"]?.shape, [], "int64 scalars are read too")
    }

    /// The Keras fixtures as Keras 3 saves them (Tools/reference/make_keras3_fixtures.py): a
    /// `.keras` zip, its own `.weights.h5` layout and a whole model saved as HDF5 hold the same
    /// weights as the legacy `save_weights` file, bit for bit, mapped onto the same parameters.
    func testKeras3LayoutsReadTheSameWeightsAsTheLegacyFile() throws {
        let files = ["mobilenet_v2": "mobilenet_v2_keras.keras", "inception_v3": "inception_v3_keras.weights.h5",
                     "resnet50": "resnet50_keras_model.h5"]
        for entry in try ParityTests.manifest() where entry.flavor == "keras" {
            let definition = try NetworkDefinition(ParityTests.config(entry))
            let legacy = try WeightFiles.read(fixtures.appendingPathComponent(entry.files["h5"]!).path, for: definition)
            let file = try XCTUnwrap(files[entry.architecture])
            let tensors = try WeightFiles.read(fixtures.appendingPathComponent(file).path, for: definition)
            XCTAssertEqual(Set(tensors.keys), Set(legacy.keys), file)
            XCTAssertEqual(tensors.count, definition.parameters.count, file)
            for (name, tensor) in legacy { XCTAssertEqual(tensors[name], tensor, "\(file) \(name)") }
        }
    }

    /// The MobileNetV2 fixture as fine-tuning scripts save it — the Keras Applications base
    /// nested as one layer of a Sequential model with the classifier — in Keras 2's and Keras
    /// 3's layouts (Tools/reference/make_nested_keras_fixtures.py) reads the same weights as
    /// the flat file, bit for bit.
    func testNestedKerasModelsReadTheSameWeightsAsTheFlatFile() throws {
        let entry = try XCTUnwrap(ParityTests.manifest().first { $0.architecture == "mobilenet_v2" && $0.flavor == "keras" })
        let definition = try NetworkDefinition(ParityTests.config(entry))
        let flat = try WeightFiles.read(fixtures.appendingPathComponent(entry.files["h5"]!).path, for: definition)
        for file in ["mobilenet_v2_keras_nested.h5", "mobilenet_v2_keras_nested.weights.h5"] {
            let tensors = try WeightFiles.read(fixtures.appendingPathComponent(file).path, for: definition)
            XCTAssertEqual(Set(tensors.keys), Set(flat.keys), file)
            for (name, tensor) in flat { XCTAssertEqual(tensors[name], tensor, "\(file) \(name)") }
        }
    }

    /// A nested model's weight names split into its layers in order of first appearance, with
    /// moving statistics listed after every trainable weight; a plain layer's stay together.
    func testWeightNamesOfANestedModelSplitByLayer() {
        let nested = KerasWeights.layersNamed(in: ["Conv1/kernel:0", "bn/gamma:0", "bn/beta:0", "dense/kernel:0", "bn/moving_mean:0",
                                                   "bn/moving_variance:0"])
        XCTAssertEqual(nested.map(\.name), ["Conv1", "bn", "dense"])
        XCTAssertEqual(nested.map(\.weights), [["Conv1/kernel:0"], ["bn/gamma:0", "bn/beta:0", "bn/moving_mean:0", "bn/moving_variance:0"],
                                                ["dense/kernel:0"]])
        XCTAssertEqual(KerasWeights.layersNamed(in: ["bn/gamma:0", "bn/beta:0"]).map(\.name), [nil])
        XCTAssertEqual(KerasWeights.layersNamed(in: ["conv1_W:0", "conv1_b:0"]).map(\.weights), [["conv1_W:0", "conv1_b:0"]])
        XCTAssertTrue(KerasWeights.layersNamed(in: []).isEmpty)
    }

    /// A Keras 3 file whose layers do not fit: mis-shaped datasets are named together, and a
    /// file of another network names the layer groups it lacks and those it has in excess.
    func testKeras3LayoutMismatchesAreReportedTogether() throws {
        let entry = try XCTUnwrap(ParityTests.manifest().first { $0.architecture == "mobilenet_v2" && $0.flavor == "keras" })
        var config = ParityTests.config(entry)
        config.numClasses = 7
        let path = fixtures.appendingPathComponent("mobilenet_v2_keras.keras").path
        XCTAssertThrowsError(try Model(config: config, weights: path)) { error in
            guard case let WeightFileError.mismatch(file, _, problems) = error else { return XCTFail("\(error)") }
            XCTAssertEqual(file, path)
            XCTAssertEqual(problems, ["the file fits width multiplier 0.1 with 10 classes",
                                      "'predictions/kernel' has shape [10, 1280], expected [7, 1280]",
                                      "'predictions/bias' has shape [10], expected [7]"])
        }
        let inception = fixtures.appendingPathComponent("inception_v3_keras.weights.h5").path
        XCTAssertThrowsError(try Model(config: ParityTests.config(entry), weights: inception)) { error in
            guard case let WeightFileError.mismatch(_, _, problems) = error else { return XCTFail("\(error)") }
            XCTAssertTrue(problems.contains { $0.hasPrefix("missing layer group layers/depthwise_conv2d") }, "\(problems)")
            XCTAssertTrue(problems.contains { $0.hasPrefix("unexpected layers") }, "\(problems)")
        }
    }

    func testFormatIsRecognisedByContent() throws {
        let entry = try resnetEntry()
        XCTAssertEqual(try WeightFiles.format(of: fixtures.appendingPathComponent(entry.files["pth"]!).path), .torchZip)
        XCTAssertEqual(try WeightFiles.format(of: fixtures.appendingPathComponent(entry.files["legacy_pth"]!).path), .torchLegacy)
        XCTAssertEqual(try WeightFiles.format(of: fixtures.appendingPathComponent(entry.files["safetensors"]!).path), .safetensors)
        XCTAssertEqual(try WeightFiles.format(of: fixtures.appendingPathComponent("resnet50_keras.h5").path), .kerasH5)
        XCTAssertEqual(try WeightFiles.format(of: fixtures.appendingPathComponent("mobilenet_v2_keras.keras").path), .kerasArchive)
    }

    func testMaliciousPicklesAreRefusedWithoutRunningAnything() throws {
        let marker = "/tmp/robustctl-pickle-exploit-ran"
        try? FileManager.default.removeItem(atPath: marker)
        for name in ["malicious.pth", "malicious_legacy.pth"] {
            XCTAssertThrowsError(try TorchCheckpoint.read(fixtures.appendingPathComponent(name).path)) { error in
                guard case let WeightFileError.forbiddenGlobal(file, global) = error else { return XCTFail("\(name): \(error)") }
                XCTAssertTrue(file.hasSuffix(name))
                XCTAssertTrue(global.hasSuffix("system"), global)
                XCTAssertTrue("\(error)".contains("never executes"))
            }
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: marker), "the payload must not have run")
    }

    /// A torch.quantization checkpoint (Tools/reference/make_quantized_checkpoint_fixture.py)
    /// is named for what it is, with the way forward, not refused as if it were malicious.
    func testQuantizedCheckpointsAreNamedAsSuch() throws {
        let name = "quantized_state_dict.pth"
        XCTAssertThrowsError(try TorchCheckpoint.read(fixtures.appendingPathComponent(name).path)) { error in
            guard case let WeightFileError.unsupportedFormat(file, reason) = error else { return XCTFail("\(error)") }
            XCTAssertTrue(file.hasSuffix(name))
            XCTAssertTrue(reason.contains("quantized PyTorch checkpoint"), reason)
            XCTAssertTrue(reason.contains("_rebuild_qtensor") || reason.contains("QInt8Storage"), reason)
            XCTAssertTrue(reason.contains("robustctl convert --quantize int8"), reason)
        }
    }

    /// A model saved whole or as TorchScript (Tools/reference/make_pickled_model_fixture.py)
    /// is refused without running anything, naming the kind, the class and the way forward.
    func testWholeModelFilesAreNamedAsSuch() throws {
        for (name, kind, global) in [("pickled_model.pth", "a whole pickled model", "'torch.nn.modules.container.Sequential'"),
                                     ("torchscript_model.pt", "a TorchScript archive", "'__torch__.torch.nn.modules.container.Sequential'")] {
            XCTAssertThrowsError(try TorchCheckpoint.read(fixtures.appendingPathComponent(name).path)) { error in
                guard case let WeightFileError.unsupportedFormat(file, reason) = error else { return XCTFail("\(name): \(error)") }
                XCTAssertTrue(file.hasSuffix(name))
                XCTAssertTrue(reason.hasPrefix(kind), reason)
                XCTAssertTrue(reason.contains(global), reason)
                XCTAssertTrue(reason.contains("model.state_dict()"), reason)
            }
        }
    }

    func testMissingUnexpectedAndMisshapedTensorsAreReportedTogether() throws {
        let entry = try resnetEntry()
        var tensors = try SafeTensors.read(fixtures.appendingPathComponent(entry.files["safetensors"]!).path)
        tensors["fc.bias"] = nil
        tensors["layer9.weight"] = Tensor(shape: [2])
        tensors["conv1.weight"] = Tensor(shape: [1, 3, 7, 7])
        let definition = try NetworkDefinition(ParityTests.config(entry))
        XCTAssertThrowsError(try Model(definition: definition, tensors: tensors, source: "edited.safetensors")) { error in
            guard case let WeightFileError.mismatch(file, _, problems) = error else { return XCTFail("\(error)") }
            XCTAssertEqual(file, "edited.safetensors")
            XCTAssertTrue(problems.contains("missing 'fc.bias' [10]"), "\(problems)")
            XCTAssertTrue(problems.contains("unexpected 'layer9.weight' [2]"), "\(problems)")
            XCTAssertTrue(problems.contains("'conv1.weight' has shape [1, 3, 7, 7], expected [4, 3, 7, 7]"), "\(problems)")
        }
    }

    /// A training checkpoint (torchvision's reference scripts: the state dict under `model`,
    /// DataParallel's `module.` names, the optimizer's state, the script's argparse arguments,
    /// a NumPy number and a set beside it) reads as the state dict it holds
    /// (Tools/reference/make_training_checkpoint_fixture.py); the metadata builds nothing.
    func testTheStateDictInsideATrainingCheckpointIsFound() throws {
        let path = fixtures.appendingPathComponent("training_checkpoint.pth").path
        let tensors = try TorchCheckpoint.read(path)
        XCTAssertEqual(Set(tensors.keys), Set(["0.weight", "0.bias", "1.weight", "1.bias", "1.running_mean", "1.running_var",
                                               "1.num_batches_tracked"].map { "model.module." + $0 }),
                       "the optimizer's momentum buffers sit under integer keys, which are not parameter names")
        let names = ["0.weight", "0.bias", "1.weight", "1.bias", "1.running_mean", "1.running_var"]
        let located = try NestedStateDict.located(in: tensors, names: names, file: path)
        XCTAssertEqual(Set(located.keys), Set(names + ["1.num_batches_tracked"]))
        XCTAssertEqual(located["0.weight"], tensors["model.module.0.weight"])
        XCTAssertEqual(located["0.weight"]?.shape, [4, 3, 1, 1])
    }

    /// A network's checkpoint saved under a prefix loads as the plain one, whatever else the
    /// file holds; two complete copies (a model and its moving average) are refused by name.
    func testANestedStateDictLoadsAsThePlainOne() throws {
        let entry = try resnetEntry()
        let config = ParityTests.config(entry)
        let plain = try SafeTensors.read(fixtures.appendingPathComponent(entry.files["safetensors"]!).path)
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("robustctl-nested-\(getpid()).safetensors").path
        defer { try? FileManager.default.removeItem(atPath: path) }
        var nested = Dictionary(uniqueKeysWithValues: plain.map { ("state_dict.module.\($0.key)", $0.value) })
        nested["optimizer.step"] = Tensor(shape: [1])
        try SafeTensors.write(nested, to: path)
        let model = try Model(config: config, weights: path)
        let reference = try Model(config: config, weights: fixtures.appendingPathComponent(entry.files["safetensors"]!).path)
        XCTAssertEqual(model.parameters.count, reference.parameters.count)
        for (name, tensor) in reference.parameters { XCTAssertEqual(model.parameters[name], tensor, name) }

        for (key, tensor) in plain { nested["ema.\(key)"] = tensor }
        try SafeTensors.write(nested, to: path)
        XCTAssertThrowsError(try Model(config: config, weights: path)) { error in
            guard case let WeightFileError.unsupportedFormat(_, reason) = error else { return XCTFail("\(error)") }
            XCTAssertEqual(reason, "it holds 2 state dicts for this network, under 'ema.', 'state_dict.module.'; save the one to use on its own")
        }
    }

    /// NaN or infinite weights (a diverged run, a damaged file) are named with the other
    /// problems instead of turning every prediction into NaN.
    func testNonFiniteWeightsAreNamed() throws {
        let entry = try resnetEntry()
        var tensors = try SafeTensors.read(fixtures.appendingPathComponent(entry.files["safetensors"]!).path)
        var kernel = try XCTUnwrap(tensors["conv1.weight"])
        kernel.withUnsafeMutableBufferPointer { $0[5] = .nan; $0[7] = -.infinity }
        tensors["conv1.weight"] = kernel
        tensors["fc.bias"] = Tensor(shape: [10], repeating: .infinity)
        tensors["layer1.0.bn1.running_var"] = nil
        let definition = try NetworkDefinition(ParityTests.config(entry))
        XCTAssertThrowsError(try Model(definition: definition, tensors: tensors, source: "diverged.safetensors")) { error in
            guard case let WeightFileError.mismatch(_, _, problems) = error else { return XCTFail("\(error)") }
            XCTAssertEqual(problems.count, 3, "\(problems)")
            XCTAssertTrue(problems.contains("'conv1.weight' holds 2 of \(kernel.count) values that are NaN or infinite"), "\(problems)")
            XCTAssertTrue(problems.contains("'fc.bias' holds 10 of 10 values that are NaN or infinite"), "\(problems)")
            XCTAssertTrue(problems.contains { $0.hasPrefix("missing 'layer1.0.bn1.running_var'") }, "\(problems)")
        }
    }

    /// A Keras file with some of the network's layers names the missing ones; without just the
    /// classifier (Keras's `*_notop.h5` downloads) it says so; one with an extra weighted layer
    /// names that.
    func testMissingKerasLayersAreNamed() throws {
        let entry = try XCTUnwrap(ParityTests.manifest().first { $0.architecture == "mobilenet_v2" && $0.flavor == "keras" })
        let definition = try NetworkDefinition(ParityTests.config(entry))
        let model = try Model(config: ParityTests.config(entry), weights: fixtures.appendingPathComponent(entry.files["h5"]!).path)
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("robustctl-notop-\(getpid()).h5").path
        defer { try? FileManager.default.removeItem(atPath: path) }
        try KerasWeights.write(model.parameters, layers: definition.kerasLayers.dropLast(), of: "test", to: path)
        XCTAssertThrowsError(try WeightFiles.read(path, for: definition)) { error in
            guard case let WeightFileError.mismatch(_, _, problems) = error else { return XCTFail("\(error)") }
            XCTAssertEqual(problems, ["missing layer 'predictions' (the classifier: weights without it, like Keras's *_notop.h5 "
                                      + "files, cannot classify)"])
        }
        // Every layer of the network, and one more with weights (a deeper network, a head that
        // is not the classifier): refused, not ignored.
        var parameters = model.parameters
        parameters["dense_extra/kernel"] = Tensor(shape: [4, 2])
        let extra = KerasLayer(name: "dense_extra", weights: [KerasWeight(parameter: "dense_extra/kernel", layout: .dense, shape: [4, 2])])
        try KerasWeights.write(parameters, layers: definition.kerasLayers + [extra], of: "test", to: path)
        XCTAssertThrowsError(try WeightFiles.read(path, for: definition)) { error in
            guard case let WeightFileError.mismatch(_, _, problems) = error else { return XCTFail("\(error)") }
            XCTAssertEqual(problems, ["unexpected layer 'dense_extra'"])
        }
        try KerasWeights.write(model.parameters, layers: definition.kerasLayers.filter { !$0.name.hasPrefix("block_1") }, of: "test", to: path)
        XCTAssertThrowsError(try WeightFiles.read(path, for: definition)) { error in
            guard case let WeightFileError.mismatch(_, _, problems) = error else { return XCTFail("\(error)") }
            XCTAssertEqual(problems.count, 1, "\(problems)")
            XCTAssertTrue(problems[0].hasPrefix("missing layers 'block_1_expand', 'block_1_expand_BN', "), problems[0])
        }
    }

    /// HDF5 can keep a dataset's values elsewhere: behind an external link to another file,
    /// in external raw files, or in a virtual dataset over other files. Weight files are read
    /// only from themselves, so all three are refused; the control file with the same layout
    /// and the values inside gets past that dataset (Tools/reference/make_hdf5_indirection_fixtures.py).
    func testHDF5DatasetsKeptOutsideTheFileAreRefused() throws {
        let directory = fixtures.appendingPathComponent("hdf5_indirection")
        let definition = try NetworkDefinition(ModelConfig(architecture: .mobilenetV2, flavor: .keras, widthMultiplier: 0.1,
                                                           inputSize: 64, numClasses: 10))
        XCTAssertThrowsError(try WeightFiles.read(directory.appendingPathComponent("local.h5").path, for: definition)) { error in
            guard case let WeightFileError.mismatch(_, _, problems) = error else { return XCTFail("\(error)") }
            XCTAssertEqual(problems, ["missing layers 'bn_Conv1', 'expanded_conv_depthwise', 'expanded_conv_depthwise_BN', "
                                      + "'expanded_conv_project', 'expanded_conv_project_BN', …"])
        }
        // A declared kernel of 2^40 elements (stored in no space) is named, not allocated.
        XCTAssertThrowsError(try WeightFiles.read(directory.appendingPathComponent("huge.h5").path, for: definition)) { error in
            guard case let WeightFileError.mismatch(_, _, problems) = error else { return XCTFail("\(error)") }
            XCTAssertTrue(problems.contains("'Conv1/Conv1/kernel:0' has shape [3, 3, 3, 1099511627776], expected [3, 3, 3, 8] for 'Conv1/kernel'"),
                          "\(problems)")
        }
        for name in ["external_link.h5", "external_storage.h5", "virtual.h5"] {
            let path = directory.appendingPathComponent(name).path
            XCTAssertThrowsError(try WeightFiles.read(path, for: definition), name) { error in
                guard case let WeightFileError.unsupportedFormat(file, reason) = error else { return XCTFail("\(name): \(error)") }
                XCTAssertEqual(file, path)
                XCTAssertTrue(reason.hasPrefix("dataset /Conv1/Conv1/kernel:0 keeps its values outside the file"), reason)
            }
        }
    }

    /// A file of the right network at another width or class count (flags left at their
    /// defaults, a fine-tuned classifier) says which fits, in every format.
    func testAFileOfAnotherWidthOrClassCountSaysWhichFits() throws {
        let cases: [(Architecture, Flavor, String, String)] = [
            (.resnet50, .torch, "resnet50_torch.safetensors", "the file fits width multiplier 0.0625 with 10 classes"),
            (.mobilenetV2, .keras, "mobilenet_v2_keras.h5", "the file fits width multiplier 0.1 with 10 classes"),
            (.mobilenetV2, .keras, "mobilenet_v2_keras_nested.weights.h5", "the file fits width multiplier 0.1 with 10 classes"),
            (.inceptionV3, .torch, "inception_v3_torch.safetensors", "the file fits width multiplier 0.0625 with 10 classes"),
        ]
        for (architecture, flavor, file, hint) in cases {
            let config = ModelConfig(architecture: architecture, flavor: flavor, inputSize: 75)
            XCTAssertThrowsError(try Model(config: config, weights: fixtures.appendingPathComponent(file).path), file) { error in
                guard case let WeightFileError.mismatch(_, _, problems) = error else { return XCTFail("\(file): \(error)") }
                XCTAssertEqual(problems.first, hint, file)
            }
        }
        // Only the class count differs.
        let entry = try resnetEntry()
        var config = ParityTests.config(entry)
        config.numClasses = 1000
        XCTAssertThrowsError(try Model(config: config, weights: fixtures.appendingPathComponent(entry.files["safetensors"]!).path)) { error in
            guard case let WeightFileError.mismatch(_, _, problems) = error else { return XCTFail("\(error)") }
            XCTAssertEqual(problems, ["the file fits width multiplier 0.0625 with 10 classes", "'fc.weight' has shape [10, 128], expected [1000, 128]",
                                      "'fc.bias' has shape [10], expected [1000]"])
        }
    }

    func testAFileForAnotherNetworkSaysWhatItLooksLike() throws {
        let entry = try resnetEntry()
        let path = fixtures.appendingPathComponent(entry.files["safetensors"]!).path
        let config = ModelConfig(architecture: .mobilenetV2, flavor: .torch, widthMultiplier: 0.1, inputSize: 64, numClasses: 10)
        XCTAssertThrowsError(try Model(config: config, weights: path)) { error in
            XCTAssertTrue("\(error)".contains("looks like a torch resnet50 checkpoint"), "\(error)")
        }
        let keras = ModelConfig(architecture: .resnet50, flavor: .keras, widthMultiplier: 0.0625, inputSize: 64, numClasses: 10)
        XCTAssertThrowsError(try Model(config: keras, weights: path)) { error in
            XCTAssertTrue("\(error)".contains("looks like a torch resnet50 checkpoint"), "\(error)")
        }
        // A Keras file for another architecture: the layer structure does not fit.
        let h5 = fixtures.appendingPathComponent("inception_v3_keras.h5").path
        XCTAssertThrowsError(try Model(config: keras, weights: h5)) { error in
            XCTAssertTrue("\(error)".contains("inception_v3_keras.h5"), "\(error)")
        }
        // A Keras file with the torch flavour: its layers line up with torchvision's
        // MobileNetV2 by position (it used to load and predict); refused, naming the flag.
        for file in ["mobilenet_v2_keras.h5", "mobilenet_v2_keras.keras"] {
            let path = fixtures.appendingPathComponent(file).path
            XCTAssertThrowsError(try Model(config: config, weights: path), file) { error in
                guard case let WeightFileError.unsupportedFormat(_, reason) = error else { return XCTFail("\(file): \(error)") }
                XCTAssertTrue(reason.hasSuffix("pass --flavor keras"), reason)
            }
        }
    }

    func testTruncatedAndGarbageFilesThrowNamingTheFile() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("robustctl-weights-\(getpid())")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let entry = try resnetEntry()
        var cases: [(String, Data)] = []
        for file in ["safetensors", "pth", "legacy_pth"].map({ entry.files[$0]! }) + ["resnet50_keras.h5", "mobilenet_v2_keras.keras"] {
            let data = try Data(contentsOf: fixtures.appendingPathComponent(file))
            cases.append(("truncated_" + file, data.prefix(data.count / 2)))
            cases.append(("stub_" + file, data.prefix(20)))
        }
        cases.append(("garbage.pth", Data((0..<300).map { UInt8(truncatingIfNeeded: $0 &* 37) })))
        cases.append(("empty.safetensors", Data()))
        let config = ParityTests.config(entry)
        for (name, data) in cases {
            let path = directory.appendingPathComponent(name).path
            try data.write(to: URL(fileURLWithPath: path))
            XCTAssertThrowsError(try Model(config: config, weights: path), name) { error in
                XCTAssertTrue(error is WeightFileError, "\(name): \(error)")
                XCTAssertTrue("\(error)".contains(name), "\(name): \(error)")
            }
        }
        XCTAssertThrowsError(try Model(config: config, weights: directory.appendingPathComponent("absent.pth").path)) { error in
            XCTAssertTrue("\(error)".contains("no such file"), "\(error)")
        }
        // A named pipe nothing writes to is refused at once (opening it would wait for a writer).
        let pipe = directory.appendingPathComponent("pipe.pth").path
        XCTAssertEqual(mkfifo(pipe, 0o600), 0)
        XCTAssertThrowsError(try Model(config: config, weights: pipe)) { error in
            XCTAssertTrue("\(error)".contains("not a regular file"), "\(error)")
        }
    }

    /// Shapes, offsets and strides whose products or sums overflow, or that are negative, are
    /// refused as corrupt (they trapped, or read out of bounds).
    func testCraftedSizesAreRefusedWithoutOverflow() throws {
        func safetensors(_ entry: String) -> Data {
            let header = Data("{\"w\": \(entry)}".utf8)
            var data = Data()
            withUnsafeBytes(of: UInt64(header.count).littleEndian) { data.append(contentsOf: $0) }
            return data + header + Data(count: 8)
        }
        XCTAssertNoThrow(try SafeTensors.decode(safetensors(#"{"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}"#), name: "ok"))
        for entry in [#"{"dtype": "F32", "shape": [1099511627776, 1099511627776, 1099511627776], "data_offsets": [0, 8]}"#,
                      #"{"dtype": "F32", "shape": [2], "data_offsets": [0, 9223372036854775807]}"#,
                      #"{"dtype": "F64", "shape": [4611686018427387904], "data_offsets": [0, 8]}"#,
                      #"{"dtype": "F32", "shape": [-2, -1], "data_offsets": [0, 8]}"#] {
            XCTAssertThrowsError(try SafeTensors.decode(safetensors(entry), name: "crafted.safetensors"), entry) { error in
                guard case .corrupt? = error as? WeightFileError else { return XCTFail("\(entry): \(error)") }
            }
        }
        XCTAssertEqual(TorchCheckpoint.storageSpan(shape: [2, 3], strides: [3, 1]), 6)
        XCTAssertEqual(TorchCheckpoint.storageSpan(shape: [3, 2], strides: [1, 3]), 6, "transposed")
        XCTAssertEqual(TorchCheckpoint.storageSpan(shape: [4, 0], strides: [5, 1]), 0, "empty")
        XCTAssertNil(TorchCheckpoint.storageSpan(shape: [3], strides: [-1]))
        XCTAssertNil(TorchCheckpoint.storageSpan(shape: [3, 2], strides: [1]))
        XCTAssertNil(TorchCheckpoint.storageSpan(shape: [1 << 40, 1 << 40], strides: [1 << 40, 1]))
    }

    /// A flipped byte inside a zip entry's data (torch's and Keras's entries are stored, not
    /// compressed) fails the entry's CRC-32 instead of loading as weights.
    func testDamagedZipEntriesFailTheirChecksum() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("robustctl-crc-\(getpid())")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let torch = try resnetEntry()
        let keras = try XCTUnwrap(ParityTests.manifest().first { $0.architecture == "mobilenet_v2" && $0.flavor == "keras" })
        for (file, entry) in [(torch.files["pth"]!, torch), ("mobilenet_v2_keras.keras", keras)] {
            var data = try Data(contentsOf: fixtures.appendingPathComponent(file))
            data[data.count / 2] ^= 0x40  // the middle lies in the tensor data of both
            let path = directory.appendingPathComponent("damaged_" + file).path
            try data.write(to: URL(fileURLWithPath: path))
            XCTAssertThrowsError(try Model(config: ParityTests.config(entry), weights: path), file) { error in
                guard case let WeightFileError.corrupt(name, reason) = error else { return XCTFail("\(file): \(error)") }
                XCTAssertEqual(name, path)
                XCTAssertTrue(reason.contains("fails its CRC-32 check"), reason)
            }
        }
    }

    /// An entry whose central-directory record claims it expands 2 GB from a few kilobytes (a
    /// zip bomb, or a damaged size) is refused before anything is extracted.
    func testZipEntriesThatWouldExpandFarMoreThanWeightsDoAreRefused() throws {
        let torch = try resnetEntry()
        var data = try Data(contentsOf: fixtures.appendingPathComponent(torch.files["pth"]!))
        let bytes = [UInt8](data)
        let header: [UInt8] = [0x50, 0x4B, 0x01, 0x02]
        var patched = false
        for offset in 0..<(bytes.count - 46) where Array(bytes[offset..<(offset + 4)]) == header {
            let nameLength = Int(bytes[offset + 28]) | Int(bytes[offset + 29]) << 8
            guard String(decoding: bytes[(offset + 46)..<(offset + 46 + nameLength)], as: UTF8.self).hasSuffix("/data/0") else { continue }
            for (index, byte) in [UInt8](arrayLiteral: 0xFF, 0xFF, 0xFF, 0x7F).enumerated() { data[offset + 24 + index] = byte }
            patched = true
        }
        XCTAssertTrue(patched, "the fixture has a data/0 entry")
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("robustctl-bomb-\(getpid()).pth").path
        try data.write(to: URL(fileURLWithPath: path))
        defer { try? FileManager.default.removeItem(atPath: path) }
        XCTAssertThrowsError(try TorchCheckpoint.read(path)) { error in
            guard case let WeightFileError.corrupt(_, reason) = error else { return XCTFail("\(error)") }
            XCTAssertTrue(reason.hasSuffix("to 2147483647 bytes, more than any weight file does"), reason)
        }
    }

    /// One changed byte in a Keras file's B-tree makes libhdf5 1.10 segfault (found by
    /// mutating the fixture); the read is rehearsed in a child process, so the file is refused
    /// as damaged and this process lives on.
    func testAnHDF5FileThatCrashesLibhdf5IsRefused() throws {
        var data = try Data(contentsOf: fixtures.appendingPathComponent("resnet50_keras.h5"))
        XCTAssertEqual(data[6091], 0)
        data[6091] = 240
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("robustctl-crashing-\(getpid()).h5").path
        try data.write(to: URL(fileURLWithPath: path))
        defer { try? FileManager.default.removeItem(atPath: path) }
        let entry = try XCTUnwrap(ParityTests.manifest().first { $0.architecture == "resnet50" && $0.flavor == "keras" })
        XCTAssertThrowsError(try Model(config: ParityTests.config(entry), weights: path)) { error in
            guard case let WeightFileError.corrupt(file, reason) = error else { return XCTFail("\(error)") }
            XCTAssertEqual(file, path)
            XCTAssertTrue(reason.contains("libhdf5 crashed"), reason)
        }
        // A rehearsal that survives reports so, whether the read succeeded or threw.
        XCTAssertEqual(CrashIsolation.rehearse { }, .finished)
        XCTAssertEqual(CrashIsolation.rehearse { throw WeightFileError.corrupt(file: "x", reason: "y") }, .finished)
        // One that hangs is killed at its limit, and the caller reads in process.
        XCTAssertEqual(CrashIsolation.rehearse(limit: 0.2) { sleep(30) }, .unavailable)
    }

    func testConfigurationConstraintsAreNamed() {
        XCTAssertThrowsError(try NetworkDefinition(ModelConfig(architecture: .inceptionV3, flavor: .torch, inputSize: 64))) { error in
            XCTAssertEqual("\(error)", "inception_v3 needs an input of at least 75x75 pixels, got 64x64")
        }
        XCTAssertThrowsError(try NetworkDefinition(ModelConfig(architecture: .resnet50, flavor: .torch, widthMultiplier: 0.3)))
    }

    /// Full-size graphs: parameter counts equal the reference networks'.
    func testFullSizeParameterCounts() throws {
        func count(_ architecture: Architecture, _ flavor: Flavor) throws -> Int {
            try NetworkDefinition(ModelConfig(architecture: architecture, flavor: flavor)).parameters
                .reduce(0) { $0 + $1.shape.reduce(1, *) }
        }
        // torchvision: state-dict sizes without num_batches_tracked (and without AuxLogits).
        XCTAssertEqual(try count(.mobilenetV2, .torch), 3_538_984)
        XCTAssertEqual(try count(.resnet50, .torch), 25_610_152)
        XCTAssertEqual(try count(.inceptionV3, .torch), 23_869_000)
        // Keras: model.count_params().
        XCTAssertEqual(try count(.mobilenetV2, .keras), 3_538_984)
        XCTAssertEqual(try count(.resnet50, .keras), 25_636_712)
        XCTAssertEqual(try count(.inceptionV3, .keras), 23_851_784)
    }
}
