import ArgumentParser
import TensorCore

@main
struct RobustCtl: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "robustctl",
        abstract: "Measure how adversarial robustness changes when an image classifier moves from PC to mobile.",
        subcommands: []
    )
}
