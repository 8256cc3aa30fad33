import ArgumentParser
import Foundation
import SheafCLI
import SheafCodebook
import SheafRandom
import _SheafBench
import SheafStore

extension SheafMeasure {
    /// History fetch + decode latency for one history length, on a temporary store with random codes
    /// (decode cost does not depend on code quality: a speed measurement, not a quality result).
    /// Per request, interleaved in one run:
    ///   sheaf      read txn + history segments + SIMD decode into a reused n × D buffer
    ///   raw-rows   read txn + history (item ids) + one get per behaviour of a float32 row + copy
    ///   raw-blob   read txn + one get of the whole history stored as float32 rows + copy
    ///   memcpy     copying the same n × D × 4 output bytes from one buffer to another
    struct HistoryFetch: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "history-fetch",
            abstract: "History fetch + decode latency at one history length, beside float32 rows, a float32 blob and memcpy.")

        @Option(help: "Users stored (each with one history).")
        var users = 100
        @Option(help: "Behaviours per history.")
        var length = 1000
        @Option(help: "Items stored.")
        var items = 100_000
        @Option(help: "Embedding dimension D.")
        var dim = 384
        @Option(help: "Codebook levels L.")
        var levels = 3
        @Option(help: "Centroids per level K.")
        var codes = 4096
        @Option(help: "Measured requests (after 50 warm-up ones).")
        var reps = 2000
        @Flag(help: "Print JSON instead of a Markdown table.")
        var json = false

        func run() throws {
            let dir = NSTemporaryDirectory() + "sheaf-measure-\(UUID().uuidString)"
            defer { try? FileManager.default.removeItem(atPath: dir) }
            let store = try Store(path: dir, dimension: dim, options: .benchmark)
            var rng = SplitMix64(seed: 7)
            let D = dim
            let random = try RandomCodebook(
                dimension: D, levels: levels, codesPerLevel: codes, magnitudeEncoding: .uint8,
                magnitudeUppers: (0..<levels).map { $0 == 0 ? 1 : 0.5 }, rng: &rng)
            let cb = random.codebook
            try store.write { try $0.putCodebook(cb) }
            log("codebook: \(cb.layout)")

            // Items, coded and as raw float32 rows.
            let baselines = try BaselineTables(store: store)
            let chunk = 20_000
            var start = 0
            while start < items {
                let n = min(chunk, items - start)
                let ids = (start..<(start + n)).map(UInt64.init)
                let (codes, mags) = random.codes(count: n, rng: &rng)
                try store.write { try $0.putItems(ids: ids, codes: codes, magnitudes: mags) }
                let rows = try store.read { try $0.decodeItems(ids) }
                try rows.withUnsafeBufferPointer { try baselines.putItems(ids: ids, rows: $0) }
                start += n
            }
            log("items: \(items) coded at \(cb.bytesPerItem) B, and as \(D * 4)-byte float32 rows")

            // Histories, coded and as raw float32 blobs.
            for u in 0..<users {
                var t: Int64 = 1_600_000_000
                let behaviors = (0..<length).map { _ -> Behavior in
                    t += Int64(rng.next() % 600)
                    return Behavior(item: rng.next() % UInt64(items), timestamp: t, action: UInt16(rng.next() % 3), label: 1)
                }
                try store.write { txn in
                    try txn.appendBehaviors(behaviors, user: UInt64(u))
                    var rows: [Float] = []
                    _ = try txn.decodeHistory(user: UInt64(u), into: &rows)
                    try rows.withUnsafeBufferPointer { try baselines.putHistory(txn, user: UInt64(u), rows: $0) }
                }
            }
            log("users: \(users) × \(length) behaviours")

            let outBytes = length * D * 4
            var buffer = [Float](repeating: 0, count: length * D)
            var check = [Float](repeating: 0, count: length * D)
            let source = [Float](repeating: 1, count: length * D)
            // Percentiles take the lower neighbour of a fractional rank, as this command always has.
            var sheaf = LatencySamples(rounding: .towardZero), segmentsOnly = LatencySamples(rounding: .towardZero)
            var rawRows = LatencySamples(rounding: .towardZero), rawBlob = LatencySamples(rounding: .towardZero)
            var copy = LatencySamples(rounding: .towardZero)
            var storedBytes = 0
            for u in 0..<users { storedBytes += try store.read { try $0.historyStoredBytes(user: UInt64(u)) } }

            // Correctness once: the decoded history equals its stored float32 rows.
            try store.read { txn in
                _ = try txn.decodeHistory(user: 0, into: &buffer)
                _ = try check.withUnsafeMutableBufferPointer {
                    try baselines.readHistory(txn, user: 0, into: $0.baseAddress!, capacity: $0.count)
                }
            }
            precondition(buffer == check, "decoded history differs from its raw rows")

            for rep in 0..<(reps + 50) {
                let user = UInt64(rng.next() % UInt64(users))
                var t0 = monotonicNanoseconds()
                try store.read { txn in _ = try txn.decodeHistory(user: user, into: &buffer) }
                var t1 = monotonicNanoseconds()
                if rep >= 50 { sheaf.add(nanoseconds: t1 - t0) }

                t0 = monotonicNanoseconds()
                _ = try store.read { txn in try txn.history(user: user) }
                t1 = monotonicNanoseconds()
                if rep >= 50 { segmentsOnly.add(nanoseconds: t1 - t0) }

                t0 = monotonicNanoseconds()
                try store.read { txn in
                    let h = try txn.history(user: user)!
                    _ = try buffer.withUnsafeMutableBufferPointer { try baselines.readItems(txn, ids: h.itemIDs, into: $0.baseAddress!) }
                }
                t1 = monotonicNanoseconds()
                if rep >= 50 { rawRows.add(nanoseconds: t1 - t0) }

                t0 = monotonicNanoseconds()
                try store.read { txn in
                    _ = try buffer.withUnsafeMutableBufferPointer {
                        try baselines.readHistory(txn, user: user, into: $0.baseAddress!, capacity: $0.count)
                    }
                }
                t1 = monotonicNanoseconds()
                if rep >= 50 { rawBlob.add(nanoseconds: t1 - t0) }

                t0 = monotonicNanoseconds()
                buffer.withUnsafeMutableBytes { dst in source.withUnsafeBytes { dst.copyMemory(from: $0) } }
                t1 = monotonicNanoseconds()
                if rep >= 50 { copy.add(nanoseconds: t1 - t0) }
            }

            let perHistory = Double(storedBytes) / Double(users)
            let rows: [(String, LatencySamples)] = [
                ("sheaf fetch+decode", sheaf), ("sheaf fetch only (segments, no decode)", segmentsOnly),
                ("raw float32 rows, get per behaviour", rawRows), ("raw float32 history blob, one get", rawBlob),
                ("memcpy of the output bytes", copy),
            ]
            let machine = MachineReport.current
            if json {
                var obj: [String: Any] = [
                    "dimension": D, "levels": levels, "codes": codes, "magnitudes": "uint8", "length": length,
                    "users": users, "items": items, "reps": reps, "decode_isa": Codebook.decodeInstructionSet,
                    "output_bytes": outBytes, "stored_bytes_per_history": perHistory,
                    "blas_core": machine.blasCoreSelection, "cpu": machine.cpu, "cpu_features": machine.cpuFeatures,
                ]
                for (name, s) in rows { obj[name] = ["p50_us": s.p50, "p99_us": s.p99] }
                let data = try JSONSerialization.data(withJSONObject: obj, options: [.prettyPrinted, .sortedKeys])
                print(String(decoding: data, as: UTF8.self))
            } else {
                print("machine: \(machine.summary)")
                print("history fetch + decode: \(length) behaviours, D=\(D), L=\(levels), K=\(codes), 8-bit magnitudes, kernel \(Codebook.decodeInstructionSet)")
                print("output \(outBytes) B per history; stored \(Int(perHistory)) B per history (\(String(format: "%.1f", Double(outBytes) / perHistory))× fewer bytes fetched than float32)")
                print("| path | p50 µs | p99 µs | p50 vs sheaf |")
                print("|---|---:|---:|---:|")
                for (name, s) in rows {
                    print("| \(name) | \(String(format: "%.1f", s.p50)) | \(String(format: "%.1f", s.p99)) | \(String(format: "%.2f×", s.p50 / sheaf.p50)) |")
                }
            }
        }
    }
}
