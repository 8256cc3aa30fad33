import COpenBLAS

/// The OpenBLAS calls Sheaf uses. This is the only file that calls `cblas_*` or `openblas_*`.
public enum BLAS {
    /// Sets the number of OpenBLAS threads. Call it once at start-up, and do not call BLAS from
    /// inside threads of your own while OpenBLAS runs multi-threaded.
    public static func setThreadCount(_ n: Int) { openblas_set_num_threads(Int32(n)) }

    /// The number of OpenBLAS threads.
    public static var threadCount: Int { Int(openblas_get_num_threads()) }

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
        cblas_sgemm(
            CblasRowMajor, transposeA ? CblasTrans : CblasNoTrans, transposeB ? CblasTrans : CblasNoTrans,
            blasint(m), blasint(n), blasint(k), alpha, a, blasint(transposeA ? m : k), b,
            blasint(transposeB ? k : n), beta, c, blasint(n))
    }
}
