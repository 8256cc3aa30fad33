import SheafCodebook
import SheafRandom
import Testing

@testable import SheafQuantizer

/// Clustered synthetic data: `clusters` random unit directions, points = direction · norm + noise.
func clusteredData(count: Int, dimension d: Int, clusters: Int = 24, noise: Float = 0.25, seed: UInt64) -> [Float] {
    var rng = SplitMix64(seed: seed)
    var centers = (0..<(clusters * d)).map { _ in rng.float(in: -1...1) }
    normaliseRows(&centers, count: clusters, dimension: d)
    var out = [Float](repeating: 0, count: count * d)
    for i in 0..<count {
        let c = Int(rng.next() % UInt64(clusters))
        let norm = rng.float(in: 0.5...2)
        for t in 0..<d { out[i * d + t] = norm * (centers[c * d + t] + noise * rng.float(in: -1...1)) }
    }
    return out
}

func config(
    _ metric: Metric = .cosine, levels: Int = 3, k: Int = 16, magnitudes: MagnitudeEncoding = .float32,
    iterations: Int = 8, seed: UInt64 = 1
) -> QuantizerConfiguration {
    var c = QuantizerConfiguration()
    c.metric = metric
    c.levels = levels
    c.codesPerLevel = k
    c.magnitudeEncoding = magnitudes
    c.iterations = iterations
    c.seed = seed
    return c
}

func train(_ data: [Float], count: Int, dimension: Int, _ c: QuantizerConfiguration) throws -> (Codebook, TrainingReport) {
    try data.withUnsafeBufferPointer { try CodebookTrainer(configuration: c).train($0, count: count, dimension: dimension) }
}

/// Residuals after each level, rebuilt from the codes: r_0 = e, r_{l+1} = r_l − α_l c_l[b_l].
func residuals(_ e: ArraySlice<Float>, codes: ArraySlice<UInt32>, mags: ArraySlice<Float>, _ cb: Codebook) -> [[Float]] {
    let d = cb.dimension
    var r = Array(e)
    var out = [r]
    for l in 0..<cb.levels {
        let j = Int(codes[codes.startIndex + l])
        let a = mags[mags.startIndex + l]
        for t in 0..<d { r[t] -= a * cb.centroids[(l * cb.codesPerLevel + j) * d + t] }
        out.append(r)
    }
    return out
}

func dot(_ a: [Float], _ b: ArraySlice<Float>) -> Float { zip(a, b).reduce(0) { $0 + $1.0 * $1.1 } }
func norm2(_ a: [Float]) -> Float { a.reduce(0) { $0 + $1 * $1 } }

@Suite struct TrainingTests {
    let n = 1500
    let d = 12

    @Test func residualIsOrthogonalToTheChosenCentroidAndNeverGrows() throws {
        let data = clusteredData(count: n, dimension: d, seed: 3)
        let (cb, _) = try train(data, count: n, dimension: d, config(.cosine, magnitudes: .float32))
        let (codes, mags) = try ResidualEncoder(codebook: cb).encode(data, count: n)
        for i in stride(from: 0, to: n, by: 7) {
            let rs = residuals(data[(i * d)..<((i + 1) * d)], codes: codes[(i * 3)..<(i * 3 + 3)], mags: mags[(i * 3)..<(i * 3 + 3)], cb)
            for l in 0..<3 {
                let j = Int(codes[i * 3 + l])
                let c = cb.centroids[((l * 16 + j) * d)..<((l * 16 + j + 1) * d)]
                let scale = norm2(rs[0]).squareRoot()
                #expect(abs(dot(rs[l + 1], c)) <= 1e-4 * scale, "row \(i) level \(l)")
                #expect(norm2(rs[l + 1]) <= norm2(rs[l]) * (1 + 1e-5), "row \(i) level \(l)")
            }
        }
    }

    @Test(arguments: [Metric.cosine, .euclidean])
    func reconstructionImprovesWithEveryLevel(_ metric: Metric) throws {
        let data = clusteredData(count: n, dimension: d, seed: 4)
        let (cb, report) = try train(data, count: n, dimension: d, config(metric, levels: 4, magnitudes: .uint8))
        let (codes, mags) = try ResidualEncoder(codebook: cb).encode(data, count: n)
        var energy = [Double](repeating: 0, count: 5)
        for i in 0..<n {
            let rs = residuals(data[(i * d)..<((i + 1) * d)], codes: codes[(i * 4)..<(i * 4 + 4)], mags: mags[(i * 4)..<(i * 4 + 4)], cb)
            for l in 0...4 { energy[l] += Double(norm2(rs[l])) }
        }
        for l in 0..<4 { #expect(energy[l + 1] < energy[l], "level \(l + 1): \(energy)") }
        // The training report saw the same decrease on its sample.
        #expect(zip(report.levels, report.levels.dropFirst()).allSatisfy { $0.residualEnergy > $1.residualEnergy })
    }

    @Test(arguments: [1.0, 1.2, 2.0])
    func balanceStaysWithinTolerance(_ tolerance: Double) throws {
        // Very uneven data: two tight clusters hold most points.
        var data = clusteredData(count: n, dimension: d, clusters: 3, noise: 0.05, seed: 5)
        data += clusteredData(count: 500, dimension: d, clusters: 30, seed: 6)
        var c = config(.cosine, k: 32)
        c.balanceTolerance = tolerance
        let (_, report) = try train(data, count: 2000, dimension: d, c)
        let slack = 32.0 / 2000.0  // capacity is rounded up to a whole point
        for level in report.levels {
            #expect(level.maxOverMeanClusterSize <= tolerance + slack, "\(level)")
        }
    }

    @Test func sameSeedSameCodebook() throws {
        let data = clusteredData(count: n, dimension: d, seed: 7)
        let (a, _) = try train(data, count: n, dimension: d, config(seed: 11))
        let (b, _) = try train(data, count: n, dimension: d, config(seed: 11))
        var single = config(seed: 11)
        single.threads = 1
        let (c, _) = try train(data, count: n, dimension: d, single)
        let (other, _) = try train(data, count: n, dimension: d, config(seed: 12))
        #expect(a.hasSameContent(as: b))
        #expect(a.hasSameContent(as: c))  // thread count does not change the result
        #expect(!a.hasSameContent(as: other))
    }

    @Test(arguments: [Metric.cosine, .euclidean])
    func bothMetricsRoundTrip(_ metric: Metric) throws {
        let data = clusteredData(count: n, dimension: d, seed: 8)
        let (cb, _) = try train(data, count: n, dimension: d, config(metric, k: 32, magnitudes: .uint8))
        let (codes, mags) = try ResidualEncoder(codebook: cb).encode(data, count: n)
        // Through the store's packed form: pack, then decode the packed bytes.
        var packed = [UInt8](repeating: 0, count: n * cb.bytesPerItem)
        try codes.withUnsafeBufferPointer { c in
            try mags.withUnsafeBufferPointer { m in
                try packed.withUnsafeMutableBytes { try cb.pack(codes: c, magnitudes: m, count: n, into: $0) }
            }
        }
        var decoded = [Float](repeating: 0, count: n * d)
        packed.withUnsafeBytes { cb.decodePacked($0, count: n, into: &decoded) }
        let report = try data.withUnsafeBufferPointer { o in
            try decoded.withUnsafeBufferPointer { r in
                try codes.withUnsafeBufferPointer { c in
                    try QualityReport.measure(original: o, decoded: r, count: n, dimension: d, codes: c, codebook: cb, queryCount: 200)
                }
            }
        }
        #expect(report.meanCosine > 0.9, "\(report)")
        #expect(report.relativeMSE < 0.15, "\(report)")
        #expect(report.levels.count == 3)
        #expect(report.bytesPerItem == (metric == .cosine ? 5 : 2))  // 3×5-bit codes (+ 3×8-bit magnitudes): 39 or 15 bits
    }

    @Test(arguments: [2, 4])
    func beamIsNeverWorseThanGreedy(_ width: Int) throws {
        let data = clusteredData(count: 600, dimension: d, seed: 9)
        for metric in [Metric.cosine, .euclidean] {
            let (cb, _) = try train(data, count: 600, dimension: d, config(metric, k: 16, magnitudes: .uint8))
            let greedy = try ResidualEncoder(codebook: cb, beamWidth: 1).encode(data, count: 600)
            let beam = try ResidualEncoder(codebook: cb, beamWidth: width).encode(data, count: 600)
            var better = 0
            for i in 0..<600 {
                let row = data[(i * d)..<((i + 1) * d)]
                let g = norm2(residuals(row, codes: greedy.codes[(i * 3)..<(i * 3 + 3)], mags: greedy.magnitudes[(i * 3)..<(i * 3 + 3)], cb)[3])
                let b = norm2(residuals(row, codes: beam.codes[(i * 3)..<(i * 3 + 3)], mags: beam.magnitudes[(i * 3)..<(i * 3 + 3)], cb)[3])
                #expect(b <= g * (1 + 1e-5) + 1e-6, "\(metric) row \(i): beam \(b) > greedy \(g)")
                if b < g * (1 - 1e-4) { better += 1 }
            }
            #expect(better > 0, "\(metric): the beam never found a better tuple")
        }
    }

    @Test func zeroRowsAreSkippedInTraining() throws {
        var data = clusteredData(count: 200, dimension: d, seed: 10)
        data += [Float](repeating: 0, count: 50 * d)
        let (_, report) = try train(data, count: 250, dimension: d, config(k: 8))
        #expect(report.sampledRows == 250)
        #expect(report.skippedZeroRows == 50)
    }

    @Test func trainingSampleIsUsed() throws {
        let data = clusteredData(count: 1000, dimension: d, seed: 12)
        var c = config(k: 8)
        c.trainingSampleSize = 300
        let (cb, report) = try train(data, count: 1000, dimension: d, c)
        #expect(report.sampledRows == 300)
        #expect(cb.trainingStats["training_rows"] == 300)
    }
}

@Suite struct BadInputTests {
    let d = 6

    @Test func nonFiniteRows() throws {
        var data = clusteredData(count: 100, dimension: d, seed: 1)
        data[37 * d + 4] = .nan
        #expect(throws: QuantizerError.nonFiniteValue(row: 37, column: 4)) { try train(data, count: 100, dimension: d, config(k: 8)) }
        let (cb, _) = try train(clusteredData(count: 100, dimension: d, seed: 1), count: 100, dimension: d, config(k: 8))
        data[37 * d + 4] = 1
        data[5 * d] = -.infinity
        #expect(throws: QuantizerError.nonFiniteValue(row: 5, column: 0)) { try ResidualEncoder(codebook: cb).encode(data, count: 100) }
    }

    @Test func zeroVectorsCannotBeCodedWithTheCosineMetric() throws {
        var data = clusteredData(count: 100, dimension: d, seed: 2)
        let (cb, _) = try train(data, count: 100, dimension: d, config(k: 8))
        for t in 0..<d { data[9 * d + t] = 0 }
        #expect(throws: QuantizerError.zeroVector(row: 9)) { try ResidualEncoder(codebook: cb).encode(data, count: 100) }
        // The euclidean metric codes a zero vector like any other point.
        let (eu, _) = try train(clusteredData(count: 100, dimension: d, seed: 2), count: 100, dimension: d, config(.euclidean, k: 8))
        let (codes, _) = try ResidualEncoder(codebook: eu).encode(data, count: 100)
        #expect(codes.count == 300)
    }

    @Test func tooFewTrainingRows() throws {
        var data = clusteredData(count: 20, dimension: d, seed: 3)
        #expect(throws: QuantizerError.notEnoughTrainingData(count: 20, needed: 32)) { try train(data, count: 20, dimension: d, config(k: 32)) }
        data += [Float](repeating: 0, count: 20 * d)  // zero rows do not count
        #expect(throws: QuantizerError.notEnoughTrainingData(count: 20, needed: 32)) { try train(data, count: 40, dimension: d, config(k: 32)) }
    }

    @Test func dimensionMismatch() throws {
        let (cb, _) = try train(clusteredData(count: 100, dimension: d, seed: 4), count: 100, dimension: d, config(k: 8))
        let wrong = clusteredData(count: 10, dimension: d + 1, seed: 4)
        #expect(throws: QuantizerError.dimensionMismatch(expected: 60, actual: 70)) { try ResidualEncoder(codebook: cb).encode(wrong, count: 10) }
    }

    @Test func codesThatDoNotFitTheirWidth() throws {
        let data = clusteredData(count: 100, dimension: d, seed: 5)
        let message = "codes per level 300 must be a power of two from 2 to 65536, so codes pack into log2(K) bits"
        #expect(throws: QuantizerError.invalidConfiguration(message)) { try train(data, count: 100, dimension: d, config(k: 300)) }
        #expect(throws: QuantizerError.invalidConfiguration(message.replacingOccurrences(of: "300", with: "131072"))) {
            try train(data, count: 100, dimension: d, config(k: 131_072))
        }
        #expect(throws: QuantizerError.invalidConfiguration("the cosine metric needs magnitudes (8, 16 or 32 bits)")) {
            try train(data, count: 100, dimension: d, config(magnitudes: .none))
        }
        #expect(throws: QuantizerError.invalidConfiguration("levels must be in 1...16")) { try train(data, count: 100, dimension: d, config(levels: 17)) }
    }
}

@Suite struct QualityReportTests {
    @Test func perfectReconstruction() throws {
        let n = 48, d = 5
        let data = clusteredData(count: n, dimension: d, seed: 1)
        let codes = (0..<(n * 2)).map { UInt32(($0 / 2) % 4) }  // each level uniform over 4 codes
        let cb = try Codebook(
            id: 1, dimension: d, levels: 2, codesPerLevel: 4, metric: .euclidean, magnitudeEncoding: .none,
            centroids: [Float](repeating: 0, count: 2 * 4 * d))
        let r = try data.withUnsafeBufferPointer { o in
            try codes.withUnsafeBufferPointer { c in
                try QualityReport.measure(original: o, decoded: o, count: n, dimension: d, codes: c, codebook: cb, queryCount: 20)
            }
        }
        #expect(abs(r.meanCosine - 1) < 1e-9)
        #expect(abs(r.p5Cosine - 1) < 1e-9)
        #expect(r.relativeMSE == 0)
        #expect(r.recallAt10 == 1)
        #expect(r.queries == 20)
        #expect(r.levels.allSatisfy { abs($0.entropyBits - 2) < 1e-12 && abs($0.perplexity - 4) < 1e-9 && $0.usedCodes == 4 })
        #expect(r.bytesPerItem == 1)
        #expect(r.compressionRatio == 20)
    }

    @Test func percentileMatchesNumpy() {
        // numpy.percentile([1, 2, 3, 4, 10], 5) == 1.2 ; ([0, 1], 50) == 0.5
        #expect(abs(QualityReport.percentile([1, 2, 3, 4, 10], 5) - 1.2) < 1e-12)
        #expect(abs(QualityReport.percentile([0, 1], 50) - 0.5) < 1e-12)
    }

    @Test func recallDropsForScrambledVectors() throws {
        let n = 200, d = 8
        let data = clusteredData(count: n, dimension: d, clusters: 40, noise: 0.5, seed: 2)
        var rng = SplitMix64(seed: 3)
        let scrambled = data.map { _ in rng.float(in: -1...1) }
        let r = try data.withUnsafeBufferPointer { o in
            try scrambled.withUnsafeBufferPointer { s in try QualityReport.measure(original: o, decoded: s, count: n, dimension: d, queryCount: 50) }
        }
        #expect(r.recallAt10! < 0.2)
        #expect(abs(r.meanCosine) < 0.2)
    }
}
