import Foundation

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#elseif canImport(Darwin)
    import Darwin
#endif

/// The files a training run writes in its model directory (`sheaf train`, `sheaf chime train`), and
/// the exclusive claim a run holds on that directory while it trains.
///
/// Two runs writing one directory would interleave their checkpoints, so a run takes an exclusive
/// `flock` on `DIR/.lock` first, and writes its process id there. Releasing the claim deletes the
/// file, and the directories the claim made when nothing else was written there: a refused or failed
/// start leaves nothing behind. The lock also goes when the process ends, however it ends; a
/// killed run leaves a stale `.lock` file but no lock. A directory that already holds a run is not
/// started over unless asked: that would replace a finished model, or a stopped run's progress,
/// that may have taken hours.
public final class RunDirectory {
    public let directory: String
    /// The files of a run, by name (`model.safetensors`, `last.safetensors`, `items.npy`, `metrics.json`).
    public static let runFiles = ["model.safetensors", "last.safetensors", "items.npy", "metrics.json"]
    private var descriptor: Int32
    /// The directories the claim made, innermost first (`directory` and any missing parents).
    private let createdDirectories: [String]
    private static func lockPath(in directory: String) -> String { directory + "/.lock" }

    /// What a new run does with a directory that already holds one.
    public enum Start: Sendable, Equatable {
        /// Refuse (`ModelError.runExists`).
        case fresh
        /// Continue the run there (the caller resumes from `last.safetensors`).
        case resume
        /// Delete the run's files (`runFiles`) and start again.
        case overwrite
    }

    /// Claims `directory` (created if needed) for one training run.
    /// - Throws: `ModelError.runDirectoryInUse` when another process holds the claim;
    ///   `ModelError.runExists` when `start` is `.fresh` and the directory holds any of `runFiles`;
    ///   `ModelError.invalidConfiguration` when the directory or its lock file cannot be made.
    public init(claiming directory: String, start: Start) throws(ModelError) {
        self.directory = directory
        var missing: [String] = [], d = (directory as NSString).standardizingPath
        while !d.isEmpty && d != "/" && !FileManager.default.fileExists(atPath: d) {
            missing.append(d)
            d = (d as NSString).deletingLastPathComponent
        }
        createdDirectories = missing
        do {
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        } catch {
            throw .invalidConfiguration("cannot create the model directory \(directory): \(error.localizedDescription)")
        }
        let path = Self.lockPath(in: directory)
        var fd: Int32 = -1
        while fd < 0 {
            let candidate = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
            guard candidate >= 0 else {
                throw .invalidConfiguration("cannot open \(path): \(String(cString: strerror(errno)))")
            }
            guard flock(candidate, LOCK_EX | LOCK_NB) == 0 else {
                let code = errno
                let holder = Self.recordedProcess(candidate)
                close(candidate)
                if code == EWOULDBLOCK { throw .runDirectoryInUse(directory: directory, process: holder) }
                throw .invalidConfiguration("cannot lock \(path): \(String(cString: strerror(code)))")
            }
            // The holder before us deletes the file as it lets go: a lock on a file no longer at
            // `path` claims nothing, so open the path again.
            var held = stat(), named = stat()
            if fstat(candidate, &held) == 0 && stat(path, &named) == 0 && held.st_ino == named.st_ino && held.st_dev == named.st_dev {
                fd = candidate
            } else {
                close(candidate)
            }
        }
        descriptor = fd
        let pid = "\(getpid())\n"
        _ = ftruncate(fd, 0)
        _ = pid.withCString { pwrite(fd, $0, strlen($0), 0) }
        let present = Self.runFiles.filter { FileManager.default.fileExists(atPath: directory + "/" + $0) }
        switch start {
        case .fresh:
            if !present.isEmpty {
                release()
                throw .runExists(directory: directory, files: present)
            }
        case .resume:
            break
        case .overwrite:
            for name in present {
                do { try FileManager.default.removeItem(atPath: directory + "/" + name) } catch {
                    release()
                    throw .invalidConfiguration("cannot delete \(directory)/\(name): \(error.localizedDescription)")
                }
            }
        }
    }

    /// Gives up the claim (also done when the object goes away): deletes the lock file, and the
    /// directories the claim made while they are empty.
    public func release() {
        guard descriptor >= 0 else { return }
        unlink(Self.lockPath(in: directory))  // while still locked, so no one else's lock file is deleted
        close(descriptor)  // closing the only descriptor of the open file drops the flock
        descriptor = -1
        for d in createdDirectories {  // innermost first; rmdir removes only an empty directory
            guard rmdir(d) == 0 else { break }
        }
    }

    deinit { release() }

    /// The process id the holder wrote into the lock file, if readable.
    private static func recordedProcess(_ fd: Int32) -> Int32? {
        var bytes = [UInt8](repeating: 0, count: 32)
        let n = bytes.withUnsafeMutableBytes { pread(fd, $0.baseAddress, 31, 0) }
        guard n > 0 else { return nil }
        return Int32(String(decoding: bytes[0..<n], as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines))
    }
}
