import Foundation

/// A uniquely named file in the temporary directory, removed by `remove()`.
struct TemporaryFile {
    /// The file's path.
    let path: String

    /// A fresh path ending in `suffix` (e.g. ".npy"), holding `bytes` when given.
    init(_ suffix: String, bytes: [UInt8]? = nil) {
        path = NSTemporaryDirectory() + "sheaf-formats-\(UUID().uuidString)\(suffix)"
        if let bytes { _ = FileManager.default.createFile(atPath: path, contents: Data(bytes)) }
    }

    /// A fresh path ending in `suffix`, holding `text` as UTF-8.
    init(_ suffix: String, text: String) { self.init(suffix, bytes: Array(text.utf8)) }

    /// The file's current bytes.
    var bytes: [UInt8] { [UInt8](FileManager.default.contents(atPath: path) ?? Data()) }

    /// Replaces the file's bytes.
    func write(_ bytes: [UInt8]) { _ = FileManager.default.createFile(atPath: path, contents: Data(bytes)) }

    /// Deletes the file.
    func remove() { try? FileManager.default.removeItem(atPath: path) }
}
