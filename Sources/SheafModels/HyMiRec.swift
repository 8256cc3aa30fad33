import SheafNN
import SheafRandom
import SheafText

/// Every choice of HyMiRec (the multi-interest recommender of the HyMiRec seed).
public struct HyMiRecConfiguration: Codable, Sendable, Equatable {
    /// Width of the refined recommender, its interests and the item keys (MiniLM: 384).
    public var width = 64
    public var heads = 2
    /// Feed-forward width of the refined recommender (GELU; MiniLM: 1536).
    public var innerSize = 256
    /// Layers of the refined recommender (1…6 with MiniLM).
    public var refinedLayers = 2
    /// How the refined layers start: random, or MiniLM's first `refinedLayers` layers (then width,
    /// heads and inner size must be MiniLM's).
    public var initialization: LayerInitialization = .random
    /// The lightweight recommender (over the whole history before the recent window) is small
    /// whatever the refined one is: its own width, heads, feed-forward width and layers. Its coarse
    /// interests reach the refined width through a learned projection.
    public var lightweightWidth = 64
    public var lightweightHeads = 2
    public var lightweightInnerSize = 256
    public var lightweightLayers = 1
    /// N_c: learnable coarse queries, one coarse interest each.
    public var coarseQueries = 4
    /// s: refined interests (the seed's best on its public benchmarks: 2).
    public var interests = 2
    /// w: window targets per training example.
    public var window = 4
    /// n: recent behaviours the refined recommender reads.
    public var recent = 50
    /// How the recent behaviours' learned positions are numbered.
    public var recentPositionOrder: RecentPositionOrder = .newestFirst
    /// The lightweight recommender reads at most this many behaviours before the recent window (the
    /// most recent ones).
    public var maxHistory = 1024
    /// Adds a learned item-ID embedding to each item's projected content (the refined recommender's
    /// tokens and the keys it scores), standing in for the seed's item encoder fine-tuned on the
    /// recommendation loss. Off by default: items added after training have none.
    public var itemIDs = false
    /// Without it, the refined recommender reads no coarse interests (ablation).
    public var lightweight = true
    /// Without it, coarse interests carry no indicator embedding (ablation).
    public var indicator = true
    public var matching: InterestMatchingRule = .hungarian
    /// Sampled negatives per step (shared by the batch); at least the item count: every item once (a
    /// softmax over the catalogue). A model stores min(negatives, its item count).
    public var negatives = 4096
    public var temperature: Float = 0.1
    /// Dropout of embeddings, layer outputs and attention weights (SASRec's, as RecBole sets it).
    public var dropout: Float = 0.5
    public var clusterIterations = 5
    public var initializerRange: Float = 0.02
    public var layerNormEpsilon: Float = 1e-12
    public init() {}

    public func validate() throws(ModelError) {
        func fail(_ why: String) -> ModelError { .invalidConfiguration(why) }
        guard width >= 1, heads >= 1, width % heads == 0, lightweightWidth >= 1, lightweightHeads >= 1,
            lightweightWidth % lightweightHeads == 0
        else { throw fail("each width must be a positive multiple of its heads") }
        guard innerSize >= 1, lightweightInnerSize >= 1, lightweightLayers >= 1, refinedLayers >= 1 else {
            throw fail("layers and inner sizes must be ≥ 1")
        }
        guard coarseQueries >= 1, interests >= 1, window >= 1, recent >= 1, maxHistory >= 1 else {
            throw fail("coarse queries, interests, window, recent and max history must be ≥ 1")
        }
        guard negatives >= 1 else { throw fail("at least one sampled negative") }
        guard temperature > 0, temperature.isFinite else { throw fail("the temperature must be positive") }
        guard (0..<1).contains(dropout) else { throw fail("dropout must be in [0, 1)") }
    }
}

/// How HyMiRec numbers the positions of the recent behaviours it reads.
public enum RecentPositionOrder: String, Codable, Sendable, CaseIterable {
    /// Position 0 is the latest behaviour, 1 the one before it, and so on: the latest behaviour has
    /// the same position embedding however many behaviours precede it (the default).
    case newestFirst = "newest-first"
    /// Position 0 is the oldest of the recent behaviours read: with fewer than n of them the latest
    /// one's position varies with their count, so the bidirectional refined recommender cannot tell
    /// which is the latest. Checkpoints written before this option existed were trained this way
    /// (and are read so).
    case oldestFirst = "oldest-first"
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

    private init(rows: Int, history: [Int], historyLength: Int, historyMask: [Bool], recent: [Int], recentLength: Int, recentMask: [Bool]) {
        (self.rows, self.history, self.historyLength, self.historyMask) = (rows, history, historyLength, historyMask)
        (self.recent, self.recentLength, self.recentMask) = (recent, recentLength, recentMask)
    }

    /// The position id of every recent token, [rows × recentLength] (padding: 0; it is masked).
    /// Recent tokens sit at the start of their row, oldest first.
    func positions(_ order: RecentPositionOrder) -> [Int] {
        (0..<rows).flatMap { r -> [Int] in
            switch order {
            case .oldestFirst: return Array(0..<recentLength)
            case .newestFirst:
                let n = recentMask[(r * recentLength)..<((r + 1) * recentLength)].count { $0 }
                return (0..<recentLength).map { p in p < n ? n - 1 - p : 0 }
            }
        }
    }

    /// The same batch with its recent tokens renumbered by `index` (item → row of a smaller table).
    func renumberingRecent(_ index: [Int: Int]) -> HyMiRecBatch {
        HyMiRecBatch(
            rows: rows, history: history, historyLength: historyLength, historyMask: historyMask, recent: recent.map { index[$0]! },
            recentLength: recentLength, recentMask: recentMask)
    }
}

/// Sorted distinct items and each one's row in that list: the table of the items a step reads.
func localTable(_ items: some Sequence<Int>) -> (rows: [Int], index: [Int: Int]) {
    let rows = Set(items).sorted()
    var index: [Int: Int] = [:]
    index.reserveCapacity(rows.count)
    for (i, item) in rows.enumerated() { index[item] = i }
    return (rows, index)
}

/// HyMiRec: a lightweight transformer whose N_c learnable coarse queries attend over the whole
/// history before the recent window (the items' content, read from the store's codes), and a
/// refined transformer over [coarse interests + an indicator embedding] ++ [the last n behaviours +
/// positions] ++ [s learnable refined queries], whose outputs at the queries are the interests
/// r_1…r_s. Items are scored by max_j cos(r_j, key(item)), with key(item) the projected content.
/// Both transformers are bidirectional over their input (every input precedes the targets).
///
/// Each item a batch reads is projected once (content · W + b, in code space when the content is
/// codes: `ContentTable`) and tokens are rows of that table, which is the same as projecting each
/// token and far cheaper for long histories. A training step projects only the items it reads (the
/// history's, the recent tokens', the targets' and the negatives'), so its cost does not grow with
/// the catalogue; scoring projects every item. The last
/// lightweight layer computes only the coarse queries' rows (the history's outputs there are unused).
public final class HyMiRec {
    public let configuration: HyMiRecConfiguration
    /// Items N; the content table has N + 1 rows, row 0 being padding.
    public let itemCount: Int
    /// The frozen content of items 0…N (row 0 zeros): float32 rows or the store's codes.
    public let contentOfItems: ContentTable
    /// The lightweight recommender's parameters.
    struct Lightweight {
        /// Content → lightweight width.
        let projection: TransformerBlock.Linear
        let queries: Tensor
        let inputNorm: TransformerBlock.Norm
        let blocks: [TransformerBlock]
        /// Coarse interests → refined width.
        let output: TransformerBlock.Linear
    }
    /// Content → refined width (the refined tokens and the item keys).
    let itemProjection: TransformerBlock.Linear
    /// Item-ID table [N + 1, d] (with `itemIDs`).
    let idTable: Tensor?
    /// nil without the lightweight recommender; the indicator also without the indicator embedding.
    let lightweight: Lightweight?
    let indicatorEmbedding: Tensor?
    let refinedQueryTable: Tensor, recentPositions: Tensor
    let refinedBlocks: [TransformerBlock]
    let inputNorm: TransformerBlock.Norm

    /// - Parameters:
    ///   - content: the content of items 0…N: the store's codes (read through the code-space input
    ///     layer) or float32 rows.
    public init(configuration: HyMiRecConfiguration, itemCount: Int, content: ContentTable?, seed: UInt64)
        throws(ModelError)
    {
        try configuration.validate()
        guard itemCount >= 1 else { throw .invalidConfiguration("a model needs at least one item") }
        guard let content, content.rowCount == itemCount + 1 else {
            throw .invalidConfiguration("HyMiRec needs the content of \(itemCount) items")
        }
        var c = configuration
        c.negatives = min(c.negatives, itemCount)  // any count from N on means every item once
        self.configuration = c
        self.itemCount = itemCount
        self.contentOfItems = content
        let contentDimension = content.dimension
        let initializer = ParameterInitializer(seed: seed, standardDeviation: Double(c.initializerRange))
        let normal = initializer.normal as ([Int]) -> Tensor, constant = ParameterInitializer.constant
        let d = c.width, lw = c.lightweightWidth
        itemProjection = (normal([contentDimension, d]), constant(d, 0))
        idTable = c.itemIDs ? normal([itemCount + 1, d]) : nil
        if c.lightweight {
            lightweight = Lightweight(
                projection: (normal([contentDimension, lw]), constant(lw, 0)), queries: normal([c.coarseQueries, lw]),
                inputNorm: (constant(lw, 1), constant(lw, 0)),
                blocks: (0..<c.lightweightLayers).map { _ in
                    TransformerBlock.initialised(width: lw, innerSize: c.lightweightInnerSize, normal: normal)
                },
                output: (normal([lw, d]), constant(d, 0)))
            indicatorEmbedding = c.indicator ? normal([1, d]) : nil
        } else {
            lightweight = nil
            indicatorEmbedding = nil
        }
        refinedQueryTable = normal([c.interests, d])
        recentPositions = normal([c.recent, d])
        refinedBlocks = (0..<c.refinedLayers).map { _ in TransformerBlock.initialised(width: d, innerSize: c.innerSize, normal: normal) }
        inputNorm = (constant(d, 1), constant(d, 0))
    }

    /// Initialises the refined recommender from a pretrained BERT-style encoder (all-MiniLM-L6-v2):
    /// refined layer l gets the encoder's layer l, the recent positions get the encoder's first n
    /// position embeddings plus its token-type-0 embedding, and the refined input norm gets the
    /// embedding layer norm. The lightweight recommender, the projections and the queries stay random.
    /// - Throws: `ModelError.invalidConfiguration` when the encoder's width, heads, feed-forward size,
    ///   depth or positions do not fit.
    public func loadPretrained(from encoder: BertEncoder) throws(ModelError) {
        let c = configuration
        try TransformerBlock.loadPretrained(
            refinedBlocks, positions: recentPositions, inputNorm: inputNorm, heads: c.heads, innerSize: c.innerSize,
            positionsName: "recent", from: encoder)
    }

    /// Every trainable tensor with its checkpoint name, in a fixed order.
    public var namedParameters: [(name: String, tensor: Tensor)] {
        var out: [(String, Tensor)] = [("items.weight", itemProjection.weight), ("items.bias", itemProjection.bias)]
        if let idTable { out.append(("item_ids", idTable)) }
        if let l = lightweight {
            out += [
                ("lightweight.items.weight", l.projection.weight), ("lightweight.items.bias", l.projection.bias),
                ("lightweight.queries", l.queries), ("lightweight.input_norm.gamma", l.inputNorm.gamma),
                ("lightweight.input_norm.beta", l.inputNorm.beta),
            ]
            for (i, b) in l.blocks.enumerated() { out += b.namedParameters(prefix: "lightweight.\(i).") }
            out += [("lightweight.output.weight", l.output.weight), ("lightweight.output.bias", l.output.bias)]
        }
        if let indicatorEmbedding { out.append(("indicator", indicatorEmbedding)) }
        out += [
            ("refined_queries", refinedQueryTable), ("recent_positions", recentPositions), ("input_norm.gamma", inputNorm.gamma),
            ("input_norm.beta", inputNorm.beta),
        ]
        for (i, b) in refinedBlocks.enumerated() { out += b.namedParameters(prefix: "refined.\(i).") }
        return out
    }

    /// Every item's projected content (plus its ID embedding with `itemIDs`), [N + 1, d] (row 0,
    /// padding, included).
    func projectedItems(_ t: Tape) -> Tensor {
        let projected = contentOfItems.linear(t, itemProjection.weight, bias: itemProjection.bias)
        return idTable.map { t.add(projected, $0) } ?? projected
    }

    /// The projected content (plus ID embedding) of items `rows`, [rows.count, d].
    func projectedItems(_ t: Tape, rows: [Int]) -> Tensor {
        let projected = contentOfItems.linear(t, itemProjection.weight, bias: itemProjection.bias, rows: rows)
        return idTable.map { t.add(projected, t.embedding($0, ids: rows)) } ?? projected
    }

    /// Every item's key, L2-normalised: [N + 1, d] (row 0, padding, included).
    public func itemKeys(_ t: Tape) -> Tensor { t.l2Normalize(projectedItems(t)) }

    /// The refined interests of a batch, [rows · s, d] (row r's interests are rows r·s…r·s + s − 1).
    /// - Parameter projected: `projectedItems(t)`, the table tokens are read from.
    public func interests(_ t: Tape, _ batch: HyMiRecBatch, projected: Tensor, training: Bool) -> Tensor {
        let c = configuration, d = c.width, b = batch.rows
        let dropout = training ? c.dropout : 0
        /// Layer norm, then dropout, of x [rows, width].
        func normalise(_ x: Tensor, _ norm: TransformerBlock.Norm) -> Tensor {
            t.dropout(t.layerNorm(x, gamma: norm.gamma, beta: norm.beta, epsilon: c.layerNormEpsilon), probability: dropout)
        }
        /// The blocks over x [b · length, width]; the last block computes only the last `lastRows`
        /// positions of each row, and the result is [b · lastRows, width].
        func run(_ blocks: [TransformerBlock], _ x: Tensor, length: Int, width: Int, heads: Int, mask: [Bool], lastRows: Int) -> Tensor {
            var y = t.reshape(x, [b, length, width])
            for (i, block) in blocks.enumerated() {
                y = block(
                    t, y, heads: heads, keyMask: mask, causal: false, hiddenDropout: dropout, attentionDropout: dropout,
                    epsilon: c.layerNormEpsilon, lastRows: i == blocks.count - 1 ? lastRows : nil)
            }
            return t.reshape(y, [b * lastRows, width])
        }
        let nc = c.coarseQueries, s = c.interests
        func perRow(_ table: Tensor, _ n: Int) -> Tensor {
            t.reshape(t.embedding(table, ids: (0..<b).flatMap { _ in Array(0..<n) }), [b, n, table.shape[1]])
        }
        // The refined input, as [b, length, d] parts concatenated along the sequence, with their masks.
        var parts: [Tensor] = [], masks: [[Bool]] = []
        if let l = lightweight {
            // Lightweight: [history ++ coarse queries], bidirectional; its outputs at the queries,
            // projected to the refined width.
            let lw = c.lightweightWidth, lh = batch.historyLength, length = lh + nc
            let queries = perRow(l.queries, nc)
            // The history's distinct items only, [m, lw]; tokens are rows of that table.
            let (items, index) = localTable(batch.history)
            let history = contentOfItems.linear(t, l.projection.weight, bias: l.projection.bias, rows: items)
            let tokens = batch.history.map { index[$0]! }
            let input = lh > 0 ? t.concatSequence([t.reshape(t.embedding(history, ids: tokens), [b, lh, lw]), queries]) : queries
            var mask = [Bool](repeating: true, count: b * length)
            for r in 0..<b { for p in 0..<lh { mask[r * length + p] = batch.historyMask[r * lh + p] } }
            let x = normalise(t.reshape(input, [b * length, lw]), l.inputNorm)
            let out = run(l.blocks, x, length: length, width: lw, heads: c.lightweightHeads, mask: mask, lastRows: nc)
            var coarse = t.linear(out, l.output.weight, bias: l.output.bias)
            if let indicatorEmbedding { coarse = t.add(coarse, t.reshape(indicatorEmbedding, [d])) }
            parts.append(t.reshape(coarse, [b, nc, d]))
            masks.append([Bool](repeating: true, count: b * nc))
        }
        let lr = batch.recentLength
        let recent = t.add(t.embedding(projected, ids: batch.recent), t.embedding(recentPositions, ids: batch.positions(c.recentPositionOrder)))
        parts.append(t.reshape(recent, [b, lr, d]))
        masks.append(batch.recentMask)
        parts.append(perRow(refinedQueryTable, s))
        masks.append([Bool](repeating: true, count: b * s))
        let lengths = parts.map { $0.shape[1] }, length = lengths.reduce(0, +)
        var mask: [Bool] = []
        mask.reserveCapacity(b * length)
        for r in 0..<b { for (k, l) in lengths.enumerated() { mask += masks[k][(r * l)..<((r + 1) * l)] } }
        let x = normalise(t.reshape(t.concatSequence(parts), [b * length, d]), inputNorm)
        return run(refinedBlocks, x, length: length, width: d, heads: c.heads, mask: mask, lastRows: s)
    }

    /// The refined interests of a batch (no dropout), each L2-normalised: [rows · s, d].
    public func interests(_ batch: HyMiRecBatch, threads: Int = Tape.defaultThreads) -> [Float] {
        let t = Tape(recording: false, threads: threads)
        return t.l2Normalize(interests(t, batch, projected: projectedItems(t), training: false)).values
    }
}

extension HyMiRec: SequentialRecommender {
    public static var kind: String { "hymirec" }
    /// Models trained before `recentPositionOrder` existed numbered positions oldest first.
    public static var fieldsAddedLater: [String: String] { ["recentPositionOrder": RecentPositionOrder.oldestFirst.rawValue] }
    public static func readsContent(_ configuration: HyMiRecConfiguration) -> Bool { true }
    public var content: ContentTable? { contentOfItems }

    public func split(_ data: SequenceDataset) -> WindowSplit { WindowSplit(data, window: configuration.window) }

    /// DMIL's loss on a batch of window examples: the interests of each example, its window targets
    /// clustered and matched to them (`DMILPlan`, on detached values), and InfoNCE of each target
    /// against its matched interest with `negatives` items drawn uniformly from the vocabulary by `rng`.
    public func loss(_ t: Tape, _ examples: [WindowExample], in data: SequenceDataset, rng: inout SplitMix64) -> Tensor {
        let c = configuration, d = c.width
        let batch = HyMiRecBatch(examples.map { (user: $0.user, cut: $0.cut) }, in: data, configuration: c)
        let targetItems = examples.flatMap { e in e.targets.map { Int(data.users[e.user].items[$0]) } }
        let negatives = Self.negatives(c.negatives, itemCount: itemCount, rng: &rng)
        // Only the items this step reads are projected: the recent tokens (padding included), the
        // targets and the negatives, as a local table.
        let (items, index) = localTable(batch.recent + targetItems + negatives)
        let keys = projectedItems(t, rows: items)  // dmilLoss normalises the rows it reads
        let r = interests(t, batch.renumberingRecent(index), projected: keys, training: true)
        // The plan clusters the targets' keys under cosine (so their norm does not matter).
        let keyValues = keys.values
        let plan = DMILPlan(
            interests: r.values, targets: examples.map { e in e.targets.flatMap { p in
                let row = index[Int(data.users[e.user].items[p])]!
                return Array(keyValues[(row * d)..<((row + 1) * d)])
            } }, interestsPerRow: c.interests, dimension: d, iterations: c.clusterIterations, rule: c.matching)
        return t.dmilLoss(
            interests: r, plan: plan, keys: keys, targetItems: targetItems.map { index[$0]! }, negativeItems: negatives.map { index[$0]! },
            temperature: c.temperature)
    }

    /// Batches of similar history length, so that the lightweight recommender pads little: the
    /// shuffled order is cut into runs of 32 batches, each run sorted by the length of history its
    /// examples read (a stable sort, so ties keep the shuffle) and cut into batches, and the batches
    /// of the whole epoch are then shuffled. On MovieLens-100K this reads about 1.2× the history
    /// tokens instead of 8.6× with batches in shuffled order.
    public func batches(_ order: [Int], of examples: [WindowExample], in data: SequenceDataset, batchSize: Int, rng: inout SplitMix64)
        -> [ArraySlice<Int>]
    {
        let c = configuration
        guard c.lightweight else {
            return order.consecutive(batchSize)
        }
        func historyLength(_ i: Int) -> Int { min(c.maxHistory, max(0, examples[i].cut - c.recent)) }
        var out: [ArraySlice<Int>] = []
        for run in order.consecutive(32 * batchSize) {
            let sorted = run.enumerated()
                .sorted { (historyLength($0.element), $0.offset) < (historyLength($1.element), $1.offset) }.map(\.element)
            out += sorted.consecutive(batchSize)
        }
        rng.partialShuffle(&out, count: out.count)
        return out
    }

    /// A step's negatives: `count` items drawn uniformly (with replacement) from 1…N, or, when
    /// `count` ≥ N, every item once (InfoNCE then becomes a softmax over the whole catalogue, as
    /// SASRec's loss is; nothing is drawn).
    public static func negatives(_ count: Int, itemCount: Int, rng: inout SplitMix64) -> [Int] {
        count >= itemCount ? Array(1...itemCount) : (0..<count).map { _ in 1 + Int(rng.next() % UInt64(itemCount)) }
    }

    /// Each example's score of every item, max_j cos(r_j, key(item)): [examples × (N + 1)] (column 0,
    /// padding, included), without dropout.
    public func scores(_ examples: [(user: Int, cut: Int)], in data: SequenceDataset, threads: Int = Tape.defaultThreads) -> [Float] {
        let s = configuration.interests
        let all = interestScores(examples, in: data, threads: threads).scores  // [b · s, N + 1]
        let n = itemCount + 1
        var out = [Float](repeating: -.infinity, count: examples.count * n)
        for row in 0..<examples.count {
            for j in 0..<s {
                let base = (row * s + j) * n
                for i in 0..<n { out[row * n + i] = max(out[row * n + i], all[base + i]) }
            }
        }
        return out
    }

    /// Each example's interests (L2-normalised, [examples · s, d]) and every item's score under each
    /// of them, cos(r_j, key(item)): [examples · s, N + 1] (column 0, padding, included), without dropout.
    func interestScores(_ examples: [(user: Int, cut: Int)], in data: SequenceDataset, threads: Int) -> (interests: [Float], scores: [Float]) {
        let t = Tape(recording: false, threads: threads)
        let batch = HyMiRecBatch(examples, in: data, configuration: configuration)
        let projected = projectedItems(t)
        let r = t.l2Normalize(interests(t, batch, projected: projected, training: false))
        return (r.values, t.matmul(r, t.l2Normalize(projected), transposeB: true).values)
    }

    public func scoresAfterHistory(of users: [Int], in data: SequenceDataset, threads: Int) -> [Float] {
        scores(users.map { (user: $0, cut: data.users[$0].count) }, in: data, threads: threads)
    }

    /// Examples scored at once: `batchSize`, or fewer when more than one lightweight layer attends
    /// over whole histories (whose attention weights grow with the square of their length).
    func evaluationBatch(_ batchSize: Int) -> Int {
        configuration.lightweight && configuration.lightweightLayers > 1 ? min(batchSize, 64) : batchSize
    }

    /// Full-ranking metrics of examples with one target each (validation and test: the behaviour at
    /// `cut`), every item ranked.
    public func targetRanks(_ examples: [WindowExample], in data: SequenceDataset, batchSize: Int = 256, threads: Int = Tape.defaultThreads)
        -> [Int]
    {
        RankingMetrics.ranks(examples, items: itemCount + 1, batchSize: evaluationBatch(batchSize)) { part in
            (scores(part.map { (user: $0.user, cut: $0.cut) }, in: data, threads: threads), part.map { Int(data.users[$0.user].items[$0.cut]) })
        }
    }
}
