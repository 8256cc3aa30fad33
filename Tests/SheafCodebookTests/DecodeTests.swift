import CSheafDecode
import SheafCodebook
import SheafRandom
import Testing

/// A forced kernel path applies on the calling thread only, so these tests force it around
/// synchronous work on their own thread and may run beside any other test.
@Suite struct DecodeKernelTests {
    static let dimensions = [1, 3, 7, 8, 31, 33, 385]
    static let levelCounts = [1, 2, 3, 4, 8, 9, 16]
    static let codeCounts = [2, 16, 256]

    /// Whether this CPU can run the AVX2+FMA path.
    static var cpuHasAVX2: Bool {
        sheaf_decode_force_isa(0)
        return sheaf_decode_isa() == 2
    }

    @Test func forcingSelectsThePath() {
        defer { sheaf_decode_force_isa(0) }
        let best = Self.cpuHasAVX2 ? 2 : 1
        sheaf_decode_force_isa(1)
        #expect(sheaf_decode_isa() == 1)
        #expect(Codebook.decodeInstructionSet == "portable")
        sheaf_decode_force_isa(2)
        #expect(sheaf_decode_isa() == best)
        sheaf_decode_force_isa(0)
        #expect(sheaf_decode_isa() == best)
        #expect(Codebook.decodeInstructionSet == (best == 2 ? "avx2+fma+f16c" : "portable"))
    }

    /// Forcing a path on one thread leaves other threads on the automatic one.
    @Test func forcingStaysOnTheCallingThread() {
        defer { sheaf_decode_force_isa(0) }
        let best = Self.cpuHasAVX2 ? Int32(2) : 1
        sheaf_decode_force_isa(1)
        #expect(sheaf_decode_isa() == 1)
        #expect(isaOnAnotherThread { sheaf_decode_isa() } == best)
        #expect(sheaf_decode_isa() == 1)
    }

    /// Both kernel paths, streaming on and off, aligned and 4-byte-misaligned output, against the
    /// scalar reference; nothing outside the output may be written.
    @Test(arguments: dimensions)
    func kernelMatchesReference(dimension D: Int) throws {
        defer { sheaf_decode_force_isa(0) }
        var rng = SplitMix64(seed: 0x5EED_0000 + UInt64(D))
        let n = 5
        var cases = 0
        for L in Self.levelCounts {
            for K in Self.codeCounts {
                let cb = try randomCodebook(dimension: D, levels: L, codesPerLevel: K, rng: &rng)
                var codes = rng.codes(n * L, below: K)
                codes[0] = UInt32(K - 1)  // the last centroid row of level 0
                codes[codes.count - 1] = UInt32(K - 1)  // ... and of the last level
                let alphas = rng.floats(n * L, in: -2...2)
                let scale = termScale(cb, codes: codes, magnitudes: alphas, count: n)
                for precision in CentroidPrecision.allCases {
                    var expected = [Float](repeating: 0, count: n * D)
                    cb.decodeReference(codes: codes, magnitudes: alphas, count: n, into: &expected, precision: precision)
                    for isa: Int32 in [1, 2] {
                        sheaf_decode_force_isa(isa)
                        for streaming in [false, true] {
                            for misalign in [0, 4] {
                                let out = GuardedOutput(count: n * D, misalignBytes: misalign)
                                cb.decode(
                                    codes: codes, magnitudes: alphas, count: n, into: out.pointer,
                                    streaming: streaming, precision: precision)
                                let err = worstError(out.values, expected, scale: scale)
                                #expect(
                                    err <= 1,
                                    "\(precision) isa \(sheaf_decode_isa()) D \(D) L \(L) K \(K) streaming \(streaming) misalign \(misalign)")
                                #expect(out.guardsIntact, "wrote outside the output: D \(D) L \(L) K \(K)")
                                cases += 1
                            }
                        }
                    }
                }
            }
        }
        #expect(cases == Self.levelCounts.count * Self.codeCounts.count * 16)
    }

    /// The portable path does the same multiplications and additions in the same order as the
    /// reference, without fused multiply-adds, so it must match it bit for bit.
    @Test func portablePathIsExact() throws {
        defer { sheaf_decode_force_isa(0) }
        sheaf_decode_force_isa(1)
        var rng = SplitMix64(seed: 42)
        for (D, L, K) in [(37, 3, 16), (64, 8, 4), (5, 1, 2)] {
            let n = 4
            let cb = try randomCodebook(dimension: D, levels: L, codesPerLevel: K, rng: &rng)
            let codes = rng.codes(n * L, below: K)
            let alphas = rng.floats(n * L, in: -2...2)
            var expected = [Float](repeating: 0, count: n * D)
            var got = [Float](repeating: .nan, count: n * D)
            cb.decodeReference(codes: codes, magnitudes: alphas, count: n, into: &expected)
            cb.decode(codes: codes, magnitudes: alphas, count: n, into: &got)
            #expect(got == expected, "D \(D) L \(L) K \(K)")
        }
    }

    /// The portable half path widens exactly and does the reference's operations in its order.
    @Test func portableHalfPathIsExact() throws {
        defer { sheaf_decode_force_isa(0) }
        sheaf_decode_force_isa(1)
        var rng = SplitMix64(seed: 43)
        for (D, L, K) in [(37, 3, 16), (64, 8, 4), (5, 1, 2)] {
            let n = 4
            let cb = try randomCodebook(dimension: D, levels: L, codesPerLevel: K, rng: &rng)
            let codes = rng.codes(n * L, below: K)
            let alphas = rng.floats(n * L, in: -2...2)
            var expected = [Float](repeating: 0, count: n * D)
            var got = [Float](repeating: .nan, count: n * D)
            cb.decodeReference(codes: codes, magnitudes: alphas, count: n, into: &expected, precision: .float16)
            cb.decode(codes: codes, magnitudes: alphas, count: n, into: &got, precision: .float16)
            #expect(got == expected, "D \(D) L \(L) K \(K)")
        }
    }

    /// Every half centroid is within the documented bound of its float32 centroid, whatever the
    /// level's range (tiny, ordinary, and past binary16's 65,504 without the scale), and the scale
    /// is a power of two.
    @Test func halfCentroidsStayWithinTheirBound() throws {
        var rng = SplitMix64(seed: 77)
        let (D, L, K) = (24, 4, 8)
        let ranges: [Float] = [1e-6, 1, 3e5, 0]
        var centroids: [Float] = []
        for r in ranges { centroids += rng.floats(K * D, in: -1...1).map { $0 * r } }
        let cb = try Codebook(
            id: 1, dimension: D, levels: L, codesPerLevel: K, metric: .euclidean, magnitudeEncoding: .none,
            centroids: centroids)
        let half = cb.halfCentroids
        #expect(half.values.count == L * K * D)
        for l in 0..<L {
            let s = half.levelScales[l]
            #expect(s > 0 && s.significandBitPattern == 0, "level \(l) scale \(s) is not a power of two")
            let largest = centroids[(l * K * D)..<((l + 1) * K * D)].reduce(Float(0)) { max($0, abs($1)) }
            #expect(half.errorBound[l] == largest * 0x1p-11)
            for i in (l * K * D)..<((l + 1) * K * D) {
                let v = half.value(at: i, level: l)
                #expect(v.isFinite)
                #expect(abs(v - centroids[i]) <= half.errorBound[l], "level \(l) element \(i): \(v) vs \(centroids[i])")
            }
        }
        // Copies of the value share one table (built once).
        let copy = cb
        #expect(copy.halfCentroids.values == half.values)
    }

    /// Half and float32 decodes of the same codes agree within Σ_l |α_l| · bound_l per component.
    @Test func halfDecodeIsCloseToFloat32Decode() throws {
        var rng = SplitMix64(seed: 78)
        let (D, L, K, n) = (385, 4, 256, 50)
        let cb = try randomCodebook(dimension: D, levels: L, codesPerLevel: K, rng: &rng)
        let codes = rng.codes(n * L, below: K)
        let alphas = rng.floats(n * L, in: -2...2)
        var exact = [Float](repeating: 0, count: n * D)
        var approx = [Float](repeating: 0, count: n * D)
        cb.decode(codes: codes, magnitudes: alphas, count: n, into: &exact)
        cb.decode(codes: codes, magnitudes: alphas, count: n, into: &approx, precision: .float16)
        let bound = cb.halfCentroids.errorBound
        var differs = false
        for i in 0..<n {
            var allowed: Float = 1e-5
            for l in 0..<L { allowed += abs(alphas[i * L + l]) * bound[l] }
            for d in 0..<D {
                #expect(abs(exact[i * D + d] - approx[i * D + d]) <= allowed)
                differs = differs || exact[i * D + d] != approx[i * D + d]
            }
        }
        #expect(differs, "the half table should round some centroid")
    }

    @Test func zeroRowsWriteNothing() throws {
        var rng = SplitMix64(seed: 9)
        let cb = try randomCodebook(dimension: 8, levels: 2, codesPerLevel: 4, rng: &rng)
        let out = GuardedOutput(count: 0, misalignBytes: 0)
        cb.decode(codes: [], magnitudes: [], count: 0, into: out.pointer, streaming: true)
        cb.decodePacked(UnsafeRawBufferPointer(start: nil, count: 0), count: 0, into: out.pointer)
        #expect(out.guardsIntact)
    }
}

@Suite struct DecodePackedTests {
    /// decodePacked (chunked unpack + kernel) against pack → unpack → decodeReference, for every
    /// magnitude encoding, with more rows than one chunk.
    @Test(arguments: MagnitudeEncoding.allCases)
    func decodePackedMatchesUnpackThenReference(encoding: MagnitudeEncoding) throws {
        var rng = SplitMix64(seed: 0xDEC0DE &+ UInt64(encoding.rawValue))
        for (D, L, K, n) in [(17, 3, 4096, 300), (8, 1, 2, 513), (40, 8, 256, 70), (3, 4, 65536, 260)] {
            let ranges: [MagnitudeRange] =
                encoding == .uint8
                ? (0..<L).map { _ in MagnitudeRange(lower: rng.float(in: -1...0), upper: rng.float(in: 0.5...2)) } : []
            let cb = try Codebook(
                id: 3, dimension: D, levels: L, codesPerLevel: K,
                metric: encoding == .none ? .euclidean : .cosine, magnitudeEncoding: encoding,
                magnitudeRanges: ranges, centroids: rng.floats(L * K * D, in: -1...1))
            let codes = rng.codes(n * L, below: K)
            let alphas = rng.floats(n * L, in: -1.5...2.5)
            var packed = [UInt8](repeating: 0, count: n * cb.bytesPerItem)
            try codes.withUnsafeBufferPointer { c in
                try alphas.withUnsafeBufferPointer { a in
                    try packed.withUnsafeMutableBytes { try cb.pack(codes: c, magnitudes: a, count: n, into: $0) }
                }
            }
            var uCodes = [UInt32](repeating: 0, count: n * L)
            var uMags = [Float](repeating: 0, count: n * L)
            packed.withUnsafeBytes { cb.unpack($0, count: n, codes: &uCodes, magnitudes: &uMags) }
            #expect(uCodes == codes)
            let scale = termScale(cb, codes: uCodes, magnitudes: uMags, count: n)
            for precision in CentroidPrecision.allCases {
                var expected = [Float](repeating: 0, count: n * D)
                cb.decodeReference(codes: uCodes, magnitudes: uMags, count: n, into: &expected, precision: precision)
                for streaming in [false, true] {
                    for misalign in [0, 4] {
                        let out = GuardedOutput(count: n * D, misalignBytes: misalign)
                        packed.withUnsafeBytes {
                            cb.decodePacked($0, count: n, into: out.pointer, streaming: streaming, precision: precision)
                        }
                        #expect(
                            worstError(out.values, expected, scale: scale) <= 1,
                            "\(precision) \(encoding) D \(D) L \(L) K \(K) n \(n) streaming \(streaming) misalign \(misalign)")
                        #expect(out.guardsIntact)
                    }
                }
            }
        }
    }
}

@Suite struct DecodeSafetyTests {
    /// A code ≥ K would make the kernel read outside the centroids, so `decode` stops instead.
    @Test func decodeStopsOnOutOfRangeCode() async {
        await #expect(processExitsWith: .failure) {
            let cb = try Codebook(
                id: 1, dimension: 4, levels: 2, codesPerLevel: 4, metric: .euclidean, magnitudeEncoding: .none,
                centroids: [Float](repeating: 0, count: 32))
            let codes: [UInt32] = [0, 1, 2, 4]
            var out = [Float](repeating: 0, count: 8)
            cb.decode(codes: codes, magnitudes: [1, 1, 1, 1], count: 2, into: &out)
        }
    }
}
