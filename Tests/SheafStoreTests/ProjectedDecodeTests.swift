import Foundation
import SheafCodebook
import SheafRandom
import Testing

@testable import SheafStore

/// Decodes `through:` a linear projection against the plain decode followed by `projection.apply`.
@Suite struct ProjectedDecodeTests {
    static func projection(_ d: Int, _ h: Int, seed: UInt64, bias: Bool = true) throws -> LinearProjection {
        var rng = SplitMix64(seed: seed)
        return try LinearProjection(
            weight: (0..<(d * h)).map { _ in rng.float(-0.5, 0.5) }, inputDimension: d, outputDimension: h,
            bias: bias ? (0..<h).map { _ in rng.float(-1, 1) } : nil)
    }

    /// Decoded rows (n × D) through `p` with sgemm: the dense path.
    static func dense(_ rows: [Float], _ p: LinearProjection) -> [Float] {
        let n = rows.count / p.inputDimension
        var out = [Float](repeating: 0, count: n * p.outputDimension)
        p.apply(to: rows, count: n, into: &out)
        return out
    }

    /// Items, one history in every selection, and a batch of histories, both code sources: each
    /// within float32 rounding of decode-then-matmul, with the same report.
    @Test func projectedDecodesMatchDecodeThenMatmul() throws {
        let dir = TempDirectory()
        let (store, _) = try HistoryDecodeTests().codedStore(dir)
        let bs = makeBehaviors(count: 23, start: 0, items: 40, seed: 9)
        try store.write { (txn) throws in
            try txn.appendBehaviors(bs, user: 3)
            try txn.appendBehaviors(makeBehaviors(count: 9, start: 0, items: 40, seed: 10), user: 4)
        }
        let p = try Self.projection(11, 13, seed: 1)
        try store.read { (txn) throws in
            let ids = bs.map(\.item)
            #expect(close(try txn.decodeItems(ids, through: p), Self.dense(try txn.decodeItems(ids), p)))
            // No ids: empty results, whether the output has storage or not.
            #expect(try txn.decodeItems([UInt64]()).isEmpty)
            #expect(try txn.decodeItems([UInt64](), through: p).isEmpty)
            #expect(try txn.decodeItems([UInt64](), into: UnsafeMutableBufferPointer<Float>(start: nil, count: 0)).rows == 0)
            let range = bs[4].timestamp..<bs[15].timestamp
            for selection: HistorySelection in [.all, .last(7), .timeRange(range)] {
                for source: DecodeOptions.CodeSource in [.inline, .itemsTable] {
                    let options = DecodeOptions(codeSource: source)
                    var plain: [Float] = [], projected: [Float] = [1, 2, 3]  // a reused buffer, resized
                    let a = try #require(try txn.decodeHistory(user: 3, selection, into: &plain, options: options))
                    let b = try #require(try txn.decodeHistory(user: 3, selection, through: p, into: &projected, options: options))
                    #expect(b.0.behaviors == a.0.behaviors)
                    #expect(b.1 == a.1)
                    #expect(projected.count == a.0.count * 13)
                    #expect(close(projected, Self.dense(plain, p)), "\(selection) \(source)")
                }
            }
            var plain: [Float] = [], projected: [Float] = []
            let a = try txn.decodeHistories(users: [4, 99, 3], .last(6), into: &plain)
            let b = try txn.decodeHistories(users: [4, 99, 3], .last(6), through: p, into: &projected)
            #expect(b.rowOffsets == a.rowOffsets && b.rowOffsets == [0, 6, 6, 12])
            #expect(close(projected, Self.dense(plain, p)))
            // The single-history call writes the same rows as the batch.
            var single: [Float] = []
            _ = try txn.decodeHistory(user: 3, .last(6), through: p, into: &single)
            #expect(single == Array(projected[(6 * 13)...]))
        }
    }

    /// A missing item's row is the bias (the projection of the zero row the plain decode writes),
    /// or zeros without a bias; `.fail` still names the items.
    @Test func missingItemsGetTheBias() throws {
        let dir = TempDirectory()
        let (store, _) = try HistoryDecodeTests().codedStore(dir, items: 10, skip: [3, 7])
        let bs = (0..<10).map { Behavior(item: UInt64($0), timestamp: Int64($0)) }
        try store.write { try $0.appendBehaviors(bs, user: 1) }
        let p = try Self.projection(11, 5, seed: 2)
        #expect(throws: StoreError.missingItems([3, 7])) {
            try store.read { (txn) throws in
                var rows: [Float] = []
                return try txn.decodeHistory(user: 1, through: p, into: &rows)?.1
            }
        }
        let zeroFill = DecodeOptions(missingItems: .zeroFill)
        try store.read { (txn) throws in
            var rows: [Float] = []
            let (_, report) = try #require(try txn.decodeHistory(user: 1, through: p, into: &rows, options: zeroFill))
            #expect(report.missingRows == [3, 7])
            #expect(Array(rows[15..<20]) == p.bias!)
            #expect(Array(rows[35..<40]) == p.bias!)
            var plain: [Float] = []
            _ = try txn.decodeHistory(user: 1, into: &plain, options: zeroFill)
            #expect(close(rows, Self.dense(plain, p)))
            // Items alone, the first of them missing (before any codebook was met).
            let items = try txn.decodeItems([3, 1], through: try Self.projection(11, 5, seed: 3, bias: false), options: zeroFill)
            #expect(Array(items[0..<5]) == [0, 0, 0, 0, 0])
            #expect(items[5..<10].contains { $0 != 0 })
        }
    }

    /// A history whose codes come from two codebooks decodes each row through its own codebook's tables.
    @Test func mixedCodebooksUseTheirOwnTables() throws {
        let dir = TempDirectory()
        let (store, _) = try HistoryDecodeTests().codedStore(dir, items: 20)
        let bs = makeBehaviors(count: 12, start: 0, items: 20, seed: 4)
        try store.write { try $0.appendBehaviors(bs, user: 2) }
        let cb2 = try makeCodebook(id: 2, dimension: 11, levels: 2, codes: 256, magnitudes: .float16, seed: 77)
        let (c, m) = makeCodes(cb2, count: 20, seed: 8)
        try store.write { (txn) throws in
            try txn.putCodebook(cb2)
            try txn.putItems(ids: (0..<20).map(UInt64.init), codes: c, magnitudes: m)
            try txn.appendBehaviors([Behavior(item: 5, timestamp: 1_000_000)], user: 2)  // tail re-coded with codebook 2
        }
        let p = try Self.projection(11, 9, seed: 4)
        try store.read { (txn) throws in
            var plain: [Float] = [], projected: [Float] = []
            _ = try txn.decodeHistory(user: 2, into: &plain)
            _ = try txn.decodeHistory(user: 2, through: p, into: &projected)
            #expect(close(projected, Self.dense(plain, p)))
        }
    }

    /// The float16 option reads half copies of the tables: close to the float32 tables' rows.
    @Test func halfTables() throws {
        let dir = TempDirectory()
        let (store, _) = try HistoryDecodeTests().codedStore(dir)
        try store.write { try $0.appendBehaviors(makeBehaviors(count: 17, start: 0, items: 40, seed: 12), user: 8) }
        let p = try Self.projection(11, 16, seed: 5)
        try store.read { (txn) throws in
            var full: [Float] = [], half: [Float] = []
            _ = try txn.decodeHistory(user: 8, through: p, into: &full)
            _ = try txn.decodeHistory(user: 8, through: p, into: &half, options: DecodeOptions(centroidPrecision: .float16))
            #expect(full != half)
            #expect(close(half, full, tolerance: 2e-3))
        }
    }

    /// A projection of another width than the store's D is refused before anything is written.
    @Test func wrongInputWidthIsRefusedAndTheBufferKept() throws {
        let dir = TempDirectory()
        let (store, _) = try HistoryDecodeTests().codedStore(dir)
        try store.write { try $0.appendBehaviors(makeBehaviors(count: 5, start: 0, items: 40, seed: 1), user: 1) }
        let p = try Self.projection(12, 4, seed: 6)
        var buffer: [Float] = [7, 8, 9]
        #expect(throws: StoreError.dimensionMismatch(stored: 11, requested: 12)) {
            try store.read { (txn) throws in try txn.decodeHistory(user: 1, through: p, into: &buffer)?.1 }
        }
        #expect(buffer == [7, 8, 9])
        #expect(throws: StoreError.dimensionMismatch(stored: 11, requested: 12)) {
            try store.read { (txn) throws in try txn.decodeHistories(users: [1], through: p, into: &buffer).rowOffsets }
        }
        #expect(buffer == [7, 8, 9])
        #expect(throws: StoreError.dimensionMismatch(stored: 11, requested: 12)) {
            try store.read { (txn) throws in try txn.decodeItems([1], through: p) }
        }
    }
}
