import Foundation
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// Which OpenBLAS kernel set ("core") the process runs, and choosing the best one the CPU supports.
///
/// OpenBLAS built with DYNAMIC_ARCH (Debian's is) picks its kernels when the library loads. Debian's
/// 0.3.21 does not know some newer CPUs (an Intel Xeon with AVX-512 BF16, for one) and falls back to
/// its generic SSE3 `Prescott` kernels, which run sgemm 3–6× slower. The only fix from outside is the
/// environment variable `OPENBLAS_CORETYPE`, read once when the library loads, so it must be set
/// before the process starts:
///
/// - the `sheaf` and `sheaf-measure` executables call `selectBestCore()` first thing: when OpenBLAS
///   chose a generic core on a CPU with AVX2 and FMA, they re-execute themselves once with
///   `OPENBLAS_CORETYPE` set to the best core for the CPU, keep it only when a quick sgemm self-check
///   passes (`selfCheck()`), and otherwise fall back to the next core down;
/// - a user's own `OPENBLAS_CORETYPE` is always respected (some sites set it deliberately: older
///   OpenBLAS kernels compute wrong results on some processors);
/// - a service that links Sheaf as a library cannot be re-executed by it: it gets one warning on
///   stderr (`warnIfGeneric()`) saying what to set, and should set `OPENBLAS_CORETYPE` in its own
///   launch environment.
public enum OpenBLASCore {
    /// The environment variable OpenBLAS reads.
    public static let variable = "OPENBLAS_CORETYPE"
    /// Sheaf's own record of a re-selection in progress, passed from a process to its re-executed self:
    /// `from=<core OpenBLAS chose>;tried=<core>,<core>[;done]`.
    static let markerVariable = "SHEAF_BLAS_SELECTION"
    /// Tests only: pretend OpenBLAS chose this core (so that the re-selection runs on a machine whose
    /// OpenBLAS already picks a fast one).
    static let assumedCoreVariable = "SHEAF_TEST_BLAS_CORE"
    /// Tests only: cores whose self-check counts as failed (comma-separated), to exercise the fallback.
    static let failingCoresVariable = "SHEAF_TEST_BLAS_FAILING_CORES"

    /// Cores whose sgemm uses AVX2 or AVX-512 (OpenBLAS's names, compared case-insensitively).
    static let vectorCores: Set<String> = ["haswell", "zen", "skylakex", "cooperlake", "sapphirerapids", "excavator"]

    /// Whether `core` is one of OpenBLAS's generic (pre-AVX2) kernel sets while the CPU could run a
    /// faster one.
    public static func isGeneric(_ core: String, on features: CPUFeatures) -> Bool {
        features.avx2 && features.fma && !vectorCores.contains(core.lowercased())
    }

    /// The cores this CPU can run, best first: Cooperlake (AVX-512 with BF16), SkylakeX (AVX-512),
    /// Haswell (AVX2 + FMA). Empty when the CPU has no AVX2 and FMA.
    public static func candidates(for features: CPUFeatures) -> [String] {
        var cores: [String] = []
        if features.avx2, features.fma, features.avx512f, features.avx512VLBWDQ {
            if features.avx512BF16 { cores.append("Cooperlake") }
            cores.append("SkylakeX")
        }
        if features.avx2, features.fma { cores.append("Haswell") }
        return cores
    }

    // MARK: - Selection

    /// How the running core was chosen.
    public enum Selection: Sendable, Equatable, CustomStringConvertible {
        /// OpenBLAS's own choice was kept (it is not generic, or the CPU has nothing faster).
        case automatic(core: String)
        /// `OPENBLAS_CORETYPE` was set by the user and respected.
        case userSet(core: String)
        /// OpenBLAS chose the generic `from`; the process re-executed itself with `to`, which passed
        /// the self-check (`tried` lists the cores tried before it, which failed).
        case reselected(from: String, to: String, failed: [String], check: SelfCheck)
        /// Every better core failed the self-check; the process runs OpenBLAS's own choice `core`.
        case fellBack(core: String, failed: [String])

        /// The core this process runs.
        public var core: String {
            switch self {
            case .automatic(let c), .userSet(let c), .fellBack(let c, _): c
            case .reselected(_, let to, _, _): to
            }
        }

        public var description: String {
            switch self {
            case .automatic(let c): "\(c), chosen by OpenBLAS"
            case .userSet(let c): "\(c), set by \(OpenBLASCore.variable)"
            case .reselected(let from, let to, let failed, let check):
                "\(to), chosen by Sheaf (OpenBLAS chose the generic \(from)"
                    + (failed.isEmpty ? "" : "; failed the self-check: \(failed.joined(separator: ", "))")
                    + "; self-check passed in \(String(format: "%.1f", check.milliseconds)) ms)"
            case .fellBack(let c, let failed):
                "\(c), chosen by OpenBLAS (every faster core failed the self-check: \(failed.joined(separator: ", ")))"
            }
        }
    }

    /// What `selectBestCore` must do next.
    enum Step: Equatable {
        /// Run on: the selection is final.
        case keep(Selection)
        /// Re-execute with these environment changes (nil removes the variable).
        case reexecute([String: String?])
    }

    /// The next step of the selection, from the environment, the core OpenBLAS runs and the CPU's
    /// features. `check` runs the self-check (only when a core Sheaf chose needs confirming).
    static func nextStep(
        environment: [String: String], currentCore: String, features: CPUFeatures, check: () -> SelfCheck
    ) -> Step {
        let candidates = candidates(for: features)
        guard let marker = environment[markerVariable] else {
            if environment[variable] != nil { return .keep(.userSet(core: currentCore)) }
            let detected = environment[assumedCoreVariable] ?? currentCore
            guard isGeneric(detected, on: features), let best = candidates.first else {
                return .keep(.automatic(core: detected))
            }
            return .reexecute([variable: best, markerVariable: "from=\(detected);tried=\(best)"])
        }
        var fields: [String: String] = [:]
        for part in marker.split(separator: ";") {
            let kv = part.split(separator: "=", maxSplits: 1).map(String.init)
            fields[kv[0]] = kv.count > 1 ? kv[1] : ""
        }
        let from = fields["from"] ?? currentCore
        let tried = (fields["tried"] ?? "").split(separator: ",").map(String.init)
        if fields["done"] != nil { return .keep(.fellBack(core: currentCore, failed: tried)) }
        if let requested = tried.last, requested.lowercased() == currentCore.lowercased() {
            let result = check()
            if result.passed { return .keep(.reselected(from: from, to: currentCore, failed: Array(tried.dropLast()), check: result)) }
        }
        // The requested core did not load or failed the check: the next one down, or OpenBLAS's own.
        if let next = candidates.first(where: { c in !tried.contains { $0.lowercased() == c.lowercased() } }) {
            return .reexecute([variable: next, markerVariable: "from=\(from);tried=\((tried + [next]).joined(separator: ","))"])
        }
        return .reexecute([variable: nil, markerVariable: "from=\(from);tried=\(tried.joined(separator: ","));done"])
    }

    /// How the running core was chosen: set by `selectBestCore()`, otherwise what OpenBLAS and the
    /// environment say.
    public static var selection: Selection {
        recorded.withLock { $0 } ?? (ProcessInfo.processInfo.environment[variable] != nil
            ? .userSet(core: BLAS.coreName) : .automatic(core: BLAS.coreName))
    }
    private static let recorded = Mutex<Selection?>(nil)

    /// Makes sure this process runs the best OpenBLAS core its CPU supports, re-executing the
    /// process (`/proc/self/exe` with the same arguments) when it must. Call it first thing in `main`,
    /// before any thread starts and before anything is read from standard input. Returns how the core
    /// was chosen (in the final process).
    @discardableResult
    public static func selectBestCore() -> Selection {
        let environment = ProcessInfo.processInfo.environment
        let failing = Set((environment[failingCoresVariable] ?? "").lowercased().split(separator: ",").map(String.init))
        let step = nextStep(environment: environment, currentCore: BLAS.coreName, features: .current) {
            var result = selfCheck()
            if failing.contains(BLAS.coreName.lowercased()) {
                result.passed = false
                result.failure = "\(failingCoresVariable) names \(BLAS.coreName)"
            }
            return result
        }
        switch step {
        case .keep(let s):
            recorded.withLock { $0 = s }
            // The process runs on: set OpenBLAS to one thread now and end its idle workers, which would
            // otherwise spin for about 0.1 s beside the command's own threads.
            _ = BLAS.threadCount
            if case .fellBack(let core, let failed) = s {
                warn("OpenBLAS runs its own choice of kernels, \(core): the faster cores \(failed.joined(separator: ", ")) failed Sheaf's sgemm self-check, so BLAS-bound work (codebook training, encoding, the neural network) may run several times slower")
            }
            return s
        case .reexecute(let changes):
            for (name, value) in changes {
                if let value { setenv(name, value, 1) } else { unsetenv(name) }
            }
            execv("/proc/self/exe", CommandLine.unsafeArgv)
            // Only reached when exec failed: run on with what OpenBLAS chose.
            let error = String(cString: strerror(errno))
            unsetenv(markerVariable)
            let s = Selection.automatic(core: BLAS.coreName)
            recorded.withLock { $0 = s }
            warn("could not re-execute to select an OpenBLAS core (\(error)); running \(s.core)")
            return s
        }
    }

    // MARK: - Warning

    /// Warns once on stderr when OpenBLAS runs a generic core on a CPU with AVX2 and FMA, saying what
    /// to set. `BLAS` calls it on first use; a process whose selection already fell back (and said so)
    /// is not warned twice.
    public static func warnIfGeneric() {
        _ = warnedOnce
    }
    private static let warnedOnce: Void = {
        let core = BLAS.coreName
        let features = CPUFeatures.current
        guard isGeneric(core, on: features), let best = candidates(for: features).first else { return }
        if case .fellBack? = recorded.withLock({ $0 }) { return }
        if let set = ProcessInfo.processInfo.environment[variable] {
            warn("\(variable)=\(set) makes OpenBLAS run its generic \(core) kernels on a CPU with \(features); BLAS-bound work runs several times slower than with \(variable)=\(best)")
        } else {
            warn("OpenBLAS chose its generic \(core) kernels on a CPU with \(features); BLAS-bound work (codebook training, encoding, the neural network) runs several times slower. Set \(variable)=\(best) in the environment before the process starts")
        }
    }()

    static func warn(_ message: String) {
        FileHandle.standardError.write(Data(("sheaf: warning: " + message + "\n").utf8))
    }

    // MARK: - Self-check

    /// The outcome of `selfCheck()`.
    public struct SelfCheck: Sendable, Equatable {
        /// Whether every checked entry matched the naive product.
        public var passed: Bool
        /// Entries compared against the naive product.
        public var entriesChecked: Int
        /// The first mismatch, when there is one.
        public var failure: String?
        /// Wall time of the whole check.
        public var milliseconds: Double
    }

    /// `sgemm` against a naive loop on the shapes Sheaf uses: a tall-skinny projection (1000 × 384 by
    /// 384 × 64), codebook scoring against K = 4096 centroids (64 × 128 by 4096 × 128 transposed) and
    /// an odd-sized product with A transposed (37 × 29 by 29 × 53, every entry). The two large products
    /// are checked on 512 entries each, always including the last row and column. Takes a few
    /// milliseconds on any core.
    public static func selfCheck() -> SelfCheck {
        let start = DispatchTime.now().uptimeNanoseconds
        var checked = 0
        var failure: String?
        func run(_ name: String, m: Int, n: Int, k: Int, transposeA: Bool, transposeB: Bool, samples: Int?) {
            guard failure == nil else { return }
            let a = pattern(m * k, seed: 1), b = pattern(k * n, seed: 2)
            var c = [Float](repeating: 0, count: m * n)
            a.withUnsafeBufferPointer { pa in
                b.withUnsafeBufferPointer { pb in
                    c.withUnsafeMutableBufferPointer { pc in
                        BLAS.gemm(
                            m: m, n: n, k: k, a: pa.baseAddress!, transposeA: transposeA, b: pb.baseAddress!,
                            transposeB: transposeB, c: pc.baseAddress!)
                    }
                }
            }
            func entry(_ i: Int, _ j: Int) {
                var sum = 0.0, magnitude = 0.0
                for p in 0..<k {
                    let x = Double(transposeA ? a[p * m + i] : a[i * k + p])
                    let y = Double(transposeB ? b[j * k + p] : b[p * n + j])
                    sum += x * y
                    magnitude += abs(x * y)
                }
                checked += 1
                if failure == nil, abs(Double(c[i * n + j]) - sum) > 1e-4 * magnitude + 1e-6 {
                    failure = "\(name): C[\(i)][\(j)] = \(c[i * n + j]), expected \(Float(sum))"
                }
            }
            if let samples {
                var state: UInt64 = 0x5EED
                for s in 0..<samples {
                    state = state &* 6364136223846793005 &+ 1442695040888963407
                    let i = s % 4 == 0 ? m - 1 : Int((state >> 33) % UInt64(m))
                    let j = s % 4 == 1 ? n - 1 : Int((state >> 13) % UInt64(n))
                    entry(i, j)
                }
            } else {
                for i in 0..<m { for j in 0..<n { entry(i, j) } }
            }
        }
        run("tall-skinny", m: 1000, n: 64, k: 384, transposeA: false, transposeB: false, samples: 512)
        run("K=4096 scoring", m: 64, n: 4096, k: 128, transposeA: false, transposeB: true, samples: 512)
        run("odd sizes", m: 37, n: 53, k: 29, transposeA: true, transposeB: false, samples: nil)
        let ms = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e6
        return SelfCheck(passed: failure == nil, entriesChecked: checked, failure: failure, milliseconds: ms)
    }

    /// Deterministic values in [−1, 1] (a multiplicative hash of the index).
    private static func pattern(_ count: Int, seed: UInt32) -> [Float] {
        [Float](unsafeUninitializedCapacity: count) { buffer, initialized in
            for i in 0..<count {
                let h = (UInt32(truncatingIfNeeded: i) &+ seed &* 0x9E37_79B9) &* 2_654_435_761
                buffer[i] = Float(Int(h >> 21) - 1024) / 1024
            }
            initialized = count
        }
    }
}
