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

    @Test func cosineAgainstTheNumpyReference() throws {
        let texts = try Self.texts(limit: 200)
        let encoder = try BertEncoder(modelDirectory: Fixtures.model)
        #expect(encoder.dimension == 384)
        var seen = 0
        let mine = encoder.embed(texts, batchSize: 16) { seen = $0 }
        #expect(seen == texts.count)
        let theirs = try Self.reference(texts)
        try #require(theirs.count == mine.count)
        var worst: Float = 1
        for r in 0..<texts.count {
            var dot: Float = 0, a: Float = 0, b: Float = 0
            for j in 0..<384 {
                dot += mine[r * 384 + j] * theirs[r * 384 + j]
                a += mine[r * 384 + j] * mine[r * 384 + j]
                b += theirs[r * 384 + j] * theirs[r * 384 + j]
            }
            #expect(abs(a.squareRoot() - 1) <= 1e-4, "row \(r) is not unit-norm")
            worst = min(worst, dot / (a * b).squareRoot())
        }
        #expect(worst >= 0.9999, "lowest cosine \(worst)")
    }
}
