import SheafCodebook

/// Which behaviours of a history to read.
public enum HistorySelection: Sendable, Equatable {
    /// The whole history.
    case all
    /// The most recent n behaviours (fewer if the history is shorter).
    case last(Int)
    /// Behaviours with lower ≤ timestamp < upper.
    case timeRange(Range<Int64>)
}

// MARK: - Reading histories

extension ReadTransaction {
    /// The behaviours of `user` in time order, or `nil` when the user has no history.
    ///
    /// - Complexity: one B-tree descent, then one cursor step per segment read. `.last(n)` reads only the
    ///   segments holding the last n behaviours; `.timeRange` skips segments by their uncompressed header.
    /// - Throws: `StoreError.corruptRecord` naming the segment when one fails to decode.
    public func history(user: UInt64, _ selection: HistorySelection = .all) throws -> History? {
        guard let parts = try loadSegments(user: user, selection) else { return nil }
        var h = History(sideFeatureWidth: store.sideFeatureWidth)
        h.reserveCapacity(parts.reduce(0) { $0 + $1.range.count })
        for p in parts { h.append(contentsOf: p.segment.history, range: p.range) }
        return h
    }

    /// Number of behaviours of `user` (0 when none), read from segment headers without decompressing.
    public func historyCount(user: UInt64) throws -> Int { try historySize(user: user).count }

    /// Behaviours of `user` and the stored bytes of their segments (0 and 0 when none), from the
    /// segment headers without decompressing.
    public func historySize(user: UInt64) throws -> (count: Int, bytes: Int) {
        try historySegmentSizes(user: user).reduce((0, 0)) { ($0.0 + $1.count, $0.1 + $1.bytes) }
    }

    /// Each stored segment of `user`'s history, oldest first: its behaviours and stored bytes (from
    /// the headers, nothing decompressed). What reading `.last(n)` costs is the trailing segments
    /// that hold n behaviours.
    public func historySegmentSizes(user: UInt64) throws -> [(count: Int, bytes: Int)] {
        let trailer = store.recordsHaveChecksums ? RecordChecksum.size : 0
        return try withCursor(store.tables.histories) { cursor in
            var out: [(count: Int, bytes: Int)] = []
            try forEachSegment(cursor, user: user) { seq, bytes in
                // Stored bytes: the segment and its checksum trailer.
                out.append((try header(user: user, seq: seq, bytes).count, bytes.count + trailer))
                return true
            }
            return out
        }
    }

    /// Number of users with a history (scans the first segment key of every user).
    public func userCount() throws -> Int {
        try withCursor(store.tables.histories) { cursor in
            var users = 0
            var entry = try cursor.first()
            while let e = entry {
                if let k = e.key, k.segment == 0 { users += 1 }
                entry = try cursor.next()
            }
            return users
        }
    }

    /// Calls `body` with every user id that has a history, ascending. Return `false` to stop.
    public func forEachUser(_ body: (UInt64) throws -> Bool) throws {
        try withCursor(store.tables.histories) { cursor in
            var entry = try cursor.first()
            while let e = entry {
                if let k = e.key, k.segment == 0 {
                    guard try body(k.user) else { return }
                }
                entry = try cursor.next()
            }
        }
    }

    // MARK: Segment access

    /// The decoded segments covering `selection`, each with the range of its behaviours selected.
    func loadSegments(user: UInt64, _ selection: HistorySelection) throws
        -> [(segment: HistorySegment, range: Range<Int>)]?
    {
        try withCursor(store.tables.histories) { cursor in
            switch selection {
            case .all:
                var parts: [(HistorySegment, Range<Int>)] = []
                try forEachSegment(cursor, user: user) { seq, bytes in
                    let s = try decodeSegment(user: user, seq: seq, bytes)
                    parts.append((s, 0..<s.history.count))
                    return true
                }
                return parts.isEmpty ? nil : parts

            case .last(let n):
                guard n >= 0 else { throw StoreError.invalidArgument("last(\(n)) needs n ≥ 0") }
                // Walk back from the last segment, reading headers only, until n behaviours are covered.
                var chosen: [(UInt32, UnsafeRawBufferPointer)] = []
                var covered = 0
                var entry = try lastSegment(cursor, user: user)
                guard entry != nil else { return nil }
                while let (seq, bytes) = entry, covered < n {
                    covered += try header(user: user, seq: seq, bytes).count
                    chosen.append((seq, bytes))
                    guard let prev = try cursor.previous(), let k = prev.key, k.user == user
                    else { break }
                    entry = (k.segment, try body(prev, in: store.tables.histories))
                }
                var parts: [(HistorySegment, Range<Int>)] = []
                var skip = max(0, covered - n)
                for (seq, bytes) in chosen.reversed() {
                    let s = try decodeSegment(user: user, seq: seq, bytes)
                    let start = min(skip, s.history.count)
                    skip -= start
                    parts.append((s, start..<s.history.count))
                }
                return parts

            case .timeRange(let range):
                var parts: [(HistorySegment, Range<Int>)] = []
                var any = false
                try forEachSegment(cursor, user: user) { seq, bytes in
                    any = true
                    let h = try header(user: user, seq: seq, bytes)
                    if h.lastTimestamp < range.lowerBound { return true }
                    if h.firstTimestamp >= range.upperBound { return false }
                    let s = try decodeSegment(user: user, seq: seq, bytes)
                    let ts = s.history.timestamps
                    let lo = partitionPoint(ts) { $0 >= range.lowerBound }
                    let hi = partitionPoint(ts) { $0 >= range.upperBound }
                    if lo < hi { parts.append((s, lo..<hi)) }
                    return true
                }
                return any ? parts : nil
            }
        }
    }

    /// Visits `user`'s segments in order; `body` returns false to stop.
    /// The bytes point into the map: valid only until the end of the transaction.
    func forEachSegment(
        _ cursor: Cursor<SegmentKey>, user: UInt64, _ body: (UInt32, UnsafeRawBufferPointer) throws -> Bool
    ) throws {
        var entry = try cursor.seek(atLeast: SegmentKey(user: user, segment: 0))
        while let e = entry, let k = e.key, k.user == user {
            guard try body(k.segment, try self.body(e, in: store.tables.histories)) else { return }
            entry = try cursor.next()
        }
    }

    /// Positions `cursor` on `user`'s last segment.
    func lastSegment(_ cursor: Cursor<SegmentKey>, user: UInt64) throws -> (UInt32, UnsafeRawBufferPointer)? {
        let after = try cursor.seek(atLeast: SegmentKey(user: user, segment: UInt32.max))
        let entry = after != nil ? try cursor.previous() : try cursor.last()
        guard let e = entry, let k = e.key, k.user == user else { return nil }
        return (k.segment, try body(e, in: store.tables.histories))
    }

    func header(user: UInt64, seq: UInt32, _ bytes: UnsafeRawBufferPointer) throws -> HistorySegment.Header {
        do { return try HistorySegment.readHeader(bytes) } catch {
            throw StoreError.corruptRecord(table: "histories", key: "\(user)/\(seq)", reason: "\(error)")
        }
    }

    func decodeSegment(user: UInt64, seq: UInt32, _ bytes: UnsafeRawBufferPointer) throws -> HistorySegment {
        let s: HistorySegment
        do { s = try HistorySegment.decode(bytes, using: decompressor, scratch: &segmentScratch) } catch {
            throw StoreError.corruptRecord(table: "histories", key: "\(user)/\(seq)", reason: "\(error)")
        }
        guard s.history.sideFeatureWidth == store.sideFeatureWidth else {
            throw StoreError.corruptRecord(
                table: "histories", key: "\(user)/\(seq)",
                reason: "side-feature width \(s.history.sideFeatureWidth), store has \(store.sideFeatureWidth)")
        }
        return s
    }
}

/// The first index whose element satisfies `pred` (which must be false then true along `a`).
func partitionPoint<T>(_ a: [T], _ pred: (T) -> Bool) -> Int {
    var lo = 0
    var hi = a.count
    while lo < hi {
        let mid = (lo + hi) / 2
        if pred(a[mid]) { hi = mid } else { lo = mid + 1 }
    }
    return lo
}

// MARK: - Appending

/// Where a behaviour goes among others with the same timestamp (a late behaviour, or one arriving at
/// the latest stored time): merged by item id, then action, label and side features, while each side
/// keeps its own order. Two loads of the same users thus end with identical histories whichever
/// commits first, and one load's behaviours with equal timestamps keep their input order (the file's).
@inline(__always)
private func goesFirst(_ a: History, _ i: Int, before b: History, _ j: Int) -> Bool {
    if a.timestamps[i] != b.timestamps[j] { return a.timestamps[i] < b.timestamps[j] }
    if a.itemIDs[i] != b.itemIDs[j] { return a.itemIDs[i] < b.itemIDs[j] }
    if a.actions[i] != b.actions[j] { return a.actions[i] < b.actions[j] }
    if a.labels[i].bitPattern != b.labels[j].bitPattern { return a.labels[i].bitPattern < b.labels[j].bitPattern }
    let w = a.sideFeatureWidth
    for k in 0..<w where a.sideFeatures[i * w + k].bitPattern != b.sideFeatures[j * w + k].bitPattern {
        return a.sideFeatures[i * w + k].bitPattern < b.sideFeatures[j * w + k].bitPattern
    }
    return true
}

/// `latest − maxLateness`, the oldest timestamp an append may reach back to (saturating).
private func oldestAllowed(latest: Int64, maxLateness: Int64) -> Int64 {
    let (v, overflow) = latest.subtractingReportingOverflow(maxLateness)
    return overflow ? .min : v
}

extension ReadTransaction {
    /// The behaviours of `behaviors` that `user`'s history does not hold yet, in their input order.
    ///
    /// A behaviour's identity is (user, timestamp, item). Behaviours whose identity is already stored,
    /// or repeated earlier in the batch, are dropped (a repeat with another label or action is dropped
    /// too: the first one stored wins). A bulk loader calls this in a read transaction to check a whole
    /// input before writing anything.
    ///
    /// - Parameter maxLateness: how far before the user's latest stored behaviour a new one may lie
    ///   (in timestamp units); `nil` (the default) merges late behaviours however old, `0` refuses any
    ///   older than the latest stored one.
    /// - Complexity: one segment header when the batch is newer than the history; otherwise the
    ///   segments overlapping the batch's time span are decoded to look for duplicates.
    /// - Throws: `StoreError.tooLate` for the first remaining behaviour older than `maxLateness` allows.
    public func newBehaviors(_ behaviors: [Behavior], user: UInt64, maxLateness: Int64? = nil) throws -> [Behavior] {
        guard let minTimestamp = behaviors.lazy.map(\.timestamp).min() else { return [] }
        checkLive()
        let latest: Int64? = try withCursor(store.tables.histories) { cursor in
            guard let (seq, bytes) = try lastSegment(cursor, user: user) else { return nil }
            return try header(user: user, seq: seq, bytes).lastTimestamp
        }
        struct Identity: Hashable {
            var timestamp: Int64
            var item: UInt64
        }
        var seen = Set<Identity>()
        if let latest, minTimestamp <= latest,
            let stored = try history(user: user, latest == .max ? .all : .timeRange(minTimestamp..<(latest + 1)))
        {
            for i in 0..<stored.count { seen.insert(Identity(timestamp: stored.timestamps[i], item: stored.itemIDs[i])) }
        }
        var fresh: [Behavior] = []
        fresh.reserveCapacity(behaviors.count)
        for b in behaviors where seen.insert(Identity(timestamp: b.timestamp, item: b.item)).inserted {
            if let latest, let maxLateness, b.timestamp < oldestAllowed(latest: latest, maxLateness: maxLateness) {
                throw StoreError.tooLate(user: user, timestamp: b.timestamp, latestStored: latest, maxLateness: maxLateness)
            }
            fresh.append(b)
        }
        return fresh
    }
}

extension WriteTransaction {
    /// Adds behaviours to `user`'s history, in time order.
    ///
    /// The batch is sorted by timestamp (stably, so equal timestamps keep their order). Behaviours newer
    /// than the user's latest stored one are appended: sealed segments (full ones) are not touched and
    /// only the open tail segment (fewer than `historySegmentCapacity` behaviours) is rewritten, so an
    /// append costs O(capacity + batch) whatever the history's length. A late behaviour (older than the
    /// latest stored one, or equal to it) is merged into place: the segment it falls in and every later
    /// segment of the user are decoded, merged with the batch and rewritten, still as full segments
    /// then one open tail, so a late event costs O(behaviours stored after it) and one write
    /// transaction. Among equal timestamps, stored and new behaviours are merged by item id (then
    /// action, label, side features), each side keeping its order: loads commute.
    ///
    /// Each behaviour's packed item code under the active codebook is copied into the segment, so reads
    /// need no item lookups; items without a code are marked absent. Rewritten behaviours keep the codes
    /// they were written with when those belong to the active codebook, and are looked up otherwise.
    ///
    /// This call does not drop duplicates: `appendNewBehaviors` does.
    ///
    /// - Parameter maxLateness: how far before the latest stored behaviour the batch may reach (`nil`:
    ///   any distance; `0`: none, histories are append-only in time).
    /// - Throws: `StoreError.invalidBehavior` (wrong side-feature width, NaN/infinite label or feature,
    ///   timestamp outside `Behavior.timestampRange`), `.tooLate`. Nothing is written when it throws.
    public func appendBehaviors(_ behaviors: [Behavior], user: UInt64, maxLateness: Int64? = nil) throws {
        guard !behaviors.isEmpty else { return }
        let width = store.sideFeatureWidth
        for (i, b) in behaviors.enumerated() {
            guard b.sideFeatures.count == width else {
                throw StoreError.invalidBehavior(
                    user: user, index: i, reason: "has \(b.sideFeatures.count) side features, the store keeps \(width)")
            }
            guard b.label.isFinite else {
                throw StoreError.invalidBehavior(user: user, index: i, reason: "label is not finite")
            }
            guard b.sideFeatures.allSatisfy(\.isFinite) else {
                throw StoreError.invalidBehavior(user: user, index: i, reason: "a side feature is not finite")
            }
            guard Behavior.timestampRange.contains(b.timestamp) else {
                throw StoreError.invalidBehavior(
                    user: user, index: i, reason: "timestamp \(b.timestamp) is outside the supported range −2^62 … 2^62 − 1")
            }
        }
        var sorted = behaviors
        if !zip(sorted, sorted.dropFirst()).allSatisfy({ $0.timestamp <= $1.timestamp }) {
            sorted = behaviors.enumerated().sorted { ($0.element.timestamp, $0.offset) < ($1.element.timestamp, $1.offset) }
                .map(\.element)
        }
        let incoming = History(sorted, sideFeatureWidth: width)
        let active = try activeCodebook()
        let capacity = store.historySegmentCapacity

        // The stored segments the batch reaches: from the first whose last behaviour is not older than
        // the batch's first (a late batch), or else the open tail; decoded with their inline codes.
        var rewritten: [HistorySegment] = []
        var firstSeq: UInt32 = 0
        try withCursor(store.tables.histories) { cursor in
            guard var (seq, bytes) = try lastSegment(cursor, user: user) else { return }
            var h = try header(user: user, seq: seq, bytes)
            if let maxLateness, sorted[0].timestamp < oldestAllowed(latest: h.lastTimestamp, maxLateness: maxLateness) {
                throw StoreError.tooLate(user: user, timestamp: sorted[0].timestamp, latestStored: h.lastTimestamp, maxLateness: maxLateness)
            }
            guard h.lastTimestamp >= sorted[0].timestamp || h.count < capacity else {
                guard seq < UInt32.max - 1 else { throw StoreError.invalidArgument("user \(user) has too many segments") }
                firstSeq = seq + 1  // in order after a sealed tail: new segments only
                return
            }
            // Walk back over segments that end at or after the batch's first timestamp.
            var reached: [(UInt32, HistorySegment)] = [(seq, try decodeSegment(user: user, seq: seq, bytes))]
            while h.firstTimestamp >= sorted[0].timestamp, seq > 0,
                let prev = try cursor.previous(), let k = prev.key, k.user == user
            {
                (seq, bytes) = (k.segment, try body(prev, in: store.tables.histories))
                h = try header(user: user, seq: seq, bytes)
                guard h.lastTimestamp >= sorted[0].timestamp else { break }
                reached.append((seq, try decodeSegment(user: user, seq: seq, bytes)))
            }
            rewritten = reached.reversed().map(\.1)
            firstSeq = reached.last!.0
        }

        // Merge the stored behaviours with the batch, remembering where each stored one came from.
        var pending = History(sideFeatureWidth: width)
        var origin: [(segment: Int32, row: Int32)] = []  // segment −1: a new behaviour
        let storedCount = rewritten.reduce(0) { $0 + $1.history.count }
        pending.reserveCapacity(storedCount + incoming.count)
        origin.reserveCapacity(storedCount + incoming.count)
        if rewritten.last.map({ $0.history.timestamps.last! < incoming.timestamps[0] }) ?? true {
            // In order (the common case): the stored rows, then the batch.
            for (s, segment) in rewritten.enumerated() {
                pending.append(contentsOf: segment.history)
                for r in 0..<segment.history.count { origin.append((Int32(s), Int32(r))) }
            }
            pending.append(contentsOf: incoming)
            for _ in 0..<incoming.count { origin.append((segment: -1, row: 0)) }
        } else {
            var si = 0, row = 0, ni = 0
            while si < rewritten.count || ni < incoming.count {
                if si < rewritten.count, row >= rewritten[si].history.count {
                    si += 1
                    row = 0
                    continue
                }
                let takeStored = si < rewritten.count && (ni >= incoming.count || goesFirst(rewritten[si].history, row, before: incoming, ni))
                if takeStored {
                    pending.append(contentsOf: rewritten[si].history, range: row..<(row + 1))
                    origin.append((Int32(si), Int32(row)))
                    row += 1
                } else {
                    pending.append(contentsOf: incoming, range: ni..<(ni + 1))
                    origin.append((-1, 0))
                    ni += 1
                }
            }
        }

        // Write full segments, then the open tail, numbered from the first one rewritten.
        var nextSeq = firstSeq
        var start = 0
        while start < pending.count {
            let end = min(start + capacity, pending.count)
            let segment = try makeSegment(pending, start..<end, codebook: active, origin: origin, stored: rewritten)
            let bytes = try segment.encode(using: store.compressor!)
            try put(store.tables.histories, SegmentKey(user: user, segment: nextSeq), bytes)
            nextSeq += 1
            start = end
        }
    }

    /// Adds the behaviours of `behaviors` that `user`'s history does not hold yet: the idempotent
    /// append bulk loads use, so that re-running a load after a crash adds nothing twice.
    ///
    /// See `ReadTransaction.newBehaviors(_:user:maxLateness:)` for what counts as already stored, and
    /// `appendBehaviors` for how late behaviours are merged.
    ///
    /// - Returns: how many behaviours were added.
    /// - Throws: as `appendBehaviors`. Nothing is written when it throws.
    @discardableResult
    public func appendNewBehaviors(_ behaviors: [Behavior], user: UInt64, maxLateness: Int64? = nil) throws -> Int {
        let fresh = try newBehaviors(behaviors, user: user, maxLateness: maxLateness)
        try appendBehaviors(fresh, user: user, maxLateness: maxLateness)
        return fresh.count
    }

    /// Builds a segment of `range` of `h`, copying each item's packed code under `codebook`.
    ///
    /// `origin[i]` says where row i of `h` was stored (an index into `stored` and a row in it), or
    /// segment −1 for a new behaviour. A stored row's inline code under `codebook` is reused as it is (so
    /// a rewrite looks up only the new behaviours' items, and behaviours keep the codes they were written
    /// with); new rows, and stored rows without a code or coded under another codebook, are looked up.
    private func makeSegment(
        _ h: History, _ range: Range<Int>, codebook: Codebook?, origin: [(segment: Int32, row: Int32)], stored: [HistorySegment]
    ) throws -> HistorySegment {
        var part = History(sideFeatureWidth: h.sideFeatureWidth)
        part.append(contentsOf: h, range: range)
        var codes: [UInt8] = []
        var present: [Bool] = []
        if let cb = codebook {
            let size = cb.bytesPerItem
            codes = [UInt8](repeating: 0, count: part.count * size)
            present = [Bool](repeating: false, count: part.count)
            try codes.withUnsafeMutableBytes { dst in
                for (i, id) in part.itemIDs.enumerated() {
                    let target = UnsafeMutableRawBufferPointer(rebasing: dst[(i * size)..<((i + 1) * size)])
                    let (s, r) = origin[range.lowerBound + i]
                    if s >= 0 {
                        let from = stored[Int(s)]
                        let row = Int(r)
                        if from.codebookID == cb.id, from.codeSize == size, from.codePresent[row] {
                            from.codes.withUnsafeBytes { target.copyMemory(from: UnsafeRawBufferPointer(rebasing: $0[(row * size)..<((row + 1) * size)])) }
                            present[i] = true
                            continue
                        }
                    }
                    guard let bytes = try bytes(store.tables.items, id) else { continue }
                    let (itemCB, payload) = try parseItem(id, bytes)
                    guard itemCB.id == cb.id else { continue }
                    target.copyMemory(from: payload)
                    present[i] = true
                }
            }
        }
        return HistorySegment(
            history: part, codebookID: codebook?.id ?? 0, codeSize: codebook?.bytesPerItem ?? 0, codes: codes,
            codePresent: present)
    }

    /// Deletes `user`'s whole history; returns how many behaviours it held.
    @discardableResult
    public func deleteHistory(user: UInt64) throws -> Int {
        var keys: [UInt32] = []
        var count = 0
        try withCursor(store.tables.histories) { cursor in
            try forEachSegment(cursor, user: user) { seq, bytes in
                count += try header(user: user, seq: seq, bytes).count
                keys.append(seq)
                return true
            }
        }
        for seq in keys {
            _ = try delete(store.tables.histories, SegmentKey(user: user, segment: seq))
        }
        return count
    }
}
