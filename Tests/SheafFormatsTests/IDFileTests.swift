import Foundation
import Testing

@testable import SheafFormats

@Suite struct IDFileTests {
    @Test func textWithCommentsAndBlankLines() throws {
        let file = TemporaryFile(".txt", text: "# item ids\n7\n\n  42 \r\n# another comment\n18446744073709551615\n0")
        defer { file.remove() }
        #expect(try IDFile.read(path: file.path) == [7, 42, UInt64.max, 0])
    }

    @Test func badTextLines() throws {
        let file = TemporaryFile(".txt", text: "1\n\n# c\nabc\n")
        defer { file.remove() }
        #expect(throws: FormatError.badLine(path: file.path, line: 4, reason: "'abc' is not an unsigned integer id")) { try IDFile.read(path: file.path) }
        for bad in ["-3", "18446744073709551616", "1.5", "12 13"] {
            file.write(Array("5\n\(bad)\n".utf8))
            #expect(throws: FormatError.badLine(path: file.path, line: 2, reason: "'\(bad)' is not an unsigned integer id")) {
                try IDFile.read(path: file.path)
            }
        }
        #expect(throws: FormatError.unreadable(path: "/nonexistent/ids.txt", reason: "no such file")) { try IDFile.read(path: "/nonexistent/ids.txt") }
    }

    @Test func textRoundTrip() throws {
        let file = TemporaryFile(".ids")
        defer { file.remove() }
        let ids: [UInt64] = [3, 1 << 63, 0, 99]
        try IDFile.writeText(ids, to: file.path)
        #expect(String(decoding: file.bytes, as: UTF8.self) == "3\n9223372036854775808\n0\n99\n")
        #expect(try IDFile.read(path: file.path) == ids)
    }

    @Test func npyIDs() throws {
        let file = TemporaryFile(".npy")
        defer { file.remove() }
        try NPYArray.write(ids: [5, 0, 1 << 40], to: file.path)
        #expect(try IDFile.read(path: file.path) == [5, 0, 1 << 40])
        file.write(npyBytes(descr: "<u4", shape: "(2, 1)", body: le(UInt32(9)) + le(UInt32.max)))
        #expect(try IDFile.read(path: file.path) == [9, UInt64(UInt32.max)])
        file.write(npyBytes(descr: "<i8", shape: "(1, 2)", body: le(Int64(1)) + le(Int64(2))))
        #expect(throws: FormatError.malformed(path: file.path, reason: "expected a 1-D array of ids (N,) or (N, 1), got shape (1, 2)")) {
            try IDFile.read(path: file.path)
        }
        file.write(npyBytes(descr: "<i4", shape: "(2,)", body: le(Int32(1)) + le(Int32(-2))))
        #expect(throws: FormatError.malformed(path: file.path, reason: "id at index 1 is negative (-2)")) { try IDFile.read(path: file.path) }
        file.write(npyBytes(descr: "<f4", shape: "(1,)", body: le(UInt32(0))))
        #expect(throws: FormatError.unsupportedDType(path: file.path, dtype: "<f4", expected: "<i8, <u8, <i4 or <u4")) {
            try IDFile.read(path: file.path)
        }
    }
}
