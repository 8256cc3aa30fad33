import ArgumentParser
import Foundation
import SheafCLI
import SheafCodebook
import SheafFormats
import SheafStore
import _SheafBench

extension SheafMeasure.Bench {
    /// Real data (MovieLens-100K + MiniLM, or the quick stand-in) loaded with the `sheaf` CLI:
    /// history fetch + decode latency over all users, item gets, `.npy` load and append rates,
    /// beside float32 rows and blobs in the same LMDB.
    struct Real: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "real", abstract: "Real items and behaviours through the sheaf CLI, beside float32 baselines.")

        @OptionGroup var output: SuiteOutput
        @OptionGroup var location: StoreLocation
        @Option(help: "The item embeddings (.npy).")
        var embeddings: String
        @Option(help: "The item ids (.npy), one per embedding row.")
        var ids: String
        @Option(help: "The behaviour file.")
        var behaviors: String
        @Option(help: "The behaviour file's format.")
        var format = BehaviorFormat.recbole
        @Option(help: "History requests measured.")
        var requests = 2000
        @Option(help: "The dataset's name in the rows.")
        var name = "movielens-100k"
        @Option(help: "Write the users and their items here, for tools/lmdb_baseline.py.")
        var probe: String?

        func run() throws {
            let out = output.out
            let idsPath = self.ids
            let (dir, keep) = location.directory("real")
            defer { if !keep { try? FileManager.default.removeItem(atPath: dir) } }

            let file = try EmbeddingFile(path: embeddings)
            let d = file.dimension
            let ids = try IDFile.read(path: idsPath)
            _ = try runSheaf(["init", dir, "--dim", "\(d)"])
            let trainSeconds = try runSheaf(["codebook", "train", dir, "--input", embeddings, "--levels", "4", "--codes", "256", "--magnitude-bits", "8", "-q"])
            let loadSeconds = try runSheaf(["items", "load", dir, "--input", embeddings, "--ids", idsPath, "-q"])
            let behaviorSeconds = try runSheaf(["behaviors", "load", dir, "--input", behaviors, "--format", format.rawValue, "-q"])
            log("\(name): trained in \(String(format: "%.1f", trainSeconds)) s, items loaded in \(String(format: "%.2f", loadSeconds)) s, behaviours in \(String(format: "%.2f", behaviorSeconds)) s")

            var options = StoreOptions()
            options.durable = false
            let store = try Store(path: dir, options: options)
            let baselines = try BaselineTables(store: store)
            // Baseline load: the same .npy, read in chunks, rows put under ascending ids.
            let t0 = monotonicNanoseconds()
            let all = try EmbeddingFile(path: embeddings).read(rows: 0..<file.count)
            let order = ids.indices.sorted { ids[$0] < ids[$1] }
            var sortedRows = [Float](repeating: 0, count: all.count)
            for (r, i) in order.enumerated() { for t in 0..<d { sortedRows[r * d + t] = all[i * d + t] } }
            try sortedRows.withUnsafeBufferPointer { try baselines.putItems(ids: order.map { ids[$0] }, rows: $0) }
            let rawLoadSeconds = Double(monotonicNanoseconds() - t0) / 1e9
            var rowOf: [UInt64: Int] = [:]
            for (i, id) in ids.enumerated() { rowOf[id] = i }

            // Baseline histories: every user's rows as one float32 blob; Sheaf's behaviours re-appended to a
            // second store through the library, for the append rate on the same behaviours.
            // The users are those of the behaviour file.
            var seen = Set<UInt64>()
            try BehaviorFileReader(path: behaviors, format: format).forEach { r, _ in
                seen.insert(r.user)
                return true
            }
            var users = Array(seen)
            users.sort()
            var histories: [UInt64: History] = [:]
            try store.read { txn in for u in users { histories[u] = try txn.history(user: u) } }
            var rawBehaviours = 0
            let t1 = monotonicNanoseconds()
            try store.write { txn in
                for u in users {
                    let h = histories[u]!
                    var blob = [Float](repeating: 0, count: h.count * d)
                    for (r, id) in h.itemIDs.enumerated() {
                        let src = rowOf[id]!
                        for t in 0..<d { blob[r * d + t] = all[src * d + t] }
                    }
                    try blob.withUnsafeBufferPointer { try baselines.putHistory(txn, user: u, rows: $0) }
                    rawBehaviours += h.count
                }
            }
            let rawAppendSeconds = Double(monotonicNanoseconds() - t1) / 1e9
            let appendDir = dir + "-append"
            defer { try? FileManager.default.removeItem(atPath: appendDir) }
            let appendStore = try Store(path: appendDir, dimension: d, options: options)
            try appendStore.write { txn in
                let cb = try store.read { try $0.activeCodebook()! }
                try txn.putCodebook(cb)
                for chunk in stride(from: 0, to: ids.count, by: 4096) {
                    let part = Array(ids[chunk..<min(ids.count, chunk + 4096)])
                    let codes = try store.read { rt in try part.map { try rt.item($0)! } }
                    try txn.putItems(ids: part, codes: codes.flatMap(\.codes), magnitudes: codes.flatMap(\.magnitudes))
                }
            }
            let t2 = monotonicNanoseconds()
            try appendStore.write { txn in
                for u in users {
                    let h = histories[u]!
                    let bs = (0..<h.count).map { Behavior(item: h.itemIDs[$0], timestamp: h.timestamps[$0], action: h.actions[$0], label: h.labels[$0]) }
                    try txn.appendBehaviors(bs, user: u)
                }
            }
            let appendSeconds = Double(monotonicNanoseconds() - t2) / 1e9

            let latency = try StoreMeasurements.historyLatency(store: store, baselines: baselines, users: users, requests: requests)
            var rows = storeRows(section: "store", dataset: name, latency: latency, bucket: "all", dimension: d)
            for h in SheafMeasure.Bench.projectedWidths {
                let p = try StoreMeasurements.projectedLatency(store: store, baselines: baselines, users: users, requests: requests, width: h)
                log("\(name): histories → H=\(h) inputs: projected p50 \(String(format: "%.1f", p.projected.p50Microseconds)) µs, rows+sgemm \(String(format: "%.1f", p.rowsThenGemm.p50Microseconds)) µs, decode+sgemm \(String(format: "%.1f", p.decodeThenGemm.p50Microseconds)) µs, blob+sgemm \(String(format: "%.1f", p.blobThenGemm.p50Microseconds)) µs")
                rows += projectedRows(dataset: name, latency: p, bucket: "all", dimension: d)
            }
            for per in [1, 100] {
                let gets = try StoreMeasurements.itemGets(store: store, baselines: baselines, ids: ids, perTransaction: per, reads: per == 1 ? 20_000 : 100_000)
                rows += itemGetRows(dataset: name, gets: gets, dimension: d)
            }
            rows.append(ReportRow(section: "ingest", key: "ingest/\(name)/npy-load", label: "items loaded end to end from .npy (`sheaf items load`), D=\(d)", unit: "items/s",
                                  sheaf: Double(ids.count) / loadSeconds, baselineName: "float32 rows from the same .npy put into LMDB", baseline: Double(ids.count) / rawLoadSeconds,
                                  better: "higher", params: ["items": "\(ids.count)"]))
            rows.append(ReportRow(section: "ingest", key: "ingest/\(name)/append", label: "behaviours appended (whole histories), D=\(d)", unit: "behaviours/s",
                                  sheaf: Double(rawBehaviours) / appendSeconds, baselineName: "float32 history blobs put", baseline: Double(rawBehaviours) / rawAppendSeconds,
                                  better: "higher", params: ["behaviours": "\(rawBehaviours)"]))
            if let p = probe {
                try writeJSON(Probe(dataset: name, store: dir, dimension: d, rawItemsTable: BaselineTables.rawItemsTable, rawHistoriesTable: BaselineTables.rawHistoriesTable,
                                    buckets: [try probeBucket(store, name: "all", users: users, latency: latency, limit: 200)]), to: p)
            }
            try writeJSON(
                SuiteResult(
                    suite: "real", dataset: name, rows: rows,
                    notes: [
                        "`sheaf behaviors load` of the whole file (parse, check, idempotent append): \(String(format: "%.0f", Double(rawBehaviours) / behaviorSeconds)) behaviours/s",
                        "codebook cosine L4 K256 8-bit trained in \(String(format: "%.1f", trainSeconds)) s (in-sample: the items it encodes)",
                    ],
                    details: ["items": "\(ids.count)", "users": "\(users.count)", "behaviours": "\(rawBehaviours)", "dimension": "\(d)", "isa": Codebook.decodeInstructionSet]),
                to: out)
        }
    }
}

/// Runs a `sheaf` command in-process (output captured); returns its seconds.
func runSheaf(_ args: [String]) throws -> Double {
    let t0 = monotonicNanoseconds()
    try CommandOutput.$current.withValue(CommandOutput(capture: true)) {
        var command = try SheafCommand.parseAsRoot(args)
        try command.run()
    }
    return Double(monotonicNanoseconds() - t0) / 1e9
}
