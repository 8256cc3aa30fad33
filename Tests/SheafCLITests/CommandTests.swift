import ArgumentParser
import Foundation
import SheafCodebook
import SheafFormats
import Testing

@testable import SheafStore

@testable import SheafCLI

@Suite struct ItemCommandTests {
    /// `--timings` prints every stage of the load, and the stages add up to the total.
    @Test func loadTimingsNameEveryStage() throws {
        let s = Scratch()
        let (store, emb) = try preparedStore(s, items: 200)
        try "1\tOne\n".write(toFile: s.file("titles.tsv"), atomically: true, encoding: .utf8)
        let load = try sheaf("items", "load", store, "--input", emb, "--titles", s.file("titles.tsv"), "--chunk-size", "64", "--timings")
        let lines = load.standardError.split(separator: "\n").map(String.init)
        let stages = [
            "read input (check pass)", "check rows (finite, non-zero)", "read input (encode pass)",
            "encode (exhaustive, 2 levels × K=16)", "check codes, quantize magnitudes, bit-pack", "LMDB puts",
            "LMDB commit (durable: fsync)", "titles (puts and commit)", "total",
        ]
        #expect(lines.count == stages.count)
        for (line, stage) in zip(lines, stages) { #expect(line.hasPrefix(stage), "\(line)") }
        func seconds(_ line: String) -> Double { Double(line.dropFirst(stages.map(\.count).max()!).split(separator: " ")[0])! }
        let parts = lines.dropLast().map(seconds).reduce(0, +)
        #expect(abs(parts - seconds(lines.last!)) < 0.01)
        #expect(load.standardOutput.contains("stored 200 items"))
    }

    @Test func trainLoadExportRoundTrip() throws {
        let s = Scratch()
        let (store, emb) = try preparedStore(s, items: 300)
        let ids = (0..<300).map { UInt64(1000 + 3 * $0) }
        try IDFile.writeText(ids, to: s.file("ids.txt"))
        try (ids.prefix(2).enumerated().map { "\($1)\tTitle \($0)\n" }.joined()).write(toFile: s.file("titles.tsv"), atomically: true, encoding: .utf8)
        let load = try sheaf("items", "load", store, "--input", emb, "--ids", s.file("ids.txt"), "--titles", s.file("titles.tsv"), "--chunk-size", "64")
        #expect(load.standardOutput.contains("stored 300 items with codebook 1"))
        #expect(load.standardError.isEmpty)  // not a terminal: no progress
        let stats = try statistics(store)
        #expect(stats.items == 300 && stats.titles == 2)

        // Export in id order equals decoding through the library.
        try sheaf("items", "export", store, "--output", s.file("out.npy"), "--ids-output", s.file("out-ids.npy"))
        let exported = try NPYArray(contentsOf: s.file("out.npy"))
        #expect(exported.shape == [300, 16])
        #expect(try NPYArray(contentsOf: s.file("out-ids.npy")).ids() == ids)
        var o = StoreOptions()
        o.readOnly = true
        let direct = try Store(path: store, options: o).read { try $0.decodeItems(ids) }
        #expect(try exported.floats() == direct)
        // And in a chosen order.
        try IDFile.writeText([ids[5], ids[0]], to: s.file("two.txt"))
        try sheaf("items", "export", store, "--output", s.file("two.npy"), "--ids", s.file("two.txt"))
        #expect(try NPYArray(contentsOf: s.file("two.npy")).floats() == Array(direct[(5 * 16)..<(6 * 16)] + direct[0..<16]))

        // Decoded embeddings are close to the originals.
        let original = try NPYArray(contentsOf: emb).floats()
        var cos = 0.0
        for r in 0..<300 {
            var dot: Float = 0, a: Float = 0, b: Float = 0
            for t in 0..<16 {
                dot += original[r * 16 + t] * direct[r * 16 + t]
                a += original[r * 16 + t] * original[r * 16 + t]
                b += direct[r * 16 + t] * direct[r * 16 + t]
            }
            cos += Double(dot / (a * b).squareRoot())
        }
        #expect(cos / 300 > 0.9)

        // Re-running the load changes nothing.
        try sheaf("items", "load", store, "--input", emb, "--ids", s.file("ids.txt"))
        #expect(try statistics(store) == stats)
    }

    @Test func fvecsAndSafetensorsGiveTheSameCodesAsNpy() throws {
        let s = Scratch()
        let (store, emb) = try preparedStore(s, items: 200)
        let values = try NPYArray(contentsOf: emb).floats()
        try EmbeddingFile.writeFvecs(values, dimension: 16, to: s.file("items.fvecs"))
        try EmbeddingFile.writeSafetensors(
            [("other", [1, 2], [1, 2], false), ("items", values, [200, 16], false)], to: s.file("items.safetensors"))
        try sheaf("items", "load", store, "--input", emb)
        try sheaf("items", "export", store, "--output", s.file("a.npy"))
        try sheaf("items", "load", store, "--input", s.file("items.fvecs"))
        try sheaf("items", "export", store, "--output", s.file("b.npy"))
        try sheaf("items", "load", store, "--input", s.file("items.safetensors"), "--tensor", "items")
        try sheaf("items", "export", store, "--output", s.file("c.npy"))
        let a = try NPYArray(contentsOf: s.file("a.npy")).floats()
        #expect(try NPYArray(contentsOf: s.file("b.npy")).floats() == a)
        #expect(try NPYArray(contentsOf: s.file("c.npy")).floats() == a)
        // Naming the other tensor (1 × 2) is refused by its dimension.
        #expect(throws: CLIError("\(s.file("items.safetensors")): rows are 2-dimensional, the store holds 16-dimensional embeddings")) {
            try sheaf("items", "load", store, "--input", s.file("items.safetensors"), "--tensor", "other")
        }
    }

    @Test func similarListsNeighboursWithTitles() throws {
        let s = Scratch()
        let (store, emb) = try preparedStore(s, items: 100)
        try "0\tzero\n1\tone\n".write(toFile: s.file("t.tsv"), atomically: true, encoding: .utf8)
        try sheaf("items", "load", store, "--input", emb, "--titles", s.file("t.tsv"))
        let out = try sheaf("items", "similar", store, "--item", "0", "-k", "3", "--original", emb, "--json").standardOutput
        let results = try JSONDecoder().decode([SheafCommand.ItemsCommand.Similar.Result].self, from: Data(out.utf8))
        #expect(results.count == 1 && results[0].title == "zero")
        #expect(results[0].decoded.count == 3 && results[0].original?.count == 3)
        #expect(!results[0].decoded.contains { $0.item == 0 })
        #expect(zip(results[0].decoded, results[0].decoded.dropFirst()).allSatisfy { $0.cosine >= $1.cosine })
    }
}

@Suite struct BehaviourCommandTests {
    @Test(arguments: BehaviorFormat.allCases)
    func everyFormatLoadsTheSameHistories(_ format: BehaviorFormat) throws {
        let s = Scratch()
        let (store, emb) = try preparedStore(s)
        try sheaf("items", "load", store, "--input", emb)
        let rows = behaviourRows(users: 40, perUser: 30, items: 300, seed: 9)
        let name = ["csv": "b.csv", "tsv": "b.tsv", "movielens": "ratings.dat", "recbole": "b.inter"][format.rawValue]!
        try writeBehaviours(rows, format: format, to: s.file(name))
        let out = try sheaf("behaviors", "load", store, "--input", s.file(name), "--chunk-size", "100")
        #expect(out.standardOutput.contains("appended 1,200 behaviours for 40 users"))
        let stored = try histories(store)
        #expect(stored.count == 40)
        for (user, h) in stored {
            let expected = rows.filter { $0.user == user }.sorted { $0.timestamp < $1.timestamp }
            #expect(h.itemIDs == expected.map(\.item))
            #expect(h.timestamps == expected.map(\.timestamp))
            #expect(h.labels == expected.map(\.label))
        }
        // history --json shows the same, with titles absent.
        let json = try sheaf("history", store, "--user", "1", "--last", "5", "--json").standardOutput
        let parsed = try JSONDecoder().decode(SheafCommand.HistoryCommand.Output.self, from: Data(json.utf8))
        #expect(parsed.count == 30 && parsed.behaviors.count == 5)
        #expect(parsed.behaviors.map(\.item) == Array(stored[1]!.itemIDs.suffix(5)))
        // Loading again adds nothing.
        let again = try sheaf("behaviors", "load", store, "--input", s.file(name))
        #expect(again.standardOutput.contains("appended 0 behaviours"))
        #expect(try histories(store) == stored)
    }

    @Test func customColumnsAndOverlappingFiles() throws {
        let s = Scratch()
        let (store, _) = try preparedStore(s)
        try "ts,uid,iid,score\n100,5,1,4.5\n50,5,2,3\n200,6,3,1\n".write(toFile: s.file("a.csv"), atomically: true, encoding: .utf8)
        try sheaf("behaviors", "load", store, "--input", s.file("a.csv"), "--columns", "uid,iid,ts,score")
        // The next day's file repeats a row and adds one newer behaviour.
        try "ts,uid,iid,score\n100,5,1,4.5\n300,5,9,2\n".write(toFile: s.file("b.csv"), atomically: true, encoding: .utf8)
        let out = try sheaf("behaviors", "load", store, "--input", s.file("b.csv"), "--columns", "uid,iid,ts,score")
        #expect(out.standardOutput.contains("appended 1 behaviours for 1 users; 1 were already stored or repeated"))
        let h = try #require(try histories(store)[5])
        #expect(h.itemIDs == [2, 1, 9] && h.timestamps == [50, 100, 300] && h.labels == [3, 4.5, 2])
    }

    @Test func shardsPartitionTheUsers() throws {
        let s = Scratch()
        let rows = behaviourRows(users: 200, perUser: 5, items: 50, seed: 4)
        try writeBehaviours(rows, format: .csv, to: s.file("b.csv"))
        let n = 4
        var seen: [UInt64: Int] = [:]
        var total = 0
        for k in 0..<n {
            let store = s.file("shard\(k)")
            try sheaf("init", store, "--dim", "8")
            try sheaf("behaviors", "load", store, "--input", s.file("b.csv"), "--shard", "\(k)/\(n)")
            let h = try histories(store)
            for (user, history) in h {
                seen[user, default: 0] += 1
                #expect(Sharding.shard(of: user, count: n) == k)
                #expect(history.count == 5)
                total += history.count
            }
        }
        let allUsers = Set(rows.map(\.user))
        #expect(Set(seen.keys) == allUsers)  // every user in some shard …
        #expect(seen.values.allSatisfy { $0 == 1 })  // … and in exactly one
        #expect(total == rows.count)
        #expect(throws: (any Error).self) { try sheaf("behaviors", "load", s.file("shard0"), "--input", s.file("b.csv"), "--shard", "4/4") }
    }
}

@Suite struct ProgressTests {
    func load(_ store: String, _ emb: String, quiet: Bool) throws -> String {
        let out = CommandOutput(capture: true, asTerminal: true)
        try CommandOutput.$current.withValue(out) {
            var c = try SheafCommand.parseAsRoot(
                ["items", "load", store, "--input", emb, "--chunk-size", "20", "--chunk-delay-ms", "60"] + (quiet ? ["--quiet"] : []))
            try c.run()
        }
        return out.standardError
    }

    @Test func aTerminalSeesCountRateAndTimeLeftUnlessQuiet() throws {
        let s = Scratch()
        let (store, emb) = try preparedStore(s, items: 200)
        let shown = try load(store, emb, quiet: false)
        #expect(shown.contains("encoding \(emb): "))
        #expect(shown.contains("/200 rows"))
        #expect(shown.contains("/s"))
        #expect(shown.contains(" left"))  // drawn mid-load, with time left
        #expect(shown.contains("200/200 rows"))  // and a final line
        #expect(try load(store, emb, quiet: true).isEmpty)
    }
}

@Suite struct InspectionCommandTests {
    @Test func statsAndVerifyOnAHealthyStore() throws {
        let s = Scratch()
        let (store, emb) = try preparedStore(s)
        try sheaf("items", "load", store, "--input", emb)
        try writeBehaviours(behaviourRows(users: 10, perUser: 20, items: 300, seed: 2), format: .csv, to: s.file("b.csv"))
        try sheaf("behaviors", "load", store, "--input", s.file("b.csv"))
        let json = try sheaf("stats", store, "--json").standardOutput
        let stats = try JSONDecoder().decode(SheafCommand.Stats.Output.self, from: Data(json.utf8))
        #expect(stats.statistics.items == 300 && stats.statistics.users == 10 && stats.statistics.behaviors == 200)
        #expect(stats.bytesPerItem == 3)  // 2 levels × (4-bit code + 8-bit magnitude) = 24 bits
        #expect(stats.compressionRatio == 64.0 / Double(stats.bytesPerItem))
        #expect(stats.averageHistoryBehaviors == 20)
        #expect(stats.onDiskBytes > 0)
        let text = try sheaf("stats", store).standardOutput
        #expect(text.contains("users        10"))
        let verify = try sheaf("verify", store).standardOutput
        #expect(verify.contains("OK: no problems found"))
        #expect(verify.contains("items 300"))
    }

    @Test func verifyFailsWithAPreciseReport() throws {
        let s = Scratch()
        let (store, emb) = try preparedStore(s)
        try "1\tgood\n".write(toFile: s.file("t.tsv"), atomically: true, encoding: .utf8)
        try sheaf("items", "load", store, "--input", emb, "--titles", s.file("t.tsv"))
        do {
            let opened = try Store(path: store)
            try opened.write { txn in try txn.put(opened.tables.titles, 1, [1, 0xFF, 0xFE]) }
        }
        let out = CommandOutput(capture: true)
        #expect(throws: ExitCode(1)) {
            try CommandOutput.$current.withValue(out) {
                var c = try SheafCommand.parseAsRoot(["verify", store])
                try c.run()
            }
        }
        #expect(out.standardOutput.contains("PROBLEM titles[1]: title is not valid UTF-8"))
        #expect(out.standardOutput.contains("FAILED: 1 problem(s)"))
    }

    @Test func historyOfAnUnknownUser() throws {
        let s = Scratch()
        let (store, _) = try preparedStore(s)
        #expect(throws: CLIError("user 42 has no history in \(store)")) { try sheaf("history", store, "--user", "42") }
    }
}
