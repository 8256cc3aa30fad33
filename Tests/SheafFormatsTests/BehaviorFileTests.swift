import Foundation
import Testing

@testable import SheafFormats

/// All records of a behaviour file with their line numbers.
func records(_ path: String, _ format: BehaviorFormat, columns: [String]? = nil) throws -> [(BehaviorRecord, Int)] {
    var out: [(BehaviorRecord, Int)] = []
    try BehaviorFileReader(path: path, format: format, columns: columns).forEach {
        out.append(($0, $1))
        return true
    }
    return out
}

@Suite struct BehaviorFileTests {
    /// Reads `text` written to a temporary file with `suffix`.
    func read(_ text: String, _ suffix: String, _ format: BehaviorFormat, columns: [String]? = nil) throws -> [(BehaviorRecord, Int)] {
        let file = TemporaryFile(suffix, text: text)
        defer { file.remove() }
        return try records(file.path, format, columns: columns)
    }

    /// The error reading `text`, with the temporary file's path replaced by "F".
    func failure(_ text: String, _ format: BehaviorFormat = .csv, columns: [String]? = nil) -> FormatError? {
        failure(bytes: Array(text.utf8), format, columns: columns)
    }

    /// The error reading `bytes`, with the temporary file's path replaced by "F".
    func failure(bytes: [UInt8], _ format: BehaviorFormat = .csv, columns: [String]? = nil) -> FormatError? {
        let file = TemporaryFile(".\(format.rawValue)", bytes: bytes)
        defer { file.remove() }
        do {
            _ = try records(file.path, format, columns: columns)
            return nil
        } catch let error as FormatError {
            return switch error {
            case .badLine(let p, let l, let r): .badLine(path: p == file.path ? "F" : p, line: l, reason: r)
            case .malformed(let p, let r): .malformed(path: p == file.path ? "F" : p, reason: r)
            default: error
            }
        } catch {
            return nil
        }
    }

    @Test func csvWithQuotedHeaderAndFields() throws {
        let text = "\"User\",\"item\",\"timestamp\",\"label\",\"note\"\n1,10,100,4.5,\"he said \"\"hi\"\", ok\"\n\"2\",20,-200,3,plain\n"
        let r = try read(text, ".csv", .csv)
        #expect(r.map(\.0) == [
            BehaviorRecord(user: 1, item: 10, timestamp: 100, label: 4.5),
            BehaviorRecord(user: 2, item: 20, timestamp: -200, label: 3),
        ])
        #expect(r.map(\.1) == [2, 3])
        var splitter = FieldSplitter(separator: .comma)
        let line = Array("1,\"he said \"\"hi\"\", ok\", x".utf8)
        let fields = line.withUnsafeBufferPointer { buffer in
            let source = splitter.split(buffer)
            return splitter.strings(source)
        }
        #expect(fields == ["1", "he said \"hi\", ok", " x"])
    }

    @Test func tsvWithAliases() throws {
        let r = try read("userId\tmovieId\trating\ttimestamp\n5\t6\t2.5\t7\n8\t9\t1\t10", ".tsv", .tsv)
        #expect(r.map(\.0) == [BehaviorRecord(user: 5, item: 6, timestamp: 7, label: 2.5), BehaviorRecord(user: 8, item: 9, timestamp: 10, label: 1)])
        #expect(r.map(\.1) == [2, 3])
    }

    @Test func movielens() throws {
        let r = try read("1::1193::5::978300760\n1::661::3::978302109\n", "ratings.dat", .movielens)
        #expect(r.map(\.0) == [
            BehaviorRecord(user: 1, item: 1193, timestamp: 978_300_760, label: 5),
            BehaviorRecord(user: 1, item: 661, timestamp: 978_302_109, label: 3),
        ])
        #expect(r.map(\.1) == [1, 2])
        #expect(failure("1::2::3\n", .movielens) == .badLine(path: "F", line: 1, reason: "expected 4 fields, found 3"))
    }

    @Test func recbole() throws {
        let text = "user_id:token\titem_id:token\trating:float\ttimestamp:float\n196\t242\t3\t881250949.0\n186\t302\t3.5\t891717742\n"
        let r = try read(text, ".inter", .recbole)
        #expect(r.map(\.0) == [
            BehaviorRecord(user: 196, item: 242, timestamp: 881_250_949, label: 3),
            BehaviorRecord(user: 186, item: 302, timestamp: 891_717_742, label: 3.5),
        ])
        #expect(failure("user_id:token\titem_id:token\n1\t2\n", .recbole) == .badLine(path: "F", line: 1, reason: "no column named 'timestamp' (columns: user_id, item_id)"))
    }

    @Test func customColumns() throws {
        let text = "ts,uid,iid,score,kind\n100,1,2,0.5,3\n200,4,5,1,65535\n"
        let r = try read(text, ".csv", .csv, columns: ["UID", "iid", "ts", "score", "kind"])
        #expect(r.map(\.0) == [
            BehaviorRecord(user: 1, item: 2, timestamp: 100, label: 0.5, action: 3),
            BehaviorRecord(user: 4, item: 5, timestamp: 200, label: 1, action: 65535),
        ])
        let noLabel = try read(text, ".csv", .csv, columns: ["uid", "iid", "ts"])
        #expect(noLabel.map(\.0) == [BehaviorRecord(user: 1, item: 2, timestamp: 100), BehaviorRecord(user: 4, item: 5, timestamp: 200)])
        #expect(failure(text, columns: ["uid", "item", "ts"]) == .badLine(path: "F", line: 1, reason: "no column named 'item' (columns: ts, uid, iid, score, kind)"))
        #expect(failure("u,i,t,a\n1,2,3,65536\n", columns: ["u", "i", "t", "", "a"]) == .badLine(path: "F", line: 2, reason: "action '65536' is not an integer in 0...65535"))
        #expect(failure(text, columns: ["uid", "iid"]) == .malformed(path: "F", reason: "columns must name user, item, timestamp and optionally label and action (got 2 names)"))
    }

    @Test func labelAbsentAndCRLF() throws {
        let r = try read("user,item,timestamp\r\n1,2,3\r\n\r\n4,5,6\r\n", ".csv", .csv)
        #expect(r.map(\.0) == [BehaviorRecord(user: 1, item: 2, timestamp: 3), BehaviorRecord(user: 4, item: 5, timestamp: 6)])
        #expect(r.map(\.1) == [2, 4])
    }

    @Test func stopsEarly() throws {
        let file = TemporaryFile(".csv", text: "user,item,timestamp\n1,2,3\n4,5,6\n7,8,9\n")
        defer { file.remove() }
        var seen: [UInt64] = []
        try BehaviorFileReader(path: file.path, format: .csv).forEach { record, _ in
            seen.append(record.user)
            return seen.count < 2
        }
        #expect(seen == [1, 4])
    }

    @Test func badLines() throws {
        let head = "user,item,timestamp,label\n"
        #expect(failure(head + "1,2,3,4\n5,6\n") == .badLine(path: "F", line: 3, reason: "expected 4 fields (as the header), found 2"))
        #expect(failure(head + "x1,2,3,4\n") == .badLine(path: "F", line: 2, reason: "user 'x1' is not an unsigned integer"))
        #expect(failure(head + "-1,2,3,4\n") == .badLine(path: "F", line: 2, reason: "user '-1' is not an unsigned integer"))
        #expect(failure(head + "1,2.0,3,4\n") == .badLine(path: "F", line: 2, reason: "item '2.0' is not an unsigned integer"))
        #expect(failure(head + "\n1,2,12.5,4\n") == .badLine(path: "F", line: 3, reason: "timestamp '12.5' is not an integer"))
        #expect(failure(head + "1,2,3,nan\n") == .badLine(path: "F", line: 2, reason: "label 'nan' is not a finite number"))
        #expect(failure(head + "1,2,3,good\n") == .badLine(path: "F", line: 2, reason: "label 'good' is not a number"))
        #expect(failure("user,item,when\n1,2,3\n") == .badLine(path: "F", line: 1, reason: "no column named 'timestamp' (columns: user, item, when)"))
        #expect(failure("") == .malformed(path: "F", reason: "empty file: no header"))
        #expect(failure("\n\n", .tsv) == .malformed(path: "F", reason: "empty file: no header"))
        #expect(throws: FormatError.unreadable(path: "/nonexistent/b.csv", reason: "no such file")) {
            try BehaviorFileReader(path: "/nonexistent/b.csv", format: .csv)
        }
    }

    /// The input edges a new user hit (issue 17): each was accepted, or reported badly, before.
    @Test func inputEdges() throws {
        let head = "user,item,timestamp,label\n"
        // A header byte that is not UTF-8 made the label column vanish (every label stored as 0).
        #expect(failure(bytes: Array("user,item,timestamp,rat".utf8) + [0xFF] + Array("ing\n1,2,3,4\n".utf8))
            == .badLine(path: "F", line: 1, reason: "the header is not valid UTF-8: 'user,item,timestamp,rat\\xFFing'"))
        // A row with an extra field was accepted (one with too few was refused).
        #expect(failure(head + "1,2,3,4,5\n") == .badLine(path: "F", line: 2, reason: "expected 4 fields (as the header), found 5"))
        #expect(failure("1::2::3::4::5\n", .movielens) == .badLine(path: "F", line: 1, reason: "expected 4 fields, found 5"))
        // A 10 MB field was echoed whole; a NUL byte raw.
        let huge = String(repeating: "x", count: 10_000_000)
        guard case .badLine(_, 2, let reason)? = failure(head + huge + ",2,3,4\n") else {
            Issue.record("a huge bad field was not reported as a bad line")
            return
        }
        #expect(reason == "user '" + String(repeating: "x", count: 80) + "'… (10000000 bytes) is not an unsigned integer")
        #expect(failure(bytes: Array(head.utf8) + [0x31, 0x00, 0x2C] + Array("2,3,4\n".utf8))
            == .badLine(path: "F", line: 2, reason: "user '1\\x00' is not an unsigned integer"))
        // −2^63 was accepted (and shown as the year 5838270); the bound is ±2^62.
        #expect(failure(head + "1,2,-9223372036854775808,4\n")
            == .badLine(path: "F", line: 2, reason: "timestamp '-9223372036854775808' is outside the supported range −2^62 … 2^62 − 1"))
        #expect(failure(head + "1,2,4611686018427387904,4\n")
            == .badLine(path: "F", line: 2, reason: "timestamp '4611686018427387904' is outside the supported range −2^62 … 2^62 − 1"))
        let edge = try read(head + "1,2,4611686018427387903,4\n1,2,-4611686018427387904,4\n", ".csv", .csv)
        let bounds: [Int64] = [(1 << 62) - 1, -(1 << 62)]
        #expect(edge.map(\.0.timestamp) == bounds)
        // A 30-digit id was "not an unsigned integer".
        #expect(failure(head + "123456789012345678901234567890,2,3,4\n")
            == .badLine(path: "F", line: 2, reason: "user '123456789012345678901234567890' is too large: ids are at most 18446744073709551615 (2^64 − 1)"))
        #expect(failure(head + "1,18446744073709551616,3,4\n")
            == .badLine(path: "F", line: 2, reason: "item '18446744073709551616' is too large: ids are at most 18446744073709551615 (2^64 − 1)"))
        #expect(try read(head + "1,18446744073709551615,3,4\n", ".csv", .csv).map(\.0.item) == [.max])
    }

    @Test func quotingForMessages() {
        #expect(quoted("plain") == "'plain'")
        #expect(quoted("Zoë 🎬") == "'Zoë 🎬'")
        #expect(quoted("a\tb\u{7F}") == "'a\\x09b\\x7F'")
        #expect(quoted(String(repeating: "é", count: 100)) == "'" + String(repeating: "é", count: 80) + "'… (200 bytes)")
        let bytes: [UInt8] = [0x41, 0xC3, 0x28, 0xE2, 0x82]  // 'A', a broken 2-byte sequence, a cut 3-byte one
        #expect(bytes.withUnsafeBufferPointer { quoted($0) } == "'A\\xC3(\\xE2\\x82'")
    }

    @Test func guessesFormats() {
        #expect(BehaviorFormat.guess(path: "a/b.CSV") == .csv)
        #expect(BehaviorFormat.guess(path: "x.tsv") == .tsv)
        #expect(BehaviorFormat.guess(path: "ml-100k.inter") == .recbole)
        #expect(BehaviorFormat.guess(path: "ml-1m/ratings.dat") == .movielens)
        #expect(BehaviorFormat.guess(path: "data.parquet") == nil)
    }

    @Test func linesAcrossChunkBoundaries() throws {
        let lines = ["short", "", String(repeating: "x", count: 40), "a\r", "tail"]
        let file = TemporaryFile(".txt", text: lines.joined(separator: "\n"))
        defer { file.remove() }
        var seen: [(String, Int)] = []
        try POSIXFile.forEachLine(path: file.path, chunkSize: 7) { line, number in
            seen.append((String(decoding: line, as: UTF8.self), number))
            return true
        }
        #expect(seen.map(\.0) == ["short", "", String(repeating: "x", count: 40), "a", "tail"])
        #expect(seen.map(\.1) == [1, 2, 3, 4, 5])
    }
}
