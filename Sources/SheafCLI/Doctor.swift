import ArgumentParser
import Foundation
import SheafCodebook
import SheafLinearAlgebra
import SheafQuantizer

/// What this machine runs Sheaf's kernels with: the CPU, OpenBLAS's core and how it was chosen.
/// `sheaf doctor` prints it, and every `sheaf-measure` result carries it.
public struct MachineReport: Codable, Equatable, Sendable {
    /// The CPU's brand string.
    public var cpu: String
    /// The instruction-set extensions that decide the kernels (`CPUFeatures.description`).
    public var cpuFeatures: String
    /// The OpenBLAS core (kernel set) this process runs.
    public var blasCore: String
    /// How that core was chosen (`OpenBLASCore.Selection.description`).
    public var blasCoreSelection: String
    /// The core Sheaf would choose for this CPU (empty when it has no AVX2 and FMA).
    public var blasBestCore: String
    /// OpenBLAS's build description.
    public var blasConfiguration: String
    /// The decode kernel's instruction path.
    public var decodeKernel: String
    /// The int8 scoring path of encoding and training at large K: "avx512-vnni" (the shortlist search is
    /// the default at K ≥ 1024) or "portable" (slower than sgemm: exhaustive search is the default).
    public var encodeKernel: String
    /// Logical CPUs this process may use.
    public var cpus: Int

    /// This process's report.
    public static var current: MachineReport {
        let features = CPUFeatures.current
        return MachineReport(
            cpu: CPUFeatures.brand, cpuFeatures: features.description, blasCore: BLAS.coreName,
            blasCoreSelection: OpenBLASCore.selection.description,
            blasBestCore: OpenBLASCore.candidates(for: features).first ?? "", blasConfiguration: BLAS.configuration,
            decodeKernel: Codebook.decodeInstructionSet,
            encodeKernel: EncodeSearch.hasFastInt8Scores ? "avx512-vnni" : "portable", cpus: ProcessInfo.processInfo.activeProcessorCount)
    }

    /// One line for logs and report headers: "CPU (features); OpenBLAS core X (how)".
    public var summary: String {
        "\(cpu) (\(cpuFeatures)), \(cpus) CPUs; OpenBLAS core \(blasCoreSelection); decode kernel \(decodeKernel); int8 encode kernel \(encodeKernel)"
    }
}

extension SheafCommand {
    /// `sheaf doctor`: the CPU, the OpenBLAS core and the kernels, and an sgemm self-check.
    struct Doctor: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Print the CPU, the OpenBLAS core and how it was chosen, and run an sgemm self-check.",
            discussion: """
                OpenBLAS picks its kernels when it loads; Debian's 0.3.21 falls back to its generic Prescott \
                kernels on some newer CPUs (several times slower). `sheaf` then re-executes itself once with \
                OPENBLAS_CORETYPE set to the best core for the CPU, kept only when this self-check passes. \
                A value of OPENBLAS_CORETYPE set by you is always respected. A service that links Sheaf as a \
                library should set OPENBLAS_CORETYPE itself (the best core is printed here).
                """)

        @Flag(help: "Print JSON.")
        var json = false

        struct Output: Codable {
            var machine: MachineReport
            var selfCheckPassed: Bool
            var selfCheckEntries: Int
            var selfCheckMilliseconds: Double
            var selfCheckFailure: String?
        }

        func run() throws {
            let machine = MachineReport.current
            let check = OpenBLASCore.selfCheck()
            if json {
                say(try jsonText(Output(
                    machine: machine, selfCheckPassed: check.passed, selfCheckEntries: check.entriesChecked,
                    selfCheckMilliseconds: check.milliseconds, selfCheckFailure: check.failure)))
            } else {
                say("cpu             \(machine.cpu), \(machine.cpus) CPUs")
                say("features        \(machine.cpuFeatures)")
                say("openblas        \(machine.blasConfiguration)")
                say("openblas core   \(machine.blasCoreSelection)")
                say("best core       \(machine.blasBestCore.isEmpty ? "none better than OpenBLAS's own (no AVX2 and FMA)" : machine.blasBestCore)")
                say("decode kernel   \(machine.decodeKernel)")
                say("encode kernel   \(machine.encodeKernel) (int8 shortlist search \(EncodeSearch.hasFastInt8Scores ? "on by default at K ≥ 1024" : "off by default: no AVX-512 VNNI"))")
                say("sgemm check     \(check.passed ? "passed" : "FAILED: \(check.failure ?? "")") (\(check.entriesChecked) entries, \(String(format: "%.1f", check.milliseconds)) ms)")
            }
            if !check.passed { throw ExitCode(1) }
        }
    }
}
