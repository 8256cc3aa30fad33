import ArgumentParser
import Foundation
import SheafCodebook
import SheafFormats
import SheafStore
import Testing

@testable import SheafCLI

/// Each bad input gets its exact error, and the store is unchanged afterwards.
@Suite struct BadInputTests {
    /// A store with items and one user's history, and its fingerprint.
    func populated(_ s: Scratch) throws -> (store: String, emb: String, before: StoreStatistics, histories: [UInt64: History]) {
        let (store, emb) = try preparedStore(s)
        try sheaf("items", "load", store, "--input", emb)
        try "user,item,timestamp,label\n1,2,100,5\n1,3,200,4\n".write(toFile: s.file("ok.csv"), atomically: true, encoding: .utf8)
        try sheaf("behaviors", "load", store, "--input", s.file("ok.csv"))
        return (store, emb, try statistics(store), try histories(store))
    }

    func expectUnchanged(_ store: String, _ before: StoreStatistics, _ h: [UInt64: History]) throws {
        #expect(try statistics(store) == before)
        #expect(try histories(store) == h)
    }

    @Test func truncatedNpy() throws {
        let s = Scratch()
        let (store, emb, before, h) = try populated(s)
        var bytes = try #require(FileManager.default.contents(atPath: emb))
        bytes.removeLast(10)
        try bytes.write(to: URL(fileURLWithPath: s.file("cut.npy")))
        let data = 300 * 16 * 4
        #expect(throws: FormatError.truncated(path: s.file("cut.npy"), expectedBytes: data, actualBytes: data - 10)) {
            try sheaf("items", "load", store, "--input", s.file("cut.npy"))
        }
        try expectUnchanged(store, before, h)
    }

    @Test func wrongDType() throws {
        let s = Scratch()
        let (store, _, before, h) = try populated(s)
        try NPYArray.write(ids: [1, 2, 3], to: s.file("ints.npy"))
        #expect(throws: FormatError.unsupportedDType(path: s.file("ints.npy"), dtype: "<i8", expected: "<f4 or <f2")) {
            try sheaf("items", "load", store, "--input", s.file("ints.npy"))
        }
        try expectUnchanged(store, before, h)
    }

    @Test func dimensionDiffersFromTheStore() throws {
        let s = Scratch()
        let (store, _, before, h) = try populated(s)
        try NPYArray.write(floats: [Float](repeating: 1, count: 40), shape: [5, 8], to: s.file("d8.npy"))
        #expect(throws: CLIError("\(s.file("d8.npy")): rows are 8-dimensional, the store holds 16-dimensional embeddings")) {
            try sheaf("items", "load", store, "--input", s.file("d8.npy"))
        }
        #expect(throws: CLIError("\(s.file("d8.npy")): rows are 8-dimensional, the store holds 16-dimensional embeddings")) {
            try sheaf("codebook", "train", store, "--input", s.file("d8.npy"))
        }
        try expectUnchanged(store, before, h)
    }

    @Test func nanAndZeroRowsAreRefusedBeforeAnythingIsWritten() throws {
        let s = Scratch()
        let (store, _, before, h) = try populated(s)
        var values = clustered(count: 50, dimension: 16, seed: 1)
        values[40 * 16 + 2] = .nan  // row 40: after the first chunk of 16 rows
        try NPYArray.write(floats: values, shape: [50, 16], to: s.file("nan.npy"))
        #expect(throws: FormatError.badRow(path: s.file("nan.npy"), row: 40, reason: "value at column 2 is nan (NaN and infinities are refused)")) {
            try sheaf("items", "load", store, "--input", s.file("nan.npy"), "--chunk-size", "16")
        }
        values[40 * 16 + 2] = 0
        for t in 0..<16 { values[7 * 16 + t] = 0 }
        try NPYArray.write(floats: values, shape: [50, 16], to: s.file("zero.npy"))
        #expect(throws: FormatError.badRow(path: s.file("zero.npy"), row: 7, reason: "is a zero vector: it has no direction and cannot be coded with a cosine codebook")) {
            try sheaf("items", "load", store, "--input", s.file("zero.npy"))
        }
        values[7 * 16] = .infinity
        try NPYArray.write(floats: values, shape: [50, 16], to: s.file("inf.npy"))
        #expect(throws: FormatError.badRow(path: s.file("inf.npy"), row: 7, reason: "value at column 0 is inf (NaN and infinities are refused)")) {
            try sheaf("codebook", "train", store, "--input", s.file("inf.npy"), "--codes", "4")
        }
        try expectUnchanged(store, before, h)
    }

    @Test func idsThatDoNotFit() throws {
        let s = Scratch()
        let (store, emb, before, h) = try populated(s)
        try IDFile.writeText([1, 2, 3], to: s.file("three.txt"))
        #expect(throws: CLIError("\(s.file("three.txt")) holds 3 ids but \(emb) holds 300 rows")) {
            try sheaf("items", "load", store, "--input", emb, "--ids", s.file("three.txt"))
        }
        var ids = (0..<300).map(UInt64.init)
        ids[299] = 5
        try IDFile.writeText(ids, to: s.file("dup.txt"))
        #expect(throws: FormatError.badRow(path: s.file("dup.txt"), row: 299, reason: "id 5 repeats row 5")) {
            try sheaf("items", "load", store, "--input", emb, "--ids", s.file("dup.txt"))
        }
        try "0\tzero\nnot-an-id\tx\n".write(toFile: s.file("t.tsv"), atomically: true, encoding: .utf8)
        #expect(throws: FormatError.badLine(path: s.file("t.tsv"), line: 2, reason: "'not-an-id' is not an unsigned integer id")) {
            try sheaf("items", "load", store, "--input", emb, "--titles", s.file("t.tsv"))
        }
        try expectUnchanged(store, before, h)
    }

    @Test func malformedBehaviourLines() throws {
        let s = Scratch()
        let (store, _, before, h) = try populated(s)
        try "user,item,timestamp,label\n1,2,300,5\n2,x,10,1\n".write(toFile: s.file("bad.csv"), atomically: true, encoding: .utf8)
        #expect(throws: FormatError.badLine(path: s.file("bad.csv"), line: 3, reason: "item 'x' is not an unsigned integer")) {
            try sheaf("behaviors", "load", store, "--input", s.file("bad.csv"))
        }
        try "user,item,timestamp,label\n1,2,300\n".write(toFile: s.file("short.csv"), atomically: true, encoding: .utf8)
        #expect(throws: FormatError.badLine(path: s.file("short.csv"), line: 2, reason: "expected 4 fields (as the header), found 3")) {
            try sheaf("behaviors", "load", store, "--input", s.file("short.csv"))
        }
        try "user,item,when\n1,2,300\n".write(toFile: s.file("cols.csv"), atomically: true, encoding: .utf8)
        #expect(throws: FormatError.badLine(path: s.file("cols.csv"), line: 1, reason: "no column named 'timestamp' (columns: user, item, when)")) {
            try sheaf("behaviors", "load", store, "--input", s.file("cols.csv"))
        }
        try expectUnchanged(store, before, h)
    }

    @Test func aBehaviourLaterThanMaxLatenessIsRefusedWithItsLine() throws {
        let s = Scratch()
        let (store, _, before, h) = try populated(s)
        // User 7 is new and fine; user 1's behaviour at 150 is 50 older than the stored 200: with
        // --max-lateness 0 or 49 nothing is written, not even user 7.
        try "user,item,timestamp,label\n7,1,10,1\n1,9,150,2\n".write(toFile: s.file("old.csv"), atomically: true, encoding: .utf8)
        for m in ["0", "49"] {
            #expect(throws: CLIError("\(s.file("old.csv")):3: user 1: a behaviour at 150 is older than the latest stored one (200) by 50, more than --max-lateness \(m) allows. Nothing was written.")) {
                try sheaf("behaviors", "load", store, "--input", s.file("old.csv"), "--max-lateness", m)
            }
            try expectUnchanged(store, before, h)
        }
        #expect(throws: (any Error).self) { try sheaf("behaviors", "load", store, "--input", s.file("old.csv"), "--max-lateness", "-1") }
        try expectUnchanged(store, before, h)
        // --max-lateness 50 reaches it: merged into place.
        let out = try sheaf("behaviors", "load", store, "--input", s.file("old.csv"), "--max-lateness", "50")
        #expect(out.standardOutput.contains("appended 2 behaviours for 2 users"))
        let user1 = try Store(path: store).read { try $0.history(user: 1) }
        let times = try #require(user1).timestamps
        #expect(times.contains(150) && zip(times, times.dropFirst()).allSatisfy { $0 <= $1 })
    }

    @Test func itemsTheStoreLacksAreCountedOrRefused() throws {
        let s = Scratch()
        let (store, _, before, h) = try populated(s)
        try "user,item,timestamp,label\n7,1,1000,1\n7,900001,1001,1\n8,900001,1002,1\n8,900002,1003,1\n".write(
            toFile: s.file("unknown.csv"), atomically: true, encoding: .utf8)
        #expect(throws: CLIError("\(s.file("unknown.csv")): 3 behaviour(s) name 2 item(s) the store has no code for (first: 900001, 900002); --strict-items refuses them. Nothing was written.")) {
            try sheaf("behaviors", "load", store, "--input", s.file("unknown.csv"), "--strict-items")
        }
        try expectUnchanged(store, before, h)
        let out = try sheaf("behaviors", "load", store, "--input", s.file("unknown.csv"))
        #expect(out.standardOutput.contains("warning: 3 behaviour(s) name 2 item(s) the store has no code for (first: 900001, 900002): loaded"))
        #expect(try Store(path: store).read { try $0.history(user: 8) }?.itemIDs == [900001, 900002])
    }

    @Test func readOnlyReadsWithoutTheLockAndRefusesWrites() throws {
        let s = Scratch()
        let (store, _, before, h) = try populated(s)
        let stats = try sheaf("stats", store, "--read-only")
        #expect(stats.standardOutput.contains("users"))
        try "user,item,timestamp,label\n7,1,10,1\n".write(toFile: s.file("more.csv"), atomically: true, encoding: .utf8)
        #expect(throws: StoreError.readOnly) {
            try sheaf("behaviors", "load", store, "--input", s.file("more.csv"), "--read-only")
        }
        try expectUnchanged(store, before, h)
    }

    @Test func theParserAndTheStoreBoundTimestampsAlike() {
        #expect(BehaviorRecord.timestampRange == Behavior.timestampRange)
    }

    @Test func unknownFormatMissingStoreAndBadArguments() throws {
        let s = Scratch()
        let (store, _, before, h) = try populated(s)
        try "x".write(toFile: s.file("b.parquet"), atomically: true, encoding: .utf8)
        #expect(throws: CLIError("cannot tell the format of \(s.file("b.parquet")) from its name; pass --format csv|tsv|movielens|recbole")) {
            try sheaf("behaviors", "load", store, "--input", s.file("b.parquet"))
        }
        #expect(throws: FormatError.malformed(path: s.file("b.parquet"), reason: "unknown embedding format: use .npy, .fvecs or .safetensors")) {
            try sheaf("items", "load", store, "--input", s.file("b.parquet"))
        }
        #expect(throws: CLIError("no Sheaf store at \(s.file("nowhere")); create one with `sheaf init \(s.file("nowhere")) --dim D`")) {
            try sheaf("stats", s.file("nowhere"))
        }
        #expect(!FileManager.default.fileExists(atPath: s.file("nowhere")))
        #expect(throws: (any Error).self) { try sheaf("behaviors", "load", store, "--input", s.file("ok.csv"), "--format", "parquet") }
        #expect(throws: (any Error).self) { try sheaf("codebook", "train", store, "--input", s.file("x.npy"), "--magnitude-bits", "12") }
        #expect(throws: CLIError("a store already exists at \(store) (D=16); pass --exist-ok to accept it")) {
            try sheaf("init", store, "--dim", "16")
        }
        try sheaf("init", store, "--dim", "16", "--exist-ok")
        try expectUnchanged(store, before, h)
    }

    @Test func itemsLoadWithoutACodebook() throws {
        let s = Scratch()
        try sheaf("init", s.file("store"), "--dim", "4")
        try NPYArray.write(floats: [1, 2, 3, 4], shape: [1, 4], to: s.file("one.npy"))
        #expect(throws: CLIError("the store has no active codebook; train one first with `sheaf codebook train \(s.file("store")) --input …`")) {
            try sheaf("items", "load", s.file("store"), "--input", s.file("one.npy"))
        }
        #expect(try statistics(s.file("store")).items == 0)
    }
}
