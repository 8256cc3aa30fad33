import CLMDB
import SheafCodebook

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

// MARK: - Reading items

extension ReadTransaction {
    /// The codes of item `id`, unpacked, or `nil` when the item has none.
    /// - Throws: `StoreError.corruptRecord` for a damaged record, `.unknownCodebook` when its codebook is not stored.
    public func item(_ id: UInt64) throws -> ItemCode? {
        guard let bytes = try get(store.tables.items, id: id) else { return nil }
        let (codebook, payload) = try parseItem(id, bytes)
        var codes = [UInt32](repeating: 0, count: codebook.levels)
        var mags = [Float](repeating: 0, count: codebook.levels)
        codebook.unpack(payload, count: 1, codes: &codes, magnitudes: &mags)
        return ItemCode(codebookID: codebook.id, codes: codes, magnitudes: mags)
    }

    /// Calls `body` with item `id`'s codebook and packed code, without copying.
    /// The bytes point into the map: valid only until the end of the transaction.
    /// - Returns: `nil` when the item has no code.
    public func withPackedItem<R>(_ id: UInt64, _ body: (Codebook, UnsafeRawBufferPointer) throws -> R) throws -> R? {
        guard let bytes = try get(store.tables.items, id: id) else { return nil }
        let (codebook, payload) = try parseItem(id, bytes)
        return try body(codebook, payload)
    }

    /// Parses and checks an item record against its codebook's layout.
    @inline(__always)
    func parseItem(_ id: UInt64, _ bytes: UnsafeRawBufferPointer) throws -> (Codebook, UnsafeRawBufferPointer) {
        let header: (codebook: UInt16, payload: UnsafeRawBufferPointer)
        do { header = try ItemRecord.parse(bytes) } catch {
            throw StoreError.corruptRecord(table: "items", key: "\(id)", reason: error.reason)
        }
        guard let codebook = try codebook(header.codebook) else {
            throw StoreError.unknownCodebook(header.codebook)
        }
        guard header.payload.count == codebook.bytesPerItem else {
            throw StoreError.corruptRecord(
                table: "items", key: "\(id)",
                reason: "payload is \(header.payload.count) bytes, codebook \(codebook.id) packs \(codebook.bytesPerItem)")
        }
        return (codebook, header.payload)
    }

    /// Number of items with codes.
    public func itemCount() throws -> Int {
        checkLive()
        return try rawEntryCount(txn, store.tables.items)
    }

    /// Copies the packed codes of `ids` into a caller's contiguous buffer.
    ///
    /// - Parameters:
    ///   - ids: the items to read.
    ///   - codebook: the codebook every found item must be coded with.
    ///   - output: ids.count × `bytesPerItem` bytes; rows of missing items are zeroed.
    /// - Returns: the indices (into `ids`) of items without a code.
    /// - Throws: `StoreError.codebookMismatch` when a found item uses another codebook; `.bufferTooSmall`.
    public func readPackedCodes(
        _ ids: some Collection<UInt64>, codebook: UInt16, into output: UnsafeMutableRawBufferPointer
    ) throws -> [Int] {
        let cb = try requireCodebook(codebook)
        let size = cb.bytesPerItem
        guard output.count >= ids.count * size else {
            throw StoreError.bufferTooSmall(needed: ids.count * size, available: output.count)
        }
        var missing: [Int] = []
        for (row, id) in ids.enumerated() {
            let dst = UnsafeMutableRawBufferPointer(rebasing: output[(row * size)..<((row + 1) * size)])
            guard let bytes = try get(store.tables.items, id: id) else {
                dst.initializeMemory(as: UInt8.self, repeating: 0)
                missing.append(row)
                continue
            }
            let (found, payload) = try parseItem(id, bytes)
            guard found.id == codebook else {
                throw StoreError.codebookMismatch(item: id, expected: codebook, found: found.id)
            }
            dst.copyMemory(from: payload)
        }
        return missing
    }

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
        try finish(report, options)
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
        guard let bytes = try get(store.tables.items, id: id) else {
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

    /// Throws for missing items unless the options accept them.
    func finish(_ report: DecodeReport, _ options: DecodeOptions) throws {
        if options.missingItems == .fail, !report.missingItems.isEmpty {
            throw StoreError.missingItems(report.missingItems)
        }
    }
}

// MARK: - Writing items

extension WriteTransaction {
    /// Stores the codes of a batch of items, replacing any earlier codes of the same ids.
    ///
    /// The whole batch is checked before anything is written. When `ids` ascend and all lie above the
    /// largest stored id, records are appended with `MDB_APPEND` (no B-tree search).
    ///
    /// - Parameters:
    ///   - ids: count item ids.
    ///   - codes: count × L codes, each < K.
    ///   - magnitudes: count × L projection magnitudes α (euclidean codebooks: empty, or count × L values that are ignored).
    ///   - codebook: the codebook the codes belong to; `nil` means the active codebook.
    /// - Throws: `StoreError.noActiveCodebook`, `.unknownCodebook`, `.invalidArgument` (shape),
    ///   `.invalidItemCodes` naming the first bad item. Nothing is written when it throws.
    public func putItems(ids: [UInt64], codes: [UInt32], magnitudes: [Float], codebook: UInt16? = nil) throws {
        let cb: Codebook
        if let codebook {
            cb = try requireCodebook(codebook)
        } else {
            guard let active = try activeCodebook() else { throw StoreError.noActiveCodebook }
            cb = active
        }
        let n = ids.count
        let L = cb.levels
        guard codes.count == n * L else {
            throw StoreError.invalidArgument("codes has \(codes.count) values, expected \(n) × \(L)")
        }
        // Euclidean codebooks store no magnitudes: accept none, or the encoder's count × L ones (ignored).
        let wantMags = cb.magnitudeEncoding == .none && magnitudes.isEmpty ? 0 : n * L
        guard magnitudes.count == wantMags else {
            throw StoreError.invalidArgument("magnitudes has \(magnitudes.count) values, expected \(wantMags)")
        }
        // Validate first, naming the item, so that a refused batch writes nothing.
        try codes.withUnsafeBufferPointer { c in
            try magnitudes.withUnsafeBufferPointer { m in
                do { try cb.validate(codes: c, magnitudes: m, count: n) } catch let e as CodebookError {
                    let row: Int
                    switch e {
                    case .codeOutOfRange(let r, _, _, _), .nonFiniteMagnitude(let r, _): row = r
                    default: row = 0
                    }
                    throw StoreError.invalidItemCodes(item: ids[row], reason: e)
                }
            }
        }
        let size = cb.bytesPerItem
        var packed = [UInt8](repeating: 0, count: n * size)
        try codes.withUnsafeBufferPointer { c in
            try magnitudes.withUnsafeBufferPointer { m in
                try packed.withUnsafeMutableBytes { try cb.pack(codes: c, magnitudes: m, count: n, into: $0) }
            }
        }
        try putPackedItems(ids: ids, packed: packed, codebook: cb)
    }

    /// Stores already-packed codes (count × `bytesPerItem` bytes) of `codebook`.
    func putPackedItems(ids: [UInt64], packed: [UInt8], codebook cb: Codebook) throws {
        let size = cb.bytesPerItem
        precondition(packed.count == ids.count * size)
        let sortedAbove = try idsAscendAboveLastKey(ids, table: store.tables.items)
        let flags = sortedAbove ? UInt32(MDB_APPEND) : 0
        var record = [UInt8](repeating: 0, count: ItemRecord.headerSize + size)
        record[0] = ItemRecord.formatVersion
        record[1] = UInt8(truncatingIfNeeded: cb.id)
        record[2] = UInt8(truncatingIfNeeded: cb.id >> 8)
        try packed.withUnsafeBytes { src in
            try record.withUnsafeMutableBytes { rec in
                for (row, id) in ids.enumerated() {
                    UnsafeMutableRawBufferPointer(rebasing: rec[ItemRecord.headerSize...])
                        .copyMemory(from: UnsafeRawBufferPointer(rebasing: src[(row * size)..<((row + 1) * size)]))
                    try put(store.tables.items, id: id, UnsafeRawBufferPointer(rec), flags: flags)
                }
            }
        }
    }

    /// Whether `ids` strictly ascend and the first is above every key already in `table`.
    func idsAscendAboveLastKey(_ ids: [UInt64], table: MDB_dbi) throws -> Bool {
        guard let first = ids.first else { return false }
        for i in 1..<max(1, ids.count) where ids[i] <= ids[i - 1] { return false }
        let last: UInt64? = try withCursor(txn, table) { c in
            guard let e = try c.get(MDB_LAST) else { return nil }
            return Keys.decodeID(e.key)
        }
        if let last { return first > last }
        return true
    }

    /// Deletes the code of item `id`; returns whether it had one.
    @discardableResult
    public func deleteItem(_ id: UInt64) throws -> Bool {
        try delete(store.tables.items, id: id)
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
