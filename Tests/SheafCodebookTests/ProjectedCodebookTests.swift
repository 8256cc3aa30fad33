import CSheafDecode
@testable import SheafCodebook
import SheafRandom
import Testing

/// Projected decode (tables T_l = C_l · W) against decode-then-matmul computed in Double.
///
/// Tolerance: |projected − exact| ≤ 1e-5 · (1 + Σ_l Σ_d |α_l · c_l[b_l][d] · W[d][j]| + |b_j|) per
/// output element, the sum of the magnitudes of every product that was added (float32 rounding
/// of the table product, then of the L-term sum; both grow with that sum, never with the result).
@Suite struct ProjectedCodebookTests {
    /// A codebook of `encoding` with random centroids in [-1, 1] (and random 8-bit ranges).
    static func codebook(dimension: Int, levels: Int, codesPerLevel: Int, encoding: MagnitudeEncoding, id: UInt16 = 3,
                         rng: inout SplitMix64) throws -> Codebook {
        let ranges = encoding == .uint8
            ? (0..<levels).map { _ in MagnitudeRange(lower: rng.float(in: -1...0), upper: rng.float(in: 0.5...2)) } : []
        return try Codebook(
            id: id, dimension: dimension, levels: levels, codesPerLevel: codesPerLevel,
            metric: encoding == .none ? .euclidean : .cosine, magnitudeEncoding: encoding, magnitudeRanges: ranges,
            centroids: rng.floats(levels * codesPerLevel * dimension, in: -1...1))
    }

    static func projection(_ d: Int, _ h: Int, bias: Bool, rng: inout SplitMix64) throws -> LinearProjection {
        try LinearProjection(
            weight: rng.floats(d * h, in: -0.5...0.5), inputDimension: d, outputDimension: h,
            bias: bias ? rng.floats(h, in: -1...1) : nil)
    }

    /// (ê · W + b) in Double from unpacked codes, and the per-element error scale.
    static func exact(_ cb: Codebook, _ p: LinearProjection, codes: [UInt32], magnitudes: [Float], count n: Int)
        -> (values: [Float], scale: [Float])
    {
        let L = cb.levels, K = cb.codesPerLevel, D = cb.dimension, H = p.outputDimension
        var values = [Float](repeating: 0, count: n * H), scale = [Float](repeating: 0, count: n * H)
        for i in 0..<n {
            for j in 0..<H {
                var sum = Double(p.bias?[j] ?? 0), size = abs(Double(p.bias?[j] ?? 0))
                for l in 0..<L {
                    let a = Double(magnitudes[i * L + l]), row = (l * K + Int(codes[i * L + l])) * D
                    for d in 0..<D {
                        let term = a * Double(cb.centroids[row + d]) * Double(p.weight[d * H + j])
                        sum += term
                        size += abs(term)
                    }
                }
                values[i * H + j] = Float(sum)
                scale[i * H + j] = Float(size)
            }
        }
        return (values, scale)
    }

    /// Every code layout (1, 4, 8 and 12-bit codes; every magnitude encoding; L = 1…4), D and H not
    /// multiples of the SIMD width, with and without a bias, both kernel paths, through
    /// `decodePacked` (as the store calls it): within the stated tolerance of the exact result, and
    /// nothing written outside the output.
    @Test(arguments: MagnitudeEncoding.allCases)
    func packedDecodeMatchesDecodeThenMatmul(encoding: MagnitudeEncoding) throws {
        defer { sheaf_decode_force_isa(0) }
        var rng = SplitMix64(seed: 0xD1CE_0000 + UInt64(encoding.rawValue))
        let n = 9
        var cases = 0
        for (D, H) in [(37, 13), (8, 8), (33, 64), (20, 45)] {
            for L in 1...4 {
                for K in [2, 16, 256, 4096] {
                    let cb = try Self.codebook(dimension: D, levels: L, codesPerLevel: K, encoding: encoding, rng: &rng)
                    let p = try Self.projection(D, H, bias: (L + K) % 2 == 0, rng: &rng)
                    let projected = try cb.projected(by: p)
                    #expect(projected.width == H && projected.codebookID == cb.id)
                    #expect(projected.tableBytes() == L * K * H * 4)
                    var codes = rng.codes(n * L, below: K)
                    codes[0] = UInt32(K - 1)
                    let mags = encoding == .none ? [Float](repeating: 1, count: n * L) : rng.floats(n * L, in: -1...2)
                    var packed = [UInt8](repeating: 0, count: n * cb.bytesPerItem)
                    try codes.withUnsafeBufferPointer { c in
                        try mags.withUnsafeBufferPointer { m in
                            try packed.withUnsafeMutableBytes { try cb.pack(codes: c, magnitudes: m, count: n, into: $0) }
                        }
                    }
                    // The magnitudes the decode sees are the stored (quantized) ones.
                    var unpackedCodes = [UInt32](repeating: 0, count: n * L), unpackedMags = [Float](repeating: 0, count: n * L)
                    packed.withUnsafeBytes { cb.unpack($0, count: n, codes: &unpackedCodes, magnitudes: &unpackedMags) }
                    let (expected, scale) = Self.exact(cb, p, codes: unpackedCodes, magnitudes: unpackedMags, count: n)
                    for isa: Int32 in [1, 2] {
                        sheaf_decode_force_isa(isa)
                        let out = GuardedOutput(count: n * H, misalignBytes: 4)
                        packed.withUnsafeBytes { projected.decodePacked($0, count: n, into: out.pointer) }
                        #expect(worstError(out.values, expected, scale: scale) <= 1, "\(encoding) isa \(isa) D \(D) H \(H) L \(L) K \(K)")
                        #expect(out.guardsIntact)
                        cases += 1
                    }
                }
            }
        }
        #expect(cases == 4 * 4 * 4 * 2)
    }

    /// The unpacked entry point gives the same rows as the packed one.
    @Test func unpackedDecodeMatchesPacked() throws {
        var rng = SplitMix64(seed: 41)
        let cb = try Self.codebook(dimension: 20, levels: 3, codesPerLevel: 64, encoding: .float32, rng: &rng)
        let projected = try cb.projected(by: try Self.projection(20, 11, bias: true, rng: &rng))
        let n = 6
        let codes = rng.codes(n * 3, below: 64), mags = rng.floats(n * 3, in: -1...1)
        var packed = [UInt8](repeating: 0, count: n * cb.bytesPerItem)
        try codes.withUnsafeBufferPointer { c in
            try mags.withUnsafeBufferPointer { m in try packed.withUnsafeMutableBytes { try cb.pack(codes: c, magnitudes: m, count: n, into: $0) } }
        }
        var a = [Float](repeating: 0, count: n * 11), b = a
        projected.decode(codes: codes, magnitudes: mags, count: n, into: &a)
        packed.withUnsafeBytes { projected.decodePacked($0, count: n, into: &b) }
        #expect(a == b)
    }

    /// Half tables: each row within Σ_l |α_l| · (2⁻¹¹ × the level's largest |T_l| entry) of the
    /// float32 projected row (the float16 bound of `HalfCentroids`, on the tables).
    @Test func halfTablesStayWithinTheirBound() throws {
        var rng = SplitMix64(seed: 77)
        let cb = try Self.codebook(dimension: 50, levels: 4, codesPerLevel: 256, encoding: .float16, rng: &rng)
        let projected = try cb.projected(by: try Self.projection(50, 24, bias: false, rng: &rng))
        #expect(projected.tableBytes(.float16) == 4 * 256 * 24 * 2)
        let n = 32
        let codes = rng.codes(n * 4, below: 256), mags = rng.floats(n * 4, in: -2...2)
        var full = [Float](repeating: 0, count: n * 24), half = full
        projected.decode(codes: codes, magnitudes: mags, count: n, into: &full)
        projected.decode(codes: codes, magnitudes: mags, count: n, into: &half, precision: .float16)
        let bounds = projected.tables.halfCentroids.errorBound
        for i in 0..<n {
            var bound: Float = 0
            for l in 0..<4 { bound += abs(mags[i * 4 + l]) * bounds[l] }
            for j in 0..<24 { #expect(abs(full[i * 24 + j] - half[i * 24 + j]) <= bound * 1.01 + 1e-6) }
        }
    }

    /// The same projection is served from the cache (the same table buffer); a changed weight, a
    /// changed bias or a new codebook under the same id never gets stale tables.
    @Test func cacheNeverServesStaleTables() throws {
        var rng = SplitMix64(seed: 5)
        let cb = try Self.codebook(dimension: 12, levels: 2, codesPerLevel: 16, encoding: .float32, rng: &rng)
        let p = try Self.projection(12, 5, bias: true, rng: &rng)
        func tableAddress(_ pc: ProjectedCodebook) -> UnsafePointer<Float>? { pc.tables.centroids.withUnsafeBufferPointer { $0.baseAddress } }
        let first = try cb.projected(by: p)
        let again = try cb.copyForTest().projected(by: p)  // a copy of the value shares its caches
        #expect(tableAddress(first) == tableAddress(again))

        let codes: [UInt32] = [3, 9], mags: [Float] = [0.7, -1.2]
        func row(_ pc: ProjectedCodebook) -> [Float] {
            var out = [Float](repeating: 0, count: 5)
            pc.decode(codes: codes, magnitudes: mags, count: 1, into: &out)
            return out
        }
        // One weight changed in place of the same shape: the result must change with it.
        var w = p.weight
        w[3 * 5 + 2] += 1
        let changed = try LinearProjection(weight: w, inputDimension: 12, outputDimension: 5, bias: p.bias)
        let fresh = try cb.projected(by: changed)
        let exactChanged = Self.exact(cb, changed, codes: codes, magnitudes: mags, count: 1)
        #expect(worstError(row(fresh), exactChanged.values, scale: exactChanged.scale) <= 1)
        #expect(row(fresh) != row(first))
        // The bias alone changed.
        let rebiased = try LinearProjection(weight: p.weight, inputDimension: 12, outputDimension: 5, bias: p.bias!.map { $0 + 1 })
        #expect(zip(row(try cb.projected(by: rebiased)), row(first)).allSatisfy { abs($0 - $1 - 1) < 1e-5 })
        // Another codebook under the same id (as another store may hold).
        let other = try Self.codebook(dimension: 12, levels: 2, codesPerLevel: 16, encoding: .float32, id: cb.id, rng: &rng)
        let fromOther = try other.projected(by: p)
        let exactOther = Self.exact(other, p, codes: codes, magnitudes: mags, count: 1)
        #expect(worstError(row(fromOther), exactOther.values, scale: exactOther.scale) <= 1)
        #expect(row(fromOther) != row(first))
    }

    /// At most `projectedLimit` table sets per codebook; the least recently used goes first.
    @Test func cacheIsBounded() throws {
        var rng = SplitMix64(seed: 6)
        let cb = try Self.codebook(dimension: 6, levels: 1, codesPerLevel: 4, encoding: .float32, rng: &rng)
        let ps = try (0..<6).map { _ in try Self.projection(6, 3, bias: false, rng: &rng) }
        for p in ps { _ = try cb.projected(by: p) }
        #expect(cb.caches.projectedCount == CodebookCaches.projectedLimit)
    }

    @Test func badProjectionsAreRefused() throws {
        var rng = SplitMix64(seed: 8)
        let cb = try Self.codebook(dimension: 6, levels: 1, codesPerLevel: 4, encoding: .float32, rng: &rng)
        #expect(throws: CodebookError.dimensionMismatch(expected: 6, actual: 5)) {
            try cb.projected(by: try Self.projection(5, 3, bias: false, rng: &rng))
        }
        #expect(throws: CodebookError.invalidProjection("the weight holds 5 floats, 2 × 3 = 6 expected")) {
            try LinearProjection(weight: [1, 2, 3, 4, 5], inputDimension: 2, outputDimension: 3)
        }
        #expect(throws: CodebookError.invalidProjection("the bias holds 2 floats, 3 expected")) {
            try LinearProjection(weight: [Float](repeating: 0, count: 6), inputDimension: 2, outputDimension: 3, bias: [0, 0])
        }
        #expect(throws: CodebookError.invalidProjection("weight [1, 0] is not finite")) {
            try LinearProjection(weight: [0, 0, 0, .nan, 0, 0], inputDimension: 2, outputDimension: 3)
        }
        #expect(throws: CodebookError.invalidProjection("bias [2] is not finite")) {
            try LinearProjection(weight: [Float](repeating: 0, count: 6), inputDimension: 2, outputDimension: 3, bias: [0, 0, .infinity])
        }
        #expect(throws: CodebookError.invalidProjection("widths must be ≥ 1, got 0 → 3")) {
            try LinearProjection(weight: [], inputDimension: 0, outputDimension: 3)
        }
        // Tables that overflow float32.
        let big = try LinearProjection(weight: [Float](repeating: 3e38, count: 18), inputDimension: 6, outputDimension: 3)
        let loud = try Codebook(id: 2, dimension: 6, levels: 1, codesPerLevel: 4, metric: .cosine, magnitudeEncoding: .float32,
                                centroids: [Float](repeating: 1, count: 24))
        #expect(throws: CodebookError.invalidProjection("the table row of level 0, code 0 overflows float32")) {
            try loud.projected(by: big)
        }
    }

    /// Two projections side by side decode to their two results side by side.
    @Test func concatenatedProjectionsDecodeSideBySide() throws {
        var rng = SplitMix64(seed: 9)
        let cb = try Self.codebook(dimension: 10, levels: 2, codesPerLevel: 8, encoding: .float32, rng: &rng)
        let a = try Self.projection(10, 4, bias: true, rng: &rng), b = try Self.projection(10, 3, bias: false, rng: &rng)
        let both = try LinearProjection.concatenating([a, b])
        #expect(both.outputDimension == 7 && both.bias?.count == 7)
        let codes: [UInt32] = [1, 7, 5, 0], mags: [Float] = [0.5, -0.25, 1, 2]
        var ya = [Float](repeating: 0, count: 8), yb = [Float](repeating: 0, count: 6), y = [Float](repeating: 0, count: 14)
        try cb.projected(by: a).decode(codes: codes, magnitudes: mags, count: 2, into: &ya)
        try cb.projected(by: b).decode(codes: codes, magnitudes: mags, count: 2, into: &yb)
        try cb.projected(by: both).decode(codes: codes, magnitudes: mags, count: 2, into: &y)
        for r in 0..<2 {
            for j in 0..<4 { #expect(abs(y[r * 7 + j] - ya[r * 4 + j]) <= 1e-5) }
            for j in 0..<3 { #expect(abs(y[r * 7 + 4 + j] - yb[r * 3 + j]) <= 1e-5) }
        }
        #expect(throws: CodebookError.invalidProjection("the parts map different widths: [10, 9]")) {
            try LinearProjection.concatenating([a, try Self.projection(9, 2, bias: false, rng: &rng)])
        }
    }

    /// `apply` (the dense sgemm path) gives the same as the projected decode of the decoded rows.
    @Test func denseApplyMatchesProjectedDecode() throws {
        var rng = SplitMix64(seed: 10)
        let cb = try Self.codebook(dimension: 40, levels: 3, codesPerLevel: 32, encoding: .float32, rng: &rng)
        let p = try Self.projection(40, 17, bias: true, rng: &rng)
        let n = 7
        let codes = rng.codes(n * 3, below: 32), mags = rng.floats(n * 3, in: -1...1)
        var rows = [Float](repeating: 0, count: n * 40), dense = [Float](repeating: 0, count: n * 17), projected = dense
        cb.decode(codes: codes, magnitudes: mags, count: n, into: &rows)
        p.apply(to: rows, count: n, into: &dense)
        try cb.projected(by: p).decode(codes: codes, magnitudes: mags, count: n, into: &projected)
        let (_, scale) = Self.exact(cb, p, codes: codes, magnitudes: mags, count: n)
        #expect(worstError(projected, dense, scale: scale) <= 1)
    }
}

extension Codebook {
    /// A copy of the value (which shares its caches, as every copy does).
    func copyForTest() -> Codebook {
        let copy = self
        return copy
    }
}
