import Foundation
import SheafCLI
import SheafCodebook
import SheafFormats
import SheafQuantizer
import SheafRandom
import SheafStore
import Testing
import _SheafBench

// MARK: - Synthetic rows

@Suite struct ClusteredVectorsTests {
    @Test func rowsAreDeterministicPerSeedAndHaveTheRequestedShape() {
        let v = ClusteredVectors(dimension: 24, clusters: 5, seed: 3)
        let rows = v.rows(0..<40)
        #expect(rows.count == 40 * 24)
        #expect(rows.allSatisfy { $0.isFinite })
        #expect(ClusteredVectors(dimension: 24, clusters: 5, seed: 3).rows(0..<40) == rows)
        #expect(ClusteredVectors(dimension: 24, clusters: 5, seed: 4).rows(0..<40) != rows)
        // Row i depends only on (seed, i): any range, on any number of threads, gives the same rows.
        #expect(v.rows(10..<25, threads: 1) == Array(rows[(10 * 24)..<(25 * 24)]))
        #expect(v.rows(0..<40, threads: 3) == rows)
        #expect((0..<40).allSatisfy { (0..<5).contains(v.cluster(ofRow: $0)) })
    }

    @Test func rowsOfOneClusterAreCloserThanRowsOfTwo() {
        let v = ClusteredVectors(dimension: 64, clusters: 4, seed: 1)
        let rows = v.rows(0..<200)
        var same = (sum: 0.0, count: 0), other = (sum: 0.0, count: 0)
        rows.withUnsafeBufferPointer { p in
            for i in 0..<100 {
                let j = i + 100
                let c = cosine(p.baseAddress! + i * 64, p.baseAddress! + j * 64, count: 64)
                if v.cluster(ofRow: i) == v.cluster(ofRow: j) { same = (same.sum + c, same.count + 1) } else { other = (other.sum + c, other.count + 1) }
            }
        }
        #expect(same.count > 0 && other.count > 0)
        #expect(same.sum / Double(same.count) > other.sum / Double(other.count) + 0.3)
    }

    @Test func chunksCoverTheRangeInOrder() {
        let v = ClusteredVectors(dimension: 8, clusters: 3, seed: 2)
        var joined: [Float] = []
        var chunks = 0
        v.forEachChunk(of: 5..<42, chunkBytes: 10 * 8 * 4) { chunk in
            #expect(chunk.count <= 10 * 8 && chunk.count % 8 == 0)
            joined += chunk
            chunks += 1
        }
        #expect(chunks == 4)
        #expect(joined == v.rows(5..<42))
        v.forEachChunk(of: 3..<3) { _ in Issue.record("an empty range has no chunk") }
    }

    @Test func uniformClustersAreUnitRowsAndDeterministic() {
        let rows = ClusteredVectors.uniformClusters(count: 30, dimension: 16, seed: 42)
        #expect(rows.count == 30 * 16)
        #expect(rows == ClusteredVectors.uniformClusters(count: 30, dimension: 16, seed: 42))
        #expect(rows != ClusteredVectors.uniformClusters(count: 30, dimension: 16, seed: 43))
        for r in 0..<30 {
            let norm = rows[(r * 16)..<((r + 1) * 16)].reduce(0) { $0 + $1 * $1 }.squareRoot()
            #expect(abs(norm - 1) < 1e-5, "row \(r)")
        }
    }

    /// The `.npy` writing of `sheaf-measure bench npy-load` and `write-npy`: chunks into
    /// NPYStreamWriter, read back by SheafFormats.
    @Test func chunksWrittenAsNPYReadBackExactly() throws {
        let v = ClusteredVectors(dimension: 12, clusters: 7, seed: 9)
        let path = NSTemporaryDirectory() + "sheaf-bench-\(UUID().uuidString).npy"
        defer { try? FileManager.default.removeItem(atPath: path) }
        let writer = try NPYStreamWriter(path: path, rows: 50, dimension: 12)
        try v.forEachChunk(of: 0..<50, chunkBytes: 7 * 12 * 4) { try writer.append($0) }
        try writer.finish()
        let array = try NPYArray(contentsOf: path)
        #expect(array.dtype == "<f4")
        #expect(array.shape == [50, 12])
        #expect(try array.floats(path: path) == v.rows(0..<50))
        let file = try EmbeddingFile(path: path)
        #expect(file.count == 50 && file.dimension == 12)
        #expect(try file.read(rows: 20..<30) == v.rows(20..<30))
    }
}

// MARK: - Random codebooks and decode workloads

@Suite struct RandomCodebookTests {
    @Test func codebookIsValidWithUnitCentroids() throws {
        var rng = SplitMix64(seed: 7)
        let r = try RandomCodebook(
            dimension: 16, levels: 3, codesPerLevel: 32, magnitudeEncoding: .uint8, magnitudeUppers: [1, 0.5, 0.5], rng: &rng)
        let cb = r.codebook
        #expect(cb.dimension == 16 && cb.levels == 3 && cb.codesPerLevel == 32 && cb.metric == .cosine)
        #expect(cb.magnitudeRanges == [MagnitudeRange(lower: 0, upper: 1), MagnitudeRange(lower: 0, upper: 0.5), MagnitudeRange(lower: 0, upper: 0.5)])
        #expect(cb.centroids.count == 3 * 32 * 16)
        for row in 0..<(3 * 32) {
            let norm = cb.centroids[(row * 16)..<((row + 1) * 16)].reduce(0) { $0 + $1 * $1 }.squareRoot()
            #expect(abs(norm - 1) < 1e-5, "centroid row \(row)")
        }
        // The same stream gives the same codebook; other encodings keep no ranges.
        var again = SplitMix64(seed: 7)
        let same = try RandomCodebook(
            dimension: 16, levels: 3, codesPerLevel: 32, magnitudeEncoding: .uint8, magnitudeUppers: [1, 0.5, 0.5], rng: &again)
        #expect(same.codebook.centroids == cb.centroids)
        #expect(again.state == rng.state)
        var other = SplitMix64(seed: 7)
        let half = try RandomCodebook(
            dimension: 16, levels: 3, codesPerLevel: 32, magnitudeEncoding: .float16, magnitudeUppers: [1, 0.5, 0.5], rng: &other)
        #expect(half.codebook.magnitudeRanges.isEmpty)
    }

    @Test func codesAreInRangeAndPack() throws {
        var rng = SplitMix64(seed: 1)
        let r = try RandomCodebook(
            dimension: 8, levels: 2, codesPerLevel: 16, magnitudeEncoding: .uint8, magnitudeUppers: [1.2, 0.6], rng: &rng)
        let (codes, mags) = r.codes(count: 100, rng: &rng)
        #expect(codes.count == 200 && mags.count == 200)
        #expect(codes.allSatisfy { $0 < 16 })
        #expect(mags.enumerated().allSatisfy { i, m in m >= 0 && m < [Float(1.2), 0.6][i % 2] })
        var packed = [UInt8](repeating: 0, count: 100 * r.codebook.bytesPerItem)
        try codes.withUnsafeBufferPointer { c in
            try mags.withUnsafeBufferPointer { m in
                try packed.withUnsafeMutableBytes { try r.codebook.pack(codes: c, magnitudes: m, count: 100, into: $0) }
            }
        }
    }

    @Test func decodeWorkloadMatchesTheScalarReference() throws {
        for bits in [8, 16, 32] {
            let w = try DecodeWorkload(DecodeConfiguration(dimension: 16, levels: 2, codesPerLevel: 16, magnitudeBits: bits, rows: 40))
            #expect(w.packed.count == 40 * w.codebook.bytesPerItem)
            #expect(w.outputBytes == 40 * 16 * 4)
            #expect(w.maximumErrorAgainstReference() <= 1e-5, "\(bits)-bit magnitudes")
        }
    }
}

// MARK: - Codebook training configuration

@Suite struct BenchmarkCodebookTests {
    @Test func benchmarkStoreConfiguration() {
        let q = QuantizerConfiguration.benchmarkStore(iterations: 8)
        #expect(q.levels == 4 && q.codesPerLevel == 256 && q.metric == .cosine && q.magnitudeEncoding == .uint8)
        #expect(q.iterations == 8 && q.trainingSampleSize == 0 && q.threads == 2 && q.seed == 1)
        #expect(q.bytesPerItem == 8)
        let small = QuantizerConfiguration.benchmarkStore(levels: 2, codesPerLevel: 16, magnitudeEncoding: .float16, iterations: 3, threads: 1, seed: 5)
        #expect(small.levels == 2 && small.codesPerLevel == 16 && small.magnitudeEncoding == .float16 && small.threads == 1 && small.seed == 5)
    }

    @Test func trainsOnEveryRowGiven() throws {
        let rows = ClusteredVectors(dimension: 8, clusters: 4, seed: 1).rows(0..<200)
        let q = QuantizerConfiguration.benchmarkStore(levels: 2, codesPerLevel: 4, iterations: 3, threads: 1)
        let cb = try CodebookTrainer(configuration: q).train(rows: rows, dimension: 8)
        #expect(cb.id == 1 && cb.dimension == 8 && cb.levels == 2 && cb.codesPerLevel == 4 && cb.metric == .cosine)
        let again = try CodebookTrainer(configuration: q).train(rows: rows, dimension: 8)
        #expect(again.centroids == cb.centroids)
    }

    @Test func benchmarkStoreOptions() {
        let o = StoreOptions.benchmark
        #expect(!o.durable)
        #expect(o.mapSize == 1 << 30)
    }
}
