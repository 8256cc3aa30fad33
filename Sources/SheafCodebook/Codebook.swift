/// How a residual level's residual is formed, and so whether a magnitude is stored.
public enum Metric: UInt8, Sendable, CaseIterable, CustomStringConvertible {
    /// HyMiRec's cosine residual: α = (e·c)/‖c‖², e' = e − α·c. One magnitude α per level is stored.
    case cosine = 1
    /// Classic residual VQ: e' = e − c. No magnitude is stored (α = 1).
    case euclidean = 2

    public var description: String { self == .cosine ? "cosine" : "euclidean" }
}

/// How each level's projection magnitude α is stored in an item's packed code.
public enum MagnitudeEncoding: UInt8, Sendable, CaseIterable, CustomStringConvertible {
    /// No magnitude (euclidean codebooks): α = 1.
    case none = 0
    /// 8-bit uniform scalar quantization over a per-level range kept in the codebook.
    case uint8 = 8
    /// IEEE float16.
    case float16 = 16
    /// IEEE float32.
    case float32 = 32

    /// Bits one magnitude takes in a packed code.
    public var bits: Int { Int(rawValue) }

    public var description: String {
        switch self {
        case .none: "none"
        case .uint8: "8-bit"
        case .float16: "float16"
        case .float32: "float32"
        }
    }
}

/// The range an 8-bit magnitude is quantized over: α = lower + q · (upper − lower) / 255.
public struct MagnitudeRange: Sendable, Equatable {
    public var lower: Float
    public var upper: Float
    public init(lower: Float, upper: Float) {
        self.lower = lower
        self.upper = upper
    }
    /// The step between two adjacent 8-bit levels.
    @inlinable public var step: Float { (upper - lower) / 255 }
}

/// Errors raised when a codebook or a code is not valid.
public enum CodebookError: Error, Equatable, Sendable {
    /// A field of the codebook is outside what Sheaf supports; the string says which and why.
    case invalidConfiguration(String)
    /// The centroid buffer does not hold levels × K × D floats.
    case centroidCountMismatch(expected: Int, actual: Int)
    /// A centroid value is NaN or infinite.
    case nonFiniteCentroid(level: Int, code: Int)
    /// An input row or buffer has the wrong dimension.
    case dimensionMismatch(expected: Int, actual: Int)
    /// A code is ≥ K.
    case codeOutOfRange(row: Int, level: Int, code: UInt32, codesPerLevel: Int)
    /// A magnitude is NaN or infinite.
    case nonFiniteMagnitude(row: Int, level: Int)
    /// A linear projection's shape or values are not usable; the string says which and why.
    case invalidProjection(String)
}

/// An immutable residual codebook: L levels of K centroids of dimension D, plus how magnitudes are stored.
///
/// Reconstruction of an item with codes b_l and magnitudes α_l is ê = Σ_l α_l · c_l[b_l].
/// A `Codebook` is a value snapshot: load it once and share it between threads.
public struct Codebook: Sendable {
    /// The id the store files this codebook under (1...65535). Item codes carry it, so codes are
    /// never silently reinterpreted by another codebook.
    public let id: UInt16
    /// Embedding dimension D.
    public let dimension: Int
    /// Number of residual levels L (1...16).
    public let levels: Int
    /// Centroids per level K, a power of two from 2 to 65,536.
    public let codesPerLevel: Int
    /// The residual rule the codebook was trained with.
    public let metric: Metric
    /// How magnitudes are stored in packed codes.
    public let magnitudeEncoding: MagnitudeEncoding
    /// Per-level ranges for 8-bit magnitudes; empty for other encodings.
    public let magnitudeRanges: [MagnitudeRange]
    /// Centroids, row-major, shape levels × K × D.
    public let centroids: [Float]
    /// Free-form training statistics (name → value), kept with the codebook for reports.
    public let trainingStats: [String: Double]
    /// The packed layout of one item's codes and magnitudes under this codebook.
    public let layout: CodeLayout
    /// Tables derived from the centroids (the binary16 copy, projected tables), built on first use
    /// and shared by every copy of this value; a codebook made by `init` starts with none.
    let caches = CodebookCaches()

    /// Creates a codebook after validating every field.
    ///
    /// - Parameter centroids: levels × K × D floats, row-major.
    /// - Throws: `CodebookError` when a field is out of range, the centroid count is wrong,
    ///   a centroid is not finite, or the metric and magnitude encoding disagree.
    public init(
        id: UInt16, dimension: Int, levels: Int, codesPerLevel: Int, metric: Metric,
        magnitudeEncoding: MagnitudeEncoding, magnitudeRanges: [MagnitudeRange] = [],
        centroids: [Float], trainingStats: [String: Double] = [:]
    ) throws {
        guard id != 0 else { throw CodebookError.invalidConfiguration("codebook id 0 is reserved") }
        guard dimension >= 1, dimension <= 1 << 16 else {
            throw CodebookError.invalidConfiguration("dimension \(dimension) is outside 1...65536")
        }
        guard levels >= 1, levels <= CodeLayout.maxLevels else {
            throw CodebookError.invalidConfiguration("levels \(levels) is outside 1...\(CodeLayout.maxLevels)")
        }
        guard codesPerLevel >= 2, codesPerLevel <= 1 << 16, codesPerLevel & (codesPerLevel - 1) == 0 else {
            throw CodebookError.invalidConfiguration(
                "codes per level \(codesPerLevel) must be a power of two from 2 to 65536")
        }
        switch (metric, magnitudeEncoding) {
        case (.euclidean, .none), (.cosine, .uint8), (.cosine, .float16), (.cosine, .float32): break
        default:
            throw CodebookError.invalidConfiguration(
                "metric \(metric) cannot store magnitudes as \(magnitudeEncoding)")
        }
        if magnitudeEncoding == .uint8 {
            guard magnitudeRanges.count == levels else {
                throw CodebookError.invalidConfiguration(
                    "8-bit magnitudes need \(levels) ranges, got \(magnitudeRanges.count)")
            }
            for (l, r) in magnitudeRanges.enumerated() {
                guard r.lower.isFinite, r.upper.isFinite, r.upper >= r.lower else {
                    throw CodebookError.invalidConfiguration("magnitude range of level \(l) is not a finite interval")
                }
            }
        } else if !magnitudeRanges.isEmpty {
            throw CodebookError.invalidConfiguration("magnitude ranges are only kept for 8-bit magnitudes")
        }
        let expected = levels * codesPerLevel * dimension
        guard centroids.count == expected else {
            throw CodebookError.centroidCountMismatch(expected: expected, actual: centroids.count)
        }
        if let bad = centroids.firstIndex(where: { !$0.isFinite }) {
            let row = bad / dimension
            throw CodebookError.nonFiniteCentroid(level: row / codesPerLevel, code: row % codesPerLevel)
        }
        self.id = id
        self.dimension = dimension
        self.levels = levels
        self.codesPerLevel = codesPerLevel
        self.metric = metric
        self.magnitudeEncoding = magnitudeEncoding
        self.magnitudeRanges = magnitudeRanges
        self.centroids = centroids
        self.trainingStats = trainingStats
        self.layout = CodeLayout(
            levels: levels, codeBits: codesPerLevel.trailingZeroBitCount, magnitudeEncoding: magnitudeEncoding)
    }

    /// Bytes of one item's packed codes and magnitudes.
    public var bytesPerItem: Int { layout.byteCount }

    /// Whether this codebook and `other` hold the same shape, encoding and centroids (ids may differ).
    public func hasSameContent(as other: Codebook) -> Bool {
        dimension == other.dimension && levels == other.levels && codesPerLevel == other.codesPerLevel
            && metric == other.metric && magnitudeEncoding == other.magnitudeEncoding
            && magnitudeRanges == other.magnitudeRanges && centroids == other.centroids
    }

    /// Returns a copy filed under another id.
    public func withID(_ newID: UInt16) throws -> Codebook {
        try Codebook(
            id: newID, dimension: dimension, levels: levels, codesPerLevel: codesPerLevel, metric: metric,
            magnitudeEncoding: magnitudeEncoding, magnitudeRanges: magnitudeRanges, centroids: centroids,
            trainingStats: trainingStats)
    }
}
