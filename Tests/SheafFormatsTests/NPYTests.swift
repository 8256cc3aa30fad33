import Foundation
import Testing

@testable import SheafFormats

/// An `.npy` file as numpy writes it (format 1.0, header padded to 64 bytes).
func npyBytes(descr: String, shape: String, fortran: Bool = false, body: [UInt8]) -> [UInt8] {
    var header = "{'descr': '\(descr)', 'fortran_order': \(fortran ? "True" : "False"), 'shape': \(shape), }"
    let unpadded = 10 + header.utf8.count + 1
    header += String(repeating: " ", count: (64 - unpadded % 64) % 64) + "\n"
    let n = header.utf8.count
    return [0x93, 0x4E, 0x55, 0x4D, 0x50, 0x59, 1, 0, UInt8(n & 0xFF), UInt8(n >> 8)] + Array(header.utf8) + body
}

func le<T: FixedWidthInteger>(_ v: T) -> [UInt8] { withUnsafeBytes(of: v.littleEndian) { Array($0) } }

@Suite struct NPYTests {
    let path = NSTemporaryDirectory() + "sheaf-npy-\(UUID().uuidString).npy"

    @Test func float32RoundTrip() throws {
        let values: [Float] = [1, -2.5, 3e-8, .greatestFiniteMagnitude, 0, -0.0]
        try NPYArray.write(floats: values, shape: [2, 3], to: path)
        defer { try? FileManager.default.removeItem(atPath: path) }
        let a = try NPYArray(contentsOf: path)
        #expect(a.dtype == "<f4")
        #expect(a.shape == [2, 3])
        #expect(try a.floats().map(\.bitPattern) == values.map(\.bitPattern))
        let raw = try #require(FileManager.default.contents(atPath: path))
        #expect((raw.count - values.count * 4) % 64 == 0)  // data starts on a 64-byte boundary
    }

    @Test func idsRoundTripAndIntegerDTypes() throws {
        try NPYArray.write(ids: [0, 7, 1 << 40], to: path)
        defer { try? FileManager.default.removeItem(atPath: path) }
        #expect(try NPYArray(contentsOf: path).ids() == [0, 7, 1 << 40])
        let u8 = try NPYArray(bytes: npyBytes(descr: "<u8", shape: "(2,)", body: le(UInt64.max) + le(UInt64(3))), path: "u.npy")
        #expect(try u8.ids() == [UInt64.max, 3])
        let i4 = try NPYArray(bytes: npyBytes(descr: "<i4", shape: "(2,)", body: le(Int32(5)) + le(Int32(9))), path: "i.npy")
        #expect(try i4.ids() == [5, 9])
        let neg = try NPYArray(bytes: npyBytes(descr: "<i8", shape: "(2,)", body: le(Int64(5)) + le(Int64(-1))), path: "n.npy")
        #expect(throws: FormatError.malformed(path: "n.npy", reason: "id at index 1 is negative (-1)")) { try neg.ids(path: "n.npy") }
    }

    @Test func float16IsWidened() throws {
        let halves: [Float16] = [1, -0.5, 65504]
        let body = halves.flatMap { le($0.bitPattern) }
        let a = try NPYArray(bytes: npyBytes(descr: "<f2", shape: "(1, 3)", body: body), path: "h.npy")
        #expect(try a.floats() == [1, -0.5, 65504])
    }

    @Test func badFiles() throws {
        let body = [UInt8](repeating: 0, count: 24)
        // A shape whose byte count overflows Int trapped (found by tools/fuzz): now it is malformed.
        #expect(throws: FormatError.malformed(path: "h.npy", reason: "shape [4000000000, 4000000000] is too large")) {
            try NPYArray(bytes: npyBytes(descr: "<i8", shape: "(4000000000, 4000000000)", body: body), path: "h.npy")
        }
        #expect(throws: FormatError.truncated(path: "t.npy", expectedBytes: 24, actualBytes: 20)) {
            try NPYArray(bytes: npyBytes(descr: "<f4", shape: "(2, 3)", body: Array(body.dropLast(4))), path: "t.npy")
        }
        #expect(throws: FormatError.malformed(path: "f.npy", reason: "Fortran-order arrays are not supported; save with C order")) {
            try NPYArray(bytes: npyBytes(descr: "<f4", shape: "(2, 3)", fortran: true, body: body), path: "f.npy")
        }
        #expect(throws: FormatError.malformed(path: "m.npy", reason: "not a .npy file (bad magic)")) {
            try NPYArray(bytes: Array("hello world, not numpy".utf8), path: "m.npy")
        }
        #expect(throws: FormatError.unsupportedDType(path: "d.npy", dtype: "<f8", expected: "<f2, <f4, <i4, <i8, <u4, <u8, |u1")) {
            try NPYArray(bytes: npyBytes(descr: "<f8", shape: "(3,)", body: body), path: "d.npy")
        }
        let ints = try NPYArray(bytes: npyBytes(descr: "<i8", shape: "(3,)", body: body), path: "i.npy")
        #expect(throws: FormatError.unsupportedDType(path: "i.npy", dtype: "<i8", expected: "<f4 or <f2")) { try ints.floats(path: "i.npy") }
        #expect(throws: FormatError.unsupportedDType(path: "b.npy", dtype: ">f4", expected: "<f2, <f4, <i4, <i8, <u4, <u8, |u1")) {
            try NPYArray(bytes: npyBytes(descr: ">f4", shape: "(6,)", body: body), path: "b.npy")
        }
        #expect(throws: FormatError.unreadable(path: "/nonexistent/x.npy", reason: "no such file")) { try NPYArray(contentsOf: "/nonexistent/x.npy") }
    }
}
