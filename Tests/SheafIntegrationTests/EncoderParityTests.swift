import Foundation
import SheafFormats
import SheafText
import Testing
import _SheafBench

/// Sheaf's BERT against the numpy reference (tools/embed_items.py: numpy + tokenizers + safetensors,
/// no torch) run now on the same texts (runs when the demo has fetched the model).
@Suite(.enabled(if: DemoData.modelPresent, DemoData.modelMissing))
struct EncoderParityTests {
    /// Texts for the comparison: edge cases and MovieLens item texts (`limit` of them; 0 = all).
    static func texts(limit: Int) throws -> [String] {
        var texts = TokenizerParityTests.edgeCases
        if FileManager.default.fileExists(atPath: DemoData.itemTexts) {
            let all = try DemoData.movieLensTexts()
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
        _ = try PythonEnvironment.run(script, [repositoryRoot, input, output])
        return try NPYArray(contentsOf: output).floats(path: output)
    }

    /// The lowest cosine between the rows of `mine` and `theirs` (rows × dimension); checks that
    /// Sheaf's rows are unit-norm.
    static func lowestCosine(_ mine: [Float], _ theirs: [Float], rows: Int, dimension d: Int) -> Double {
        var worst = 1.0
        for r in 0..<rows {
            let norm = mine[(r * d)..<((r + 1) * d)].reduce(0) { $0 + $1 * $1 }.squareRoot()
            #expect(abs(norm - 1) <= 1e-4, "row \(r) is not unit-norm")
            let c = mine.withUnsafeBufferPointer { m in
                theirs.withUnsafeBufferPointer { t in cosine(m.baseAddress! + r * d, t.baseAddress! + r * d, count: d) }
            }
            worst = min(worst, c)
        }
        return worst
    }

    /// Against the reference run now, on the tokenizer edge cases and the first MovieLens texts.
    @Test(.enabled(if: PythonEnvironment.canImport("numpy", "tokenizers", "safetensors"), PythonEnvironment.missing("numpy", "tokenizers", "safetensors")))
    func cosineAgainstTheNumpyReference() throws {
        let texts = try Self.texts(limit: 40)
        let encoder = try BertEncoder(modelDirectory: DemoData.model)
        #expect(encoder.dimension == 384)
        var seen = 0
        let mine = encoder.embed(texts, batchSize: 16) { seen = $0 }
        #expect(seen == texts.count)
        let theirs = try Self.reference(texts)
        try #require(theirs.count == mine.count)
        let worst = Self.lowestCosine(mine, theirs, rows: texts.count, dimension: 384)
        #expect(worst >= 0.9999, "lowest cosine \(worst)")
    }
}
