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
        let file = TemporaryFile(".\(format.rawValue)", text: text)
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
        #expect(failure(head + "1,2,3,4\n5,6\n") == .badLine(path: "F", line: 3, reason: "expected 4 fields, found 2"))
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
