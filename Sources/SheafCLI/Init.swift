import ArgumentParser
import Foundation
import SheafStore

extension SheafCommand {
    /// `sheaf init STORE --dim D`: creates a store.
    struct Init: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Create a store for D-dimensional item embeddings.")

        @Argument(help: "The store directory to create.")
        var store: String

        @Option(name: .customLong("dim"), help: "Embedding dimension D of every item (1...65536).")
        var dimension: Int

        @Option(help: "Behaviours per history segment (1...65535). Larger: fewer, bigger zstd frames.")
        var segmentCapacity = 128

        @Option(help: "Side-feature floats per behaviour (0...256).")
        var sideFeatures = 0

        @Flag(help: "Succeed when a store with the same dimension already exists.")
        var existOk = false

        func validate() throws {
            guard (1...65_536).contains(dimension) else { throw ValidationError("--dim must be in 1...65536") }
            guard (1...65_535).contains(segmentCapacity) else { throw ValidationError("--segment-capacity must be in 1...65535") }
            guard (0...256).contains(sideFeatures) else { throw ValidationError("--side-features must be in 0...256") }
        }

        func run() throws {
            let dataFile = (store as NSString).appendingPathComponent("data.mdb")
            if FileManager.default.fileExists(atPath: dataFile) {
                var o = StoreOptions()
                o.createIfMissing = false
                let existing = try Store(path: store, options: o)
                guard existOk, existing.dimension == dimension else {
                    throw CLIError(
                        "a store already exists at \(store) (D=\(existing.dimension))"
                            + (existOk ? ", not D=\(dimension)" : "; pass --exist-ok to accept it"))
                }
                say("store \(store) exists (D=\(dimension))")
                return
            }
            var options = StoreOptions()
            options.historySegmentCapacity = segmentCapacity
            options.sideFeatureWidth = sideFeatures
            let s = try Store(path: store, dimension: dimension, options: options)
            say("created store \(s.path) (D=\(s.dimension), \(segmentCapacity) behaviours per segment)")
        }
    }
}
