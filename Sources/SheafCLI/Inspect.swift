import ArgumentParser
import Foundation
import SheafStore

extension SheafCommand {
    /// `sheaf history STORE --user U`.
    struct HistoryCommand: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "history", abstract: "Print a user's history: times, items, labels and titles.")

        @OptionGroup var target: StoreArguments

        @Option(help: "The user id.")
        var user: UInt64

        @Option(help: "Only the most recent N behaviours.")
        var last: Int?

        @Flag(help: "Print JSON.")
        var json = false

        func validate() throws {
            if let last, last < 0 { throw ValidationError("--last must be ≥ 0") }
        }

        struct Row: Codable {
            var timestamp: Int64
            var time: String
            var item: UInt64
            var label: Float
            var action: UInt16
            var title: String?
        }
        struct Output: Codable {
            var user: UInt64
            var count: Int
            var behaviors: [Row]
        }

        func run() throws {
            let store = try target.open(readOnly: true)
            let out: Output = try store.read { txn in
                let total = try txn.historyCount(user: user)
                guard total > 0, let h = try txn.history(user: user, last.map { .last($0) } ?? .all) else {
                    throw CLIError("user \(user) has no history in \(target.store)")
                }
                let iso = ISO8601DateFormatter()
                iso.timeZone = TimeZone(identifier: "UTC")
                let rows = try (0..<h.count).map { i in
                    Row(
                        timestamp: h.timestamps[i], time: iso.string(from: Date(timeIntervalSince1970: Double(h.timestamps[i]))),
                        item: h.itemIDs[i], label: h.labels[i], action: h.actions[i], title: try txn.title(item: h.itemIDs[i]))
                }
                return Output(user: user, count: total, behaviors: rows)
            }
            if json { return say(try jsonText(out)) }
            say("user \(user): \(thousands(out.count)) behaviours" + (out.behaviors.count < out.count ? ", the last \(out.behaviors.count) shown" : ""))
            say("time (UTC)            item      label  action  title")
            for r in out.behaviors {
                let label = r.label == r.label.rounded() ? String(Int(r.label)) : String(format: "%.3g", r.label)
                say(r.time.padding(toLength: 22, withPad: " ", startingAt: 0)
                    + String(r.item).padding(toLength: 10, withPad: " ", startingAt: 0)
                    + label.padding(toLength: 7, withPad: " ", startingAt: 0)
                    + String(r.action).padding(toLength: 8, withPad: " ", startingAt: 0)
                    + (r.title ?? ""))
            }
        }
    }

    /// `sheaf stats STORE`.
    struct Stats: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Print counts, codebooks, bytes per item and per history, and the size on disk.")

        @OptionGroup var target: StoreArguments

        @Flag(help: "Print JSON.")
        var json = false

        @Flag(help: .hidden) var inProcess = false

        /// The JSON form: the raw counts plus the derived ratios.
        struct Output: Codable {
            var path: String
            var statistics: StoreStatistics
            /// Packed bytes per item under the active codebook (0 without one).
            var bytesPerItem: Int
            /// float32 row bytes ÷ bytes per item.
            var compressionRatio: Double
            var averageHistoryBehaviors: Double
            var averageHistoryBytes: Double
            /// What a ranking request reads for an average full history: its stored segments (codes inline).
            var averageFullHistoryFetchBytes: Double
            /// The same history as raw float32 rows (behaviours × D × 4).
            var averageFullHistoryFloat32Bytes: Double
            var fetchRatioAgainstFloat32: Double
            /// Size of data.mdb on disk.
            var onDiskBytes: Int
        }

        func run() throws {
            // The scan runs in a child process: a structurally damaged file can crash LMDB.
            if !inProcess, !CommandOutput.current.isCapturing {
                try runInChildProcess { signal, position in
                    note("Error: counting crashed with \(signalName(signal)) \(crashPlace(position)): the file's own structure "
                        + "(an LMDB page header, node size or pointer, which no record checksum covers) is damaged there. "
                        + "Run `sheaf verify \(target.store)`, and restore the store from a copy.")
                }
            }
            let store = try target.open(readOnly: true)
            let position = inheritedScanPosition()
            let s = try store.read { try $0.statistics(visiting: position.map { p in { p.reached($0, $1) } }) }
            let bpi = s.codebooks.first { $0.active }?.bytesPerItem ?? 0
            let attrs = try? FileManager.default.attributesOfItem(atPath: (target.store as NSString).appendingPathComponent("data.mdb"))
            let users = Double(max(s.users, 1))
            let avgBehaviors = Double(s.behaviors) / users
            let avgBytes = Double(s.historyBytes) / users
            let f32 = avgBehaviors * Double(s.float32BytesPerItem)
            let out = Output(
                path: target.store, statistics: s, bytesPerItem: bpi,
                compressionRatio: bpi > 0 ? Double(s.float32BytesPerItem) / Double(bpi) : 0,
                averageHistoryBehaviors: avgBehaviors, averageHistoryBytes: avgBytes, averageFullHistoryFetchBytes: avgBytes,
                averageFullHistoryFloat32Bytes: f32, fetchRatioAgainstFloat32: avgBytes > 0 ? f32 / avgBytes : 0,
                onDiskBytes: (attrs?[.size] as? NSNumber)?.intValue ?? 0)
            if json { return say(try jsonText(out)) }
            func f(_ x: Double, _ digits: Int = 1) -> String { String(format: "%.\(digits)f", x) }
            say("store \(target.store): D=\(s.dimension), \(bytes(out.onDiskBytes)) on disk")
            say("items        \(thousands(s.items)) (\(thousands(s.titles)) with titles)")
            say("users        \(thousands(s.users))")
            say("behaviours   \(thousands(s.behaviors)) in \(thousands(s.segments)) segments")
            say("profiles     \(thousands(s.profiles))" + (s.profiles > 0 ? ", \(bytes(s.profileBytes)) (\(f(Double(s.profileBytes) / Double(s.profiles))) B per profile, against \(f(avgBytes)) B per stored history)" : ""))
            if s.codebooks.isEmpty { say("codebooks    none") }
            for c in s.codebooks {
                say("codebook \(c.id)\(c.active ? " (active)" : "")  \(c.metric) L=\(c.levels) K=\(c.codesPerLevel) magnitudes \(c.magnitudeBits) bits: \(c.bytesPerItem) B/item, \(thousands(c.items)) items")
            }
            if bpi > 0 {
                say("bytes/item   \(bpi) (float32 row: \(s.float32BytesPerItem) B, \(f(out.compressionRatio))× smaller)")
            }
            if s.users > 0 {
                say("history      average \(f(avgBehaviors)) behaviours, \(bytes(Int(avgBytes))) stored (\(f(avgBytes / max(avgBehaviors, 1e-9), 2)) B/behaviour); longest \(thousands(s.maxHistoryBehaviors)) behaviours, largest \(bytes(s.maxHistoryBytes))")
                say("full-history fetch  \(bytes(Int(avgBytes))) vs \(bytes(Int(f32))) as float32 rows: \(f(out.fetchRatioAgainstFloat32))× fewer bytes")
            }
        }
    }

    /// `sheaf verify STORE`.
    struct Verify: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Check every record's version byte and checksum, item codebooks, and that every history segment decodes.",
            discussion: "Exits with status 1, listing each problem (table, key, reason), when anything is wrong.")

        @OptionGroup var target: StoreArguments

        @Option(help: "Problems listed at most (all are counted).")
        var limit = 100

        @Flag(help: .hidden) var inProcess = false

        @Flag(help: "Print JSON.")
        var json = false

        struct Output: Codable {
            var clean: Bool
            var checked: [String: Int]
            var problemCount: Int
            var problems: [String]
        }

        func run() throws {
            // The scan runs in a child process: a structurally damaged file can crash LMDB.
            if !inProcess, !CommandOutput.current.isCapturing {
                try runInChildProcess { signal, position in
                    if json {
                        let problem = "the scan crashed with \(signalName(signal)) \(crashPlace(position))"
                        let out = Output(clean: false, checked: [:], problemCount: 1, problems: [problem])
                        say((try? jsonText(out)) ?? "{}")
                        return
                    }
                    say("PROBLEM the scan crashed with \(signalName(signal)) \(crashPlace(position)): the file's own structure "
                        + "(an LMDB page header, node size or pointer, which no record checksum covers) is damaged there")
                    say("FAILED: the store's file is structurally damaged; restore it from a copy (records before that point "
                        + "can still be read, e.g. with `sheaf items export` or `sheaf history`)")
                }
            }
            let store = try target.open(readOnly: true)
            let position = inheritedScanPosition()
            let progress = target.progress("verifying", total: nil, unit: "records")
            var current = ""
            var last = 0
            let report = try store.read { txn in
                try txn.verify(problemLimit: limit, progress: { table, n in
                    if table != current {
                        current = table
                        last = 0
                    }
                    progress.advance(by: n - last)
                    last = n
                }, visiting: position.map { p in { p.reached($0, $1) } })
            }
            progress.finish()
            let out = Output(
                clean: report.isClean, checked: report.checked, problemCount: report.problemCount,
                problems: report.problems.map(\.description))
            if json {
                say(try jsonText(out))
            } else {
                let tables = ["meta", "codebooks", "items", "histories", "profiles", "titles"]
                say("checked " + tables.map { "\($0) \(thousands(report.checked[$0] ?? 0))" }.joined(separator: ", "))
                for p in report.problems { say("PROBLEM \(p)") }
                if report.problemCount > report.problems.count {
                    say("… and \(thousands(report.problemCount - report.problems.count)) more problems")
                }
                say(report.isClean ? "OK: no problems found" : "FAILED: \(thousands(report.problemCount)) problem(s)")
            }
            if !report.isClean { throw ExitCode(1) }
        }
    }
}

/// Bytes as "812 B", "3.4 KiB", "1.2 MiB", "2.0 GiB".
func bytes(_ n: Int) -> String {
    let units = ["B", "KiB", "MiB", "GiB", "TiB"]
    var v = Double(n)
    var u = 0
    while v >= 1024, u < units.count - 1 {
        v /= 1024
        u += 1
    }
    return u == 0 ? "\(n) B" : String(format: "%.1f %@", v, units[u])
}
