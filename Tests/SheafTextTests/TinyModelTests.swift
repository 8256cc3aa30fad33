import Foundation
import SheafFormats
import SheafNN
import SheafText
import Testing

/// A small random BERT written to a temporary directory.
final class TinyModel {
    static let tokens = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "the", "cat", "dog", "sat", "on", "mat", "##s", ".", "a", "big"]
    static let configuration = BertConfiguration(hiddenSize: 8, layers: 2, heads: 2, intermediateSize: 16, maxPositions: 16, vocabularySize: tokens.count)
    let directory = NSTemporaryDirectory() + "sheaf-tiny-bert-\(UUID().uuidString)"
    var weights: String { directory + "/model.safetensors" }

    init() throws { try BertEncoder.writeRandomModel(to: directory, configuration: Self.configuration, tokens: Self.tokens) }
    deinit { try? FileManager.default.removeItem(atPath: directory) }

    /// Rewrites model.safetensors with `edit` applied to the tensor list.
    func rewrite(_ edit: (inout [(name: String, shape: [Int], values: [Float])]) -> Void) throws {
        let file = try SafeTensors.read(path: weights)
        var tensors = try file.entries.map { e in (name: e.name, shape: e.shape, values: try file.floats(e.name).values) }
        edit(&tensors)
        try SafeTensors.write(tensors, to: weights)
    }
}

@Suite struct TinyModelTests {
    @Test func embeddingsAreUnitNormAndIndependentOfTheBatch() throws {
        let m = try TinyModel()
        let encoder = try BertEncoder(modelDirectory: m.directory, maxLength: 16)
        let texts = ["the cat sat", "a big dog sat on the mats .", "", "cats", "the the the the the the the the the the the the the the the the the the"]
        let all = encoder.embed(texts, batchSize: 8)
        #expect(all.count == texts.count * 8)
        for r in 0..<texts.count {
            let norm = (0..<8).reduce(Float(0)) { $0 + all[r * 8 + $1] * all[r * 8 + $1] }.squareRoot()
            #expect(abs(norm - 1) <= 1e-5, "row \(r)")
            // Alone (no padding) the same text gives the same row: padding is masked out.
            let alone = encoder.embed([texts[r]], batchSize: 1)
            for j in 0..<8 { #expect(abs(alone[j] - all[r * 8 + j]) <= 1e-5, "text \(r) component \(j)") }
        }
        // Different texts differ; batch size does not matter.
        #expect(Array(all[0..<8]) != Array(all[8..<16]))
        let small = encoder.embed(texts, batchSize: 2)
        for i in 0..<all.count { #expect(abs(small[i] - all[i]) <= 1e-5) }
        // Threads change nothing, bit for bit; progress reaches the total once per batch.
        var reports: [Int] = []
        let threaded = encoder.embed(texts, batchSize: 2, threads: 2) { reports.append($0) }
        let single = encoder.embed(texts, batchSize: 2, threads: 1)
        #expect(threaded == single)
        // One batch: its operations run on the threads instead, with the same bits.
        #expect(encoder.embed(texts, batchSize: 64, threads: 3) == encoder.embed(texts, batchSize: 64, threads: 1))
        #expect(reports.count == 3 && reports.last == texts.count && reports == reports.sorted())
    }

    @Test func missingTensorWrongShapeWrongDTypeTruncated() throws {
        let m = try TinyModel()
        let key = "encoder.layer.1.attention.self.key.weight"
        try m.rewrite { $0.removeAll { $0.name == key } }
        #expect(throws: FormatError.missingTensor(path: m.weights, name: key)) { try BertEncoder(modelDirectory: m.directory, maxLength: 16) }

        let m2 = try TinyModel()
        try m2.rewrite { t in
            let i = t.firstIndex { $0.name == "encoder.layer.0.intermediate.dense.weight" }!
            t[i] = (t[i].name, [8, 16], t[i].values)
        }
        #expect(throws: FormatError.tensorShapeMismatch(path: m2.weights, name: "encoder.layer.0.intermediate.dense.weight", expected: [16, 8], actual: [8, 16])) {
            try BertEncoder(modelDirectory: m2.directory, maxLength: 16)
        }

        let m3 = try TinyModel()
        let bytes = [UInt8](FileManager.default.contents(atPath: m3.weights)!)
        #expect(FileManager.default.createFile(atPath: m3.weights, contents: Data(bytes.prefix(bytes.count - 100))))
        if case .truncated? = captured({ try BertEncoder(modelDirectory: m3.directory, maxLength: 16) }) {} else {
            Issue.record("a cut weights file should be reported as truncated")
        }

        // A float tensor stored as I32 (same size, so the file is otherwise valid): edit the header bytes.
        let m4 = try TinyModel()
        var raw = [UInt8](FileManager.default.contents(atPath: m4.weights)!)
        let headerLength = raw.withUnsafeBytes { Int(UInt64(littleEndian: $0.loadUnaligned(as: UInt64.self))) }
        var header = String(decoding: raw[8..<(8 + headerLength)], as: UTF8.self)
        let target = #""embeddings.LayerNorm.bias":{"data_offsets":"#
        let at = try #require(header.range(of: target))
        let dtype = try #require(header.range(of: #""dtype":"F32""#, range: at.upperBound..<header.endIndex))
        header.replaceSubrange(dtype, with: #""dtype":"I32""#)
        raw.replaceSubrange(8..<(8 + headerLength), with: Array(header.utf8))
        #expect(FileManager.default.createFile(atPath: m4.weights, contents: Data(raw)))
        #expect(throws: FormatError.unsupportedDType(path: m4.weights, dtype: "I32 (tensor embeddings.LayerNorm.bias)", expected: "F32, F16, BF16 or F64")) {
            try BertEncoder(modelDirectory: m4.directory, maxLength: 16)
        }
    }

    @Test func badConfigAndVocabulary() throws {
        let m = try TinyModel()
        #expect(throws: TextModelError.malformed(path: m.directory + "/config.json", reason: "maxLength 17 outside 2...16")) {
            try BertEncoder(modelDirectory: m.directory, maxLength: 17)
        }
        try (TinyModel.tokens.dropLast().joined(separator: "\n") + "\n").write(toFile: m.directory + "/vocab.txt", atomically: true, encoding: .utf8)
        #expect(throws: TextModelError.malformed(path: m.directory + "/vocab.txt", reason: "13 tokens, config.json says vocab_size 14")) {
            try BertEncoder(modelDirectory: m.directory, maxLength: 16)
        }
        try TinyModel.configuration.json.replacingOccurrences(of: "\"gelu\"", with: "\"relu\"")
            .write(toFile: m.directory + "/config.json", atomically: true, encoding: .utf8)
        #expect(throws: TextModelError.malformed(path: m.directory + "/config.json", reason: "hidden_act relu, expected gelu")) {
            try BertEncoder(modelDirectory: m.directory, maxLength: 16)
        }
        #expect(throws: TextModelError.unreadable(path: "/nonexistent/config.json", reason: "no such file")) {
            try BertEncoder(modelDirectory: "/nonexistent")
        }
    }
}

/// The FormatError `body` throws, if any.
func captured<T>(_ body: () throws -> T) -> FormatError? {
    do {
        _ = try body()
        return nil
    } catch let e as FormatError {
        return e
    } catch {
        return nil
    }
}
