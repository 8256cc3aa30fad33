import Foundation
import SheafFormats
import Testing

@Suite struct SafeTensorsTests {
    func failure(_ bytes: [UInt8], _ body: (SafeTensors) throws -> Void = { _ in }) -> FormatError? {
        let file = TemporaryFile(".safetensors", bytes: bytes)
        defer { file.remove() }
        do {
            try body(try SafeTensors.read(path: file.path))
            return nil
        } catch let e as FormatError {
            return e
        } catch {
            return nil
        }
    }

    /// A hand-made file: header JSON (padded to 8) and data bytes.
    func file(_ json: String, data: [UInt8]) -> [UInt8] {
        var h = Array(json.utf8)
        while (8 + h.count) % 8 != 0 { h.append(UInt8(ascii: " ")) }
        var out: [UInt8] = []
        withUnsafeBytes(of: UInt64(h.count).littleEndian) { out.append(contentsOf: $0) }
        return out + h + data
    }

    @Test func roundTripIsExact() throws {
        let f = TemporaryFile(".safetensors")
        defer { f.remove() }
        let weird: [Float] = [-0.0, .infinity, -.infinity, .leastNonzeroMagnitude, .greatestFiniteMagnitude, Float(bitPattern: 0x7FC0_1234)]
        let tensors: [(name: String, shape: [Int], values: [Float])] = [
            ("layer.0.weight", [2, 3], [1, 2, 3, 4, 5, 6]), ("weird", [6], weird), ("scalar", [], [7.5]), ("empty", [0, 4], []),
        ]
        try SafeTensors.write(tensors, metadata: ["format": "pt", "note": "ünïcode \"quoted\""], to: f.path)
        let r = try SafeTensors.read(path: f.path)
        #expect(r.metadata == ["format": "pt", "note": "ünïcode \"quoted\""])
        #expect(r.entries.map(\.name) == ["layer.0.weight", "weird", "scalar", "empty"])
        for t in tensors {
            let (shape, values) = try r.floats(t.name)
            #expect(shape == t.shape)
            #expect(values.map(\.bitPattern) == t.values.map(\.bitPattern), "\(t.name)")
        }
        // The header is 8-byte aligned and the data follows it directly.
        let bytes = f.bytes
        let n = bytes.withUnsafeBytes { Int(UInt64(littleEndian: $0.loadUnaligned(as: UInt64.self))) }
        #expect((8 + n) % 8 == 0)
        #expect(bytes.count == 8 + n + 4 * (6 + 6 + 1))
    }

    @Test func bfloat16IsTheHighHalf() throws {
        // 1.5 = 0x3FC00000 → BF16 0x3FC0; -2 = 0xC0000000 → 0xC000.
        let bytes = file(#"{"x":{"dtype":"BF16","shape":[2],"data_offsets":[0,4]}}"#, data: [0xC0, 0x3F, 0x00, 0xC0])
        let f = TemporaryFile(".safetensors", bytes: bytes)
        defer { f.remove() }
        #expect(try SafeTensors.read(path: f.path).floats("x").values == [1.5, -2])
    }

    @Test func badFilesAreNamed() throws {
        let good = file(#"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[1],"data_offsets":[8,12]}}"#, data: [UInt8](repeating: 0, count: 12))
        #expect(failure(good) == nil)
        // Missing tensor, wrong shape.
        let f = TemporaryFile(".safetensors", bytes: good)
        defer { f.remove() }
        let r = try SafeTensors.read(path: f.path)
        #expect(throws: FormatError.missingTensor(path: f.path, name: "c")) { try r.floats("c") }
        #expect(throws: FormatError.tensorShapeMismatch(path: f.path, name: "a", expected: [3], actual: [2])) { try r.floats("a", shape: [3]) }

        // Truncated data, truncated header, a file shorter than the length field.
        if case .truncated? = failure(Array(good.dropLast(3))) {} else { Issue.record("cut data should be truncated") }
        if case .truncated? = failure(Array(good.prefix(20))) {} else { Issue.record("cut header should be truncated") }
        if case .truncated? = failure([1, 0, 0]) {} else { Issue.record("3 bytes should be truncated") }
        // Absurd header length, non-JSON header, unknown dtype, shape/offset disagreement, gap, trailing bytes.
        var huge = good
        huge.replaceSubrange(0..<8, with: [0, 0, 0, 0, 0, 0, 0, 1])
        if case .malformed(_, let reason)? = failure(huge) { #expect(reason.contains("exceeds")) } else { Issue.record("huge header length") }
        if case .malformed(_, let reason)? = failure(file("{not json", data: [])) { #expect(reason.contains("JSON")) } else { Issue.record("bad JSON") }
        if case .unsupportedDType(_, let d, _)? = failure(file(#"{"a":{"dtype":"F8","shape":[1],"data_offsets":[0,1]}}"#, data: [0])) {
            #expect(d == "F8")
        } else { Issue.record("unknown dtype") }
        if case .malformed(_, let reason)? = failure(file(#"{"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}}"#, data: [UInt8](repeating: 0, count: 8))) {
            #expect(reason.contains("needs 12 bytes"))
        } else { Issue.record("shape and offsets disagree") }
        if case .malformed(_, let reason)? = failure(file(#"{"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}"#, data: [UInt8](repeating: 0, count: 8))) {
            #expect(reason.contains("gap"))
        } else { Issue.record("gap before the first tensor") }
        if case .malformed(_, let reason)? = failure(good + [0, 0, 0, 0]) { #expect(reason.contains("after the last tensor")) } else { Issue.record("trailing bytes") }
        if case .truncated? = failure([]) {} else { Issue.record("an empty file should be truncated") }
        #expect(throws: FormatError.unreadable(path: "/nonexistent/x.safetensors", reason: "no such file")) {
            try SafeTensors.read(path: "/nonexistent/x.safetensors")
        }
    }

    @Test func failedWriteLeavesNoFile() throws {
        let dir = "/nonexistent-sheaf-dir"
        #expect(throws: FormatError.self) { try SafeTensors.write([("a", [1], [1])], to: dir + "/x.safetensors") }
        #expect(!FileManager.default.fileExists(atPath: dir))
    }
}
