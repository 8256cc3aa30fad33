import Foundation
import SheafCodebook
import Testing

@testable import SheafStore

@Suite struct IdempotentAppendTests {
    @Test func reappendingAddsNothingAndNewBehavioursStillLand() throws {
        let dir = TempDirectory()
        let store = try Store(path: dir.path, dimension: 4)
        let all = makeBehaviors(count: 300, start: 1_000, items: 50, seed: 3)
        let first = Array(all[0..<200])
        let appended = try store.write { try $0.appendNewBehaviors(first, user: 9) }
        let distinct = Set(first.map { "\($0.timestamp)/\($0.item)" }).count
        #expect(appended == distinct)
        // The same batch again (a resumed load): nothing is added.
        #expect(try store.write { try $0.appendNewBehaviors(first, user: 9) } == 0)
        let stored = try #require(try store.read { try $0.history(user: 9) })
        #expect(stored.count == distinct)
        // An overlapping batch: only the new part is appended, in order.
        let overlap = Array(all[150..<300])
        let added = try store.write { try $0.appendNewBehaviors(overlap, user: 9) }
        let after = try #require(try store.read { try $0.history(user: 9) })
        #expect(after.count == stored.count + added)
        #expect(Set((0..<after.count).map { "\(after.timestamps[$0])/\(after.itemIDs[$0])" }).count == after.count)
        #expect(zip(after.timestamps, after.timestamps.dropFirst()).allSatisfy { $0 <= $1 })
    }

    @Test func anOlderBehaviourThatIsNotStoredIsMergedOrRefusedByMaxLateness() throws {
        let dir = TempDirectory()
        let store = try Store(path: dir.path, dimension: 4)
        try store.write { try $0.appendBehaviors([Behavior(item: 1, timestamp: 10), Behavior(item: 2, timestamp: 20)], user: 1) }
        #expect(throws: StoreError.tooLate(user: 1, timestamp: 15, latestStored: 20, maxLateness: 0)) {
            try store.write { try $0.appendNewBehaviors([Behavior(item: 3, timestamp: 15)], user: 1, maxLateness: 0) }
        }
        #expect(throws: StoreError.tooLate(user: 1, timestamp: 15, latestStored: 20, maxLateness: 4)) {
            try store.write { try $0.appendNewBehaviors([Behavior(item: 3, timestamp: 15)], user: 1, maxLateness: 4) }
        }
        #expect(try store.read { try $0.history(user: 1) }?.itemIDs == [1, 2])
        #expect(try store.write { try $0.appendNewBehaviors([Behavior(item: 3, timestamp: 15)], user: 1, maxLateness: 5) } == 1)
        #expect(try store.read { try $0.history(user: 1) }?.itemIDs == [1, 3, 2])
        // Loaded again: already stored, nothing added.
        #expect(try store.write { try $0.appendNewBehaviors([Behavior(item: 3, timestamp: 15)], user: 1) } == 0)
        #expect(try store.read { try $0.history(user: 1) }?.itemIDs == [1, 3, 2])
        // Same timestamp as the latest, other item: a new behaviour, appended.
        #expect(try store.write { try $0.appendNewBehaviors([Behavior(item: 2, timestamp: 20), Behavior(item: 4, timestamp: 20)], user: 1) } == 1)
        #expect(try store.read { try $0.history(user: 1) }?.itemIDs == [1, 3, 2, 4])
    }
}

@Suite struct TitleTests {
    @Test func titlesRoundTripAndOversizedAreRefused() throws {
        let dir = TempDirectory()
        let store = try Store(path: dir.path, dimension: 4)
        try store.write { try $0.putTitles(ids: [3, 1, 2], titles: ["Toy Story (1995)", "Amélie (2001)", ""]) }
        #expect(try store.read { try $0.title(item: 1) } == "Amélie (2001)")
        #expect(try store.read { try $0.title(item: 2) } == "")
        #expect(try store.read { try $0.title(item: 7) } == nil)
        #expect(try store.read { try $0.titleCount() } == 3)
        #expect(throws: StoreError.invalidArgument("the title of item 5 is longer than 4096 bytes")) {
            try store.write { try $0.putTitles(ids: [4, 5], titles: ["ok", String(repeating: "x", count: 4097)]) }
        }
        #expect(try store.read { try $0.titleCount() } == 3)
    }
}

@Suite struct StatisticsTests {
    @Test func countsItemsUsersBehavioursAndBytes() throws {
        let dir = TempDirectory()
        var options = StoreOptions()
        options.historySegmentCapacity = 16
        let store = try Store(path: dir.path, dimension: 8, options: options)
        let cb = try makeCodebook(dimension: 8)
        let (codes, mags) = makeCodes(cb, count: 30, seed: 2)
        try store.write { txn in
            try txn.putCodebook(cb)
            try txn.putItems(ids: (0..<30).map(UInt64.init), codes: codes, magnitudes: mags)
            try txn.appendBehaviors(makeBehaviors(count: 40, start: 0, items: 30, seed: 1), user: 1)
            try txn.appendBehaviors(makeBehaviors(count: 5, start: 0, items: 30, seed: 2), user: 2)
        }
        let s = try store.read { try $0.statistics() }
        #expect(s.items == 30 && s.users == 2 && s.behaviors == 45)
        #expect(s.segments == 3 + 1)
        #expect(s.maxHistoryBehaviors == 40)
        let bytes1 = try store.read { try $0.historyStoredBytes(user: 1) }
        let bytes2 = try store.read { try $0.historyStoredBytes(user: 2) }
        #expect(s.historyBytes == bytes1 + bytes2)
        #expect(s.maxHistoryBytes == max(bytes1, bytes2))
        #expect(s.codebooks.count == 1)
        #expect(s.codebooks[0].active && s.codebooks[0].items == 30 && s.codebooks[0].bytesPerItem == cb.bytesPerItem)
        #expect(s.float32BytesPerItem == 32)
        var seen: [UInt64] = []
        try store.read { try $0.forEachItem(from: 25) { seen.append($0); return true } }
        #expect(seen == [25, 26, 27, 28, 29])
    }
}

@Suite struct VerifyTests {
    func populated() throws -> (TempDirectory, Store) {
        let dir = TempDirectory()
        var options = StoreOptions()
        options.historySegmentCapacity = 8
        let store = try Store(path: dir.path, dimension: 8, options: options)
        let cb = try makeCodebook(dimension: 8, magnitudes: .float16)
        let (codes, mags) = makeCodes(cb, count: 20, seed: 2)
        try store.write { txn in
            try txn.putCodebook(cb)
            try txn.putItems(ids: (0..<20).map(UInt64.init), codes: codes, magnitudes: mags)
            try txn.putTitles(ids: [1], titles: ["one"])
            try txn.putProfile(Profile(modelVersion: 1, bytes: [1, 2, 3]), user: 1)
            try txn.appendBehaviors(makeBehaviors(count: 20, start: 0, items: 20, seed: 1), user: 1)
        }
        return (dir, store)
    }

    @Test func aHealthyStoreIsClean() throws {
        let (_, store) = try populated()
        let r = try store.read { try $0.verify() }
        #expect(r.isClean, "\(r.problems)")
        #expect(r.checked["items"] == 20 && r.checked["histories"] == 3 && r.checked["titles"] == 1 && r.checked["profiles"] == 1)
    }

    @Test func everyKindOfDamageIsNamed() throws {
        let (_, store) = try populated()
        let good = try store.read { txn in
            let raw = try txn.bytes(store.tables.items, 3)
            return Array(try #require(raw))
        }
        var badVersion = good
        badVersion[0] = 9
        try plantRaw(store, table: \.items, id: 3, bytes: badVersion)
        try plantRaw(store, table: \.items, id: 4, bytes: [1, 7, 0] + Array(good[3...]))  // codebook 7
        var nanMagnitude = good
        // Payload: 3 × 4-bit codes (bits 0–11), then 3 float16 magnitudes; all-ones magnitudes are NaN.
        nanMagnitude[4] |= 0xF0
        for i in 5..<nanMagnitude.count { nanMagnitude[i] = 0xFF }
        try plantRaw(store, table: \.items, id: 5, bytes: nanMagnitude)
        try plantRaw(store, table: \.profiles, id: 1, bytes: [1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0])
        try plantRaw(store, table: \.titles, id: 1, bytes: [1, 0xFF, 0xFE])
        // A history segment with a flipped byte in its zstd frame.
        try store.write { txn in
            let key = SegmentKey(user: 1, segment: 1)
            var bytes = try #require(try txn.bytes(store.tables.histories, key).map(Array.init))
            bytes[bytes.count - 6] ^= 0xFF
            try txn.put(store.tables.histories, key, bytes)
        }
        let r = try store.read { try $0.verify() }
        #expect(!r.isClean)
        let byKey = Dictionary(r.problems.map { ("\($0.table)[\($0.key)]", $0.reason) }, uniquingKeysWith: { a, _ in a })
        #expect(byKey["items[3]"] == "unknown format version 9")
        #expect(byKey["items[4]"] == "codebook 7 is not stored (or is damaged)")
        #expect(byKey["items[5]"] == "a magnitude is not finite")
        #expect(byKey["profiles[1]"] == "checksum mismatch")
        #expect(byKey["titles[1]"] == "title is not valid UTF-8")
        #expect(byKey["histories[1/1]"] != nil)
        #expect(r.problemCount == 6, "\(r.problems)")
    }
}
