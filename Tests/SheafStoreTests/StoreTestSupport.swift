import Foundation
import SheafCodebook
import SheafRandom
@testable import SheafStore

/// A fresh temporary store directory per test, removed when the value is released.
final class TempDirectory {
    let path: String

    init(_ name: String = "store") {
        path = NSTemporaryDirectory() + "sheaf-test-\(name)-\(UUID().uuidString)"
    }

    deinit { try? FileManager.default.removeItem(atPath: path) }
}

/// A random codebook of the given shape (cosine with magnitudes, or euclidean without).
func makeCodebook(
    id: UInt16 = 1, dimension: Int, levels: Int = 3, codes: Int = 16, magnitudes: MagnitudeEncoding = .uint8,
    seed: UInt64 = 1
) throws -> Codebook {
    var rng = SplitMix64(seed: seed)
    let centroids = (0..<(levels * codes * dimension)).map { _ in rng.float(-1, 1) }
    let ranges = magnitudes == .uint8 ? (0..<levels).map { _ in MagnitudeRange(lower: 0, upper: 2) } : []
    return try Codebook(
        id: id, dimension: dimension, levels: levels, codesPerLevel: codes,
        metric: magnitudes == .none ? .euclidean : .cosine, magnitudeEncoding: magnitudes, magnitudeRanges: ranges,
        centroids: centroids, trainingStats: ["seed": Double(seed)])
}

/// Random codes (count × L) and magnitudes (count × L, or empty for `.none`) for `codebook`.
func makeCodes(_ codebook: Codebook, count: Int, seed: UInt64) -> (codes: [UInt32], magnitudes: [Float]) {
    var rng = SplitMix64(seed: seed)
    let n = count * codebook.levels
    let codes = (0..<n).map { _ in UInt32(rng.int(codebook.codesPerLevel)) }
    let mags = codebook.magnitudeEncoding == .none ? [] : (0..<n).map { _ in rng.float(0.05, 1.95) }
    return (codes, mags)
}

/// The scalar reference reconstruction of one item's stored code.
func referenceEmbedding(_ code: ItemCode, _ codebook: Codebook) -> [Float] {
    var out = [Float](repeating: 0, count: codebook.dimension)
    code.codes.withUnsafeBufferPointer { c in
        code.magnitudes.withUnsafeBufferPointer { m in
            codebook.decodeReference(codes: c.baseAddress!, magnitudes: m.baseAddress!, count: 1, into: &out)
        }
    }
    return out
}

/// Whether two float arrays agree within a relative tolerance.
func close(_ a: [Float], _ b: [Float], tolerance: Float = 1e-5) -> Bool {
    a.count == b.count && zip(a, b).allSatisfy { abs($0 - $1) <= tolerance * (1 + abs($1)) }
}

/// Writes raw bytes under an id key, bypassing every check (to plant corrupt records).
func plantRaw(_ store: Store, table: KeyPath<Store.Tables, Table<UInt64>>, id: UInt64, bytes: [UInt8]) throws {
    try store.write { (txn) throws in try txn.put(store.tables[keyPath: table], id, bytes) }
}

/// Random behaviours with increasing timestamps.
func makeBehaviors(count: Int, start: Int64, items: Int, width: Int = 0, seed: UInt64) -> [Behavior] {
    var rng = SplitMix64(seed: seed)
    var t = start
    return (0..<count).map { _ in
        t += Int64(rng.int(3))  // repeats allowed
        return Behavior(
            item: UInt64(rng.int(items)), timestamp: t, action: UInt16(rng.int(4)), label: Float(rng.int(5)),
            sideFeatures: (0..<width).map { _ in rng.float(-1, 1) })
    }
}
