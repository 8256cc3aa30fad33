import SheafCodebook
import SheafRandom
import Testing

@Suite struct CodeLayoutTests {
    // MARK: Round trips

    /// pack → unpack for K = 2 ... 65536 and L = 1 ... 8: codes come back exactly, magnitudes as
    /// the encoding stores them.
    @Test(arguments: MagnitudeEncoding.allCases)
    func packUnpackRoundTrip(encoding: MagnitudeEncoding) throws {
        var rng = SplitMix64(seed: 0xC0DE &+ UInt64(encoding.rawValue))
        let n = 6
        for codeBits in 1...16 {
            let K = 1 << codeBits
            for L in [1, 2, 3, 5, 8, 9, 16] {
                let cb = try layoutCodebook(levels: L, codesPerLevel: K, encoding: encoding, rng: &rng)
                #expect(cb.layout.byteCount == (L * (codeBits + encoding.bits) + 7) / 8)
                var codes = rng.codes(n * L, below: K)
                for l in 0..<L {  // the extremes of every field
                    codes[l] = UInt32(K - 1)
                    codes[L + l] = 0
                }
                // Past the 8-bit ranges on both sides too, to exercise clamping.
                var alphas = rng.floats(n * L, in: -3...3)
                alphas[0] = 0
                alphas[n * L - 1] = -0.0
                var packed = [UInt8](repeating: 0xEE, count: n * cb.bytesPerItem)
                try codes.withUnsafeBufferPointer { c in
                    try alphas.withUnsafeBufferPointer { a in
                        try packed.withUnsafeMutableBytes { try cb.pack(codes: c, magnitudes: a, count: n, into: $0) }
                    }
                }
                var gotCodes = [UInt32](repeating: .max, count: n * L)
                var gotMags = [Float](repeating: .nan, count: n * L)
                packed.withUnsafeBytes { cb.unpack($0, count: n, codes: &gotCodes, magnitudes: &gotMags) }
                #expect(gotCodes == codes, "\(encoding) K \(K) L \(L)")
                let expectedMags: [Float] = alphas.indices.map { i in
                    let level = i % L
                    switch encoding {
                    case .none: return 1
                    case .uint8: return cb.quantizedMagnitude(alphas[i], level: level)
                    case .float16: return Float(Float16(alphas[i]))
                    case .float32: return alphas[i]
                    }
                }
                #expect(
                    gotMags.map(\.bitPattern) == expectedMags.map(\.bitPattern), "\(encoding) K \(K) L \(L)")
                if encoding == .uint8 {  // and the stored values really lie in the level's range
                    for i in gotMags.indices {
                        let r = cb.magnitudeRanges[i % L]
                        #expect(gotMags[i] >= r.lower && gotMags[i] <= r.upper + 1e-6)
                    }
                }
            }
        }
    }

    @Test func packedByteCounts() throws {
        var rng = SplitMix64(seed: 1)
        for (L, K, encoding, bytes) in [
            (3, 4096, MagnitudeEncoding.uint8, 8), (3, 256, .float16, 9), (3, 256, .none, 3),
            (8, 65536, .float32, 48), (16, 65536, .float32, CodeLayout.maxByteCount), (1, 2, .none, 1),
        ] {
            let cb = try layoutCodebook(levels: L, codesPerLevel: K, encoding: encoding, rng: &rng)
            #expect(cb.bytesPerItem == bytes, "L \(L) K \(K) \(encoding)")
            #expect(cb.layout.byteCount == bytes)
            // pack writes exactly count × bytesPerItem bytes and nothing past them.
            let n = 3
            let codes = rng.codes(n * L, below: K)
            let alphas = rng.floats(n * L, in: 0...1)
            var out = [UInt8](repeating: 0xEE, count: n * bytes + 5)
            try codes.withUnsafeBufferPointer { c in
                try alphas.withUnsafeBufferPointer { a in
                    try out.withUnsafeMutableBytes { try cb.pack(codes: c, magnitudes: a, count: n, into: $0) }
                }
            }
            #expect(out[(n * bytes)...].allSatisfy { $0 == 0xEE })
        }
        let euclidean = try Codebook(
            id: 2, dimension: 1, levels: 3, codesPerLevel: 256, metric: .euclidean, magnitudeEncoding: .none,
            centroids: [Float](repeating: 0, count: 3 * 256))
        #expect(euclidean.bytesPerItem == 3)
    }

    // MARK: Hand-checked bit layouts (LSB first, like faiss's BitstringWriter)

    func packOne(_ cb: Codebook, codes: [UInt32], magnitudes: [Float]) throws -> [UInt8] {
        var out = [UInt8](repeating: 0xEE, count: cb.bytesPerItem)
        try codes.withUnsafeBufferPointer { c in
            try magnitudes.withUnsafeBufferPointer { m in
                try out.withUnsafeMutableBytes { try cb.pack(codes: c, magnitudes: m, count: 1, into: $0) }
            }
        }
        return out
    }

    @Test func twoFourBitCodesShareOneByte() throws {
        let cb = try Codebook(
            id: 1, dimension: 1, levels: 2, codesPerLevel: 16, metric: .euclidean, magnitudeEncoding: .none,
            centroids: [Float](repeating: 0, count: 32))
        #expect(try packOne(cb, codes: [0x3, 0xA], magnitudes: []) == [0xA3])
    }

    @Test func twoBitCodesThenFloat16Magnitudes() throws {
        // bits: 1 | 2 << 2 | 0x3C00 (1.0) << 4 | 0xC000 (−2.0) << 20 = 0xC_0003_C009, 36 bits → 5 bytes.
        let cb = try Codebook(
            id: 1, dimension: 1, levels: 2, codesPerLevel: 4, metric: .cosine, magnitudeEncoding: .float16,
            centroids: [Float](repeating: 0, count: 8))
        #expect(try packOne(cb, codes: [1, 2], magnitudes: [1, -2]) == [0x09, 0xC0, 0x03, 0x00, 0x0C])
    }

    @Test func twelveBitCodesThenUInt8Magnitudes() throws {
        // Range 0...255 makes q = α. bits: 0xABC | 0x123 << 12 | 0xFFF << 24 | 1 << 36 | 2 << 44 | 255 << 52,
        // 60 bits → 8 bytes.
        let cb = try Codebook(
            id: 1, dimension: 1, levels: 3, codesPerLevel: 4096, metric: .cosine, magnitudeEncoding: .uint8,
            magnitudeRanges: Array(repeating: MagnitudeRange(lower: 0, upper: 255), count: 3),
            centroids: [Float](repeating: 0, count: 3 * 4096))
        let bytes = try packOne(cb, codes: [0xABC, 0x123, 0xFFF], magnitudes: [1, 2, 255])
        #expect(bytes == [0xBC, 0x3A, 0x12, 0xFF, 0x1F, 0x20, 0xF0, 0x0F])
    }

    // MARK: Errors

    @Test func packRejectsOutOfRangeCodes() throws {
        let cb = try Codebook(
            id: 1, dimension: 1, levels: 3, codesPerLevel: 16, metric: .cosine, magnitudeEncoding: .float16,
            centroids: [Float](repeating: 0, count: 48))
        let codes: [UInt32] = [1, 2, 3, 4, 5, 16, 0, 0, 99]
        let alphas = [Float](repeating: 1, count: 9)
        var out = [UInt8](repeating: 0xEE, count: 3 * cb.bytesPerItem)
        #expect(throws: CodebookError.codeOutOfRange(row: 1, level: 2, code: 16, codesPerLevel: 16)) {
            try codes.withUnsafeBufferPointer { c in
                try alphas.withUnsafeBufferPointer { a in
                    try out.withUnsafeMutableBytes { try cb.pack(codes: c, magnitudes: a, count: 3, into: $0) }
                }
            }
        }
        #expect(out.allSatisfy { $0 == 0xEE }, "nothing is written when pack throws")
    }

    @Test(arguments: [Float.nan, .infinity, -.infinity])
    func packRejectsNonFiniteMagnitudes(bad: Float) throws {
        let cb = try Codebook(
            id: 1, dimension: 1, levels: 2, codesPerLevel: 4, metric: .cosine, magnitudeEncoding: .float32,
            centroids: [Float](repeating: 0, count: 8))
        let codes: [UInt32] = [0, 1, 2, 3, 0, 1]
        let alphas: [Float] = [1, 1, 1, 1, bad, 1]
        var out = [UInt8](repeating: 0xEE, count: 3 * cb.bytesPerItem)
        #expect(throws: CodebookError.nonFiniteMagnitude(row: 2, level: 0)) {
            try codes.withUnsafeBufferPointer { c in
                try alphas.withUnsafeBufferPointer { a in
                    try out.withUnsafeMutableBytes { try cb.pack(codes: c, magnitudes: a, count: 3, into: $0) }
                }
            }
        }
        #expect(out.allSatisfy { $0 == 0xEE })
    }

    @Test func initRejectsBadConfigurations() {
        let zeros = { (n: Int) in [Float](repeating: 0, count: n) }
        #expect(throws: CodebookError.invalidConfiguration("codes per level 12 must be a power of two from 2 to 65536")) {
            try Codebook(
                id: 1, dimension: 2, levels: 1, codesPerLevel: 12, metric: .euclidean, magnitudeEncoding: .none,
                centroids: zeros(24))
        }
        #expect(throws: CodebookError.invalidConfiguration("codes per level 131072 must be a power of two from 2 to 65536")) {
            try Codebook(
                id: 1, dimension: 1, levels: 1, codesPerLevel: 1 << 17, metric: .euclidean, magnitudeEncoding: .none,
                centroids: zeros(1 << 17))
        }
        #expect(throws: CodebookError.invalidConfiguration("metric euclidean cannot store magnitudes as 8-bit")) {
            try Codebook(
                id: 1, dimension: 2, levels: 1, codesPerLevel: 2, metric: .euclidean, magnitudeEncoding: .uint8,
                magnitudeRanges: [MagnitudeRange(lower: 0, upper: 1)], centroids: zeros(4))
        }
        #expect(throws: CodebookError.invalidConfiguration("metric cosine cannot store magnitudes as none")) {
            try Codebook(
                id: 1, dimension: 2, levels: 1, codesPerLevel: 2, metric: .cosine, magnitudeEncoding: .none,
                centroids: zeros(4))
        }
        #expect(throws: CodebookError.centroidCountMismatch(expected: 24, actual: 23)) {
            try Codebook(
                id: 1, dimension: 3, levels: 2, codesPerLevel: 4, metric: .euclidean, magnitudeEncoding: .none,
                centroids: zeros(23))
        }
        var withNaN = zeros(24)
        withNaN[(1 * 4 + 2) * 3 + 1] = .nan  // level 1, code 2, dimension 1
        #expect(throws: CodebookError.nonFiniteCentroid(level: 1, code: 2)) {
            try Codebook(
                id: 1, dimension: 3, levels: 2, codesPerLevel: 4, metric: .euclidean, magnitudeEncoding: .none,
                centroids: withNaN)
        }
        #expect(throws: CodebookError.invalidConfiguration("codebook id 0 is reserved")) {
            try Codebook(
                id: 0, dimension: 2, levels: 1, codesPerLevel: 2, metric: .euclidean, magnitudeEncoding: .none,
                centroids: zeros(4))
        }
        #expect(throws: CodebookError.invalidConfiguration("8-bit magnitudes need 3 ranges, got 2")) {
            try Codebook(
                id: 1, dimension: 1, levels: 3, codesPerLevel: 2, metric: .cosine, magnitudeEncoding: .uint8,
                magnitudeRanges: Array(repeating: MagnitudeRange(lower: 0, upper: 1), count: 2),
                centroids: zeros(6))
        }
        #expect(throws: CodebookError.invalidConfiguration("magnitude ranges are only kept for 8-bit magnitudes")) {
            try Codebook(
                id: 1, dimension: 1, levels: 1, codesPerLevel: 2, metric: .cosine, magnitudeEncoding: .float16,
                magnitudeRanges: [MagnitudeRange(lower: 0, upper: 1)], centroids: zeros(2))
        }
        #expect(throws: CodebookError.invalidConfiguration("levels 17 is outside 1...16")) {
            try Codebook(
                id: 1, dimension: 1, levels: 17, codesPerLevel: 2, metric: .euclidean, magnitudeEncoding: .none,
                centroids: zeros(34))
        }
    }
}
