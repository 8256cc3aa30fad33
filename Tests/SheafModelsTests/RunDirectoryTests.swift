import Foundation
import Testing

@testable import SheafModels

/// `RunDirectory`: one claim at a time, what a fresh start refuses, and what a release leaves.
@Suite struct RunDirectoryTests {
    func scratch() throws -> String {
        let path = NSTemporaryDirectory() + "sheaf-rundir-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        return path
    }

    @Test func oneClaimAtATime() throws {
        let root = try scratch()
        defer { try? FileManager.default.removeItem(atPath: root) }
        let dir = root + "/a/b"
        let first = try RunDirectory(claiming: dir, start: .fresh)
        #expect(FileManager.default.fileExists(atPath: dir + "/.lock"))
        #expect(try String(contentsOfFile: dir + "/.lock", encoding: .utf8) == "\(getpid())\n")
        // A second claim (another open file, as another process would have) is refused, whatever it asks.
        for start in [RunDirectory.Start.fresh, .resume, .overwrite] {
            #expect(throws: ModelError.runDirectoryInUse(directory: dir, process: getpid())) { try RunDirectory(claiming: dir, start: start) }
        }
        first.release()
        first.release()  // a second release does nothing
        // Nothing was written: the lock file and both directories the claim made are gone.
        #expect(!FileManager.default.fileExists(atPath: root + "/a"))
        let second = try RunDirectory(claiming: dir, start: .fresh)
        try Data("x".utf8).write(to: URL(fileURLWithPath: dir + "/metrics.json"))
        second.release()
        // A directory that holds run files stays, without the lock file.
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir) == ["metrics.json"])
    }

    @Test func aStaleLockFileIsNoClaim() throws {
        let dir = try scratch()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        // A killed run leaves its lock file but no lock.
        try Data("999999\n".utf8).write(to: URL(fileURLWithPath: dir + "/.lock"))
        let claim = try RunDirectory(claiming: dir, start: .fresh)
        #expect(try String(contentsOfFile: dir + "/.lock", encoding: .utf8) == "\(getpid())\n")
        claim.release()
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir).isEmpty)
        // The directory existed before the claim: it stays.
        #expect(FileManager.default.fileExists(atPath: dir))
    }

    @Test func whatAStartDoesWithARun() throws {
        let dir = try scratch()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        for name in ["last.safetensors", "items.npy", "notes.txt"] {
            try Data(name.utf8).write(to: URL(fileURLWithPath: dir + "/" + name))
        }
        #expect(throws: ModelError.runExists(directory: dir, files: ["last.safetensors", "items.npy"])) {
            try RunDirectory(claiming: dir, start: .fresh)
        }
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir).sorted() == ["items.npy", "last.safetensors", "notes.txt"])
        try RunDirectory(claiming: dir, start: .resume).release()
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir).sorted() == ["items.npy", "last.safetensors", "notes.txt"])
        // --overwrite deletes the run's files only.
        try RunDirectory(claiming: dir, start: .overwrite).release()
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir) == ["notes.txt"])
        #expect(ModelError.runExists(directory: "m", files: ["last.safetensors"]).description
            == "m already holds a run (last.safetensors): --resume continues it, --overwrite deletes it and starts again")
        #expect(ModelError.runDirectoryInUse(directory: "m", process: 42).description
            == "m is being written by another training run (process 42); wait for it to end, or train into another directory")
    }
}
