import ArgumentParser
import Foundation
import SheafFormats
import SheafStore

extension SheafCommand.ItemsCommand {
    /// `sheaf items similar STORE --item ID`: nearest items by decoded embedding (exact scan).
    struct Similar: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Nearest items to some items by cosine of decoded embeddings; optionally beside the originals' nearest.",
            discussion: "An exact scan over every stored item (it decodes them all): an inspection tool, not a serving index.")

        @OptionGroup var target: StoreArguments

        @Option(name: .customLong("item"), parsing: .upToNextOption, help: "Item id(s) to find neighbours of.")
        var items: [UInt64]

        @Option(name: .short, help: "Neighbours per item.")
        var k = 5

        @Option(help: "The original embeddings (.npy/.fvecs/.safetensors), to show their nearest too.")
        var original: String?

        @Option(help: "Ids of the original rows (.npy or text); default: row i is id i.")
        var originalIds: String?

        @Flag(help: "Print JSON.")
        var json = false

        func validate() throws {
            guard !items.isEmpty else { throw ValidationError("give at least one --item") }
            guard k >= 1 else { throw ValidationError("-k must be ≥ 1") }
        }

        struct Neighbour: Codable {
            var item: UInt64
            var cosine: Float
            var title: String?
        }
        struct Result: Codable {
            var item: UInt64
            var title: String?
            var decoded: [Neighbour]
            var original: [Neighbour]?
        }

        func run() throws {
            let store = try target.open(readOnly: true)
            let d = store.dimension
            var ids: [UInt64] = []
            try store.read { try $0.forEachItem { ids.append($0); return true } }
            let decoded = try store.read { try $0.decodeItems(ids) }
            let row = Dictionary(uniqueKeysWithValues: ids.enumerated().map { ($1, $0) })
            for item in items where row[item] == nil { throw CLIError("item \(item) has no code in the store") }

            var originalRows: [Float]? = nil
            var originalIDs: [UInt64] = []
            if let original {
                let file = try EmbeddingFile(path: original)
                guard file.dimension == d else { throw CLIError("\(original): rows are \(file.dimension)-d, the store holds \(d)-d") }
                originalRows = try file.read(rows: 0..<file.count)
                originalIDs = try loadIDs(originalIds, count: file.count, rowsOf: original)
            }
            var results: [Result] = []
            try store.read { txn in
                /// The k nearest rows other than the item itself.
                func neighbours(_ vectors: [Float], _ idsOf: [UInt64], query: [Float], excluding item: UInt64) throws -> [Neighbour] {
                    let top = nearest(vectors, count: idsOf.count, dimension: d, query: query, k: k + 1)
                    return try top.filter { idsOf[$0.row] != item }.prefix(k).map { hit in
                        Neighbour(item: idsOf[hit.row], cosine: hit.cosine, title: try txn.title(item: idsOf[hit.row]))
                    }
                }
                for item in items {
                    let r = row[item]!
                    let q = Array(decoded[(r * d)..<((r + 1) * d)])
                    let dec = try neighbours(decoded, ids, query: q, excluding: item)
                    var orig: [Neighbour]? = nil
                    if let originalRows, let o = originalIDs.firstIndex(of: item) {
                        let oq = Array(originalRows[(o * d)..<((o + 1) * d)])
                        orig = try neighbours(originalRows, originalIDs, query: oq, excluding: item)
                    }
                    results.append(Result(item: item, title: try txn.title(item: item), decoded: dec, original: orig))
                }
            }
            if json { return say(try jsonText(results)) }
            for r in results {
                say("item \(r.item)\(r.title.map { "  \($0)" } ?? "")")
                let width = 58
                say("  " + "nearest by decoded codes".padding(toLength: width, withPad: " ", startingAt: 0)
                    + (r.original == nil ? "" : "nearest by original embedding"))
                for i in 0..<max(r.decoded.count, r.original?.count ?? 0) {
                    func cell(_ n: Neighbour?) -> String {
                        guard let n else { return "" }
                        return String(format: "%.3f ", n.cosine) + String((n.title ?? "#\(n.item)").prefix(width - 7))
                    }
                    let left = cell(i < r.decoded.count ? r.decoded[i] : nil)
                    let right = r.original.map { i < $0.count ? cell($0[i]) : "" } ?? ""
                    say("  " + left.padding(toLength: width, withPad: " ", startingAt: 0) + right)
                }
                if let o = r.original {
                    let overlap = Set(r.decoded.map(\.item)).intersection(o.map(\.item)).count
                    say("  overlap: \(overlap) of \(k)")
                }
                say()
            }
        }
    }
}

/// The k rows of `vectors` (count × d) with the highest cosine to `query`, best first.
func nearest(_ vectors: [Float], count: Int, dimension d: Int, query: [Float], k: Int) -> [(row: Int, cosine: Float)] {
    var qn: Float = 0
    for v in query { qn += v * v }
    qn = qn.squareRoot()
    var scored: [(row: Int, cosine: Float)] = []
    scored.reserveCapacity(count)
    vectors.withUnsafeBufferPointer { x in
        for r in 0..<count {
            var dot: Float = 0
            var nn: Float = 0
            for t in 0..<d {
                let v = x[r * d + t]
                dot += v * query[t]
                nn += v * v
            }
            scored.append((r, nn > 0 && qn > 0 ? dot / (nn.squareRoot() * qn) : 0))
        }
    }
    return Array(scored.sorted { $0.cosine > $1.cosine || ($0.cosine == $1.cosine && $0.row < $1.row) }.prefix(k))
}
