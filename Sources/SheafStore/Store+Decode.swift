import SheafCodebook

// The decode path in one room: how a read turns stored codes into float32 rows.
//
//   decodeItems / decodeHistory / decodeHistories
//     → item codes: the inline copies in history segments (one range scan per history), or one
//       items-table lookup per behaviour (`decodeFromItemsTable`)
//     → DecodeSink, which batches consecutive rows of one codebook
//     → Codebook.decodePacked → the C kernel (sheaf_decode_f32 / _f16).

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
        let d = store.dimension
        guard output.count >= ids.count * d else {
            throw StoreError.bufferTooSmall(needed: ids.count * d, available: output.count)
        }
        var sink = DecodeSink(output: output.baseAddress!, dimension: d, options: options)
        var report = DecodeReport()
        for (row, id) in ids.enumerated() {
            try decodeFromItemsTable(id, row: row, into: &sink, options: options, report: &report)
        }
        sink.flush()
        report.rows = ids.count
        try throwIfMissingItemsRefused(report, options)
        return report
    }

    /// Like `decodeItems(_:into:options:)`, returning a new ids.count × D array.
    public func decodeItems(_ ids: some Collection<UInt64>, options: DecodeOptions = DecodeOptions()) throws -> [Float] {
        let n = ids.count * store.dimension
        return try [Float](unsafeUninitializedCapacity: n) { buf, count in
            try decodeItems(ids, into: buf, options: options)
            count = n
        }
    }

    /// Looks one item up and queues its code for decoding at `row` (or zero-fills and records it as missing).
    @inline(__always)
    func decodeFromItemsTable(
        _ id: UInt64, row: Int, into sink: inout DecodeSink, options: DecodeOptions, report: inout DecodeReport
    ) throws {
        report.itemLookups += 1
        guard let bytes = try bytes(store.tables.items, id) else {
            sink.zeroFill(row: row)
            report.missingRows.append(row)
            report.missingItems.append(id)
            return
        }
        let (codebook, payload) = try parseItem(id, bytes)
        if let required = options.requiredCodebook, required != codebook.id {
            throw StoreError.codebookMismatch(item: id, expected: required, found: codebook.id)
        }
        sink.add(row: row, codebook: codebook, packed: payload)
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
        guard let parts = try loadSegments(user: user, selection) else { return nil }
        let n = parts.reduce(0) { $0 + $1.range.count }
        resize(&embeddings, to: n * store.dimension)
        var h = History(sideFeatureWidth: store.sideFeatureWidth)
        h.reserveCapacity(n)
        var report = DecodeReport()
        try embeddings.withUnsafeMutableBufferPointer { out in
            guard n > 0 else { return }
            var sink = DecodeSink(output: out.baseAddress!, dimension: store.dimension, options: options)
            var row = 0
            for p in parts {
                try decode(p.segment, p.range, firstRow: row, into: &sink, options: options, report: &report)
                row += p.range.count
            }
            sink.flush()
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
        var all: [[(segment: HistorySegment, range: Range<Int>)]?] = []
        all.reserveCapacity(users.count)
        var offsets = [0]
        for u in users {
            let parts = try loadSegments(user: u, selection)
            all.append(parts)
            offsets.append(offsets.last! + (parts?.reduce(0) { $0 + $1.range.count } ?? 0))
        }
        let n = offsets.last!
        resize(&embeddings, to: n * store.dimension)
        var report = DecodeReport()
        try embeddings.withUnsafeMutableBufferPointer { out in
            guard n > 0 else { return }
            var sink = DecodeSink(output: out.baseAddress!, dimension: store.dimension, options: options)
            for (u, parts) in all.enumerated() {
                var row = offsets[u]
                for p in parts ?? [] {
                    try decode(p.segment, p.range, firstRow: row, into: &sink, options: options, report: &report)
                    row += p.range.count
                }
            }
            sink.flush()
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
                    sink.addBlock(
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

/// Collects rows to decode and decodes consecutive rows of one codebook in a single kernel call.
struct DecodeSink {
    let output: UnsafeMutablePointer<Float>
    let dimension: Int
    let streaming: Bool
    let precision: CentroidPrecision
    private var runCodebook: Codebook?
    private var runStart = 0
    private var runCount = 0
    private var runBytes: [UInt8] = []

    init(output: UnsafeMutablePointer<Float>, dimension: Int, options: DecodeOptions) {
        self.output = output
        self.dimension = dimension
        self.streaming = options.streamingStores
        self.precision = options.centroidPrecision
    }

    /// Queues one packed code for `row`.
    mutating func add(row: Int, codebook: Codebook, packed: UnsafeRawBufferPointer) {
        if runCount > 0, runCodebook?.id != codebook.id || runStart + runCount != row { flush() }
        if runCount == 0 {
            runCodebook = codebook
            runStart = row
            runBytes.removeAll(keepingCapacity: true)
        }
        runBytes.append(contentsOf: packed)
        runCount += 1
    }

    /// Decodes `count` consecutive packed codes straight into rows `row..<row+count`.
    mutating func addBlock(row: Int, count: Int, codebook: Codebook, packed: UnsafeRawBufferPointer) {
        flush()
        codebook.decodePacked(packed, count: count, into: output + row * dimension, streaming: streaming, precision: precision)
    }

    /// Writes a zero row.
    mutating func zeroFill(row: Int) {
        flush()
        (output + row * dimension).update(repeating: 0, count: dimension)
    }

    /// Decodes the queued run.
    mutating func flush() {
        guard runCount > 0, let cb = runCodebook else { return }
        runBytes.withUnsafeBytes { bytes in
            cb.decodePacked(bytes, count: runCount, into: output + runStart * dimension, streaming: streaming, precision: precision)
        }
        runCount = 0
    }
}
