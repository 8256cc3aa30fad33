import Foundation
import SheafText
import Testing

/// Token ids against the Hugging Face `tokenizers` package, on every MovieLens-100K item text and
/// on edge cases (runs when the demo has fetched the model).
@Suite(.enabled(if: DemoData.modelPresent, DemoData.modelMissing))
struct TokenizerParityTests {
    static let edgeCases: [String] = [
        "", "   ", "Café Déjà Vu (1995) | Comedy", "naïve résumé à la carte", "東京物語 (1953) | Drama", "Hello,world!!...",
        "don't stop—ever… «quoted» ¿qué?", String(repeating: "x", count: 100), String(repeating: "y", count: 101),
        "supercalifragilisticexpialidociousantidisestablishmentarianism", "a\u{0}b\u{200B}c\u{FFFD}d", "tab\tnew\nline\r\n",
        "🎬 film ♪ ½ ™ © 1st", "Straße ΣΊΣΥΦΟΣ Ⅻ ﬁ", "ＦＵＬＬＷＩＤＴＨ ｔｅｘｔ", "mixed東京text", "x" + String(repeating: " word", count: 300),
        "Wallace & Gromit: The Best of Aardman Animation (1996) | Animation",
    ]

    @Test(.enabled(if: PythonEnvironment.canImport("tokenizers"), PythonEnvironment.missing("tokenizers")))
    func matchesTokenizersOnMovieLensAndEdgeCases() throws {
        let tokenizer = try WordPieceTokenizer(vocabularyFile: DemoData.model + "/vocab.txt")
        var texts = Self.edgeCases
        if FileManager.default.fileExists(atPath: DemoData.itemTexts) { texts += try DemoData.movieLensTexts() }
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
        let data = try PythonEnvironment.run(script, [DemoData.model + "/tokenizer.json", input])
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
