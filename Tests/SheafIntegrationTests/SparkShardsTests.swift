import Foundation
import SheafCLI
import SheafCodebook
import SheafRandom
import SheafStore
import Testing

/// tools/spark_shards.py in Spark local mode: its shard hash against `sheaf shard` and
/// `Sharding.shard` on a million ids, and the shards it builds against the log, behaviour by
/// behaviour, read back through the Swift API.
@Suite(
    .serialized, .enabled(if: builtProduct("sheaf") != nil, "needs the sheaf binary (`swift build --build-tests` builds it)"),
    .enabled(if: SparkEnvironment.ready, SparkEnvironment.missing))
struct SparkShardsTests {
    static let sheaf = builtProduct("sheaf")
    static let script = repositoryRoot + "/tools/spark_shards.py"

    /// Runs the job with the venv's python (pyspark installed by SparkEnvironment.ready).
    func job(_ arguments: [String]) throws -> ProcessResult {
        let python = try #require(PythonEnvironment.python)
        var env = ProcessInfo.processInfo.environment
        env["PYSPARK_PYTHON"] = python
        return try #require(runProcess(python, [Self.script, "--master", "local[2]"] + arguments, environment: env))
    }

    @Test
    func sparkHashAgreesWithSheafOnAMillionIds() throws {
        let scratch = try TemporaryPath.directory()
        // A million ids over all 64 bits, with the edges of the signed and unsigned ranges.
        var rng = SplitMix64(seed: 1_000_003)
        var ids: [UInt64] = [0, 1, UInt64(Int64.max), UInt64(Int64.max) + 1, UInt64.max, UInt64.max - 1]
        for _ in 0..<1_000_000 { ids.append(rng.next()) }
        let idFile = scratch.path + "/ids.txt"
        try (ids.map(String.init).joined(separator: "\n") + "\n").write(toFile: idFile, atomically: false, encoding: .utf8)
        // 1,000 shards: not a power of two, so the unsigned remainder is exercised in full.
        let count = 1000
        let sparkOut = scratch.path + "/spark.txt"
        let spark = try job(["--hash-ids", idFile, "--shards", "\(count)", "--hash-output", sparkOut])
        try #require(spark.status == 0, "spark_shards --hash-ids failed:\n\(spark.stderr.suffix(3000))")
        let sheaf = try #require(Self.sheaf)
        let cli = try #require(runProcess(sheaf, ["shard", "--count", "\(count)", "--input", idFile]))
        try #require(cli.status == 0, "sheaf shard failed: \(cli.stderr)")

        let sparkLines = try String(contentsOfFile: sparkOut, encoding: .utf8).split(separator: "\n")
        let cliLines = String(decoding: cli.stdout, as: UTF8.self).split(separator: "\n")
        #expect(sparkLines.count == ids.count)
        #expect(sparkLines == cliLines)
        let expected = ids.map { "\($0)\t\(Sharding.shard(of: $0, count: count))" }
        #expect(sparkLines.elementsEqual(expected) { $0 == $1 })
        // The shards are spread (a constant function would agree too).
        #expect(Set(sparkLines.prefix(10_000).map { $0.split(separator: "\t")[1] }).count == count)
    }

    /// A base store (codebook and items, no histories) and a log with duplicates, a relabelled
    /// repeat and ids ≥ 2^63: the log's distinct (user, item, timestamp) behaviours per user.
    func makeInputs(in dir: String) throws -> (base: String, log: String, behaviours: [UInt64: Set<[Int64]>]) {
        let base = dir + "/base"
        var rng = SplitMix64(seed: 77)
        let d = 6
        let cb = try twoLevelCodebook(dimension: d, codesPerLevel: 8, rng: &rng)
        let store = try Store(path: base, dimension: d)
        try store.write { txn in
            try txn.putCodebook(cb)
            try txn.putItems(
                ids: (1...40).map(UInt64.init), codes: (0..<80).map { _ in UInt32(rng.next() % 8) },
                magnitudes: (0..<80).map { _ in rng.float(in: 0...1) })
        }
        var lines = ["user,item,timestamp,label"]
        var behaviours: [UInt64: Set<[Int64]>] = [:]
        let users: [UInt64] = (0..<150).map { i in i % 5 == 0 ? UInt64.max - UInt64(i) : UInt64(i) * 7919 + 3 }
        for row in 0..<2_000 {
            let user = users[Int(rng.next() % UInt64(users.count))]
            let item = Int64(1 + rng.next() % 40), time = Int64(rng.next() % 5_000)
            lines.append("\(user),\(item),\(time),\(row % 5 + 1)")
            behaviours[user, default: []].insert([item, time])
            if row % 97 == 0 { lines.append(lines.last!) }  // an exact repeat
            if row % 89 == 0 { lines.append("\(user),\(item),\(time),0") }  // the same behaviour, another label
        }
        let log = dir + "/log.csv"
        try (lines.joined(separator: "\n") + "\n").write(toFile: log, atomically: false, encoding: .utf8)
        return (base, log, behaviours)
    }

    @Test
    func shardsHoldEveryBehaviourExactlyOnceAndRerunsAddNothing() throws {
        let scratch = try TemporaryPath.directory()
        let (base, log, behaviours) = try makeInputs(in: scratch.path)
        let out = scratch.path + "/shards"
        let shards = 3
        let sheaf = try #require(Self.sheaf)
        let arguments = ["--input", log, "--base-store", base, "--shards", "\(shards)", "--output", out, "--sheaf", sheaf]
        let first = try job(arguments)
        try #require(first.status == 0, "spark_shards failed:\n\(first.stderr.suffix(3000))")
        #expect(String(decoding: first.stdout, as: UTF8.self).contains("check: every behaviour is in exactly one shard"))

        // Read back through the Swift API: every user in its own shard only, with exactly the log's behaviours.
        var seen: [UInt64: Set<[Int64]>] = [:]
        for k in 0..<shards {
            let path = out + String(format: "/shard-%05d-of-%05d", k, shards)
            var options = StoreOptions()
            options.readOnly = true
            let store = try Store(path: path, options: options)
            try store.read { txn in
                #expect(try txn.activeCodebook()?.id == 1)
                #expect(try txn.decodeItems([1, 40]).count == 12)
                try txn.forEachUser { user in
                    #expect(Sharding.shard(of: user, count: shards) == k, "user \(user) in shard \(k)")
                    #expect(seen[user] == nil, "user \(user) in two shards")
                    let h = try #require(try txn.history(user: user))
                    let pairs = (0..<h.count).map { [Int64(h.itemIDs[$0]), h.timestamps[$0]] }
                    #expect(Set(pairs).count == pairs.count, "user \(user) holds a behaviour twice")
                    seen[user] = Set(pairs)
                    return true
                }
            }
        }
        #expect(seen == behaviours)
        let manifest = try #require(
            try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: out + "/shards.json"))) as? [String: Any])
        #expect((manifest["problems"] as? [Any])?.isEmpty == true)
        #expect(manifest["behaviours"] as? Int == behaviours.values.reduce(0) { $0 + $1.count })
        #expect(!FileManager.default.fileExists(atPath: out + "/shard-00000-of-00003.partial"))

        // Re-running is resuming: the same stores, nothing appended. The re-run reads the same log as
        // Parquet with the user as a signed 64-bit column (ids ≥ 2^63 negative), as writers store them.
        let parquet = scratch.path + "/log.parquet"
        let python = try #require(PythonEnvironment.python)
        let convert = try #require(runProcess(python, ["-c", """
            import sys; sys.path.insert(0, sys.argv[1]); import spark_shards as S
            from pyspark.sql import functions as F
            spark = S.spark_session("local[2]")
            df = spark.read.option("header", True).csv(sys.argv[2])
            _, bits = S.user_columns(F.col("user"))
            df.select(bits.alias("user"), F.col("item").cast("long").alias("item"), F.col("timestamp").cast("long").alias("timestamp"),
                      F.col("label").cast("double").alias("label")).write.parquet(sys.argv[3])
            spark.stop()
            """, repositoryRoot + "/tools", log, parquet]))
        try #require(convert.status == 0, "writing Parquet failed:\n\(convert.stderr.suffix(3000))")
        var parquetArguments = arguments
        parquetArguments[1] = parquet
        let second = try job(parquetArguments)
        try #require(second.status == 0, "spark_shards (re-run) failed:\n\(second.stderr.suffix(3000))")
        let rerun = try #require(
            try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: out + "/shards.json"))) as? [String: Any])
        let stores = try #require(rerun["stores"] as? [[String: Any]])
        #expect(stores.count == shards)
        #expect(stores.allSatisfy { $0["appended"] as? Int == 0 && $0["error"] is NSNull })
        #expect(rerun["format"] as? String == "parquet")
        #expect((rerun["problems"] as? [Any])?.isEmpty == true)
    }

    @Test
    func refusedInputsBuildNothing() throws {
        let scratch = try TemporaryPath.directory()
        let (base, _, _) = try makeInputs(in: scratch.path)
        let log = scratch.path + "/bad.csv"
        try "user,item,timestamp,label\n5,1,10,1\n-3x,2,11,1\n18446744073709551616,3,12,1\n".write(toFile: log, atomically: false, encoding: .utf8)
        let out = scratch.path + "/shards"
        let sheaf = try #require(Self.sheaf)
        let bad = try job(["--input", log, "--base-store", base, "--shards", "2", "--output", out, "--sheaf", sheaf])
        #expect(bad.status == 1)
        #expect(bad.stderr.contains("2 row(s) have a user that is not an id 0 … 2^64 − 1"), "\(bad.stderr.suffix(2000))")
        #expect(bad.stderr.contains("Nothing was built."))
        let built = (try? FileManager.default.contentsOfDirectory(atPath: out)) ?? []
        #expect(built.isEmpty, "\(built)")

        // A base store that already holds histories is refused before Spark starts.
        try Store(path: base).write { try $0.appendBehaviors([Behavior(item: 1, timestamp: 1)], user: 9) }
        let refused = try job(["--input", log, "--base-store", base, "--shards", "2", "--output", out, "--sheaf", sheaf])
        #expect(refused.status == 2)
        #expect(refused.stderr.contains("holds 1 behaviours; it must hold only the codebook and item codes"), "\(refused.stderr.suffix(2000))")
    }
}
