import Foundation
import SheafFormats
import SheafStore
import SheafText

/// The fuzz targets: every decoder Sheaf runs on bytes it did not write. Each takes any bytes and must
/// return (accepted or not), never trap, hang or read out of bounds.
///
/// `sheaf-fuzz` (built by `tools/fuzz` with `-sanitize=fuzzer,address`) hands them libFuzzer's inputs;
/// `FuzzTargetTests` runs each over its committed corpus (`Tests/FuzzCorpus/<name>/`, seeded from real
/// files) and fixed-seed mutations of it in every test run.
public enum FuzzTargets {
    /// The targets by name, in a stable order.
    public static let names = ["segment", "records", "npy", "fvecs", "safetensors", "behaviors", "wordpiece"]

    /// Runs target `name` on `bytes`; returns whether the input was accepted (decoded without error).
    public static func run(_ name: String, _ bytes: UnsafeRawBufferPointer) -> Bool {
        switch name {
        case "segment": return RecordDecoders.historySegment(bytes)
        case "records":
            // First byte: which record decoder; the rest: the record.
            guard let first = bytes.first else { return false }
            return RecordDecoders.record(table: Int(first), UnsafeRawBufferPointer(rebasing: bytes[1...]))
        case "npy":
            guard let array = try? NPYArray(bytes: Array(bytes), path: "fuzz.npy") else { return false }
            if array.dtype == "<f4" || array.dtype == "<f2" { return (try? array.floats()) != nil }
            return (try? array.ids()) != nil
        case "fvecs", "safetensors": return embeddingFile(bytes, kind: name)
        case "behaviors":
            // First byte: the format; the rest: the file.
            guard let first = bytes.first else { return false }
            let formats: [BehaviorFormat] = [.csv, .tsv, .movielens, .recbole]
            return behaviorFile(UnsafeRawBufferPointer(rebasing: bytes[1...]), format: formats[Int(first) % formats.count])
        case "wordpiece":
            // Any text is valid input: "accepted" means the encoding is well-formed ([CLS] … [SEP], within
            // maxLength, every id in the vocabulary).
            let text = String(decoding: bytes, as: UTF8.self)
            let ids = tokenizer.encode(text)
            _ = tokenizer.pieces(text)
            return ids.count >= 2 && ids.count <= tokenizer.maxLength && ids.first == tokenizer.classID
                && ids.last == tokenizer.separatorID && ids.allSatisfy { $0 >= 0 && Int($0) < tokenizer.vocabulary.count }
        default: preconditionFailure("no fuzz target \(name)")
        }
    }

    /// The tokenizer `wordpiece` uses: the vocabulary file in `SHEAF_FUZZ_VOCAB` (tools/fuzz passes
    /// MiniLM's), or a small built-in one with every kind of token the algorithm distinguishes.
    static let tokenizer: WordPieceTokenizer = {
        if let path = ProcessInfo.processInfo.environment["SHEAF_FUZZ_VOCAB"], let t = try? WordPieceTokenizer(vocabularyFile: path, maxLength: 64) {
            return t
        }
        let tokens = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "un", "##aff", "##able", "aff", "!", "cafe", "東", "京", "a", "##a",
                      ",", "the", "movie", "##s", "star", "wars", "(", ")", "1977", "19", "##77", "é", "##é", "-", "'", "ø", "##ø"]
        return try! WordPieceTokenizer(tokens: tokens, maxLength: 64)
    }()

    /// One scratch file per process and kind, for the readers that take a path.
    private static func scratchPath(_ suffix: String) -> String {
        let dir = FileManager.default.fileExists(atPath: "/dev/shm") ? "/dev/shm/" : NSTemporaryDirectory()
        return dir + "sheaf-fuzz-\(getpid())\(suffix)"
    }

    private static func write(_ bytes: UnsafeRawBufferPointer, to path: String) -> Bool {
        FileManager.default.createFile(atPath: path, contents: Data(bytes))
    }

    private static func embeddingFile(_ bytes: UnsafeRawBufferPointer, kind: String) -> Bool {
        let path = scratchPath("." + kind)
        guard write(bytes, to: path) else { return false }
        defer { unlink(path) }
        if kind == "safetensors" {
            guard let file = try? SafeTensors.read(path: path) else { return false }
            for entry in file.entries where entry.shape.reduce(1, *) <= 1 << 20 { _ = try? file.floats(entry.name) }
        }
        guard let e = try? EmbeddingFile(path: path) else { return false }
        return (try? e.read(rows: 0..<min(e.count, 8))) != nil
    }

    private static func behaviorFile(_ bytes: UnsafeRawBufferPointer, format: BehaviorFormat) -> Bool {
        let path = scratchPath("." + format.rawValue)
        guard write(bytes, to: path) else { return false }
        defer { unlink(path) }
        guard let reader = try? BehaviorFileReader(path: path, format: format) else { return false }
        var rows = 0
        return (try? reader.forEach { _, _ in
            rows += 1
            return true
        }) != nil
    }
}
