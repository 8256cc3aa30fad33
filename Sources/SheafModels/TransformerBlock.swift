import SheafNN
import SheafRandom
import SheafText

/// How a model's transformer layers start.
public enum LayerInitialization: String, Codable, Sendable, CaseIterable {
    /// Normal(0, `initializerRange`) weights, as BERT initialises.
    case random
    /// The first layers (and, where the model has them, the position embeddings and the embedding
    /// norm) of a pretrained BERT-style model (all-MiniLM-L6-v2: width 384, 12 heads, feed-forward
    /// 1536, 6 layers).
    case minilm
}

/// One post-LN transformer layer as BERT and RecBole's SASRec build it: multi-head self-attention,
/// dropout, residual, layer norm; then a GELU feed-forward layer, dropout, residual, layer norm.
/// Weights are stored [in, out] (x · W + b). SASRec and CHIME's interest transformer share it.
struct TransformerBlock {
    typealias Linear = (weight: Tensor, bias: Tensor)
    typealias Norm = (gamma: Tensor, beta: Tensor)
    let query: Linear, key: Linear, value: Linear, output: Linear
    let attentionNorm: Norm
    let inner: Linear, outer: Linear
    let feedForwardNorm: Norm

    /// A layer of `width` with a feed-forward layer of `innerSize`: weights from `normal(shape)`,
    /// biases 0, norms 1 and 0.
    static func initialised(width h: Int, innerSize: Int, normal: (_ shape: [Int]) -> Tensor) -> TransformerBlock {
        let constant = ParameterInitializer.constant
        return TransformerBlock(
            query: (normal([h, h]), constant(h, 0)), key: (normal([h, h]), constant(h, 0)),
            value: (normal([h, h]), constant(h, 0)), output: (normal([h, h]), constant(h, 0)),
            attentionNorm: (constant(h, 1), constant(h, 0)),
            inner: (normal([h, innerSize]), constant(innerSize, 0)), outer: (normal([innerSize, h]), constant(h, 0)),
            feedForwardNorm: (constant(h, 1), constant(h, 0)))
    }

    /// Every tensor with its checkpoint name under `prefix` (e.g. "layers.0.").
    func namedParameters(prefix p: String) -> [(name: String, tensor: Tensor)] {
        [
            (p + "query.weight", query.weight), (p + "query.bias", query.bias), (p + "key.weight", key.weight),
            (p + "key.bias", key.bias), (p + "value.weight", value.weight), (p + "value.bias", value.bias),
            (p + "output.weight", output.weight), (p + "output.bias", output.bias),
            (p + "attention_norm.gamma", attentionNorm.gamma), (p + "attention_norm.beta", attentionNorm.beta),
            (p + "inner.weight", inner.weight), (p + "inner.bias", inner.bias), (p + "outer.weight", outer.weight),
            (p + "outer.bias", outer.bias), (p + "feed_forward_norm.gamma", feedForwardNorm.gamma),
            (p + "feed_forward_norm.beta", feedForwardNorm.beta),
        ]
    }

    /// Sets this layer to layer `l` of a pretrained BERT-style encoder (Linear weights transposed to
    /// [in, out]). The caller checks that widths and depth fit.
    func assign(layer l: Int, of encoder: BertEncoder) {
        let p = encoder.namedParameters
        func get(_ name: String) -> Tensor { p[name]! }  // present: the encoder checked every tensor when it loaded
        func transposed(_ w: Tensor) -> [Float] {
            let (rows, cols) = (w.shape[0], w.shape[1])
            var out = [Float](repeating: 0, count: w.count)
            for r in 0..<rows { for k in 0..<cols { out[k * rows + r] = w.values[r * cols + k] } }
            return out
        }
        let q = "encoder.layer.\(l)."
        for (target, name) in [
            (query, "attention.self.query"), (key, "attention.self.key"), (value, "attention.self.value"),
            (output, "attention.output.dense"), (inner, "intermediate.dense"), (outer, "output.dense"),
        ] {
            target.weight.assign(transposed(get(q + name + ".weight")))
            target.bias.assign(get(q + name + ".bias").values)
        }
        attentionNorm.gamma.assign(get(q + "attention.output.LayerNorm.weight").values)
        attentionNorm.beta.assign(get(q + "attention.output.LayerNorm.bias").values)
        feedForwardNorm.gamma.assign(get(q + "output.LayerNorm.weight").values)
        feedForwardNorm.beta.assign(get(q + "output.LayerNorm.bias").values)
    }

    /// The layer applied to x [B, T, width].
    /// - Parameters:
    ///   - keyMask: [B·T], true for real behaviours.
    ///   - hiddenDropout: on the attention and feed-forward outputs; `attentionDropout`: on the weights.
    ///   - lastRows: only the last `lastRows` positions of each sequence ask (they still attend to all
    ///     T): the result is [B, lastRows, width], exactly those rows of the full layer's result, at
    ///     lastRows·T attention cost instead of T². For a last layer whose other outputs are unused.
    func callAsFunction(
        _ t: Tape, _ x: Tensor, heads: Int, keyMask: [Bool], causal: Bool, hiddenDropout: Float, attentionDropout: Float,
        epsilon: Float, lastRows: Int? = nil
    ) -> Tensor {
        var asking = x
        if let n = lastRows {
            let (b, l, w) = (x.shape[0], x.shape[1], x.shape[2])
            precondition(!causal && n <= l, "lastRows: \(n) of \(l) rows, causal \(causal)")
            if n < l {
                let rows = (0..<b).flatMap { r in ((l - n)..<l).map { r * l + $0 } }
                asking = t.reshape(t.embedding(t.reshape(x, [b * l, w]), ids: rows), [b, n, w])
            }
        }
        let q = t.linear(asking, query.weight, bias: query.bias)
        let k = t.linear(x, key.weight, bias: key.bias)
        let v = t.linear(x, value.weight, bias: value.bias)
        let attended = t.attention(q, k, v, heads: heads, keyMask: keyMask, causal: causal, dropout: attentionDropout)
        let a = t.dropout(t.linear(attended, output.weight, bias: output.bias), probability: hiddenDropout)
        let y = t.layerNorm(t.add(a, asking), gamma: attentionNorm.gamma, beta: attentionNorm.beta, epsilon: epsilon)
        let f = t.dropout(t.linear(t.gelu(t.linear(y, inner.weight, bias: inner.bias)), outer.weight, bias: outer.bias), probability: hiddenDropout)
        return t.layerNorm(t.add(f, y), gamma: feedForwardNorm.gamma, beta: feedForwardNorm.beta, epsilon: epsilon)
    }
}

extension TransformerBlock {
    /// Initialises a model's transformer stack from a pretrained BERT-style encoder: layer l gets the
    /// encoder's layer l, `positions` [P, width] the encoder's first P position embeddings plus its
    /// token-type-0 embedding (which BERT adds to every token), and `inputNorm` its embedding norm.
    /// Nothing changes unless everything fits.
    /// - Parameters:
    ///   - positionsName: how the model calls its positions, for the error (e.g. "maxLength").
    /// - Throws: `ModelError.invalidConfiguration` naming what does not fit: width, heads and
    ///   feed-forward size, depth, or positions.
    static func loadPretrained(
        _ blocks: [TransformerBlock], positions: Tensor, inputNorm: Norm, heads: Int, innerSize: Int, positionsName: String,
        from encoder: BertEncoder
    ) throws(ModelError) {
        let e = encoder.configuration, (count, width) = (positions.shape[0], positions.shape[1])
        guard width == e.hiddenSize, heads == e.heads, innerSize == e.intermediateSize else {
            throw .invalidConfiguration(
                "a pretrained initialisation needs width \(e.hiddenSize), \(e.heads) heads and feed-forward \(e.intermediateSize) "
                    + "(the encoder's); this model has \(width), \(heads) and \(innerSize)")
        }
        guard blocks.count <= e.layers else { throw .invalidConfiguration("the encoder has \(e.layers) layers; this model asks for \(blocks.count)") }
        guard count <= e.maxPositions else {
            throw .invalidConfiguration("the encoder has \(e.maxPositions) positions; \(positionsName) is \(count)")
        }
        let p = encoder.namedParameters
        let typeZero = p["embeddings.token_type_embeddings.weight[0]"]!.values
        let table = p["embeddings.position_embeddings.weight"]!.values
        positions.assign((0..<(count * width)).map { table[$0] + typeZero[$0 % width] })
        inputNorm.gamma.assign(p["embeddings.LayerNorm.weight"]!.values)
        inputNorm.beta.assign(p["embeddings.LayerNorm.bias"]!.values)
        for (l, b) in blocks.enumerated() { b.assign(layer: l, of: encoder) }
    }
}

/// Seeded parameter initialisation shared by the models: one generator, drawn in call order, so a
/// model's parameters depend only on its seed and the order it creates them in.
final class ParameterInitializer {
    private var rng: SplitMix64
    /// The standard deviation of `normal(_:)`.
    let standardDeviation: Double

    init(seed: UInt64, standardDeviation: Double = 0.02) {
        rng = SplitMix64(seed: seed)
        self.standardDeviation = standardDeviation
    }

    /// A tensor of normal draws with `standardDeviation`.
    func normal(_ shape: [Int]) -> Tensor { normal(shape, standardDeviation) }

    /// A tensor of normal draws with the given standard deviation.
    func normal(_ shape: [Int], _ std: Double) -> Tensor {
        Tensor.parameter(shape: shape, values: (0..<Tensor.count(of: shape)).map { _ in Float(rng.normal(standardDeviation: std)) })
    }

    /// A vector of n copies of v (biases, norm gains).
    static func constant(_ n: Int, _ v: Float) -> Tensor { Tensor.parameter(shape: [n], values: [Float](repeating: v, count: n)) }
}
