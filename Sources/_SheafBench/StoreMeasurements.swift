import SheafCodebook
import SheafRandom
import SheafStore

/// Latency of fetching users' whole histories as embeddings, Sheaf beside its baselines, measured
/// interleaved request by request in one run (so machine noise hits every path alike).
public struct HistoryLatency: Sendable, Codable {
    public struct Path: Sendable, Codable {
        public var p50Microseconds: Double
        public var p99Microseconds: Double
        init(_ s: LatencySamples) {
            p50Microseconds = s.p50
            p99Microseconds = s.p99
        }
    }
    /// Users measured, and requests made (each picks a user at random).
    public var users: Int
    public var requests: Int
    /// Mean behaviours per request.
    public var meanLength: Double
    /// Mean bytes Sheaf fetched per history (its segment values), and float32 bytes of the same rows.
    public var sheafBytesPerHistory: Double
    public var float32BytesPerHistory: Double
    /// Read transaction + history segments + SIMD decode into a reused buffer (float32 centroids, the default).
    public var sheaf: Path
    /// The same with `DecodeOptions.centroidPrecision = .float16`.
    public var sheafHalf: Path
    /// Read transaction + history segments only (item ids, timestamps, codes; no decode).
    public var sheafSegmentsOnly: Path
    /// Read transaction + history item ids + one get of a float32 row per behaviour + copy.
    public var rawRows: Path
    /// Read transaction + one get of the whole history as float32 rows + copy.
    public var rawBlob: Path
    /// memcpy of the same output bytes, buffer to buffer.
    public var memcpy: Path
    /// memset of the same output bytes: the floor for any decoder that writes float32 rows.
    public var memset: Path
    /// Mean cosine between decoded and original rows over the checked users (a sanity check that
    /// the measured path decodes the right items; not a quality result on synthetic data).
    public var decodedCosine: Double
}

public enum StoreMeasurements {
    /// Measures `requests` history fetches over `users` (each must have both raw tables filled).
    public static func historyLatency(
        store: Store, baselines: BaselineTables, users: [UInt64], requests: Int, warmup: Int = 20, seed: UInt64 = 11
    ) throws -> HistoryLatency {
        precondition(!users.isEmpty)
        let D = store.dimension
        var lengths: [UInt64: Int] = [:]
        var sheafBytes = 0.0
        try store.read { txn in
            for u in users {
                lengths[u] = try txn.historyCount(user: u)
                sheafBytes += Double(try txn.historyStoredBytes(user: u))
            }
        }
        let longest = lengths.values.max() ?? 0
        var decoded: [Float] = []
        decoded.reserveCapacity(longest * D)
        let raw = AlignedFloats(count: max(1, longest * D))
        let source = AlignedFloats(count: max(1, longest * D), value: 1)
        let copyTarget = AlignedFloats(count: max(1, longest * D))

        // Sanity: decoded rows against their original float32 rows, for up to 8 users.
        var cosSum = 0.0, cosCount = 0
        try store.read { txn in
            for u in users.prefix(8) {
                _ = try txn.decodeHistory(user: u, into: &decoded)
                let n = try baselines.readHistory(txn, user: u, into: raw.pointer, capacity: raw.count)
                precondition(n * D == decoded.count, "raw and Sheaf histories of user \(u) differ in length")
                cosSum += decoded.withUnsafeBufferPointer { rowCosineSum($0.baseAddress!, raw.pointer, rows: n, dimension: D) }
                cosCount += n
            }
        }

        var rng = SplitMix64(seed: seed)
        var sheaf = LatencySamples(), half = LatencySamples(), segments = LatencySamples(), rows = LatencySamples()
        let halfOptions = DecodeOptions(centroidPrecision: .float16)
        var blob = LatencySamples(), copy = LatencySamples(), fill = LatencySamples()
        var lengthSum = 0
        for rep in 0..<(requests + warmup) {
            let user = users[Int(rng.next() % UInt64(users.count))]
            let keep = rep >= warmup
            var t0 = monotonicNanoseconds()
            try store.read { txn in _ = try txn.decodeHistory(user: user, into: &decoded) }
            var t1 = monotonicNanoseconds()
            if keep { sheaf.add(nanoseconds: t1 - t0) }

            t0 = monotonicNanoseconds()
            try store.read { txn in _ = try txn.decodeHistory(user: user, into: &decoded, options: halfOptions) }
            t1 = monotonicNanoseconds()
            if keep { half.add(nanoseconds: t1 - t0) }

            t0 = monotonicNanoseconds()
            try store.read { txn in blackHole(try txn.history(user: user)) }
            t1 = monotonicNanoseconds()
            if keep { segments.add(nanoseconds: t1 - t0) }

            t0 = monotonicNanoseconds()
            try store.read { txn in
                let h = try txn.history(user: user)!
                _ = try baselines.readItems(txn, ids: h.itemIDs, into: raw.pointer)
            }
            t1 = monotonicNanoseconds()
            if keep { rows.add(nanoseconds: t1 - t0) }

            t0 = monotonicNanoseconds()
            try store.read { txn in _ = try baselines.readHistory(txn, user: user, into: raw.pointer, capacity: raw.count) }
            t1 = monotonicNanoseconds()
            if keep { blob.add(nanoseconds: t1 - t0) }

            let bytes = (lengths[user] ?? 0) * D * 4
            t0 = monotonicNanoseconds()
            UnsafeMutableRawPointer(copyTarget.pointer).copyMemory(from: source.pointer, byteCount: bytes)
            t1 = monotonicNanoseconds()
            if keep {
                copy.add(nanoseconds: t1 - t0)
                lengthSum += lengths[user] ?? 0
            }

            t0 = monotonicNanoseconds()
            UnsafeMutableRawPointer(copyTarget.pointer).initializeMemory(as: UInt8.self, repeating: UInt8(rep & 0x7F), count: bytes)
            t1 = monotonicNanoseconds()
            if keep { fill.add(nanoseconds: t1 - t0) }
        }
        let meanLength = Double(lengthSum) / Double(max(1, requests))
        let meanUsers = Double(lengths.values.reduce(0, +)) / Double(users.count)
        return HistoryLatency(
            users: users.count, requests: requests, meanLength: meanLength,
            sheafBytesPerHistory: sheafBytes / Double(users.count), float32BytesPerHistory: meanUsers * Double(D * 4),
            sheaf: .init(sheaf), sheafHalf: .init(half), sheafSegmentsOnly: .init(segments), rawRows: .init(rows), rawBlob: .init(blob),
            memcpy: .init(copy), memset: .init(fill), decodedCosine: cosCount > 0 ? cosSum / Double(cosCount) : 0)
    }

    /// Random item reads per second: Sheaf's packed record get, Sheaf's get + decode, and the raw
    /// float32 row get + copy, `perTransaction` reads per read transaction, over `ids` (which must
    /// all have raw rows).
    public struct ItemGets: Sendable, Codable {
        public var perTransaction: Int
        public var reads: Int
        public var sheafRecordGetsPerSecond: Double
        public var sheafDecodedGetsPerSecond: Double
        public var rawRowGetsPerSecond: Double
    }

    public static func itemGets(
        store: Store, baselines: BaselineTables, ids: [UInt64], perTransaction: Int, reads: Int, seed: UInt64 = 13
    ) throws -> ItemGets {
        precondition(!ids.isEmpty && perTransaction >= 1)
        let D = store.dimension
        var rng = SplitMix64(seed: seed)
        let batches = max(1, reads / perTransaction)
        let order = (0..<(batches * perTransaction)).map { _ in ids[Int(rng.next() % UInt64(ids.count))] }
        let out = AlignedFloats(count: perTransaction * D)
        var sink: UInt64 = 0
        // Interleaved in rounds, best round kept per path.
        var best = (record: Double.infinity, decoded: Double.infinity, raw: Double.infinity)
        for _ in 0..<5 {
            var t0 = monotonicNanoseconds()
            for b in 0..<batches {
                try store.read { txn in
                    for id in order[(b * perTransaction)..<((b + 1) * perTransaction)] {
                        _ = try txn.withPackedItem(id) { _, bytes in sink &+= UInt64(bytes.count) }
                    }
                }
            }
            var t1 = monotonicNanoseconds()
            best.record = min(best.record, Double(t1 - t0))

            t0 = monotonicNanoseconds()
            for b in 0..<batches {
                try store.read { txn in
                    _ = try txn.decodeItems(order[(b * perTransaction)..<((b + 1) * perTransaction)], into: out.buffer)
                }
            }
            t1 = monotonicNanoseconds()
            best.decoded = min(best.decoded, Double(t1 - t0))

            t0 = monotonicNanoseconds()
            for b in 0..<batches {
                try store.read { txn in
                    _ = try baselines.readItems(txn, ids: order[(b * perTransaction)..<((b + 1) * perTransaction)], into: out.pointer)
                }
            }
            t1 = monotonicNanoseconds()
            best.raw = min(best.raw, Double(t1 - t0))
        }
        blackHole(sink)
        let n = Double(batches * perTransaction)
        return ItemGets(
            perTransaction: perTransaction, reads: batches * perTransaction,
            sheafRecordGetsPerSecond: n / (best.record / 1e9), sheafDecodedGetsPerSecond: n / (best.decoded / 1e9),
            rawRowGetsPerSecond: n / (best.raw / 1e9))
    }
}

// MARK: - Histories into a model's first layer

/// Latency of turning a user's whole history into a model's inputs x · W + b (W: D × H), measured
/// interleaved request by request in one run, for one width H:
///   projected   read txn + history segments + projected decode (tables C_l · W, n × H written)
///   rows+sgemm  read txn + history item ids + one get of a float32 row per behaviour + sgemm
///   decode+sgemm read txn + Sheaf decode to n × D + sgemm
///   blob+sgemm  read txn + one get of the whole history as float32 rows + sgemm
/// The projected tables are built once before the timed requests (as a serving process keeps them).
public struct ProjectedLatency: Sendable, Codable {
    public var width: Int
    public var users: Int
    public var requests: Int
    public var meanLength: Double
    /// L × K × H × 4 bytes of projected tables.
    public var tableBytes: Int
    public var projected: HistoryLatency.Path
    public var rowsThenGemm: HistoryLatency.Path
    public var decodeThenGemm: HistoryLatency.Path
    public var blobThenGemm: HistoryLatency.Path
    /// Largest |projected − decode-then-sgemm| over the checked users, relative to the largest |value|.
    public var worstRelativeDifference: Double
}

extension StoreMeasurements {
    /// Measures `requests` history → model-input conversions over `users` (each with both raw tables
    /// filled) at width `width`, with a random projection (normal, std 1/√D, and a bias; fixed seed).
    public static func projectedLatency(
        store: Store, baselines: BaselineTables, users: [UInt64], requests: Int, width: Int, warmup: Int = 20, seed: UInt64 = 17
    ) throws -> ProjectedLatency {
        precondition(!users.isEmpty && width >= 1)
        let D = store.dimension
        var rng = SplitMix64(seed: seed)
        let scale = Float(1 / Double(D).squareRoot())
        let projection = try LinearProjection(
            weight: (0..<(D * width)).map { _ in Float(rng.normal()) * scale }, inputDimension: D, outputDimension: width,
            bias: (0..<width).map { _ in Float(rng.normal()) * 0.1 })
        var lengths: [UInt64: Int] = [:]
        try store.read { txn in for u in users { lengths[u] = try txn.historyCount(user: u) } }
        let longest = lengths.values.max() ?? 0
        var decoded: [Float] = [], projected: [Float] = []
        decoded.reserveCapacity(longest * D)
        projected.reserveCapacity(longest * width)
        let raw = AlignedFloats(count: max(1, longest * D))
        let out = AlignedFloats(count: max(1, longest * width))

        // Build (and cache) the tables, and check the projected decode against decode-then-sgemm.
        var worst = 0.0, largest = 0.0
        var tableBytes = 0
        try store.read { txn in
            if let cb = try txn.activeCodebook() { tableBytes = try cb.projected(by: projection).tableBytes() }
            for u in users.prefix(8) {
                _ = try txn.decodeHistory(user: u, through: projection, into: &projected)
                _ = try txn.decodeHistory(user: u, into: &decoded)
                let n = decoded.count / D
                decoded.withUnsafeBufferPointer { projection.apply(to: $0.baseAddress!, count: n, into: out.pointer) }
                for i in 0..<(n * width) {
                    worst = max(worst, Double(abs(projected[i] - out.pointer[i])))
                    largest = max(largest, Double(abs(out.pointer[i])))
                }
            }
        }

        var pro = LatencySamples(), rows = LatencySamples(), dec = LatencySamples(), blob = LatencySamples()
        var lengthSum = 0
        for rep in 0..<(requests + warmup) {
            let user = users[Int(rng.next() % UInt64(users.count))]
            let keep = rep >= warmup
            let n = lengths[user] ?? 0
            var t0 = monotonicNanoseconds()
            try store.read { txn in _ = try txn.decodeHistory(user: user, through: projection, into: &projected) }
            var t1 = monotonicNanoseconds()
            if keep { pro.add(nanoseconds: t1 - t0) }

            t0 = monotonicNanoseconds()
            try store.read { txn in
                let h = try txn.history(user: user)!
                _ = try baselines.readItems(txn, ids: h.itemIDs, into: raw.pointer)
            }
            projection.apply(to: raw.pointer, count: n, into: out.pointer)
            t1 = monotonicNanoseconds()
            if keep { rows.add(nanoseconds: t1 - t0) }

            t0 = monotonicNanoseconds()
            try store.read { txn in _ = try txn.decodeHistory(user: user, into: &decoded) }
            decoded.withUnsafeBufferPointer { projection.apply(to: $0.baseAddress!, count: n, into: out.pointer) }
            t1 = monotonicNanoseconds()
            if keep { dec.add(nanoseconds: t1 - t0) }

            t0 = monotonicNanoseconds()
            try store.read { txn in _ = try baselines.readHistory(txn, user: user, into: raw.pointer, capacity: raw.count) }
            projection.apply(to: raw.pointer, count: n, into: out.pointer)
            t1 = monotonicNanoseconds()
            if keep {
                blob.add(nanoseconds: t1 - t0)
                lengthSum += n
            }
        }
        return ProjectedLatency(
            width: width, users: users.count, requests: requests, meanLength: Double(lengthSum) / Double(max(1, requests)),
            tableBytes: tableBytes, projected: .init(pro), rowsThenGemm: .init(rows), decodeThenGemm: .init(dec), blobThenGemm: .init(blob),
            worstRelativeDifference: largest > 0 ? worst / largest : 0)
    }
}
