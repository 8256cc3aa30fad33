import ArgumentParser
import Foundation
import SheafStore

/// The `sheaf` command: a bulk loader and inspector for Sheaf stores.
public struct SheafCommand: ParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "sheaf",
        abstract: "Load, inspect and verify Sheaf feature stores.",
        discussion: """
            A store is a directory holding an LMDB environment. Typical use:
              sheaf init STORE --dim 384
              sheaf codebook train STORE --input items.npy
              sheaf items load STORE --input items.npy --ids ids.npy --titles titles.tsv
              sheaf behaviors load STORE --input ratings.csv
              sheaf stats STORE
              sheaf embed --model data/minilm --input items.tsv --output items.npy
              sheaf train STORE --model sasrec --output model/
              sheaf recommend STORE --model model/ --user 196
            Results go to stdout; progress and errors to stderr.
            """,
        version: "0.4.0",
        subcommands: [
            Init.self, CodebookCommand.self, ItemsCommand.self, BehaviorsCommand.self, Shard.self, HistoryCommand.self,
            Stats.self, Verify.self, Migrate.self, Embed.self, Train.self, Evaluate.self, Recommend.self, CHIMECommand.self, ProfilesCommand.self, ProfileShow.self, Doctor.self,
        ])

    public init() {}
}

/// Options every command on an existing store takes.
struct StoreArguments: ParsableArguments {
    @Argument(help: "The store directory.")
    var store: String

    @Flag(name: .shortAndLong, help: "No progress on stderr (it is also off when stderr is not a terminal).")
    var quiet = false

    @Flag(help: ArgumentHelp(
        "Read without LMDB's lock file (MDB_NOLOCK), for a store you cannot write (another user's, read-only media, a backup). Only while no process writes it: readers then go unregistered and a concurrent writer can tear what they read."))
    var readOnly = false

    /// Opens the existing store (never creates one); `--read-only` opens every command's store read-only
    /// and without the lock file.
    func open(readOnly: Bool = false) throws -> Store {
        var options = StoreOptions()
        options.createIfMissing = false
        options.readOnly = readOnly || self.readOnly
        options.withoutLock = self.readOnly
        do {
            return try Store(path: store, options: options)
        } catch StoreError.storeMissing(let path) {
            throw CLIError("no Sheaf store at \(path); create one with `sheaf init \(path) --dim D`")
        }
    }

    /// A progress line on stderr, unless quiet.
    func progress(_ label: String, total: Int?, unit: String = "rows") -> ProgressReporter {
        ProgressReporter(label: label, total: total, unit: unit, enabled: !quiet)
    }
}

/// A command-line failure: the message is printed as `Error: …` and the exit status is 1.
public struct CLIError: Error, CustomStringConvertible, Equatable {
    public var description: String
    init(_ message: String) { description = message }
}

// MARK: - Output

/// Where commands write: stdout and stderr, or buffers (for in-process tests).
public final class CommandOutput: @unchecked Sendable {
    private let lock = NSLock()
    private var out = ""
    private var err = ""
    private let capture: Bool
    private let captureAsTerminal: Bool

    /// The output of the running command (task-local, so parallel tests do not mix).
    @TaskLocal public static var current = CommandOutput(capture: false)

    /// - Parameters:
    ///   - capture: keep the text in memory instead of writing it to the process's stdout/stderr.
    ///   - asTerminal: when capturing, behave as if stderr were a terminal (progress is drawn).
    public init(capture: Bool, asTerminal: Bool = false) {
        self.capture = capture
        captureAsTerminal = asTerminal
    }

    /// Everything written to stdout so far (captured outputs only).
    public var standardOutput: String { lock.withLock { out } }
    /// Everything written to stderr so far (captured outputs only).
    public var standardError: String { lock.withLock { err } }
    /// Whether this output is captured in memory (commands run in-process, as tests do).
    var isCapturing: Bool { capture }
    /// Whether stderr is an interactive terminal (progress is shown only then).
    var stderrIsTerminal: Bool { capture ? captureAsTerminal : isatty(STDERR_FILENO) == 1 }

    func write(_ s: String) {
        if capture { lock.withLock { out += s } } else { FileHandle.standardOutput.write(Data(s.utf8)) }
    }

    func writeError(_ s: String) {
        if capture { lock.withLock { err += s } } else { FileHandle.standardError.write(Data(s.utf8)) }
    }
}

/// Prints a line to the command's stdout.
func say(_ s: String = "") { CommandOutput.current.write(s + "\n") }
/// Prints a line to the command's stderr.
func note(_ s: String) { CommandOutput.current.writeError(s + "\n") }

/// Encodes a value as pretty, key-sorted JSON text.
func jsonText<T: Encodable>(_ value: T) throws -> String {
    let e = JSONEncoder()
    e.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
    return String(decoding: try e.encode(value), as: UTF8.self)
}
