import SheafCodebook
import SheafFormats
import SheafNN
import SheafStore

/// The frozen item content a model reads, rows 0…N (row 0 is padding, the zero vector): either
/// float32 rows, or the items' residual codes with their codebook's centroids.
///
/// Every model here first maps an item's content through a linear layer (SASRec's content
/// projection, HyMiRec's two item projections). `linear` does that in code space when the content
/// is codes (`Tape.linear(ResidualCodes, …)`: tables C · W, then L gathers per row), so neither
/// training nor serving forms the [N + 1, D] rows: the layer costs L·K·D·H instead of (N + 1)·D·H,
/// and the model keeps L·K·D centroid floats plus L codes and magnitudes per item instead of D
/// floats per item.
public struct ContentTable: Sendable {
    enum Storage: Sendable {
        case rows(Tensor)
        case codes(ResidualCodes)
    }
    let storage: Storage

    /// N + 1.
    public var rowCount: Int {
        switch storage {
        case .rows(let t): t.shape[0]
        case .codes(let c): c.count
        }
    }

    /// D.
    public var dimension: Int {
        switch storage {
        case .rows(let t): t.shape[1]
        case .codes(let c): c.dimension
        }
    }

    /// Whether the content is residual codes (the layer runs in code space).
    public var isCodes: Bool {
        if case .codes = storage { return true }
        return false
    }

    /// Float32 rows: `items` holds items 1…N, N × `dimension` floats.
    /// - Throws: `ModelError.invalidConfiguration` when `items` is not whole rows, or holds a NaN or infinity.
    public static func rows(_ items: [Float], dimension: Int) throws(ModelError) -> ContentTable {
        guard dimension >= 1, items.count % dimension == 0 else {
            throw .invalidConfiguration("content rows: \(items.count) floats are not whole rows of \(dimension)")
        }
        guard !items.contains(where: { !$0.isFinite }) else { throw .invalidConfiguration("content rows hold a NaN or infinity") }
        return ContentTable(storage: .rows(ItemContent.table(items, dimension: dimension)))
    }

    /// Residual codes of items 1…N (row 0, padding, is added: magnitudes 0, so its content is zero).
    public static func codes(_ items: ResidualCodes) -> ContentTable {
        let l = items.levels
        return ContentTable(storage: .codes(ResidualCodes(
            codes: [UInt32](repeating: 0, count: l) + items.codes, magnitudes: [Float](repeating: 0, count: l) + items.magnitudes,
            levels: l, codesPerLevel: items.codesPerLevel, centroids: items.centroids.values, dimension: items.dimension)))
    }

    /// The stored codes of `ids` (items 1…N in that order) and their codebook's centroids, read in
    /// one transaction: what a model trained on the store reads by default.
    /// - Parameter codebook: when given, every item must be coded with this codebook (a model
    ///   trained on one codebook's content refuses another's).
    /// - Throws: `StoreError.missingItems` (items without a code), `.codebookMismatch` (items coded
    ///   with different codebooks, or not with `codebook`: load them again under one codebook),
    ///   `.unknownCodebook`.
    public static func codes(from store: Store, ids: [UInt64], codebook required: UInt16? = nil) throws -> ContentTable {
        try store.read { txn in
            var missing: [UInt64] = []
            var codebook: Codebook?
            var codes: [UInt32] = [], magnitudes: [Float] = []
            for id in ids {
                guard let item = try txn.item(id) else {
                    missing.append(id)
                    continue
                }
                if let expected = required ?? codebook?.id, expected != item.codebookID {
                    throw StoreError.codebookMismatch(item: id, expected: expected, found: item.codebookID)
                }
                if codebook == nil {
                    guard let cb = try txn.codebook(item.codebookID) else { throw StoreError.unknownCodebook(item.codebookID) }
                    codebook = cb
                    codes.reserveCapacity(ids.count * cb.levels)
                    magnitudes.reserveCapacity(ids.count * cb.levels)
                }
                codes += item.codes
                magnitudes += item.magnitudes
            }
            guard missing.isEmpty else { throw StoreError.missingItems(missing) }
            guard let cb = codebook else { throw ModelError.invalidConfiguration("no items to read content for") }
            return .codes(ResidualCodes(
                codes: codes, magnitudes: magnitudes, levels: cb.levels, codesPerLevel: cb.codesPerLevel, centroids: cb.centroids,
                dimension: cb.dimension))
        }
    }

    /// x · W + b for every row x of the table, [N + 1, H]: a dense `linear` over float32 rows, or the
    /// code-space layer over codes (equal within float32 rounding).
    public func linear(_ t: Tape, _ w: Tensor, bias: Tensor) -> Tensor {
        switch storage {
        case .rows(let table): t.linear(table, w, bias: bias)
        case .codes(let codes): t.linear(codes, w, bias: bias)
        }
    }

    /// x · W + b for rows `ids` of the table (in that order, repeats allowed), [ids.count, H]: the
    /// rows gathered then a dense `linear`, or the code-space layer over those rows' codes.
    public func linear(_ t: Tape, _ w: Tensor, bias: Tensor, rows ids: [Int]) -> Tensor {
        switch storage {
        case .rows(let table): t.linear(t.embedding(table, ids: ids), w, bias: bias)
        case .codes(let codes): t.linear(codes.selecting(rows: ids), w, bias: bias)
        }
    }

    /// The rows themselves, [N + 1, D] (decoded for codes).
    public func decodedRows() -> Tensor {
        switch storage {
        case .rows(let t): t
        case .codes(let c): c.decoded()
        }
    }

    // MARK: Checkpoints

    /// What a checkpoint holds: `content_table` [N + 1, D] for rows; for codes `content_codes` and
    /// `content_magnitudes` [N + 1, L] (codes as exact float32 integers, K ≤ 65,536) and
    /// `content_centroids` [L·K, D].
    var checkpointTensors: [(name: String, tensor: Tensor)] {
        switch storage {
        case .rows(let t): return [("content_table", t)]
        case .codes(let c):
            let shape = [c.count, c.levels]
            return [
                ("content_codes", Tensor(shape: shape, values: c.codes.map { Float($0) })),
                ("content_magnitudes", Tensor(shape: shape, values: c.magnitudes)), ("content_centroids", c.centroids),
            ]
        }
    }

    /// The content table a checkpoint holds for `items` items of width `dimension` (either form).
    /// - Throws: a description of what is missing or inconsistent.
    static func read(from file: SafeTensors, items: Int, dimension: Int) throws -> ContentTable {
        guard file.entry("content_codes") != nil else {
            return ContentTable(storage: .rows(Tensor(shape: [items + 1, dimension], values: try file.floats("content_table", shape: [items + 1, dimension]).values)))
        }
        let (shape, codeValues) = try file.floats("content_codes")
        guard shape.count == 2, shape[0] == items + 1, (1...16).contains(shape[1]) else {
            throw ModelError.invalidConfiguration("content_codes has shape \(shape), [\(items + 1), L ≤ 16] expected")
        }
        let levels = shape[1]
        let magnitudes = try file.floats("content_magnitudes", shape: shape).values
        let (centroidShape, centroids) = try file.floats("content_centroids")
        guard centroidShape.count == 2, centroidShape[1] == dimension, centroidShape[0] % levels == 0, centroidShape[0] > 0 else {
            throw ModelError.invalidConfiguration("content_centroids has shape \(centroidShape), [L·K, \(dimension)] expected")
        }
        let k = centroidShape[0] / levels
        var codes = [UInt32]()
        codes.reserveCapacity(codeValues.count)
        for v in codeValues {
            guard v >= 0, v < Float(k), v == v.rounded() else {
                throw ModelError.invalidConfiguration("content_codes holds \(v), not a code below K = \(k)")
            }
            codes.append(UInt32(v))
        }
        guard magnitudes.allSatisfy(\.isFinite), centroids.allSatisfy(\.isFinite) else {
            throw ModelError.invalidConfiguration("content magnitudes or centroids hold a NaN or infinity")
        }
        return ContentTable(storage: .codes(ResidualCodes(
            codes: codes, magnitudes: magnitudes, levels: levels, codesPerLevel: k, centroids: centroids, dimension: dimension)))
    }
}
