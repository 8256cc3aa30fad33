import Foundation
import Testing

@testable import SheafFormats

/// A .safetensors file from a JSON header (padded to 8 bytes) and the data bytes.
func safetensorsBytes(json: String, body: [UInt8]) -> [UInt8] {
    let header = json + String(repeating: " ", count: (8 - json.utf8.count % 8) % 8)
    return le(UInt64(header.utf8.count)) + Array(header.utf8) + body
}

@Suite struct EmbeddingFileTests {
    let values: [Float] = (0..<12).map { Float($0) * 0.25 - 1 }

    @Test func npyFloat32RoundTrip() throws {
        let file = TemporaryFile(".npy")
        defer { file.remove() }
        try NPYArray.write(floats: values, shape: [3, 4], to: file.path)
        let e = try EmbeddingFile(path: file.path)
        #expect(e.kind == .npy)
        #expect(e.count == 3)
        #expect(e.dimension == 4)
        #expect(e.dtype == "float32")
        #expect(try e.read(rows: 0..<3) == NPYArray(contentsOf: file.path).floats())
        #expect(try e.read(rows: 0..<3).map(\.bitPattern) == values.map(\.bitPattern))
        #expect(try e.read(rows: 1..<3) == Array(values[4..<12]))
        #expect(try e.read(rows: 2..<2).isEmpty)
        var buffer = [Float](repeating: .nan, count: 4)
        try buffer.withUnsafeMutableBufferPointer { try e.read(rows: 1..<2, into: $0.baseAddress!) }
        #expect(buffer == Array(values[4..<8]))
    }

    @Test func npyFloat16IsWidened() throws {
        let halves: [Float16] = [1, -0.5, 65504, 0.25, -2, 3]
        let file = TemporaryFile(".npy", bytes: npyBytes(descr: "<f2", shape: "(3, 2)", body: halves.flatMap { le($0.bitPattern) }))
        defer { file.remove() }
        let e = try EmbeddingFile(path: file.path)
        #expect(e.dtype == "float16")
        #expect(e.count == 3 && e.dimension == 2)
        #expect(try e.read(rows: 0..<3) == [1, -0.5, 65504, 0.25, -2, 3])
        #expect(try e.read(rows: 1..<3) == [65504, 0.25, -2, 3])
    }

    @Test func npyErrors() throws {
        let body = [UInt8](repeating: 0, count: 24)
        let cases: [(descr: String, shape: String, body: [UInt8], error: (String) -> FormatError)] = [
            ("<f4", "(2, 3)", Array(body.dropLast(4)), { .truncated(path: $0, expectedBytes: 24, actualBytes: 20) }),
            ("<f4", "(2, 3)", body + [0, 0, 0, 0], { .malformed(path: $0, reason: "4 bytes after the array data") }),
            ("<f8", "(3, 1)", body, { .unsupportedDType(path: $0, dtype: "<f8", expected: "<f4 or <f2") }),
            ("<i4", "(2, 3)", body, { .unsupportedDType(path: $0, dtype: "<i4", expected: "<f4 or <f2") }),
            ("<f4", "(6,)", body, { .malformed(path: $0, reason: "expected a 2-D array (N, D), got shape (6,)") }),
            ("<f4", "(1, 2, 3)", body, { .malformed(path: $0, reason: "expected a 2-D array (N, D), got shape (1, 2, 3)") }),
        ]
        for c in cases {
            let file = TemporaryFile(".npy", bytes: npyBytes(descr: c.descr, shape: c.shape, body: c.body))
            defer { file.remove() }
            #expect(throws: c.error(file.path)) { try EmbeddingFile(path: file.path) }
        }
        let fortran = TemporaryFile(".npy", bytes: npyBytes(descr: "<f4", shape: "(2, 3)", fortran: true, body: body))
        defer { fortran.remove() }
        #expect(throws: FormatError.malformed(path: fortran.path, reason: "Fortran-order arrays are not supported; save with C order")) {
            try EmbeddingFile(path: fortran.path)
        }
        let junk = TemporaryFile(".npy", bytes: Array("hi".utf8))
        defer { junk.remove() }
        #expect(throws: FormatError.malformed(path: junk.path, reason: "not a .npy file (bad magic)")) { try EmbeddingFile(path: junk.path) }
    }

    @Test func unknownExtensionAndMissingFile() throws {
        #expect(throws: FormatError.malformed(path: "/tmp/x.bin", reason: "unknown embedding format: use .npy, .fvecs or .safetensors")) {
            try EmbeddingFile(path: "/tmp/x.bin")
        }
        #expect(throws: FormatError.unreadable(path: "/nonexistent/x.npy", reason: "no such file")) { try EmbeddingFile(path: "/nonexistent/x.npy") }
        #expect(throws: FormatError.unreadable(path: "/nonexistent/x.fvecs", reason: "no such file")) {
            try EmbeddingFile(path: "/nonexistent/x.fvecs")
        }
    }

    @Test func fileShrinkingAfterOpenIsTruncated() throws {
        let file = TemporaryFile(".npy")
        defer { file.remove() }
        try NPYArray.write(floats: values, shape: [3, 4], to: file.path)
        let e = try EmbeddingFile(path: file.path)
        let handle = try #require(FileHandle(forWritingAtPath: file.path))
        try handle.truncate(atOffset: UInt64(file.bytes.count - 16))  // drops row 2, in place
        try handle.close()
        #expect(try e.read(rows: 0..<2) == Array(values[0..<8]))
        #expect(throws: FormatError.truncated(path: file.path, expectedBytes: 48, actualBytes: 32)) { try e.read(rows: 1..<3) }
    }

    @Test func concurrentReadsAgree() throws {
        let rows = 64, d = 8
        let many = (0..<(rows * d)).map { Float($0) }
        let file = TemporaryFile(".npy")
        defer { file.remove() }
        try NPYArray.write(floats: many, shape: [rows, d], to: file.path)
        let e = try EmbeddingFile(path: file.path)
        let results = UnsafeMutableBufferPointer<Float>.allocate(capacity: rows * d)
        defer { results.deallocate() }
        results.initialize(repeating: -1)
        let address = Int(bitPattern: results.baseAddress!)  // a pointer is not Sendable; its address is
        DispatchQueue.concurrentPerform(iterations: rows) { r in
            try? e.read(rows: r..<(r + 1), into: UnsafeMutablePointer<Float>(bitPattern: address)! + r * d)
        }
        #expect(Array(results) == many)
    }

    @Test func fvecsRoundTrip() throws {
        let file = TemporaryFile(".fvecs")
        defer { file.remove() }
        try EmbeddingFile.writeFvecs(values, dimension: 4, to: file.path)
        let raw = file.bytes
        #expect(raw.count == 3 * (4 + 16))
        #expect(Array(raw[0..<4]) == le(Int32(4)))
        let e = try EmbeddingFile(path: file.path)
        #expect(e.kind == .fvecs)
        #expect(e.count == 3 && e.dimension == 4 && e.dtype == "float32")
        #expect(try e.read(rows: 0..<3) == values)
        #expect(try e.read(rows: 1..<3) == Array(values[4..<12]))
    }

    @Test func fvecsBadRowPrefix() throws {
        let file = TemporaryFile(".fvecs")
        defer { file.remove() }
        try EmbeddingFile.writeFvecs([1, 2, 3, 4, 5, 6], dimension: 2, to: file.path)
        var raw = file.bytes
        raw.replaceSubrange(12..<16, with: le(Int32(3)))  // row 1's prefix
        file.write(raw)
        let e = try EmbeddingFile(path: file.path)
        #expect(e.count == 3)
        #expect(try e.read(rows: 0..<1) == [1, 2])
        #expect(try e.read(rows: 2..<3) == [5, 6])
        #expect(throws: FormatError.badRow(path: file.path, row: 1, reason: "dimension prefix 3, expected 2")) { try e.read(rows: 0..<3) }
    }

    @Test func fvecsTruncatedAndEmpty() throws {
        let file = TemporaryFile(".fvecs")
        defer { file.remove() }
        try EmbeddingFile.writeFvecs([1, 2, 3, 4, 5, 6], dimension: 3, to: file.path)
        file.write(Array(file.bytes.dropLast(5)))
        #expect(throws: FormatError.truncated(path: file.path, expectedBytes: 32, actualBytes: 27)) { try EmbeddingFile(path: file.path) }
        file.write([])
        #expect(throws: FormatError.malformed(path: file.path, reason: "empty .fvecs file")) { try EmbeddingFile(path: file.path) }
    }

    @Test func safetensorsFloat32AndFloat16() throws {
        let file = TemporaryFile(".safetensors")
        defer { file.remove() }
        try EmbeddingFile.writeSafetensors([(name: "emb", values: values, shape: [3, 4], float16: false)], to: file.path)
        let raw = file.bytes
        let headerLength = Int(raw[0..<8].reversed().reduce(0) { $0 << 8 | UInt64($1) })
        #expect(headerLength % 8 == 0)
        #expect(raw.count == 8 + headerLength + 48)
        let e = try EmbeddingFile(path: file.path)
        #expect(e.kind == .safetensors)
        #expect(e.count == 3 && e.dimension == 4 && e.dtype == "float32")
        #expect(try e.read(rows: 0..<3) == values)
        #expect(try e.read(rows: 1..<3) == Array(values[4..<12]))

        try EmbeddingFile.writeSafetensors([(name: "emb", values: values, shape: [4, 3], float16: true)], to: file.path)
        let h = try EmbeddingFile(path: file.path)
        #expect(h.dtype == "float16")
        #expect(h.count == 4 && h.dimension == 3)
        #expect(try h.read(rows: 0..<4) == values)  // quarter steps are exact in float16
        #expect(try h.read(rows: 3..<4) == Array(values[9..<12]))
    }

    @Test func safetensorsChoosingTheTensor() throws {
        let file = TemporaryFile(".safetensors")
        defer { file.remove() }
        try EmbeddingFile.writeSafetensors(
            [
                (name: "b", values: [1, 2, 3, 4, 5, 6, 7, 8], shape: [4, 2], float16: false),
                (name: "a", values: [9, 8, 7, 6, 5, 4], shape: [2, 3], float16: true),
            ], to: file.path)
        #expect(throws: FormatError.malformed(path: file.path, reason: "holds several tensors (a, b): name one with --tensor")) {
            try EmbeddingFile(path: file.path)
        }
        #expect(throws: FormatError.malformed(path: file.path, reason: "no tensor named 'c' (has: a, b)")) {
            try EmbeddingFile(path: file.path, tensor: "c")
        }
        let b = try EmbeddingFile(path: file.path, tensor: "b")
        #expect(b.count == 4 && b.dimension == 2 && b.dtype == "float32")
        #expect(try b.read(rows: 2..<4) == [5, 6, 7, 8])
        let a = try EmbeddingFile(path: file.path, tensor: "a")
        #expect(a.count == 2 && a.dimension == 3 && a.dtype == "float16")
        #expect(try a.read(rows: 0..<2) == [9, 8, 7, 6, 5, 4])

        // A single 2-D tensor next to a 1-D one is taken without a name.
        try EmbeddingFile.writeSafetensors(
            [
                (name: "bias", values: [1, 2, 3], shape: [3], float16: false),
                (name: "weight", values: [1, 2, 3, 4, 5, 6], shape: [2, 3], float16: false),
            ], to: file.path)
        let w = try EmbeddingFile(path: file.path)
        #expect(w.count == 2 && w.dimension == 3)
        #expect(try w.read(rows: 0..<2) == [1, 2, 3, 4, 5, 6])
        #expect(throws: FormatError.malformed(path: file.path, reason: "tensor 'bias': expected a 2-D array (N, D), got shape (3,)")) {
            try EmbeddingFile(path: file.path, tensor: "bias")
        }
    }

    @Test func safetensorsErrors() throws {
        let file = TemporaryFile(".safetensors")
        defer { file.remove() }
        let body = [UInt8](repeating: 0, count: 12)
        file.write(safetensorsBytes(json: #"{"__metadata__":{"format":"pt"},"x":{"dtype":"BF16","shape":[2,3],"data_offsets":[0,12]}}"#, body: body))
        #expect(throws: FormatError.unsupportedDType(path: file.path, dtype: "BF16", expected: "F32 or F16")) { try EmbeddingFile(path: file.path) }

        file.write(safetensorsBytes(json: #"{"x":{"dtype":"F32","shape":[2,3],"data_offsets":[0,20]}}"#, body: [UInt8](repeating: 0, count: 24)))
        #expect(
            throws: FormatError.malformed(path: file.path, reason: "tensor 'x': data_offsets [0, 20] do not hold the 24 bytes of shape (2, 3) F32")
        ) { try EmbeddingFile(path: file.path) }

        try EmbeddingFile.writeSafetensors([(name: "x", values: values, shape: [3, 4], float16: false)], to: file.path)
        file.write(Array(file.bytes.dropLast(4)))
        #expect(throws: FormatError.truncated(path: file.path, expectedBytes: 48, actualBytes: 44)) { try EmbeddingFile(path: file.path) }

        file.write(le(UInt64(100)) + Array("{}".utf8))
        #expect(throws: FormatError.malformed(path: file.path, reason: "header length 100 runs past the end of the file (10 bytes)")) {
            try EmbeddingFile(path: file.path)
        }
        file.write(safetensorsBytes(json: "[1, 2]", body: []))
        #expect(throws: FormatError.malformed(path: file.path, reason: "the header is not a JSON object")) { try EmbeddingFile(path: file.path) }
    }
}
