import Foundation
import SheafFormats
import SheafNN
import SheafText
import Testing

/// Sheaf's BERT against the numpy reference (tools/embed_items.py: numpy + tokenizers +
/// safetensors, no torch) on the same texts (runs when the demo has fetched the model).
@Suite(.enabled(if: Fixtures.modelPresent)) struct EncoderParityTests {
    /// Texts for the comparison: edge cases and MovieLens item texts (`limit` of them; 0 = all).
    static func texts(limit: Int) throws -> [String] {
        var texts = TokenizerParityTests.edgeCases
        if FileManager.default.fileExists(atPath: Fixtures.itemTexts) {
            let all = try Fixtures.movieLensTexts()
            texts += limit > 0 ? Array(all.prefix(limit)) : all
        }
        return texts
    }

    /// The reference embeddings of `texts`, computed by tools/embed_items.py's MiniLM class.
    static func reference(_ texts: [String]) throws -> [Float] {
        let input = NSTemporaryDirectory() + "sheaf-texts-\(UUID().uuidString).json"
        let output = NSTemporaryDirectory() + "sheaf-reference-\(UUID().uuidString).npy"
        defer {
            try? FileManager.default.removeItem(atPath: input)
            try? FileManager.default.removeItem(atPath: output)
        }
        try JSONSerialization.data(withJSONObject: texts).write(to: URL(fileURLWithPath: input))
        let script = """
            import json, sys
            import numpy as np
            sys.path.insert(0, sys.argv[1] + "/tools")
            from embed_items import MiniLM
            texts = json.load(open(sys.argv[2], encoding="utf-8"))
            m = MiniLM(sys.argv[1] + "/data/minilm")
            np.save(sys.argv[3], m.encode(texts).astype(np.float32))
            """
        _ = try Fixtures.runPython(script, [Fixtures.root, input, output])
        return try NPYArray(contentsOf: output).floats(path: output)
    }

    /// The lowest cosine between rows of `mine` and `theirs` (count × 384); also checks unit norm.
    static func lowestCosine(_ mine: [Float], _ theirs: [Float], rows: Int) -> Float {
        var worst: Float = 1
        for r in 0..<rows {
            var dot: Float = 0, a: Float = 0, b: Float = 0
            for j in 0..<384 {
                dot += mine[r * 384 + j] * theirs[r * 384 + j]
                a += mine[r * 384 + j] * mine[r * 384 + j]
                b += theirs[r * 384 + j] * theirs[r * 384 + j]
            }
            #expect(abs(a.squareRoot() - 1) <= 1e-4, "row \(r) is not unit-norm")
            worst = min(worst, dot / (a * b).squareRoot())
        }
        return worst
    }

    /// Against the reference run now, on the tokenizer edge cases and the first MovieLens texts.
    @Test func cosineAgainstTheNumpyReference() throws {
        let texts = try Self.texts(limit: 40)
        let encoder = try BertEncoder(modelDirectory: Fixtures.model)
        #expect(encoder.dimension == 384)
        var seen = 0
        let mine = encoder.embed(texts, batchSize: 16) { seen = $0 }
        #expect(seen == texts.count)
        let theirs = try Self.reference(texts)
        try #require(theirs.count == mine.count)
        let worst = Self.lowestCosine(mine, theirs, rows: texts.count)
        #expect(worst >= 0.9999, "lowest cosine \(worst)")
    }

    /// Every MovieLens item text, against the reference embeddings `tools/demo` saved
    /// (embed_items.py --compare --save-reference: the same script on the same texts; running it
    /// here again would take minutes).
    @Test(.enabled(if: FileManager.default.fileExists(atPath: Fixtures.savedReference)))
    func cosineOnEveryMovieLensText() throws {
        let texts = try Fixtures.movieLensTexts()
        let reference = try NPYArray(contentsOf: Fixtures.savedReference)
        try #require(reference.shape == [texts.count, 384], "\(Fixtures.savedReference) is not of the current item texts")
        let theirs = try reference.floats(path: Fixtures.savedReference)
        let mine = try BertEncoder(modelDirectory: Fixtures.model).embed(texts)
        let worst = Self.lowestCosine(mine, theirs, rows: texts.count)
        #expect(texts.count == 1_682)
        #expect(worst >= 0.9999, "lowest cosine \(worst) over \(texts.count) texts")
    }
}
