import Foundation
import SheafCodebook
import SheafModels
import SheafNN
import SheafRandom
import SheafStore
import Testing

/// Models reading the store's codes through the code-space input layer (`ContentTable.codes`).
@Suite struct ContentTableTests {
    /// The cyclic store of the SASRec tests with its 8 items (ids 10…17) coded by a random cosine
    /// codebook (L = 2, K = 16, 8-bit magnitudes, D = 4).
    static func codedCyclicStore(_ dir: TempDirectory) throws -> (Store, Codebook) {
        let store = try cyclicStore(dir)
        var rng = SplitMix64(seed: 12)
        let cb = try Codebook(
            id: 1, dimension: 4, levels: 2, codesPerLevel: 16, metric: .cosine, magnitudeEncoding: .uint8,
            magnitudeRanges: [MagnitudeRange(lower: 0, upper: 2), MagnitudeRange(lower: 0, upper: 1)],
            centroids: (0..<(2 * 16 * 4)).map { _ in rng.float(in: -1...1) })
        let codes = (0..<16).map { UInt32($0) }  // item i: codes (2i, 2i + 1) mod 16
        let mags: [Float] = (0..<16).map { $0 % 2 == 0 ? 1.2 : 0.4 }
        try store.write { txn in
            try txn.putCodebook(cb)
            try txn.putItems(ids: (10..<18).map(UInt64.init), codes: codes, magnitudes: mags)
        }
        return (store, cb)
    }

    /// The content SASRec on codes is the same function as on the decoded rows: the same loss and
    /// parameter gradients (within float32 rounding) from the same initial parameters.
    @Test func codesAndDecodedRowsGiveTheSameLossAndGradients() throws {
        let dir = TempDirectory()
        let (store, _) = try Self.codedCyclicStore(dir)
        let data = try SequenceDataset.load(from: store)
        let codes = try ContentTable.codes(from: store, ids: data.vocabulary.ids)
        #expect(codes.isCodes && codes.rowCount == 9 && codes.dimension == 4)
        let decoded = try store.read { try $0.decodeItems(data.vocabulary.ids) }
        let rows = try ContentTable.rows(decoded, dimension: 4)
        #expect(!rows.isCodes)
        // The padding row is zero, every other row the decoded item.
        let table = codes.decodedRows().values
        #expect(table[0..<4].allSatisfy { $0 == 0 })
        for (a, b) in zip(table[4...], decoded) { #expect(abs(a - b) <= 1e-6) }

        var c = tinyModelConfiguration()
        c.content = true
        c.hiddenDropout = 0
        c.attentionDropout = 0
        let split = LeaveOneOutSplit(data, maxLength: 6)
        let batch = SequenceBatch(Array(split.training.prefix(16)), in: data, maxLength: 6)
        func lossAndGradients(_ content: ContentTable) throws -> (Float, [[Float]]) {
            let model = try SASRec(configuration: c, itemCount: 8, content: content, seed: 3)
            let t = Tape()
            let loss = model.loss(t, batch)
            t.backward(loss)
            return (loss.scalar, model.namedParameters.map { $0.tensor.grad ?? [] })
        }
        let (a, ga) = try lossAndGradients(codes)
        let (b, gb) = try lossAndGradients(rows)
        #expect(abs(a - b) <= 1e-5 * abs(b))
        for (x, y) in zip(ga, gb) {
            let scale = y.map(abs).max() ?? 0
            #expect(zip(x, y).allSatisfy { abs($0 - $1) <= 1e-4 * scale + 1e-7 })
        }
    }

    /// CHIME's GLU (and so its losses, keys and representations) on codes equals CHIME on the decoded
    /// rows, and so does the click-through ranker's item projection.
    @Test func chimeAndTheRankerOnCodesEqualDecodedRows() throws {
        let dir = TempDirectory()
        let (store, _) = try Self.codedCyclicStore(dir)
        let data = try SequenceDataset.load(from: store)
        let codes = try ContentTable.codes(from: store, ids: data.vocabulary.ids)
        let rows = try ContentTable.rows(try store.read { try $0.decodeItems(data.vocabulary.ids) }, dimension: 4)
        let model = try CHIME(configuration: tinyCHIME(), contentDimension: 4, seed: 3)
        func close(_ a: [Float], _ b: [Float]) -> Bool {
            let scale = b.map(abs).max() ?? 0
            return a.count == b.count && zip(a, b).allSatisfy { abs($0 - $1) <= 1e-5 * scale + 1e-7 }
        }
        #expect(close(model.itemKeys(content: codes).values, model.itemKeys(content: rows).values))
        let users = Array(data.users.indices.prefix(3))
        let a = model.representations(of: users, in: data, content: codes), b = model.representations(of: users, in: data, content: rows)
        for (x, y) in zip(a, b) { #expect(close(x, y)) }
        let batch = CHIMEBatch([(user: 0, cut: 5), (user: 1, cut: 4)], in: data, configuration: tinyCHIME())
        let la = model.losses(Tape(recording: false), batch, content: codes, training: false)
        let lb = model.losses(Tape(recording: false), batch, content: rows, training: false)
        #expect(abs(la.total.scalar - lb.total.scalar) <= 1e-5 * abs(lb.total.scalar))
        // The ranker's item projection of a few rows (repeats included).
        let t = Tape(recording: false)
        let w = Tensor(shape: [4, 3], values: (0..<12).map { Float($0) / 10 - 0.5 }), bias = Tensor(shape: [3], values: [0.1, -0.2, 0.3])
        #expect(close(codes.linear(t, w, bias: bias, rows: [3, 0, 3, 8]).values, rows.linear(t, w, bias: bias, rows: [3, 0, 3, 8]).values))
        // Content of another codebook than the model's is refused.
        #expect(throws: StoreError.codebookMismatch(item: data.vocabulary.ids[0], expected: 9, found: 1)) {
            try ContentTable.codes(from: store, ids: data.vocabulary.ids, codebook: 9)
        }
    }

    /// A model trained on codes saves them (not D-wide rows) and loads back to the same scores.
    @Test func checkpointsKeepTheCodes() throws {
        let dir = TempDirectory(), out = TempDirectory("model")
        let (store, _) = try Self.codedCyclicStore(dir)
        let data = try SequenceDataset.load(from: store)
        var c = tinyModelConfiguration()
        c.content = true
        let model = try SASRec(configuration: c, itemCount: 8, content: try ContentTable.codes(from: store, ids: data.vocabulary.ids), seed: 3)
        let trainer = try SASRecTrainer(
            model: model, data: data, split: LeaveOneOutSplit(data, maxLength: 6), configuration: tinyTrainingConfiguration(epochs: 2))
        let checkpoints = try CheckpointStore(directory: out.path)
        _ = try trainer.run(checkpoints: checkpoints)
        let file = try SafeTensorsProbe(path: checkpoints.modelPath)
        #expect(file.names.isSuperset(of: ["content_codes", "content_magnitudes", "content_centroids"]))
        #expect(!file.names.contains("content_table"))
        let loaded = try checkpoints.load(SASRec.self, for: data)
        #expect(loaded.content?.isCodes == true)
        #expect(loaded.content?.decodedRows().values == model.content?.decodedRows().values)
        let users = Array(data.users.indices)
        #expect(loaded.scoresAfterHistory(of: users, in: data, threads: 1) == model.scoresAfterHistory(of: users, in: data, threads: 1))
    }

    /// Items without a code, and items of two codebooks, are refused with the store's errors.
    @Test func missingAndMixedCodesAreRefused() throws {
        let dir = TempDirectory()
        let (store, _) = try Self.codedCyclicStore(dir)
        #expect(throws: StoreError.missingItems([99])) { try ContentTable.codes(from: store, ids: [10, 99]) }
        var rng = SplitMix64(seed: 13)
        let other = try Codebook(
            id: 2, dimension: 4, levels: 1, codesPerLevel: 4, metric: .euclidean, magnitudeEncoding: .none,
            centroids: (0..<16).map { _ in rng.float(in: -1...1) })
        try store.write { txn in
            try txn.putCodebook(other)
            try txn.putItems(ids: [12], codes: [3], magnitudes: [])
        }
        #expect(throws: StoreError.codebookMismatch(item: 12, expected: 1, found: 2)) {
            try ContentTable.codes(from: store, ids: [10, 11, 12])
        }
    }
}

/// The tensor names of a safetensors file.
struct SafeTensorsProbe {
    let names: Set<String>
    init(path: String) throws {
        let data = try Data(contentsOf: URL(fileURLWithPath: path))
        let length = data.prefix(8).enumerated().reduce(0) { $0 | Int($1.element) << (8 * $1.offset) }
        let header = try JSONSerialization.jsonObject(with: data[8..<(8 + length)]) as? [String: Any] ?? [:]
        names = Set(header.keys.filter { $0 != "__metadata__" })
    }
}
