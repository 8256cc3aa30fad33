import ArgumentParser
import Foundation
import SheafCodebook
import SheafFormats
import SheafQuantizer
import SheafStore

extension SheafCommand {
    /// `sheaf items …`
    struct ItemsCommand: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "items", abstract: "Load, export and inspect item embeddings.",
            subcommands: [Load.self, Export.self, Similar.self])
    }
}

extension SheafCommand.ItemsCommand {
    /// `sheaf items load STORE --input FILE [--ids FILE] [--titles FILE]`.
    struct Load: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Encode item embeddings with the active codebook and store them.",
            discussion: """
                The whole input (embeddings, ids, titles) is checked before anything is written. Rows are then \
                encoded and committed in chunks; a load that is interrupted can be re-run as is: an item's code \
                is replaced, never duplicated.
                """)

        @OptionGroup var target: StoreArguments
        @OptionGroup var input: EmbeddingInput

        @Option(help: "Item ids, one per row: .npy (int64/uint64) or text (one id per line). Default: row i gets id i.")
        var ids: String?

        @Option(help: "Item titles: a text file of `id<TAB>title` lines (shown by `sheaf history`).")
        var titles: String?

        @Option(help: "Encode beam width (default: the codebook's, set at training).")
        var beam: Int?

        @Option(help: ArgumentHelp(
            "Greedy search: shortlist (int8 scores of every centroid, then the best --candidates scored exactly), exhaustive, or auto (shortlist with AVX-512 VNNI and K ≥ 1024).",
            valueName: "auto|exhaustive|shortlist"))
        var search: SearchArgument = .auto

        @Option(help: "Centroids per level scored exactly by the shortlist search.")
        var candidates = 4

        @OptionGroup var chunks: LoadChunkOptions<ItemRowChunk>

        @Flag(help: "Print the time of every stage (reading, checking, encoding, packing, puts, commits) on stderr.")
        var timings = false

        func validate() throws {
            if let beam, !(1...64).contains(beam) { throw ValidationError("--beam must be in 1...64") }
            guard (1...256).contains(candidates) else { throw ValidationError("--candidates must be in 1...256") }
        }

        func run() throws {
            let store = try target.open()
            guard let codebook = try store.read({ try $0.activeCodebook() }) else {
                throw CLIError("the store has no active codebook; train one first with `sheaf codebook train \(target.store) --input …`")
            }
            let file = try input.open(dimension: store.dimension)
            let n = file.count
            let itemIDs = try loadIDs(ids, count: n, rowsOf: file.path)
            let titleMap = try titles.map { try readTitles($0) } ?? [:]
            let d = file.dimension

            var stages = StageTimes()
            // 1. Check every row before writing anything.
            let checking = target.progress("checking \(file.path)", total: n)
            let chunkSize = chunks.chunkSize
            var buffer = [Float](repeating: 0, count: min(chunkSize, n) * d)
            var start = 0
            while start < n {
                let end = min(n, start + chunkSize)
                try buffer.withUnsafeMutableBufferPointer { b in
                    try stages.time("read input (check pass)") { try file.read(rows: start..<end, into: b.baseAddress!) }
                    try stages.time("check rows (finite, non-zero)") {
                        try checkRows(b.baseAddress!, rows: Array(start..<end), dimension: d, path: file.path, metric: codebook.metric)
                    }
                }
                checking.advance(by: end - start)
                start = end
            }
            checking.finish()

            // 2. Encode and commit chunk by chunk.
            let width = beam ?? Int(codebook.trainingStats["encode_beam_width"] ?? 1)
            let searchMethod = search.search(codesPerLevel: codebook.codesPerLevel, candidates: candidates)
            let encoder = ResidualEncoder(codebook: codebook, beamWidth: width, search: searchMethod)
            let loading = target.progress("encoding \(file.path)", total: n)
            var codes = [UInt32](repeating: 0, count: min(chunkSize, n) * codebook.levels)
            var mags = [Float](repeating: 0, count: codes.count)
            start = 0
            while start < n {
                let end = min(n, start + chunkSize)
                let rows = end - start
                try buffer.withUnsafeMutableBufferPointer { b in
                    try stages.time("read input (encode pass)") { try file.read(rows: start..<end, into: b.baseAddress!) }
                    try stages.time("encode (\(width > 1 ? "beam \(width)" : searchMethod.description), \(codebook.levels) levels × K=\(codebook.codesPerLevel))") {
                        try codes.withUnsafeMutableBufferPointer { c in
                            try mags.withUnsafeMutableBufferPointer { m in
                                try encoder.encode(
                                    UnsafeBufferPointer(rebasing: b[0..<(rows * d)]), count: rows, codes: c.baseAddress!,
                                    magnitudes: m.baseAddress!)
                            }
                        }
                    }
                }
                let chunkIDs = Array(itemIDs[start..<end])
                let L = codebook.levels
                do {
                    let packed = try stages.time("check codes, quantize magnitudes, bit-pack") {
                        try Store.packItems(
                            ids: chunkIDs, codes: Array(codes[0..<(rows * L)]),
                            magnitudes: codebook.magnitudeEncoding == .none ? [] : Array(mags[0..<(rows * L)]),
                            codebook: codebook)
                    }
                    var inside: UInt64 = 0
                    let writeStart = StageTimes.now()
                    try store.write { txn in
                        let t0 = StageTimes.now()
                        try txn.putPackedItems(ids: chunkIDs, packed: packed, codebook: codebook)
                        inside = StageTimes.now() - t0
                    }
                    stages.add("LMDB puts", nanoseconds: inside)
                    stages.add("LMDB commit (\(store.isDurable ? "durable: fsync" : "not durable"))", nanoseconds: StageTimes.now() - writeStart - inside)
                } catch StoreError.readOnly {
                    throw StoreError.readOnly  // nothing was written: no "re-run" advice
                } catch {
                    throw CLIError(
                        "\(error)\n\(thousands(start)) of \(thousands(n)) items were stored before this failure; "
                            + "re-run the same command to finish (reloading an item replaces its code)")
                }
                loading.advance(by: rows)
                start = end
                chunks.pauseAfterChunk()
            }
            loading.finish()
            if !titleMap.isEmpty {
                let sorted = titleMap.keys.sorted()
                try stages.time("titles (puts and commit)") {
                    try store.write { try $0.putTitles(ids: sorted, titles: sorted.map { titleMap[$0]! }) }
                }
            }
            if timings { note(stages.table(items: n)) }
            let seconds = loading.elapsed
            say("stored \(thousands(n)) items with codebook \(codebook.id) (\(codebook.bytesPerItem) bytes each, \(thousands(Int(Double(n) / max(seconds, 1e-9))))/s, \(width > 1 ? "beam \(width)" : searchMethod.description) search)"
                + (titleMap.isEmpty ? "" : ", \(thousands(titleMap.count)) titles"))
        }
    }

    /// `sheaf items export STORE --output FILE.npy [--ids FILE]`.
    struct Export: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Write decoded item embeddings as an N × D float32 .npy, in --ids order or ascending id order.")

        @OptionGroup var target: StoreArguments

        @Option(name: .shortAndLong, help: "The .npy file to write (replaced atomically).")
        var output: String

        @Option(help: "Ids to export, in this order (.npy or text). Default: every item, ascending.")
        var ids: String?

        @Option(help: "Write the ids of the exported rows here (.npy int64), useful without --ids.")
        var idsOutput: String?

        func run() throws {
            let store = try target.open(readOnly: true)
            let d = store.dimension
            let order: [UInt64]
            if let ids {
                order = try IDFile.read(path: ids)
                var missing: [UInt64] = []
                try store.read { txn in
                    for id in order where try txn.item(id) == nil {
                        missing.append(id)
                        if missing.count > 10 { break }
                    }
                }
                if !missing.isEmpty {
                    throw CLIError("\(ids): item(s) without a code in the store: \(missing.prefix(10).map(String.init).joined(separator: ", "))\(missing.count > 10 ? ", …" : "")")
                }
            } else {
                var all: [UInt64] = []
                try store.read { try $0.forEachItem { all.append($0); return true } }
                order = all
            }
            let writer = try NPYStreamWriter(path: output, rows: order.count, dimension: d)
            let progress = target.progress("exporting", total: order.count)
            var start = 0
            let chunk = 16_384
            var buffer = [Float](repeating: 0, count: min(chunk, max(order.count, 1)) * d)
            while start < order.count {
                let end = min(order.count, start + chunk)
                let part = order[start..<end]
                try store.read { txn in
                    try buffer.withUnsafeMutableBufferPointer { b in
                        _ = try txn.decodeItems(part, into: UnsafeMutableBufferPointer(rebasing: b[0..<(part.count * d)]))
                    }
                }
                try buffer.withUnsafeBufferPointer { try writer.append(UnsafeBufferPointer(rebasing: $0[0..<(part.count * d)])) }
                progress.advance(by: part.count)
                start = end
            }
            try writer.finish()
            progress.finish()
            if let idsOutput { try NPYArray.write(ids: order, to: idsOutput) }
            say("wrote \(thousands(order.count)) × \(d) float32 embeddings to \(output)")
        }
    }
}

// MARK: - Ids and titles

/// The ids of `count` rows: read from `path`, or 0..<count. Ids must be unique.
func loadIDs(_ path: String?, count: Int, rowsOf rowsPath: String) throws -> [UInt64] {
    guard let path else { return (0..<count).map(UInt64.init) }
    let ids = try IDFile.read(path: path)
    guard ids.count == count else {
        throw CLIError("\(path) holds \(thousands(ids.count)) ids but \(rowsPath) holds \(thousands(count)) rows")
    }
    var firstRow: [UInt64: Int] = [:]
    firstRow.reserveCapacity(ids.count)
    for (row, id) in ids.enumerated() {
        if let earlier = firstRow.updateValue(row, forKey: id) {
            throw FormatError.badRow(path: path, row: row, reason: "id \(id) repeats row \(earlier)")
        }
    }
    return ids
}

/// Reads `id<TAB>title` lines (blank lines skipped).
func readTitles(_ path: String) throws -> [UInt64: String] {
    guard let data = FileManager.default.contents(atPath: path) else {
        throw FormatError.unreadable(path: path, reason: FileManager.default.fileExists(atPath: path) ? "permission denied or not a file" : "no such file")
    }
    guard let text = String(data: data, encoding: .utf8) else { throw FormatError.malformed(path: path, reason: "not UTF-8 text") }
    var titles: [UInt64: String] = [:]
    for (i, raw) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
        let line = raw.hasSuffix("\r") ? raw.dropLast() : raw[...]
        if line.isEmpty { continue }
        guard let tab = line.firstIndex(of: "\t") else {
            throw FormatError.badLine(path: path, line: i + 1, reason: "expected `id<TAB>title`")
        }
        guard let id = UInt64(line[..<tab]) else {
            throw FormatError.badLine(path: path, line: i + 1, reason: "'\(line[..<tab])' is not an unsigned integer id")
        }
        let title = String(line[line.index(after: tab)...])
        guard title.utf8.count <= 4096 else {
            throw FormatError.badLine(path: path, line: i + 1, reason: "title longer than 4096 bytes")
        }
        titles[id] = title
    }
    return titles
}
