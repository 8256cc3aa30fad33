import Foundation
import SheafFormats
import SheafNN
import SheafText
import Testing

/// Sheaf's BERT against the embeddings the numpy reference (tools/embed_items.py) saved (runs when the
/// demo has fetched the model). The comparison with the reference run now is in SheafIntegrationTests.
@Suite(.enabled(if: Fixtures.modelPresent)) struct EncoderParityTests {
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
