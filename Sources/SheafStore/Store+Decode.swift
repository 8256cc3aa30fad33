import SheafCodebook

// The decode path in one room: how a read turns stored codes into float32 rows.
//
//   decodeItems / decodeHistory / decodeHistories
//     → item codes: the inline copies in history segments (one range scan per history), or one
//       items-table lookup per behaviour (`decodeFromItemsTable`)
//     → DecodeSink, which batches consecutive rows of one codebook
//     → Codebook.decodePacked → the C kernel (sheaf_decode_f32 / _f16).
//
// The same calls `through:` a `LinearProjection` (W: D × H, bias b) write ê · W + b instead, n × H:
// the sink decodes with the codebook's projected tables (`Codebook.projected(by:)`, T_l = C_l · W,
// cached per codebook and projection), the same kernel over rows of width H, never forming ê.

// MARK: - Decode options and report

/// How a decode treats items and behaviours that have no stored code.
public struct DecodeOptions: Sendable {
    /// What to do with items that have no code.
    public enum MissingItems: Sendable {
        /// Throw `StoreError.missingItems` listing them (the default: nothing is silently zero).
        case fail
        /// Write zero rows for them and list their rows in `DecodeReport.missingRows`.
        case zeroFill
    }

    /// Where a history decode takes item codes from.
    public enum CodeSource: Sendable {
        /// The copies kept inside history segments (one range scan per history), falling back to the
        /// items table for behaviours whose copy is absent or belongs to another codebook than required.
        case inline
        /// The items table, one lookup per behaviour (for comparison, and after items were re-coded).
        case itemsTable
    }

    /// What to do with items that have no code.
    public var missingItems: MissingItems = .fail
    /// When set, every code used must come from this codebook; an item coded with another one throws
    /// `StoreError.codebookMismatch`. When `nil`, each item decodes with the codebook it was coded with.
    public var requiredCodebook: UInt16? = nil
    /// Use non-temporal stores for the output (for large outputs that will not be read back at once).
    public var streamingStores: Bool = false
    /// Where history decodes take codes from.
    public var codeSource: CodeSource = .inline
    /// Which centroid table the decoder reads: `.float32` (the default, exact) or `.float16`, a
    /// half-precision copy that halves the centroid bytes read per row (see `CentroidPrecision`).
    public var centroidPrecision: CentroidPrecision = .float32

    public init(
        missingItems: MissingItems = .fail, requiredCodebook: UInt16? = nil, streamingStores: Bool = false,
        codeSource: CodeSource = .inline, centroidPrecision: CentroidPrecision = .float32
    ) {
        self.missingItems = missingItems
        self.requiredCodebook = requiredCodebook
        self.streamingStores = streamingStores
        self.codeSource = codeSource
        self.centroidPrecision = centroidPrecision
    }
}

/// What a decode did.
public struct DecodeReport: Sendable, Equatable {
    /// Rows written (count × D floats).
    public var rows: Int = 0
    /// Rows whose item had no code (zero-filled), ascending.
    public var missingRows: [Int] = []
    /// Item ids of those rows.
    public var missingItems: [UInt64] = []
    /// Lookups in the items table the decode needed (0 when history segments carried every code).
    public var itemLookups: Int = 0

    public init() {}
}

/// A decoded history: the behaviours and their reconstructed item embeddings.
public struct DecodedHistory: Sendable {
    /// The behaviours, in time order.
    public var history: History
    /// history.count × D floats, row i the embedding of behaviour i's item.
    public var embeddings: [Float]
    /// Missing items and lookups of the decode.
    public var report: DecodeReport
}

/// The decoded histories of several users, rows concatenated in user order.
public struct HistoryBatch: Sendable {
    /// One entry per requested user; `nil` when the user has no history.
    public var histories: [History?]
    /// users.count + 1 row offsets: user u's rows are rowOffsets[u]..<rowOffsets[u+1].
    public var rowOffsets: [Int]
    /// Missing items (rows are global rows of the batch) and lookups.
    public var report: DecodeReport
}

// MARK: - Decoding items

extension ReadTransaction {
    /// Rebuilds the embeddings of `ids` into a contiguous ids.count × D float32 buffer: ê = Σ_l α_l · c_l[b_l].
    ///
    /// - Parameter output: at least ids.count × D floats.
    /// - Throws: `StoreError.missingItems` (unless `options.missingItems == .zeroFill`),
    ///   `.codebookMismatch`, `.unknownCodebook`, `.corruptRecord`, `.bufferTooSmall`.
    @discardableResult
    public func decodeItems(
        _ ids: some Collection<UInt64>, into output: UnsafeMutableBufferPointer<Float>,
        options: DecodeOptions = DecodeOptions()
    ) throws -> DecodeReport {
        try decodeItems(ids, projection: nil, into: output, options: options)
    }

    /// Like `decodeItems(_:into:options:)`, returning a new ids.count × D array.
    public func decodeItems(_ ids: some Collection<UInt64>, options: DecodeOptions = DecodeOptions()) throws -> [Float] {
        try decodeItemsArray(ids, projection: nil, options: options)
    }

    /// The items' embeddings through a linear layer, ê · W + b, into ids.count × H floats, computed
    /// from the codes without forming ê (see `Codebook.projected(by:)`). A missing item's row
    /// (with `.zeroFill`) is b, the projection of a zero embedding.
    ///
    /// Within float32 rounding of `decodeItems` followed by `projection.apply` (the tables are
    /// products of D terms, summed over L levels instead of after them).
    /// - Throws: as `decodeItems(_:into:options:)`, and `StoreError.dimensionMismatch` when the
    ///   projection does not map the store's D; `CodebookError.invalidProjection` when a table overflows.
    @discardableResult
    public func decodeItems(
        _ ids: some Collection<UInt64>, through projection: LinearProjection, into output: UnsafeMutableBufferPointer<Float>,
        options: DecodeOptions = DecodeOptions()
    ) throws -> DecodeReport {
        try decodeItems(ids, projection: projection, into: output, options: options)
    }

    /// Like `decodeItems(_:through:into:options:)`, returning a new ids.count × H array.
    public func decodeItems(
        _ ids: some Collection<UInt64>, through projection: LinearProjection, options: DecodeOptions = DecodeOptions()
    ) throws -> [Float] {
        try decodeItemsArray(ids, projection: projection, options: options)
    }

    private func decodeItems(
        _ ids: some Collection<UInt64>, projection: LinearProjection?, into output: UnsafeMutableBufferPointer<Float>,
        options: DecodeOptions
    ) throws -> DecodeReport {
        let d = try rowWidth(projection)
        guard output.count >= ids.count * d else {
            throw StoreError.bufferTooSmall(needed: ids.count * d, available: output.count)
        }
        // No ids: nothing to write, and an empty buffer may have no base address.
        guard !ids.isEmpty, let base = output.baseAddress else { return DecodeReport() }
        var sink = DecodeSink(output: base, dimension: d, projection: projection, options: options)
        var report = DecodeReport()
        for (row, id) in ids.enumerated() {
            try decodeFromItemsTable(id, row: row, into: &sink, options: options, report: &report)
        }
        try sink.flush()
        report.rows = ids.count
        try throwIfMissingItemsRefused(report, options)
        return report
    }

    private func decodeItemsArray(_ ids: some Collection<UInt64>, projection: LinearProjection?, options: DecodeOptions) throws -> [Float] {
        let n = ids.count * (try rowWidth(projection))
        return try [Float](unsafeUninitializedCapacity: n) { buf, count in
            _ = try decodeItems(ids, projection: projection, into: buf, options: options)
            count = n
        }
    }

    /// The width of a decoded row: D, or H through a projection (whose input must be D).
    func rowWidth(_ projection: LinearProjection?) throws -> Int {
        guard let projection else { return store.dimension }
        guard projection.inputDimension == store.dimension else {
            throw StoreError.dimensionMismatch(stored: store.dimension, requested: projection.inputDimension)
        }
        return projection.outputDimension
    }

    /// Looks one item up and queues its code for decoding at `row` (or zero-fills and records it as missing).
    @inline(__always)
    func decodeFromItemsTable(
        _ id: UInt64, row: Int, into sink: inout DecodeSink, options: DecodeOptions, report: inout DecodeReport
    ) throws {
        report.itemLookups += 1
        guard let bytes = try bytes(store.tables.items, id) else {
            try sink.fillMissing(row: row)
            report.missingRows.append(row)
            report.missingItems.append(id)
            return
        }
        let (codebook, payload) = try parseItem(id, bytes)
        if let required = options.requiredCodebook, required != codebook.id {
            throw StoreError.codebookMismatch(item: id, expected: required, found: codebook.id)
        }
        try sink.add(row: row, codebook: codebook, packed: payload)
    }

    /// Throws `StoreError.missingItems` when the decode met items without codes and `options` say
    /// `.fail`; with `.zeroFill` their rows are already zero and listed in the report.
    func throwIfMissingItemsRefused(_ report: DecodeReport, _ options: DecodeOptions) throws {
        if options.missingItems == .fail, !report.missingItems.isEmpty {
            throw StoreError.missingItems(report.missingItems)
        }
    }
}

// MARK: - Decoding histories

extension ReadTransaction {
    /// Reads `user`'s behaviours and rebuilds their item embeddings, or returns `nil` when the user has no history.
    public func decodeHistory(
        user: UInt64, _ selection: HistorySelection = .all, options: DecodeOptions = DecodeOptions()
    ) throws -> DecodedHistory? {
        var embeddings: [Float] = []
        guard let (h, report) = try decodeHistory(user: user, selection, into: &embeddings, options: options) else {
            return nil
        }
        return DecodedHistory(history: h, embeddings: embeddings, report: report)
    }

    /// Reads `user`'s behaviours and rebuilds their item embeddings into `embeddings`, which is resized to
    /// count × D (reusing its capacity: pass the same array on every request to avoid allocation).
    ///
    /// Item codes come from the copies inside the history segments, so a history costs one range scan,
    /// not one lookup per behaviour; behaviours without a usable copy fall back to the items table.
    /// - Throws: `StoreError.missingItems` (unless zero-fill), `.codebookMismatch`, `.unknownCodebook`, `.corruptRecord`.
    public func decodeHistory(
        user: UInt64, _ selection: HistorySelection = .all, into embeddings: inout [Float],
        options: DecodeOptions = DecodeOptions()
    ) throws -> (History, DecodeReport)? {
        try decodeHistory(user: user, selection, projection: nil, into: &embeddings, options: options)
    }

    /// `user`'s behaviours and their item embeddings through a linear layer, ê · W + b, into
    /// `embeddings` (resized to count × H, capacity reused): the model inputs of a history straight
    /// from the codes (see `decodeItems(_:through:into:options:)` for missing items and errors).
    public func decodeHistory(
        user: UInt64, _ selection: HistorySelection = .all, through projection: LinearProjection,
        into embeddings: inout [Float], options: DecodeOptions = DecodeOptions()
    ) throws -> (History, DecodeReport)? {
        try decodeHistory(user: user, selection, projection: projection, into: &embeddings, options: options)
    }

    private func decodeHistory(
        user: UInt64, _ selection: HistorySelection, projection: LinearProjection?, into embeddings: inout [Float],
        options: DecodeOptions
    ) throws -> (History, DecodeReport)? {
        let width = try rowWidth(projection)
        guard let parts = try loadSegments(user: user, selection) else { return nil }
        resize(&embeddings, to: parts.reduce(0) { $0 + $1.range.count } * width)
        return try embeddings.withUnsafeMutableBufferPointer { out in
            try decode(parts, into: out, width: width, projection: projection, options: options)
        }
    }

    /// Reads `user`'s behaviours and decodes their item embeddings straight into `output` (count × D
    /// floats from its start; the rest is untouched), for callers that own their buffers (the C API).
    /// - Throws: `StoreError.bufferTooSmall` (before decoding anything) when `output` holds fewer than
    ///   count × D floats, and as `decodeHistory(user:_:into:options:)`.
    public func decodeHistory(
        user: UInt64, _ selection: HistorySelection = .all, into output: UnsafeMutableBufferPointer<Float>,
        options: DecodeOptions = DecodeOptions()
    ) throws -> (History, DecodeReport)? {
        try decodeHistory(user: user, selection, projection: nil, into: output, options: options)
    }

    /// `decodeHistory(user:_:into:options:)` through a linear layer: count × H floats of ê · W + b
    /// straight into `output` (the C API's projected read).
    /// - Throws: `StoreError.bufferTooSmall` (before decoding) or `.dimensionMismatch`, and as
    ///   `decodeHistory(user:_:through:into:options:)`.
    public func decodeHistory(
        user: UInt64, _ selection: HistorySelection = .all, through projection: LinearProjection,
        into output: UnsafeMutableBufferPointer<Float>, options: DecodeOptions = DecodeOptions()
    ) throws -> (History, DecodeReport)? {
        try decodeHistory(user: user, selection, projection: projection, into: output, options: options)
    }

    private func decodeHistory(
        user: UInt64, _ selection: HistorySelection, projection: LinearProjection?, into output: UnsafeMutableBufferPointer<Float>,
        options: DecodeOptions
    ) throws -> (History, DecodeReport)? {
        let width = try rowWidth(projection)
        guard let parts = try loadSegments(user: user, selection) else { return nil }
        let needed = parts.reduce(0) { $0 + $1.range.count } * width
        guard output.count >= needed else { throw StoreError.bufferTooSmall(needed: needed, available: output.count) }
        return try decode(parts, into: output, width: width, projection: projection, options: options)
    }

    /// Decodes loaded segment parts into `out` (at least count × width floats) and assembles the History.
    private func decode(
        _ parts: [(segment: HistorySegment, range: Range<Int>)], into out: UnsafeMutableBufferPointer<Float>, width: Int,
        projection: LinearProjection?, options: DecodeOptions
    ) throws -> (History, DecodeReport) {
        let n = parts.reduce(0) { $0 + $1.range.count }
        var h = History(sideFeatureWidth: store.sideFeatureWidth)
        h.reserveCapacity(n)
        var report = DecodeReport()
        if n > 0 {
            var sink = DecodeSink(output: out.baseAddress!, dimension: width, projection: projection, options: options)
            var row = 0
            for p in parts {
                try decode(p.segment, p.range, firstRow: row, into: &sink, options: options, report: &report)
                row += p.range.count
            }
            try sink.flush()
        }
        for p in parts { h.append(contentsOf: p.segment.history, range: p.range) }
        report.rows = n
        try throwIfMissingItemsRefused(report, options)
        return (h, report)
    }

    /// Decodes the histories of many users in one transaction (as a ranking request needs), rows
    /// concatenated in the order of `users` into `embeddings` (resized, capacity reused).
    public func decodeHistories(
        users: [UInt64], _ selection: HistorySelection = .all, into embeddings: inout [Float],
        options: DecodeOptions = DecodeOptions()
    ) throws -> HistoryBatch {
        try decodeHistories(users: users, selection, projection: nil, into: &embeddings, options: options)
    }

    /// The histories of many users through a linear layer, ê · W + b, rows of width H concatenated
    /// in the order of `users` (see `decodeHistory(user:_:through:into:options:)`).
    public func decodeHistories(
        users: [UInt64], _ selection: HistorySelection = .all, through projection: LinearProjection,
        into embeddings: inout [Float], options: DecodeOptions = DecodeOptions()
    ) throws -> HistoryBatch {
        try decodeHistories(users: users, selection, projection: projection, into: &embeddings, options: options)
    }

    private func decodeHistories(
        users: [UInt64], _ selection: HistorySelection, projection: LinearProjection?, into embeddings: inout [Float],
        options: DecodeOptions
    ) throws -> HistoryBatch {
        let width = try rowWidth(projection)
        var all: [[(segment: HistorySegment, range: Range<Int>)]?] = []
        all.reserveCapacity(users.count)
        var offsets = [0]
        for u in users {
            let parts = try loadSegments(user: u, selection)
            all.append(parts)
            offsets.append(offsets.last! + (parts?.reduce(0) { $0 + $1.range.count } ?? 0))
        }
        let n = offsets.last!
        resize(&embeddings, to: n * width)
        var report = DecodeReport()
        try embeddings.withUnsafeMutableBufferPointer { out in
            guard n > 0 else { return }
            var sink = DecodeSink(output: out.baseAddress!, dimension: width, projection: projection, options: options)
            for (u, parts) in all.enumerated() {
                var row = offsets[u]
                for p in parts ?? [] {
                    try decode(p.segment, p.range, firstRow: row, into: &sink, options: options, report: &report)
                    row += p.range.count
                }
            }
            try sink.flush()
        }
        report.rows = n
        try throwIfMissingItemsRefused(report, options)
        let histories: [History?] = all.map { parts in
            parts.map { ps in
                var h = History(sideFeatureWidth: store.sideFeatureWidth)
                for p in ps { h.append(contentsOf: p.segment.history, range: p.range) }
                return h
            }
        }
        return HistoryBatch(histories: histories, rowOffsets: offsets, report: report)
    }

    /// Queues the rows of `range` of a segment: inline code runs go straight to the kernel,
    /// the rest through the items table.
    private func decode(
        _ s: HistorySegment, _ range: Range<Int>, firstRow: Int, into sink: inout DecodeSink,
        options: DecodeOptions, report: inout DecodeReport
    ) throws {
        var inline: Codebook?
        if options.codeSource == .inline, s.codebookID != 0,
            options.requiredCodebook == nil || options.requiredCodebook == s.codebookID
        {
            let cb = try requireCodebook(s.codebookID)
            guard cb.bytesPerItem == s.codeSize else {
                throw StoreError.corruptRecord(
                    table: "histories", key: "segment with codebook \(cb.id)",
                    reason: "inline codes are \(s.codeSize) bytes, codebook packs \(cb.bytesPerItem)")
            }
            inline = cb
        }
        guard let cb = inline else {
            for i in range {
                try decodeFromItemsTable(
                    s.history.itemIDs[i], row: firstRow + i - range.lowerBound, into: &sink, options: options,
                    report: &report)
            }
            return
        }
        let size = cb.bytesPerItem
        try s.codes.withUnsafeBytes { codes in
            var i = range.lowerBound
            while i < range.upperBound {
                if s.codePresent[i] {
                    var j = i + 1
                    while j < range.upperBound, s.codePresent[j] { j += 1 }
                    try sink.addBlock(
                        row: firstRow + i - range.lowerBound, count: j - i, codebook: cb,
                        packed: UnsafeRawBufferPointer(rebasing: codes[(i * size)..<(j * size)]))
                    i = j
                } else {
                    try decodeFromItemsTable(
                        s.history.itemIDs[i], row: firstRow + i - range.lowerBound, into: &sink, options: options,
                        report: &report)
                    i += 1
                }
            }
        }
    }
}

/// Resizes `a` to `n` elements, keeping its capacity (new elements are zero).
func resize(_ a: inout [Float], to n: Int) {
    if a.count > n {
        a.removeLast(a.count - n)
    } else if a.count < n {
        a.append(contentsOf: repeatElement(0, count: n - a.count))
    }
}

// MARK: - DecodeSink

/// Collects rows to decode and decodes consecutive rows of one codebook in a single kernel call,
/// through the projected tables of each codebook met when a projection is given.
struct DecodeSink {
    let output: UnsafeMutablePointer<Float>
    /// Floats per output row: D, or H with a projection.
    let dimension: Int
    let streaming: Bool
    let precision: CentroidPrecision
    let projection: LinearProjection?
    /// The projected tables of the codebook last met (histories rarely mix codebooks).
    private var projected: ProjectedCodebook?
    private var runCodebook: Codebook?
    private var runStart = 0
    private var runCount = 0
    private var runBytes: [UInt8] = []

    init(output: UnsafeMutablePointer<Float>, dimension: Int, projection: LinearProjection? = nil, options: DecodeOptions) {
        self.output = output
        self.dimension = dimension
        self.projection = projection
        self.streaming = options.streamingStores
        self.precision = options.centroidPrecision
    }

    /// Queues one packed code for `row`.
    mutating func add(row: Int, codebook: Codebook, packed: UnsafeRawBufferPointer) throws {
        if runCount > 0, runCodebook?.id != codebook.id || runStart + runCount != row { try flush() }
        if runCount == 0 {
            runCodebook = codebook
            runStart = row
            runBytes.removeAll(keepingCapacity: true)
        }
        runBytes.append(contentsOf: packed)
        runCount += 1
    }

    /// Decodes `count` consecutive packed codes straight into rows `row..<row+count`.
    mutating func addBlock(row: Int, count: Int, codebook: Codebook, packed: UnsafeRawBufferPointer) throws {
        try flush()
        try decode(codebook, packed, count: count, row: row)
    }

    /// Writes the row of an item without a code: zeros, or the projection of zeros (its bias).
    mutating func fillMissing(row: Int) throws {
        try flush()
        let o = output + row * dimension
        if let bias = projection?.bias {
            // safe: the bias holds H = dimension floats, and row < the output's rows.
            bias.withUnsafeBufferPointer { o.update(from: $0.baseAddress!, count: dimension) }
        } else {
            o.update(repeating: 0, count: dimension)
        }
    }

    /// Decodes the queued run.
    mutating func flush() throws {
        guard runCount > 0, let cb = runCodebook else { return }
        let count = runCount
        runCount = 0
        try runBytes.withUnsafeBytes { bytes in try decode(cb, bytes, count: count, row: runStart) }
    }

    private mutating func decode(_ cb: Codebook, _ packed: UnsafeRawBufferPointer, count: Int, row: Int) throws {
        guard let projection else {
            cb.decodePacked(packed, count: count, into: output + row * dimension, streaming: streaming, precision: precision)
            return
        }
        // The sink's projection never changes, so the codebook alone says whether these tables serve.
        if projected?.codebookID != cb.id {
            projected = try cb.projected(by: projection)
        }
        projected!.decodePacked(packed, count: count, into: output + row * dimension, precision: precision)
    }
}
