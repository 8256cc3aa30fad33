import SheafNN
import SheafRandom

/// Every choice of HyMiRec (the multi-interest recommender of the HyMiRec seed).
public struct HyMiRecConfiguration: Codable, Sendable, Equatable {
    /// Width of every token and interest.
    public var width = 64
    public var heads = 2
    public var innerSize = 256
    /// Layers of the lightweight recommender (over the whole history before the recent window).
    public var lightweightLayers = 1
    /// Layers of the refined recommender.
    public var refinedLayers = 2
    /// N_c: learnable coarse queries, one coarse interest each.
    public var coarseQueries = 4
    /// s: refined interests.
    public var interests = 4
    /// w: window targets per training example.
    public var window = 4
    /// n: recent behaviours the refined recommender reads.
    public var recent = 50
    /// The lightweight recommender reads at most this many behaviours before the recent window (the
    /// most recent ones).
    public var maxHistory = 1024
    /// Without it, the refined recommender reads no coarse interests (ablation).
    public var lightweight = true
    /// Without it, coarse interests carry no indicator embedding (ablation).
    public var indicator = true
    public var matching: InterestMatchingRule = .hungarian
    /// Sampled negatives per step (shared by the batch).
    public var negatives = 256
    public var temperature: Float = 0.1
    public var dropout: Float = 0.1
    public var clusterIterations = 5
    public var initializerRange: Float = 0.02
    public var layerNormEpsilon: Float = 1e-12
    public init() {}

    public func validate() throws(ModelError) {
        func fail(_ why: String) -> ModelError { .invalidConfiguration(why) }
        guard width >= 1, heads >= 1, width % heads == 0 else { throw fail("width must be a positive multiple of heads") }
        guard innerSize >= 1, lightweightLayers >= 0, refinedLayers >= 1 else { throw fail("layers and inner size must be ≥ 1") }
        guard coarseQueries >= 1, interests >= 1, window >= 1, recent >= 1, maxHistory >= 1 else {
            throw fail("coarse queries, interests, window, recent and max history must be ≥ 1")
        }
        guard negatives >= 1 else { throw fail("at least one sampled negative") }
        guard temperature > 0, temperature.isFinite else { throw fail("the temperature must be positive") }
        guard (0..<1).contains(dropout) else { throw fail("dropout must be in [0, 1)") }
    }
}

/// The inputs of a batch of examples: per row, the history the lightweight recommender reads and the
/// recent behaviours the refined one reads, as dense item indices, padded.
public struct HyMiRecBatch: Sendable {
    public let rows: Int
    /// History tokens [rows × historyLength] (0: padding) and their mask.
    public let history: [Int], historyLength: Int, historyMask: [Bool]
    /// Recent tokens [rows × recentLength] (0: padding) and their mask.
    public let recent: [Int], recentLength: Int, recentMask: [Bool]

    /// - Parameter examples: (user, cut): the input is the user's behaviours before `cut`.
    public init(_ examples: [(user: Int, cut: Int)], in data: SequenceDataset, configuration c: HyMiRecConfiguration) {
        rows = examples.count
        let split = examples.map { e -> (history: Range<Int>, recent: Range<Int>) in
            let recentStart = max(0, e.cut - c.recent)
            let historyStart = c.lightweight ? max(0, recentStart - c.maxHistory) : recentStart
            return (historyStart..<recentStart, recentStart..<e.cut)
        }
        historyLength = split.map(\.history.count).max() ?? 0
        recentLength = max(1, split.map(\.recent.count).max() ?? 1)
        var history = [Int](repeating: 0, count: rows * historyLength), historyMask = [Bool](repeating: false, count: rows * historyLength)
        var recent = [Int](repeating: 0, count: rows * recentLength), recentMask = [Bool](repeating: false, count: rows * recentLength)
        for (r, e) in examples.enumerated() {
            let items = data.users[e.user].items
            for (p, i) in split[r].history.enumerated() {
                history[r * historyLength + p] = Int(items[i])
                historyMask[r * historyLength + p] = true
            }
            for (p, i) in split[r].recent.enumerated() {
                recent[r * recentLength + p] = Int(items[i])
                recentMask[r * recentLength + p] = true
            }
        }
        self.history = history
        self.historyMask = historyMask
        self.recent = recent
        self.recentMask = recentMask
    }
}

/// HyMiRec: a lightweight transformer whose N_c learnable coarse queries attend over the whole
/// history before the recent window (content embeddings decoded from the store's codes), and a
/// refined transformer over [coarse interests + an indicator embedding] ++ [the last n behaviours +
/// positions] ++ [s learnable refined queries], whose outputs at the queries are the interests
/// r_1…r_s. Items are scored by max_j cos(r_j, key(item)), with key(item) the projected content.
/// Both transformers are bidirectional over their input (every input precedes the targets).
public final class HyMiRec {
    public let configuration: HyMiRecConfiguration
    public let contentDimension: Int
    let itemProjection: TransformerBlock.Linear
    let coarseQueryTable: Tensor, refinedQueryTable: Tensor, indicatorEmbedding: Tensor, recentPositions: Tensor
    let lightweightBlocks: [TransformerBlock], refinedBlocks: [TransformerBlock]
    let inputNorm: TransformerBlock.Norm

    public init(configuration: HyMiRecConfiguration, contentDimension: Int, seed: UInt64) throws(ModelError) {
        try configuration.validate()
        guard contentDimension >= 1 else { throw .invalidConfiguration("HyMiRec needs content embeddings (dimension ≥ 1)") }
        let c = configuration
        self.configuration = c
        self.contentDimension = contentDimension
        let initializer = ParameterInitializer(seed: seed, standardDeviation: Double(c.initializerRange))
        let normal = initializer.normal as ([Int]) -> Tensor, constant = ParameterInitializer.constant
        let d = c.width
        itemProjection = (normal([contentDimension, d]), constant(d, 0))
        coarseQueryTable = normal([c.coarseQueries, d])
        refinedQueryTable = normal([c.interests, d])
        indicatorEmbedding = normal([1, d])
        recentPositions = normal([c.recent, d])
        lightweightBlocks = (0..<c.lightweightLayers).map { _ in TransformerBlock.initialised(width: d, innerSize: c.innerSize, normal: normal) }
        refinedBlocks = (0..<c.refinedLayers).map { _ in TransformerBlock.initialised(width: d, innerSize: c.innerSize, normal: normal) }
        inputNorm = (constant(d, 1), constant(d, 0))
    }

    /// Every trainable tensor with its checkpoint name, in a fixed order.
    public var namedParameters: [(name: String, tensor: Tensor)] {
        var out: [(String, Tensor)] = [
            ("items.weight", itemProjection.weight), ("items.bias", itemProjection.bias), ("coarse_queries", coarseQueryTable),
            ("refined_queries", refinedQueryTable), ("indicator", indicatorEmbedding), ("recent_positions", recentPositions),
            ("input_norm.gamma", inputNorm.gamma), ("input_norm.beta", inputNorm.beta),
        ]
        for (i, b) in lightweightBlocks.enumerated() { out += b.namedParameters(prefix: "lightweight.\(i).") }
        for (i, b) in refinedBlocks.enumerated() { out += b.namedParameters(prefix: "refined.\(i).") }
        return out
    }

    /// Projected content of the given items: [count, d].
    func project(_ t: Tape, _ content: Tensor, _ ids: [Int]) -> Tensor {
        t.linear(t.embedding(content, ids: ids), itemProjection.weight, bias: itemProjection.bias)
    }

    /// Every item's projected content, [N + 1, d] (row 0, padding, included).
    func projectedItems(_ t: Tape, content: Tensor) -> Tensor { t.linear(content, itemProjection.weight, bias: itemProjection.bias) }

    /// Every item's key, L2-normalised: [N + 1, d] (row 0, padding, included).
    public func itemKeys(_ t: Tape, content: Tensor) -> Tensor { t.l2Normalize(projectedItems(t, content: content)) }

    /// The refined interests of a batch, [rows · s, d] (row r's interests are rows r·s…r·s + s − 1).
    /// - Parameter content: the content table [N + 1, D] (a frozen tensor).
    public func interests(_ t: Tape, _ batch: HyMiRecBatch, content: Tensor, training: Bool) -> Tensor {
        let c = configuration, d = c.width, b = batch.rows
        let dropout = training ? c.dropout : 0
        func norm(_ x: Tensor) -> Tensor { t.layerNorm(x, gamma: inputNorm.gamma, beta: inputNorm.beta, epsilon: c.layerNormEpsilon) }
        func run(_ blocks: [TransformerBlock], _ x: Tensor, length: Int, mask: [Bool]) -> Tensor {
            var y = t.reshape(x, [b, length, d])
            for block in blocks {
                y = block(t, y, heads: c.heads, keyMask: mask, causal: false, hiddenDropout: dropout, attentionDropout: dropout, epsilon: c.layerNormEpsilon)
            }
            return t.reshape(y, [b * length, d])
        }
        /// Rows of `x` [b · length, d] at positions `from..<from + count` of every row.
        func positions(_ x: Tensor, length: Int, from: Int, count: Int) -> Tensor {
            t.embedding(x, ids: (0..<b).flatMap { r in (from..<(from + count)).map { r * length + $0 } })
        }
        let nc = c.coarseQueries, s = c.interests
        func perRow(_ table: Tensor, _ n: Int) -> Tensor {
            t.reshape(t.embedding(table, ids: (0..<b).flatMap { _ in Array(0..<n) }), [b, n, d])
        }
        // The refined input, as [b, length, d] parts concatenated along the sequence, with their masks.
        var parts: [Tensor] = [], masks: [[Bool]] = []
        if c.lightweight {
            // Lightweight: [history ++ coarse queries], bidirectional; its outputs at the queries.
            let lh = batch.historyLength, length = lh + nc
            let queries = perRow(coarseQueryTable, nc)
            let input = lh > 0 ? t.concatSequence([t.reshape(project(t, content, batch.history), [b, lh, d]), queries]) : queries
            var mask = [Bool](repeating: true, count: b * length)
            for r in 0..<b { for p in 0..<lh { mask[r * length + p] = batch.historyMask[r * lh + p] } }
            let x = t.dropout(norm(t.reshape(input, [b * length, d])), probability: dropout)
            var coarse = positions(run(lightweightBlocks, x, length: length, mask: mask), length: length, from: lh, count: nc)
            if c.indicator { coarse = t.add(coarse, t.reshape(indicatorEmbedding, [d])) }
            parts.append(t.reshape(coarse, [b, nc, d]))
            masks.append([Bool](repeating: true, count: b * nc))
        }
        let lr = batch.recentLength
        parts.append(t.reshape(t.add(project(t, content, batch.recent), t.embedding(recentPositions, ids: (0..<b).flatMap { _ in Array(0..<lr) })), [b, lr, d]))
        masks.append(batch.recentMask)
        parts.append(perRow(refinedQueryTable, s))
        masks.append([Bool](repeating: true, count: b * s))
        let lengths = parts.map { $0.shape[1] }, length = lengths.reduce(0, +)
        var mask: [Bool] = []
        mask.reserveCapacity(b * length)
        for r in 0..<b { for (k, l) in lengths.enumerated() { mask += masks[k][(r * l)..<((r + 1) * l)] } }
        let x = t.dropout(norm(t.reshape(t.concatSequence(parts), [b * length, d])), probability: dropout)
        let out = run(refinedBlocks, x, length: length, mask: mask)
        return positions(out, length: length, from: length - s, count: s)
    }
}

extension HyMiRec {
    /// DMIL's loss on a batch of window examples: the interests of each example, its window targets
    /// clustered and matched to them (`DMILPlan`, on detached values), and InfoNCE of each target
    /// against its matched interest with `negatives` items drawn uniformly from the vocabulary.
    /// - Parameter content: the content table [N + 1, D].
    public func loss(_ t: Tape, _ examples: [WindowExample], in data: SequenceDataset, content: Tensor, rng: inout SplitMix64)
        -> Tensor
    {
        let c = configuration, d = c.width
        let batch = HyMiRecBatch(examples.map { (user: $0.user, cut: $0.cut) }, in: data, configuration: c)
        let r = interests(t, batch, content: content, training: true)
        let keys = projectedItems(t, content: content)  // dmilLoss normalises the rows it reads
        let targetItems = examples.flatMap { e in e.targets.map { Int(data.users[e.user].items[$0]) } }
        // The plan reads normalised keys (clustering is under cosine, so the norm does not matter).
        let keyValues = keys.values
        let plan = DMILPlan(
            interests: r.values, targets: examples.map { e in e.targets.flatMap { p in
                let item = Int(data.users[e.user].items[p])
                return Array(keyValues[(item * d)..<((item + 1) * d)])
            } }, interestsPerRow: c.interests, dimension: d, iterations: c.clusterIterations, rule: c.matching)
        let n = content.shape[0] - 1
        let negatives = (0..<c.negatives).map { _ in 1 + Int(rng.next() % UInt64(n)) }
        return t.dmilLoss(interests: r, plan: plan, keys: keys, targetItems: targetItems, negativeItems: negatives, temperature: c.temperature)
    }

    /// Each example's score of every item, max_j cos(r_j, key(item)): [examples × (N + 1)] (column 0,
    /// padding, included), without dropout.
    public func scores(_ examples: [(user: Int, cut: Int)], in data: SequenceDataset, content: Tensor, threads: Int = Tape.defaultThreads)
        -> [Float]
    {
        let c = configuration, s = c.interests
        let t = Tape(recording: false, threads: threads)
        let batch = HyMiRecBatch(examples, in: data, configuration: c)
        let r = t.l2Normalize(interests(t, batch, content: content, training: false))
        let all = t.matmul(r, itemKeys(t, content: content), transposeB: true).values  // [b · s, N + 1]
        let n = content.shape[0]
        var out = [Float](repeating: -.infinity, count: examples.count * n)
        for row in 0..<examples.count {
            for j in 0..<s {
                let base = (row * s + j) * n
                for i in 0..<n { out[row * n + i] = max(out[row * n + i], all[base + i]) }
            }
        }
        return out
    }

    /// Full-ranking metrics of examples with one target each (validation and test: the behaviour at
    /// `cut`), every item ranked.
    public func evaluate(
        _ examples: [WindowExample], in data: SequenceDataset, content: Tensor, batchSize: Int = 256, threads: Int = Tape.defaultThreads
    ) -> RankingMetrics {
        var metrics = RankingMetrics()
        let n = content.shape[0]
        var start = 0
        while start < examples.count {
            let part = Array(examples[start..<min(examples.count, start + max(1, batchSize))])
            let scores = scores(part.map { (user: $0.user, cut: $0.cut) }, in: data, content: content, threads: threads)
            scores.withUnsafeBufferPointer { s in
                for (r, e) in part.enumerated() {
                    metrics.add(scores: UnsafeBufferPointer(rebasing: s[(r * n)..<((r + 1) * n)]), target: Int(data.users[e.user].items[e.cut]))
                }
            }
            start += part.count
        }
        return metrics
    }
}
