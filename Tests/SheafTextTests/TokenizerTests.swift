import Foundation
import SheafText
import Testing

/// The repository root and the model the demo fetches (tools/fetch-sample).
enum Fixtures {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().path
    static let model = root + "/data/minilm"
    static let itemTexts = root + "/data/ml-100k/item_texts.tsv"
    /// The numpy reference's embeddings of every item text, saved by tools/demo.
    static let savedReference = root + "/data/ml-100k/item_embeddings_reference.npy"
    static var modelPresent: Bool {
        ["vocab.txt", "tokenizer.json", "model.safetensors", "config.json"].allSatisfy {
            FileManager.default.fileExists(atPath: model + "/" + $0)
        }
    }

    /// The tools venv's python (tools/python-env creates it when needed).
    static func python() throws -> String {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/bin/bash")
        p.arguments = [root + "/tools/python-env"]
        let out = Pipe()
        p.standardOutput = out
        p.standardError = FileHandle.nullDevice
        try p.run()
        let path = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        p.waitUntilExit()
        guard p.terminationStatus == 0 else { throw TextModelError.unreadable(path: "tools/python-env", reason: "failed") }
        return path
    }

    /// Runs `script` with the venv python and `arguments`; returns stdout (stderr in the error).
    static func runPython(_ script: String, _ arguments: [String]) throws -> Data {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: try python())
        p.arguments = ["-c", script] + arguments
        let out = Pipe(), err = Pipe()
        p.standardOutput = out
        p.standardError = err
        try p.run()
        let data = out.fileHandleForReading.readDataToEndOfFile()
        let stderr = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        p.waitUntilExit()
        guard p.terminationStatus == 0 else { throw TextModelError.malformed(path: "python", reason: stderr) }
        return data
    }

    /// The item texts of data/ml-100k/item_texts.tsv ("id<TAB>text" lines).
    static func movieLensTexts() throws -> [String] {
        try String(contentsOfFile: itemTexts, encoding: .utf8).split(separator: "\n").map { line in
            String(line.split(separator: "\t", maxSplits: 1)[1])
        }
    }
}

/// The algorithm on a toy vocabulary, so it is tested without the model files.
@Suite struct WordPieceTests {
    let tokenizer = try! WordPieceTokenizer(
        tokens: ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "un", "##aff", "##able", "aff", "!", "cafe", "東", "京", "a", "##a", ","],
        maxLength: 8)

    @Test func greedyLongestMatchFirst() {
        #expect(tokenizer.pieces("unaffable") == ["un", "##aff", "##able"])
        #expect(tokenizer.pieces("affable") == ["aff", "##able"])
        #expect(tokenizer.pieces("affx") == ["[UNK]"], "one uncovered piece makes the whole word unknown")
        #expect(tokenizer.pieces("Unaffable!") == ["un", "##aff", "##able", "!"])
        #expect(tokenizer.encode("unaffable") == [2, 4, 5, 6, 3])
    }

    @Test func normalisation() {
        #expect(WordPieceTokenizer.normalize("Café DÉJÀ\tvu\u{0}\u{200B}!") == "cafe deja vu!")
        #expect(tokenizer.pieces("CAFÉ,cafe") == ["cafe", ",", "cafe"])
        #expect(tokenizer.pieces("東京") == ["東", "京"], "CJK ideographs are words of their own")
        #expect(WordPieceTokenizer.normalize("Straße ΣΊΣΥΦΟΣ") == "straße σισυφοσ")
    }

    @Test func edges() {
        #expect(tokenizer.encode("") == [2, 3])
        #expect(tokenizer.encode(" \n\t ") == [2, 3])
        #expect(tokenizer.pieces(String(repeating: "a", count: 100)) == ["a"] + [String](repeating: "##a", count: 99))
        #expect(tokenizer.pieces(String(repeating: "a", count: 101)) == ["[UNK]"], "longer than 100 characters")
        #expect(tokenizer.pieces("zebra") == ["[UNK]"])
        // Truncation: at most maxLength − 2 = 6 pieces between [CLS] and [SEP].
        #expect(tokenizer.encode("a a a a a a a a a") == [2, 12, 12, 12, 12, 12, 12, 3])
    }

    @Test func badVocabularies() {
        #expect(throws: TextModelError.malformed(path: "vocabulary", reason: "no [SEP] token")) {
            try WordPieceTokenizer(tokens: ["[PAD]", "[UNK]", "[CLS]"])
        }
        #expect(throws: TextModelError.malformed(path: "vocabulary", reason: "token \"a\" repeats (line 6)")) {
            try WordPieceTokenizer(tokens: ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "a", "a"])
        }
        #expect(throws: TextModelError.unreadable(path: "/nonexistent/vocab.txt", reason: "no such file")) {
            try WordPieceTokenizer(vocabularyFile: "/nonexistent/vocab.txt")
        }
    }
}

/// Token ids against the Hugging Face `tokenizers` package, on every MovieLens-100K item text and
/// on edge cases (runs when the demo has fetched the model).
@Suite(.enabled(if: Fixtures.modelPresent)) struct TokenizerParityTests {
    static let edgeCases: [String] = [
        "", "   ", "Café Déjà Vu (1995) | Comedy", "naïve résumé à la carte", "東京物語 (1953) | Drama", "Hello,world!!...",
        "don't stop—ever… «quoted» ¿qué?", String(repeating: "x", count: 100), String(repeating: "y", count: 101),
        "supercalifragilisticexpialidociousantidisestablishmentarianism", "a\u{0}b\u{200B}c\u{FFFD}d", "tab\tnew\nline\r\n",
        "🎬 film ♪ ½ ™ © 1st", "Straße ΣΊΣΥΦΟΣ Ⅻ ﬁ", "ＦＵＬＬＷＩＤＴＨ ｔｅｘｔ", "mixed東京text", "x" + String(repeating: " word", count: 300),
        "Wallace & Gromit: The Best of Aardman Animation (1996) | Animation",
    ]

    @Test func matchesTokenizersOnMovieLensAndEdgeCases() throws {
        let tokenizer = try WordPieceTokenizer(vocabularyFile: Fixtures.model + "/vocab.txt")
        var texts = Self.edgeCases
        if FileManager.default.fileExists(atPath: Fixtures.itemTexts) { texts += try Fixtures.movieLensTexts() }
        let input = NSTemporaryDirectory() + "sheaf-texts-\(UUID().uuidString).json"
        defer { try? FileManager.default.removeItem(atPath: input) }
        try JSONSerialization.data(withJSONObject: texts).write(to: URL(fileURLWithPath: input))
        let script = """
            import json, sys
            from tokenizers import Tokenizer
            t = Tokenizer.from_file(sys.argv[1])
            t.no_padding()
            t.enable_truncation(max_length=256)
            texts = json.load(open(sys.argv[2], encoding="utf-8"))
            print(json.dumps([e.ids for e in t.encode_batch(texts)]))
            """
        let data = try Fixtures.runPython(script, [Fixtures.model + "/tokenizer.json", input])
        let expected = try #require(try JSONSerialization.jsonObject(with: data) as? [[Int]])
        try #require(expected.count == texts.count)
        var mismatches = 0
        for (text, want) in zip(texts, expected) {
            let got = tokenizer.encode(text).map(Int.init)
            if got != want {
                mismatches += 1
                if mismatches <= 5 { Issue.record("\(text.prefix(80).debugDescription): Sheaf \(got.prefix(20)) vs tokenizers \(want.prefix(20))") }
            }
        }
        #expect(mismatches == 0, "\(mismatches) of \(texts.count) texts differ")
        #expect(texts.count >= Self.edgeCases.count)
    }
}
