import ArgumentParser
import Foundation
import SheafFormats
import SheafLinearAlgebra
import SheafText

extension SheafCommand {
    struct Embed: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Embed a text column with a pretrained BERT sentence encoder (e.g. all-MiniLM-L6-v2).",
            discussion: """
                Reads a tab-separated file, embeds one column with the model in --model (config.json,
                vocab.txt, model.safetensors) and writes unit-norm float32 rows to a .npy file, row i
                for input line i. With the default columns the input is the `id<TAB>text` layout of
                data/ml-100k/item_texts.tsv, and --ids-output writes the ids beside the embeddings.
                Example:
                  sheaf embed --model data/minilm --input items.tsv --output emb.npy --ids-output ids.npy
                """)

        @Option(help: "The model directory (config.json, vocab.txt, model.safetensors).")
        var model: String

        @Option(name: .shortAndLong, help: "The tab-separated input file (UTF-8).")
        var input: String

        @Option(name: .shortAndLong, help: "The .npy file to write (float32, rows × dimension; replaced atomically).")
        var output: String

        @Option(help: "The 1-based column holding the text; the text runs to the end of the line when it is the last column.")
        var column = 2

        @Option(help: "The 1-based column holding integer item ids (0: none).")
        var idColumn = 1

        @Option(help: "Write the ids of --id-column here (.npy int64), in input order.")
        var idsOutput: String?

        @Flag(help: "The first line is a header: skip it.")
        var header = false

        @Option(help: "Texts per forward pass.")
        var batchSize = 32

        @Option(help: "Tokens per text, [CLS] and [SEP] included (longer texts are truncated).")
        var maxLength = 256

        @Option(help: "Batches run at once (default: the number of cores).")
        var threads = ProcessInfo.processInfo.activeProcessorCount

        @Flag(name: .shortAndLong, help: "No progress on stderr.")
        var quiet = false

        func validate() throws {
            guard column >= 1 else { throw ValidationError("--column is 1-based") }
            guard idColumn >= 0, idColumn != column else { throw ValidationError("--id-column must be 0 or another column than --column") }
            guard batchSize >= 1 else { throw ValidationError("--batch-size must be positive") }
            guard threads >= 1 else { throw ValidationError("--threads must be positive") }
            if idsOutput != nil, idColumn == 0 { throw ValidationError("--ids-output needs an --id-column") }
        }

        func run() throws {
            let (ids, texts) = try readInput()
            guard !texts.isEmpty else { throw CLIError("\(input): no rows to embed") }
            let encoder = try BertEncoder(modelDirectory: model, maxLength: maxLength)
            let progress = ProgressReporter(label: "embedding", total: texts.count, unit: "texts", enabled: !quiet)
            var last = 0
            let embeddings = encoder.embed(texts, batchSize: batchSize, threads: threads) { done in
                progress.advance(by: done - last)
                last = done
            }
            progress.finish()
            let writer = try NPYStreamWriter(path: output, rows: texts.count, dimension: encoder.dimension)
            try embeddings.withUnsafeBufferPointer { try writer.append($0) }
            try writer.finish()
            if let idsOutput { try NPYArray.write(ids: ids, to: idsOutput) }
            let rate = Double(texts.count) / max(progress.elapsed, 1e-9)
            say("embedded \(thousands(texts.count)) texts × \(encoder.dimension) into \(output) (\(thousands(Int(rate))) texts/s, OpenBLAS core \(BLAS.coreName))")
        }

        /// The ids (when --id-column is set) and texts of every data line.
        func readInput() throws -> ([UInt64], [String]) {
            guard let data = FileManager.default.contents(atPath: input) else {
                throw FormatError.unreadable(path: input, reason: FileManager.default.fileExists(atPath: input) ? "permission denied" : "no such file")
            }
            guard let text = String(data: data, encoding: .utf8) else { throw FormatError.malformed(path: input, reason: "not UTF-8") }
            var ids: [UInt64] = []
            var texts: [String] = []
            var seen: [UInt64: Int] = [:]
            for (n, raw) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
                let lineNumber = n + 1
                if header && n == 0 { continue }
                let line = raw.hasSuffix("\r") ? raw.dropLast() : raw
                if line.isEmpty { continue }
                // Columns after the text column are not split off when the text is the last one wanted.
                let needed = max(column, idColumn)
                let fields = line.split(separator: "\t", maxSplits: column == needed ? column - 1 : Int.max, omittingEmptySubsequences: false)
                guard fields.count >= needed else {
                    throw FormatError.badLine(path: input, line: lineNumber, reason: "\(fields.count) column(s), need \(needed)")
                }
                if idColumn > 0 {
                    guard let id = UInt64(fields[idColumn - 1].trimmingCharacters(in: .whitespaces)) else {
                        throw FormatError.badLine(path: input, line: lineNumber, reason: "id \(String(fields[idColumn - 1]).debugDescription) is not a non-negative integer")
                    }
                    if let first = seen.updateValue(lineNumber, forKey: id) {
                        throw FormatError.badLine(path: input, line: lineNumber, reason: "id \(id) repeats line \(first)")
                    }
                    ids.append(id)
                }
                texts.append(String(fields[column - 1]))
            }
            return (ids, texts)
        }
    }
}
