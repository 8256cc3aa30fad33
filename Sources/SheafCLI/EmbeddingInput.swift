import ArgumentParser
import SheafCodebook
import SheafFormats

// MARK: - Options

/// The embedding file options shared by `codebook train` and `items load`.
struct EmbeddingInput: ParsableArguments {
    @Option(name: .shortAndLong, help: "Embeddings: .npy (float32/float16, N × D, C order), .fvecs, or .safetensors.")
    var input: String

    @Option(help: "The tensor to read from a .safetensors file (needed when it holds several).")
    var tensor: String?

    /// Opens the file and checks its dimension against the store's.
    func open(dimension: Int) throws -> EmbeddingFile {
        let file = try EmbeddingFile(path: input, tensor: tensor)
        guard file.dimension == dimension else {
            throw CLIError("\(input): rows are \(file.dimension)-dimensional, the store holds \(dimension)-dimensional embeddings")
        }
        guard file.count > 0 else { throw CLIError("\(input): the file holds no rows") }
        return file
    }
}

// MARK: - Row checks

/// Checks rows read from a file: every value finite and, for the cosine metric, no zero rows.
/// `rows` are the file row numbers of the buffer's rows (for the message).
func checkRows(_ p: UnsafePointer<Float>, rows: [Int], dimension d: Int, path: String, metric: Metric?) throws {
    for (r, row) in rows.enumerated() {
        let base = p + r * d
        var allZero = true
        for c in 0..<d {
            let v = base[c]
            guard v.isFinite else {
                throw FormatError.badRow(path: path, row: row, reason: "value at column \(c) is \(v) (NaN and infinities are refused)")
            }
            if v != 0 { allZero = false }
        }
        if allZero, metric == .cosine {
            throw FormatError.badRow(path: path, row: row, reason: "is a zero vector: it has no direction and cannot be coded with a cosine codebook")
        }
    }
}
