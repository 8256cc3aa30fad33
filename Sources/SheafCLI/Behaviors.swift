import ArgumentParser
import Foundation
import SheafFormats
import SheafRandom
import SheafStore

extension SheafCommand {
    /// `sheaf behaviors …`
    struct BehaviorsCommand: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "behaviors", abstract: "Load user behaviours.", subcommands: [Load.self])
    }
}

/// Which users a shard holds: user u belongs to shard `Sharding.shard(of: u, count: n)`.
///
/// The hash is SplitMix64's finaliser (`z = (u ^ (u >> 30)) * 0xBF58476D1CE4E5B9;
/// z = (z ^ (z >> 27)) * 0x94D049BB133111EB; z ^= z >> 31`, all mod 2^64), then `z mod n`, so any
/// engine can compute the same partition.
public enum Sharding {
    /// The shard (0..<count) of `user`.
    public static func shard(of user: UInt64, count: Int) -> Int {
        Int(SplitMix64.mix(user) % UInt64(count))
    }
}

/// `--shard k/n`.
struct ShardArgument: ExpressibleByArgument, Equatable {
    var index: Int
    var count: Int

    init?(argument: String) {
        let parts = argument.split(separator: "/")
        guard parts.count == 2, let k = Int(parts[0]), let n = Int(parts[1]), n >= 1, (0..<n).contains(k) else { return nil }
        index = k
        count = n
    }
}

extension SheafCommand {
    /// `sheaf shard --count N [USER…] [--input FILE]`: which shard holds each user.
    struct Shard: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Print the shard of each user id, as `behaviors load --shard k/N` partitions them.",
            discussion: """
                Prints one `user<TAB>shard` line per id, in input order. The hash is SplitMix64's finaliser of \
                the id, mod N (README, "Shards"); tools/spark_shards.py computes the same in Spark. Ids are \
                decimal, 0 … 2^64 − 1, from the arguments or --input (one per line; blank lines and # comments \
                skipped; - reads standard input).
                """)

        @Option(help: "The number of shards N (≥ 1).")
        var count: Int

        @Option(name: .shortAndLong, help: "A file of user ids, one per line (- for standard input).")
        var input: String?

        @Argument(help: "User ids.")
        var users: [String] = []

        func validate() throws {
            guard count >= 1 else { throw ValidationError("--count must be ≥ 1") }
            guard input != nil || !users.isEmpty else { throw ValidationError("give user ids, or --input FILE") }
        }

        func run() throws {
            var out = ""
            out.reserveCapacity(4096)
            func emit(_ text: Substring, _ place: @autoclosure () -> String) throws {
                guard let user = UInt64(text) else {
                    throw CLIError("\(place()): \"\(text)\" is not a user id (a decimal integer 0 … 18446744073709551615)")
                }
                out += "\(user)\t\(Sharding.shard(of: user, count: count))\n"
                if out.utf8.count >= 1 << 16 {
                    FileHandle.standardOutput.write(Data(out.utf8))
                    out.removeAll(keepingCapacity: true)
                }
            }
            for u in users { try emit(Substring(u), "argument") }
            if let input {
                let data: Data
                if input == "-" {
                    data = FileHandle.standardInput.readDataToEndOfFile()
                } else {
                    guard let d = FileManager.default.contents(atPath: input) else { throw CLIError("cannot read \(input)") }
                    data = d
                }
                var number = 0
                for line in String(decoding: data, as: UTF8.self).split(separator: "\n", omittingEmptySubsequences: false) {
                    number += 1
                    let t = line.trimmingCharacters(in: .whitespacesAndNewlines)
                    if t.isEmpty || t.hasPrefix("#") { continue }
                    try emit(Substring(t), "\(input):\(number)")
                }
            }
            FileHandle.standardOutput.write(Data(out.utf8))
        }
    }
}

extension BehaviorFormat: ExpressibleByArgument {}

extension SheafCommand.BehaviorsCommand {
    /// `sheaf behaviors load STORE --input FILE`.
    struct Load: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Append behaviours from a file to users' histories.",
            discussion: """
                The file is read and checked whole before anything is written; each user's behaviours are then \
                sorted by time and appended, whole users per write transaction. Appends are idempotent per \
                (user, timestamp, item): a behaviour already stored is skipped, so an interrupted load is finished \
                by re-running the same command, and an overlapping file adds only what is new. A late behaviour \
                (older than the user's latest stored one) is merged into place, rewriting that user's segments \
                from the one it falls in; two loads of the same users end with the same store in either order. \
                --max-lateness bounds how far back a load may reach (0 refuses late behaviours). Behaviours of \
                items the store has no code for are loaded and counted (their embeddings decode as missing until \
                the items are loaded); --strict-items refuses them.
                Memory: the file (or the shard) is held in memory, about 75 bytes per behaviour.
                """)

        @OptionGroup var target: StoreArguments

        @Option(name: .shortAndLong, help: "The behaviour file.")
        var input: String

        @Option(help: "csv, tsv (with a header), movielens (ratings.dat, `::`), recbole (.inter). Default: from the file name.")
        var format: BehaviorFormat?

        @Option(help: "Header names of the user,item,timestamp[,label[,action]] columns (csv, tsv, recbole).")
        var columns: String?

        @Option(help: "Load only users of shard k of n (k/n, 0 ≤ k < n), by a documented hash of the user id.")
        var shard: ShardArgument?

        @Option(help: ArgumentHelp(
            "How far before a user's latest stored behaviour a new one may lie, in the file's timestamp unit; older ones are refused and nothing is written. Default: merge late behaviours however old; 0: refuse any.",
            valueName: "units"))
        var maxLateness: Int64?

        @Flag(help: "Refuse the file (writing nothing) when a behaviour names an item the store has no code for.")
        var strictItems = false

        @OptionGroup var chunks: LoadChunkOptions<BehaviorChunk>

        func validate() throws {
            if let maxLateness, maxLateness < 0 { throw ValidationError("--max-lateness must be ≥ 0") }
        }

        func run() throws {
            let store = try target.open()
            guard store.sideFeatureWidth == 0 else {
                throw CLIError("this store keeps \(store.sideFeatureWidth) side features per behaviour; the loader does not read side features yet")
            }
            guard let format = format ?? BehaviorFormat.guess(path: input) else {
                throw CLIError("cannot tell the format of \(input) from its name; pass --format csv|tsv|movielens|recbole")
            }
            let names = columns.map { $0.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) } }
            if let names, !(3...5).contains(names.count) {
                throw ValidationError("--columns names 3 to 5 columns: user,item,timestamp[,label[,action]]")
            }
            let reader = try BehaviorFileReader(path: input, format: format, columns: names)

            // 1. Read and group by user (only this shard's users).
            struct Pending {
                var behaviors: [Behavior] = []
                var lines: [Int] = []
            }
            var users: [UInt64: Pending] = [:]
            var rows = 0
            var otherShards = 0
            let reading = target.progress("reading \(input)", total: nil)
            try reader.forEach { record, line in
                rows += 1
                if let shard, Sharding.shard(of: record.user, count: shard.count) != shard.index {
                    otherShards += 1
                } else {
                    users[record.user, default: Pending()].behaviors.append(
                        Behavior(item: record.item, timestamp: record.timestamp, action: record.action, label: record.label))
                    users[record.user]!.lines.append(line)
                }
                if rows & 0xFFF == 0 { reading.advance(by: 0x1000) }
                return true
            }
            reading.finish()
            let order = users.keys.sorted()

            // 2. Check every user against the store before writing anything, and find the items it has no code for.
            var unknown = Set<UInt64>()
            var unknownBehaviours = 0
            try store.read { txn in
                var known: [UInt64: Bool] = [:]
                for user in order {
                    let p = users[user]!
                    do { _ = try txn.newBehaviors(p.behaviors, user: user, maxLateness: maxLateness) } catch StoreError.tooLate(let u, let t, let latest, let m) {
                        let line = p.lines[p.behaviors.firstIndex { $0.timestamp == t } ?? 0]
                        let gap = latest.subtractingReportingOverflow(t)
                        throw CLIError(
                            "\(input):\(line): user \(u): a behaviour at \(t) is older than the latest stored one (\(latest)) by "
                                + (gap.overflow ? "more than 2^63" : thousands(Int(gap.partialValue)))
                                + ", more than --max-lateness \(m) allows. Nothing was written.")
                    }
                    for b in p.behaviors {
                        let has: Bool
                        if let k = known[b.item] { has = k } else {
                            has = try txn.containsItem(b.item)
                            known[b.item] = has
                        }
                        if !has {
                            unknown.insert(b.item)
                            unknownBehaviours += 1
                        }
                    }
                }
            }
            let unknownText = unknown.isEmpty ? "" :
                "\(thousands(unknownBehaviours)) behaviour(s) name \(thousands(unknown.count)) item(s) the store has no code for (first: "
                + unknown.sorted().prefix(5).map(String.init).joined(separator: ", ") + (unknown.count > 5 ? ", …" : "") + ")"
            if strictItems, !unknown.isEmpty {
                throw CLIError("\(input): \(unknownText); --strict-items refuses them. Nothing was written.")
            }

            // 3. Append, whole users per transaction.
            let writing = target.progress("appending", total: order.count, unit: "users")
            var appended = 0
            var doneUsers = 0
            var start = 0
            while start < order.count {
                var end = start
                var size = 0
                while end < order.count, size < chunks.chunkSize || end == start {
                    size += users[order[end]]!.behaviors.count
                    end += 1
                }
                do {
                    appended += try store.write { txn in
                        var n = 0
                        for user in order[start..<end] {
                            n += try txn.appendNewBehaviors(users[user]!.behaviors, user: user, maxLateness: maxLateness)
                        }
                        return n
                    }
                } catch StoreError.readOnly {
                    throw StoreError.readOnly  // nothing was written: no "re-run" advice
                } catch {
                    throw CLIError(
                        "\(error)\nthe histories of \(thousands(doneUsers)) of \(thousands(order.count)) users were stored before this failure; "
                            + "re-run the same command to finish (behaviours already stored are skipped)")
                }
                doneUsers += end - start
                writing.advance(by: end - start)
                start = end
                chunks.pauseAfterChunk()
            }
            writing.finish()
            let loaded = rows - otherShards
            say("read \(thousands(rows)) behaviours from \(input)"
                + (shard.map { " (shard \($0.index)/\($0.count): \(thousands(loaded)) kept, \(thousands(otherShards)) in other shards)" } ?? ""))
            say("appended \(thousands(appended)) behaviours for \(thousands(order.count)) users; \(thousands(loaded - appended)) were already stored or repeated")
            if !unknown.isEmpty {
                say("warning: \(unknownText): loaded; they decode as missing until the items are loaded (--strict-items refuses such files)")
            }
        }
    }
}
