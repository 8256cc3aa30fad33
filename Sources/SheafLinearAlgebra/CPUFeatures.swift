import CSheafCPU
import Foundation

/// The instruction-set extensions of this CPU that decide which OpenBLAS kernels can run, read from
/// CPUID (and masked by what the operating system saves, so a CPU whose AVX-512 state the kernel does
/// not enable reports no AVX-512).
public struct CPUFeatures: Sendable, Equatable, CustomStringConvertible {
    public var avx2 = false
    public var fma = false
    public var avx512f = false
    /// AVX-512 VL, BW and DQ, which OpenBLAS's SkylakeX kernels use beside AVX-512F.
    public var avx512VLBWDQ = false
    /// AVX-512 BF16 (Cooper Lake, Sapphire Rapids and later).
    public var avx512BF16 = false

    public init(avx2: Bool = false, fma: Bool = false, avx512f: Bool = false, avx512VLBWDQ: Bool = false, avx512BF16: Bool = false) {
        self.avx2 = avx2
        self.fma = fma
        self.avx512f = avx512f
        self.avx512VLBWDQ = avx512VLBWDQ
        self.avx512BF16 = avx512BF16
    }

    /// This machine's features, from CPUID.
    ///
    /// Tests may fake them with `SHEAF_TEST_CPU_FEATURES` (a comma-separated list of the names in
    /// `description`, or `none`). That variable is for tests only: a core chosen for features the
    /// CPU lacks stops the process with an illegal instruction.
    public static let current: CPUFeatures = {
        if let fake = ProcessInfo.processInfo.environment["SHEAF_TEST_CPU_FEATURES"] {
            return CPUFeatures(names: fake)
        }
        let bits = sheaf_cpu_features()
        return CPUFeatures(
            avx2: bits & UInt32(SHEAF_CPU_AVX2) != 0, fma: bits & UInt32(SHEAF_CPU_FMA) != 0,
            avx512f: bits & UInt32(SHEAF_CPU_AVX512F) != 0,
            avx512VLBWDQ: bits & UInt32(SHEAF_CPU_AVX512VL_BW_DQ) != 0,
            avx512BF16: bits & UInt32(SHEAF_CPU_AVX512BF16) != 0)
    }()

    /// Features from a comma-separated list of names ("avx2,fma,avx512f"); unknown names are ignored.
    public init(names: String) {
        let set = Set(names.lowercased().split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) })
        self.init(
            avx2: set.contains("avx2"), fma: set.contains("fma"), avx512f: set.contains("avx512f"),
            avx512VLBWDQ: set.contains("avx512vl/bw/dq"), avx512BF16: set.contains("avx512bf16"))
    }

    /// The CPU's brand string from CPUID, e.g. "Intel(R) Xeon(R) Processor @ 2.80GHz".
    public static let brand: String = {
        var buffer = [CChar](repeating: 0, count: 64)
        sheaf_cpu_brand(&buffer)
        let bytes = buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }
        let s = String(decoding: bytes, as: UTF8.self).trimmingCharacters(in: .whitespaces)
        return s.isEmpty ? "unknown CPU" : s
    }()

    /// The features present, by name: "avx2 fma avx512f avx512vl/bw/dq avx512bf16", or "none".
    public var description: String {
        let names = [
            (avx2, "avx2"), (fma, "fma"), (avx512f, "avx512f"), (avx512VLBWDQ, "avx512vl/bw/dq"), (avx512BF16, "avx512bf16"),
        ].filter(\.0).map(\.1)
        return names.isEmpty ? "none" : names.joined(separator: " ")
    }
}
