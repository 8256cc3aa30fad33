import ArgumentParser
import Foundation
import SheafCLI
import SheafCodebook
import SheafFormats
import SheafRandom
import SheafStore

/// A temporary directory per test, removed when released.
final class Scratch {
    let path: String
    init() {
        path = NSTemporaryDirectory() + "sheaf-cli-\(UUID().uuidString)"
        try! FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    }
    deinit { try? FileManager.default.removeItem(atPath: path) }
    func file(_ name: String) -> String { path + "/" + name }
}

/// Runs a `sheaf` command in-process, capturing its output.
@discardableResult
func sheaf(_ args: String...) throws -> CommandOutput { try sheaf(args) }

@discardableResult
func sheaf(_ args: [String]) throws -> CommandOutput {
    let out = CommandOutput(capture: true)
    try CommandOutput.$current.withValue(out) {
        var command = try SheafCommand.parseAsRoot(args)
        try command.run()
    }
    return out
}

/// `count` vectors of dimension `d` around 8 random directions (fixed seed), none zero.
func clustered(count: Int, dimension d: Int, seed: UInt64) -> [Float] {
    var rng = SplitMix64(seed: seed)
    let centres = (0..<(8 * d)).map { _ in rng.nextFloat() * 2 - 1 }
    var out = [Float]()
    out.reserveCapacity(count * d)
    for _ in 0..<count {
        let c = Int(rng.next() % 8)
        for t in 0..<d { out.append(centres[c * d + t] + 0.3 * (rng.nextFloat() * 2 - 1)) }
    }
    return out
}

/// Behaviour rows (user, item, timestamp, label) for `users` users, in shuffled file order.
func behaviourRows(users: Int, perUser: Int, items: Int, seed: UInt64) -> [BehaviorRecord] {
    var rng = SplitMix64(seed: seed)
    var rows: [BehaviorRecord] = []
    for u in 0..<users {
        var t: Int64 = 800_000_000 + Int64(rng.next() % 1000)
        for _ in 0..<perUser {
            t += Int64(1 + rng.next() % 500)
            rows.append(BehaviorRecord(user: UInt64(u * 7 + 1), item: rng.next() % UInt64(items), timestamp: t, label: Float(1 + rng.next() % 5)))
        }
    }
    for i in stride(from: rows.count - 1, to: 0, by: -1) { rows.swapAt(i, Int(rng.next() % UInt64(i + 1))) }
    return rows
}

/// Writes behaviour rows in `format`.
func writeBehaviours(_ rows: [BehaviorRecord], format: BehaviorFormat, to path: String) throws {
    var text: String
    func label(_ x: Float) -> String { String(Int(x)) }
    switch format {
    case .csv:
        text = "user,item,timestamp,label\n" + rows.map { "\($0.user),\($0.item),\($0.timestamp),\(label($0.label))\n" }.joined()
    case .tsv:
        text = "user\titem\ttimestamp\tlabel\n" + rows.map { "\($0.user)\t\($0.item)\t\($0.timestamp)\t\(label($0.label))\n" }.joined()
    case .movielens:
        text = rows.map { "\($0.user)::\($0.item)::\(label($0.label))::\($0.timestamp)\n" }.joined()
    case .recbole:
        text = "user_id:token\titem_id:token\trating:float\ttimestamp:float\n"
            + rows.map { "\($0.user)\t\($0.item)\t\(label($0.label))\t\($0.timestamp).0\n" }.joined()
    }
    try text.write(toFile: path, atomically: true, encoding: .utf8)
}

/// The store's statistics (a cheap fingerprint of everything it holds).
func statistics(_ path: String) throws -> StoreStatistics {
    var o = StoreOptions()
    o.readOnly = true
    o.createIfMissing = false
    return try Store(path: path, options: o).read { try $0.statistics() }
}

/// Every user's history, by user.
func histories(_ path: String) throws -> [UInt64: History] {
    var o = StoreOptions()
    o.readOnly = true
    o.createIfMissing = false
    let store = try Store(path: path, options: o)
    return try store.read { txn in
        var users: [UInt64] = []
        try txn.forEachUser { users.append($0); return true }
        var out: [UInt64: History] = [:]
        for u in users { out[u] = try txn.history(user: u) }
        return out
    }
}

/// A store with a codebook and `items` items, ready for behaviour loads. Returns the embeddings file.
@discardableResult
func preparedStore(_ scratch: Scratch, dimension d: Int = 16, items: Int = 300) throws -> (store: String, embeddings: String) {
    let store = scratch.file("store")
    let emb = scratch.file("items.npy")
    try NPYArray.write(floats: clustered(count: items, dimension: d, seed: 5), shape: [items, d], to: emb)
    try sheaf("init", store, "--dim", "\(d)")
    try sheaf("codebook", "train", store, "--input", emb, "--codes", "16", "--levels", "2", "--iterations", "5")
    return (store, emb)
}
