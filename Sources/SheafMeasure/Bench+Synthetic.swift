import ArgumentParser
import Foundation
import SheafCodebook
import _SheafBench

extension SheafMeasure.Bench {
    /// A synthetic store (clustered items, a trained codebook, histories in buckets by length) with
    /// float32 baselines in the same LMDB: history fetch + decode latency per length, item gets,
    /// encode and append rates.
    struct Synthetic: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "synthetic", abstract: "A synthetic store: history latency per length, item gets, ingest, beside float32 baselines.")

        @OptionGroup var output: SuiteOutput
        @OptionGroup var location: StoreLocation
        @Option(help: "Embedding dimension D.")
        var dim = 384
        @Option(help: "Clustered items stored.")
        var items = 100_000
        @Option(help: ArgumentHelp("History buckets: behaviours per user, users, users measured (with float32 baselines), comma-separated.", valueName: "LEN:USERS:MEASURED,..."))
        var buckets: Buckets
        @Option(help: "Rows the codebook is trained on.")
        var trainingRows = 50_000
        @Option(help: "Clusters of the synthetic items.")
        var clusters = 1000
        @Option(help: ArgumentHelp("The codebook: levels, centroids per level, magnitude bits (default 4:256:8).", valueName: "L:K:BITS"))
        var codebook: CodebookShape?
        @Option(help: "History requests per bucket (a tenth of them for 10,000-behaviour histories).")
        var requests = 1000
        @Option(help: "The dataset's name in the rows (default synthetic-D).")
        var name: String?
        @Option(help: "Write the measured users and their items here, for tools/lmdb_baseline.py.")
        var probe: String?

        func run() throws {
            let out = output.out
            let d = dim
            let name = self.name ?? "synthetic-\(d)"
            var c = SyntheticStoreConfiguration(dimension: d, items: items, buckets: buckets.buckets)
            c.trainingRows = trainingRows
            c.clusters = clusters
            if let codebook { (c.levels, c.codesPerLevel, c.magnitudeBits) = (codebook.levels, codebook.codesPerLevel, codebook.magnitudeBits) }
            let (dir, keep) = location.directory(name)
            defer { if !keep { try? FileManager.default.removeItem(atPath: dir) } }
            let started = monotonicNanoseconds()
            let s = try SyntheticStore(directory: dir, configuration: c) { log("\(name): \($0)") }
            let t = s.timings
            var rows: [ReportRow] = []
            var probe = Probe(dataset: name, store: dir, dimension: d, rawItemsTable: BaselineTables.rawItemsTable, rawHistoriesTable: BaselineTables.rawHistoriesTable, buckets: [])
            var notes: [String] = []
            // Histories → a model's first layer, at the measured length closest to 1,000 behaviours.
            let projectedLength = c.buckets.filter { $0.measuredUsers > 0 }.min { abs($0.length - 1000) < abs($1.length - 1000) }?.length
            for bucket in c.buckets where bucket.measuredUsers > 0 {
                let users = s.measuredUsers[bucket.length] ?? []
                let n = max(10, bucket.length >= 10_000 ? requests / 10 : requests)
                let latency = try StoreMeasurements.historyLatency(store: s.store, baselines: s.baselines, users: users, requests: n)
                log("\(name): \(bucket.length)-behaviour histories: sheaf p50 \(String(format: "%.1f", latency.sheaf.p50Microseconds)) µs (float16 centroids \(String(format: "%.1f", latency.sheafHalf.p50Microseconds)) µs, segments only \(String(format: "%.1f", latency.sheafSegmentsOnly.p50Microseconds)) µs), float32 rows \(String(format: "%.1f", latency.rawRows.p50Microseconds)) µs")
                rows += storeRows(section: "store", dataset: name, latency: latency, bucket: "\(bucket.length)", dimension: d)
                notes.append("\(bucket.length)-behaviour histories: decoded-vs-original mean cosine \(String(format: "%.3f", latency.decodedCosine)) (sanity check only; synthetic data)")
                probe.buckets.append(try probeBucket(s.store, name: "\(bucket.length)", users: users, latency: latency))
                if bucket.length == projectedLength {
                    for h in SheafMeasure.Bench.projectedWidths {
                        let p = try StoreMeasurements.projectedLatency(store: s.store, baselines: s.baselines, users: users, requests: n, width: h)
                        log("\(name): \(bucket.length) behaviours → H=\(h) inputs: projected p50 \(String(format: "%.1f", p.projected.p50Microseconds)) µs, rows+sgemm \(String(format: "%.1f", p.rowsThenGemm.p50Microseconds)) µs, decode+sgemm \(String(format: "%.1f", p.decodeThenGemm.p50Microseconds)) µs, blob+sgemm \(String(format: "%.1f", p.blobThenGemm.p50Microseconds)) µs")
                        rows += projectedRows(dataset: name, latency: p, bucket: "\(bucket.length)", dimension: d)
                    }
                }
            }
            for per in [1, 100] {
                let gets = try StoreMeasurements.itemGets(store: s.store, baselines: s.baselines, ids: s.rawItemIDs, perTransaction: per, reads: per == 1 ? 20_000 : 100_000)
                rows += itemGetRows(dataset: name, gets: gets, dimension: d)
            }
            let rawItemsPerSecond = Double(t.rawItems) / t.rawItemPutSeconds
            rows.append(ReportRow(section: "ingest", key: "ingest/\(name)/encode", label: "items encoded (ResidualEncoder, 2 threads), D=\(d)", unit: "items/s",
                                  sheaf: Double(t.items) / t.encodeSeconds, baselineName: "float32 rows put into LMDB", baseline: rawItemsPerSecond, better: "higher",
                                  params: ["items": "\(t.items)"]))
            rows.append(ReportRow(section: "ingest", key: "ingest/\(name)/store-items", label: "items encoded + stored, D=\(d)", unit: "items/s",
                                  sheaf: Double(t.items) / (t.encodeSeconds + t.itemPutSeconds), baselineName: "float32 rows put into LMDB", baseline: rawItemsPerSecond,
                                  better: "higher", params: ["items": "\(t.items)"]))
            rows.append(ReportRow(section: "ingest", key: "ingest/\(name)/append", label: "behaviours appended (whole histories), D=\(d)", unit: "behaviours/s",
                                  sheaf: Double(t.behaviours) / t.appendSeconds, baselineName: "float32 history blobs put", baseline: Double(t.rawHistoryBehaviours) / t.rawHistoryPutSeconds,
                                  better: "higher", params: ["behaviours": "\(t.behaviours)", "baseline_behaviours": "\(t.rawHistoryBehaviours)"]))
            if let p = self.probe { try writeJSON(probe, to: p) }
            notes.append("built in \(String(format: "%.0f", Double(monotonicNanoseconds() - started) / 1e9)) s; codebook trained on \(t.trainingRows) rows in \(String(format: "%.1f", t.trainSeconds)) s")
            notes.append("float32 baselines hold only what the measured users reference: \(t.rawItems) item rows and \(t.rawHistoryBehaviours) history rows")
            try writeJSON(
                SuiteResult(
                    suite: "synthetic", dataset: name, rows: rows, notes: notes,
                    details: [
                        "dimension": "\(d)", "items": "\(c.items)", "clusters": "\(c.clusters)",
                        "codebook": "cosine L\(c.levels) K\(c.codesPerLevel) \(c.magnitudeBits)-bit", "bytes_per_item": "\(t.bytesPerItem)",
                        "buckets": c.buckets.map { "\($0.users) users × \($0.length) (\($0.measuredUsers) measured)" }.joined(separator: ", "),
                        "behaviours": "\(t.behaviours)", "isa": Codebook.decodeInstructionSet,
                    ]),
                to: out)
        }
    }

    /// `--buckets`: LEN:USERS:MEASURED, comma-separated (measured users are capped at the users).
    struct Buckets: ExpressibleByArgument {
        var buckets: [SyntheticStoreConfiguration.Bucket]
        init?(argument: String) {
            var buckets: [SyntheticStoreConfiguration.Bucket] = []
            for spec in argument.split(separator: ",") {
                let f = spec.split(separator: ":").compactMap { Int($0) }
                guard f.count == 3 else { return nil }
                buckets.append(.init(length: f[0], users: f[1], measuredUsers: min(f[1], f[2])))
            }
            self.buckets = buckets
        }
    }

    /// `--codebook`: L:K:BITS.
    struct CodebookShape: ExpressibleByArgument {
        var levels: Int
        var codesPerLevel: Int
        var magnitudeBits: Int
        init?(argument: String) {
            let f = argument.split(separator: ":").compactMap { Int($0) }
            guard f.count == 3 else { return nil }
            (levels, codesPerLevel, magnitudeBits) = (f[0], f[1], f[2])
        }
    }
}
