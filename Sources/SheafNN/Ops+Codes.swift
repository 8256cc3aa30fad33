import CSheafDecode
import CSheafNN

/// Rows given as residual codes: x_i = Σ_l α_il · C[l·K + b_il], with C the centroids of L levels
/// of K rows each, [L·K, D]. SheafNN's view of a codebook's codes (it knows nothing of codebooks or
/// storage): what a layer linear in x needs to run in code space (`Tape.linear(_:_:bias:)`).
///
/// A row whose magnitudes are all 0 is the zero vector (models use it for padding and for items
/// without a code).
public struct ResidualCodes: Sendable {
    /// n, the number of rows.
    public let count: Int
    /// L.
    public let levels: Int
    /// K, rows per level in `centroids`.
    public let codesPerLevel: Int
    /// n × L codes, row-major, each < K.
    public let codes: [UInt32]
    /// n × L magnitudes α, row-major (1s for a euclidean codebook).
    public let magnitudes: [Float]
    /// The centroids, [L·K, D], a constant (no gradient).
    public let centroids: Tensor

    /// D, the width of a row.
    public var dimension: Int { centroids.shape[1] }

    /// - Parameters:
    ///   - centroids: L × K × D floats, row-major.
    /// Traps when a count does not match or a code is ≥ K (a caller's bug: the store hands out
    /// checked codes).
    public init(codes: [UInt32], magnitudes: [Float], levels: Int, codesPerLevel: Int, centroids: [Float], dimension: Int) {
        precondition(levels >= 1 && levels <= 16 && codesPerLevel >= 1 && dimension >= 1, "ResidualCodes: L \(levels), K \(codesPerLevel), D \(dimension)")
        precondition(codes.count % levels == 0 && magnitudes.count == codes.count, "ResidualCodes: \(codes.count) codes, \(magnitudes.count) magnitudes for L = \(levels)")
        precondition(centroids.count == levels * codesPerLevel * dimension, "ResidualCodes: \(centroids.count) centroid values, L·K·D = \(levels * codesPerLevel * dimension) expected")
        let limit = UInt32(codesPerLevel)
        precondition(!codes.contains { $0 >= limit }, "ResidualCodes: a code is ≥ K = \(codesPerLevel)")
        self.count = codes.count / levels
        self.levels = levels
        self.codesPerLevel = codesPerLevel
        self.codes = codes
        self.magnitudes = magnitudes
        self.centroids = Tensor(shape: [levels * codesPerLevel, dimension], values: centroids)
    }

    /// Rows `ids` (in that order, repeats allowed) with the same centroids (shared, not copied).
    public func selecting(rows ids: [Int]) -> ResidualCodes {
        let l = levels
        var c = [UInt32](), m = [Float]()
        c.reserveCapacity(ids.count * l)
        m.reserveCapacity(ids.count * l)
        for id in ids {
            precondition(id >= 0 && id < count, "ResidualCodes.selecting: row \(id) outside 0..<\(count)")
            c += codes[(id * l)..<((id + 1) * l)]
            m += magnitudes[(id * l)..<((id + 1) * l)]
        }
        return ResidualCodes(count: ids.count, levels: l, codesPerLevel: codesPerLevel, codes: c, magnitudes: m, centroids: centroids)
    }

    /// Already-checked parts (codes of rows of a checked `ResidualCodes`).
    private init(count: Int, levels: Int, codesPerLevel: Int, codes: [UInt32], magnitudes: [Float], centroids: Tensor) {
        self.count = count
        self.levels = levels
        self.codesPerLevel = codesPerLevel
        self.codes = codes
        self.magnitudes = magnitudes
        self.centroids = centroids
    }

    /// The rows themselves, [n, D] (what `linear` never forms; for tests and dense comparisons).
    public func decoded() -> Tensor {
        let d = dimension
        var out = [Float](repeating: 0, count: count * d)
        if count > 0 {
            centroids.values.withUnsafeBufferPointer { c in
                // safe: codes < K (checked in init), c holds L·K·D floats and out n × D.
                sheaf_decode_f32(c.baseAddress!, levels, codesPerLevel, d, codes, magnitudes, count, &out, 0)
            }
        }
        return Tensor(shape: [count, d], values: out)
    }
}

extension Tape {
    /// x · W + b for rows x given as residual codes, computed in code space: the tables
    /// T = C · W ([L·K, H], one `matmul`, whose backward gives dW = Cᵀ · dT), then each row
    /// Σ_l α_il · T[l·K + b_il] (+ b) gathered from them (`gatherCodes`). The [n, D] rows are never
    /// formed, forward or backward: the cost is L·K·D·H for the tables instead of n·D·H for the
    /// product, plus n·L·H for the gathers.
    ///
    /// Equal to `linear(codes.decoded(), w, bias:)` within float32 rounding (the D-term products are
    /// taken per centroid, before the L-term sum instead of after it).
    /// - Parameters:
    ///   - w: [D, H].
    ///   - bias: [H], or nil.
    /// - Returns: [n, H].
    public func linear(_ codes: ResidualCodes, _ w: Tensor, bias: Tensor? = nil) -> Tensor {
        precondition(w.rank == 2 && w.shape[0] == codes.dimension, "linear(codes): W \(w.shape) for D = \(codes.dimension)")
        return gatherCodes(codes, tables: matmul(codes.centroids, w), bias: bias)
    }

    /// Σ_l α_il · T[l·K + b_il] (+ b) for every row of `codes`: [n, H]. The forward pass runs the
    /// store's decode kernel over the tables (AVX2+FMA or portable, as the decode picks); the
    /// backward pass scatter-adds α_il · dY_i into row l·K + b_il of dT (rows met by several codes
    /// receive the sum) and sums dY's rows for db.
    /// - Parameters:
    ///   - tables: [L·K, H].
    ///   - bias: [H], or nil.
    public func gatherCodes(_ codes: ResidualCodes, tables: Tensor, bias: Tensor? = nil) -> Tensor {
        let L = codes.levels, K = codes.codesPerLevel, n = codes.count
        precondition(tables.rank == 2 && tables.shape[0] == L * K, "gatherCodes: tables \(tables.shape) for L·K = \(L * K)")
        let h = tables.shape[1]
        if let bias { precondition(bias.shape == [h], "gatherCodes: bias \(bias.shape) for \(h) outputs") }
        var out = unfilledFloats(n * h)
        out.withUnsafeMutableBufferPointer { o in
            guard n > 0, h > 0 else { return }
            tables.values.withUnsafeBufferPointer { t in
                // safe: codes < K (checked when `codes` was made), t holds L·K·H floats, o n × H.
                sheaf_decode_f32(t.baseAddress!, L, K, h, codes.codes, codes.magnitudes, n, o.baseAddress!, 0)
            }
            if let bias {
                bias.values.withUnsafeBufferPointer { b in
                    for r in 0..<n {
                        let row = o.baseAddress! + r * h
                        for j in 0..<h { row[j] += b[j] }
                    }
                }
            }
        }
        let inputs = bias.map { [tables, $0] } ?? [tables]
        return record(shape: [n, h], values: out, inputs: inputs) { g in
            guard n > 0, h > 0 else { return }
            if tables.requiresGrad {
                codes.codes.withUnsafeBufferPointer { c in
                    codes.magnitudes.withUnsafeBufferPointer { a in
                        tables.accumulateGrad { dt in
                            for r in 0..<n {
                                let dy = g.baseAddress! + r * h
                                for l in 0..<L {
                                    let alpha = a[r * L + l]
                                    if alpha == 0 { continue }
                                    // safe: c < K, so the row lies inside dT's L·K × H.
                                    let row = dt.baseAddress! + (l * K + Int(c[r * L + l])) * h
                                    for j in 0..<h { row[j] += alpha * dy[j] }
                                }
                            }
                        }
                    }
                }
            }
            if let bias, bias.requiresGrad {
                bias.accumulateGrad { db in sheaf_column_sums(g.baseAddress!, nil, n, h, db.baseAddress!) }
            }
        }
    }
}
