import ArgumentParser
import Foundation
import SheafCLI
import SheafLinearAlgebra

/// `sheaf-measure`: the measurements behind tools/bench-report, tools/nn-step-compare,
/// tools/quantizer-report and the README's figures. Results go to stdout (or the files named by
/// `--out`/`--json-out`); progress lines go to stderr.
@main
struct SheafMeasure: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sheaf-measure",
        abstract: "Sheaf's measurements: every figure beside a baseline measured in the same run.",
        discussion: """
            Build it in release (debug builds run the SIMD code hundreds of times slower):
              swift build -c release --product sheaf-measure
            tools/bench-report runs the `bench` suites and renders the report.
            """,
        subcommands: [Bench.self, Quantize.self, HistoryFetch.self, NNStep.self, ModelStep.self, EncodeShortlist.self, CHIMERanking.self])

    /// First the best OpenBLAS core for this CPU (may re-execute the process once), then the command.
    static func main() {
        OpenBLASCore.selectBestCore()
        log("machine: \(MachineReport.current.summary)")
        main(nil)
    }
}

/// A progress line on stderr.
func log(_ s: String) { FileHandle.standardError.write((s + "\n").data(using: .utf8)!) }

/// A measurement that cannot go on: printed as `Error: …`, exit status 1.
struct MeasureError: Error, CustomStringConvertible {
    var description: String
    init(_ message: String) { description = message }
}
