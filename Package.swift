// swift-tools-version: 6.0
import PackageDescription

let package = Package(
    name: "robustctl",
    platforms: [.macOS(.v13)],
    products: [
        .library(name: "TensorCore", targets: ["TensorCore"]),
        .library(name: "ModelZoo", targets: ["ModelZoo"]),
        .library(name: "Attacks", targets: ["Attacks"]),
        .library(name: "Quantize", targets: ["Quantize"]),
        .library(name: "Evaluation", targets: ["Evaluation"]),
        .executable(name: "robustctl", targets: ["robustctl"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.6.0"),
        .package(url: "https://github.com/weichsel/ZIPFoundation", from: "0.9.19"),
        .package(url: "https://github.com/jpsim/Yams", from: "6.0.0"),
    ],
    targets: [
        // C libraries, wrapped once at the edge.
        .systemLibrary(name: "CBLAS", path: "Sources/CBLAS"),
        .systemLibrary(name: "CDNNL", path: "Sources/CDNNL"),
        .systemLibrary(name: "CPNG", path: "Sources/CPNG"),
        .systemLibrary(name: "CJPEG", path: "Sources/CJPEG"),
        .systemLibrary(name: "CHDF5", path: "Sources/CHDF5"),
        .target(name: "CHDF5Shim", dependencies: ["CHDF5"], linkerSettings: [.linkedLibrary("hdf5_serial")]),
        .target(
            name: "CShims",
            dependencies: ["CJPEG", "CPNG"],
            linkerSettings: [.linkedLibrary("gomp"), .linkedLibrary("jpeg"), .linkedLibrary("png16")]
        ),

        // Libraries, lowest layer first.
        .target(
            name: "TensorCore",
            dependencies: ["CBLAS", "CDNNL", "CPNG", "CShims"]
        ),
        .target(name: "ModelZoo", dependencies: ["TensorCore", "CHDF5Shim", "ZIPFoundation"]),
        .target(name: "Attacks", dependencies: ["TensorCore", "ModelZoo", "CShims"]),
        .target(name: "Quantize", dependencies: ["TensorCore", "ModelZoo", "CShims", "ZIPFoundation"]),
        .target(
            name: "Evaluation",
            dependencies: ["TensorCore", "ModelZoo", "Attacks", "Quantize", .product(name: "Yams", package: "Yams")]
        ),

        .executableTarget(
            name: "robustctl",
            dependencies: [
                "TensorCore", "ModelZoo", "Attacks", "Quantize", "Evaluation", "CShims",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ],
            resources: [.copy("DemoModels")]
        ),

        .testTarget(name: "TensorCoreTests", dependencies: ["TensorCore"]),
        .testTarget(name: "ModelZooTests", dependencies: ["ModelZoo", "TensorCore"]),
        .testTarget(name: "AttacksTests", dependencies: ["Attacks", "ModelZoo", "TensorCore"]),
        .testTarget(name: "QuantizeTests", dependencies: ["Quantize", "ModelZoo", "TensorCore", "CShims"]),
        .testTarget(name: "EvaluationTests", dependencies: ["Evaluation", "ModelZoo", "TensorCore"]),
        .testTarget(name: "robustctlTests", dependencies: ["robustctl", "Attacks", "ModelZoo", "Quantize", "TensorCore"]),
    ]
)
