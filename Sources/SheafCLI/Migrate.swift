import ArgumentParser
import Foundation
import SheafStore

extension SheafCommand {
    /// `sheaf migrate STORE`.
    struct Migrate: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Upgrade a store written by an older Sheaf to this build's schema, in place.",
            discussion: """
                Schema 3 ends every record with a CRC-32C of its key and value, so that `sheaf verify` detects \
                any flipped bit; stores of schema 1 and 2 are refused until migrated. The old store is verified \
                first (damage is refused: a fresh checksum would hide it), then every record is rewritten with \
                its checksum in one write transaction, which commits whole or not at all; the result is verified \
                again. Stop the store's readers and writers first. A store already current is left alone.
                """)

        @OptionGroup var target: StoreArguments

        func run() throws {
            let progress = target.progress("migrating", total: nil, unit: "records")
            var table = ""
            var last = 0
            let report: MigrationReport
            do {
                report = try Store.migrate(path: target.store) { name, done, _ in
                    if name != table {
                        table = name
                        last = 0
                    }
                    progress.advance(by: done - last)
                    last = done
                }
            } catch StoreError.storeMissing(let path) {
                throw CLIError("no Sheaf store at \(path)")
            }
            progress.finish()
            guard report.migrated else {
                say("\(target.store) is already at schema \(report.toSchema); nothing to do")
                return
            }
            let total = report.records.values.reduce(0, +)
            let order = ["meta", "codebooks", "items", "histories", "profiles", "titles"]
            say("migrated \(target.store) from schema \(report.fromSchema) to \(report.toSchema): \(thousands(total)) records "
                + "now end with a checksum of key and value ("
                + order.map { "\($0) \(thousands(report.records[$0] ?? 0))" }.joined(separator: ", ") + ")")
            if let v = report.verification {
                for p in v.problems { say("PROBLEM \(p)") }
                say(v.isClean ? "verified: no problems found" : "verify after migrating FAILED: \(thousands(v.problemCount)) problem(s)")
                if !v.isClean { throw ExitCode(1) }
            }
        }
    }
}
