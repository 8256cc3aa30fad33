import Foundation
import SheafCodebook
import SheafRandom
import Testing

// What the integration tests need from outside the package: Python with the packages of
// tools/requirements.txt, the built sheaf-measure, and the data the demo fetches. Each test is
// gated on what it needs, and says what is missing when it is skipped.

/// The repository root.
let repositoryRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .deletingLastPathComponent().path

/// A finished process: its status, stdout and stderr.
struct ProcessResult {
    var status: Int32
    var stdout: Data
    var stderr: String
}

/// Runs `executable` with `arguments` to completion (stdin empty, stderr through a temporary file so
/// that neither pipe can fill up); nil when it cannot be started.
func runProcess(_ executable: String, _ arguments: [String], environment: [String: String]? = nil) -> ProcessResult? {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: executable)
    p.arguments = arguments
    if let environment { p.environment = environment }
    let errFile = TemporaryPath(".stderr")
    guard FileManager.default.createFile(atPath: errFile.path, contents: nil),
        let err = FileHandle(forWritingAtPath: errFile.path)
    else { return nil }
    defer { try? err.close() }
    let out = Pipe()
    p.standardInput = FileHandle.nullDevice
    p.standardOutput = out
    p.standardError = err
    do { try p.run() } catch { return nil }
    let stdout = out.fileHandleForReading.readDataToEndOfFile()
    p.waitUntilExit()
    let stderr = FileManager.default.contents(atPath: errFile.path) ?? Data()
    return ProcessResult(status: p.terminationStatus, stdout: stdout, stderr: String(decoding: stderr, as: UTF8.self))
}

/// A uniquely named path in the temporary directory; the file or directory is removed on release.
final class TemporaryPath {
    let path: String
    init(_ suffix: String = "") { path = NSTemporaryDirectory() + "sheaf-integration-\(UUID().uuidString)\(suffix)" }
    deinit { try? FileManager.default.removeItem(atPath: path) }
}

extension TemporaryPath {
    /// A new temporary directory, created.
    static func directory() throws -> TemporaryPath {
        let dir = TemporaryPath()
        try FileManager.default.createDirectory(atPath: dir.path, withIntermediateDirectories: true)
        return dir
    }
}

/// A random two-level cosine codebook (id 1, 8-bit magnitudes in [0, 2] and [0, 1]) for test stores.
func twoLevelCodebook(dimension d: Int, codesPerLevel k: Int, rng: inout SplitMix64) throws -> Codebook {
    try Codebook(
        id: 1, dimension: d, levels: 2, codesPerLevel: k, metric: .cosine, magnitudeEncoding: .uint8,
        magnitudeRanges: [MagnitudeRange(lower: 0, upper: 2), MagnitudeRange(lower: 0, upper: 1)],
        centroids: (0..<(2 * k * d)).map { _ in rng.float(in: -1...1) })
}

// MARK: - Python

/// tools/.venv, the Python the tools and these tests use. tools/python-env creates it from
/// tools/requirements.txt, pip-installing what is missing (so the first run needs the network), and
/// does nothing when it is up to date.
enum PythonEnvironment {
    /// The venv's python, or nil when python3 is not on PATH or tools/python-env failed.
    static let python: String? = {
        guard runProcess("/usr/bin/env", ["python3", "--version"])?.status == 0,
            let r = runProcess("/bin/bash", [repositoryRoot + "/tools/python-env"]), r.status == 0
        else { return nil }
        let path = String(decoding: r.stdout, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        return FileManager.default.isExecutableFile(atPath: path) ? path : nil
    }()

    /// Whether the venv's python imports every one of `modules`.
    static func canImport(_ modules: String...) -> Bool {
        guard let python else { return false }
        return runProcess(python, ["-c", "import " + modules.joined(separator: ", ")])?.status == 0
    }

    /// What a gate says when Python or `modules` are missing.
    static func missing(_ modules: String...) -> Comment {
        Comment(
            rawValue: "needs python3 and tools/.venv with \(modules.joined(separator: ", ")) "
                + "(tools/python-env sets it up from tools/requirements.txt; pip needs the network the first time)")
    }

    /// Runs `script` with the venv's python and `arguments`; returns stdout.
    /// - Throws: `PythonError` with stderr when it fails.
    static func run(_ script: String, _ arguments: [String]) throws -> Data {
        guard let python else { throw PythonError(message: "tools/python-env failed") }
        guard let r = runProcess(python, ["-c", script] + arguments) else { throw PythonError(message: "cannot start \(python)") }
        guard r.status == 0 else { throw PythonError(message: r.stderr) }
        return r.stdout
    }
}

/// Spark: a Java runtime on PATH and pyspark in tools/.venv (`tools/python-env --spark` installs the
/// pinned pyspark of tools/requirements-spark.txt, ~470 MB, the first time).
enum SparkEnvironment {
    static let javaPresent = runProcess("/usr/bin/env", ["java", "-version"])?.status == 0

    /// Whether tools/spark_shards.py can run: Java, and pyspark installed.
    static let ready: Bool = {
        guard javaPresent, PythonEnvironment.python != nil,
            runProcess("/bin/bash", [repositoryRoot + "/tools/python-env", "--spark"])?.status == 0
        else { return false }
        return PythonEnvironment.canImport("pyspark")
    }()

    static let missing: Comment =
        "needs a Java 17+ runtime (Debian: openjdk-17-jre-headless) and pyspark in tools/.venv (tools/python-env --spark; pip needs the network the first time)"
}

/// A product built next to the test bundle (`swift build --build-tests` builds every product), else
/// in .build/debug; nil when neither is there.
func builtProduct(_ name: String) -> String? {
    var dir = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
    for _ in 0..<4 {
        let candidate = dir.appendingPathComponent(name).path
        if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
        dir = dir.deletingLastPathComponent()
    }
    let fallback = repositoryRoot + "/.build/debug/" + name
    return FileManager.default.isExecutableFile(atPath: fallback) ? fallback : nil
}

struct PythonError: Error, CustomStringConvertible {
    var message: String
    var description: String { "python: \(message)" }
}

// MARK: - The demo's data

/// The model and texts tools/demo (tools/fetch-sample, tools/prepare-sample) fetches into data/.
enum DemoData {
    static let model = repositoryRoot + "/data/minilm"
    static let itemTexts = repositoryRoot + "/data/ml-100k/item_texts.tsv"
    static var modelPresent: Bool {
        ["vocab.txt", "tokenizer.json", "model.safetensors", "config.json"].allSatisfy {
            FileManager.default.fileExists(atPath: model + "/" + $0)
        }
    }
    static let modelMissing: Comment = "needs all-MiniLM-L6-v2 in data/minilm (tools/demo fetches it)"

    /// The item texts of data/ml-100k/item_texts.tsv ("id<TAB>text" lines).
    static func movieLensTexts() throws -> [String] {
        try String(contentsOfFile: itemTexts, encoding: .utf8).split(separator: "\n").map { line in
            String(line.split(separator: "\t", maxSplits: 1)[1])
        }
    }
}
