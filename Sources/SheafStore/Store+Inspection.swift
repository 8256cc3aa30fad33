import SheafCodebook

// MARK: - Iterating items

extension ReadTransaction {
    /// Calls `body` with every item id that has a code, ascending from `start`. Return `false` to stop.
    public func forEachItem(from start: UInt64 = 0, _ body: (UInt64) throws -> Bool) throws {
        try withCursor(store.tables.items) { cursor in
            var entry = try cursor.seek(atLeast: start)
            while let e = entry {
                if let id = e.key { guard try body(id) else { return } }
                entry = try cursor.next()
            }
        }
    }
}

// MARK: - Statistics

/// What a store holds and what it costs, as `sheaf stats` prints it.
public struct StoreStatistics: Sendable, Codable, Equatable {
    /// One stored codebook and how many items use it.
    public struct CodebookUsage: Sendable, Codable, Equatable {
        public var id: UInt16
        public var active: Bool
        public var metric: String
        public var levels: Int
        public var codesPerLevel: Int
        public var magnitudeBits: Int
        /// Packed code bytes per item (without the 3-byte record header).
        public var bytesPerItem: Int
        /// Items coded with this codebook.
        public var items: Int
    }

    /// Embedding dimension D.
    public var dimension: Int
    /// Items with a code.
    public var items: Int
    /// Items with a title.
    public var titles: Int
    /// Users with a history.
    public var users: Int
    /// Behaviours over all histories.
    public var behaviors: Int
    /// History segments over all users.
    public var segments: Int
    /// Stored bytes of all history segments (compressed, inline codes included).
    public var historyBytes: Int
    /// Stored bytes of the largest history.
    public var maxHistoryBytes: Int
    /// Behaviours of the longest history.
    public var maxHistoryBehaviors: Int
    /// Users with a profile.
    public var profiles: Int
    /// Stored bytes of all profiles (records with their headers and checksums).
    public var profileBytes: Int = 0
    /// Every stored codebook, ascending by id.
    public var codebooks: [CodebookUsage]

    /// Bytes of one float32 embedding row.
    public var float32BytesPerItem: Int { dimension * 4 }
}

extension ReadTransaction {
    /// Counts everything in the store: one pass over the items table (record headers only) and over
    /// the history segment headers (nothing is decompressed).
    /// - Complexity: O(items + segments).
    /// - Parameter visiting: called with a table's name and each record's key bytes as the scan reaches
    ///   it (a crash-isolating caller records the position; see `sheaf stats`).
    public func statistics(visiting: ((String, UnsafeRawBufferPointer) -> Void)? = nil) throws -> StoreStatistics {
        checkLive()
        let active = try metadata().activeCodebook
        var perCodebook: [UInt16: Int] = [:]
        try withCursor(store.tables.items) { cursor in
            var entry = try cursor.first()
            while let e = entry {
                visiting?(store.tables.items.name, e.keyBytes)
                if let b = checkedBody(e), let (cb, _) = try? ItemRecord.parse(b) { perCodebook[cb, default: 0] += 1 }
                entry = try cursor.next()
            }
        }
        var users = 0, behaviors = 0, segments = 0, bytes = 0, maxBytes = 0, maxCount = 0
        try withCursor(store.tables.histories) { cursor in
            var entry = try cursor.first()
            var current: UInt64? = nil
            var userBytes = 0, userCount = 0
            func closeUser() {
                maxBytes = max(maxBytes, userBytes)
                maxCount = max(maxCount, userCount)
            }
            while let e = entry {
                visiting?(store.tables.histories.name, e.keyBytes)
                if let k = e.key {
                    if k.user != current {
                        if current != nil { closeUser() }
                        current = k.user
                        users += 1
                        userBytes = 0
                        userCount = 0
                    }
                    let h = try header(user: k.user, seq: k.segment, try body(e, in: store.tables.histories))
                    segments += 1
                    behaviors += h.count
                    bytes += e.value.count
                    userBytes += e.value.count
                    userCount += h.count
                }
                entry = try cursor.next()
            }
            if current != nil { closeUser() }
        }
        var profiles = 0, profileBytes = 0
        try withCursor(store.tables.profiles) { cursor in
            var entry = try cursor.first()
            while let e = entry {
                visiting?(store.tables.profiles.name, e.keyBytes)
                profiles += 1
                profileBytes += e.value.count
                entry = try cursor.next()
            }
        }
        var usage: [StoreStatistics.CodebookUsage] = []
        for id in try codebookIDs() {
            guard let c = try codebook(id) else { continue }
            usage.append(.init(
                id: id, active: id == active, metric: c.metric.description, levels: c.levels,
                codesPerLevel: c.codesPerLevel, magnitudeBits: c.magnitudeEncoding.bits, bytesPerItem: c.bytesPerItem,
                items: perCodebook[id] ?? 0))
        }
        return StoreStatistics(
            dimension: store.dimension, items: try itemCount(), titles: try titleCount(), users: users,
            behaviors: behaviors, segments: segments, historyBytes: bytes, maxHistoryBytes: maxBytes,
            maxHistoryBehaviors: maxCount, profiles: profiles, profileBytes: profileBytes, codebooks: usage)
    }
}

// MARK: - Verification

/// The outcome of `ReadTransaction.verify`: what was checked and every problem found.
public struct VerificationReport: Sendable, Equatable {
    /// One damaged or inconsistent record.
    public struct Problem: Sendable, Equatable, CustomStringConvertible {
        /// The table holding the record.
        public var table: String
        /// The record's key, as text ("42", or "user/segment" for histories).
        public var key: String
        /// What is wrong.
        public var reason: String
        public var description: String { "\(table)[\(key)]: \(reason)" }
    }

    /// Records checked per table.
    public var checked: [String: Int] = [:]
    /// The problems found, at most `problemLimit` of them.
    public var problems: [Problem] = []
    /// How many problems were found in all (may exceed `problems.count`).
    public var problemCount = 0
    /// Whether nothing was wrong.
    public var isClean: Bool { problemCount == 0 }

    mutating func add(_ table: String, _ key: String, _ reason: String, limit: Int) {
        problemCount += 1
        if problems.count < limit { problems.append(Problem(table: table, key: key, reason: reason)) }
    }
}

extension ReadTransaction {
    /// Checks every record of every table, in one read snapshot.
    ///
    /// - meta: parses, and its active codebook is stored;
    /// - codebooks: version byte, checksum, key = id, dimension = the store's;
    /// - items: version byte, codebook stored, payload length = the codebook's, magnitudes finite;
    /// - histories: every segment decodes (version byte, header, zstd checksum, column checks),
    ///   segments of a user are numbered 0, 1, 2… with only the last one open (not full), timestamps
    ///   never decrease across segments, and inline codes name a stored codebook;
    /// - profiles: version byte and checksum; titles: version byte and UTF-8.
    ///
    /// - Parameters:
    ///   - problemLimit: how many problems to keep in the report (all are counted).
    ///   - progress: called every 65,536 records with the table name and records checked in it.
    ///   - visiting: called with a table's name and each record's key bytes as the scan reaches it (a
    ///     crash-isolating caller records the position; see `sheaf verify`).
    /// - Throws: only LMDB errors; damage to records is reported, not thrown. Damage to LMDB's own
    ///   structure (page headers, node sizes, B-tree pointers) is not covered by any checksum: LMDB
    ///   follows it and may return `MDB_CORRUPTED` or crash the process. `sheaf verify` runs this scan in
    ///   a child process for that reason.
    public func verify(
        problemLimit: Int = 100, progress: ((String, Int) -> Void)? = nil,
        visiting: ((String, UnsafeRawBufferPointer) -> Void)? = nil
    ) throws -> VerificationReport {
        checkLive()
        var report = VerificationReport()
        func problem(_ t: String, _ k: String, _ r: String) { report.add(t, k, r, limit: problemLimit) }
        /// Visits every record of `table` whose checksum holds, with its body; a record whose checksum
        /// fails is a problem and is not looked at further.
        func scan<K>(_ table: Table<K>, _ visit: (TableEntry<K>, UnsafeRawBufferPointer) throws -> Void) throws {
            var n = 0
            try withCursor(table) { cursor in
                var entry = try cursor.first()
                while let e = entry {
                    visiting?(table.name, e.keyBytes)
                    if let b = checkedBody(e) {
                        try visit(e, b)
                    } else {
                        problem(table.name, e.keyDescription, RecordChecksum.failure(valueBytes: e.value.count))
                    }
                    n += 1
                    if n & 0xFFFF == 0 { progress?(table.name, n) }
                    entry = try cursor.next()
                }
            }
            report.checked[table.name] = n
            progress?(table.name, n)
        }
        func keyText<K>(_ entry: TableEntry<K>) -> String { entry.keyDescription }

        // meta
        var activeCodebook: UInt16 = 0
        try scan(store.tables.meta) { entry, value in
            do {
                let m = try StoreMetadata.decode(value)
                activeCodebook = m.activeCodebook
                if m.dimension != store.dimension { problem("meta", keyText(entry), "dimension \(m.dimension) ≠ \(store.dimension)") }
            } catch { problem("meta", keyText(entry), why(error)) }
        }

        // codebooks
        var codebooks: [UInt16: Codebook] = [:]
        try scan(store.tables.codebooks) { entry, value in
            let k = keyText(entry)
            do {
                let c = try CodebookRecord.decode(value).0
                guard entry.key == UInt64(c.id) else { return problem("codebooks", k, "record names codebook \(c.id)") }
                guard c.dimension == store.dimension else {
                    return problem("codebooks", k, "dimension \(c.dimension), the store holds \(store.dimension)")
                }
                codebooks[c.id] = c
            } catch { problem("codebooks", k, why(error)) }
        }
        if activeCodebook != 0, codebooks[activeCodebook] == nil {
            problem("meta", "0", "active codebook \(activeCodebook) is not stored (or is damaged)")
        }

        // items
        var codes: [UInt32] = []
        var mags: [Float] = []
        try scan(store.tables.items) { entry, value in
            let k = keyText(entry)
            guard entry.key != nil else { return problem("items", k, "key is not 8 bytes") }
            let parsed: (codebook: UInt16, payload: UnsafeRawBufferPointer)
            do { parsed = try ItemRecord.parse(value) } catch { return problem("items", k, why(error)) }
            guard let c = codebooks[parsed.codebook] else {
                return problem("items", k, "codebook \(parsed.codebook) is not stored (or is damaged)")
            }
            guard parsed.payload.count == c.bytesPerItem else {
                return problem("items", k, "payload is \(parsed.payload.count) bytes, codebook \(c.id) packs \(c.bytesPerItem)")
            }
            if c.magnitudeEncoding == .float16 || c.magnitudeEncoding == .float32 {
                if codes.count != c.levels {
                    codes = [UInt32](repeating: 0, count: c.levels)
                    mags = [Float](repeating: 0, count: c.levels)
                }
                c.unpack(parsed.payload, count: 1, codes: &codes, magnitudes: &mags)
                if !mags.allSatisfy(\.isFinite) { problem("items", k, "a magnitude is not finite") }
            }
        }

        // histories
        var user: UInt64? = nil
        var expectedSeq: UInt32 = 0
        var lastTimestamp = Int64.min
        var previousWasOpen = false
        let capacity = store.historySegmentCapacity
        try scan(store.tables.histories) { entry, value in
            guard let (u, seq) = entry.key.map({ ($0.user, $0.segment) }) else {
                return problem("histories", keyText(entry), "key is not 12 bytes (user, segment)")
            }
            let k = "\(u)/\(seq)"
            if u != user {
                user = u
                expectedSeq = 0
                lastTimestamp = .min
                previousWasOpen = false
            }
            if seq != expectedSeq { problem("histories", k, "segment number \(seq), expected \(expectedSeq)") }
            if previousWasOpen { problem("histories", k, "follows a segment that is not full (only the last may be open)") }
            expectedSeq = seq &+ 1
            let s: HistorySegment
            do { s = try HistorySegment.decode(value, using: decompressor, scratch: &segmentScratch) } catch {
                return problem("histories", k, "\(error)")
            }
            let h = s.history
            if h.sideFeatureWidth != store.sideFeatureWidth {
                problem("histories", k, "side-feature width \(h.sideFeatureWidth), the store keeps \(store.sideFeatureWidth)")
            }
            if h.count > capacity { problem("histories", k, "\(h.count) behaviours, more than the capacity \(capacity)") }
            previousWasOpen = h.count < capacity
            if let first = h.timestamps.first, first < lastTimestamp {
                problem("histories", k, "starts at \(first), before the previous segment's end \(lastTimestamp)")
            }
            lastTimestamp = h.timestamps.last ?? lastTimestamp
            if s.codeSize > 0 {
                if let c = codebooks[s.codebookID] {
                    if c.bytesPerItem != s.codeSize {
                        problem("histories", k, "inline codes of \(s.codeSize) bytes, codebook \(c.id) packs \(c.bytesPerItem)")
                    }
                } else {
                    problem("histories", k, "inline codes name codebook \(s.codebookID), which is not stored")
                }
            }
        }

        // profiles
        try scan(store.tables.profiles) { entry, value in
            do { _ = try Profile.decode(value) } catch { problem("profiles", keyText(entry), why(error)) }
        }
        // titles
        try scan(store.tables.titles) { entry, value in
            do { _ = try TitleRecord.decode(value) } catch { problem("titles", keyText(entry), why(error)) }
        }
        return report
    }
}

/// The reason text of a record-format error (or the error's description).
private func why(_ error: any Error) -> String { (error as? RecordFormatError)?.reason ?? "\(error)" }
