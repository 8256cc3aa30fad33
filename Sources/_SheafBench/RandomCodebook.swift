import SheafCodebook
import SheafRandom

/// A cosine codebook with random unit-norm centroids, and random codes for it: the workload of
/// decode-speed measurements. Decode cost does not depend on code quality, so random codes measure
/// speed honestly; they say nothing about quality.
public struct RandomCodebook: Sendable {
    /// The codebook (id 1, cosine metric).
    public let codebook: Codebook
    /// Per level, the upper end of the random magnitudes `codes(count:rng:)` draws (from 0).
    public let magnitudeUppers: [Float]

    /// Draws `levels × codesPerLevel` centroids from `rng`, each coordinate uniform in [-0.5, 0.5)
    /// and each row then scaled to unit norm.
    /// - Parameters:
    ///   - magnitudeUppers: one per level; for `.uint8` magnitudes they are also the codebook's
    ///     quantisation ranges ([0, upper]), for the other encodings they only bound `codes(count:rng:)`.
    ///   - rng: advanced past the centroids, so callers draw their codes from the same stream.
    /// - Throws: what `Codebook.init` throws for an inconsistent shape.
    public init(
        dimension: Int, levels: Int, codesPerLevel: Int, magnitudeEncoding: MagnitudeEncoding, magnitudeUppers: [Float],
        rng: inout SplitMix64
    ) throws {
        precondition(magnitudeUppers.count == levels, "one magnitude bound per level")
        let D = dimension
        var centroids = [Float](repeating: 0, count: levels * codesPerLevel * D)
        centroids.withUnsafeMutableBufferPointer { c in
            for r in 0..<(levels * codesPerLevel) {
                var norm: Float = 0
                for d in 0..<D {
                    let v = rng.nextFloat() - 0.5
                    c[r * D + d] = v
                    norm += v * v
                }
                let inv = 1 / norm.squareRoot()
                for d in 0..<D { c[r * D + d] *= inv }
            }
        }
        let ranges = magnitudeUppers.map { MagnitudeRange(lower: 0, upper: $0) }
        codebook = try Codebook(
            id: 1, dimension: D, levels: levels, codesPerLevel: codesPerLevel, metric: .cosine,
            magnitudeEncoding: magnitudeEncoding, magnitudeRanges: magnitudeEncoding == .uint8 ? ranges : [],
            centroids: centroids)
        self.magnitudeUppers = magnitudeUppers
    }

    /// Random codes and magnitudes for `count` items (count × levels each, item-major): every code
    /// uniform over the level's centroids, every magnitude uniform in [0, upper) of its level.
    /// All codes are drawn first, then all magnitudes.
    public func codes(count: Int, rng: inout SplitMix64) -> (codes: [UInt32], magnitudes: [Float]) {
        let L = codebook.levels, K = UInt64(codebook.codesPerLevel)
        let codes = (0..<(count * L)).map { _ in UInt32(rng.next() % K) }
        let magnitudes = (0..<(count * L)).map { i in magnitudeUppers[i % L] * rng.nextFloat() }
        return (codes, magnitudes)
    }
}
