import SheafCodebook
import SheafRandom

/// One decode configuration: n × D reconstruction from L codes of K centroids with b-bit magnitudes.
public struct DecodeConfiguration: Sendable, Codable, Hashable, CustomStringConvertible {
    public var dimension: Int
    public var levels: Int
    public var codesPerLevel: Int
    /// 8, 16 or 32.
    public var magnitudeBits: Int
    public var rows: Int

    public init(dimension: Int, levels: Int, codesPerLevel: Int, magnitudeBits: Int, rows: Int) {
        self.dimension = dimension
        self.levels = levels
        self.codesPerLevel = codesPerLevel
        self.magnitudeBits = magnitudeBits
        self.rows = rows
    }

    public var magnitudeEncoding: MagnitudeEncoding {
        switch magnitudeBits {
        case 8: .uint8
        case 16: .float16
        case 32: .float32
        default: preconditionFailure("magnitude bits must be 8, 16 or 32")
        }
    }

    public var description: String {
        "D\(dimension) L\(levels) K\(codesPerLevel) m\(magnitudeBits) n\(rows)"
    }

    /// The grid the issue asks for: D ∈ {384, 2048}, K ∈ {256, 4096}, L ∈ {2, 3, 4}, magnitudes at
    /// 8/16/32 bits, each at `rows`.
    public static func grid(
        dimensions: [Int] = [384, 2048], codes: [Int] = [256, 4096], levels: [Int] = [2, 3, 4],
        magnitudeBits: [Int] = [8, 16, 32], rows: Int
    ) -> [DecodeConfiguration] {
        var out: [DecodeConfiguration] = []
        for d in dimensions {
            for k in codes {
                for l in levels {
                    for m in magnitudeBits {
                        out.append(DecodeConfiguration(dimension: d, levels: l, codesPerLevel: k, magnitudeBits: m, rows: rows))
                    }
                }
            }
        }
        return out
    }
}

/// A random cosine codebook, random packed codes for `rows` items, an output buffer and a source
/// buffer of the same size for the memcpy baseline. Decode cost does not depend on code quality,
/// so random codes measure speed honestly; they say nothing about quality.
public final class DecodeWorkload: @unchecked Sendable {
    public let configuration: DecodeConfiguration
    public let codebook: Codebook
    /// rows × bytesPerItem bytes.
    public let packed: [UInt8]
    public let output: AlignedFloats
    let source: AlignedFloats

    public init(_ configuration: DecodeConfiguration, seed: UInt64 = 7) throws {
        self.configuration = configuration
        let D = configuration.dimension, L = configuration.levels, K = configuration.codesPerLevel
        var rng = SplitMix64(seed: seed)
        let random = try RandomCodebook(
            dimension: D, levels: L, codesPerLevel: K, magnitudeEncoding: configuration.magnitudeEncoding,
            magnitudeUppers: (0..<L).map { $0 == 0 ? 1.2 : 0.6 }, rng: &rng)
        let codebook = random.codebook
        let n = configuration.rows
        let (codes, mags) = random.codes(count: n, rng: &rng)
        var bytes = [UInt8](repeating: 0, count: n * codebook.bytesPerItem)
        try codes.withUnsafeBufferPointer { c in
            try mags.withUnsafeBufferPointer { m in
                try bytes.withUnsafeMutableBytes { try codebook.pack(codes: c, magnitudes: m, count: n, into: $0) }
            }
        }
        self.codebook = codebook
        packed = bytes
        output = AlignedFloats(count: n * D)
        source = AlignedFloats(count: n * D, value: 1)
    }

    /// Bytes of float32 output one decode writes: rows × D × 4.
    public var outputBytes: Int { output.byteCount }

    /// Decodes every row into `output` (non-temporal stores when `streaming`).
    public func decode(streaming: Bool = false, precision: CentroidPrecision = .float32) {
        packed.withUnsafeBytes { p in
            codebook.decodePacked(p, count: configuration.rows, into: output.pointer, streaming: streaming, precision: precision)
        }
    }

    /// The baseline: copies the same number of bytes into `output` (libc memcpy).
    public func copy() {
        UnsafeMutableRawPointer(output.pointer).copyMemory(from: source.pointer, byteCount: outputBytes)
    }

    /// The largest |kernel − scalar reference| over the first `rows` rows (a sanity check that the
    /// measured path computes the right thing).
    public func maximumErrorAgainstReference(rows: Int = 16, precision: CentroidPrecision = .float32) -> Float {
        let n = min(rows, configuration.rows)
        let L = configuration.levels, D = configuration.dimension
        var codes = [UInt32](repeating: 0, count: n * L)
        var mags = [Float](repeating: 0, count: n * L)
        packed.withUnsafeBytes { p in
            codes.withUnsafeMutableBufferPointer { c in
                mags.withUnsafeMutableBufferPointer { m in
                    codebook.unpack(p, count: n, codes: c.baseAddress!, magnitudes: m.baseAddress!)
                }
            }
        }
        var reference = [Float](repeating: 0, count: n * D)
        codebook.decodeReference(codes: codes, magnitudes: mags, count: n, into: &reference, precision: precision)
        decode(precision: precision)
        var worst: Float = 0
        for i in 0..<(n * D) { worst = max(worst, abs(reference[i] - output.pointer[i])) }
        return worst
    }
}
