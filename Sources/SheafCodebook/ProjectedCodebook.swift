import CSheafDecode
import SheafLinearAlgebra
import Synchronization

// Decoding through a model's first layer in code space. Decoding is linear, so for a linear layer
// y = x · W + b (W: D × H) and tables T_l = C_l · W (K × H per level, computed once),
//
//   ê · W + b = Σ_l α_l · T_l[b_l] + b,
//
// and a history goes from codes to model inputs by gathering L rows of width H, never touching D.
// The tables are themselves a codebook of dimension H (same levels, K, magnitudes and packed
// layout), so the decode kernel, its AVX2 and portable paths and the float16 option serve them
// unchanged. Faiss uses the same idea for distances (look-up tables of inner products).

// MARK: - LinearProjection

/// A linear map y = x · W + b from a codebook's dimension D to a model's width H.
///
/// Equality compares the weights and the bias exactly; projected tables are cached by it.
public struct LinearProjection: Sendable, Equatable {
    /// D, the width of the vectors it maps.
    public let inputDimension: Int
    /// H, the width of its output.
    public let outputDimension: Int
    /// W, D × H floats, row-major (as a `Tensor` of shape [D, H] in SheafNN stores it).
    public let weight: [Float]
    /// b, H floats, or `nil` for none.
    public let bias: [Float]?

    /// - Throws: `CodebookError.invalidProjection` when a width is < 1, the weight does not hold
    ///   D × H floats, the bias does not hold H, or a value is NaN or infinite.
    public init(weight: [Float], inputDimension: Int, outputDimension: Int, bias: [Float]? = nil) throws(CodebookError) {
        guard inputDimension >= 1, outputDimension >= 1 else {
            throw .invalidProjection("widths must be ≥ 1, got \(inputDimension) → \(outputDimension)")
        }
        guard weight.count == inputDimension * outputDimension else {
            throw .invalidProjection(
                "the weight holds \(weight.count) floats, \(inputDimension) × \(outputDimension) = \(inputDimension * outputDimension) expected")
        }
        if let bias, bias.count != outputDimension {
            throw .invalidProjection("the bias holds \(bias.count) floats, \(outputDimension) expected")
        }
        if let i = weight.firstIndex(where: { !$0.isFinite }) {
            throw .invalidProjection("weight [\(i / outputDimension), \(i % outputDimension)] is not finite")
        }
        if let i = bias?.firstIndex(where: { !$0.isFinite }) {
            throw .invalidProjection("bias [\(i)] is not finite")
        }
        self.inputDimension = inputDimension
        self.outputDimension = outputDimension
        self.weight = weight
        self.bias = bias
    }

    /// Several projections of the same input side by side: outputs concatenated in order, so one
    /// decode gives a layer's two matrices at once (a GLU's value and gate, or HyMiRec's two item
    /// projections). A missing bias counts as zeros when another part has one.
    /// - Throws: `CodebookError.invalidProjection` when `parts` is empty or their input widths differ.
    public static func concatenating(_ parts: [LinearProjection]) throws(CodebookError) -> LinearProjection {
        guard let first = parts.first else { throw .invalidProjection("nothing to concatenate") }
        let d = first.inputDimension
        guard parts.allSatisfy({ $0.inputDimension == d }) else {
            throw .invalidProjection("the parts map different widths: \(parts.map(\.inputDimension))")
        }
        let h = parts.reduce(0) { $0 + $1.outputDimension }
        var weight = [Float](repeating: 0, count: d * h)
        var column = 0
        for p in parts {
            for i in 0..<d {
                for j in 0..<p.outputDimension { weight[i * h + column + j] = p.weight[i * p.outputDimension + j] }
            }
            column += p.outputDimension
        }
        let bias: [Float]? = parts.contains { $0.bias != nil }
            ? parts.flatMap { $0.bias ?? [Float](repeating: 0, count: $0.outputDimension) } : nil
        return try LinearProjection(weight: weight, inputDimension: d, outputDimension: h, bias: bias)
    }

    /// y = x · W + b for `count` rows with one `sgemm` (the bias written first, the product added
    /// onto it): the dense path projected decodes are measured and tested against.
    /// - Parameters:
    ///   - rows: count × D floats.
    ///   - output: count × H floats, overwritten.
    public func apply(to rows: UnsafePointer<Float>, count: Int, into output: UnsafeMutablePointer<Float>) {
        guard count > 0 else { return }
        let h = outputDimension
        if let bias {
            bias.withUnsafeBufferPointer { b in
                // safe: output holds count × H floats and b holds H.
                for r in 0..<count { (output + r &* h).update(from: b.baseAddress!, count: h) }
            }
        }
        weight.withUnsafeBufferPointer { w in
            // safe: rows holds count × D floats, w D × H and output count × H (documented contract).
            BLAS.gemm(m: count, n: h, k: inputDimension, a: rows, b: w.baseAddress!, beta: bias == nil ? 0 : 1, c: output)
        }
    }
}

// MARK: - ProjectedCodebook

/// A codebook's centroids mapped through a linear layer: the tables T_l = C_l · W (L × K × H floats)
/// and the layer's bias. Decoding codes through it gives ê · W + b without forming ê.
///
/// Immutable; get one with `Codebook.projected(by:)`, which caches it per codebook and projection.
public struct ProjectedCodebook: Sendable {
    /// The id of the codebook whose codes it decodes.
    public var codebookID: UInt16 { tables.id }
    /// The layer it decodes through.
    public let projection: LinearProjection
    /// The tables as a codebook of dimension H: the source's levels, K, magnitude encoding and
    /// packed layout, with T_l in place of C_l. Its `decode` and `decodePacked` give ê · W (no bias).
    public let tables: Codebook

    /// H, the width of a decoded row.
    public var width: Int { projection.outputDimension }

    /// Memory the tables take: L × K × H floats, plus L × K × H halves once a `.float16` decode
    /// has built the half copy.
    public func tableBytes(_ precision: CentroidPrecision = .float32) -> Int {
        tables.levels * tables.codesPerLevel * width * (precision == .float16 ? 2 : 4)
    }

    /// Computes the tables with one `sgemm` of (L · K) × D by D × H.
    /// - Throws: `CodebookError.dimensionMismatch` when the projection's D is not the codebook's;
    ///   `.invalidProjection` when a table value overflows float32.
    init(_ codebook: Codebook, _ projection: LinearProjection) throws(CodebookError) {
        guard projection.inputDimension == codebook.dimension else {
            throw .dimensionMismatch(expected: codebook.dimension, actual: projection.inputDimension)
        }
        let rows = codebook.levels * codebook.codesPerLevel, h = projection.outputDimension
        let table = [Float](unsafeUninitializedCapacity: rows * h) { out, n in
            codebook.centroids.withUnsafeBufferPointer { c in
                projection.weight.withUnsafeBufferPointer { w in
                    // safe: centroids hold rows × D floats, w D × H, out rows × H.
                    BLAS.gemm(m: rows, n: h, k: codebook.dimension, a: c.baseAddress!, b: w.baseAddress!, c: out.baseAddress!)
                }
            }
            n = rows * h
        }
        do {
            tables = try Codebook(
                id: codebook.id, dimension: h, levels: codebook.levels, codesPerLevel: codebook.codesPerLevel,
                metric: codebook.metric, magnitudeEncoding: codebook.magnitudeEncoding,
                magnitudeRanges: codebook.magnitudeRanges, centroids: table)
        } catch CodebookError.nonFiniteCentroid(let level, let code) {
            throw .invalidProjection("the table row of level \(level), code \(code) overflows float32")
        } catch let e as CodebookError {
            throw e
        } catch {
            throw .invalidProjection("\(error)")  // Codebook.init throws only CodebookError
        }
        self.projection = projection
    }

    /// Writes ê_i · W + b for `count` code tuples: the decode kernel over the tables, the bias added
    /// in its registers.
    ///
    /// - Parameters:
    ///   - codes, magnitudes: count × L each, as `Codebook.decode` takes them (codes checked < K).
    ///   - output: count × H floats, overwritten.
    ///   - precision: `.float16` reads a half copy of the tables (built on first use, per table set).
    public func decode(
        codes: UnsafePointer<UInt32>, magnitudes: UnsafePointer<Float>, count: Int,
        into output: UnsafeMutablePointer<Float>, precision: CentroidPrecision = .float32
    ) {
        withBias { tables.decode(codes: codes, magnitudes: magnitudes, count: count, into: output, streaming: false, precision: precision, bias: $0) }
    }

    /// Unpacks and decodes `count` packed code tuples (the source codebook's `pack` layout) into
    /// count × H floats: ê_i · W + b.
    public func decodePacked(
        _ packed: UnsafeRawBufferPointer, count: Int, into output: UnsafeMutablePointer<Float>,
        precision: CentroidPrecision = .float32
    ) {
        withBias { tables.decodePacked(packed, count: count, into: output, streaming: false, precision: precision, bias: $0) }
    }

    /// The bias as a pointer for the kernel (H floats), or nil.
    private func withBias(_ body: (UnsafePointer<Float>?) -> Void) {
        guard let bias = projection.bias else { return body(nil) }
        // safe: the bias holds H = the tables' dimension floats (checked by LinearProjection).
        bias.withUnsafeBufferPointer { body($0.baseAddress!) }
    }
}

extension Codebook {
    /// The tables that decode this codebook's codes through `projection` (see `ProjectedCodebook`),
    /// cached: each `Codebook` value keeps the table sets of its last `CodebookCaches.projectedLimit`
    /// projections, found by comparing W and b exactly, so a changed weight never gets another's
    /// tables, and a codebook loaded anew (even under an id reused elsewhere) starts with none.
    ///
    /// Costs one (L · K) × D × H `sgemm` on a miss: 4 × 10⁸ multiply-adds at L = 4, K = 4096, D = 384,
    /// H = 64 (tens of milliseconds on one core), 2.5 × 10⁷ at K = 256.
    /// - Throws: `CodebookError.dimensionMismatch` when the projection does not map D;
    ///   `.invalidProjection` when a table value overflows float32.
    public func projected(by projection: LinearProjection) throws(CodebookError) -> ProjectedCodebook {
        try caches.projected(self, projection)
    }
}

// MARK: - Caches

/// What a codebook derives from its centroids on first use: the binary16 copy and projected table
/// sets. Shared by every copy of one `Codebook` value (a class in a struct, as `HalfCentroids` was).
final class CodebookCaches: Sendable {
    /// Projected table sets kept per codebook (least recently used dropped first).
    static let projectedLimit = 4

    private let half = Mutex<HalfCentroids?>(nil)
    private let projectedSets = Mutex<[ProjectedCodebook]>([])

    func halfCentroids(of codebook: Codebook) -> HalfCentroids {
        half.withLock { t in
            if let t { return t }
            let built = HalfCentroids(codebook)
            t = built
            return built
        }
    }

    func projected(_ codebook: Codebook, _ projection: LinearProjection) throws(CodebookError) -> ProjectedCodebook {
        if let hit = projectedSets.withLock({ sets -> ProjectedCodebook? in
            guard let i = sets.firstIndex(where: { $0.projection == projection }) else { return nil }
            let found = sets.remove(at: i)
            sets.append(found)  // most recently used last
            return found
        }) {
            return hit
        }
        // Built outside the lock: two threads missing at once both compute, and the second keeps the first's.
        let built = try ProjectedCodebook(codebook, projection)
        return projectedSets.withLock { sets in
            if let existing = sets.first(where: { $0.projection == projection }) { return existing }
            sets.append(built)
            if sets.count > Self.projectedLimit { sets.removeFirst() }
            return built
        }
    }

    /// How many projected table sets are cached (for tests).
    var projectedCount: Int { projectedSets.withLock { $0.count } }
}
