import CSheafDecode
import SheafRandom
import Testing

/// The C CRC-32C behind every record checksum: the SSE4.2 path against the portable table path,
/// and both against published check values. The portable path is forced on the calling thread only.
@Suite struct CRC32CTests {
    func crc(_ bytes: [UInt8], continuing c: UInt32 = 0) -> UInt32 {
        bytes.withUnsafeBytes { sheaf_crc32c(c, $0.baseAddress, $0.count) }
    }

    func portable<R>(_ body: () -> R) -> R {
        sheaf_crc32c_force_isa(1)
        defer { sheaf_crc32c_force_isa(0) }
        return body()
    }

    @Test func checkValues() {
        // RFC 3720 (iSCSI) B.4 and the standard "123456789" check value.
        let check = Array("123456789".utf8)
        let zeros = [UInt8](repeating: 0, count: 32)
        let ones = [UInt8](repeating: 0xFF, count: 32)
        let ascending = (0..<32).map { UInt8($0) }
        for path in ["automatic", "portable"] {
            let run: (() -> UInt32) -> UInt32 = path == "portable" ? { portable($0) } : { $0() }
            #expect(run { crc(check) } == 0xE306_9283, "\(path)")
            #expect(run { crc(zeros) } == 0x8A91_36AA, "\(path)")
            #expect(run { crc(ones) } == 0x62A8_AB43, "\(path)")
            #expect(run { crc(ascending) } == 0x46DD_794E, "\(path)")
            #expect(run { crc([]) } == 0, "\(path)")
        }
    }

    @Test func hardwarePathMatchesTableOnRandomBuffers() {
        var rng = SplitMix64(seed: 42)
        let data = (0..<5000).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
        for _ in 0..<300 {
            let start = Int(rng.next() % 64)
            let length = Int(rng.next() % 4000)
            let slice = Array(data[start..<(start + length)])
            let seed = UInt32(truncatingIfNeeded: rng.next())
            let fast = crc(slice, continuing: seed)
            let slow = portable { crc(slice, continuing: seed) }
            #expect(fast == slow, "length \(length), offset \(start)")
            // Chaining two halves equals one pass.
            let cut = length / 3
            let chained = crc(Array(slice[cut...]), continuing: crc(Array(slice[..<cut]), continuing: seed))
            #expect(chained == fast)
        }
        #expect(sheaf_crc32c_isa() >= 1)
    }

    /// Forcing the portable path on one thread leaves other threads on the automatic one.
    @Test func forcingStaysOnTheCallingThread() {
        let automatic = sheaf_crc32c_isa()
        portable {
            #expect(sheaf_crc32c_isa() == 1)
            #expect(isaOnAnotherThread { sheaf_crc32c_isa() } == automatic)
        }
        #expect(sheaf_crc32c_isa() == automatic)
    }
}
