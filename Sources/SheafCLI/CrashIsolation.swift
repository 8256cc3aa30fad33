import ArgumentParser
import Foundation
import Glibc

/// How far a scan has got, in one shared page that a parent process can read after the scanning child
/// died: the table and the key of the last record reached, and how many records of that table came
/// before it.
///
/// Layout of the page (little-endian): u64 records · u8 table-name length · 31 bytes of name · u16 key
/// length · the key (at most 1,024 bytes; longer keys are cut).
final class ScanPosition {
    /// The environment variable that hands the page's file to the child.
    static let environmentKey = "SHEAF_SCAN_POSITION"
    static let size = 4096
    private let page: UnsafeMutableRawPointer
    private var table = ""
    private var records = 0

    /// Maps the existing page file at `path`; `nil` when it cannot be mapped.
    init?(path: String) {
        let fd = open(path, O_RDWR | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        guard let p = mmap(nil, Self.size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0), p != MAP_FAILED else { return nil }
        page = p
    }

    deinit { munmap(page, Self.size) }

    /// Creates a zeroed page file at a fresh temporary path.
    static func makeFile() throws -> String {
        var template = Array((NSTemporaryDirectory() + "sheaf-scan-XXXXXX").utf8CString)
        let fd = template.withUnsafeMutableBufferPointer { mkstemp($0.baseAddress!) }
        guard fd >= 0, ftruncate(fd, off_t(size)) == 0 else { throw CLIError("cannot create a scan position file in \(NSTemporaryDirectory())") }
        close(fd)
        return String(cString: template)
    }

    /// Records that the scan reached `key` in `tableName`.
    func reached(_ tableName: String, _ key: UnsafeRawBufferPointer) {
        if tableName != table {
            table = tableName
            records = 0
            let name = Array(tableName.utf8.prefix(31))
            page.storeBytes(of: UInt8(name.count), toByteOffset: 8, as: UInt8.self)
            name.withUnsafeBytes { page.advanced(by: 9).copyMemory(from: $0.baseAddress!, byteCount: name.count) }
        }
        let n = min(key.count, 1024)
        page.storeBytes(of: UInt16(n).littleEndian, toByteOffset: 40, as: UInt16.self)
        if n > 0 { page.advanced(by: 42).copyMemory(from: key.baseAddress!, byteCount: n) }
        page.storeBytes(of: UInt64(records).littleEndian, toByteOffset: 0, as: UInt64.self)
        records += 1
    }

    /// What the page says: the table, the key as errors name it, and the records of that table before it;
    /// `nil` when the scan reached no record.
    func read() -> (table: String, key: String, before: Int)? {
        let nameLength = Int(page.load(fromByteOffset: 8, as: UInt8.self))
        guard nameLength > 0 else { return nil }
        let name = String(decoding: UnsafeRawBufferPointer(start: page.advanced(by: 9), count: min(nameLength, 31)), as: UTF8.self)
        let keyLength = Int(UInt16(littleEndian: page.load(fromByteOffset: 40, as: UInt16.self)))
        let key = [UInt8](UnsafeRawBufferPointer(start: page.advanced(by: 42), count: min(keyLength, 1024)))
        let before = Int(UInt64(littleEndian: page.load(fromByteOffset: 0, as: UInt64.self)))
        return (name, Self.describe(key), before)
    }

    /// A key as the store names it: an 8-byte big-endian id, "user/segment" for 12-byte history keys, hex otherwise.
    static func describe(_ key: [UInt8]) -> String {
        func be(_ bytes: ArraySlice<UInt8>) -> UInt64 { bytes.reduce(0) { $0 << 8 | UInt64($1) } }
        switch key.count {
        case 8: return "\(be(key[0..<8]))"
        case 12: return "\(be(key[0..<8]))/\(be(key[8..<12]))"
        default: return "0x" + key.map { ($0 < 16 ? "0" : "") + String($0, radix: 16) }.joined()
        }
    }
}

/// Runs the running `sheaf` command again in a child process (with `--in-process` added) and waits for
/// it, so that a scan of a structurally damaged file that crashes inside LMDB (no checksum covers its
/// page headers and pointers) is reported, with the last table and key reached, instead of killing the
/// command.
///
/// The child inherits stdin, stdout and stderr; its exit status becomes this process's. When it dies
/// by a signal, `report` gets the signal and the scan's position and prints the outcome.
///
/// - Returns: normally never; throws `ExitCode` with the child's status (or 1 after a crash).
func runInChildProcess(report: (_ signal: Int32, _ position: (table: String, key: String, before: Int)?) -> Void) throws -> Never {
    let positionFile = try ScanPosition.makeFile()
    defer { unlink(positionFile) }
    let child = Process()
    child.executableURL = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath()
    child.arguments = Array(CommandLine.arguments.dropFirst()) + ["--in-process"]
    var environment = ProcessInfo.processInfo.environment
    environment[ScanPosition.environmentKey] = positionFile
    environment["SWIFT_BACKTRACE"] = "enable=no"  // the report below replaces the runtime's crash dump
    child.environment = environment
    try child.run()
    child.waitUntilExit()
    if child.terminationReason == .uncaughtSignal {
        report(child.terminationStatus, ScanPosition(path: positionFile)?.read())
        throw ExitCode(1)
    }
    throw ExitCode(child.terminationStatus)
}

/// The position page a parent `sheaf` handed this process, if any.
func inheritedScanPosition() -> ScanPosition? {
    ProcessInfo.processInfo.environment[ScanPosition.environmentKey].flatMap { ScanPosition(path: $0) }
}

/// "signal 11 (Segmentation fault)".
func signalName(_ signal: Int32) -> String {
    "signal \(signal)" + (strsignal(signal).map { " (" + String(cString: $0) + ")" } ?? "")
}

/// Where a crashed scan stopped, for messages.
func crashPlace(_ position: (table: String, key: String, before: Int)?) -> String {
    guard let p = position else { return "before reaching any record" }
    return "in table '\(p.table)' at key \(p.key) (after \(thousands(p.before)) records of that table)"
}
