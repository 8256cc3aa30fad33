import Foundation
import SheafFuzzTargets
import SheafRandom
import Testing

/// Every fuzz target on its committed corpus (real files, all accepted) and on fixed-seed mutations of
/// it (bit flips, byte sets, truncations, insertions, duplicated spans): none may trap. libFuzzer runs of
/// the same targets are `tools/fuzz`.
@Suite struct FuzzTargetTests {
    static let corpus = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("FuzzCorpus").path

    static func seeds(_ target: String) throws -> [(String, [UInt8])] {
        let dir = corpus + "/" + target
        return try FileManager.default.contentsOfDirectory(atPath: dir).sorted().map {
            ($0, [UInt8](try Data(contentsOf: URL(fileURLWithPath: dir + "/" + $0))))
        }
    }

    /// One random edit of `input`.
    static func mutate(_ input: [UInt8], _ rng: inout SplitMix64) -> [UInt8] {
        var b = input
        func position() -> Int { b.isEmpty ? 0 : Int(rng.next() % UInt64(b.count)) }
        switch rng.next() % 6 {
        case 0 where !b.isEmpty: b[position()] ^= 1 << UInt8(rng.next() % 8)
        case 1 where !b.isEmpty: b[position()] = [0, 0xFF, 0x7F, 0x80, 0x0A, 0x2C, 0x09, 0x3A][Int(rng.next() % 8)]
        case 2: b.removeLast(min(b.count, Int(rng.next() % UInt64(b.count / 2 + 2))))
        case 3: b.insert(contentsOf: (0..<(1 + Int(rng.next() % 8))).map { _ in UInt8(truncatingIfNeeded: rng.next()) }, at: position())
        case 4 where b.count > 4:
            let start = position()
            let end = min(b.count, start + 1 + Int(rng.next() % 16))
            b.insert(contentsOf: b[start..<end], at: position())
        default: if !b.isEmpty { b.remove(at: position()) }
        }
        return b
    }

    @Test(arguments: FuzzTargets.names)
    func survivesItsCorpusAndMutations(target: String) throws {
        let seeds = try Self.seeds(target)
        try #require(!seeds.isEmpty, "no corpus for \(target) in \(Self.corpus)")
        for (name, bytes) in seeds {
            #expect(bytes.withUnsafeBytes { FuzzTargets.run(target, $0) }, "\(target)/\(name) is a real file and must be accepted")
        }
        var rng = SplitMix64(seed: 2026)
        var rejected = 0
        let rounds = 300
        for (_, seed) in seeds {
            var input = seed
            for i in 0..<rounds {
                input = Self.mutate(i % 8 == 0 ? seed : input, &rng)  // chains of edits, restarting now and then
                if !input.withUnsafeBytes({ FuzzTargets.run(target, $0) }) { rejected += 1 }
            }
        }
        if target == "wordpiece" {
            // Every text is valid input to the tokenizer: every encoding must be well-formed.
            #expect(rejected == 0)
        } else {
            // The mutations reach the decoders' checks (a run where nothing is rejected tests nothing).
            #expect(rejected > 0)
        }
    }
}
