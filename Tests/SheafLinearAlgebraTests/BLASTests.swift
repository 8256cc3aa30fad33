import Foundation
import SheafLinearAlgebra
import Testing

@Suite struct BLASTests {
    /// A fixed-seed LCG for small test matrices.
    struct LCG {
        var state: UInt64
        mutating func next() -> Float {
            state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            return Float(state >> 40) / Float(1 << 24) - 0.5
        }
    }

    @Test(arguments: [(false, false), (true, false), (false, true), (true, true)])
    func gemmMatchesNaiveProduct(transposeA: Bool, transposeB: Bool) {
        let (m, n, k) = (5, 7, 3)
        var rng = LCG(state: 42)
        let a = (0..<(m * k)).map { _ in rng.next() }
        let b = (0..<(k * n)).map { _ in rng.next() }
        var c = [Float](repeating: 0, count: m * n)
        BLAS.gemm(m: m, n: n, k: k, a: a, transposeA: transposeA, b: b, transposeB: transposeB, c: &c)
        for i in 0..<m {
            for j in 0..<n {
                var s: Float = 0
                for p in 0..<k {
                    let av = transposeA ? a[p * m + i] : a[i * k + p]
                    let bv = transposeB ? b[j * k + p] : b[p * n + j]
                    s += av * bv
                }
                #expect(abs(c[i * n + j] - s) < 1e-5)
            }
        }
    }
}

@Suite struct BLASThreadingTests {
    @Test func openBLASRunsSingleThreaded() {
        #expect(BLAS.threadCount == 1)
    }

    /// The first gemm of a fresh process must itself make OpenBLAS single-threaded: before this was
    /// checked, only `threadCount` did, so a training that ran first called a multi-threaded OpenBLAS
    /// from concurrent workers and its result depended on timing (seen in CI).
    @Test func firstGemmOfAProcessSetsOneThread() async {
        await #expect(processExitsWith: .success) {
            var c = [Float](repeating: 0, count: 4)
            BLAS.gemm(m: 2, n: 2, k: 2, a: [1, 2, 3, 4], b: [1, 0, 0, 1], c: &c)
            guard c == [1, 2, 3, 4] else { exit(2) }
            exit(BLAS.reportedThreadCount == 1 ? 0 : 3)
        }
    }
}
