import CSheafNN
import SheafLinearAlgebra

extension Tape {
    /// x · W (or x · Wᵀ when `transposeB`): x is [..., k], W is [k, n] ([n, k] transposed); the
    /// result is [..., n]. All leading dimensions of x are rows of the product.
    public func matmul(_ x: Tensor, _ w: Tensor, transposeB: Bool = false) -> Tensor {
        product(x, w, bias: nil, transposeB: transposeB, op: "matmul")
    }

    /// x · W + b (or x · Wᵀ + b when `transposeB`, for weights stored [out, in] as PyTorch does), a
    /// fully connected layer: x is [..., k], W is [k, n] ([n, k] transposed), b is [n]; the result
    /// is [..., n]. One operation instead of `add(matmul(x, W), b)`: the bias is written first and
    /// the product added onto it, and the backward pass sums dY's columns for db.
    public func linear(_ x: Tensor, _ w: Tensor, bias: Tensor, transposeB: Bool = false) -> Tensor {
        product(x, w, bias: bias, transposeB: transposeB, op: "linear")
    }

    /// The rows of x are split into fixed blocks (`Kernel.gemmRowChunk`), one `sgemm` each, run on
    /// the tape's threads. dX uses the same blocks; dW and db are sums over rows, computed as
    /// per-block partial sums added in block order.
    private func product(_ x: Tensor, _ w: Tensor, bias: Tensor?, transposeB: Bool, op: String) -> Tensor {
        precondition(x.rank >= 1 && w.rank == 2, "\(op): x \(x.shape) · W \(w.shape)")
        let k = x.lastDimension
        let (wk, n) = transposeB ? (w.shape[1], w.shape[0]) : (w.shape[0], w.shape[1])
        precondition(k == wk, "\(op): inner dimensions differ, x \(x.shape) · W \(w.shape)\(transposeB ? "ᵀ" : "")")
        if let bias { precondition(bias.shape == [n], "\(op): bias \(bias.shape) for \(n) outputs") }
        let m = Tensor.count(of: Array(x.shape.dropLast()))  // not x.rows, which is 0 when k is
        let threads = self.threads
        let block = Kernel.gemmRowChunk(k: k, n: n)
        var out = unfilledFloats(m * n)
        out.withUnsafeMutableBufferPointer { c in
            if let bias {
                bias.values.withUnsafeBufferPointer { pb in
                    Parallel.forEachChunk(m, chunk: block, threads: threads) { r in
                        for row in r { (c.baseAddress! + row * n).initialize(from: pb.baseAddress!, count: n) }
                    }
                }
            }
            guard m > 0, n > 0 else { return }
            guard k > 0 else {
                if bias == nil { c.initialize(repeating: 0) }
                return
            }
            x.values.withUnsafeBufferPointer { a in
                w.values.withUnsafeBufferPointer { b in
                    Parallel.forEachChunk(m, chunk: block, threads: threads) { r in
                        // beta 0 writes every element of C without reading it.
                        BLAS.gemm(
                            m: r.count, n: n, k: k, a: a.baseAddress! + r.lowerBound * k, b: b.baseAddress!, transposeB: transposeB,
                            beta: bias == nil ? 0 : 1, c: c.baseAddress! + r.lowerBound * n)
                    }
                }
            }
        }
        let inputs = bias.map { [x, w, $0] } ?? [x, w]
        return record(shape: Array(x.shape.dropLast()) + [n], values: out, inputs: inputs) { g in
            guard m > 0, n > 0 else { return }
            if x.requiresGrad {
                // dX (m×k) += dY (m×n) · W (n×k): W is [k, n] → transposed; [n, k] → as is.
                w.values.withUnsafeBufferPointer { b in
                    x.writeOrAccumulateGrad { dx, fresh in
                        if k == 0 { return }
                        Parallel.forEachChunk(m, chunk: block, threads: threads) { r in
                            BLAS.gemm(
                                m: r.count, n: k, k: n, a: g.baseAddress! + r.lowerBound * n, b: b.baseAddress!, transposeB: !transposeB,
                                beta: fresh ? 0 : 1, c: dx.baseAddress! + r.lowerBound * k)
                        }
                    }
                }
            }
            if w.requiresGrad, k > 0 {
                x.values.withUnsafeBufferPointer { a in
                    w.accumulateGrad(overRows: m, chunk: Kernel.gemmReductionChunk(k: k, n: n), threads: threads) { r, dw, accumulate in
                        let (pa, pg) = (a.baseAddress! + r.lowerBound * k, g.baseAddress! + r.lowerBound * n)
                        if transposeB {
                            // dW (n×k) += dYᵀ (n×m) · X (m×k)
                            BLAS.gemm(m: n, n: k, k: r.count, a: pg, transposeA: true, b: pa, beta: accumulate ? 1 : 0, c: dw)
                        } else {
                            // dW (k×n) += Xᵀ (k×m) · dY (m×n)
                            BLAS.gemm(m: k, n: n, k: r.count, a: pa, transposeA: true, b: pg, beta: accumulate ? 1 : 0, c: dw)
                        }
                    }
                }
            }
            if let bias, bias.requiresGrad {
                bias.accumulateGrad(overRows: m, chunk: Kernel.gemmReductionChunk(k: k, n: n), threads: threads) { r, db, accumulate in
                    if !accumulate { db.initialize(repeating: 0, count: n) }
                    sheaf_column_sums(g.baseAddress! + r.lowerBound * n, nil, r.count, n, db)
                }
            }
        }
    }

    /// Batched a · b (or a · bᵀ when `transposeB`): a is [batch, m, k], b is [batch, k, n]
    /// ([batch, n, k] transposed); the result is [batch, m, n]. One `sgemm` per batch entry; the
    /// entries run on the tape's threads.
    public func batchedMatmul(_ a: Tensor, _ b: Tensor, transposeB: Bool = false) -> Tensor {
        precondition(a.rank == 3 && b.rank == 3 && a.shape[0] == b.shape[0], "batchedMatmul: \(a.shape) · \(b.shape)")
        let batch = a.shape[0], m = a.shape[1], k = a.shape[2]
        let (bk, n) = transposeB ? (b.shape[2], b.shape[1]) : (b.shape[1], b.shape[2])
        precondition(k == bk, "batchedMatmul: inner dimensions differ, \(a.shape) · \(b.shape)\(transposeB ? "ᵀ" : "")")
        let (sa, sb, sc) = (m * k, k * n, m * n)
        let threads = self.threads
        let out: [Float]
        if m > 0, n > 0, k > 0, batch > 0 {
            out = [Float](unsafeUninitializedCapacity: batch * m * n) { pc, initialized in
                a.values.withUnsafeBufferPointer { pa in
                    b.values.withUnsafeBufferPointer { pb in
                        Parallel.forEach(batch, threads: threads) { i in
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
                        Parallel.forEach(batch, threads: threads) { i in
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
                        Parallel.forEach(batch, threads: threads) { i in
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
