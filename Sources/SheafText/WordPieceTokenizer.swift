import Foundation

/// Why a tokenizer or model directory cannot be used.
public enum TextModelError: Error, Equatable, Sendable, CustomStringConvertible {
    /// A required file is missing or unreadable.
    case unreadable(path: String, reason: String)
    /// A file is present but not what the model needs.
    case malformed(path: String, reason: String)

    public var description: String {
        switch self {
        case .unreadable(let p, let r): "\(p): cannot read: \(r)"
        case .malformed(let p, let r): "\(p): \(r)"
        }
    }
}

/// BERT's uncased WordPiece tokenizer, as the Hugging Face `tokenizers` package runs it for
/// all-MiniLM-L6-v2 (`BertNormalizer` with lower-casing, `BertPreTokenizer`, `WordPiece`, then
/// `[CLS] … [SEP]`):
///
/// 1. Clean: drop U+0000, U+FFFD and other/control characters (categories Cc, Cf, Cn, Co; tab,
///    newline and carriage return count as whitespace); map every whitespace character to a space.
/// 2. Put spaces around CJK ideographs (the CJK Unified Ideographs blocks and their extensions
///    and compatibility blocks).
/// 3. Strip accents: canonical decomposition (NFD), then drop non-spacing marks (Mn).
/// 4. Lower-case, character by character (Unicode full lower-case mapping, no context rules).
/// 5. Split on whitespace, and split off every punctuation character (ASCII punctuation or a
///    Unicode P* category) as a word of its own.
/// 6. WordPiece each word: greedy longest match first, continuation pieces prefixed with `##`;
///    a word longer than `maxCharactersPerWord` characters, or one that cannot be covered, is
///    `[UNK]`.
/// 7. Truncate to `maxLength − 2` pieces and add `[CLS]` and `[SEP]`.
public struct WordPieceTokenizer: Sendable {
    /// Token → id.
    public let vocabulary: [String: Int32]
    /// Id → token.
    public let tokens: [String]
    public let unknownID: Int32
    public let classID: Int32
    public let separatorID: Int32
    public let paddingID: Int32
    /// Longest encoding, special tokens included.
    public var maxLength: Int
    public var maxCharactersPerWord = 100

    /// Reads `vocab.txt` (one token per line; the line number is the id).
    /// - Throws: `TextModelError` when the file is unreadable, has a repeated token, or lacks one of
    ///   [UNK], [CLS], [SEP], [PAD].
    public init(vocabularyFile path: String, maxLength: Int = 256) throws {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw TextModelError.unreadable(path: path, reason: FileManager.default.fileExists(atPath: path) ? "permission denied" : "no such file")
        }
        guard let text = String(data: data, encoding: .utf8) else { throw TextModelError.malformed(path: path, reason: "not UTF-8") }
        var lines = text.components(separatedBy: "\n").map { $0.hasSuffix("\r") ? String($0.dropLast()) : $0 }
        if lines.last == "" { lines.removeLast() }
        try self.init(tokens: lines, maxLength: maxLength, source: path)
    }

    /// A tokenizer over `tokens` (index = id).
    public init(tokens: [String], maxLength: Int = 256, source: String = "vocabulary") throws {
        precondition(maxLength >= 2, "maxLength must leave room for [CLS] and [SEP]")
        var vocabulary: [String: Int32] = [:]
        vocabulary.reserveCapacity(tokens.count)
        for (i, t) in tokens.enumerated() {
            if vocabulary.updateValue(Int32(i), forKey: t) != nil {
                throw TextModelError.malformed(path: source, reason: "token \(t.debugDescription) repeats (line \(i + 1))")
            }
        }
        func id(_ t: String) throws -> Int32 {
            guard let i = vocabulary[t] else { throw TextModelError.malformed(path: source, reason: "no \(t) token") }
            return i
        }
        self.vocabulary = vocabulary
        self.tokens = tokens
        unknownID = try id("[UNK]")
        classID = try id("[CLS]")
        separatorID = try id("[SEP]")
        paddingID = try id("[PAD]")
        self.maxLength = maxLength
    }

    /// Token ids of `text`: [CLS], its pieces (at most maxLength − 2), [SEP].
    public func encode(_ text: String) -> [Int32] {
        var ids: [Int32] = [classID]
        let budget = maxLength - 2
        outer: for word in Self.words(Self.normalize(text)) {
            for piece in wordPiece(word) {
                if ids.count - 1 == budget { break outer }
                ids.append(piece)
            }
        }
        ids.append(separatorID)
        return ids
    }

    /// The pieces of `text` as strings, without [CLS]/[SEP] or truncation (for inspection).
    public func pieces(_ text: String) -> [String] {
        Self.words(Self.normalize(text)).flatMap { wordPiece($0).map { tokens[Int($0)] } }
    }

    // MARK: - Steps

    /// Steps 1–4: clean, space CJK, strip accents, lower-case.
    public static func normalize(_ text: String) -> String {
        var cleaned = String.UnicodeScalarView()
        for s in text.unicodeScalars {
            if s.value == 0 || s.value == 0xFFFD || isControl(s) { continue }
            if isWhitespace(s) {
                cleaned.append(" ")
            } else if isCJK(s) {
                cleaned.append(" ")
                cleaned.append(s)
                cleaned.append(" ")
            } else {
                cleaned.append(s)
            }
        }
        let decomposed = String(cleaned).decomposedStringWithCanonicalMapping
        var out = ""
        out.unicodeScalars.reserveCapacity(decomposed.unicodeScalars.count)
        for s in decomposed.unicodeScalars where s.properties.generalCategory != .nonspacingMark {
            let lower = s.properties.lowercaseMapping
            if lower.unicodeScalars.count == 1, lower.unicodeScalars.first == s {
                out.unicodeScalars.append(s)
            } else {
                out.unicodeScalars.append(contentsOf: lower.unicodeScalars)
            }
        }
        return out
    }

    /// Step 5: whitespace-separated words, with each punctuation character a word of its own.
    public static func words(_ text: String) -> [[Unicode.Scalar]] {
        var words: [[Unicode.Scalar]] = []
        var current: [Unicode.Scalar] = []
        for s in text.unicodeScalars {
            if s.properties.isWhitespace {
                if !current.isEmpty { words.append(current); current = [] }
            } else if isPunctuation(s) {
                if !current.isEmpty { words.append(current); current = [] }
                words.append([s])
            } else {
                current.append(s)
            }
        }
        if !current.isEmpty { words.append(current) }
        return words
    }

    /// Step 6 for one word.
    func wordPiece(_ word: [Unicode.Scalar]) -> [Int32] {
        if word.count > maxCharactersPerWord { return [unknownID] }
        var pieces: [Int32] = []
        var start = 0
        while start < word.count {
            var end = word.count
            var found: Int32?
            while start < end {
                var candidate = start > 0 ? "##" : ""
                candidate.unicodeScalars.append(contentsOf: word[start..<end])
                if let id = vocabulary[candidate] {
                    found = id
                    break
                }
                end -= 1
            }
            guard let id = found else { return [unknownID] }
            pieces.append(id)
            start = end
        }
        return pieces
    }

    // MARK: - Character classes (as in the `tokenizers` Rust crate)

    static func isWhitespace(_ s: Unicode.Scalar) -> Bool {
        s == "\t" || s == "\n" || s == "\r" || s.properties.isWhitespace
    }

    static func isControl(_ s: Unicode.Scalar) -> Bool {
        if s == "\t" || s == "\n" || s == "\r" { return false }
        switch s.properties.generalCategory {
        case .control, .format, .unassigned, .privateUse: return true
        default: return false
        }
    }

    static func isCJK(_ s: Unicode.Scalar) -> Bool {
        switch s.value {
        case 0x4E00...0x9FFF, 0x3400...0x4DBF, 0x20000...0x2A6DF, 0x2A700...0x2B73F, 0x2B740...0x2B81F,
            0x2B920...0x2CEAF, 0xF900...0xFAFF, 0x2F800...0x2FA1F:
            return true
        default:
            return false
        }
    }

    static func isPunctuation(_ s: Unicode.Scalar) -> Bool {
        if s.isASCII {
            let v = s.value
            return (33...47).contains(v) || (58...64).contains(v) || (91...96).contains(v) || (123...126).contains(v)
        }
        switch s.properties.generalCategory {
        case .connectorPunctuation, .dashPunctuation, .openPunctuation, .closePunctuation, .initialPunctuation,
            .finalPunctuation, .otherPunctuation:
            return true
        default:
            return false
        }
    }
}
