import SheafNN
import SheafRandom
import SheafText

/// CHIME's compression model (Bai et al.): every behaviour becomes one token (IAM), a causal
/// transformer reads the whole history (IRM) and gives an interest representation h_t at every
/// position, trained with an immediate and a holistic contrastive loss. Every field is stored in
/// checkpoints.
public struct CHIMEConfiguration: Codable, Sendable, Equatable {
    public typealias Initialization = LayerInitialization

    /// Model width d (MiniLM: 384).
    public var width = 384
    public var heads = 12
    /// Transformer layers of the IRM (1…6 with MiniLM).
    public var layers = 2
    /// Width of the feed-forward layer (GELU; MiniLM: 1536).
    public var innerSize = 1536
    /// Behaviours the IRM reads at once (at most the pretrained model's 512 positions). Training reads
    /// the `maxLength` behaviours before a cut point; inference cuts a longer history into consecutive
    /// windows of `maxLength` from its first behaviour, each read on its own.
    public var maxLength = 256
    /// Output width of the GLU projector of the content embeddings.
    public var contentWidth = 256
    /// Adds a learned item-ID embedding to each token and key (off by default: cold items have none).
    public var itemIDs = false
    /// Label buckets: a label is rounded to the nearest integer and clamped to 0…labelBuckets − 1.
    public var labelBuckets = 8
    /// Action buckets: codes ≥ actionBuckets − 1 share the last.
    public var actionBuckets = 16
    /// Time-gap buckets: 0 for a history's first behaviour or a gap ≤ 0, else 1 + ⌊log₂ gap⌋, clamped to
    /// gapBuckets − 1 (in the store's time unit: 32 buckets reach 2³⁰ s, 34 years, in seconds).
    public var gapBuckets = 32
    /// Dropout on the tokens, the attention weights and the attention and feed-forward outputs.
    public var dropout: Float = 0.1
    public var layerNormEpsilon: Float = 1e-12
    /// Standard deviation of the normal initialisation (biases 0, norms 1).
    public var initializerRange: Float = 0.02
    public var initialization: Initialization = .random
    /// InfoNCE temperature τ: logits are cosine similarities divided by τ.
    public var temperature: Float = 0.1
    /// Loss = (1 − w)·immediate + w·holistic.
    public var holisticWeight: Float = 0.5
    /// Future behaviours with a label ≥ this are the holistic loss's positives (MovieLens: rating ≥ 4)…
    public var positiveLabel: Float = 4
    /// …and those with a label ≤ this its own negatives (rating ≤ 2); labels between are left out.
    public var negativeLabel: Float = 2
    /// Future behaviours after a cut point that the holistic loss matches against.
    public var futureLength = 64

    public init() {}

    /// - Throws: `ModelError.invalidConfiguration` naming the field.
    public func validate() throws(ModelError) {
        func fail(_ why: String) -> ModelError { .invalidConfiguration(why) }
        guard width >= 1, heads >= 1, width % heads == 0 else { throw fail("width \(width) must be a positive multiple of heads \(heads)") }
        guard layers >= 1, innerSize >= 1, contentWidth >= 1 else { throw fail("layers, innerSize and contentWidth must be ≥ 1") }
        guard maxLength >= 2 else { throw fail("maxLength must be ≥ 2") }
        guard labelBuckets >= 1, actionBuckets >= 1, gapBuckets >= 2 else { throw fail("labelBuckets, actionBuckets ≥ 1 and gapBuckets ≥ 2") }
        guard (0..<1).contains(dropout) else { throw fail("dropout must be in [0, 1)") }
        guard layerNormEpsilon > 0, initializerRange > 0 else { throw fail("layerNormEpsilon and initializerRange must be > 0") }
        guard temperature > 0, temperature.isFinite else { throw fail("the temperature must be > 0") }
        guard (0...1).contains(holisticWeight) else { throw fail("holisticWeight must be in [0, 1]") }
        guard positiveLabel.isFinite, negativeLabel.isFinite, negativeLabel < positiveLabel else {
            throw fail("negativeLabel \(negativeLabel) must be below positiveLabel \(positiveLabel)")
        }
        guard futureLength >= 1 else { throw fail("futureLength must be ≥ 1") }
    }

    /// The label bucket of `label` (NaN → 0).
    public func labelBucket(_ label: Float) -> Int { Self.labelBucket(label, buckets: labelBuckets) }

    /// A label rounded to the nearest integer and clamped to 0…buckets − 1 (NaN and −∞ → 0, +∞ → the last).
    public static func labelBucket(_ label: Float, buckets: Int) -> Int {
        guard label.isFinite else { return label == .infinity ? buckets - 1 : 0 }
        return min(buckets - 1, max(0, Int(label.rounded())))
    }

    /// The action bucket of `action`.
    public func actionBucket(_ action: UInt16) -> Int { min(actionBuckets - 1, Int(action)) }

    /// The bucket of the time since the previous behaviour (nil: the history's first behaviour).
    public func gapBucket(_ gap: Int64?) -> Int {
        guard let gap, gap > 0 else { return 0 }
        return min(gapBuckets - 1, 1 + (63 - gap.leadingZeroBitCount))
    }
}

/// A batch of CHIME examples: one window of a user's history per row, left-aligned and padded at the
/// end, the item after each position (immediate loss) and the future behaviours after the window
/// (holistic loss), with items mapped to the rows of the batch's own key table.
public struct CHIMEBatch: Sendable {
    /// Rows and padded window length.
    public let rows: Int, length: Int
    public var lengths: [Int]
    /// rows × length: dense item indices (0 = padding), label, action and gap buckets, key mask.
    var tokenItems: [Int], labelBuckets: [Int], actionBuckets: [Int], gapBuckets: [Int]
    var keyMask: [Bool]
    /// rows × length × side width.
    var sideFeatures: [Float]
    /// The distinct items the batch's tokens, next items and futures refer to; `local` maps dense
    /// index → row of `items`.
    var items: [Int]
    /// Per real position (row-major over rows, then positions): its flat index r·length + p and the
    /// local row of its next item.
    var positions: [Int], nextItems: [Int]
    /// The future behaviours: the row they belong to, their local item row, their label.
    var futureRow: [Int], futureItem: [Int], futureLabel: [Float]
    /// Per token, the local row of its item (padding → 0, never read as a key).
    var tokenLocal: [Int]

    /// - Parameters:
    ///   - examples: (user index, cut c): the window is the last `maxLength` behaviours before c; the
    ///     futures are behaviours c…c + futureLength − 1 (those before the end of the user's sequence).
    public init(_ examples: [(user: Int, cut: Int)], in data: SequenceDataset, configuration c: CHIMEConfiguration) {
        precondition(!examples.isEmpty, "an empty CHIME batch")
        let windows = examples.map { (start: max(0, $0.cut - c.maxLength), cut: $0.cut, user: $0.user) }
        rows = examples.count
        length = windows.map { $0.cut - $0.start }.max()!
        precondition(length >= 1, "every CHIME example needs at least one behaviour before its cut")
        let total = rows * length, side = data.sideFeatureWidth
        tokenItems = [Int](repeating: 0, count: total)
        labelBuckets = [Int](repeating: 0, count: total)
        actionBuckets = [Int](repeating: 0, count: total)
        gapBuckets = [Int](repeating: 0, count: total)
        keyMask = [Bool](repeating: false, count: total)
        sideFeatures = [Float](repeating: 0, count: total * side)
        lengths = []
        positions = []
        nextItems = []
        futureRow = []
        futureItem = []
        futureLabel = []
        var local: [Int: Int] = [:]
        var items: [Int] = []
        func row(of item: Int32) -> Int {
            if let r = local[Int(item)] { return r }
            local[Int(item)] = items.count
            items.append(Int(item))
            return items.count - 1
        }
        var tokenLocal = [Int](repeating: 0, count: total)
        for (r, w) in windows.enumerated() {
            let s = data.users[w.user]
            lengths.append(w.cut - w.start)
            for (p, i) in (w.start..<w.cut).enumerated() {
                let f = r * length + p
                tokenItems[f] = Int(s.items[i])
                tokenLocal[f] = row(of: s.items[i])
                labelBuckets[f] = c.labelBucket(s.labels[i])
                actionBuckets[f] = c.actionBucket(s.actions[i])
                gapBuckets[f] = c.gapBucket(i > 0 ? s.timestamps[i] - s.timestamps[i - 1] : nil)
                keyMask[f] = true
                for k in 0..<side { sideFeatures[f * side + k] = s.sideFeatures[i * side + k] }
                if i + 1 < s.count {
                    positions.append(f)
                    nextItems.append(row(of: s.items[i + 1]))
                }
            }
            for i in w.cut..<min(s.count, w.cut + c.futureLength) {
                futureRow.append(r)
                futureItem.append(row(of: s.items[i]))
                futureLabel.append(s.labels[i])
            }
        }
        self.items = items
        self.tokenLocal = tokenLocal
    }

    /// The holistic loss's targets: per row, its futures labelled ≥ `positiveLabel` are positives;
    /// its futures labelled ≤ `negativeLabel` and every other row's futures are negatives; keys are
    /// items, so another row's behaviour on the same item is never a positive's negative.
    func holisticTargets(_ c: CHIMEConfiguration) -> ContrastiveTargets {
        var positives = [[Int]](repeating: [], count: rows)
        var ownNegatives = [[Int]](repeating: [], count: rows)
        for (j, r) in futureRow.enumerated() {
            if futureLabel[j] >= c.positiveLabel { positives[r].append(j) } else if futureLabel[j] <= c.negativeLabel { ownNegatives[r].append(j) }
        }
        let negatives = (0..<rows).map { r in ownNegatives[r] + futureRow.indices.filter { futureRow[$0] != r } }
        return ContrastiveTargets(positives: positives, negatives: negatives, columnKeys: futureItem)
    }
}

/// The two losses of a batch, and what they were computed over.
public struct CHIMELosses {
    /// (1 − w)·immediate + w·holistic, to back-propagate.
    public let total: Tensor
    public let immediate: Float
    /// nil when no row of the batch has a positive future behaviour.
    public let holistic: Float?
    /// Terms each loss averaged: positions with a next behaviour, rows with a positive future.
    public let immediateTerms: Int, holisticRows: Int
}

/// The CHIME network: IAM (tokens from content, label, action, time gap, side features and
/// optionally item ids), IRM (a causal post-LN transformer) and the item keys both losses match
/// against.
public final class CHIME {
    public let configuration: CHIMEConfiguration
    /// Width of the content embeddings and of the side features.
    public let contentDimension: Int, sideFeatureWidth: Int
    /// Items N of the ID table (0 without item ids).
    public let itemCount: Int

    /// GLU projector: value and gate [D, c] with biases.
    let gluValue: TransformerBlock.Linear, gluGate: TransformerBlock.Linear
    /// IAM: the content part's projection [c, d], the lookup tables [buckets, d] (each a concatenated
    /// part times its slice of the projection, folded into one table), side features [S, d], bias [d].
    let contentToToken: Tensor
    let labelTable: Tensor, actionTable: Tensor, gapTable: Tensor
    let sideProjection: Tensor?
    let tokenBias: Tensor
    /// Item-ID table [N + 1, d] (with `itemIDs`).
    let itemTable: Tensor?
    /// IRM: positions [maxLength, d], input norm, layers.
    let positions: Tensor
    let inputNorm: TransformerBlock.Norm
    let blocks: [TransformerBlock]
    /// Item keys: the GLU output projected to d.
    let keyProjection: TransformerBlock.Linear

    /// A randomly initialised model (`configuration.initialization` is applied by `loadPretrained`).
    public init(configuration: CHIMEConfiguration, contentDimension: Int, sideFeatureWidth: Int = 0, itemCount: Int = 0, seed: UInt64)
        throws(ModelError)
    {
        try configuration.validate()
        guard contentDimension >= 1 else { throw .invalidConfiguration("CHIME needs content embeddings (dimension ≥ 1)") }
        guard sideFeatureWidth >= 0 else { throw .invalidConfiguration("negative side-feature width") }
        if configuration.itemIDs, itemCount < 1 { throw .invalidConfiguration("item ids need the item count") }
        let c = configuration
        self.configuration = c
        self.contentDimension = contentDimension
        self.sideFeatureWidth = sideFeatureWidth
        self.itemCount = c.itemIDs ? itemCount : 0
        let initializer = ParameterInitializer(seed: seed, standardDeviation: Double(c.initializerRange))
        let normal = initializer.normal as ([Int]) -> Tensor, constant = ParameterInitializer.constant
        let (d, cw) = (c.width, c.contentWidth)
        gluValue = (normal([contentDimension, cw]), constant(cw, 0))
        gluGate = (normal([contentDimension, cw]), constant(cw, 0))
        contentToToken = normal([cw, d])
        labelTable = normal([c.labelBuckets, d])
        actionTable = normal([c.actionBuckets, d])
        gapTable = normal([c.gapBuckets, d])
        sideProjection = sideFeatureWidth > 0 ? normal([sideFeatureWidth, d]) : nil
        tokenBias = constant(d, 0)
        itemTable = c.itemIDs ? normal([itemCount + 1, d]) : nil
        positions = normal([c.maxLength, d])
        inputNorm = (constant(d, 1), constant(d, 0))
        blocks = (0..<c.layers).map { _ in TransformerBlock.initialised(width: d, innerSize: c.innerSize, normal: normal) }
        keyProjection = (normal([cw, d]), constant(d, 0))
    }

    /// Every trainable tensor with its checkpoint name, in a fixed order.
    public var namedParameters: [(name: String, tensor: Tensor)] {
        var out: [(String, Tensor)] = [
            ("iam.glu.value.weight", gluValue.weight), ("iam.glu.value.bias", gluValue.bias),
            ("iam.glu.gate.weight", gluGate.weight), ("iam.glu.gate.bias", gluGate.bias),
            ("iam.content.weight", contentToToken), ("iam.labels", labelTable), ("iam.actions", actionTable),
            ("iam.gaps", gapTable),
        ]
        if let sideProjection { out.append(("iam.side.weight", sideProjection)) }
        out.append(("iam.bias", tokenBias))
        if let itemTable { out.append(("iam.items", itemTable)) }
        out += [("irm.positions", positions), ("irm.input_norm.gamma", inputNorm.gamma), ("irm.input_norm.beta", inputNorm.beta)]
        for (i, b) in blocks.enumerated() { out += b.namedParameters(prefix: "irm.layers.\(i).") }
        out += [("keys.weight", keyProjection.weight), ("keys.bias", keyProjection.bias)]
        return out
    }

    /// Weight matrices and tables (which AdamW may decay), and biases and norms (which it never does).
    public var parameterGroups: (decayed: [Tensor], undecayed: [Tensor]) {
        let all = namedParameters
        return (all.filter { $0.tensor.rank == 2 }.map(\.tensor), all.filter { $0.tensor.rank != 2 }.map(\.tensor))
    }

    /// GLU(x) = (x·V + b_v) ⊙ σ(x·G + b_g) of the content rows `ids` ([R, D] → [R, c]), or of every
    /// row when `ids` is nil; in code space when the content is the store's codes.
    func glu(_ t: Tape, _ content: ContentTable, rows ids: [Int]?) -> Tensor {
        func linear(_ p: (weight: Tensor, bias: Tensor)) -> Tensor {
            ids.map { content.linear(t, p.weight, bias: p.bias, rows: $0) } ?? content.linear(t, p.weight, bias: p.bias)
        }
        return t.mul(linear(gluValue), t.sigmoid(linear(gluGate)))
    }

    /// The batch's item keys [I, d], L2-normalised, and the GLU output of its items.
    /// - Parameter content: the content table (row i = dense item i).
    func encodeItems(_ t: Tape, _ batch: CHIMEBatch, content: ContentTable) -> (keys: Tensor, projected: Tensor) {
        let g = glu(t, content, rows: batch.items)
        var keys = t.linear(g, keyProjection.weight, bias: keyProjection.bias)
        if let itemTable { keys = t.add(keys, t.embedding(itemTable, ids: batch.items)) }
        return (t.l2Normalize(keys), g)
    }

    /// Every item's key, L2-normalised: [N + 1, d] for a content table of N + 1 rows (row i = dense
    /// item i; row 0 is padding). The holistic loss scores a user against an item as
    /// cos(h, key) / τ, so these keys with a user's h_t are CHIME's own item scores.
    public func itemKeys(content: ContentTable, threads: Int = Tape.defaultThreads) -> Tensor {
        let t = Tape(recording: false, threads: threads)
        var keys = t.linear(glu(t, content, rows: nil), keyProjection.weight, bias: keyProjection.bias)
        if let itemTable {
            precondition(itemTable.shape[0] == content.rowCount, "an item-ID model of \(itemTable.shape[0]) rows for \(content.rowCount) items")
            keys = t.add(keys, itemTable)
        }
        return t.l2Normalize(keys)
    }

    /// h_t at every position of the batch: [rows · length, d] (padding rows hold values nobody reads).
    func hidden(_ t: Tape, _ batch: CHIMEBatch, itemContent g: Tensor, training: Bool) -> Tensor {
        let c = configuration
        let (b, l) = (batch.rows, batch.length)
        precondition(l <= c.maxLength, "a window of \(l) for a model of \(c.maxLength)")
        let dropout = training ? c.dropout : 0
        // IAM: concatenating the parts and projecting equals summing each part's projection; each
        // lookup table is its part's embedding already multiplied by its slice of the projection.
        var x = t.embedding(t.matmul(g, contentToToken), ids: batch.tokenLocal)
        x = t.add(x, t.embedding(labelTable, ids: batch.labelBuckets))
        x = t.add(x, t.embedding(actionTable, ids: batch.actionBuckets))
        x = t.add(x, t.embedding(gapTable, ids: batch.gapBuckets))
        if let sideProjection {
            x = t.add(x, t.matmul(Tensor(shape: [b * l, sideFeatureWidth], values: batch.sideFeatures), sideProjection))
        }
        if let itemTable { x = t.add(x, t.embedding(itemTable, ids: batch.tokenItems)) }
        return interests(t, t.add(x, tokenBias), rows: b, length: l, keyMask: batch.keyMask, dropout: dropout)
    }

    /// The IRM: tokens [rows · length, d] plus positions, layer norm, dropout, then the causal
    /// layers; h_t for every position, [rows · length, d].
    func interests(_ t: Tape, _ tokens: Tensor, rows b: Int, length l: Int, keyMask: [Bool], dropout: Float) -> Tensor {
        let c = configuration
        var x = t.add(tokens, t.embedding(positions, ids: (0..<b).flatMap { _ in Array(0..<l) }))
        x = t.dropout(t.layerNorm(x, gamma: inputNorm.gamma, beta: inputNorm.beta, epsilon: c.layerNormEpsilon), probability: dropout)
        x = t.reshape(x, [b, l, c.width])
        for block in blocks {
            x = block(
                t, x, heads: c.heads, keyMask: keyMask, causal: true, hiddenDropout: dropout, attentionDropout: dropout,
                epsilon: c.layerNormEpsilon)
        }
        return t.reshape(x, [b * l, c.width])
    }

    /// Both losses of a batch.
    /// - Parameter content: the content table, N + 1 rows (row i = dense item i).
    public func losses(_ t: Tape, _ batch: CHIMEBatch, content: ContentTable, training: Bool = true) -> CHIMELosses {
        let c = configuration
        let (keys, g) = encodeItems(t, batch, content: content)
        let h = hidden(t, batch, itemContent: g, training: training)
        let scale = 1 / c.temperature
        // Immediate: h_t against the next behaviour's item, every other item of the batch a negative.
        let queries = t.l2Normalize(t.embedding(h, ids: batch.positions))
        let immediate = t.contrastive(
            t.scale(t.matmul(queries, keys, transposeB: true), scale), ContrastiveTargets(positives: batch.nextItems.map { [$0] }))
        // Holistic: the representation at each window's last position against the future behaviours.
        let last = (0..<batch.rows).map { $0 * batch.length + batch.lengths[$0] - 1 }
        let users = t.l2Normalize(t.embedding(h, ids: last))
        let targets = batch.holisticTargets(c)
        let hasHolistic = !batch.futureRow.isEmpty && targets.positives.contains { !$0.isEmpty }
        var total = t.scale(immediate, 1 - c.holisticWeight)
        var holisticValue: Float?
        if hasHolistic {
            let futures = t.embedding(keys, ids: batch.futureItem)
            let holistic = t.contrastive(t.scale(t.matmul(users, futures, transposeB: true), scale), targets)
            holisticValue = holistic.scalar
            total = t.add(total, t.scale(holistic, c.holisticWeight))
        }
        return CHIMELosses(
            total: total, immediate: immediate.scalar, holistic: holisticValue, immediateTerms: batch.positions.count,
            holisticRows: hasHolistic ? targets.positives.filter { !$0.isEmpty }.count : 0)
    }
}

extension CHIME {
    /// Initialises the IRM from a pretrained BERT-style encoder (all-MiniLM-L6-v2, loaded with the
    /// encoder's own checks): layer l of the IRM gets the encoder's layer l (Linear weights transposed
    /// to [in, out]), the positions get the encoder's first `maxLength` position embeddings plus its
    /// token-type-0 embedding (which BERT adds to every token), and the input norm gets the
    /// embedding layer norm. Under the causal mask the layers are read as a decoder.
    ///
    /// - Throws: `ModelError.invalidConfiguration` when the encoder's width, heads, feed-forward size,
    ///   depth or positions do not fit this model.
    public func loadPretrained(from encoder: BertEncoder) throws(ModelError) {
        let c = configuration
        try TransformerBlock.loadPretrained(
            blocks, positions: positions, inputNorm: inputNorm, heads: c.heads, innerSize: c.innerSize, positionsName: "maxLength",
            from: encoder)
    }
}

extension CHIME {
    /// h_t for every behaviour of the given users of `data` (whole sequences; cut `data` first to
    /// leave behaviours out), without dropout, L2-normalised. A history longer than `maxLength` is
    /// read in consecutive windows of `maxLength` ending at its last behaviour (the oldest window may
    /// be shorter); each window is read on its own.
    ///
    /// - Parameters:
    ///   - content: the content table, N + 1 rows (row i = dense item i).
    ///   - rowsPerBatch: windows read at once (windows of similar length are batched together).
    /// - Returns: per user, count × width floats.
    public func representations(
        of users: [Int], in data: SequenceDataset, content: ContentTable, rowsPerBatch: Int = 32, threads: Int = Tape.defaultThreads
    ) -> [[Float]] {
        let c = configuration, d = c.width
        var windows: [(slot: Int, user: Int, cut: Int)] = []
        for (slot, u) in users.enumerated() {
            var cut = data.users[u].count
            while cut > 0 {
                windows.append((slot, u, cut))
                cut -= c.maxLength
            }
        }
        windows.sort { (min($0.cut, c.maxLength), $0.slot, $0.cut) < (min($1.cut, c.maxLength), $1.slot, $1.cut) }
        var out = users.map { [Float](repeating: 0, count: data.users[$0].count * d) }
        var inference = c
        inference.futureLength = 1  // nothing after a window's end is read: only its tokens matter here
        var start = 0
        while start < windows.count {
            let part = windows[start..<min(windows.count, start + max(1, rowsPerBatch))]
            let batch = CHIMEBatch(part.map { (user: $0.user, cut: $0.cut) }, in: data, configuration: inference)
            let t = Tape(recording: false, threads: threads)
            let g = glu(t, content, rows: batch.items)
            let h = t.l2Normalize(hidden(t, batch, itemContent: g, training: false)).values
            for (r, w) in part.enumerated() {
                let first = w.cut - batch.lengths[r]
                for p in 0..<batch.lengths[r] {
                    let src = (r * batch.length + p) * d, dst = (first + p) * d
                    for k in 0..<d { out[w.slot][dst + k] = h[src + k] }
                }
            }
            start += part.count
        }
        return out
    }
}
