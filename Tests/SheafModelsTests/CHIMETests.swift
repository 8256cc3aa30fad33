import Foundation
import SheafNN
import SheafQuantizer
import SheafCodebook
import SheafRandom
import SheafText
import Testing

@testable import SheafModels

/// A tiny CHIME configuration (no dropout unless asked).
func tinyCHIME(layers: Int = 2, dropout: Float = 0) -> CHIMEConfiguration {
    var c = CHIMEConfiguration()
    c.width = 16
    c.heads = 2
    c.layers = layers
    c.innerSize = 32
    c.maxLength = 8
    c.contentWidth = 8
    c.futureLength = 4
    c.dropout = dropout
    c.temperature = 0.5
    return c
}

/// Users with given items and labels (timestamps 10, 20, …; actions 0), items 1…`items`.
func chimeData(_ users: [(items: [Int32], labels: [Float])], items: Int) -> SequenceDataset {
    SequenceDataset(
        users: users.enumerated().map { i, u in
            UserSequence(user: UInt64(i + 1), items: u.items, timestamps: u.items.indices.map { Int64(10 * ($0 + 1)) }, labels: u.labels)
        },
        vocabulary: ItemVocabulary(ids: (1...items).map(UInt64.init)))
}

/// Random float32 content of items 1…N (row 0, padding, zeros).
func randomContent(items: Int, dimension: Int, seed: UInt64) throws -> ContentTable {
    var rng = SplitMix64(seed: seed)
    return try .rows((0..<(items * dimension)).map { _ in rng.nextFloat() * 2 - 1 }, dimension: dimension)
}

@Suite struct CHIMETests {
    @Test func buckets() {
        let c = CHIMEConfiguration()
        #expect([0, 0.4, 0.6, 4.5, 7, 99, -3, .nan].map(c.labelBucket) == [0, 0, 1, 5, 7, 7, 0, 0])
        #expect([0, 3, 15, 16, 65535].map(c.actionBucket) == [0, 3, 15, 15, 15])
        #expect([nil, 0, -5, 1, 2, 3, 4, 7, 8, 1 << 30, 1 << 40].map(c.gapBucket) == [0, 0, 0, 1, 2, 2, 3, 3, 4, 31, 31])
    }

    /// The holistic loss's positives are exactly the row's future behaviours labelled ≥ 4; its
    /// negatives the row's own futures labelled ≤ 2 plus every other row's futures (3 is neither).
    @Test func holisticTargets() {
        let data = chimeData(
            [
                (items: [1, 2, 3, 4, 5, 6], labels: [5, 5, 5, 4, 1, 3]),
                (items: [7, 8, 4, 9], labels: [5, 2, 5, 1]),
            ], items: 9)
        let batch = CHIMEBatch([(user: 0, cut: 3), (user: 1, cut: 2)], in: data, configuration: tinyCHIME())
        // Futures: row 0 → items 4 (5★… label 4), 5 (1), 6 (3); row 1 → items 4 (5), 9 (1).
        #expect(batch.futureRow == [0, 0, 0, 1, 1])
        #expect(batch.futureLabel == [4, 1, 3, 5, 1])
        let t = batch.holisticTargets(tinyCHIME())
        #expect(t.positives == [[0], [3]])
        #expect(t.negatives! == [[1, 3, 4], [4, 0, 1, 2]])
        // Row 1's behaviour on item 4 shares row 0's positive's key, so it is left out of that term.
        #expect(t.columnKeys![0] == t.columnKeys![3])
        // Windows and next items: row 0 reads items 1, 2, 3 and predicts 2, 3, 4.
        #expect(batch.lengths == [3, 2] && batch.length == 3)
        #expect(batch.positions == [0, 1, 2, 3, 4])
        #expect(batch.nextItems.map { batch.items[$0] } == [2, 3, 4, 8, 4])
    }

    /// Both losses equal the InfoNCE formulas worked out from the model's own h_t and keys.
    @Test func lossesMatchTheirDefinitions() throws {
        let c = tinyCHIME()
        let data = chimeData(
            [
                (items: [1, 2, 3, 4, 5, 6], labels: [5, 5, 5, 4, 1, 5]),
                (items: [7, 8, 4, 9, 2], labels: [5, 2, 5, 1, 4]),
            ], items: 9)
        let model = try CHIME(configuration: c, contentDimension: 6, seed: 3)
        let content = try randomContent(items: 9, dimension: 6, seed: 4)
        let batch = CHIMEBatch([(user: 0, cut: 3), (user: 1, cut: 2)], in: data, configuration: c)
        let t = Tape(recording: false)
        let (keys, g) = model.encodeItems(t, batch, content: content)
        let h = model.hidden(t, batch, itemContent: g, training: false)
        let d = c.width
        func row(_ x: Tensor, _ r: Int) -> [Double] { (0..<d).map { Double(x.values[r * d + $0]) } }
        func cosine(_ a: [Double], _ b: [Double]) -> Double {
            let dot = zip(a, b).map(*).reduce(0, +)
            return dot / (a.map { $0 * $0 }.reduce(0, +).squareRoot() * b.map { $0 * $0 }.reduce(0, +).squareRoot())
        }
        let tau = Double(c.temperature)
        // Immediate: every real position against all batch items.
        var immediate = 0.0
        for (i, f) in batch.positions.enumerated() {
            let s = (0..<batch.items.count).map { cosine(row(h, f), row(keys, $0)) / tau }
            immediate += -s[batch.nextItems[i]] + log(s.map(exp).reduce(0, +))
        }
        immediate /= Double(batch.positions.count)
        // Holistic, by the definition: user 0 (window 1,2,3; futures 4★4, 5★1, 6★5) and user 1 (window
        // 7,8; futures 4★5, 9★1, 2★4).
        let u0 = row(h, 2), u1 = row(h, batch.length + 1)
        func key(_ item: Int) -> [Double] { row(keys, batch.items.firstIndex(of: item)!) }
        func term(_ u: [Double], _ positive: Int, _ negatives: [Int]) -> Double {
            let sp = cosine(u, key(positive)) / tau
            return -sp + log(exp(sp) + negatives.map { exp(cosine(u, key($0)) / tau) }.reduce(0, +))
        }
        // User 0: positives 4 and 6; negatives its own 5, and user 1's 4, 9, 2 — but 4 is the same
        // item as the positive 4, so it is left out of that term.
        let user0 = (term(u0, 4, [5, 9, 2]) + term(u0, 6, [5, 4, 9, 2])) / 2
        // User 1: positives 4 and 2; negatives its own 9 and user 0's 4, 5, 6 (4 left out for positive 4).
        let user1 = (term(u1, 4, [9, 5, 6]) + term(u1, 2, [9, 4, 5, 6])) / 2
        let holistic = (user0 + user1) / 2
        let losses = model.losses(Tape(recording: false), batch, content: content, training: false)
        #expect(abs(Double(losses.immediate) - immediate) < 1e-4, "immediate \(losses.immediate) vs \(immediate)")
        #expect(abs(Double(losses.holistic!) - holistic) < 1e-4, "holistic \(losses.holistic!) vs \(holistic)")
        #expect(abs(Double(losses.total.scalar) - (0.5 * immediate + 0.5 * holistic)) < 1e-4)
        #expect(losses.immediateTerms == 5 && losses.holisticRows == 2)
        // Counting user 0's rating-1 behaviour as a positive would give another value.
        let wrong = (term(u0, 4, [9, 2]) + term(u0, 6, [4, 9, 2]) + term(u0, 5, [4, 9, 2])) / 3
        #expect(abs((wrong + user1) / 2 - holistic) > 1e-3)
    }

    /// h_t depends on behaviours 0…t only: changing later behaviours (items, labels, timestamps)
    /// leaves the earlier h_t as they were, and changes the later ones.
    @Test func causalMask() throws {
        let c = tinyCHIME()
        let model = try CHIME(configuration: c, contentDimension: 6, seed: 5)
        let content = try randomContent(items: 9, dimension: 6, seed: 6)
        let a = chimeData([(items: [1, 2, 3, 4, 5, 6, 7], labels: [5, 4, 3, 2, 1, 5, 4])], items: 9)
        let b = chimeData([(items: [1, 2, 3, 9, 8, 8, 7], labels: [5, 4, 3, 5, 5, 1, 1])], items: 9)
        func states(_ data: SequenceDataset) -> [Float] {
            let t = Tape(recording: false)
            let batch = CHIMEBatch([(user: 0, cut: 6)], in: data, configuration: c)
            let (_, g) = model.encodeItems(t, batch, content: content)
            return model.hidden(t, batch, itemContent: g, training: false).values
        }
        let (x, y) = (states(a), states(b))
        let d = c.width
        #expect(Array(x[0..<(3 * d)]) == Array(y[0..<(3 * d)]))
        #expect(Array(x[(3 * d)..<(4 * d)]) != Array(y[(3 * d)..<(4 * d)]))
    }

    /// MiniLM-style initialisation: a 1-layer IRM loaded from a 1-layer BERT gives, at position t,
    /// the encoder's own output for the first t + 1 tokens (under the causal mask position t sees
    /// exactly those); a 2-layer one matches the 2-layer encoder at position 0.
    @Test func pretrainedInitialisation() throws {
        for layers in [1, 2] {
            let encoder = try tinyBert(layers: layers)
            var c = tinyCHIME(layers: layers)
            c.initialization = .minilm
            let model = try CHIME(configuration: c, contentDimension: 6, seed: 8)
            try model.loadPretrained(from: encoder)
            let ids: [Int32] = [2, 5, 7, 4, 9, 3]
            let words = encoder.namedParameters["embeddings.word_embeddings.weight"]!
            let t = Tape(recording: false)
            let h = model.interests(
                t, t.embedding(words, ids: ids.map(Int.init)), rows: 1, length: ids.count, keyMask: [Bool](repeating: true, count: ids.count),
                dropout: 0)
            let d = 16
            for p in 0..<(layers == 1 ? ids.count : 1) {
                let (x, _) = encoder.hiddenStates([Array(ids[0...p])])
                let expected = Array(x.values[(p * d)..<((p + 1) * d)])
                let got = Array(h.values[(p * d)..<((p + 1) * d)])
                let worst = zip(expected, got).map { abs($0 - $1) }.max()!
                #expect(worst < 1e-4, "\(layers) layer(s), position \(p): \(worst)")
            }
            // A model the encoder cannot fill is refused, naming what differs.
            var wide = tinyCHIME(layers: layers)
            wide.width = 32
            wide.innerSize = 32
            #expect(throws: ModelError.self) { try CHIME(configuration: wide, contentDimension: 6, seed: 1).loadPretrained(from: encoder) }
            var deep = tinyCHIME(layers: layers + 1)
            deep.initialization = .minilm
            #expect(throws: ModelError.invalidConfiguration("the encoder has \(layers) layers; this model asks for \(layers + 1)")) {
                try CHIME(configuration: deep, contentDimension: 6, seed: 1).loadPretrained(from: encoder)
            }
        }
    }

    /// A histogram counts each level's codes, survives the record format, and a damaged payload is
    /// refused with the user named.
    @Test func codeHistogramRoundTrip() throws {
        // 4 behaviours × 2 levels; codes up to 70,000 do not fit, 300 and 65,535 do.
        let codes: [UInt32] = [3, 300, 3, 65_535, 0, 300, 3, 7]
        let h = CodeHistogram(codes: codes, levels: 2, modelVersion: 11, codebookVersion: 22)
        #expect(h.behaviors == 4)
        #expect(h.entries == [
            .init(level: 0, code: 0, count: 1), .init(level: 0, code: 3, count: 3),
            .init(level: 1, code: 7, count: 1), .init(level: 1, code: 300, count: 2), .init(level: 1, code: 65_535, count: 1),
        ])
        #expect(h.level(1).codes == [7, 300, 65_535] && h.level(1).counts == [1, 2, 1])
        let record = h.profile
        #expect(record.modelVersion == 11)
        #expect(try CodeHistogram(record, user: 5) == h)
        // u8 format, u32 codebook, varint 4, u8 2 levels; level 0: 2 entries (0, 1), (3, 3); level 1: 3
        // entries (7, 1), (293, 2), (65,235, 1) — gaps as LEB128.
        #expect(record.bytes == [1, 22, 0, 0, 0, 4, 2, 2, 0, 1, 3, 3, 3, 7, 1, 0xA5, 0x02, 2, 0xD3, 0xFD, 0x03, 1])
        var truncated = record
        truncated.bytes.removeLast()
        #expect(throws: ModelError.corruptProfile(user: 5, reason: "truncated at byte 21")) { try CodeHistogram(truncated, user: 5) }
        var trailing = record
        trailing.bytes.append(0)
        #expect(throws: ModelError.corruptProfile(user: 5, reason: "1 bytes after the last entry")) { try CodeHistogram(trailing, user: 5) }
        var unsorted = record
        unsorted.bytes[15] = 0  // level 1's second gap becomes 0: a repeated code
        unsorted.bytes.remove(at: 16)
        #expect(throws: ModelError.corruptProfile(user: 5, reason: "level 1: codes not ascending")) { try CodeHistogram(unsorted, user: 5) }
        var format = record
        format.bytes[0] = 9
        #expect(throws: ModelError.self) { try CodeHistogram(format, user: 5) }
    }

    /// A profile's decoded mean is the mean of its vectors' reconstructions by the codebook's own
    /// decoder (with each level's magnitude set to the middle of its range under the cosine metric),
    /// normalised; and CHIME's item keys are the unit vectors the losses score against.
    @Test func decodedMeanOfAHistogram() throws {
        var rng = SplitMix64(seed: 31)
        let (d, n) = (8, 300)
        let vectors = (0..<(n * d)).map { _ in rng.nextFloat() * 2 - 1 }
        for metric in [Metric.euclidean, .cosine] {
            var q = QuantizerConfiguration()
            q.levels = 2
            q.codesPerLevel = 8
            q.iterations = 5
            q.metric = metric
            let icm = try InterestCodebook.train(vectors, count: n, dimension: d, configuration: q, modelVersion: 1)
            let cb = icm.codebook
            let user = Array(vectors[(40 * d)..<(90 * d)])  // 50 vectors
            let (codes, _) = try ResidualEncoder(codebook: cb, threads: 1).encode(user, count: 50)
            let h = CodeHistogram(codes: codes, levels: 2, modelVersion: 1, codebookVersion: icm.version)
            let m = (0..<2).map { l in metric == .cosine ? (cb.magnitudeRanges[l].lower + cb.magnitudeRanges[l].upper) / 2 : Float(1) }
            let magnitudes = (0..<50).flatMap { _ in m }
            var decoded = [Float](repeating: 0, count: 50 * d)
            codes.withUnsafeBufferPointer { c in
                magnitudes.withUnsafeBufferPointer { mg in
                    decoded.withUnsafeMutableBufferPointer { cb.decode(codes: c.baseAddress!, magnitudes: mg.baseAddress!, count: 50, into: $0.baseAddress!) }
                }
            }
            var mean = [Float](repeating: 0, count: d)
            for r in 0..<50 { for k in 0..<d { mean[k] += decoded[r * d + k] } }
            let norm = mean.reduce(0) { $0 + $1 * $1 }.squareRoot()
            let got = icm.decodedMean(of: h)
            for k in 0..<d { #expect(abs(got[k] - mean[k] / norm) < 1e-5, "\(metric) \(k)") }
        }
        let model = try CHIME(configuration: tinyCHIME(), contentDimension: 6, seed: 3)
        let keys = model.itemKeys(content: try randomContent(items: 5, dimension: 6, seed: 4))
        #expect(keys.shape == [6, 16])  // row 0 (padding, zero content) has a zero key
        for r in 1..<6 { #expect(abs(keys.values[(r * 16)..<((r + 1) * 16)].reduce(0) { $0 + $1 * $1 } - 1) < 1e-4) }
    }

    /// Representations of a cut history are the first rows of the whole history's (the causal mask),
    /// and a history longer than maxLength is read in windows ending at its last behaviour.
    @Test func representationsOfCutHistories() throws {
        let c = tinyCHIME()
        let model = try CHIME(configuration: c, contentDimension: 6, seed: 9)
        let content = try randomContent(items: 9, dimension: 6, seed: 10)
        let data = chimeData(
            [
                (items: [1, 2, 3, 4, 5, 6, 7], labels: [5, 4, 3, 2, 1, 5, 4]),
                (items: [9, 8, 7, 6, 5, 4, 3, 2, 1, 2, 3, 4, 5, 6, 7, 8, 9, 1, 2, 3], labels: [Float](repeating: 4, count: 20)),
            ], items: 9)
        let whole = model.representations(of: [0, 1], in: data, content: content, rowsPerBatch: 1)
        let cut = data.cut(.leadingFraction(0.5))
        #expect(cut.users.map(\.count) == [3, 10])
        let part = model.representations(of: [0], in: cut, content: content)
        let d = c.width
        #expect(part[0].count == 3 * d && whole[0].count == 7 * d)
        for i in 0..<(3 * d) { #expect(abs(part[0][i] - whole[0][i]) < 1e-5) }
        // User 1's 20 behaviours are read as windows 12…19, 4…11 and 0…3: changing behaviours 0…10
        // leaves rows 12…19 as they were (behaviour 11 still gives behaviour 12 its time gap) and
        // changes rows 4…11.
        var changed = data.users[1]
        for i in 0...10 { changed.items[i] = Int32(1 + (i * 5) % 9) }
        let other = SequenceDataset(users: [data.users[0], changed], vocabulary: data.vocabulary)
        // Read as `whole` was, one window per batch: with windows batched, the matrices' shapes
        // change and an sgemm kernel (Haswell's) may round the same row differently.
        let moved = model.representations(of: [1], in: other, content: content, rowsPerBatch: 1)[0]
        for i in (12 * d)..<(20 * d) { #expect(moved[i] == whole[1][i]) }
        #expect(Array(moved[(4 * d)..<(12 * d)]) != Array(whole[1][(4 * d)..<(12 * d)]))
        // Unit length, every row.
        for r in 0..<20 {
            let norm = (0..<d).reduce(Float(0)) { $0 + whole[1][r * d + $1] * whole[1][r * d + $1] }.squareRoot()
            #expect(abs(norm - 1) < 1e-4)
        }
        // Batching does not change them.
        let batched = model.representations(of: [0, 1], in: data, content: content, rowsPerBatch: 32)
        for u in 0..<2 { for i in whole[u].indices { #expect(abs(batched[u][i] - whole[u][i]) < 1e-5) } }
    }
}

/// A random tiny BERT (width 16, 2 heads, feed-forward 32, 12 positions, 10 tokens) of `layers`
/// layers, written to a temporary directory and loaded as an encoder.
func tinyBert(layers: Int) throws -> BertEncoder {
    let directory = NSTemporaryDirectory() + "sheaf-models-bert-\(UUID().uuidString)"
    defer { try? FileManager.default.removeItem(atPath: directory) }
    let tokens = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "a", "b", "c", "d", "e", "f"]
    let bert = BertConfiguration(hiddenSize: 16, layers: layers, heads: 2, intermediateSize: 32, maxPositions: 12, vocabularySize: tokens.count)
    try BertEncoder.writeRandomModel(to: directory, configuration: bert, tokens: tokens, seed: 7)
    return try BertEncoder(modelDirectory: directory, maxLength: 12)
}
