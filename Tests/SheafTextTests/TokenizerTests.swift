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
