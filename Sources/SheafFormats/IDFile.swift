import Foundation

/// Reads item ids: `.npy` (int64, uint64, int32, uint32; negative refused) or text (one decimal id per line; blank lines and lines starting with # skipped).
public enum IDFile {
    /// Reads the ids of `path`; a `.npy` extension means a numpy array of shape (N,) or (N, 1), anything else text.
    /// - Throws: `FormatError` naming the file: unreadable, malformed or unsupported npy, or `.badLine` for a text line that is not an id.
    public static func read(path: String) throws -> [UInt64] {
        if (path as NSString).pathExtension.lowercased() == "npy" {
            let array = try NPYArray(contentsOf: path)
            guard array.shape.count == 1 || (array.shape.count == 2 && array.shape[1] == 1) else {
                throw FormatError.malformed(path: path, reason: "expected a 1-D array of ids (N,) or (N, 1), got shape \(NPYHeader.shapeText(array.shape))")
            }
            return try array.ids(path: path)
        }
        var ids: [UInt64] = []
        try POSIXFile.forEachLine(path: path) { line, number in
            var start = 0
            var end = line.count
            while start < end, line[start] == 0x20 || line[start] == 0x09 { start += 1 }
            while end > start, line[end - 1] == 0x20 || line[end - 1] == 0x09 { end -= 1 }
            if start == end || line[start] == UInt8(ascii: "#") { return true }
            var value: UInt64 = 0
            var ok = true
            for i in start..<end {
                let digit = line[i] &- 0x30
                guard digit < 10 else { ok = false; break }
                let (times10, o1) = value.multipliedReportingOverflow(by: 10)
                let (sum, o2) = times10.addingReportingOverflow(UInt64(digit))
                guard !o1, !o2 else { ok = false; break }
                value = sum
            }
            guard ok else {
                let text = String(decoding: UnsafeBufferPointer(rebasing: line[start..<end]), as: UTF8.self)
                throw FormatError.badLine(path: path, line: number, reason: "'\(text)' is not an unsigned integer id")
            }
            ids.append(value)
            return true
        }
        return ids
    }

    /// Writes `ids` as text, one decimal id per line.
    public static func writeText(_ ids: [UInt64], to path: String) throws {
        var text = ""
        text.reserveCapacity(ids.count * 8)
        for id in ids { text += "\(id)\n" }
        guard FileManager.default.createFile(atPath: path, contents: Data(text.utf8)) else {
            throw FormatError.unreadable(path: path, reason: "cannot write the file")
        }
    }
}
