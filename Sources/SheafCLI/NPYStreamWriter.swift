import Foundation
import SheafFormats

/// Writes an N × D `<f4` `.npy` row chunk by row chunk, into a temporary file that `finish()` renames
/// over the destination: a reader never sees a half-written file.
public final class NPYStreamWriter {
    private let path: String
    private let temporary: String
    private let handle: FileHandle
    private let expectedFloats: Int
    private var written = 0

    public init(path: String, rows: Int, dimension: Int) throws {
        self.path = path
        temporary = path + ".partial-\(getpid())"
        expectedFloats = rows * dimension
        let header = NPYArray.header(dtype: "<f4", shape: [rows, dimension])
        guard FileManager.default.createFile(atPath: temporary, contents: Data(header)),
            let h = FileHandle(forWritingAtPath: temporary)
        else { throw FormatError.unreadable(path: path, reason: "cannot create the file") }
        handle = h
        handle.seekToEndOfFile()
    }

    /// Appends rows (little-endian float32; this machine's order).
    public func append(_ values: UnsafeBufferPointer<Float>) throws {
        do { try handle.write(contentsOf: Data(buffer: values)) } catch {
            throw FormatError.unreadable(path: path, reason: "write failed: \(error.localizedDescription)")
        }
        written += values.count
    }

    /// Closes the file and moves it into place.
    public func finish() throws {
        try handle.close()
        precondition(written == expectedFloats, "NPYStreamWriter: wrote \(written) floats, promised \(expectedFloats)")
        guard rename(temporary, path) == 0 else {
            throw FormatError.unreadable(path: path, reason: "cannot move the file into place: \(String(cString: strerror(errno)))")
        }
    }

    deinit { if written != expectedFloats { unlink(temporary) } }
}
