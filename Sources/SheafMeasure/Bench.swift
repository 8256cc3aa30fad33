import ArgumentParser
import Foundation
import SheafCLI

extension SheafMeasure {
    /// The measurements behind tools/bench-report. Each suite writes one JSON file of rows, every
    /// row a Sheaf figure beside a baseline measured in the same run; progress lines go to stderr.
    struct Bench: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "bench",
            abstract: "The suites of tools/bench-report: each writes one JSON file of report rows.",
            subcommands: [Decode.self, Synthetic.self, Real.self, NPYLoad.self, Appends.self, StandIn.self, WriteNPY.self])

        /// The model widths H the store suites measure histories → x · W + b at.
        static let projectedWidths = [64, 128, 256]
    }
}

// MARK: - Options shared by the suites

/// Where a suite writes its rows.
struct SuiteOutput: ParsableArguments {
    @Option(help: "The suite's JSON file of report rows.")
    var out: String
}

/// Where a suite builds its store.
struct StoreLocation: ParsableArguments {
    @Option(help: ArgumentHelp("Build the store in DIR (replacing what is there) and keep it; default: a temporary directory, deleted at the end.", valueName: "DIR"))
    var keep: String?

    /// The store directory, and whether it is kept; `tag` names the temporary one.
    func directory(_ tag: String) -> (String, keep: Bool) {
        if var k = keep {
            if !k.hasPrefix("/") { k = FileManager.default.currentDirectoryPath + "/" + k }
            try? FileManager.default.removeItem(atPath: k)
            return (k, true)
        }
        return (NSTemporaryDirectory() + "sheaf-bench-\(tag)-\(UUID().uuidString)", false)
    }
}

// MARK: - The report rows

/// One line of the report: Sheaf's figure, the baseline's, and how many times better Sheaf is.
struct ReportRow: Codable {
    var section: String
    /// Stable id, e.g. "decode/stream/D384/K256/L3/m8" (goals look rows up by it).
    var key: String
    var label: String
    var unit: String
    var sheaf: Double
    var baselineName: String
    var baseline: Double
    /// "higher" or "lower": which way is better for this unit.
    var better: String
    /// Sheaf's advantage: sheaf / baseline when higher is better, baseline / sheaf when lower is.
    var ratio: Double
    var params: [String: String]

    init(section: String, key: String, label: String, unit: String, sheaf: Double, baselineName: String, baseline: Double,
         better: String, params: [String: String] = [:]) {
        self.section = section
        self.key = key
        self.label = label
        self.unit = unit
        self.sheaf = sheaf
        self.baselineName = baselineName
        self.baseline = baseline
        self.better = better
        ratio = better == "higher" ? sheaf / baseline : baseline / sheaf
        self.params = params
    }
}

/// What a suite writes: its rows, notes and details.
struct SuiteResult: Codable {
    var suite: String
    var dataset: String
    var rows: [ReportRow]
    var notes: [String]
    var details: [String: String]
    /// The CPU, the OpenBLAS core and how it was chosen, the decode kernel: beside every figure.
    var machine = MachineReport.current
}

func writeJSON<T: Encodable>(_ value: T, to path: String) throws {
    let e = JSONEncoder()
    e.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
    try e.encode(value).write(to: URL(fileURLWithPath: path))
}
