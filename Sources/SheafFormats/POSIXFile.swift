import Foundation

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#elseif canImport(Darwin)
    import Darwin
#endif

/// Thin helpers over POSIX file descriptors, with errors as `FormatError` naming the file.
enum POSIXFile {
    /// Opens `path` read-only; a missing file is `.unreadable(reason: "no such file")`.
    static func openForReading(_ path: String) throws -> Int32 {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw FormatError.unreadable(path: path, reason: errnoReason(errno)) }
        return fd
    }

    /// The size of the regular file behind `fd`.
    static func size(_ fd: Int32, path: String) throws -> Int {
        var st = stat()
        guard fstat(fd, &st) == 0 else { throw FormatError.unreadable(path: path, reason: errnoReason(errno)) }
        guard (st.st_mode & S_IFMT) == S_IFREG else { throw FormatError.unreadable(path: path, reason: "not a regular file") }
        return Int(st.st_size)
    }

    /// Reads up to `count` bytes at `offset` with `pread`, retrying short reads; returns the bytes read (fewer only at end of file).
    static func readFully(_ fd: Int32, into buffer: UnsafeMutableRawPointer, count: Int, offset: Int, path: String) throws -> Int {
        var done = 0
        while done < count {
            let n = pread(fd, buffer + done, count - done, off_t(offset + done))
            if n < 0 {
                if errno == EINTR { continue }
                throw FormatError.unreadable(path: path, reason: errnoReason(errno))
            }
            if n == 0 { break }
            done += n
        }
        return done
    }

    /// Reads up to `count` bytes at `offset` into a new array (shorter only at end of file).
    static func readBytes(_ fd: Int32, count: Int, offset: Int, path: String) throws -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: count)
        let n = try bytes.withUnsafeMutableBytes { try readFully(fd, into: $0.baseAddress!, count: count, offset: offset, path: path) }
        bytes.removeLast(count - n)
        return bytes
    }

    /// A short reason for an errno value ("no such file" for ENOENT).
    static func errnoReason(_ code: Int32) -> String {
        switch code {
        case ENOENT: "no such file"
        case EACCES: "permission denied"
        default: String(cString: strerror(code))
        }
    }

    /// Streams the lines of `path` in large chunks, calling `body` with each line's bytes (without the '\n' and a trailing '\r') and its 1-based number, until it returns false.
    static func forEachLine(path: String, chunkSize: Int = 1 << 22, _ body: (UnsafeBufferPointer<UInt8>, Int) throws -> Bool) throws {
        let fd = try openForReading(path)
        defer { close(fd) }
        var capacity = chunkSize
        var buffer = UnsafeMutablePointer<UInt8>.allocate(capacity: capacity)
        defer { buffer.deallocate() }
        var filled = 0
        var lineNumber = 0

        /// Hands one line to `body`, dropping a trailing '\r'.
        func emit(_ start: Int, _ end: Int) throws -> Bool {
            lineNumber += 1
            var length = end - start
            if length > 0 && buffer[start + length - 1] == 0x0D { length -= 1 }
            return try body(UnsafeBufferPointer(start: buffer + start, count: length), lineNumber)
        }

        while true {
            if filled == capacity {  // one line longer than the buffer: grow it
                let bigger = UnsafeMutablePointer<UInt8>.allocate(capacity: capacity * 2)
                bigger.update(from: buffer, count: filled)
                buffer.deallocate()
                buffer = bigger
                capacity *= 2
            }
            let n = read(fd, buffer + filled, capacity - filled)
            if n < 0 {
                if errno == EINTR { continue }
                throw FormatError.unreadable(path: path, reason: errnoReason(errno))
            }
            let scanFrom = filled
            filled += n
            var start = 0
            var searchFrom = scanFrom
            while searchFrom < filled, let hit = memchr(buffer + searchFrom, 0x0A, filled - searchFrom) {
                let end = buffer.distance(to: hit.assumingMemoryBound(to: UInt8.self))
                guard try emit(start, end) else { return }
                start = end + 1
                searchFrom = start
            }
            if n == 0 {
                if start < filled { _ = try emit(start, filled) }
                return
            }
            if start > 0 {
                memmove(buffer, buffer + start, filled - start)
                filled -= start
            }
        }
    }
}
