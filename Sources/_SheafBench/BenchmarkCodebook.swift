import SheafCodebook
import SheafQuantizer
import SheafStore

extension QuantizerConfiguration {
    /// The codebook of the benchmark stores: cosine, `levels` × `codesPerLevel` centroids (L4 K256
    /// with 8-bit magnitudes is 8 B/item), trained on every row it is given (no subsample).
    public static func benchmarkStore(
        levels: Int = 4, codesPerLevel: Int = 256, magnitudeEncoding: MagnitudeEncoding = .uint8, iterations: Int,
        threads: Int = 2, seed: UInt64 = 1
    ) -> QuantizerConfiguration {
        var q = QuantizerConfiguration()
        q.levels = levels
        q.codesPerLevel = codesPerLevel
        q.metric = .cosine
        q.magnitudeEncoding = magnitudeEncoding
        q.iterations = iterations
        q.trainingSampleSize = 0
        q.threads = threads
        q.seed = seed
        return q
    }
}

extension CodebookTrainer {
    /// Trains codebook id 1 on `rows` (count × `dimension` float32, row-major).
    public func train(rows: [Float], dimension: Int) throws -> Codebook {
        try rows.withUnsafeBufferPointer { try train($0, count: rows.count / dimension, dimension: dimension, id: 1).codebook }
    }
}

extension StoreOptions {
    /// A benchmark store: commits without fsync (the figures are CPU and LMDB costs, not disk
    /// flushes; loads of real data keep the durable default) and starts with a 1 GiB map.
    public static var benchmark: StoreOptions {
        var options = StoreOptions()
        options.durable = false
        options.mapSize = 1 << 30
        return options
    }
}
