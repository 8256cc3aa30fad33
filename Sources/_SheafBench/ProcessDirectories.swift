import Foundation

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Directories in the temporary directory named after the process that owns them,
/// `<prefix><pid>` or `<prefix><pid>-<suffix>`, so that a run can delete what runs that died
/// before cleaning up left behind.
public struct ProcessDirectories: Sendable {
    public let prefix: String

    public init(prefix: String) { self.prefix = prefix }

    /// The temporary directory, ending in "/".
    public static var temporaryDirectory: String {
        let t = NSTemporaryDirectory()
        return t.hasSuffix("/") ? t : t + "/"
    }

    /// The directory of process `owner`, with `suffix` when given.
    public func path(owner: pid_t, suffix: String? = nil) -> String {
        Self.temporaryDirectory + prefix + "\(owner)" + (suffix.map { "-\($0)" } ?? "")
    }

    /// Deletes the directories of process `owner`.
    public func remove(owner: pid_t) { remove { $0 == owner } }

    /// Deletes the directories whose owner no longer runs.
    public func removeStale() { remove { kill($0, 0) == -1 && errno == ESRCH } }

    private func remove(where owned: (pid_t) -> Bool) {
        let tmp = Self.temporaryDirectory
        guard let entries = try? FileManager.default.contentsOfDirectory(atPath: tmp) else { return }
        for entry in entries where entry.hasPrefix(prefix) {
            guard let pid = pid_t(entry.dropFirst(prefix.count).prefix { $0 != "-" }), owned(pid) else { continue }
            try? FileManager.default.removeItem(atPath: tmp + entry)
        }
    }
}
