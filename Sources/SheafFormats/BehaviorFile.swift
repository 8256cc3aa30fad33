import Foundation

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#elseif canImport(Darwin)
    import Darwin
#endif

/// One behaviour row of an input file.
public struct BehaviorRecord: Sendable, Equatable {
    /// The user id.
    public var user: UInt64
    /// The item id.
    public var item: UInt64
    /// When it happened (seconds or whatever unit the file uses).
    public var timestamp: Int64
    /// The label or rating (0 when the file has none).
    public var label: Float
    /// The action type (0 when the file has none).
    public var action: UInt16

    /// The timestamps a file may hold: −2^62 … 2^62 − 1, in whatever unit it uses. Seconds, milliseconds,
    /// microseconds and nanoseconds since 1970 all fit for centuries (nanoseconds until 2116); the bound
    /// keeps Int64's extremes, which are arithmetic sentinels and overflow traps, out of the store.
    public static let timestampRange: ClosedRange<Int64> = (-(1 << 62))...((1 << 62) - 1)

    /// A record; label and action default to 0.
    public init(user: UInt64, item: UInt64, timestamp: Int64, label: Float = 0, action: UInt16 = 0) {
        self.user = user
        self.item = item
        self.timestamp = timestamp
        self.label = label
        self.action = action
    }
}

/// Behaviour file formats.
public enum BehaviorFormat: String, Sendable, CaseIterable {
    /// Comma-separated with a header line; double-quoted fields allowed.
    case csv
    /// Tab-separated with a header line.
    case tsv
    /// MovieLens `ratings.dat`: `UserID::MovieID::Rating::Timestamp`, no header.
    case movielens
    /// RecBole atomic `.inter` file: tab-separated, header fields like `user_id:token`.
    case recbole

    /// Guesses from the file name: ".csv"→csv, ".tsv"→tsv, ".inter"→recbole, "ratings.dat" or ".dat"→movielens; nil otherwise.
    public static func guess(path: String) -> BehaviorFormat? {
        switch (path as NSString).pathExtension.lowercased() {
        case "csv": .csv
        case "tsv": .tsv
        case "inter": .recbole
        case "dat": .movielens
        default: nil
        }
    }
}

/// Streams behaviour records from a file.
///
/// The file is read in large chunks and parsed as bytes; lines end in '\n' (a trailing '\r' is dropped) and empty lines are skipped.
/// Quoted CSV fields may not span lines.
public struct BehaviorFileReader: Sendable {
    /// The file's path.
    public let path: String
    /// The file's format.
    public let format: BehaviorFormat

    /// Column indexes of each role.
    private let userIndex: Int, itemIndex: Int, timestampIndex: Int
    private let labelIndex: Int?, actionIndex: Int?
    /// Fields every data line must have (the header's column count; 4 for movielens).
    private let fieldCount: Int
    /// The header's line number (0 for movielens, which has none).
    private let headerLine: Int

    /// Opens `path` and reads and validates its header.
    ///
    /// `columns`: for csv/tsv (and recbole), the header names of the user, item, timestamp and (optional) label columns, in that order, and optionally a fifth: action
    /// (an empty name leaves label or action out). Names match case-insensitively. Without `columns`, the user column is `user`, `user_id` or `userId`;
    /// item is `item`, `item_id`, `itemId` or `movieId`; timestamp is `timestamp` or `time`; label (optional, else 0) is `label` or `rating`; action (optional, else 0) is `action`.
    /// RecBole's `:type` suffixes are stripped from header names. `columns` is ignored for movielens, whose layout is fixed.
    /// - Throws: `.unreadable`, `.malformed(reason: "empty file: no header")`, `.badLine(line: 1, reason: "no column named 'x' (columns: a, b, c)")`.
    public init(path: String, format: BehaviorFormat, columns: [String]? = nil) throws {
        self.path = path
        self.format = format
        var first: (fields: [String], line: Int)?
        try POSIXFile.forEachLine(path: path) { line, number in
            guard !Self.isBlank(line) || format == .movielens else { return true }
            if format != .movielens {
                // Header names are matched as text: a byte that is not UTF-8 would be replaced and the
                // column silently not found (a label column read as absent, every label 0).
                guard String(validating: line, as: UTF8.self) != nil else {
                    throw FormatError.badLine(
                        path: path, line: number, reason: "the header is not valid UTF-8: \(quoted(line))")
                }
                var splitter = FieldSplitter(separator: format == .csv ? .comma : .tab)
                let source = splitter.split(line)
                first = (splitter.strings(source), number)
            }
            return false
        }
        if format == .movielens {
            (userIndex, itemIndex, labelIndex, timestampIndex, actionIndex) = (0, 1, 2, 3, nil)
            fieldCount = 4
            headerLine = 0
            return
        }
        guard let first else { throw FormatError.malformed(path: path, reason: "empty file: no header") }
        var names = first.fields.map { $0.trimmingCharacters(in: .whitespaces) }
        if let head = names.first, head.hasPrefix("\u{FEFF}") { names[0] = String(head.dropFirst()) }
        if format == .recbole { names = names.map(Self.stripType) }
        let lowered = names.map { $0.lowercased() }
        let listing = names.joined(separator: ", ")

        /// The index of the first header name among `aliases`; nil when none is present.
        func find(_ aliases: [String]) -> Int? {
            for alias in aliases {
                if let i = lowered.firstIndex(of: alias.lowercased()) { return i }
            }
            return nil
        }
        /// The index of `name`, or a `.badLine` error naming it.
        func require(_ name: String, aliases: [String]) throws -> Int {
            guard let i = find(aliases) else {
                throw FormatError.badLine(path: path, line: first.line, reason: "no column named '\(name)' (columns: \(listing))")
            }
            return i
        }

        if var columns {
            guard (3...5).contains(columns.count) else {
                throw FormatError.malformed(
                    path: path, reason: "columns must name user, item, timestamp and optionally label and action (got \(columns.count) names)")
            }
            if format == .recbole { columns = columns.map(Self.stripType) }
            userIndex = try require(columns[0], aliases: [columns[0]])
            itemIndex = try require(columns[1], aliases: [columns[1]])
            timestampIndex = try require(columns[2], aliases: [columns[2]])
            labelIndex = columns.count > 3 && !columns[3].isEmpty ? try require(columns[3], aliases: [columns[3]]) : nil
            actionIndex = columns.count > 4 && !columns[4].isEmpty ? try require(columns[4], aliases: [columns[4]]) : nil
        } else {
            let recbole = format == .recbole
            userIndex = try require(recbole ? "user_id" : "user", aliases: ["user", "user_id", "userId"])
            itemIndex = try require(recbole ? "item_id" : "item", aliases: ["item", "item_id", "itemId", "movieId"])
            timestampIndex = try require("timestamp", aliases: ["timestamp", "time"])
            labelIndex = find(["label", "rating"])
            actionIndex = find(["action"])
        }
        fieldCount = names.count
        headerLine = first.line
    }

    /// Calls `body` for each record with its 1-based line number, in file order. Stop early by returning false.
    /// - Throws: `.badLine` for a line with too few fields or a field that does not parse; errors thrown by `body`.
    public func forEach(_ body: (BehaviorRecord, Int) throws -> Bool) throws {
        let separator: FieldSplitter.Separator =
            switch format {
            case .csv: .comma
            case .tsv, .recbole: .tab
            case .movielens: .doubleColon
            }
        var splitter = FieldSplitter(separator: separator)
        try POSIXFile.forEachLine(path: path) { line, number in
            if number <= headerLine || Self.isBlank(line) { return true }
            let source = splitter.split(line)
            guard splitter.count == fieldCount else {
                throw FormatError.badLine(
                    path: path, line: number,
                    reason: "expected \(fieldCount) fields\(headerLine > 0 ? " (as the header)" : ""), found \(splitter.count)")
            }
            let record = try source.withUnsafeBufferPointer { try parse(splitter, $0, line: number) }
            return try body(record, number)
        }
    }

    // MARK: - Private

    /// Builds the record of one split line.
    private func parse(_ fields: FieldSplitter, _ source: UnsafeBufferPointer<UInt8>, line: Int) throws -> BehaviorRecord {
        func field(_ i: Int) -> UnsafeBufferPointer<UInt8> { Self.trimmed(fields.field(i, in: source)) }
        func text(_ i: Int) -> String { quoted(fields.field(i, in: source)) }
        func fail(_ reason: String) -> FormatError { FormatError.badLine(path: path, line: line, reason: reason) }
        func id(_ name: String, _ i: Int) throws -> UInt64 {
            switch Self.unsigned(field(i)) {
            case .value(let v): return v
            case .tooLarge: throw fail("\(name) \(text(i)) is too large: ids are at most 18446744073709551615 (2^64 − 1)")
            case .notANumber: throw fail("\(name) \(text(i)) is not an unsigned integer")
            }
        }

        let user = try id("user", userIndex)
        let item = try id("item", itemIndex)
        guard let timestamp = Self.integer(field(timestampIndex)) else {
            throw fail("timestamp \(text(timestampIndex)) is not an integer")
        }
        guard BehaviorRecord.timestampRange.contains(timestamp) else {
            throw fail("timestamp \(text(timestampIndex)) is outside the supported range −2^62 … 2^62 − 1")
        }
        var label: Float = 0
        if let labelIndex {
            guard let value = Float(String(decoding: field(labelIndex), as: UTF8.self)) else {
                throw fail("label \(text(labelIndex)) is not a number")
            }
            guard value.isFinite else { throw fail("label \(text(labelIndex)) is not a finite number") }
            label = value
        }
        var action: UInt16 = 0
        if let actionIndex {
            guard case .value(let value) = Self.unsigned(field(actionIndex)), value <= UInt64(UInt16.max) else {
                throw fail("action \(text(actionIndex)) is not an integer in 0...65535")
            }
            action = UInt16(value)
        }
        return BehaviorRecord(user: user, item: item, timestamp: timestamp, label: label, action: action)
    }

    /// A RecBole header name without its `:type` suffix.
    private static func stripType(_ name: String) -> String {
        guard let colon = name.firstIndex(of: ":") else { return name }
        return String(name[..<colon])
    }

    /// Whether a line holds only spaces and tabs.
    private static func isBlank(_ line: UnsafeBufferPointer<UInt8>) -> Bool {
        line.allSatisfy { $0 == 0x20 || $0 == 0x09 }
    }

    /// `bytes` without surrounding spaces.
    private static func trimmed(_ bytes: UnsafeBufferPointer<UInt8>) -> UnsafeBufferPointer<UInt8> {
        var start = 0
        var end = bytes.count
        while start < end, bytes[start] == 0x20 { start += 1 }
        while end > start, bytes[end - 1] == 0x20 { end -= 1 }
        return UnsafeBufferPointer(rebasing: bytes[start..<end])
    }

    /// What a field of unsigned decimal digits holds.
    enum Unsigned: Equatable {
        case value(UInt64)
        /// Only digits, but more than UInt64 holds.
        case tooLarge
        /// Empty, or something other than digits.
        case notANumber
    }

    /// Unsigned decimal digits fitting UInt64.
    static func unsigned(_ bytes: UnsafeBufferPointer<UInt8>) -> Unsigned {
        guard !bytes.isEmpty else { return .notANumber }
        var value: UInt64 = 0
        var overflow = false
        for b in bytes {
            let digit = b &- 0x30
            guard digit < 10 else { return .notANumber }
            let (times10, o1) = value.multipliedReportingOverflow(by: 10)
            let (sum, o2) = times10.addingReportingOverflow(UInt64(digit))
            overflow = overflow || o1 || o2
            value = sum
        }
        return overflow ? .tooLarge : .value(value)
    }

    /// A signed decimal integer fitting Int64, optionally followed by a fraction of zeros ("881250949.0"), or nil.
    private static func integer(_ bytes: UnsafeBufferPointer<UInt8>) -> Int64? {
        var digits = bytes[...]
        var negative = false
        if let sign = digits.first, sign == UInt8(ascii: "-") || sign == UInt8(ascii: "+") {
            negative = sign == UInt8(ascii: "-")
            digits = digits.dropFirst()
        }
        if let dot = digits.firstIndex(of: UInt8(ascii: ".")) {
            guard digits[(dot + 1)...].allSatisfy({ $0 == UInt8(ascii: "0") }) else { return nil }
            digits = digits[..<dot]
        }
        guard case .value(let magnitude) = unsigned(UnsafeBufferPointer(rebasing: digits)) else { return nil }
        if negative {
            guard magnitude <= UInt64(Int64.max) + 1 else { return nil }
            return magnitude == UInt64(Int64.max) + 1 ? Int64.min : -Int64(magnitude)
        }
        guard magnitude <= UInt64(Int64.max) else { return nil }
        return Int64(magnitude)
    }
}

/// Splits one line into fields, reusing its storage across lines.
///
/// Fields are byte ranges into the line itself, or, when a CSV line holds double quotes, into an unescaped copy.
struct FieldSplitter {
    /// What separates fields.
    enum Separator { case comma, tab, doubleColon }

    let separator: Separator
    /// Start and end offsets of each field in the source.
    private var starts: [Int] = []
    private var ends: [Int] = []
    /// The unescaped copy of the last quoted CSV line.
    private var scratch: [UInt8] = []

    /// A splitter for `separator`.
    init(separator: Separator) { self.separator = separator }

    /// Number of fields of the last split line.
    var count: Int { starts.count }

    /// Splits `line`; returns the source the fields index into (the line, or an unescaped copy of it).
    mutating func split(_ line: UnsafeBufferPointer<UInt8>) -> Source {
        starts.removeAll(keepingCapacity: true)
        ends.removeAll(keepingCapacity: true)
        let n = line.count
        switch separator {
        case .comma where line.contains(UInt8(ascii: "\"")):
            splitQuoted(line)
            return .scratch(scratch)
        case .comma, .tab:
            let sep = separator == .comma ? UInt8(ascii: ",") : 0x09
            var start = 0
            for i in 0..<n where line[i] == sep {
                starts.append(start)
                ends.append(i)
                start = i + 1
            }
            starts.append(start)
            ends.append(n)
        case .doubleColon:
            var start = 0
            var i = 0
            while i + 1 < n {
                if line[i] == UInt8(ascii: ":") && line[i + 1] == UInt8(ascii: ":") {
                    starts.append(start)
                    ends.append(i)
                    i += 2
                    start = i
                } else {
                    i += 1
                }
            }
            starts.append(start)
            ends.append(n)
        }
        return .line(line)
    }

    /// The bytes of field `i` in `source`.
    func field(_ i: Int, in source: UnsafeBufferPointer<UInt8>) -> UnsafeBufferPointer<UInt8> {
        UnsafeBufferPointer(rebasing: source[starts[i]..<ends[i]])
    }

    /// All fields of the last split line as strings.
    func strings(_ source: Source) -> [String] {
        source.withUnsafeBufferPointer { buffer in (0..<count).map { String(decoding: field($0, in: buffer), as: UTF8.self) } }
    }

    /// Splits a CSV line with double-quoted fields ("" inside quotes is one quote) into `scratch`.
    private mutating func splitQuoted(_ line: UnsafeBufferPointer<UInt8>) {
        let quote = UInt8(ascii: "\"")
        let comma = UInt8(ascii: ",")
        scratch.removeAll(keepingCapacity: true)
        var i = 0
        let n = line.count
        while true {
            starts.append(scratch.count)
            // Leading spaces before an opening quote are dropped.
            var j = i
            while j < n, line[j] == 0x20 { j += 1 }
            if j < n, line[j] == quote {
                i = j + 1
                while i < n {
                    if line[i] == quote {
                        if i + 1 < n, line[i + 1] == quote {
                            scratch.append(quote)
                            i += 2
                        } else {
                            i += 1
                            break
                        }
                    } else {
                        scratch.append(line[i])
                        i += 1
                    }
                }
                // Anything between the closing quote and the next comma is kept, except spaces.
                while i < n, line[i] != comma {
                    if line[i] != 0x20 { scratch.append(line[i]) }
                    i += 1
                }
            } else {
                while i < n, line[i] != comma {
                    scratch.append(line[i])
                    i += 1
                }
            }
            ends.append(scratch.count)
            guard i < n else { break }
            i += 1  // past the comma
        }
    }

    /// Where the fields of a split line live.
    enum Source {
        case line(UnsafeBufferPointer<UInt8>)
        case scratch([UInt8])

        /// Calls `body` with the source's bytes.
        func withUnsafeBufferPointer<R>(_ body: (UnsafeBufferPointer<UInt8>) throws -> R) rethrows -> R {
            switch self {
            case .line(let buffer): try body(buffer)
            case .scratch(let bytes): try bytes.withUnsafeBufferPointer(body)
            }
        }
    }
}

/// A field or line as error messages quote it: in single quotes, cut to 80 characters (saying how many
/// bytes there were), with control characters, DEL and bytes that are not UTF-8 written as `\xNN`, so a
/// huge field or a binary line cannot flood or garble a terminal.
public func quoted(_ bytes: UnsafeBufferPointer<UInt8>, limit: Int = 80) -> String {
    var out = "'"
    var shown = 0
    var i = 0
    let n = bytes.count
    while i < n, shown < limit {
        let b = bytes[i]
        // The length of a well-formed UTF-8 sequence starting here (0 when it is not one).
        var length = 0
        if b < 0x80 { length = 1 } else if b & 0xE0 == 0xC0 { length = 2 } else if b & 0xF0 == 0xE0 { length = 3 } else if b & 0xF8 == 0xF0 { length = 4 }
        if length > 1, i + length <= n, let s = String(validating: UnsafeBufferPointer(rebasing: bytes[i..<(i + length)]), as: UTF8.self) {
            out += s
            i += length
        } else if length == 1, b >= 0x20, b != 0x7F {
            out.unicodeScalars.append(Unicode.Scalar(b))
            i += 1
        } else {
            out += "\\x" + (b < 16 ? "0" : "") + String(b, radix: 16, uppercase: true)
            i += 1
        }
        shown += 1
    }
    out += "'"
    if i < n { out += "… (\(n) bytes)" }
    return out
}

/// `quoted` of a string's UTF-8 bytes.
public func quoted(_ text: String, limit: Int = 80) -> String {
    var t = text
    return t.withUTF8 { quoted($0, limit: limit) }
}
