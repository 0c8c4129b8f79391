import ArgumentParser
import Foundation
import ModelZoo

struct Models: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "List the architectures, flavours, input sizes, preprocessing and weight formats.")

    @Flag(help: "Print JSON.")
    var json = false

    struct Row: Encodable {
        let architecture: String
        let flavor: String
        let input_size: Int
        let resize_size: Int
        let preprocessing: String
        let weight_formats: [String]
        let parameters: Int
    }

    func run() throws {
        var rows: [Row] = []
        for architecture in Architecture.allCases {
            for flavor in Flavor.allCases {
                let definition = try NetworkDefinition(ModelConfig(architecture: architecture, flavor: flavor))
                rows.append(Row(architecture: architecture.rawValue, flavor: flavor.rawValue, input_size: architecture.defaultInputSize,
                                resize_size: architecture.defaultResizeSize, preprocessing: definition.preprocessing.summary,
                                weight_formats: flavor == .torch ? [".pth (zip)", ".pth (legacy)", ".safetensors"] : [".h5", ".weights.h5", ".keras"],
                                parameters: definition.parameters.reduce(0) { $0 + $1.shape.reduce(1, *) }))
            }
        }
        if json {
            printJSON(rows)
            return
        }
        for row in rows {
            let name = "\(row.architecture) (\(row.flavor))".padding(toLength: 24, withPad: " ", startingAt: 0)
            print("\(name) input \(row.input_size) (resize \(row.resize_size), centre crop)  \(row.parameters) parameters")
            print("    preprocessing: \(row.preprocessing)")
            print("    weights: \(row.weight_formats.joined(separator: ", "))")
        }
    }
}

func printJSON<T: Encodable>(_ value: T) {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
    print(String(decoding: (try? encoder.encode(value)) ?? Data("null".utf8), as: UTF8.self))
}
