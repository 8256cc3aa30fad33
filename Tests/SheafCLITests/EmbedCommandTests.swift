import Foundation
import SheafFormats
import SheafText
import Testing

@Suite struct EmbedCommandTests {
    static let tokens = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "toy", "story", "(", ")", "|", "comedy", "1995", "drama"]

    func model(_ scratch: Scratch) throws -> String {
        let dir = scratch.file("model")
        try BertEncoder.writeRandomModel(
            to: dir, configuration: BertConfiguration(hiddenSize: 8, layers: 1, heads: 2, intermediateSize: 16, maxPositions: 32, vocabularySize: Self.tokens.count),
            tokens: Self.tokens)
        return dir
    }

    @Test func embedsTheTextColumnWithIds() throws {
        let s = Scratch()
        let dir = try model(s)
        let input = s.file("items.tsv")
        try "1\tToy Story (1995) | Comedy\n7\tDrama\twith a tab\n3\tstory\n".write(toFile: input, atomically: true, encoding: .utf8)
        let out = try sheaf("embed", "--model", dir, "--input", input, "--output", s.file("e.npy"), "--ids-output", s.file("ids.npy"), "--max-length", "32", "-q")
        #expect(out.standardOutput.contains("embedded 3 texts × 8"))
        let e = try NPYArray(contentsOf: s.file("e.npy"))
        #expect(e.shape == [3, 8])
        #expect(try NPYArray(contentsOf: s.file("ids.npy")).ids(path: "ids") == [1, 7, 3])
        let direct = try BertEncoder(modelDirectory: dir, maxLength: 32).embed(["Toy Story (1995) | Comedy", "Drama\twith a tab", "story"])
        #expect(try e.floats(path: "e") == direct, "the text runs to the end of the line")
    }

    @Test func badInputIsNamedAndWritesNothing() throws {
        let s = Scratch()
        let dir = try model(s)
        func failure(_ text: String, _ extra: [String] = []) throws -> String {
            let input = s.file("in.tsv")
            try text.write(toFile: input, atomically: true, encoding: .utf8)
            do {
                try sheaf(["embed", "--model", dir, "--input", input, "--output", s.file("out.npy"), "--max-length", "32", "-q"] + extra)
                return "no error"
            } catch {
                #expect(!FileManager.default.fileExists(atPath: s.file("out.npy")), "output written despite \(error)")
                return "\(error)"
            }
        }
        let path = s.file("in.tsv")
        #expect(try failure("1\ttoy\n2\n") == "\(path):2: 1 column(s), need 2")
        #expect(try failure("x\ttoy\n") == "\(path):1: id \"x\" is not a non-negative integer")
        #expect(try failure("1\ttoy\n1\tstory\n") == "\(path):2: id 1 repeats line 1")
        #expect(try failure("\n\n") == "\(path): no rows to embed")
        #expect(try failure("id\ttext\n", ["--header"]) == "\(path): no rows to embed")
        #expect(try failure("1\ttoy\n", ["--model", s.file("nothing")]).contains("no such file"))
    }
}
