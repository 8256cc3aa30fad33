import Foundation
import SheafFormats
import SheafLinearAlgebra
import SheafStore
import Testing

@testable import SheafCLI

/// The built `sheaf` binary, next to the test bundle (`swift build --build-tests` builds it; tools/test does).
func sheafBinary() throws -> String {
    var dir = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
    for _ in 0..<4 {
        let candidate = dir.appendingPathComponent("sheaf").path
        if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
        dir = dir.deletingLastPathComponent()
    }
    let fallback = FileManager.default.currentDirectoryPath + "/.build/debug/sheaf"
    guard FileManager.default.isExecutableFile(atPath: fallback) else {
        throw CLIError("the sheaf binary is not built: run `swift build --build-tests` (tools/test does)")
    }
    return fallback
}

/// A finished run of the binary.
struct Run {
    var status: Int32
    var stdout: String
    var stderr: String
}

/// Runs the binary to completion (in `environment`, or this process's).
func runBinary(_ args: [String], environment: [String: String]? = nil) throws -> Run {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: try sheafBinary())
    p.arguments = args
    if let environment { p.environment = environment }
    let out = Pipe(), err = Pipe()
    p.standardOutput = out
    p.standardError = err
    try p.run()
    let o = out.fileHandleForReading.readDataToEndOfFile()
    let e = err.fileHandleForReading.readDataToEndOfFile()
    p.waitUntilExit()
    return Run(status: p.terminationStatus, stdout: String(decoding: o, as: UTF8.self), stderr: String(decoding: e, as: UTF8.self))
}

/// Starts the binary, waits until `ready()` holds (polling), then kills it with SIGKILL.
/// Returns whether it was killed before finishing.
func startThenKill(_ args: [String], ready: () throws -> Bool) throws -> Bool {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: try sheafBinary())
    p.arguments = args
    p.standardOutput = FileHandle.nullDevice
    p.standardError = FileHandle.nullDevice
    try p.run()
    let deadline = Date().addingTimeInterval(60)
    while p.isRunning, Date() < deadline {
        if try ready() { break }
        usleep(20_000)
    }
    let wasRunning = p.isRunning
    kill(p.processIdentifier, SIGKILL)
    p.waitUntilExit()
    return wasRunning && p.terminationReason == .uncaughtSignal
}

func readOnlyStore(_ path: String) throws -> Store {
    var o = StoreOptions()
    o.readOnly = true
    o.createIfMissing = false
    return try Store(path: path, options: o)
}

@Suite(.serialized) struct EndToEndTests {
    @Test func binaryRunsCommandsAndReportsErrors() throws {
        let s = Scratch()
        let store = s.file("store")
        let created = try runBinary(["init", store, "--dim", "8"])
        #expect(created.status == 0 && created.stdout.contains("created store"))
        let stats = try runBinary(["stats", store, "--json"])
        #expect(stats.status == 0)
        let parsed = try JSONDecoder().decode(SheafCommand.Stats.Output.self, from: Data(stats.stdout.utf8))
        #expect(parsed.statistics.items == 0 && parsed.statistics.dimension == 8)
        let missing = try runBinary(["stats", s.file("nowhere")])
        #expect(missing.status == 1)
        #expect(missing.stderr.contains("Error: no Sheaf store at \(s.file("nowhere"))"))
        #expect(missing.stdout.isEmpty)
        let badFlag = try runBinary(["init", s.file("x"), "--dim", "0"])
        #expect(badFlag.status != 0 && badFlag.stderr.contains("--dim must be in 1...65536"))
    }

    @Test func killedBehaviourLoadResumesWithoutDuplicates() throws {
        let s = Scratch()
        let store = s.file("store")
        #expect(try runBinary(["init", store, "--dim", "8"]).status == 0)
        let rows = behaviourRows(users: 3000, perUser: 8, items: 500, seed: 12)
        try writeBehaviours(rows, format: .csv, to: s.file("b.csv"))
        let args = ["behaviors", "load", store, "--input", s.file("b.csv"), "--chunk-size", "400"]
        // 50 users per chunk, 60 chunks, 40 ms apart: killed once a few chunks are in.
        let killed = try startThenKill(args + ["--chunk-delay-ms", "40"]) {
            guard FileManager.default.fileExists(atPath: store + "/data.mdb") else { return false }
            return try readOnlyStore(store).read { try $0.userCount() } >= 150
        }
        #expect(killed, "the load finished before it could be killed")
        let partial = try readOnlyStore(store).read { try $0.userCount() }
        #expect(partial > 0 && partial < 3000)
        #expect(try runBinary(["verify", store]).status == 0)  // whole chunks only
        // Without a user's OPENBLAS_CORETYPE, whose slow-kernel warning would be on stderr.
        var env = ProcessInfo.processInfo.environment
        env["OPENBLAS_CORETYPE"] = nil
        let resumed = try runBinary(args, environment: env)
        #expect(resumed.status == 0, "\(resumed.stderr)")
        #expect(resumed.stderr.isEmpty)  // stderr is a pipe, not a terminal: no progress
        let stats = try statistics(store)
        #expect(stats.users == 3000)
        #expect(stats.behaviors == Set(rows.map { "\($0.user)/\($0.timestamp)/\($0.item)" }).count)
        let h = try histories(store)
        let sample: [UInt64] = [1, 7 * 1500 + 1, 7 * 2999 + 1]
        for user in sample {
            let expected = rows.filter { $0.user == user }.sorted { $0.timestamp < $1.timestamp }
            #expect(h[user]?.itemIDs == expected.map { $0.item })
        }
        #expect(try runBinary(["verify", store]).status == 0)
    }

    @Test func killedItemLoadResumes() throws {
        let s = Scratch()
        let store = s.file("store")
        let n = 4000
        try NPYArray.write(floats: clustered(count: n, dimension: 16, seed: 3), shape: [n, 16], to: s.file("e.npy"))
        #expect(try runBinary(["init", store, "--dim", "16"]).status == 0)
        #expect(try runBinary(["codebook", "train", store, "--input", s.file("e.npy"), "--codes", "16", "--levels", "2", "--iterations", "4"]).status == 0)
        let args = ["items", "load", store, "--input", s.file("e.npy"), "--chunk-size", "100"]
        let killed = try startThenKill(args + ["--chunk-delay-ms", "40"]) {
            (try readOnlyStore(store).read { try $0.itemCount() }) >= 300
        }
        #expect(killed, "the load finished before it could be killed")
        let partial = try readOnlyStore(store).read { try $0.itemCount() }
        #expect(partial >= 300 && partial < n && partial % 100 == 0)  // whole chunks
        #expect(try runBinary(["verify", store]).status == 0)
        #expect(try runBinary(args).status == 0)
        #expect(try statistics(store).items == n)
        // The resumed store holds exactly what one uninterrupted load writes.
        let clean = s.file("clean")
        #expect(try runBinary(["init", clean, "--dim", "16"]).status == 0)
        #expect(try runBinary(["codebook", "train", clean, "--input", s.file("e.npy"), "--codes", "16", "--levels", "2", "--iterations", "4"]).status == 0)
        #expect(try runBinary(args.map { $0 == store ? clean : $0 }).status == 0)
        #expect(try runBinary(["items", "export", store, "--output", s.file("a.npy")]).status == 0)
        #expect(try runBinary(["items", "export", clean, "--output", s.file("b.npy")]).status == 0)
        #expect(try NPYArray(contentsOf: s.file("a.npy")).floats() == NPYArray(contentsOf: s.file("b.npy")).floats())
    }
}

/// The OpenBLAS core selection in the real `sheaf` binary: re-execution, the self-check, the fallback
/// and a user's own `OPENBLAS_CORETYPE`. The runs fake the detected core (`SHEAF_TEST_BLAS_CORE`) and
/// the CPU features (`SHEAF_TEST_CPU_FEATURES`, only ever to a subset of this CPU's).
@Suite struct CoreSelectionProcessTests {
    /// A machine whose environment sets OPENBLAS_CORETYPE (some do, for kernels that compute wrong
    /// results there) must keep it, so only the user-setting test runs there.
    static let environmentSetsCore = ProcessInfo.processInfo.environment["OPENBLAS_CORETYPE"] != nil
    static let hasAVX2 = CPUFeatures.current.avx2 && CPUFeatures.current.fma

    func doctor(_ extra: [String: String]) throws -> (MachineReport, stderr: String) {
        var env = ProcessInfo.processInfo.environment
        for k in env.keys where k.hasPrefix("SHEAF_") { env[k] = nil }
        env.merge(extra) { _, new in new }
        let run = try runBinary(["doctor", "--json"], environment: env)
        try #require(run.status == 0, "\(run.stderr)")
        struct Output: Decodable { var machine: MachineReport; var selfCheckPassed: Bool }
        let out = try JSONDecoder().decode(Output.self, from: Data(run.stdout.utf8))
        #expect(out.selfCheckPassed)
        return (out.machine, run.stderr)
    }

    @Test(.enabled(if: !environmentSetsCore && hasAVX2, "needs AVX2+FMA and no OPENBLAS_CORETYPE in the environment"))
    func aGenericCoreIsReplacedAfterTheSelfCheck() throws {
        let (m, stderr) = try doctor(["SHEAF_TEST_BLAS_CORE": "Prescott", "SHEAF_TEST_CPU_FEATURES": "avx2,fma"])
        #expect(m.blasCore == "Haswell")
        #expect(m.blasCoreSelection.hasPrefix("Haswell, chosen by Sheaf (OpenBLAS chose the generic Prescott; self-check passed"))
        #expect(stderr.isEmpty)
    }

    @Test(.enabled(if: !environmentSetsCore && hasAVX2, "needs AVX2+FMA and no OPENBLAS_CORETYPE in the environment"))
    func aFailingCoreFallsBackAndSaysSo() throws {
        let (m, stderr) = try doctor([
            "SHEAF_TEST_BLAS_CORE": "Prescott", "SHEAF_TEST_CPU_FEATURES": "avx2,fma", "SHEAF_TEST_BLAS_FAILING_CORES": "Haswell",
        ])
        #expect(m.blasCoreSelection.contains("every faster core failed the self-check: Haswell"))
        #expect(stderr.contains("failed Sheaf's sgemm self-check"))
    }

    @Test(.enabled(if: hasAVX2, "needs AVX2+FMA"))
    func aUsersSettingIsRespectedAndWarnedAbout() throws {
        let (m, stderr) = try doctor(["OPENBLAS_CORETYPE": "Prescott", "SHEAF_TEST_BLAS_CORE": "Prescott"])
        #expect(m.blasCore == "Prescott")
        #expect(m.blasCoreSelection == "Prescott, set by OPENBLAS_CORETYPE")
        #expect(stderr.contains("OPENBLAS_CORETYPE=Prescott makes OpenBLAS run its generic Prescott kernels"))
    }
}
