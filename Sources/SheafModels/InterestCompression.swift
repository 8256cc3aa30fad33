import Foundation
import SheafCodebook
import SheafFormats
import CSheafNN
import SheafNN
import SheafQuantizer
import SheafRandom
import SheafStore

/// A user's CHIME profile: the histogram of the ICM codes of all their h_t, as sparse
/// (level, code, count) entries, tagged with the versions of the model and codebook that made it.
///
/// Stored as the payload of a `Profile` record (whose own model-version field holds `modelVersion`):
///
///     u8 format (1) · u32 codebook version · varint behaviours · u8 levels L ·
///     L × (varint entries n · n × (varint code gap · varint count))
///
/// little-endian, varints LEB128; within a level codes ascend and each is stored as the gap from the
/// previous one (the first as itself), so an entry usually takes 2 bytes.
public struct CodeHistogram: Sendable, Equatable {
    public struct Entry: Sendable, Equatable, Codable {
        public var level: Int
        public var code: Int
        public var count: Int
        public init(level: Int, code: Int, count: Int) {
            self.level = level
            self.code = code
            self.count = count
        }
    }

    public var modelVersion: UInt32
    public var codebookVersion: UInt32
    /// Behaviours the histogram summarises.
    public var behaviors: Int
    /// Sorted by (level, code), counts > 0.
    public var entries: [Entry]

    static let format: UInt8 = 1

    /// The histogram of `codes` (count × `levels`, row-major).
    public init(codes: [UInt32], levels: Int, modelVersion: UInt32, codebookVersion: UInt32) {
        precondition(levels >= 1 && codes.count % levels == 0, "codes must be rows of \(levels)")
        var counts: [Int: Int] = [:]
        for (i, c) in codes.enumerated() { counts[(i % levels) << 16 | Int(c), default: 0] += 1 }
        entries = counts.keys.sorted().map { Entry(level: $0 >> 16, code: $0 & 0xFFFF, count: counts[$0]!) }
        behaviors = codes.count / levels
        self.modelVersion = modelVersion
        self.codebookVersion = codebookVersion
    }

    public init(modelVersion: UInt32, codebookVersion: UInt32, behaviors: Int, entries: [Entry]) {
        self.modelVersion = modelVersion
        self.codebookVersion = codebookVersion
        self.behaviors = behaviors
        self.entries = entries
    }

    /// One level's (code, count) pairs: what a ranking model reads.
    public func level(_ l: Int) -> (codes: [Int], counts: [Int]) {
        let e = entries.filter { $0.level == l }
        return (e.map(\.code), e.map(\.count))
    }

    /// The store record.
    public var profile: Profile {
        var out: [UInt8] = [Self.format]
        func u32(_ v: UInt32) { withUnsafeBytes(of: v.littleEndian) { out.append(contentsOf: $0) } }
        func varint(_ v: Int) {
            var x = UInt64(v)
            while x >= 0x80 {
                out.append(UInt8(x & 0x7F) | 0x80)
                x >>= 7
            }
            out.append(UInt8(x))
        }
        u32(codebookVersion)
        varint(behaviors)
        let levels = (entries.map(\.level).max() ?? -1) + 1
        out.append(UInt8(levels))
        for l in 0..<levels {
            let e = entries.filter { $0.level == l }
            varint(e.count)
            var previous = 0
            for x in e {
                varint(x.code - previous)
                previous = x.code
                varint(x.count)
            }
        }
        return Profile(modelVersion: modelVersion, bytes: out)
    }

    /// Reads a stored profile.
    /// - Throws: `ModelError.corruptProfile` for another format or a damaged payload.
    public init(_ profile: Profile, user: UInt64) throws(ModelError) {
        let b = profile.bytes
        var i = 0
        func fail(_ why: String) -> ModelError { .corruptProfile(user: user, reason: why) }
        func byte() throws(ModelError) -> UInt8 {
            guard i < b.count else { throw fail("truncated at byte \(i)") }
            defer { i += 1 }
            return b[i]
        }
        func varint() throws(ModelError) -> Int {
            var v: UInt64 = 0, shift: UInt64 = 0
            while true {
                let x = try byte()
                guard shift < 63 else { throw fail("varint too long") }
                v |= UInt64(x & 0x7F) << shift
                if x & 0x80 == 0 { break }
                shift += 7
            }
            guard v <= UInt64(Int32.max) else { throw fail("count \(v) out of range") }
            return Int(v)
        }
        guard try byte() == Self.format else { throw fail("unknown histogram format \(b[0]) (this Sheaf reads \(Self.format))") }
        var cb: UInt32 = 0
        for k in 0..<4 { cb |= UInt32(try byte()) << (8 * k) }
        let behaviors = try varint()
        let levels = Int(try byte())
        var entries: [Entry] = []
        for l in 0..<levels {
            let n = try varint()
            var code = 0
            for j in 0..<n {
                let gap = try varint()
                guard j == 0 || gap > 0 else { throw fail("level \(l): codes not ascending") }
                code += gap
                guard code <= 0xFFFF else { throw fail("level \(l): code \(code) beyond 65535") }
                let count = try varint()
                guard count > 0 else { throw fail("level \(l): a zero count") }
                entries.append(Entry(level: l, code: code, count: count))
            }
        }
        guard i == b.count else { throw fail("\(b.count - i) bytes after the last entry") }
        self.init(modelVersion: profile.modelVersion, codebookVersion: cb, behaviors: behaviors, entries: entries)
    }
}

/// The ICM's codebook: a residual quantizer (Sheaf's own) over h_t, kept in the model directory as
/// `icm.safetensors` (centroids [L·K, d]; metadata: levels, codes, metric, magnitude encoding and
/// ranges, and the CHIME model version it was trained for).
public struct InterestCodebook: Sendable {
    public let codebook: Codebook
    /// The CHIME model version whose h_t it quantizes.
    public let modelVersion: UInt32

    /// A 32-bit fingerprint of the codebook (the profiles' codebook version).
    public var version: UInt32 {
        var h = SplitMix64.mix(UInt64(modelVersion) ^ UInt64(codebook.levels) << 40 ^ UInt64(codebook.codesPerLevel) << 44)
        for v in codebook.centroids { h = SplitMix64.mix(h ^ UInt64(v.bitPattern)) }
        for r in codebook.magnitudeRanges { h = SplitMix64.mix(h ^ UInt64(r.lower.bitPattern) ^ UInt64(r.upper.bitPattern) << 32) }
        return UInt32(truncatingIfNeeded: h ^ (h >> 32))
    }

    public init(codebook: Codebook, modelVersion: UInt32) {
        self.codebook = codebook
        self.modelVersion = modelVersion
    }

    /// Trains the quantizer on `count` vectors of h_t (row-major).
    public static func train(
        _ vectors: [Float], count: Int, dimension: Int, configuration: QuantizerConfiguration, modelVersion: UInt32,
        progress: ((String) -> Void)? = nil
    ) throws -> InterestCodebook {
        let (codebook, _) = try vectors.withUnsafeBufferPointer {
            try CodebookTrainer(configuration: configuration).train($0, count: count, dimension: dimension, progress: progress)
        }
        return InterestCodebook(codebook: codebook, modelVersion: modelVersion)
    }

    /// The mean of the quantized h_t a histogram summarises, in CHIME's space, L2-normalised:
    /// Σ_l m_l Σ_k (count_lk / n)·c_lk, with m_l the middle of level l's magnitude range under the
    /// cosine metric (the histogram keeps codes, not magnitudes) and 1 under the euclidean one. The
    /// histogram determines this sum up to the magnitudes, since each h_t is the sum of its levels.
    public func decodedMean(of histogram: CodeHistogram) -> [Float] {
        let c = codebook, d = c.dimension
        var v = [Float](repeating: 0, count: d)
        // A ranking service calls this per request: one SIMD axpy (AVX2 + FMA where the CPU has them)
        // per entry; the rows it reads, about 1.5 KB each, are what it costs.
        c.centroids.withUnsafeBufferPointer { centroids in
            v.withUnsafeMutableBufferPointer { out in
                for e in histogram.entries where e.level < c.levels && e.code < c.codesPerLevel {
                    let m: Float = c.metric == .cosine ? (c.magnitudeRanges[e.level].lower + c.magnitudeRanges[e.level].upper) / 2 : 1
                    let w = m * Float(e.count) / Float(max(histogram.behaviors, 1))
                    // safe: level < L and code < K (checked above), so the d floats read lie inside the
                    // L·K·d centroids; `out` holds d floats.
                    sheaf_axpy(w, centroids.baseAddress! + (e.level * c.codesPerLevel + e.code) * d, out.baseAddress!, d, 1)
                }
            }
        }
        let norm = v.reduce(0) { $0 + $1 * $1 }.squareRoot()
        return norm > 0 ? v.map { $0 / norm } : v
    }

    public static func path(in directory: String) -> String { directory + "/icm.safetensors" }

    public func save(in directory: String) throws {
        let c = codebook
        let ranges = c.magnitudeRanges.map { [Double($0.lower), Double($0.upper)] }
        let meta: [String: String] = [
            "sheaf.icm.levels": String(c.levels), "sheaf.icm.codes": String(c.codesPerLevel),
            "sheaf.icm.metric": c.metric == .cosine ? "cosine" : "euclidean",
            "sheaf.icm.magnitudes": String(c.magnitudeEncoding.bits),
            "sheaf.icm.magnitude_ranges": String(decoding: try JSONEncoder().encode(ranges), as: UTF8.self),
            "sheaf.icm.model_version": String(modelVersion), "sheaf.icm.version": String(version),
        ]
        try SafeTensors.write(
            [("centroids", [c.levels * c.codesPerLevel, c.dimension], c.centroids)], metadata: meta, to: Self.path(in: directory))
    }

    /// The ICM codebook of a model directory, or nil when none was trained yet.
    /// - Throws: `ModelError.corruptCheckpoint` for a damaged file.
    public static func load(from directory: String) throws -> InterestCodebook? {
        let path = Self.path(in: directory)
        guard FileManager.default.fileExists(atPath: path) else { return nil }
        func corrupt(_ why: String) -> ModelError { .corruptCheckpoint(path: path, reason: why) }
        let file: SafeTensors
        do { file = try SafeTensors.read(path: path) } catch { throw corrupt("\(error)") }
        let m = file.metadata
        guard let levels = m["sheaf.icm.levels"].flatMap(Int.init), let codes = m["sheaf.icm.codes"].flatMap(Int.init),
            let metricName = m["sheaf.icm.metric"], let bits = m["sheaf.icm.magnitudes"].flatMap(Int.init),
            let rangesJSON = m["sheaf.icm.magnitude_ranges"],
            let ranges = try? JSONDecoder().decode([[Double]].self, from: Data(rangesJSON.utf8)),
            let model = m["sheaf.icm.model_version"].flatMap(UInt32.init), let version = m["sheaf.icm.version"].flatMap(UInt32.init),
            let encoding = MagnitudeEncoding.allCases.first(where: { $0.bits == bits })
        else { throw corrupt("no readable ICM metadata") }
        let centroids: (shape: [Int], values: [Float])
        do { centroids = try file.floats("centroids") } catch { throw corrupt("\(error)") }
        guard centroids.shape.count == 2, centroids.shape[0] == levels * codes else { throw corrupt("centroids of shape \(centroids.shape)") }
        let codebook: Codebook
        do {
            codebook = try Codebook(
                id: 1, dimension: centroids.shape[1], levels: levels, codesPerLevel: codes, metric: metricName == "cosine" ? .cosine : .euclidean,
                magnitudeEncoding: encoding, magnitudeRanges: ranges.map { MagnitudeRange(lower: Float($0[0]), upper: Float($0[1])) },
                centroids: centroids.values)
        } catch { throw corrupt("\(error)") }
        let icm = InterestCodebook(codebook: codebook, modelVersion: model)
        guard icm.version == version else { throw corrupt("the centroids do not match sheaf.icm.version (damaged file)") }
        return icm
    }
}
