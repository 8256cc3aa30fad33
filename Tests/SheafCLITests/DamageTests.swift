import Foundation
import SheafFormats
import Testing

@testable import SheafCLI

/// `sheaf verify` and `sheaf stats` on a file whose LMDB structure is damaged: they used to die with
/// SIGSEGV inside the scan; now the scan runs in a child process and the command reports where it stopped.
@Suite struct DamageTests {
    @Test func verifyAndStatsReportACrashedScanInsteadOfDying() throws {
        let s = Scratch()
        let store = s.file("store")
        // 20 items with ids 0x5EAF5EAF5EAF0000 + i: easy to find in the file.
        let base: UInt64 = 0x5EAF_5EAF_5EAF_0000
        try NPYArray.write(floats: clustered(count: 20, dimension: 8, seed: 4), shape: [20, 8], to: s.file("items.npy"))
        try NPYArray.write(ids: (0..<20).map { base + UInt64($0) }, to: s.file("ids.npy"))
        for args in [
            ["init", store, "--dim", "8"], ["codebook", "train", store, "--input", s.file("items.npy"), "--levels", "2", "--codes", "4"],
            ["items", "load", store, "--input", s.file("items.npy"), "--ids", s.file("ids.npy")],
        ] {
            let r = try runBinary(args)
            try #require(r.status == 0, "\(args): \(r.stderr)")
        }
        #expect(try runBinary(["verify", store]).status == 0)

        // Give item 5's LMDB leaf node a data size of 2^31 − 1: LMDB hands out a value running far past the
        // map, and reading it faults. (No record checksum covers a node header.)
        var data = [UInt8](try Data(contentsOf: URL(fileURLWithPath: store + "/data.mdb")))
        let key = withUnsafeBytes(of: (base + 5).bigEndian, Array.init)
        let at = try #require((0...(data.count - 8)).first { data[$0..<($0 + 8)].elementsEqual(key) })
        data.replaceSubrange((at - 8)..<(at - 4), with: [0xFF, 0xFF, 0xFF, 0x7F])
        try Data(data).write(to: URL(fileURLWithPath: store + "/data.mdb"))

        let verify = try runBinary(["verify", store])
        #expect(verify.status == 1)
        #expect(verify.stdout.contains(
            "PROBLEM the scan crashed with signal 11 (Segmentation fault) in table 'items' at key \(base + 5) (after 5 records of that table)"))
        #expect(verify.stdout.contains("FAILED: the store's file is structurally damaged"))
        #expect(!verify.stderr.contains("Program crashed"))
        let json = try runBinary(["verify", store, "--json"])
        #expect(json.status == 1 && json.stdout.contains("\"clean\" : false"))
        let stats = try runBinary(["stats", store])
        #expect(stats.status == 1)
        #expect(stats.stderr.contains("Error: counting crashed with signal 11 (Segmentation fault) in table 'items' at key \(base + 5)"))
    }
}
