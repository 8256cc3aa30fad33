import SheafNN
import SheafRandom

/// SASRec (Kang & McAuley 2018) as RecBole 1.2.1 configures it by default. Every field is stored in
/// checkpoints.
public struct SASRecConfiguration: Codable, Sendable, Equatable {
    /// Behaviours per input sequence (the most recent ones).
    public var maxLength = 50
    public var hiddenSize = 64
    public var heads = 2
    public var layers = 2
    /// Width of the feed-forward layer (GELU).
    public var innerSize = 256
    /// Dropout on the embeddings and on the attention and feed-forward outputs.
    public var hiddenDropout: Float = 0.5
    /// Dropout on the attention weights.
    public var attentionDropout: Float = 0.5
    public var layerNormEpsilon: Float = 1e-12
    /// Standard deviation of the normal initialisation of weights and embeddings (biases 0, norms 1).
    public var initializerRange: Float = 0.02
    /// Item inputs and outputs from frozen content embeddings through a learned projection (the
    /// "MoRec" style), instead of learned item-ID embeddings.
    public var content = false

    public init() {}

    /// - Throws: `ModelError.invalidConfiguration` naming the field.
    public func validate() throws(ModelError) {
        func fail(_ why: String) -> ModelError { .invalidConfiguration(why) }
        guard maxLength >= 1 else { throw fail("maxLength must be ≥ 1") }
        guard hiddenSize >= 1, heads >= 1, hiddenSize % heads == 0 else {
            throw fail("hiddenSize \(hiddenSize) must be a positive multiple of heads \(heads)")
        }
        guard layers >= 1, innerSize >= 1 else { throw fail("layers and innerSize must be ≥ 1") }
        guard (0..<1).contains(hiddenDropout), (0..<1).contains(attentionDropout) else {
            throw fail("dropout probabilities must be in [0, 1)")
        }
        guard layerNormEpsilon > 0, initializerRange > 0 else { throw fail("layerNormEpsilon and initializerRange must be > 0") }
    }
}

/// A batch of examples as SASRec reads them: sequences left-aligned and padded with 0 at the end (as
/// RecBole does), with their lengths and targets.
public struct SequenceBatch: Sendable {
    /// count × maxLength dense item indices, 0 = padding.
    public var items: [Int]
    public var lengths: [Int]
    public var targets: [Int]
    public let maxLength: Int
    public var count: Int { lengths.count }

    public init(_ examples: some Collection<SequenceExample>, in data: SequenceDataset, maxLength: Int) {
        self.maxLength = maxLength
        items = [Int](repeating: 0, count: examples.count * maxLength)
        lengths = []
        targets = []
        lengths.reserveCapacity(examples.count)
        targets.reserveCapacity(examples.count)
        for (r, e) in examples.enumerated() {
            let seq = data.users[e.user].items
            let start = max(e.inputStart, e.inputEnd - maxLength)
            for (p, i) in (start..<e.inputEnd).enumerated() { items[r * maxLength + p] = Int(seq[i]) }
            lengths.append(e.inputEnd - start)
            targets.append(Int(e.target))
        }
    }
}

/// The SASRec network: item and position embeddings, layer norm and dropout, `layers` post-LN
/// transformer layers (causal self-attention with padding keys masked, feed-forward with GELU), the
/// hidden state at each sequence's last behaviour, and logits against every item's (tied) embedding.
public final class SASRec {
    public let configuration: SASRecConfiguration
    /// Items N; the item tables have N + 1 rows, row 0 being padding.
    public let itemCount: Int
    /// The item-ID table [N + 1, H] (ID variant).
    let itemEmbedding: Tensor?
    /// The frozen content of items 0…N (content variant; row 0 zeros), its projection [D, H] and bias [H].
    public let content: ContentTable?
    let projection: Tensor?
    let projectionBias: Tensor?
    let positions: Tensor
    let inputNorm: (gamma: Tensor, beta: Tensor)
    /// The post-LN transformer layers (weights [in, out]).
    let blocks: [TransformerBlock]

    /// A new model, initialised as RecBole does: weights and embeddings normal(0, `initializerRange`),
    /// biases 0, layer norms 1 and 0.
    ///
    /// - Parameters:
    ///   - content: for the content variant, the content of items 0…N (float32 rows or the store's codes).
    public init(configuration: SASRecConfiguration, itemCount: Int, content: ContentTable? = nil, seed: UInt64)
        throws(ModelError)
    {
        try configuration.validate()
        guard itemCount >= 1 else { throw .invalidConfiguration("a model needs at least one item") }
        let c = configuration
        if c.content {
            guard let content, content.rowCount == itemCount + 1 else {
                throw .invalidConfiguration("the content variant needs the content of \(itemCount) items")
            }
        }
        self.configuration = c
        self.itemCount = itemCount
        let initializer = ParameterInitializer(seed: seed, standardDeviation: Double(c.initializerRange))
        let normal = initializer.normal as ([Int]) -> Tensor, constant = ParameterInitializer.constant
        let h = c.hiddenSize
        if c.content, let content {
            itemEmbedding = nil
            self.content = content
            projection = normal([content.dimension, h])
            projectionBias = constant(h, 0)
        } else {
            itemEmbedding = normal([itemCount + 1, h])
            self.content = nil
            projection = nil
            projectionBias = nil
        }
        positions = normal([c.maxLength, h])
        inputNorm = (constant(h, 1), constant(h, 0))
        blocks = (0..<c.layers).map { _ in TransformerBlock.initialised(width: h, innerSize: c.innerSize, normal: normal) }
    }

    /// Every trainable tensor with its checkpoint name, in a fixed order.
    public var namedParameters: [(name: String, tensor: Tensor)] {
        var out: [(String, Tensor)] = []
        if let itemEmbedding { out.append(("items", itemEmbedding)) }
        if let projection, let projectionBias {
            out += [("content_projection.weight", projection), ("content_projection.bias", projectionBias)]
        }
        out += [("positions", positions), ("input_norm.gamma", inputNorm.gamma), ("input_norm.beta", inputNorm.beta)]
        for (i, b) in blocks.enumerated() { out += b.namedParameters(prefix: "layers.\(i).") }
        return out
    }

    /// The item table the model reads and scores against: [N + 1, H].
    func itemTable(_ t: Tape) -> Tensor {
        if let itemEmbedding { return itemEmbedding }
        return content!.linear(t, projection!, bias: projectionBias!)
    }

    /// The hidden state at each sequence's last behaviour: [B, H].
    func lastHidden(_ t: Tape, _ batch: SequenceBatch, table: Tensor, training: Bool) -> Tensor {
        let c = configuration
        let (b, l, h) = (batch.count, batch.maxLength, c.hiddenSize)
        precondition(l == c.maxLength, "a batch of length \(l) for a model of \(c.maxLength)")
        let positionIDs = (0..<b).flatMap { _ in Array(0..<l) }
        var keyMask = [Bool](repeating: false, count: b * l)
        for r in 0..<b { for p in 0..<batch.lengths[r] { keyMask[r * l + p] = true } }
        let hiddenDropout = training ? c.hiddenDropout : 0
        let attentionDropout = training ? c.attentionDropout : 0
        var x = t.add(t.embedding(table, ids: batch.items), t.embedding(positions, ids: positionIDs))
        x = t.dropout(t.layerNorm(x, gamma: inputNorm.gamma, beta: inputNorm.beta, epsilon: c.layerNormEpsilon), probability: hiddenDropout)
        x = t.reshape(x, [b, l, h])
        for block in blocks {
            x = block(
                t, x, heads: c.heads, keyMask: keyMask, causal: true, hiddenDropout: hiddenDropout, attentionDropout: attentionDropout,
                epsilon: c.layerNormEpsilon)
        }
        let rows = t.reshape(x, [b * l, h])
        return t.embedding(rows, ids: (0..<b).map { $0 * l + max(0, batch.lengths[$0] - 1) })
    }

    /// Mean softmax cross-entropy of each sequence's next item over all N + 1 rows of the item table
    /// (padding included, as RecBole's CE loss does; it is never a target).
    public func loss(_ t: Tape, _ batch: SequenceBatch) -> Tensor {
        let table = itemTable(t)
        let hidden = lastHidden(t, batch, table: table, training: true)
        return t.crossEntropy(t.matmul(hidden, table, transposeB: true), targets: batch.targets)
    }

    /// Scores of every item for each sequence, without dropout: count × (N + 1), column 0 = padding.
    public func scores(_ batch: SequenceBatch, threads: Int = Tape.defaultThreads) -> [Float] {
        let t = Tape(recording: false, threads: threads)
        let table = itemTable(t)
        return t.matmul(lastHidden(t, batch, table: table, training: false), table, transposeB: true).values
    }
}

extension SASRec {
    /// Full-ranking metrics of `examples` (every item ranked; no dropout), `batchSize` examples scored at once.
    public func targetRanks(
        _ examples: [SequenceExample], in data: SequenceDataset, batchSize: Int = 1024, threads: Int = Tape.defaultThreads
    ) -> [Int] {
        RankingMetrics.ranks(examples, items: itemCount + 1, batchSize: batchSize) { part in
            let batch = SequenceBatch(part, in: data, maxLength: configuration.maxLength)
            return (scores(batch, threads: threads), batch.targets)
        }
    }
}
