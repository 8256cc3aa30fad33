import COpenBLAS
import Foundation

/// The OpenBLAS calls Sheaf uses. This is the only file that calls `cblas_*` or `openblas_*`.
///
/// OpenBLAS runs single-threaded, set once on first use: Sheaf parallelises above it, on row blocks
/// of its own, so BLAS threads never nest inside Sheaf's, and no call changes the process-wide thread
/// count while another runs (which made results depend on timing).
public enum BLAS {
    /// Sets OpenBLAS to one thread, exactly once (a thread-safe lazy global), and warns once when
    /// OpenBLAS runs generic kernels on a CPU that has faster ones (`OpenBLASCore.warnIfGeneric`).
    private static let singleThreaded: Void = {
        openblas_set_num_threads(1)
        stopIdleWorkers()
        OpenBLASCore.warnIfGeneric()
    }()

    /// Ends OpenBLAS's worker threads, which Sheaf never gives work to. A pthreads build of OpenBLAS starts
    /// them when it loads, and each spins on `sched_yield` for about 2^28 cycles (0.1 s at 2.8 GHz) before it
    /// sleeps, taking cycles from Sheaf's own threads: 9.7% of the samples of a 20,000-item load on 2 cores.
    /// `blas_thread_shutdown_` (looked up at run time: the OpenMP and serial builds do not have it) joins
    /// them; OpenBLAS starts them again by itself if the host program later runs it multi-threaded.
    private static func stopIdleWorkers() {
        guard let symbol = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "blas_thread_shutdown_") else { return }
        typealias Shutdown = @convention(c) () -> Int32
        _ = unsafeBitCast(symbol, to: Shutdown.self)()
    }

    /// The kernel set ("core") OpenBLAS chose when it loaded, e.g. "Haswell", "SkylakeX" or the generic
    /// "Prescott" (`openblas_get_corename`). Set `OPENBLAS_CORETYPE` before the process starts to change it.
    public static var coreName: String { String(cString: openblas_get_corename()) }

    /// OpenBLAS's build description (`openblas_get_config`): version, DYNAMIC_ARCH, the core, thread limit.
    public static var configuration: String { String(cString: openblas_get_config()).trimmingCharacters(in: .whitespaces) }

    /// The number of OpenBLAS threads as OpenBLAS itself reports it, without configuring it first:
    /// 1 once any Sheaf BLAS call has run, OpenBLAS's own default (the core count) before.
    public static var reportedThreadCount: Int { Int(openblas_get_num_threads()) }

    /// The number of OpenBLAS threads (1 once Sheaf has used BLAS).
    public static var threadCount: Int {
        _ = singleThreaded
        return Int(openblas_get_num_threads())
    }

    /// C ← alpha · op(A) · op(B) + beta · C, all row-major float32.
    ///
    /// - Parameters:
    ///   - a: m × k (or k × m when `transposeA`).
    ///   - b: k × n (or n × k when `transposeB`).
    ///   - c: m × n, overwritten (accumulated into when beta ≠ 0).
    ///   - lda, ldb, ldc: the distance between rows of each stored matrix, for matrices that are
    ///     column slices of wider ones (e.g. one attention head of a [T, H·d] activation); by
    ///     default the stored row length (contiguous).
    public static func gemm(
        m: Int, n: Int, k: Int, alpha: Float = 1, a: UnsafePointer<Float>, transposeA: Bool = false, lda: Int? = nil,
        b: UnsafePointer<Float>, transposeB: Bool = false, ldb: Int? = nil, beta: Float = 0,
        c: UnsafeMutablePointer<Float>, ldc: Int? = nil
    ) {
        _ = singleThreaded
        let storedA = transposeA ? m : k, storedB = transposeB ? k : n
        precondition((lda ?? storedA) >= storedA && (ldb ?? storedB) >= storedB && (ldc ?? n) >= n, "gemm: leading dimension below the row length")
        cblas_sgemm(
            CblasRowMajor, transposeA ? CblasTrans : CblasNoTrans, transposeB ? CblasTrans : CblasNoTrans,
            blasint(m), blasint(n), blasint(k), alpha, a, blasint(lda ?? storedA), b,
            blasint(ldb ?? storedB), beta, c, blasint(ldc ?? n))
    }
}
