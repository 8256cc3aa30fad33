import ArgumentParser
import Foundation
import SheafQuantizer

/// The chunk options shared by `items load` and `behaviors load`: how much one write transaction
/// commits (`--chunk-size`, defaulted per command by `Chunk`) and a hidden pause after each commit
/// (`--chunk-delay-ms`, so tests can interrupt a load between chunks).
struct LoadChunkOptions<Chunk: LoadChunk>: ParsableArguments {
    @Option(help: ArgumentHelp(Chunk.help))
    var chunkSize = Chunk.defaultSize

    @Option(help: .hidden) var chunkDelayMs = 0

    func validate() throws {
        guard chunkSize >= 1 else { throw ValidationError("--chunk-size must be ≥ 1") }
    }

    /// Waits `--chunk-delay-ms` after a committed chunk (no wait by default).
    func pauseAfterChunk() {
        if chunkDelayMs > 0 { usleep(UInt32(chunkDelayMs) * 1000) }
    }
}

/// What one chunk of a load counts: its default `--chunk-size` and the option's help.
protocol LoadChunk {
    static var defaultSize: Int { get }
    static var help: String { get }
}

/// `items load` chunks: embedding rows.
enum ItemRowChunk: LoadChunk {
    static let defaultSize = 16_384
    static let help = "Rows encoded and committed per write transaction."
}

/// `behaviors load` chunks: behaviours, rounded up to whole users.
enum BehaviorChunk: LoadChunk {
    static let defaultSize = 100_000
    static let help = "Behaviours per write transaction (whole users)."
}

/// `--search auto|exhaustive|shortlist`: how encoding (and k-means) scores each level's centroids.
enum SearchArgument: String, ExpressibleByArgument, CaseIterable {
    case auto, exhaustive, shortlist

    /// The search this choice means for a codebook of K codes per level.
    func search(codesPerLevel k: Int, candidates: Int) -> EncodeSearch {
        switch self {
        case .auto: EncodeSearch.automatic(codesPerLevel: k, candidates: candidates)
        case .exhaustive: .exhaustive
        case .shortlist: .int8Shortlist(candidates: candidates)
        }
    }
}
