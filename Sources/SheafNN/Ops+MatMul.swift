import SheafLinearAlgebra

extension Tape {
    /// x · W (or x · Wᵀ when `transposeB`): x is [..., k], W is [k, n] ([n, k] transposed); the
    /// result is [..., n]. All leading dimensions of x are rows of one `sgemm`.
    public func matmul(_ x: Tensor, _ w: Tensor, transposeB: Bool = false) -> Tensor {
        precondition(x.rank >= 1 && w.rank == 2, "matmul: x \(x.shape) · W \(w.shape)")
        let k = x.lastDimension
        let (wk, n) = transposeB ? (w.shape[1], w.shape[0]) : (w.shape[0], w.shape[1])
        precondition(k == wk, "matmul: inner dimensions differ, x \(x.shape) · W \(w.shape)\(transposeB ? "ᵀ" : "")")
        let m = x.rows
        let out: [Float]
        if m > 0, n > 0, k > 0 {
            // sgemm with beta = 0 writes every element of C without reading it.
            out = [Float](unsafeUninitializedCapacity: m * n) { c, initialized in
                x.values.withUnsafeBufferPointer { a in
                    w.values.withUnsafeBufferPointer { b in
                        BLAS.gemm(m: m, n: n, k: k, a: a.baseAddress!, b: b.baseAddress!, transposeB: transposeB, c: c.baseAddress!)
                    }
                }
                initialized = m * n
            }
        } else {
            out = [Float](repeating: 0, count: m * n)
        }
        return record(shape: Array(x.shape.dropLast()) + [n], values: out, inputs: [x, w]) { g in
            guard m > 0, n > 0, k > 0 else { return }
            if x.requiresGrad {
                // dX (m×k) += dY (m×n) · W (n×k): W is [k, n] → transposed; [n, k] → as is.
                w.values.withUnsafeBufferPointer { b in
                    x.writeOrAccumulateGrad { dx, fresh in
                        BLAS.gemm(m: m, n: k, k: n, a: g.baseAddress!, b: b.baseAddress!, transposeB: !transposeB, beta: fresh ? 0 : 1, c: dx.baseAddress!)
                    }
                }
            }
            if w.requiresGrad {
                x.values.withUnsafeBufferPointer { a in
                    w.writeOrAccumulateGrad { dw, fresh in
                        if transposeB {
                            // dW (n×k) += dYᵀ (n×m) · X (m×k)
                            BLAS.gemm(m: n, n: k, k: m, a: g.baseAddress!, transposeA: true, b: a.baseAddress!, beta: fresh ? 0 : 1, c: dw.baseAddress!)
                        } else {
                            // dW (k×n) += Xᵀ (k×m) · dY (m×n)
                            BLAS.gemm(m: k, n: n, k: m, a: a.baseAddress!, transposeA: true, b: g.baseAddress!, beta: fresh ? 0 : 1, c: dw.baseAddress!)
                        }
                    }
                }
            }
        }
    }

    /// Batched a · b (or a · bᵀ when `transposeB`): a is [batch, m, k], b is [batch, k, n]
    /// ([batch, n, k] transposed); the result is [batch, m, n]. One `sgemm` per batch entry.
    public func batchedMatmul(_ a: Tensor, _ b: Tensor, transposeB: Bool = false) -> Tensor {
        precondition(a.rank == 3 && b.rank == 3 && a.shape[0] == b.shape[0], "batchedMatmul: \(a.shape) · \(b.shape)")
        let batch = a.shape[0], m = a.shape[1], k = a.shape[2]
        let (bk, n) = transposeB ? (b.shape[2], b.shape[1]) : (b.shape[1], b.shape[2])
        precondition(k == bk, "batchedMatmul: inner dimensions differ, \(a.shape) · \(b.shape)\(transposeB ? "ᵀ" : "")")
        let (sa, sb, sc) = (m * k, k * n, m * n)
        let out: [Float]
        if m > 0, n > 0, k > 0, batch > 0 {
            out = [Float](unsafeUninitializedCapacity: batch * m * n) { pc, initialized in
                a.values.withUnsafeBufferPointer { pa in
                    b.values.withUnsafeBufferPointer { pb in
                        for i in 0..<batch {
                            BLAS.gemm(
                                m: m, n: n, k: k, a: pa.baseAddress! + i * sa, b: pb.baseAddress! + i * sb, transposeB: transposeB,
                                c: pc.baseAddress! + i * sc)
                        }
                    }
                }
                initialized = batch * m * n
            }
        } else {
            out = [Float](repeating: 0, count: batch * m * n)
        }
        return record(shape: [batch, m, n], values: out, inputs: [a, b]) { g in
            guard m > 0, n > 0, k > 0 else { return }
            if a.requiresGrad {
                b.values.withUnsafeBufferPointer { pb in
                    a.writeOrAccumulateGrad { da, fresh in
                        for i in 0..<batch {
                            BLAS.gemm(
                                m: m, n: k, k: n, a: g.baseAddress! + i * sc, b: pb.baseAddress! + i * sb, transposeB: !transposeB,
                                beta: fresh ? 0 : 1, c: da.baseAddress! + i * sa)
                        }
                    }
                }
            }
            if b.requiresGrad {
                a.values.withUnsafeBufferPointer { pa in
                    b.writeOrAccumulateGrad { db, fresh in
                        for i in 0..<batch {
                            if transposeB {
                                BLAS.gemm(
                                    m: n, n: k, k: m, a: g.baseAddress! + i * sc, transposeA: true, b: pa.baseAddress! + i * sa,
                                    beta: fresh ? 0 : 1, c: db.baseAddress! + i * sb)
                            } else {
                                BLAS.gemm(
                                    m: k, n: n, k: m, a: pa.baseAddress! + i * sa, transposeA: true, b: g.baseAddress! + i * sc,
                                    beta: fresh ? 0 : 1, c: db.baseAddress! + i * sb)
                            }
                        }
                    }
                }
            }
        }
    }
}
