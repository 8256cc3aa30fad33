import Foundation
import SheafFormats
import SheafNN
import SheafRandom

/// The fields of a BERT `config.json` the encoder uses.
public struct BertConfiguration: Sendable, Equatable {
    public var hiddenSize: Int
    public var layers: Int
    public var heads: Int
    public var intermediateSize: Int
    public var maxPositions: Int
    public var vocabularySize: Int
    public var layerNormEpsilon: Float

    public init(
        hiddenSize: Int, layers: Int, heads: Int, intermediateSize: Int, maxPositions: Int, vocabularySize: Int,
        layerNormEpsilon: Float = 1e-12
    ) {
        precondition(hiddenSize % heads == 0, "hidden size must be a multiple of the head count")
        self.hiddenSize = hiddenSize
        self.layers = layers
        self.heads = heads
        self.intermediateSize = intermediateSize
        self.maxPositions = maxPositions
        self.vocabularySize = vocabularySize
        self.layerNormEpsilon = layerNormEpsilon
    }

    /// The `config.json` text of this configuration (the fields `init(file:)` reads).
    public var json: String {
        """
        {"model_type": "bert", "hidden_act": "gelu", "position_embedding_type": "absolute", "hidden_size": \(hiddenSize), \
        "num_hidden_layers": \(layers), "num_attention_heads": \(heads), "intermediate_size": \(intermediateSize), \
        "max_position_embeddings": \(maxPositions), "vocab_size": \(vocabularySize), "type_vocab_size": 2, \
        "layer_norm_eps": \(Double(layerNormEpsilon)), "pad_token_id": 0}
        """
    }

    /// Reads and checks `config.json` (a BERT with GELU and absolute positions).
    public init(file path: String) throws {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw TextModelError.unreadable(path: path, reason: "no such file")
        }
        guard let c = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any] else {
            throw TextModelError.malformed(path: path, reason: "not a JSON object")
        }
        func int(_ key: String) throws -> Int {
            guard let v = c[key] as? Int, v > 0 else { throw TextModelError.malformed(path: path, reason: "\(key) missing or not a positive integer") }
            return v
        }
        guard (c["model_type"] as? String) == "bert" else {
            throw TextModelError.malformed(path: path, reason: "model_type \(c["model_type"] ?? "missing"), expected bert")
        }
        guard (c["hidden_act"] as? String) == "gelu" else {
            throw TextModelError.malformed(path: path, reason: "hidden_act \(c["hidden_act"] ?? "missing"), expected gelu")
        }
        if let p = c["position_embedding_type"] as? String, p != "absolute" {
            throw TextModelError.malformed(path: path, reason: "position_embedding_type \(p), expected absolute")
        }
        hiddenSize = try int("hidden_size")
        layers = try int("num_hidden_layers")
        heads = try int("num_attention_heads")
        intermediateSize = try int("intermediate_size")
        maxPositions = try int("max_position_embeddings")
        vocabularySize = try int("vocab_size")
        guard let eps = c["layer_norm_eps"] as? Double, eps > 0 else {
            throw TextModelError.malformed(path: path, reason: "layer_norm_eps missing or not positive")
        }
        layerNormEpsilon = Float(eps)
        guard hiddenSize % heads == 0 else {
            throw TextModelError.malformed(path: path, reason: "hidden_size \(hiddenSize) is not a multiple of \(heads) heads")
        }
    }
}

/// A pretrained BERT sentence encoder (e.g. all-MiniLM-L6-v2) on SheafNN: token, position and
/// type-0 embeddings with layer norm; per layer, self-attention over non-padding tokens, residual and
/// post-layer-norm, a GELU feed-forward block, residual and post-layer-norm; then the mean of the
/// last hidden states over the real tokens, L2-normalised (the sentence-transformers pooling).
public final class BertEncoder: @unchecked Sendable {
    struct Layer {
        let query, queryBias, key, keyBias, value, valueBias, output, outputBias: Tensor
        let attentionNorm, attentionNormBias, intermediate, intermediateBias, down, downBias, outputNorm, outputNormBias: Tensor
    }

    public let configuration: BertConfiguration
    public let tokenizer: WordPieceTokenizer
    let words, positions, typeZero, embeddingNorm, embeddingNormBias: Tensor
    let layers: [Layer]

    /// Loads `config.json`, `vocab.txt` and `model.safetensors` from `directory`.
    ///
    /// - Parameter maxLength: tokens per text, [CLS] and [SEP] included (sentence-transformers uses
    ///   256 for all-MiniLM-L6-v2); at most the model's position count.
    /// - Throws: `TextModelError` for a bad config or vocabulary; `FormatError` (`.missingTensor`,
    ///   `.tensorShapeMismatch`, `.unsupportedDType`, `.truncated`, …) for bad weights.
    public init(modelDirectory directory: String, maxLength: Int = 256) throws {
        let c = try BertConfiguration(file: directory + "/config.json")
        configuration = c
        guard maxLength >= 2, maxLength <= c.maxPositions else {
            throw TextModelError.malformed(path: directory + "/config.json", reason: "maxLength \(maxLength) outside 2...\(c.maxPositions)")
        }
        tokenizer = try WordPieceTokenizer(vocabularyFile: directory + "/vocab.txt", maxLength: maxLength)
        guard tokenizer.tokens.count == c.vocabularySize else {
            throw TextModelError.malformed(
                path: directory + "/vocab.txt", reason: "\(tokenizer.tokens.count) tokens, config.json says vocab_size \(c.vocabularySize)")
        }
        let file = try SafeTensors.read(path: directory + "/model.safetensors")
        // Checkpoints saved from BertModel have no prefix; from BertFor… heads they start with "bert.".
        let prefix = file.entry("embeddings.word_embeddings.weight") == nil && file.entry("bert.embeddings.word_embeddings.weight") != nil ? "bert." : ""
        func t(_ name: String, _ shape: [Int]) throws -> Tensor { try Checkpoint.tensor(file, prefix + name, shape: shape) }
        let (h, i) = (c.hiddenSize, c.intermediateSize)
        words = try t("embeddings.word_embeddings.weight", [c.vocabularySize, h])
        positions = try t("embeddings.position_embeddings.weight", [c.maxPositions, h])
        let types = try file.floats(prefix + "embeddings.token_type_embeddings.weight")
        guard types.shape.count == 2, types.shape[1] == h, types.shape[0] >= 1 else {
            throw FormatError.tensorShapeMismatch(path: file.path, name: prefix + "embeddings.token_type_embeddings.weight", expected: [2, h], actual: types.shape)
        }
        typeZero = Tensor(shape: [h], values: Array(types.values[0..<h]))
        embeddingNorm = try t("embeddings.LayerNorm.weight", [h])
        embeddingNormBias = try t("embeddings.LayerNorm.bias", [h])
        layers = try (0..<c.layers).map { l in
            let p = "encoder.layer.\(l)."
            return Layer(
                query: try t(p + "attention.self.query.weight", [h, h]), queryBias: try t(p + "attention.self.query.bias", [h]),
                key: try t(p + "attention.self.key.weight", [h, h]), keyBias: try t(p + "attention.self.key.bias", [h]),
                value: try t(p + "attention.self.value.weight", [h, h]), valueBias: try t(p + "attention.self.value.bias", [h]),
                output: try t(p + "attention.output.dense.weight", [h, h]), outputBias: try t(p + "attention.output.dense.bias", [h]),
                attentionNorm: try t(p + "attention.output.LayerNorm.weight", [h]),
                attentionNormBias: try t(p + "attention.output.LayerNorm.bias", [h]),
                intermediate: try t(p + "intermediate.dense.weight", [i, h]), intermediateBias: try t(p + "intermediate.dense.bias", [i]),
                down: try t(p + "output.dense.weight", [h, i]), downBias: try t(p + "output.dense.bias", [h]),
                outputNorm: try t(p + "output.LayerNorm.weight", [h]), outputNormBias: try t(p + "output.LayerNorm.bias", [h]))
        }
    }

    /// Embedding width.
    public var dimension: Int { configuration.hiddenSize }

    /// The names and shapes of the weights a BERT of `c` needs (what `init` reads, without prefix).
    public static func weightShapes(_ c: BertConfiguration) -> [(name: String, shape: [Int])] {
        let (h, i) = (c.hiddenSize, c.intermediateSize)
        var out: [(String, [Int])] = [
            ("embeddings.word_embeddings.weight", [c.vocabularySize, h]), ("embeddings.position_embeddings.weight", [c.maxPositions, h]),
            ("embeddings.token_type_embeddings.weight", [2, h]), ("embeddings.LayerNorm.weight", [h]), ("embeddings.LayerNorm.bias", [h]),
        ]
        for l in 0..<c.layers {
            let p = "encoder.layer.\(l)."
            for n in ["query", "key", "value"] { out += [(p + "attention.self.\(n).weight", [h, h]), (p + "attention.self.\(n).bias", [h])] }
            out += [
                (p + "attention.output.dense.weight", [h, h]), (p + "attention.output.dense.bias", [h]),
                (p + "attention.output.LayerNorm.weight", [h]), (p + "attention.output.LayerNorm.bias", [h]),
                (p + "intermediate.dense.weight", [i, h]), (p + "intermediate.dense.bias", [i]),
                (p + "output.dense.weight", [h, i]), (p + "output.dense.bias", [h]),
                (p + "output.LayerNorm.weight", [h]), (p + "output.LayerNorm.bias", [h]),
            ]
        }
        return out
    }

    /// Writes a randomly initialised BERT of `configuration` to `directory` (config.json, vocab.txt
    /// with `tokens`, model.safetensors): weights uniform in ±0.1 from a fixed seed, layer-norm
    /// scales 1. For tests, and for comparing pretrained with random initialisation.
    public static func writeRandomModel(to directory: String, configuration c: BertConfiguration, tokens: [String], seed: UInt64 = 1) throws {
        precondition(tokens.count == c.vocabularySize, "the vocabulary must have vocab_size tokens")
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        try c.json.write(toFile: directory + "/config.json", atomically: true, encoding: .utf8)
        try (tokens.joined(separator: "\n") + "\n").write(toFile: directory + "/vocab.txt", atomically: true, encoding: .utf8)
        var rng = SplitMix64(seed: seed)
        func next() -> Float { (rng.nextFloat() - 0.5) * 0.2 }
        let tensors = weightShapes(c).map { w -> (name: String, shape: [Int], values: [Float]) in
            let n = w.shape.reduce(1, *)
            let isScale = w.name.hasSuffix("LayerNorm.weight")
            return (w.name, w.shape, (0..<n).map { _ in isScale ? 1 : next() })
        }
        try SafeTensors.write(tensors, metadata: ["format": "pt"], to: directory + "/model.safetensors")
    }

    /// Unit-norm embeddings of `texts`, row i for texts[i] (count × dimension floats).
    ///
    /// Texts are tokenized, sorted by length and run in batches of up to `batchSize` (so padding
    /// stays small), then put back in input order. Several batches run on `threads` threads at once
    /// (each forward pass on one thread); a single batch runs its operations on `threads` threads.
    /// Results do not depend on the thread count. `progress` is called with the number of texts done after each batch, from one thread
    /// at a time.
    public func embed(
        _ texts: [String], batchSize: Int = 32, threads: Int = ProcessInfo.processInfo.activeProcessorCount,
        progress: ((Int) -> Void)? = nil
    ) -> [Float] {
        precondition(batchSize >= 1 && threads >= 1, "batchSize and threads must be positive")
        let h = dimension
        let encoded = texts.map { tokenizer.encode($0) }
        let order = encoded.indices.sorted { (encoded[$0].count, $0) < (encoded[$1].count, $1) }
        let batches = stride(from: 0, to: order.count, by: batchSize).map { Array(order[$0..<min(order.count, $0 + batchSize)]) }
        var out = [Float](repeating: 0, count: texts.count * h)
        let counter = ProgressCounter(progress)
        out.withUnsafeMutableBufferPointer { o in
            let base = UncheckedSendableBox(o.baseAddress!)
            let perBatch = batches.count > 1 ? 1 : threads
            Parallel.forEach(batches.count, threads: threads) { b in
                let rows = batches[b]
                let result = forward(rows.map { encoded[$0] }, threads: perBatch)
                // safe: every text index is in exactly one batch, so workers write disjoint rows.
                for (k, r) in rows.enumerated() {
                    for j in 0..<h { base.value[r * h + j] = result.values[k * h + j] }
                }
                counter.add(rows.count)
            }
        }
        return out
    }

    /// Pooled, normalised embeddings [B, H] of token-id sequences (each at most maxLength long).
    func forward(_ sequences: [[Int32]], threads: Int = 1) -> Tensor {
        let (x, mask) = hiddenStates(sequences, threads: threads)
        let t = Tape(recording: false, threads: threads)
        return t.l2Normalize(t.maskedMeanPool(x, mask: mask))
    }

    /// The pretrained tensors under their checkpoint names without prefix ("encoder.layer.0.attention.
    /// self.query.weight", …), as stored: Linear weights are [out, in]. For models initialised from
    /// this encoder (CHIME's interest transformer).
    public var namedParameters: [String: Tensor] {
        var out: [String: Tensor] = [
            "embeddings.word_embeddings.weight": words, "embeddings.position_embeddings.weight": positions,
            "embeddings.token_type_embeddings.weight[0]": typeZero,
            "embeddings.LayerNorm.weight": embeddingNorm, "embeddings.LayerNorm.bias": embeddingNormBias,
        ]
        for (i, l) in layers.enumerated() {
            let p = "encoder.layer.\(i)."
            out[p + "attention.self.query.weight"] = l.query
            out[p + "attention.self.query.bias"] = l.queryBias
            out[p + "attention.self.key.weight"] = l.key
            out[p + "attention.self.key.bias"] = l.keyBias
            out[p + "attention.self.value.weight"] = l.value
            out[p + "attention.self.value.bias"] = l.valueBias
            out[p + "attention.output.dense.weight"] = l.output
            out[p + "attention.output.dense.bias"] = l.outputBias
            out[p + "attention.output.LayerNorm.weight"] = l.attentionNorm
            out[p + "attention.output.LayerNorm.bias"] = l.attentionNormBias
            out[p + "intermediate.dense.weight"] = l.intermediate
            out[p + "intermediate.dense.bias"] = l.intermediateBias
            out[p + "output.dense.weight"] = l.down
            out[p + "output.dense.bias"] = l.downBias
            out[p + "output.LayerNorm.weight"] = l.outputNorm
            out[p + "output.LayerNorm.bias"] = l.outputNormBias
        }
        return out
    }

    /// Every position's last hidden state [B, T, H] of token-id sequences (padded to the longest),
    /// with the mask of real tokens.
    public func hiddenStates(_ sequences: [[Int32]], threads: Int = 1) -> (Tensor, [Bool]) {
        let t = Tape(recording: false, threads: threads)
        let b = sequences.count
        let length = sequences.map(\.count).max() ?? 0
        let h = dimension, eps = configuration.layerNormEpsilon
        var ids: [Int] = []
        var mask: [Bool] = []
        ids.reserveCapacity(b * length)
        for s in sequences {
            ids += s.map(Int.init) + [Int](repeating: Int(tokenizer.paddingID), count: length - s.count)
            mask += [Bool](repeating: true, count: s.count) + [Bool](repeating: false, count: length - s.count)
        }
        let positionIDs = (0..<b).flatMap { _ in Array(0..<length) }
        var x = t.add(t.add(t.embedding(words, ids: ids), t.embedding(positions, ids: positionIDs)), typeZero)
        x = t.reshape(t.layerNorm(x, gamma: embeddingNorm, beta: embeddingNormBias, epsilon: eps), [b, length, h])
        for l in layers {
            // PyTorch stores Linear weights [out, in]: x · Wᵀ + b.
            let q = t.linear(x, l.query, bias: l.queryBias, transposeB: true)
            let k = t.linear(x, l.key, bias: l.keyBias, transposeB: true)
            let v = t.linear(x, l.value, bias: l.valueBias, transposeB: true)
            let context = t.attention(q, k, v, heads: configuration.heads, keyMask: mask)
            let attended = t.linear(context, l.output, bias: l.outputBias, transposeB: true)
            x = t.layerNorm(t.add(attended, x), gamma: l.attentionNorm, beta: l.attentionNormBias, epsilon: eps)
            let inner = t.gelu(t.linear(x, l.intermediate, bias: l.intermediateBias, transposeB: true))
            let down = t.linear(inner, l.down, bias: l.downBias, transposeB: true)
            x = t.layerNorm(t.add(down, x), gamma: l.outputNorm, beta: l.outputNormBias, epsilon: eps)
        }
        return (x, mask)
    }
}
