import Foundation
import SheafCodebook
import SheafModels
import SheafQuantizer
import SheafRandom
import SheafStore
import Testing

/// The C API (sheaf.h, libSheaf.so built by tools/build-clib) against the Swift API on the same
/// store: a C program (c/read_store.c) reads a history, a batch and items and prints them, and checks
/// the error paths itself.
@Suite struct CAPITests {
    /// The C compiler, when there is one.
    static let compiler: String? = ["/usr/bin/cc", "/usr/bin/gcc", "/usr/bin/clang"].first { FileManager.default.isExecutableFile(atPath: $0) }

    @Test(.enabled(if: compiler != nil, "needs a C compiler (cc) to build the C test program"))
    func cProgramReadsWhatSwiftReads() throws {
        let scratch = TemporaryPath()
        let storePath = scratch.path + "/store"
        // A store: 20 items coded by a random cosine codebook (D = 5), two users.
        var rng = SplitMix64(seed: 31)
        let d = 5
        let cb = try twoLevelCodebook(dimension: d, codesPerLevel: 16, rng: &rng)
        let store = try Store(path: storePath, dimension: d)
        let itemIDs: [UInt64] = (1...20).map(UInt64.init)
        let codes: [UInt32] = (0..<40).map { _ in UInt32(rng.next() % 16) }
        let magnitudes: [Float] = (0..<40).map { _ in rng.float(in: 0...1) }
        var behaviors: [Behavior] = []
        for i in 0..<12 {
            behaviors.append(Behavior(item: UInt64(1 + i * 7 % 20), timestamp: Int64(1_000 + 10 * i), label: Float(i % 5)))
        }
        try store.write { txn in
            try txn.putCodebook(cb)
            try txn.putItems(ids: itemIDs, codes: codes, magnitudes: magnitudes)
            try txn.appendBehaviors(behaviors, user: 7)
            try txn.appendBehaviors([Behavior(item: 3, timestamp: 5)], user: 8)
            // A profile: the histogram of 2-level codes.
            let histogram = CodeHistogram(codes: [1, 4, 1, 4, 9, 2, 1, 15], levels: 2, modelVersion: 77, codebookVersion: 3)
            try txn.putProfile(histogram.profile, user: 7)
        }

        let build = try #require(runProcess("/bin/bash", [repositoryRoot + "/tools/build-clib"]))
        try #require(build.status == 0, "tools/build-clib failed:\n\(build.stderr.suffix(3000))")
        let library = String(decoding: build.stdout, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        let libraryDirectory = (library as NSString).deletingLastPathComponent
        // The library exports exactly the header's functions (exports.map): no internal kernel, no Swift symbol.
        if let readelf = ["/usr/bin/readelf"].first(where: { FileManager.default.isExecutableFile(atPath: $0) }) {
            let symbols = try #require(runProcess(readelf, ["--dyn-syms", "-W", library]))
            let exported = Set(String(decoding: symbols.stdout, as: UTF8.self).split(separator: "\n").compactMap { line -> String? in
                let f = line.split(separator: " ", omittingEmptySubsequences: true)
                // Num: Value Size Type Bind Vis Ndx Name
                guard f.count >= 8, f[4] == "GLOBAL" || f[4] == "WEAK", f[6] != "UND" else { return nil }
                return f[7].split(separator: "@").first.map(String.init)
            })
            let header = try String(contentsOfFile: repositoryRoot + "/Sources/CSheafAPI/include/sheaf.h", encoding: .utf8)
            let declared = Set(header.matches(of: /(sheaf_[a-z0-9_]+)\(/).map { String($0.output.1) })
            #expect(declared.count >= 19)
            // SHEAF_1 is the version node, not a function.
            #expect(exported.subtracting(["SHEAF_1"]) == declared, "exported but not declared: \(exported.subtracting(declared)); declared but not exported: \(declared.subtracting(exported))")
        }
        let program = scratch.path + "/read_store"
        let compile = try #require(runProcess(Self.compiler!, [
            "-Wall", "-Werror", "-I", repositoryRoot + "/Sources/CSheafAPI/include", repositoryRoot + "/Tests/SheafIntegrationTests/c/read_store.c",
            "-L", libraryDirectory, "-lSheaf", "-Wl,-rpath," + libraryDirectory, "-o", program,
        ]))
        try #require(compile.status == 0, "cc failed:\n\(compile.stderr)")

        // The statistics before the program writes (it prints its reading of them before its writes).
        let st = try store.read { try $0.statistics() }
        let run = try #require(runProcess(program, [storePath, "7", "3", "5"]))
        let output = String(decoding: run.stdout, as: UTF8.self)
        #expect(run.status == 0, "read_store:\n\(output)\n\(run.stderr)")
        let lines = output.split(separator: "\n").map(String.init)
        #expect(!lines.contains { $0.hasPrefix("FAIL") }, "\(lines.filter { $0.hasPrefix("FAIL") })")
        #expect(lines.filter { $0.hasPrefix("ok ") }.count == 56)
        #expect(lines.contains("failures 0"))
        #expect(lines.contains("dimension 5"))
        #expect(lines.contains("version 0.19.0 api 1 format \(StoreMetadata.schemaVersion)"))

        // What it read is what the Swift API reads, exactly (%.9g round-trips a float).
        func values(_ prefix: String) -> [String] { lines.filter { $0.hasPrefix(prefix + " ") }.map { String($0.dropFirst(prefix.count + 1)) } }
        let (history, embeddings) = try #require(try store.read { txn -> (History, [Float])? in
            var rows: [Float] = []
            return try txn.decodeHistory(user: 7, into: &rows).map { ($0.0, rows) }
        })
        #expect(values("history") == (0..<history.count).map { "\(history.itemIDs[$0]) \(history.timestamps[$0]) \(String(format: "%.9g", history.labels[$0]))" })
        #expect(values("embedding").compactMap(Float.init) == embeddings)
        #expect(values("items").compactMap(Float.init) == (try store.read { try $0.decodeItems([3, 5]) }))
        #expect(values("statistics") == ["\(st.items) \(st.users) \(st.behaviors) \(st.segments) \(st.profiles) \(st.codebooks.count)"])
        // The profile, and the projected history against the Swift projected decode with the same W and b.
        let histogram = try CodeHistogram(try #require(try store.read { try $0.profile(user: 7) }), user: 7)
        #expect(values("profile-meta") == ["77 \(histogram.behaviors)"])
        #expect(values("profile") == histogram.entries.map { "\($0.level) \($0.code) \($0.count)" })
        let projection = try LinearProjection(
            weight: (0..<(d * 3)).map { Float($0 % 7) / 4 - 0.75 }, inputDimension: d, outputDimension: 3, bias: [0.5, -0.5, 0.25])
        var projected: [Float] = []
        _ = try store.read { try $0.decodeHistory(user: 7, through: projection, into: &projected) }
        #expect(values("projected").compactMap(Float.init) == projected)

        // What it wrote: user 424242's behaviours in time order, a repeat dropped; items 900 and 901
        // coded as Swift codes the same rows (put here under 910 and 911 and decoded alike).
        let written = try #require(try store.read { try $0.history(user: 424242) })
        #expect(written.itemIDs == [5, 7, 3] && written.timestamps == [100, 200, 300] && written.labels == [2.5, 0.5, 1.5])
        #expect(values("appended") == ["5 100 2.5", "7 200 0.5", "3 300 1.5"])
        let rows = (0..<(2 * d)).map { Float($0 % 5) - 1.5 }
        let (swiftCodes, swiftMagnitudes) = try ResidualEncoder(codebook: cb, threads: 1).encode(rows, count: 2)
        try store.write { try $0.putItems(ids: [910, 911], codes: swiftCodes, magnitudes: swiftMagnitudes) }
        let put = values("put").compactMap(Float.init)
        #expect(put.count == 2 * d)
        #expect(put == (try store.read { try $0.decodeItems([910, 911]) }))
        #expect(put == (try store.read { try $0.decodeItems([900, 901]) }))
        #expect(try store.read { try $0.containsItem(903) } == false)
    }

    /// The Python package (tools/python/sheaf, ctypes over libSheaf.so) under pytest, on a store made
    /// here, against what the Swift API reads from it (written as JSON for the tests).
    @Test(.enabled(if: PythonEnvironment.canImport("numpy", "pytest"), PythonEnvironment.missing("numpy", "pytest")))
    func pythonPackageReadsWhatSwiftReads() throws {
        let scratch = TemporaryPath()
        let storePath = scratch.path + "/store"
        var rng = SplitMix64(seed: 32)
        let d = 7
        let cb = try Codebook(
            id: 1, dimension: d, levels: 3, codesPerLevel: 16, metric: .cosine, magnitudeEncoding: .float16,
            centroids: (0..<(3 * 16 * d)).map { _ in rng.float(in: -1...1) })
        let store = try Store(path: storePath, dimension: d)
        let codes: [UInt32] = (0..<(30 * 3)).map { _ in UInt32(rng.next() % 16) }
        let magnitudes: [Float] = (0..<(30 * 3)).map { _ in rng.float(in: 0...1) }
        var behaviors: [Behavior] = []
        for i in 0..<40 { behaviors.append(Behavior(item: UInt64(1 + i * 11 % 30), timestamp: Int64(100 * i), label: Float(i % 3) / 2)) }
        try store.write { txn in
            try txn.putCodebook(cb)
            try txn.putItems(ids: (1...30).map(UInt64.init), codes: codes, magnitudes: magnitudes)
            try txn.appendBehaviors(behaviors, user: 11)
            try txn.appendBehaviors([Behavior(item: 2, timestamp: 1), Behavior(item: 4, timestamp: 2)], user: 12)
            try txn.putProfile(CodeHistogram(codes: [3, 1, 3, 2, 0, 1], levels: 3, modelVersion: 5, codebookVersion: 1).profile, user: 11)
        }
        let histogram = try CodeHistogram(try #require(try store.read { try $0.profile(user: 11) }), user: 11)
        let projection = try LinearProjection(
            weight: (0..<(d * 2)).map { Float($0 % 5) / 4 - 0.5 }, inputDimension: d, outputDimension: 2, bias: [0.25, -0.75])
        var projected: [Float] = []
        _ = try store.read { try $0.decodeHistory(user: 11, through: projection, into: &projected) }
        let (history, rows) = try #require(try store.read { txn -> (History, [Float])? in
            var rows: [Float] = []
            return try txn.decodeHistory(user: 11, into: &rows).map { ($0.0, rows) }
        })
        let itemRows = try store.read { try $0.decodeItems([5, 9, 30]) }
        let st = try store.read { try $0.statistics() }
        let expected: [String: Any] = [
            "format": StoreMetadata.schemaVersion, "dimension": d, "user": 11, "other_user": 12, "other_length": 2,
            "items": history.itemIDs, "timestamps": history.timestamps, "labels": history.labels.map(Double.init),
            "embeddings": rows.map(Double.init), "item_ids": [5, 9, 30], "item_embeddings": itemRows.map(Double.init),
            "profile_version": 5, "profile_behaviours": histogram.behaviors,
            "stats": [
                "dimension": st.dimension, "items": st.items, "users": st.users, "behaviours": st.behaviors, "segments": st.segments,
                "history_bytes": st.historyBytes, "profiles": st.profiles, "codebooks": st.codebooks.count,
            ],
            "profile": histogram.entries.map { [$0.level, $0.code, $0.count] },
            "projection_weight": projection.weight.map(Double.init), "projection_bias": [0.25, -0.75], "projected": projected.map(Double.init),
        ]
        let expectedPath = scratch.path + "/expected.json"
        try JSONSerialization.data(withJSONObject: expected).write(to: URL(fileURLWithPath: expectedPath))

        let build = try #require(runProcess("/bin/bash", [repositoryRoot + "/tools/build-clib"]))
        try #require(build.status == 0, "tools/build-clib failed:\n\(build.stderr.suffix(3000))")
        var env = ProcessInfo.processInfo.environment
        env["SHEAF_LIBRARY"] = String(decoding: build.stdout, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        env["SHEAF_TEST_STORE"] = storePath
        env["SHEAF_TEST_EXPECTED"] = expectedPath
        env["PYTHONPATH"] = repositoryRoot + "/tools/python"
        let run = try #require(runProcess(
            PythonEnvironment.python!, ["-m", "pytest", "-q", "-p", "no:cacheprovider", repositoryRoot + "/tools/python/tests"], environment: env))
        let output = String(decoding: run.stdout, as: UTF8.self)
        #expect(run.status == 0, "pytest:\n\(output)\n\(run.stderr)")
        #expect(output.contains("14 passed"), "\(output)")
    }
}
