import Foundation
import Synchronization
import SheafCodebook
import SheafRandom
import Testing

@testable import SheafStore

/// Opens a store with small segments so that tests cross many segment boundaries.
func historyStore(_ dir: TempDirectory, capacity: Int = 5, width: Int = 0, dimension: Int = 6) throws -> Store {
    var o = StoreOptions()
    o.historySegmentCapacity = capacity
    o.sideFeatureWidth = width
    o.durable = false
    return try Store(path: dir.path, dimension: dimension, options: o)
}

/// The raw bytes of one history segment.
func segmentBytes(_ store: Store, user: UInt64, segment: UInt32) throws -> [UInt8]? {
    try store.read { (txn) throws in
        try txn.bytes(store.tables.histories, SegmentKey(user: user, segment: segment)).map(Array.init)
    }
}

@Suite struct HistoryTests {
    @Test(arguments: [0, 2])
    func appendsAcrossSegmentBoundariesAndReads(width: Int) throws {
        let dir = TempDirectory()
        let store = try historyStore(dir, capacity: 5, width: width)
        var reference: [Behavior] = []
        var rng = SplitMix64(seed: 21)
        var t: Int64 = -50  // negative timestamps are allowed
        for batch in 0..<12 {
            let n = [1, 3, 5, 7, 11, 2][batch % 6]
            let bs = makeBehaviors(count: n, start: t, items: 1000, width: width, seed: UInt64(batch))
            t = bs.last!.timestamp + 1 + Int64(rng.int(2))  // in order (ties across loads: LateEventTests)
            try store.write { try $0.appendBehaviors(bs, user: 77) }
            reference += bs
        }
        let all = try #require(try store.read { try $0.history(user: 77) })
        #expect(all.behaviors == reference)
        #expect(try store.read { try $0.historyCount(user: 77) } == reference.count)

        for n in [0, 1, 4, 5, 6, 13, reference.count - 1, reference.count, reference.count + 10] {
            let last = try #require(try store.read { try $0.history(user: 77, .last(n)) })
            #expect(last.behaviors == Array(reference.suffix(n)), "last(\(n))")
        }
        let lo = reference.first!.timestamp
        let hi = reference.last!.timestamp
        for range in [lo..<(hi + 1), (lo + 3)..<(lo + 9), (hi - 2)..<(hi + 100), (hi + 1)..<(hi + 5), (lo - 10)..<lo, lo..<lo] {
            let got = try #require(try store.read { try $0.history(user: 77, .timeRange(range)) })
            #expect(got.behaviors == reference.filter { range.contains($0.timestamp) }, "range \(range)")
        }
        #expect(try store.read { try $0.history(user: 78) } == nil)
        #expect(try store.read { try $0.history(user: 76, .last(3)) } == nil)
        #expect(try store.read { try $0.history(user: 78, .timeRange(lo..<hi)) } == nil)
        #expect(try store.read { try $0.userCount() } == 1)
    }

    @Test func sealedSegmentsAreNeverRewritten() throws {
        let dir = TempDirectory()
        let store = try historyStore(dir, capacity: 4)
        try store.write { try $0.appendBehaviors(makeBehaviors(count: 9, start: 0, items: 50, seed: 1), user: 1) }
        let seg0 = try segmentBytes(store, user: 1, segment: 0)
        let seg1 = try segmentBytes(store, user: 1, segment: 1)
        let seg2 = try segmentBytes(store, user: 1, segment: 2)  // open tail, 1 behaviour
        #expect(seg0 != nil && seg1 != nil && seg2 != nil)
        try store.write { try $0.appendBehaviors(makeBehaviors(count: 2, start: 1000, items: 50, seed: 2), user: 1) }
        #expect(try segmentBytes(store, user: 1, segment: 0) == seg0)
        #expect(try segmentBytes(store, user: 1, segment: 1) == seg1)
        #expect(try segmentBytes(store, user: 1, segment: 2) != seg2)  // tail grew to 3
        #expect(try segmentBytes(store, user: 1, segment: 3) == nil)
        #expect(try store.read { try $0.historyCount(user: 1) } == 11)
    }

    @Test func batchesAreSortedStablyAndOlderBehavioursRefusedAtZeroLateness() throws {
        let dir = TempDirectory()
        let store = try historyStore(dir, capacity: 3)
        let batch = [
            Behavior(item: 1, timestamp: 30), Behavior(item: 2, timestamp: 10), Behavior(item: 3, timestamp: 30),
            Behavior(item: 4, timestamp: 20), Behavior(item: 5, timestamp: 10),
        ]
        try store.write { try $0.appendBehaviors(batch, user: 5) }
        let h = try #require(try store.read { try $0.history(user: 5) })
        #expect(h.itemIDs == [2, 5, 4, 1, 3])
        // Equal to the latest timestamp: accepted.
        try store.write { try $0.appendBehaviors([Behavior(item: 6, timestamp: 30)], user: 5) }
        let before = try store.read { try $0.history(user: 5) }
        #expect(throws: StoreError.tooLate(user: 5, timestamp: 29, latestStored: 30, maxLateness: 0)) {
            try store.write { try $0.appendBehaviors([Behavior(item: 7, timestamp: 40), Behavior(item: 8, timestamp: 29)], user: 5, maxLateness: 0) }
        }
        #expect(try store.read { try $0.history(user: 5) } == before)
    }

    @Test func invalidBehavioursAreRefusedAndStoreUnchanged() throws {
        let dir = TempDirectory()
        let store = try historyStore(dir, capacity: 3, width: 2)
        try store.write { try $0.appendBehaviors([Behavior(item: 1, timestamp: 1, sideFeatures: [0, 1])], user: 9) }
        let before = try segmentBytes(store, user: 9, segment: 0)
        #expect(throws: StoreError.invalidBehavior(user: 9, index: 1, reason: "has 1 side features, the store keeps 2")) {
            try store.write {
                try $0.appendBehaviors(
                    [Behavior(item: 2, timestamp: 2, sideFeatures: [1, 1]), Behavior(item: 3, timestamp: 3, sideFeatures: [1])],
                    user: 9)
            }
        }
        #expect(throws: StoreError.invalidBehavior(user: 9, index: 0, reason: "label is not finite")) {
            try store.write { try $0.appendBehaviors([Behavior(item: 2, timestamp: 2, label: .nan, sideFeatures: [1, 1])], user: 9) }
        }
        #expect(throws: StoreError.invalidBehavior(user: 9, index: 0, reason: "a side feature is not finite")) {
            try store.write { try $0.appendBehaviors([Behavior(item: 2, timestamp: 2, sideFeatures: [1, .infinity])], user: 9) }
        }
        #expect(try segmentBytes(store, user: 9, segment: 0) == before)
        #expect(try store.read { try $0.historyCount(user: 9) } == 1)
    }

    @Test func manyUsersStayApart() throws {
        let dir = TempDirectory()
        let store = try historyStore(dir, capacity: 4)
        let users: [UInt64] = [0, 1, 2, 255, 256, UInt64.max - 1, UInt64.max]
        var reference: [UInt64: [Behavior]] = [:]
        for round in 0..<3 {
            try store.write { (txn) throws in
                for (i, u) in users.enumerated() {
                    let bs = makeBehaviors(count: 3 + i, start: Int64(round * 1000), items: 100, seed: UInt64(round * 100 + i))
                    try txn.appendBehaviors(bs, user: u)
                    reference[u, default: []] += bs
                }
            }
        }
        for u in users {
            #expect(try store.read { try $0.history(user: u)?.behaviors } == reference[u])
            #expect(try store.read { try $0.history(user: u, .last(2))?.behaviors } == Array(reference[u]!.suffix(2)))
        }
        #expect(try store.read { try $0.userCount() } == users.count)
        var visited: [UInt64] = []
        try store.read { txn in try txn.forEachUser { visited.append($0); return true } }
        #expect(visited == users)
        #expect(try store.write { try $0.deleteHistory(user: 255) } == reference[255]!.count)
        #expect(try store.read { try $0.history(user: 255) } == nil)
        #expect(try store.read { try $0.history(user: 256)?.behaviors } == reference[256])
    }

    @Test func corruptSegmentIsNamed() throws {
        let dir = TempDirectory()
        let store = try historyStore(dir, capacity: 4)
        try store.write { try $0.appendBehaviors(makeBehaviors(count: 6, start: 0, items: 10, seed: 3), user: 7) }
        var bytes = try #require(try segmentBytes(store, user: 7, segment: 0))
        bytes[bytes.count - 3] ^= 0x5A  // inside the zstd frame
        try store.write { (txn) throws in
            try txn.put(store.tables.histories, SegmentKey(user: 7, segment: 0), bytes)
        }
        #expect {
            _ = try store.read { try $0.history(user: 7) }
        } throws: { error in
            guard case StoreError.corruptRecord("histories", "7/0", _) = error else { return false }
            return true
        }
        // The tail segment alone is intact.
        #expect(try store.read { try $0.history(user: 7, .last(2))?.count } == 2)
    }

    @Test func tenThousandBehaviourHistoryTail() throws {
        let dir = TempDirectory()
        let store = try historyStore(dir, capacity: 128)
        var reference: [Behavior] = []
        var t: Int64 = 1_600_000_000
        for chunk in 0..<20 {
            let bs = makeBehaviors(count: 500, start: t, items: 100_000, seed: UInt64(chunk))
            t = bs.last!.timestamp
            try store.write { try $0.appendBehaviors(bs, user: 1) }
            reference += bs
        }
        #expect(try store.read { try $0.historyCount(user: 1) } == 10_000)
        #expect(try store.read { try $0.history(user: 1, .last(100))?.behaviors } == Array(reference.suffix(100)))
        // One more append touches only the open tail segment (10,000 = 78 × 128 + 16).
        let seg77 = try segmentBytes(store, user: 1, segment: 77)
        try store.write { try $0.appendBehaviors([Behavior(item: 1, timestamp: t + 1)], user: 1) }
        #expect(try segmentBytes(store, user: 1, segment: 77) == seg77)
        #expect(try store.read { try $0.historyCount(user: 1) } == 10_001)
    }
}

@Suite struct HistoryDecodeTests {
    /// A store with a codebook and items 0..<items coded, except the ids in `skip`.
    func codedStore(_ dir: TempDirectory, items: Int = 40, skip: Set<UInt64> = [], capacity: Int = 5) throws -> (Store, Codebook) {
        let store = try historyStore(dir, capacity: capacity, dimension: 11)
        let cb = try makeCodebook(dimension: 11, levels: 3, codes: 4096, magnitudes: .uint8, seed: 2)
        let ids = (0..<UInt64(items)).filter { !skip.contains($0) }
        let (c, m) = makeCodes(cb, count: ids.count, seed: 5)
        try store.write { (txn) throws in
            try txn.putCodebook(cb)
            try txn.putItems(ids: ids, codes: c, magnitudes: m)
        }
        return (store, cb)
    }

    /// A tail rewrite reuses the tail's inline codes (no lookups of its items, and the codes it was
    /// written with, as sealed segments keep theirs) but looks up again the rows that had no code.
    @Test func tailRewriteCarriesItsCodesAndFillsMissingOnes() throws {
        let dir = TempDirectory()
        let (store, cb) = try codedStore(dir, items: 10, skip: [7], capacity: 8)
        try store.write { try $0.appendBehaviors([Behavior(item: 1, timestamp: 1), Behavior(item: 7, timestamp: 2)], user: 1) }
        let before = try store.read { (txn) throws in try #require(try txn.decodeHistory(user: 1, options: DecodeOptions(missingItems: .zeroFill))) }
        #expect(before.report.missingRows == [1])
        // Item 1 re-coded under the same codebook; item 7 gets its first code.
        let (c, m) = makeCodes(cb, count: 2, seed: 99)
        try store.write { try $0.putItems(ids: [1, 7], codes: c, magnitudes: m) }
        try store.write { try $0.appendBehaviors([Behavior(item: 2, timestamp: 3)], user: 1) }
        try store.read { (txn) throws in
            let after = try #require(try txn.decodeHistory(user: 1))
            #expect(after.report.itemLookups == 0, "item 7's code was looked up and copied into the rewritten tail")
            let D = cb.dimension
            #expect(Array(after.embeddings[0..<D]) == Array(before.embeddings[0..<D]), "row 0 keeps the code it was appended with")
            let fresh = try txn.decodeItems([1, 7, 2])
            #expect(Array(after.embeddings[0..<D]) != Array(fresh[0..<D]))
            #expect(Array(after.embeddings[D...]) == Array(fresh[D...]))
        }
    }

    @Test func historyDecodeMatchesItemDecodeWithoutLookups() throws {
        let dir = TempDirectory()
        let (store, _) = try codedStore(dir)
        let bs = makeBehaviors(count: 23, start: 0, items: 40, seed: 9)
        try store.write { try $0.appendBehaviors(bs, user: 3) }
        try store.read { (txn) throws in
            let decoded = try #require(try txn.decodeHistory(user: 3))
            #expect(decoded.history.behaviors == bs)
            #expect(decoded.report.itemLookups == 0)
            #expect(decoded.report.rows == 23)
            let direct = try txn.decodeItems(bs.map(\.item))
            #expect(decoded.embeddings == direct)
            let viaTable = try #require(try txn.decodeHistory(user: 3, options: DecodeOptions(codeSource: .itemsTable)))
            #expect(viaTable.embeddings == direct)
            #expect(viaTable.report.itemLookups == 23)

            var buffer: [Float] = []
            let tail = try #require(try txn.decodeHistory(user: 3, .last(7), into: &buffer))
            #expect(tail.0.itemIDs == bs.suffix(7).map(\.item))
            #expect(buffer == Array(direct.suffix(7 * 11)))
            let range = bs[4].timestamp..<bs[15].timestamp
            let ranged = try #require(try txn.decodeHistory(user: 3, .timeRange(range), into: &buffer))
            let expectedIDs = bs.filter { range.contains($0.timestamp) }.map(\.item)
            #expect(ranged.0.itemIDs == expectedIDs)
            #expect(buffer == (try txn.decodeItems(expectedIDs)))
            #expect(try txn.decodeHistory(user: 4) == nil)
        }
    }

    /// Half-precision centroids: the history decode, the item decode and the codebook's half kernel
    /// agree exactly, and stay within the documented bound of the float32 decode.
    @Test func halfCentroidDecodeOfHistories() throws {
        let dir = TempDirectory()
        let (store, cb) = try codedStore(dir)
        let bs = makeBehaviors(count: 31, start: 0, items: 40, seed: 10)
        try store.write { try $0.appendBehaviors(bs, user: 5) }
        let half = DecodeOptions(centroidPrecision: .float16)
        try store.read { (txn) throws in
            let exact = try #require(try txn.decodeHistory(user: 5))
            let approx = try #require(try txn.decodeHistory(user: 5, options: half))
            #expect(approx.history.behaviors == bs)
            #expect(approx.report.itemLookups == 0)
            #expect(approx.embeddings == (try txn.decodeItems(bs.map(\.item), options: half)))
            let viaTable = try #require(try txn.decodeHistory(user: 5, options: DecodeOptions(codeSource: .itemsTable, centroidPrecision: .float16)))
            #expect(viaTable.embeddings == approx.embeddings)
            let D = cb.dimension
            var differs = false
            for (r, b) in bs.enumerated() {
                let mags = try #require(try txn.item(b.item)).magnitudes
                var allowed: Float = 1e-5
                for l in 0..<cb.levels { allowed += abs(mags[l]) * cb.halfCentroids.errorBound[l] }
                for d in 0..<D {
                    #expect(abs(exact.embeddings[r * D + d] - approx.embeddings[r * D + d]) <= allowed)
                    differs = differs || exact.embeddings[r * D + d] != approx.embeddings[r * D + d]
                }
            }
            #expect(differs)
        }
    }

    @Test func missingItemsInHistories() throws {
        let dir = TempDirectory()
        let (store, cb) = try codedStore(dir, items: 10, skip: [3, 7])
        let bs = (0..<10).map { Behavior(item: UInt64($0), timestamp: Int64($0)) }
        try store.write { try $0.appendBehaviors(bs, user: 1) }
        #expect(throws: StoreError.missingItems([3, 7])) { try store.read { try $0.decodeHistory(user: 1) } }
        let zero = try #require(try store.read { try $0.decodeHistory(user: 1, options: DecodeOptions(missingItems: .zeroFill)) })
        #expect(zero.report.missingRows == [3, 7])
        #expect(zero.report.itemLookups == 2)  // only the behaviours without an inline code
        #expect(zero.embeddings[(3 * 11)..<(4 * 11)].allSatisfy { $0 == 0 })

        // Items coded after the history was written are found through the items table.
        try store.write { try $0.putItems(ids: [3, 7], codes: [1, 2, 3, 4, 5, 6], magnitudes: [1, 1, 1, 1, 1, 1]) }
        let later = try #require(try store.read { try $0.decodeHistory(user: 1) })
        #expect(later.report.missingRows.isEmpty)
        #expect(later.report.itemLookups == 2)
        let item3 = try #require(try store.read { try $0.item(3) })
        #expect(close(Array(later.embeddings[(3 * 11)..<(4 * 11)]), referenceEmbedding(item3, cb)))
    }

    @Test func codebookChangeNeverReinterpretsCodes() throws {
        let dir = TempDirectory()
        let (store, _) = try codedStore(dir, items: 20)
        let bs = makeBehaviors(count: 12, start: 0, items: 20, seed: 4)
        try store.write { try $0.appendBehaviors(bs, user: 2) }
        let old = try #require(try store.read { try $0.decodeHistory(user: 2) }).embeddings

        // A new codebook; every item is re-coded with it.
        let cb2 = try makeCodebook(id: 2, dimension: 11, levels: 2, codes: 256, magnitudes: .float16, seed: 77)
        let (c, m) = makeCodes(cb2, count: 20, seed: 8)
        try store.write { (txn) throws in
            try txn.putCodebook(cb2)
            try txn.putItems(ids: (0..<20).map(UInt64.init), codes: c, magnitudes: m)
        }
        try store.read { (txn) throws in
            // Inline codes still decode with the codebook they were made with.
            let inline = try #require(try txn.decodeHistory(user: 2))
            #expect(inline.embeddings == old)
            #expect(inline.report.itemLookups == 0)
            // Requiring the new codebook falls back to the (re-coded) items table.
            let fresh = try #require(try txn.decodeHistory(user: 2, options: DecodeOptions(requiredCodebook: 2)))
            #expect(fresh.report.itemLookups == 12)
            #expect(fresh.embeddings == (try txn.decodeItems(bs.map(\.item))))
            #expect(fresh.embeddings != old)
        }
        // Appending rewrites the open tail segment (behaviours 10 and 11) with codes of the now active
        // codebook 2; requiring codebook 1 then fails at the first of them, since the items table
        // holds codebook 2 codes only.
        try store.write { try $0.appendBehaviors([Behavior(item: 0, timestamp: 1_000_000)], user: 2) }
        #expect(throws: StoreError.codebookMismatch(item: bs[10].item, expected: 1, found: 2)) {
            try store.read { try $0.decodeHistory(user: 2, options: DecodeOptions(requiredCodebook: 1)) }
        }
    }

    @Test func unknownCodebookOfInlineCodes() throws {
        let dir = TempDirectory()
        let store = try historyStore(dir, capacity: 4, dimension: 11)
        let segment = HistorySegment(
            history: History([Behavior(item: 1, timestamp: 5)]), codebookID: 9, codeSize: 8,
            codes: [UInt8](repeating: 0, count: 8), codePresent: [true])
        let bytes = try segment.encode(using: ZstdCompressor())
        try store.write { (txn) throws in
            try txn.put(store.tables.histories, SegmentKey(user: 1, segment: 0), bytes)
        }
        #expect(try store.read { try $0.history(user: 1)?.itemIDs } == [1])
        #expect(throws: StoreError.unknownCodebook(9)) { try store.read { try $0.decodeHistory(user: 1) } }
    }

    @Test func batchDecodeForARankingRequest() throws {
        let dir = TempDirectory()
        let (store, _) = try codedStore(dir)
        var expected: [UInt64: [Behavior]] = [:]
        try store.write { (txn) throws in
            for u: UInt64 in [10, 11, 12] {
                let bs = makeBehaviors(count: Int(u) - 3, start: 0, items: 40, seed: u)
                try txn.appendBehaviors(bs, user: u)
                expected[u] = bs
            }
        }
        try store.read { (txn) throws in
            var emb: [Float] = []
            let batch = try txn.decodeHistories(users: [12, 99, 10, 11], .last(6), into: &emb)
            #expect(batch.rowOffsets == [0, 6, 6, 12, 18])
            #expect(batch.histories[1] == nil)
            #expect(batch.histories[0]?.behaviors == Array(expected[12]!.suffix(6)))
            var single: [Float] = []
            _ = try txn.decodeHistory(user: 10, .last(6), into: &single)
            #expect(Array(emb[(6 * 11)..<(12 * 11)]) == single)
            #expect(emb.count == 18 * 11)
        }
    }
}

@Suite struct ConcurrencyTests {
    /// One writer commits batches while readers check that every snapshot is consistent: the
    /// profile written in the same transaction always equals the item count and history length.
    @Test func readersSeeConsistentSnapshotsWhileOneWriterWrites() throws {
        let dir = TempDirectory()
        var o = StoreOptions()
        o.durable = false
        o.mapSize = 1 << 20  // small, so the writer also grows the map under the readers
        o.historySegmentCapacity = 8
        let store = try Store(path: dir.path, dimension: 8, options: o)
        let cb = try makeCodebook(dimension: 8, codes: 256)
        try store.write { try $0.putCodebook(cb) }
        let batches = 60
        let perBatch = 500
        let failures = Mutex<[String]>([])
        let done = Atomic<Bool>(false)
        let group = DispatchGroup()
        for r in 0..<3 {
            DispatchQueue.global().async(group: group) {
                var reads = 0
                while !done.load(ordering: .acquiring) || reads < 10 {
                    do {
                        try store.read { (txn) throws in
                            let items = try txn.itemCount()
                            let marker = try txn.profile(user: 0).map { Int($0.modelVersion) } ?? 0
                            let behaviours = try txn.historyCount(user: 1)
                            if items != marker * perBatch || behaviours != marker * 3 {
                                failures.withLock { $0.append("reader \(r): items \(items), marker \(marker), behaviours \(behaviours)") }
                            }
                            if items > 0 {
                                _ = try txn.decodeHistory(user: 1, .last(5), options: DecodeOptions(missingItems: .zeroFill))
                            }
                        }
                    } catch {
                        failures.withLock { $0.append("reader \(r): \(error)") }
                    }
                    reads += 1
                }
            }
        }
        for b in 0..<batches {
            let ids = (0..<perBatch).map { UInt64(b * perBatch + $0) }
            let (c, m) = makeCodes(cb, count: perBatch, seed: UInt64(b))
            try store.write { (txn) throws in
                try txn.putItems(ids: ids, codes: c, magnitudes: m)
                try txn.appendBehaviors(makeBehaviors(count: 3, start: Int64(b * 10), items: perBatch, seed: UInt64(b)), user: 1)
                try txn.putProfile(Profile(modelVersion: UInt32(b + 1), bytes: []), user: 0)
            }
        }
        done.store(true, ordering: .releasing)
        group.wait()
        #expect(failures.withLock { $0 } == [])
        #expect(try store.read { try $0.itemCount() } == batches * perBatch)
    }
}
