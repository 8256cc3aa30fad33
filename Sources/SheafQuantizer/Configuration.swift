import SheafCodebook

/// Hyperparameters of a residual codebook, faiss-style: every field has a default and says what it trades off.
public struct QuantizerConfiguration: Sendable, Equatable {
    /// Residual levels L. More levels: better reconstruction, more bytes per item.
    public var levels: Int = 3
    /// Centroids per level K, a power of two (2...65,536). Larger K: better reconstruction, slower training and encoding.
    public var codesPerLevel: Int = 256
    /// Residual rule: `.cosine` (HyMiRec's orthogonal projection, stores a magnitude per level) or `.euclidean` (classic RVQ, no magnitudes).
    public var metric: Metric = .cosine
    /// How magnitudes are stored (cosine only; euclidean always stores none). Fewer bits: smaller items, coarser magnitudes.
    public var magnitudeEncoding: MagnitudeEncoding = .uint8
    /// k-means iterations per level. More: better centroids, longer training.
    public var iterations: Int = 20
    /// Training sample size (0 = all rows). Smaller: faster training, centroids fit a sample only.
    public var trainingSampleSize: Int = 100_000
    /// Seed of sampling and initialisation: the same seed and data give the same codebook.
    public var seed: UInt64 = 1
    /// Balance: no cluster may hold more than `balanceTolerance × N/K` training points. Closer to 1:
    /// more even code usage (higher entropy), slightly worse per-point fit.
    public var balanceTolerance: Double = 1.5
    /// Encode beam width (1 = greedy). Wider: searches more code tuples for a lower error, B× slower encoding.
    public var beamWidth: Int = 1
    /// How k-means scores every centroid for every training point. nil (automatic): the int8 shortlist of
    /// `trainingShortlist` where `EncodeSearch.automatic` picks one (AVX-512 VNNI, K ≥ 1024), exhaustive
    /// otherwise. The shortlist gives different (not worse) centroids than exhaustive scoring, so the same
    /// seed gives the same codebook only on machines that make the same choice.
    public var trainingSearch: EncodeSearch? = nil
    /// Threads used to train and encode (row blocks; OpenBLAS itself runs single-threaded). More: faster, up to the cores.
    public var threads: Int = 2
    /// Fraction of extreme magnitudes left outside the learnt 8-bit range (split between both tails).
    /// Larger: finer steps for typical magnitudes, clipped outliers.
    public var magnitudeClipFraction: Double = 0.002

    public init() {}

    /// Bytes one item's packed code takes with this configuration.
    /// (Computed without validating the configuration.)
    public var bytesPerItem: Int {
        let codeBits = max(1, codesPerLevel.trailingZeroBitCount)
        return (max(0, levels) * (codeBits + effectiveMagnitudeEncoding.bits) + 7) / 8
    }

    /// Checks every field.
    /// - Throws: `QuantizerError.invalidConfiguration` naming the field.
    public func validate() throws(QuantizerError) {
        func fail(_ m: String) -> QuantizerError { .invalidConfiguration(m) }
        guard (1...CodeLayout.maxLevels).contains(levels) else { throw fail("levels must be in 1...\(CodeLayout.maxLevels)") }
        guard codesPerLevel >= 2, codesPerLevel <= 65_536, codesPerLevel & (codesPerLevel - 1) == 0 else {
            throw fail("codes per level \(codesPerLevel) must be a power of two from 2 to 65536, so codes pack into log2(K) bits")
        }
        if metric == .cosine, magnitudeEncoding == .none {
            throw fail("the cosine metric needs magnitudes (8, 16 or 32 bits)")
        }
        guard iterations >= 1 else { throw fail("iterations must be ≥ 1") }
        guard trainingSampleSize >= 0 else { throw fail("training sample size must be ≥ 0") }
        guard balanceTolerance >= 1 else { throw fail("balance tolerance must be ≥ 1") }
        guard (1...64).contains(beamWidth) else { throw fail("beam width must be in 1...64") }
        if case .int8Shortlist(let m)? = trainingSearch, m < 2 {
            throw fail("the training shortlist needs at least 2 candidates (the best and the runner-up)")
        }
        guard (1...64).contains(threads) else { throw fail("threads must be in 1...64") }
        guard magnitudeClipFraction >= 0, magnitudeClipFraction < 0.5 else { throw fail("magnitude clip fraction must be in [0, 0.5)") }
    }

    /// Candidates per point of the automatic training shortlist.
    public static let trainingShortlist = 8

    /// The training search this configuration resolves to on this machine.
    public var effectiveTrainingSearch: EncodeSearch {
        trainingSearch ?? EncodeSearch.automatic(codesPerLevel: codesPerLevel, candidates: Self.trainingShortlist)
    }

    /// The magnitude encoding the codebook will use.
    var effectiveMagnitudeEncoding: MagnitudeEncoding { metric == .euclidean ? .none : magnitudeEncoding }
}

/// Errors of training and encoding.
public enum QuantizerError: Error, Equatable, Sendable, CustomStringConvertible {
    /// A configuration field is out of range; the message names it.
    case invalidConfiguration(String)
    /// A row holds NaN or an infinity.
    case nonFiniteValue(row: Int, column: Int)
    /// Fewer usable training rows than codes per level (zero rows do not count for the cosine metric).
    case notEnoughTrainingData(count: Int, needed: Int)
    /// Input rows do not have the codebook's dimension, or a buffer has the wrong size.
    case dimensionMismatch(expected: Int, actual: Int)
    /// A zero vector was given to a cosine codebook: it has no direction, so it cannot be coded.
    case zeroVector(row: Int)

    public var description: String {
        switch self {
        case .invalidConfiguration(let m): "invalid quantizer configuration: \(m)"
        case .nonFiniteValue(let r, let c): "row \(r) holds a NaN or infinite value (column \(c))"
        case .notEnoughTrainingData(let n, let k):
            "\(n) usable training rows is fewer than the \(k) codes per level (zero vectors do not count)"
        case .dimensionMismatch(let e, let a): "dimension mismatch: expected \(e), got \(a)"
        case .zeroVector(let r): "row \(r) is a zero vector: it has no direction and cannot be coded with the cosine metric"
        }
    }
}

/// Checks that `count × dimension` floats are all finite.
/// - Throws: `QuantizerError.nonFiniteValue` naming the first bad row and column.
func validateFinite(_ data: UnsafeBufferPointer<Float>, count: Int, dimension: Int) throws(QuantizerError) {
    guard data.count >= count * dimension else {
        throw .dimensionMismatch(expected: count * dimension, actual: data.count)
    }
    for i in 0..<(count * dimension) where !data[i].isFinite {
        throw .nonFiniteValue(row: i / dimension, column: i % dimension)
    }
}
