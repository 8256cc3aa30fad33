import Dispatch
import Foundation
import SheafCodebook
import SheafLinearAlgebra
import SheafRandom

/// What training did, level by level.
public struct TrainingReport: Sendable, Codable, Equatable {
    /// One level's training figures.
    public struct Level: Sendable, Codable, Equatable {
        /// k-means iterations run.
        public var iterations: Int
        /// Wall time of the level.
        public var seconds: Double
        /// Residual energy of the training sample after this level (free assignment, quantized magnitudes),
        /// relative to the sample's energy: Σ‖r‖² / Σ‖e‖².
        public var residualEnergy: Double
        /// Largest cluster in the final balanced assignment, relative to the mean N/K.
        public var maxOverMeanClusterSize: Double
        /// Empty clusters in the final balanced assignment.
        public var emptyClusters: Int
        /// The learnt 8-bit magnitude range (nil for other encodings).
        public var magnitudeRange: [Float]?
    }

    /// Per-level figures.
    public var levels: [Level] = []
    /// Training rows used (after sampling, before dropping zero rows).
    public var sampledRows: Int = 0
    /// Zero rows skipped (they have no direction).
    public var skippedZeroRows: Int = 0
    /// Total wall time.
    public var seconds: Double = 0
}

/// Trains cosine (HyMiRec) or euclidean residual codebooks with balanced k-means.
///
/// ```swift
/// var config = QuantizerConfiguration()
/// config.codesPerLevel = 4096
/// let (codebook, report) = try CodebookTrainer(configuration: config).train(vectors, count: n, dimension: 384)
/// ```
public struct CodebookTrainer: Sendable {
    public var configuration: QuantizerConfiguration

    public init(configuration: QuantizerConfiguration = QuantizerConfiguration()) {
        self.configuration = configuration
    }

    /// Trains a codebook on `count × dimension` row-major floats.
    ///
    /// Zero rows are skipped (they have no direction). Each level is clustered with balanced k-means;
    /// the next level is trained on the residuals that encoding would leave: for the cosine metric
    /// e' = e − α̂·c with α̂ the *stored* (quantized) magnitude, so quantization errors do not compound.
    ///
    /// - Parameters:
    ///   - data: count × dimension floats.
    ///   - id: the codebook id to file it under.
    ///   - progress: called with one line per k-means iteration (time, objective, balance).
    /// - Throws: `QuantizerError.invalidConfiguration`, `.nonFiniteValue`, `.notEnoughTrainingData`.
    public func train(
        _ data: UnsafeBufferPointer<Float>, count: Int, dimension: Int, id: UInt16 = 1,
        progress: ((String) -> Void)? = nil
    ) throws -> (codebook: Codebook, report: TrainingReport) {
        let cfg = configuration
        try cfg.validate()
        guard dimension >= 1 else { throw QuantizerError.dimensionMismatch(expected: 1, actual: dimension) }
        try validateFinite(data, count: count, dimension: dimension)
        let started = DispatchTime.now().uptimeNanoseconds
        let d = dimension
        let k = cfg.codesPerLevel

        // Sample (seeded, without replacement), then drop zero rows.
        var rng = SplitMix64(seed: cfg.seed)
        let sampleSize = cfg.trainingSampleSize == 0 ? count : min(count, cfg.trainingSampleSize)
        let rows = rng.sortedSample(sampleSize, of: count)
        var report = TrainingReport()
        report.sampledRows = rows.count
        var residual: [Float] = []
        residual.reserveCapacity(rows.count * d)
        for r in rows {
            let row = UnsafeBufferPointer(rebasing: data[(r * d)..<((r + 1) * d)])
            if row.allSatisfy({ $0 == 0 }) {
                report.skippedZeroRows += 1
                continue
            }
            residual.append(contentsOf: row)
        }
        let m = residual.count / d
        guard m >= k else { throw QuantizerError.notEnoughTrainingData(count: m, needed: k) }
        let totalEnergy = rowNorms2(residual, count: m, dimension: d).reduce(0.0) { $0 + Double($1) }

        let shortlist: Int? = if case .int8Shortlist(let c) = cfg.effectiveTrainingSearch { min(k, c) } else { nil }
        var centroids: [Float] = []
        var ranges: [MagnitudeRange] = []
        var best = [UInt32](repeating: 0, count: m)
        var alpha = [Float](repeating: 0, count: m)
        for level in 0..<cfg.levels {
            let levelStart = DispatchTime.now().uptimeNanoseconds
            // Cluster, then find the residuals as encoding will leave them: free (unbalanced) best centroid,
            // stored magnitude. With the int8 shortlist, the level's points are quantized once for both.
            let (clustering, step) = residual.withUnsafeBufferPointer { r in
                let points = r.baseAddress!
                let int8 = shortlist.map { Int8Points(points, count: m, dimension: d, candidates: $0) }
                let clustering = BalancedKMeans.run(
                    points: points, count: m, dimension: d, k: k, metric: cfg.metric,
                    iterations: cfg.iterations, tolerance: cfg.balanceTolerance, seed: cfg.seed, threads: cfg.threads,
                    level: level, int8: int8, progress: progress)
                let step = LevelStep(centroids: clustering.centroids, k: k, dimension: d, metric: cfg.metric)
                best.withUnsafeMutableBufferPointer { b in
                    alpha.withUnsafeMutableBufferPointer { a in
                        step.assign(points, count: m, best: b.baseAddress!, alpha: a.baseAddress!, threads: cfg.threads, int8: int8)
                    }
                }
                return (clustering, step)
            }
            let levelCentroids = clustering.centroids
            var range: MagnitudeRange?
            if cfg.effectiveMagnitudeEncoding == .uint8 {
                range = magnitudeRange(alpha, clip: cfg.magnitudeClipFraction)
                ranges.append(range!)
            }
            let quantize = MagnitudeQuantizer(encoding: cfg.effectiveMagnitudeEncoding, range: range)
            for i in 0..<m { alpha[i] = quantize(alpha[i]) }
            residual.withUnsafeMutableBufferPointer { r in
                step.subtract(r.baseAddress!, count: m, best: best, alpha: alpha)
            }
            centroids.append(contentsOf: levelCentroids)
            let left = rowNorms2(residual, count: m, dimension: d).reduce(0.0) { $0 + Double($1) }
            let sizes = clustering.sizes
            report.levels.append(
                TrainingReport.Level(
                    iterations: clustering.iterations,
                    seconds: Double(DispatchTime.now().uptimeNanoseconds - levelStart) / 1e9,
                    residualEnergy: totalEnergy > 0 ? left / totalEnergy : 0,
                    maxOverMeanClusterSize: Double(sizes.max() ?? 0) * Double(k) / Double(m),
                    emptyClusters: sizes.filter { $0 == 0 }.count,
                    magnitudeRange: range.map { [$0.lower, $0.upper] }))
            progress?(
                String(
                    format: "level %d done: residual energy %.4f of the input, max/mean cluster %.2f, %.1f s", level + 1,
                    report.levels.last!.residualEnergy, report.levels.last!.maxOverMeanClusterSize,
                    report.levels.last!.seconds))
        }
        report.seconds = Double(DispatchTime.now().uptimeNanoseconds - started) / 1e9
        var stats: [String: Double] = [
            "training_rows": Double(m), "skipped_zero_rows": Double(report.skippedZeroRows),
            "training_seconds": report.seconds, "seed": Double(cfg.seed), "balance_tolerance": cfg.balanceTolerance,
            "encode_beam_width": Double(cfg.beamWidth),
            "training_int8_shortlist": Double(shortlist ?? 0),
        ]
        for (l, lv) in report.levels.enumerated() {
            stats["level\(l + 1)_residual_energy"] = lv.residualEnergy
            stats["level\(l + 1)_max_over_mean_cluster"] = lv.maxOverMeanClusterSize
        }
        let codebook = try Codebook(
            id: id, dimension: d, levels: cfg.levels, codesPerLevel: k, metric: cfg.metric,
            magnitudeEncoding: cfg.effectiveMagnitudeEncoding, magnitudeRanges: ranges, centroids: centroids,
            trainingStats: stats)
        return (codebook, report)
    }

    /// The 8-bit range of a level: the magnitudes between the clip quantiles (widened if degenerate).
    func magnitudeRange(_ alpha: [Float], clip: Double) -> MagnitudeRange {
        let sorted = alpha.sorted()
        let n = sorted.count
        let lo = sorted[min(n - 1, Int(Double(n - 1) * clip / 2))]
        let hi = sorted[max(0, Int((Double(n - 1) * (1 - clip / 2)).rounded(.up)))]
        if hi > lo { return MagnitudeRange(lower: lo, upper: hi) }
        return MagnitudeRange(lower: lo - 0.5, upper: lo + 0.5)
    }
}

/// Rounds a magnitude the way the codebook will store it (the codebook does not exist yet during training).
struct MagnitudeQuantizer {
    let encoding: MagnitudeEncoding
    let range: MagnitudeRange?

    func callAsFunction(_ a: Float) -> Float {
        switch encoding {
        case .none: return 1
        case .uint8:
            let r = range!
            let step = r.step
            guard step > 0 else { return r.lower }
            let q = max(0, min(255, ((a - r.lower) / step).rounded()))
            return r.lower + q * step
        case .float16: return Float(Float16(a))
        case .float32: return a
        }
    }
}

// MARK: - One level of greedy assignment

/// Best centroid per row at one level, and the residual update. Shared by training and encoding.
struct LevelStep {
    let centroids: [Float]
    let norms2: [Float]
    let k: Int
    let dimension: Int
    let metric: Metric

    init(centroids: [Float], k: Int, dimension: Int, metric: Metric) {
        self.centroids = centroids
        self.norms2 = rowNorms2(centroids, count: k, dimension: dimension)
        self.k = k
        self.dimension = dimension
        self.metric = metric
    }

    /// For each of `count` rows of `r`: the centroid that removes the most energy, and its raw magnitude
    /// (cosine: α = r·c/‖c‖²; euclidean: 1).
    /// With `int8` (the int8 copy of the same `count` rows), the best is taken among each row's int8 shortlist,
    /// scored exactly.
    func assign(
        _ r: UnsafePointer<Float>, count: Int, best: UnsafeMutablePointer<UInt32>, alpha: UnsafeMutablePointer<Float>,
        threads: Int, int8: Int8Points? = nil
    ) {
        if let int8 {
            let M = min(k, int8.candidates)
            var index = [Int32](repeating: 0, count: count * M)
            var score = [Float](repeating: 0, count: count * M)
            var regret = [Float](repeating: 0, count: count)
            int8.shortlist(
                centroids: centroids, norms2: norms2, k: k, metric: metric, keep: M, threads: threads, index: &index,
                score: &score, regret: &regret)
            for i in 0..<count {
                let j = Int(index[i * M])
                best[i] = UInt32(j)
                alpha[i] = metric == .cosine ? score[i * M] / max(norms2[j], .leastNormalMagnitude) : 1
            }
            return
        }
        let d = dimension
        let k = self.k
        let metric = self.metric
        centroids.withUnsafeBufferPointer { c in
            norms2.withUnsafeBufferPointer { cn in
                ParallelBlocks.run(count: count, blockRows: BalancedKMeans.blockRows(k), threads: threads, scratchPerRow: k) {
                    rows, scores in
                    BLAS.gemm(m: rows.count, n: k, k: d, a: r + rows.lowerBound * d, b: c.baseAddress!, transposeB: true, c: scores)
                    for (ri, i) in rows.enumerated() {
                        let s = scores + ri * k
                        var bj = 0
                        var bv = -Float.infinity
                        for j in 0..<k {
                            // safe: j < k; s has k scores; cn has k norms.
                            let value = metric == .cosine ? s[j] * s[j] / max(cn[j], .leastNormalMagnitude) : 2 * s[j] - cn[j]
                            if value > bv {
                                bv = value
                                bj = j
                            }
                        }
                        best[i] = UInt32(bj)
                        alpha[i] = metric == .cosine ? s[bj] / max(cn[bj], .leastNormalMagnitude) : 1
                    }
                }
            }
        }
    }

    /// r_i ← r_i − α_i · c_{best_i}.
    func subtract(_ r: UnsafeMutablePointer<Float>, count: Int, best: [UInt32], alpha: [Float]) {
        let d = dimension
        centroids.withUnsafeBufferPointer { c in
            for i in 0..<count {
                // safe: best[i] < k (set by `assign`); rows are d floats.
                let row = r + i &* d
                let cen = c.baseAddress! + Int(best[i]) &* d
                let a = alpha[i]
                for t in 0..<d { row[t] -= a * cen[t] }
            }
        }
    }
}
