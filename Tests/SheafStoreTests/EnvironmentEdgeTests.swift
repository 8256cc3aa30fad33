import Foundation
import Glibc
import Testing

@testable import SheafStore

/// Stores opened where the environment is awkward: a full disk, write-protected files, a reader who may
/// not write the lock file.
@Suite struct EnvironmentEdgeTests {
    /// Creating a store's lock file on a full disk made liblmdb die with SIGBUS (it sizes the lock file
    /// sparsely and writes through the map). Run in a child process, so the old crash fails the test
    /// instead of killing the run.
    @Test(.enabled(if: canMountTmpfs, "needs root to mount a 1 MiB tmpfs"))
    func creatingAStoreOnAFullDiskIsDiskFull() async throws {
        let dir = TempDirectory("fulllock")
        try FileManager.default.createDirectory(atPath: dir.path, withIntermediateDirectories: true)
        #expect(run("/bin/mount", ["-t", "tmpfs", "-o", "size=1m", "tmpfs", dir.path]) == 0)
        defer { run("/bin/umount", [dir.path]) }
        let store = dir.path + "/store"
        try FileManager.default.createDirectory(atPath: store, withIntermediateDirectories: true)
        // Fill the file system.
        let fd = open(dir.path + "/filler", O_WRONLY | O_CREAT, 0o644)
        let block = [UInt8](repeating: 1, count: 4096)
        while write(fd, block, block.count) == block.count {}
        close(fd)
        await #expect(processExitsWith: .success) { [store = store as String] in
            do {
                _ = try Store(path: store, dimension: 4)
                exit(2)
            } catch let error as StoreError where error == .diskFull {
                exit(FileManager.default.fileExists(atPath: store + "/lock.mdb") ? 3 : 0)
            } catch {
                exit(4)
            }
        }
    }

    @Test func aWriteProtectedStoreIsNotOpenedForWritingEvenByRoot() throws {
        let dir = TempDirectory("chmod")
        do {
            let store = try Store(path: dir.path, dimension: 4)
            try store.write { try $0.putCodebook(try makeCodebook(dimension: 4)) }
        }
        let data = dir.path + "/data.mdb"
        let before = try Data(contentsOf: URL(fileURLWithPath: data))
        #expect(chmod(data, 0o444) == 0)
        defer { chmod(data, 0o644) }
        #expect(throws: StoreError.permissionDenied(
            path: data,
            reason: "the store's data.mdb is write-protected (mode 444), so it is not opened for writing, even by root. "
                + "Open it read-only (`--read-only`, StoreOptions.readOnly), or make it writable with `chmod u+w`")) {
            try Store(path: dir.path)
        }
        #expect(try Data(contentsOf: URL(fileURLWithPath: data)) == before)
        var readOnly = StoreOptions()
        readOnly.readOnly = true
        #expect(try Store(path: dir.path, options: readOnly).read { try $0.codebookIDs() } == [1])
        // The directory write-protected instead.
        chmod(data, 0o644)
        #expect(chmod(dir.path, 0o555) == 0)
        defer { chmod(dir.path, 0o755) }
        #expect(throws: StoreError.permissionDenied(
            path: dir.path,
            reason: "the store's directory is write-protected (mode 555), so it is not opened for writing, even by root. "
                + "Open it read-only (`--read-only`, StoreOptions.readOnly), or make it writable with `chmod u+w`")) {
            try Store(path: dir.path)
        }
    }

    /// A reader who may not write `lock.mdb` got "LMDB error 13: Permission denied" and no way in. Now the
    /// error names the lock file and the way: `withoutLock` (`--read-only`), which then reads the store.
    @Test(.enabled(if: getuid() == 0, "needs root to drop to user nobody in a child process"))
    func aReaderWhoCannotWriteTheLockFileIsToldAndCanReadWithoutIt() async throws {
        let dir = TempDirectory("nobody")
        do {
            let store = try Store(path: dir.path, dimension: 4)
            try store.write { try $0.putCodebook(try makeCodebook(dimension: 4)) }
        }
        #expect(chmod(dir.path, 0o755) == 0)
        await #expect(processExitsWith: .success) { [path = dir.path as String] in
            guard setgid(65534) == 0, setuid(65534) == 0 else { exit(10) }
            var options = StoreOptions()
            options.readOnly = true
            do {
                _ = try Store(path: path, options: options)
                exit(11)
            } catch StoreError.permissionDenied(let file, let reason) {
                guard file == path + "/lock.mdb", reason.contains("`--read-only` (StoreOptions.readOnly with withoutLock)") else { exit(12) }
            } catch {
                exit(13)
            }
            options.withoutLock = true
            guard let store = try? Store(path: path, options: options), (try? store.read({ try $0.codebookIDs() })) == [1] else { exit(14) }
            exit(0)
        }
    }

    @Test func withoutLockNeedsReadOnly() throws {
        let dir = TempDirectory("nolock")
        var options = StoreOptions()
        options.withoutLock = true
        #expect(throws: StoreError.invalidArgument("withoutLock needs readOnly: a writer must take LMDB's locks")) {
            try Store(path: dir.path, dimension: 4, options: options)
        }
        #expect(!FileManager.default.fileExists(atPath: dir.path))
    }
}
