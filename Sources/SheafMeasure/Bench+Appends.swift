import ArgumentParser
import Foundation
import SheafCodebook
import SheafQuantizer
import SheafRandom
import SheafStore
import _SheafBench

extension SheafMeasure.Bench {
    /// Behaviours appended to existing histories: `--users` users each get `--batch` behaviours a
    /// round, all users in one write transaction, for `--rounds` rounds, so every append rewrites an
    /// open tail segment. Reports the cost per behaviour early and late (it must not grow with the
    /// history's length), beside float32 rows put one per behaviour in the same LMDB.
    struct Appends: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "appends", abstract: "Appends to growing histories, early and late, beside a float32 row put per behaviour.")

        @OptionGroup var output: SuiteOutput
        @OptionGroup var location: StoreLocation
        @Option(help: "Embedding dimension D.")
        var dim = 384
        @Option(help: "Users whose histories grow.")
        var users = 100
        @Option(help: "Behaviours appended per user and round.")
        var batch = 10
        @Option(help: "Rounds (one write transaction each).")
        var rounds = 240
        @Option(help: "Clustered items stored (the first 5,000 train the codebook).")
        var items = 20_000
        @Option(help: "The dataset's name in the rows (default appends-D).")
        var name: String?
        @Flag(help: "Commit with fsync (the default store is not durable).")
        var durable = false
        @Option(help: "Also append the same behaviours to a second store with this percentage of them late (timestamps 1.7 to 25.7 hours before the user's newest, about 20 to 300 behaviours back at this generator's 5 minutes between behaviours; merged into place), timed against the in-order store in the same rounds. 0: off.")
        var latePercent = 0.0

        func run() throws {
            let out = output.out
            let d = dim
            let name = self.name ?? "appends-\(d)"
            let (dir, keep) = location.directory(name)
            defer { if !keep { try? FileManager.default.removeItem(atPath: dir) } }
            var options = StoreOptions.benchmark
            options.durable = durable
            let store = try Store(path: dir, dimension: d, options: options)
            let baselines = try BaselineTables(store: store)
            let vectors = ClusteredVectors(dimension: d, clusters: 100)
            let training = min(items, 5_000)
            let codebook = try CodebookTrainer(configuration: .benchmarkStore(iterations: 4)).train(rows: vectors.rows(0..<training), dimension: d)
            try store.write { try $0.putCodebook(codebook) }
            let rows = vectors.rows(0..<items)
            let (codes, mags) = try ResidualEncoder(codebook: codebook, beamWidth: 1, threads: 2).encode(rows, count: items)
            try store.write { try $0.putItems(ids: (0..<items).map(UInt64.init), codes: codes, magnitudes: mags) }
            // The same store again, for the late-event run.
            let lateDir = dir + "-late"
            defer { if !keep { try? FileManager.default.removeItem(atPath: lateDir) } }
            let lateStore: Store? = latePercent > 0 ? try Store(path: lateDir, dimension: d, options: options) : nil
            try lateStore?.write { txn in
                try txn.putCodebook(codebook)
                try txn.putItems(ids: (0..<items).map(UInt64.init), codes: codes, magnitudes: mags)
            }
            var latePerRound: [Double] = []
            var lateCount = 0

            var rng = SplitMix64(seed: 21)
            var clock = [Int64](repeating: 1_600_000_000, count: users)
            var perRound: [Double] = []
            var rawPerRound: [Double] = []
            let raw = AlignedFloats(count: batch * d, value: 0.5)
            for round in 0..<rounds {
                let batches: [[Behavior]] = (0..<users).map { u in
                    (0..<batch).map { _ in
                        clock[u] += 1 + Int64(rng.next() % 600)
                        return Behavior(item: rng.next() % UInt64(items), timestamp: clock[u], action: 0, label: 1)
                    }
                }
                var t0 = monotonicNanoseconds()
                try store.write { txn in
                    for (u, b) in batches.enumerated() { try txn.appendBehaviors(b, user: UInt64(u)) }
                }
                var t1 = monotonicNanoseconds()
                perRound.append(Double(t1 - t0) / 1e3 / Double(users * batch))
                if let lateStore {
                    // The same behaviours, latePercent of them moved 6,000 + (1…86,400) s before the user's clock.
                    let late = batches.enumerated().map { u, b in
                        b.map { x -> Behavior in
                            guard Double(rng.next() % 1_000_000) < latePercent * 10_000, round > 0 else { return x }
                            lateCount += 1
                            var y = x
                            y.timestamp = max(1_600_000_000, clock[u] - 10 * 600 - Int64(1 + rng.next() % 86_400))
                            return y
                        }
                    }
                    t0 = monotonicNanoseconds()
                    try lateStore.write { txn in
                        for (u, b) in late.enumerated() { try txn.appendBehaviors(b, user: UInt64(u)) }
                    }
                    t1 = monotonicNanoseconds()
                    latePerRound.append(Double(t1 - t0) / 1e3 / Double(users * batch))
                }
                // Baseline: the same behaviours as float32 rows, one row per behaviour keyed (user, position).
                t0 = monotonicNanoseconds()
                try store.write { txn in
                    for u in 0..<users {
                        try baselines.putHistoryRows(
                            txn, user: UInt64(u), first: round * batch, rows: UnsafeBufferPointer(start: raw.pointer, count: batch * d))
                    }
                }
                t1 = monotonicNanoseconds()
                rawPerRound.append(Double(t1 - t0) / 1e3 / Double(users * batch))
                if (round + 1) % 20 == 0 {
                    let w = perRound.suffix(20), r = rawPerRound.suffix(20)
                    log("\(name): \((round + 1) * batch) behaviours per user: \(String(format: "%.2f", w.reduce(0, +) / Double(w.count))) µs per behaviour appended, float32 rows \(String(format: "%.2f", r.reduce(0, +) / Double(r.count))) µs")
                }
            }
            func mean(_ x: ArraySlice<Double>) -> Double { x.reduce(0, +) / Double(max(1, x.count)) }
            let window = max(1, rounds / 10)
            var result: [ReportRow] = []
            for (tag, range) in [("early", 0..<window), ("late", (rounds - window)..<rounds)] {
                let length = (range.lowerBound + range.upperBound) / 2 * batch
                let sheaf = 1e6 / mean(perRound[range]), base = 1e6 / mean(rawPerRound[range])
                result.append(ReportRow(
                    section: "ingest", key: "ingest/\(name)/append-existing/\(tag)",
                    label: "behaviours appended to existing histories (\(batch) per user, \(users) users per txn), histories ≈\(length) long, D=\(d)",
                    unit: "behaviours/s", sheaf: sheaf, baselineName: "float32 row per behaviour put", baseline: base, better: "higher",
                    params: ["users": "\(users)", "batch": "\(batch)", "history_length": "\(length)", "durable": "\(options.durable)"]))
            }
            if latePercent > 0 {
                // Both stores saw the same rounds; compare over all of them.
                let inOrder = 1e6 / mean(perRound[...]), late = 1e6 / mean(latePerRound[...])
                result.append(ReportRow(
                    section: "ingest", key: "ingest/\(name)/append-late-\(latePercent)pct",
                    label: "behaviours appended with \(latePercent)% late (1.7–25.7 h back, merged into place; \(lateCount) late in all), histories up to \(rounds * batch) long, D=\(d)",
                    unit: "behaviours/s", sheaf: late, baselineName: "the same behaviours in order, same rounds", baseline: inOrder, better: "higher",
                    params: ["users": "\(users)", "batch": "\(batch)", "late_percent": "\(latePercent)", "late_behaviours": "\(lateCount)", "durable": "\(options.durable)"]))
                log("\(name): \(latePercent)% late: \(String(format: "%.0f", late)) behaviours/s against \(String(format: "%.0f", inOrder)) in order (\(String(format: "%.2f", late / inOrder))×), \(lateCount) late behaviours")
            }
            try writeJSON(SuiteResult(suite: "appends", dataset: name, rows: result, notes: [], details: ["dimension": "\(d)", "rounds": "\(rounds)"]), to: out)
        }
    }
}
