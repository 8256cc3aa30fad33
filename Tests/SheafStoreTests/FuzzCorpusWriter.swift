import Foundation
import SheafFormats
import Testing

@testable import SheafStore

/// Writes the committed fuzz corpus (`Tests/FuzzCorpus/<target>/`) from real files, when asked:
///
///     SHEAF_WRITE_FUZZ_CORPUS=Tests/FuzzCorpus swift test --filter FuzzCorpusWriter
///
/// Sources: the schema-2 fixture store (one record of every table), the demo's store `data/demo-store`
/// (real MovieLens-100K history segments and a CHIME profile), `data/ml-100k` (ids, MiniLM embeddings,
/// ratings, titles). Each seed is small: a few rows or lines of the real file.
@Suite struct FuzzCorpusWriter {
    static let output = ProcessInfo.processInfo.environment["SHEAF_WRITE_FUZZ_CORPUS"]
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path

    @Test(.enabled(if: output != nil, "writes the fuzz corpus only when SHEAF_WRITE_FUZZ_CORPUS names its directory"))
    func writeCorpus() throws {
        let out = try #require(Self.output)
        let data = Self.root + "/data"
        func save(_ target: String, _ name: String, _ bytes: [UInt8]) throws {
            let dir = out + "/" + target
            try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
            try Data(bytes).write(to: URL(fileURLWithPath: dir + "/" + name))
        }
        var legacy = StoreOptions()
        legacy.readOnly = true
        // Record bodies: schema-2 stores store bodies without trailers.
        let fixture = try Store(path: Self.root + "/Tests/SheafStoreTests/Fixtures/schema2-store", dimension: nil, options: legacy, migrating: true)
        try fixture.read { txn in
            let t = fixture.tables
            let table = RecordDecoders.tables
            func record(_ name: String, _ bytes: UnsafeRawBufferPointer?) throws {
                let b = try #require(bytes)
                try save("records", name, [UInt8(table.firstIndex(of: name)!)] + Array(b))
            }
            try record("meta", txn.bytes(t.meta, metaKey))
            try record("codebooks", txn.bytes(t.codebooks, 1))
            try record("items", txn.bytes(t.items, 7))
            try record("titles", txn.bytes(t.titles, 7))
            try record("histories", txn.bytes(t.histories, SegmentKey(user: 5, segment: 1)))
        }
        let demo = try Store(path: data + "/demo-store", dimension: nil, options: legacy, migrating: true)
        try demo.read { txn in
            for (user, segment) in [(1, 0), (196, 0), (405, 5), (13, 2)] as [(UInt64, UInt32)] {
                let b = try #require(try txn.bytes(demo.tables.histories, SegmentKey(user: user, segment: segment)))
                try save("segment", "ml100k-user\(user)-segment\(segment)", Array(b))
            }
            let profile = try #require(try txn.bytes(demo.tables.profiles, 196))
            try save("records", "profiles", [UInt8(RecordDecoders.tables.firstIndex(of: "profiles")!)] + Array(profile))
        }
        // A stored value with its trailer (key: 8 zero bytes, as the `trailer` decoder checks it).
        let itemRecord = try #require(try fixture.read { try $0.bytes(fixture.tables.items, 7).map(Array.init) })
        var stored = itemRecord
        let key = [UInt8](repeating: 0, count: 8)
        let crc = key.withUnsafeBytes { k in itemRecord.withUnsafeBytes { RecordChecksum.compute(key: k, body: $0) } }
        withUnsafeBytes(of: crc.littleEndian) { stored += $0 }
        try save("records", "trailer", [UInt8(RecordDecoders.tables.firstIndex(of: "trailer")!)] + stored)

        // Embedding files: 4 real MiniLM rows and 40 real ids.
        let rows = Array(try NPYArray(contentsOf: data + "/ml-100k/item_embeddings.npy").floats()[0..<(4 * 384)])
        let ids = Array(try NPYArray(contentsOf: data + "/ml-100k/item_ids.npy").ids()[0..<40])
        let scratch = NSTemporaryDirectory() + "sheaf-corpus-\(getpid())"
        try FileManager.default.createDirectory(atPath: scratch, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: scratch) }
        func file(_ path: String) throws -> [UInt8] { [UInt8](try Data(contentsOf: URL(fileURLWithPath: path))) }
        try NPYArray.write(floats: rows, shape: [4, 384], to: scratch + "/rows.npy")
        try NPYArray.write(ids: ids, to: scratch + "/ids.npy")
        try save("npy", "minilm-4-rows.npy", try file(scratch + "/rows.npy"))
        try save("npy", "ml100k-40-ids.npy", try file(scratch + "/ids.npy"))
        try EmbeddingFile.writeFvecs(rows, dimension: 384, to: scratch + "/rows.fvecs")
        try save("fvecs", "minilm-4-rows.fvecs", try file(scratch + "/rows.fvecs"))
        try EmbeddingFile.writeSafetensors([("embeddings", rows, [4, 384], false)], to: scratch + "/f32.safetensors")
        try EmbeddingFile.writeSafetensors([("embeddings", rows, [4, 384], true), ("ids", Array(rows[0..<8]), [8], false)], to: scratch + "/f16.safetensors")
        try save("safetensors", "minilm-4-rows-f32.safetensors", try file(scratch + "/f32.safetensors"))
        try save("safetensors", "minilm-4-rows-f16-two-tensors.safetensors", try file(scratch + "/f16.safetensors"))

        // Behaviour files: the first 30 ratings of ml-100k.inter, in each format (first byte: the format).
        let lines = try String(contentsOfFile: data + "/ml-100k/ml-100k.inter", encoding: .utf8).split(separator: "\n").prefix(31).map(String.init)
        let fields = lines.dropFirst().map { $0.split(separator: "\t").map(String.init) }
        try save("behaviors", "ml100k-30.csv", [0] + Array(("user,item,rating,timestamp\n" + fields.map { $0.joined(separator: ",") + "\n" }.joined()).utf8))
        try save("behaviors", "ml100k-30.tsv", [1] + Array(("user\titem\trating\ttimestamp\n" + fields.map { $0.joined(separator: "\t") + "\n" }.joined()).utf8))
        try save("behaviors", "ml100k-30.dat", [2] + Array(fields.map { $0.joined(separator: "::") + "\n" }.joined().utf8))
        try save("behaviors", "ml100k-30.inter", [3] + Array((lines.joined(separator: "\n") + "\n").utf8))

        // Text: real titles and genres.
        let titles = try String(contentsOfFile: data + "/ml-100k/item_texts.tsv", encoding: .utf8).split(separator: "\n")
        for i in [0, 1, 9, 56, 241, 1681] where i < titles.count {
            try save("wordpiece", "title-\(i + 1)", Array(titles[i].split(separator: "\t").last!.utf8))
        }
    }
}
