import Foundation
import SheafCodebook
import SheafRandom
import Testing

@testable import SheafStore

/// Every history segment of a store, key by key, as raw stored bytes.
private func allSegments(_ store: Store) throws -> [String: [UInt8]] {
    try store.read { txn in
        try txn.withCursor(store.tables.histories) { cursor in
            var out: [String: [UInt8]] = [:]
            var entry = try cursor.first()
            while let e = entry {
                out[e.keyDescription] = Array(e.value)
                entry = try cursor.next()
            }
            return out
        }
    }
}

/// A store with small segments and a codebook, items 0..<40 coded.
private func codedStore(_ dir: TempDirectory, capacity: Int = 4) throws -> Store {
    let store = try historyStore(dir, capacity: capacity, dimension: 6)
    let cb = try makeCodebook(dimension: 6, levels: 2, codes: 8)
    let (codes, mags) = makeCodes(cb, count: 40, seed: 3)
    try store.write { txn in
        try txn.putCodebook(cb)
        try txn.putItems(ids: (0..<40).map(UInt64.init), codes: codes, magnitudes: mags)
    }
    return store
}

@Suite struct LateEventTests {
    @Test func lateBehavioursAreMergedIntoTimeOrderAndKeepTheInvariants() throws {
        let dir = TempDirectory()
        let store = try codedStore(dir)
        var rng = SplitMix64(seed: 17)
        var reference: [UInt64: [Behavior]] = [:]
        // 30 batches for 3 users at distinct random timestamps: most batches reach back into sealed segments.
        var used = Set<Int64>()
        for batch in 0..<30 {
            let user = UInt64(1 + batch % 3)
            var bs: [Behavior] = []
            for _ in 0..<(1 + rng.int(6)) {
                var t: Int64
                repeat { t = Int64(rng.int(10_000)) } while !used.insert(t).inserted
                bs.append(Behavior(item: UInt64(rng.int(40)), timestamp: t, label: Float(batch)))
            }
            try store.write { try $0.appendBehaviors(bs, user: user) }
            reference[user, default: []] += bs
        }
        var lookups = DecodeOptions()
        lookups.codeSource = .itemsTable
        for (user, bs) in reference {
            let expected = bs.sorted { $0.timestamp < $1.timestamp }
            let h: History? = try store.read { try $0.history(user: user) }
            #expect(h?.behaviors == expected)
            // Inline codes are all there and decode as the items table does.
            let inline: DecodedHistory? = try store.read { try $0.decodeHistory(user: user) }
            let looked: DecodedHistory? = try store.read { try $0.decodeHistory(user: user, options: lookups) }
            #expect(inline != nil && inline?.embeddings == looked?.embeddings)
            #expect(inline?.report.itemLookups == 0)
        }
        // Numbering, full sealed segments, one open tail, time order.
        #expect(try store.read { try $0.verify() }.isClean)
    }

    @Test func aLateBehaviourRewritesOnlyFromTheSegmentItFallsIn() throws {
        let dir = TempDirectory()
        let store = try codedStore(dir, capacity: 4)
        // 14 behaviours at 10, 20, …, 140: segments 0–2 sealed, 3 open (2 behaviours).
        try store.write { try $0.appendBehaviors((1...14).map { Behavior(item: UInt64($0), timestamp: Int64($0 * 10)) }, user: 5) }
        let before = try allSegments(store)
        #expect(before.count == 4)
        // 95 falls in segment 2 (90…120): 0 and 1 are untouched, 2 and 3 are rewritten, 3 is still open.
        try store.write { try $0.appendBehaviors([Behavior(item: 33, timestamp: 95)], user: 5) }
        let after = try allSegments(store)
        #expect(after["5/0"] == before["5/0"] && after["5/1"] == before["5/1"])
        #expect(after["5/2"] != before["5/2"] && after.count == 4)
        let h = try #require(try store.read { try $0.history(user: 5) })
        #expect(h.itemIDs == [1, 2, 3, 4, 5, 6, 7, 8, 9, 33, 10, 11, 12, 13, 14])
        #expect(try store.read { try $0.historySegmentSizes(user: 5) }.map(\.count) == [4, 4, 4, 3])
        // Two more before everything: every segment shifts and a fifth appears.
        try store.write { try $0.appendBehaviors([Behavior(item: 34, timestamp: 1), Behavior(item: 35, timestamp: 2)], user: 5) }
        #expect(try store.read { try $0.historySegmentSizes(user: 5) }.map(\.count) == [4, 4, 4, 4, 1])
        #expect(try store.read { try $0.verify() }.isClean)
    }

    @Test func twoLoadsOfTheSameUsersEndIdenticalInEitherOrder() throws {
        var rng = SplitMix64(seed: 99)
        // Two logs of the same 4 users with interleaved times, including equal timestamps within a log and
        // across the two logs (distinct items there), and one behaviour present in both.
        func log() -> [(UInt64, Behavior)] {
            (0..<60).map { _ in
                (UInt64(1 + rng.int(4)), Behavior(item: UInt64(rng.int(40)), timestamp: Int64(rng.int(50)) * 10, label: Float(rng.int(5))))
            }
        }
        let a = log() + [(1, Behavior(item: 7, timestamp: 1000, label: 1))]
        let b = log() + [(1, Behavior(item: 7, timestamp: 1000, label: 1))]
        func load(_ store: Store, _ rows: [(UInt64, Behavior)]) throws {
            let byUser = Dictionary(grouping: rows, by: \.0).mapValues { $0.map(\.1) }
            try store.write { txn in
                for user in byUser.keys.sorted() { _ = try txn.appendNewBehaviors(byUser[user]!, user: user) }
            }
        }
        let d1 = TempDirectory("ab"), d2 = TempDirectory("ba")
        let s1 = try codedStore(d1), s2 = try codedStore(d2)
        try load(s1, a)
        try load(s1, b)
        try load(s2, b)
        try load(s2, a)
        let one = try allSegments(s1), two = try allSegments(s2)
        #expect(one.count > 8)
        #expect(one == two)
        // And loading either log again changes nothing.
        try load(s1, a)
        #expect(try allSegments(s1) == one)
    }

    @Test func equalTimestampsMergeByItemAcrossAppendsAndKeepInputOrderWithinOne() throws {
        let dir = TempDirectory()
        let store = try codedStore(dir)
        // One batch: ties keep their input order (3 before 1), as a file's lines.
        try store.write { try $0.appendBehaviors([Behavior(item: 3, timestamp: 5), Behavior(item: 1, timestamp: 5)], user: 4) }
        #expect(try store.read { try $0.history(user: 4) }?.itemIDs == [3, 1])
        // A later append at the same time merges by item against the stored run, which keeps its order.
        try store.write { try $0.appendBehaviors([Behavior(item: 2, timestamp: 5), Behavior(item: 9, timestamp: 5)], user: 4) }
        #expect(try store.read { try $0.history(user: 4) }?.itemIDs == [2, 3, 1, 9])
    }

    @Test func maxLatenessBoundsHowFarBackAndAFailedAppendWritesNothing() throws {
        let dir = TempDirectory()
        let store = try codedStore(dir)
        try store.write { try $0.appendBehaviors((1...9).map { Behavior(item: UInt64($0), timestamp: Int64($0 * 10)) }, user: 2) }
        let before = try allSegments(store)
        // One behaviour of the batch is too late: the whole batch is refused, nothing written.
        #expect(throws: StoreError.tooLate(user: 2, timestamp: 40, latestStored: 90, maxLateness: 49)) {
            try store.write { try $0.appendBehaviors([Behavior(item: 1, timestamp: 95), Behavior(item: 2, timestamp: 40)], user: 2, maxLateness: 49) }
        }
        #expect(try allSegments(store) == before)
        try store.write { try $0.appendBehaviors([Behavior(item: 1, timestamp: 95), Behavior(item: 2, timestamp: 40)], user: 2, maxLateness: 50) }
        #expect(try store.read { try $0.history(user: 2) }?.timestamps == [10, 20, 30, 40, 40, 50, 60, 70, 80, 90, 95])
        // Out-of-range timestamps are refused as invalid, also through the library.
        #expect(throws: StoreError.invalidBehavior(user: 2, index: 0, reason: "timestamp -9223372036854775808 is outside the supported range −2^62 … 2^62 − 1")) {
            try store.write { try $0.appendBehaviors([Behavior(item: 1, timestamp: .min)], user: 2) }
        }
    }
}
