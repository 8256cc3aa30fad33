import COpenBLAS

/// The OpenBLAS calls Sheaf uses. This is the only file that calls `cblas_*` or `openblas_*`.
///
/// OpenBLAS runs single-threaded, set once on first use: Sheaf parallelises above it, on row blocks
/// of its own, so BLAS threads never nest inside Sheaf's, and no call changes the process-wide thread
/// count while another runs (which made results depend on timing).
public enum BLAS {
    /// Sets OpenBLAS to one thread, exactly once (a thread-safe lazy global).
    private static let singleThreaded: Void = openblas_set_num_threads(1)

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
    public static func gemm(
        m: Int, n: Int, k: Int, alpha: Float = 1, a: UnsafePointer<Float>, transposeA: Bool = false,
        b: UnsafePointer<Float>, transposeB: Bool = false, beta: Float = 0, c: UnsafeMutablePointer<Float>
    ) {
        _ = singleThreaded
        cblas_sgemm(
            CblasRowMajor, transposeA ? CblasTrans : CblasNoTrans, transposeB ? CblasTrans : CblasNoTrans,
            blasint(m), blasint(n), blasint(k), alpha, a, blasint(transposeA ? m : k), b,
            blasint(transposeB ? k : n), beta, c, blasint(n))
    }
}
