import ArgumentParser
import Foundation
import SheafCodebook
import SheafFormats
import SheafQuantizer
import SheafRandom
import SheafStore

extension SheafCommand {
    /// `sheaf codebook …`
    struct CodebookCommand: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "codebook", abstract: "Train and list codebooks.", subcommands: [Train.self, List.self])
    }
}

extension SheafCommand.CodebookCommand {
    /// `sheaf codebook train STORE --input FILE`: trains a codebook, stores it and makes it active.
    struct Train: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Train a residual codebook on an embedding file, store it and make it active.",
            discussion: """
                Rows are sampled (--sample, seeded) and read without loading the file whole. Items already \
                loaded keep their codes under the old codebook until they are loaded again.
                """)

        @OptionGroup var target: StoreArguments
        @OptionGroup var input: EmbeddingInput

        @Option(help: "Residual levels L (1...16). More: better reconstruction, more bytes per item.")
        var levels = 3
        @Option(help: "Codes per level K, a power of two (2...65536). Larger: better, slower.")
        var codes = 256
        @Option(help: "cosine (HyMiRec projection with magnitudes) or euclidean (classic RVQ).")
        var metric: MetricArgument = .cosine
        @Option(help: "Magnitude precision for cosine codebooks: 8, 16 or 32 bits.")
        var magnitudeBits = 8
        @Option(help: "Training rows sampled from the file (0 = all).")
        var sample = 100_000
        @Option(help: "Seed of the sample and of k-means initialisation.")
        var seed: UInt64 = 1
        @Option(help: "Encode beam width recorded for loads (1 = greedy).")
        var beam = 1
        @Option(help: "k-means iterations per level.")
        var iterations = 20
        @Option(help: "Balance: no cluster holds more than this × N/K training rows (≥ 1).")
        var balanceTolerance = 1.5
        @Option(help: ArgumentHelp(
            "k-means scoring: shortlist (int8 scores of every centroid, then the best --candidates scored exactly), exhaustive, or auto (shortlist with AVX-512 VNNI and K ≥ 1024).",
            valueName: "auto|exhaustive|shortlist"))
        var search: SearchArgument = .auto
        @Option(help: "Centroids per training point scored exactly by the shortlist search (≥ 2).")
        var candidates = QuantizerConfiguration.trainingShortlist
        @Flag(name: .shortAndLong, help: "Print the time and objective of every k-means iteration on stderr.")
        var verbose = false

        func validate() throws {
            guard [8, 16, 32].contains(magnitudeBits) else { throw ValidationError("--magnitude-bits must be 8, 16 or 32") }
            guard sample >= 0 else { throw ValidationError("--sample must be ≥ 0") }
            guard (2...256).contains(candidates) else { throw ValidationError("--candidates must be in 2...256") }
        }

        var configuration: QuantizerConfiguration {
            var c = QuantizerConfiguration()
            c.levels = levels
            c.codesPerLevel = codes
            c.metric = metric.metric
            c.magnitudeEncoding = magnitudeBits == 8 ? .uint8 : magnitudeBits == 16 ? .float16 : .float32
            c.trainingSampleSize = 0  // the sample is drawn here, while reading
            c.seed = seed
            c.beamWidth = beam
            c.iterations = iterations
            c.balanceTolerance = balanceTolerance
            c.trainingSearch = search.search(codesPerLevel: codes, candidates: candidates)
            return c
        }

        func run() throws {
            let config = configuration
            do { try config.validate() } catch { throw ValidationError(error.description) }
            let store = try target.open()
            let file = try input.open(dimension: store.dimension)
            let n = file.count
            let take = sample == 0 ? n : min(n, sample)
            // Seeded sample of row numbers, ascending (sequential reads).
            var rng = SplitMix64(seed: seed)
            let rows = rng.sortedSample(take, of: n)
            let d = file.dimension
            var data = [Float](repeating: 0, count: take * d)
            let reading = target.progress("reading \(file.path)", total: take)
            try data.withUnsafeMutableBufferPointer { buf in
                var i = 0
                while i < take {
                    // Runs of consecutive rows are read with one call.
                    var j = i + 1
                    while j < take, rows[j] == rows[j - 1] + 1, j - i < 4096 { j += 1 }
                    try file.read(rows: rows[i]..<(rows[j - 1] + 1), into: buf.baseAddress! + i * d)
                    try checkRows(buf.baseAddress! + i * d, rows: Array(rows[i..<j]), dimension: d, path: file.path, metric: nil)
                    reading.advance(by: j - i)
                    i = j
                }
            }
            reading.finish()
            let trainer = CodebookTrainer(configuration: config)
            let verbose = self.verbose
            let (trained, report) = try data.withUnsafeBufferPointer { buf in
                try trainer.train(buf, count: take, dimension: d, progress: verbose ? { note($0) } : nil)
            }
            let codebook = try store.write { txn in
                let c = try trained.withID(try txn.nextCodebookID())
                try txn.putCodebook(c, activate: true)
                return c
            }
            let id = codebook.id
            say("codebook \(id): \(config.metric) L=\(config.levels) K=\(config.codesPerLevel) magnitudes=\(codebook.magnitudeEncoding), \(codebook.bytesPerItem) bytes/item (float32: \(d * 4), \(String(format: "%.1f", Double(d * 4) / Double(codebook.bytesPerItem)))×)")
            say("trained on \(thousands(report.sampledRows - report.skippedZeroRows)) of \(thousands(n)) rows in \(String(format: "%.1f", report.seconds)) s, \(config.effectiveTrainingSearch) scoring (\(report.skippedZeroRows) zero rows skipped)")
            for (l, level) in report.levels.enumerated() {
                say("  level \(l + 1): residual energy \(String(format: "%.4f", level.residualEnergy)), max/mean cluster \(String(format: "%.2f", level.maxOverMeanClusterSize)), \(level.iterations) iterations, \(String(format: "%.1f", level.seconds)) s")
            }
            say("codebook \(id) is active; load items with `sheaf items load \(target.store) --input …`")
        }
    }

    /// `sheaf codebook list STORE`.
    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List the stored codebooks.")
        @OptionGroup var target: StoreArguments

        func run() throws {
            let store = try target.open(readOnly: true)
            let stats = try store.read { try $0.statistics() }
            if stats.codebooks.isEmpty { say("no codebooks; train one with `sheaf codebook train`") }
            for c in stats.codebooks {
                say("\(c.active ? "*" : " ") \(c.id)  \(c.metric) L=\(c.levels) K=\(c.codesPerLevel) magnitude bits=\(c.magnitudeBits)  \(c.bytesPerItem) B/item  \(thousands(c.items)) items")
            }
        }
    }
}

/// `--metric` values.
enum MetricArgument: String, ExpressibleByArgument, CaseIterable {
    case cosine, euclidean
    var metric: Metric { self == .cosine ? .cosine : .euclidean }
}
