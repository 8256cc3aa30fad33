import Dispatch
import SheafCodebook
import SheafRandom

/// Deterministic synthetic embeddings: `clusters` random unit directions, and each row one of
/// them plus isotropic noise. Row `i` depends only on (seed, i), so any range of rows can be
/// generated on its own, in any order, by any thread: a million rows at D = 2048 (8 GB as
/// float32) are produced chunk by chunk and never held at once.
///
/// Synthetic data is for speed and size measurements only, never a quality result.
public struct ClusteredVectors: Sendable {
    public let dimension: Int
    public let clusters: Int
    public let seed: UInt64
    /// Noise norm relative to the unit centre.
    public let noise: Float
    /// clusters × dimension unit rows.
    let centres: [Float]

    public init(dimension: Int, clusters: Int = 1000, seed: UInt64 = 1, noise: Float = 0.6) {
        precondition(dimension >= 1 && clusters >= 1)
        self.dimension = dimension
        self.clusters = clusters
        self.seed = seed
        self.noise = noise
        var rng = SplitMix64(seed: seed ^ 0xC1A5_7E25)
        var c = [Float](repeating: 0, count: clusters * dimension)
        for r in 0..<clusters {
            var norm: Float = 0
            for d in 0..<dimension {
                let v = Self.gaussian(&rng)
                c[r * dimension + d] = v
                norm += v * v
            }
            let inv = 1 / norm.squareRoot()
            for d in 0..<dimension { c[r * dimension + d] *= inv }
        }
        centres = c
    }

    /// An approximately standard normal value: the sum of four 16-bit uniforms, centred and scaled
    /// (Irwin–Hall), from one 64-bit draw. Cheap, and plenty for benchmark data.
    @inline(__always)
    static func gaussian(_ rng: inout SplitMix64) -> Float {
        let x = rng.next()
        let s = Float(x & 0xFFFF) + Float((x >> 16) & 0xFFFF) + Float((x >> 32) & 0xFFFF) + Float(x >> 48)
        // Each uniform has mean 32767.5 and variance 65536²/12; four of them sum to mean 131070
        // and standard deviation 65536/√3.
        return (s - 131_070) * (1.7320508 / 65536)
    }

    @inline(__always)
    func rowGenerator(_ row: Int) -> SplitMix64 {
        SplitMix64(seed: seed &+ UInt64(row) &* 0xD1B5_4A32_D192_ED03)
    }

    /// The cluster row `row` belongs to.
    public func cluster(ofRow row: Int) -> Int {
        var rng = rowGenerator(row)
        return Int(rng.next() % UInt64(clusters))
    }

    /// Writes rows `rows` (rows.count × dimension floats) to `output`, on up to `threads` threads.
    public func fill(rows: Range<Int>, into output: UnsafeMutablePointer<Float>, threads: Int = 2) {
        let d = dimension
        let scale = noise / Float(d).squareRoot()
        let n = rows.count
        let blocks = max(1, min(threads, n / 64 + 1))
        // safe: block b writes rows [lo, hi) of `output`, disjoint from every other block's.
        nonisolated(unsafe) let out = output
        centres.withUnsafeBufferPointer { cp in
            nonisolated(unsafe) let centres = cp
            DispatchQueue.concurrentPerform(iterations: blocks) { b in
                let lo = n * b / blocks, hi = n * (b + 1) / blocks
                for i in lo..<hi {
                    var rng = rowGenerator(rows.lowerBound + i)
                    let c = Int(rng.next() % UInt64(clusters))
                    let centre = centres.baseAddress! + c * d
                    let o = out + i * d
                    for t in 0..<d { o[t] = centre[t] + scale * Self.gaussian(&rng) }
                }
            }
        }
    }

    /// Rows `rows` as a new array.
    public func rows(_ rows: Range<Int>, threads: Int = 2) -> [Float] {
        [Float](unsafeUninitializedCapacity: rows.count * dimension) { buf, count in
            fill(rows: rows, into: buf.baseAddress!, threads: threads)
            count = rows.count * dimension
        }
    }
}

// MARK: - Chunks

extension ClusteredVectors {
    /// Generates rows `rows` in order, at most `chunkBytes` of float32 at a time, and hands each
    /// chunk (its rows × dimension floats) to `body`: how a large set is written out (to an `.npy`
    /// stream, say) without being held at once.
    public func forEachChunk(
        of rows: Range<Int>, chunkBytes: Int = 32 << 20, _ body: (UnsafeBufferPointer<Float>) throws -> Void
    ) rethrows {
        let chunk = max(1, chunkBytes / (dimension * 4))
        var start = rows.lowerBound
        while start < rows.upperBound {
            let part = self.rows(start..<min(rows.upperBound, start + chunk))
            try part.withUnsafeBufferPointer(body)
            start += chunk
        }
    }
}

// MARK: - The uniform generator of `sheaf-measure quantize --synthetic`

extension ClusteredVectors {
    /// `count` unit rows around 1,000 centres whose coordinates are uniform in [-0.5, 0.5), each
    /// row a centre plus uniform noise of ±0.175 per coordinate, then normalised; drawn in one
    /// stream from `seed`. The codebook speed table in the README was measured on these rows, so
    /// `sheaf-measure quantize --synthetic` keeps them (speed only, never a quality result).
    public static func uniformClusters(count n: Int, dimension d: Int, seed: UInt64) -> [Float] {
        var rng = SplitMix64(seed: seed)
        let clusters = 1000
        let centers = (0..<(clusters * d)).map { _ in rng.nextFloat() - 0.5 }
        var out = [Float](repeating: 0, count: n * d)
        for i in 0..<n {
            let c = Int(rng.next() % UInt64(clusters))
            var norm: Float = 0
            for t in 0..<d {
                let v = centers[c * d + t] + 0.35 * (rng.nextFloat() - 0.5)
                out[i * d + t] = v
                norm += v * v
            }
            let inv = 1 / norm.squareRoot()
            for t in 0..<d { out[i * d + t] *= inv }
        }
        return out
    }
}
