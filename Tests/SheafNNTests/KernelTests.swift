import CSheafNN
import Foundation
import SheafNN
import SheafRandom
import Testing

/// The C kernels behind SheafNN's operations, on both paths (AVX2+FMA when the CPU has it, and the
/// portable one, forced on this thread), against scalar references computed in Double.
@Suite struct KernelTests {
    /// The paths to check: the portable one always, the automatic one when it differs.
    static let paths: [Int32] = sheaf_nn_isa() == 2 ? [1, 0] : [1]

    func onEachPath(_ body: (String) -> Void) {
        for path in Self.paths {
            sheaf_nn_force_isa(path)
            defer { sheaf_nn_force_isa(0) }
            body(path == 1 ? "portable" : "avx2")
        }
    }

    /// Lengths around the 8-lane vectors, so tails of every size are covered.
    static let lengths = [1, 2, 7, 8, 9, 13, 16, 31, 64, 67]

    @Test func expAndErfAgainstLibm() {
        onEachPath { path in
            let xs = (0...200_000).map { Float($0 - 100_000) / 10_000 }  // −10 … 10
            var y = [Float](repeating: 0, count: xs.count)
            sheaf_erf(xs, &y, xs.count)
            let erfError = zip(xs, y).map { abs(Double($1) - erf(Double($0))) }.max()!
            #expect(erfError <= 5e-7, "\(path): erf error \(erfError)")

            let es = (0...175_000).map { -87 + Float($0) / 1_000 }  // −87 … 88
            var ey = [Float](repeating: 0, count: es.count)
            sheaf_exp(es, &ey, es.count)
            let expError = zip(es, ey).map { abs(Double($1) / exp(Double($0)) - 1) }.max()!
            #expect(expError <= 2.5e-7, "\(path): exp relative error \(expError)")

            let under: [Float] = [-87.4, -88, -100, -1e30, -.infinity]
            var uy = [Float](repeating: 1, count: under.count)
            sheaf_exp(under, &uy, under.count)
            #expect(uy == [0, 0, 0, 0, 0], "\(path): exp below the underflow limit must be exactly 0")

            // Tails go through the same vector code: any split of an array gives the same bits.
            let whole = Array(ey[0..<67])
            for n in Self.lengths {
                var part = [Float](repeating: 0, count: n)
                sheaf_exp(Array(es[0..<n]), &part, n)
                #expect(part == Array(whole[0..<n]), "\(path): exp of the first \(n) differs from the whole array's")
            }
        }
    }

    @Test func geluForwardAndBackward() {
        var rng = SplitMix64(seed: 41)
        onEachPath { path in
            for n in Self.lengths {
                let x = rng.floats(n, -6, 6), g = rng.floats(n), start = rng.floats(n)
                var y = [Float](repeating: 0, count: n), cdf = y
                sheaf_gelu_forward(x, &y, &cdf, n)
                var fresh = y, summed = start
                sheaf_gelu_backward(x, cdf, g, &fresh, n, 0)
                sheaf_gelu_backward(x, cdf, g, &summed, n, 1)
                for i in 0..<n {
                    let v = Double(x[i]), phi = 0.5 * (1 + erf(v / 2.0.squareRoot()))
                    let dy = phi + v * exp(-0.5 * v * v) / (2 * Double.pi).squareRoot()
                    #expect(abs(Double(cdf[i]) - phi) <= 5e-7, "\(path): Φ(\(v))")
                    #expect(abs(Double(y[i]) - v * phi) <= 3e-6, "\(path): gelu(\(v))")
                    #expect(abs(Double(fresh[i]) - Double(g[i]) * dy) <= 2e-6, "\(path): gelu'(\(v))")
                    #expect(abs(Double(summed[i]) - Double(start[i]) - Double(g[i]) * dy) <= 2e-6, "\(path): accumulated gelu'")
                }
            }
        }
    }

    /// Scalar masked softmax: the allowed columns of row r are key_allowed[j] and (causal) j ≤ r.
    func referenceSoftmax(_ s: [Float], rows: Int, cols: Int, scale: Float, causal: Bool, keys: [UInt8]?) -> [Double] {
        var out = [Double](repeating: 0, count: rows * cols)
        for r in 0..<rows {
            let allowed = (0..<cols).filter { j in (!causal || j <= r) && (keys?[j] ?? 1) != 0 }
            if allowed.isEmpty {
                for j in 0..<cols { out[r * cols + j] = 1 / Double(cols) }
                continue
            }
            let m = allowed.map { Double(s[r * cols + $0] * scale) }.max()!
            let z = allowed.map { exp(Double(s[r * cols + $0] * scale) - m) }.reduce(0, +)
            for j in allowed { out[r * cols + j] = exp(Double(s[r * cols + j] * scale) - m) / z }
        }
        return out
    }

    @Test func maskedSoftmaxForwardAndBackward() {
        var rng = SplitMix64(seed: 42)
        onEachPath { path in
            for cols in Self.lengths {
                let rows = min(cols, 9)
                let s = rng.floats(rows * cols, -8, 8), g = rng.floats(rows * cols)
                var keys = (0..<cols).map { _ in UInt8(rng.next() % 4 == 0 ? 0 : 1) }
                keys[0] = 1
                for (causal, mask) in [(false, nil), (true, nil), (false, keys), (true, keys), (false, [UInt8](repeating: 0, count: cols))] as [(Bool, [UInt8]?)] {
                    var y = [Float](repeating: -1, count: rows * cols)
                    if let mask {
                        mask.withUnsafeBufferPointer { sheaf_softmax_rows(s, &y, rows, cols, 0.7, causal ? 1 : 0, $0.baseAddress!) }
                    } else {
                        sheaf_softmax_rows(s, &y, rows, cols, 0.7, causal ? 1 : 0, nil)
                    }
                    let expected = referenceSoftmax(s, rows: rows, cols: cols, scale: 0.7, causal: causal, keys: mask)
                    let worst = zip(y, expected).map { abs(Double($0) - $1) }.max()!
                    #expect(worst <= 1e-6, "\(path): softmax rows \(rows)×\(cols), causal \(causal), mask \(mask != nil): \(worst)")
                    for (i, e) in expected.enumerated() where e == 0 {
                        #expect(y[i] == 0, "\(path): a masked weight must be exactly 0")
                    }
                    // Backward: dx = scale · y ⊙ (g − Σ g·y).
                    var dx = [Float](repeating: 0, count: rows * cols)
                    sheaf_softmax_backward_rows(y, g, &dx, rows, cols, 0.7, 0)
                    for r in 0..<rows {
                        let dot = (0..<cols).reduce(0.0) { $0 + Double(g[r * cols + $1]) * Double(y[r * cols + $1]) }
                        for j in 0..<cols {
                            let e = 0.7 * Double(y[r * cols + j]) * (Double(g[r * cols + j]) - dot)
                            #expect(abs(Double(dx[r * cols + j]) - e) <= 1e-6, "\(path): softmax backward")
                        }
                    }
                }
            }
        }
    }

    @Test func layerNormRowsAndColumnSums() {
        var rng = SplitMix64(seed: 43)
        onEachPath { path in
            for d in Self.lengths where d > 1 {
                let rows = 5
                let x = rng.floats(rows * d, -3, 3), gamma = rng.floats(d, 0.5, 1.5), beta = rng.floats(d), g = rng.floats(rows * d)
                var y = [Float](repeating: 0, count: rows * d), xhat = y, inv = [Float](repeating: 0, count: rows)
                sheaf_layernorm_forward(x, gamma, beta, &y, &xhat, &inv, rows, d, 1e-5)
                var dx = [Float](repeating: 0, count: rows * d)
                sheaf_layernorm_backward(g, gamma, xhat, inv, &dx, rows, d, 0)
                for r in 0..<rows {
                    let row = (0..<d).map { Double(x[r * d + $0]) }
                    let mu = row.reduce(0, +) / Double(d)
                    let istd = 1 / (row.map { ($0 - mu) * ($0 - mu) }.reduce(0, +) / Double(d) + 1e-5).squareRoot()
                    #expect(abs(Double(inv[r]) - istd) <= 1e-5 * istd, "\(path): inv std")
                    let h = row.map { ($0 - mu) * istd }
                    let gh = (0..<d).map { Double(g[r * d + $0]) * Double(gamma[$0]) }
                    let s1 = gh.reduce(0, +), s2 = zip(gh, h).map(*).reduce(0, +)
                    for j in 0..<d {
                        #expect(abs(Double(y[r * d + j]) - (h[j] * Double(gamma[j]) + Double(beta[j]))) <= 2e-5, "\(path): layer norm d=\(d)")
                        let e = istd / Double(d) * (Double(d) * gh[j] - s1 - h[j] * s2)
                        #expect(abs(Double(dx[r * d + j]) - e) <= 2e-5 * max(1, abs(e)), "\(path): layer norm backward d=\(d)")
                    }
                }
                // Column sums, with and without a second factor, added onto what is there.
                var sums = [Float](repeating: 1, count: d), products = [Float](repeating: 0, count: d)
                sheaf_column_sums(g, nil, rows, d, &sums)
                sheaf_column_sums(g, xhat, rows, d, &products)
                for j in 0..<d {
                    let s = (0..<rows).reduce(1.0) { $0 + Double(g[$1 * d + j]) }
                    let p = (0..<rows).reduce(0.0) { $0 + Double(g[$1 * d + j]) * Double(xhat[$1 * d + j]) }
                    #expect(abs(Double(sums[j]) - s) <= 1e-5 && abs(Double(products[j]) - p) <= 1e-5, "\(path): column sums")
                }
            }
        }
    }

    @Test func adamWAxpyAndSumOfSquares() {
        var rng = SplitMix64(seed: 44)
        onEachPath { path in
            for n in Self.lengths {
                let w0 = rng.floats(n), m0 = rng.floats(n, -0.1, 0.1), v0 = rng.floats(n, 0, 0.01), g = rng.floats(n)
                for withGradient in [true, false] {
                    var (w, m, v) = (w0, m0, v0)
                    if withGradient {
                        sheaf_adamw(&w, &m, &v, g, n, 0.01, 0.9, 0.999, 1 / 0.19, 1 / 0.002, 1e-8, 0.1)
                    } else {
                        sheaf_adamw(&w, &m, &v, nil, n, 0.01, 0.9, 0.999, 1 / 0.19, 1 / 0.002, 1e-8, 0.1)
                    }
                    // The coefficients as the kernel has them: float β and 1 − β rounded in float.
                    let (b1, b2) = (Double(Float(0.9)), Double(Float(0.999)))
                    let (c1, c2) = (Double(1 - Float(0.9)), Double(1 - Float(0.999)))
                    for i in 0..<n {
                        let gi = withGradient ? Double(g[i]) : 0
                        let mi = b1 * Double(m0[i]) + c1 * gi, vi = b2 * Double(v0[i]) + c2 * gi * gi
                        let wi = Double(w0[i]) - 0.01 * ((mi / 0.19) / ((vi / 0.002).squareRoot() + 1e-8) + 0.1 * Double(w0[i]))
                        #expect(abs(Double(m[i]) - mi) <= 1e-7 && abs(Double(v[i]) - vi) <= 1e-8, "\(path): AdamW moments \(m[i]) \(mi), \(v[i]) \(vi)")
                        #expect(abs(Double(w[i]) - wi) <= 1e-6, "\(path): AdamW weight \(w[i]) vs \(wi)")
                    }
                }
                var y = rng.floats(n)
                let y0 = y
                sheaf_axpy(-2, g, &y, n, 1)
                #expect((0..<n).allSatisfy { abs(Double(y[$0]) - (Double(y0[$0]) - 2 * Double(g[$0]))) <= 1e-6 }, "\(path): axpy")
                var rows = [Float](repeating: 0, count: 3 * n)
                let a = rng.floats(3 * n)
                sheaf_add_rows(a, g, &rows, 3, n)
                #expect((0..<(3 * n)).allSatisfy { rows[$0] == a[$0] + g[$0 % n] }, "\(path): add rows")
                let squares = sheaf_sum_squares(g, n)
                #expect(abs(squares - g.reduce(0.0) { $0 + Double($1) * Double($1) }) <= 1e-12 * Double(n), "\(path): sum of squares")
            }
        }
    }

    @Test func siluRMSNormAndRowProducts() {
        var rng = SplitMix64(seed: 45)
        onEachPath { path in
            for d in Self.lengths {
                let rows = 4, n = rows * d
                let x = rng.floats(n, -8, 8), g = rng.floats(n), gamma = rng.floats(d, 0.5, 1.5), start = rng.floats(n)
                // SiLU and its derivative.
                var y = [Float](repeating: 0, count: n), dx = start
                sheaf_silu_forward(x, &y, n)
                sheaf_silu_backward(x, g, &dx, n, 1)
                for i in 0..<n {
                    let v = Double(x[i]), sig = 1 / (1 + exp(-v))
                    #expect(abs(Double(y[i]) - v * sig) <= 2e-6, "\(path): silu(\(v))")
                    let e = Double(start[i]) + Double(g[i]) * sig * (1 + v * (1 - sig))
                    #expect(abs(Double(dx[i]) - e) <= 2e-6, "\(path): silu'(\(v))")
                }
                // RMS norm forward and input gradient.
                var out = [Float](repeating: 0, count: n), inv = [Float](repeating: 0, count: rows), dn = out
                sheaf_rmsnorm_forward(x, gamma, &out, &inv, rows, d, 1e-6)
                sheaf_rmsnorm_backward(g, gamma, x, inv, &dn, rows, d, 0)
                for r in 0..<rows {
                    let row = (0..<d).map { Double(x[r * d + $0]) }
                    let i = 1 / (row.map { $0 * $0 }.reduce(0, +) / Double(d) + 1e-6).squareRoot()
                    #expect(abs(Double(inv[r]) - i) <= 1e-5 * i, "\(path): inverse RMS")
                    let gh = (0..<d).map { Double(g[r * d + $0]) * Double(gamma[$0]) }
                    let m = (0..<d).reduce(0.0) { $0 + gh[$1] * row[$1] * i } / Double(d)
                    for j in 0..<d {
                        #expect(abs(Double(out[r * d + j]) - row[j] * i * Double(gamma[j])) <= 2e-5 * max(1, row[j] * i), "\(path): rms norm")
                        let e = i * (gh[j] - row[j] * i * m)
                        #expect(abs(Double(dn[r * d + j]) - e) <= 2e-5 * max(1, abs(e)), "\(path): rms norm backward")
                    }
                }
                // Row products, written and accumulated.
                var p = [Float](repeating: 0, count: n), q = start
                sheaf_mul_rows(x, gamma, &p, rows, d, 0)
                sheaf_mul_rows(x, gamma, &q, rows, d, 1)
                #expect((0..<n).allSatisfy { p[$0] == x[$0] * gamma[$0 % d] }, "\(path): row product")
                #expect((0..<n).allSatisfy { abs(Double(q[$0]) - Double(start[$0]) - Double(x[$0]) * Double(gamma[$0 % d])) <= 1e-5 }, "\(path): accumulated row product")
            }
        }
    }
}

/// The dropout-mask kernels against SplitMix64 in Swift: four 16-bit decisions per draw, low bits first.
@Suite struct DropoutKernelTests {
    func reference(_ n: Int, state: UInt64, threshold: UInt16, keep: Float) -> [Float] {
        var g = SplitMix64(seed: state)
        var out: [Float] = []
        while out.count < n {
            var bits = g.next()
            for _ in 0..<min(4, n - out.count) {
                out.append(UInt16(truncatingIfNeeded: bits) < threshold ? 0 : keep)
                bits >>= 16
            }
        }
        return out
    }

    @Test(arguments: [0, 1, 3, 4, 5, 255, 256, 257, 1_000])
    func factorsAndApplyMatchTheReference(n: Int) {
        let (state, threshold, keep): (UInt64, UInt16, Float) = (0xDEAD_BEEF_1234, 32_768, 2)
        let want = reference(n, state: state, threshold: threshold, keep: keep)
        var factors = [Float](repeating: -1, count: n)
        factors.withUnsafeMutableBufferPointer { sheaf_dropout_factors($0.baseAddress, n, state, threshold, keep) }
        #expect(factors == want)
        var rng = SplitMix64(seed: UInt64(n))
        let x = (0..<n).map { _ in rng.float(in: -1...1) }
        var out = [Float](repeating: 7, count: n)
        sheaf_dropout_apply(x, &out, n, state, threshold, keep, 0)
        #expect(out == zip(x, want).map { $0 * $1 })
        sheaf_dropout_apply(x, &out, n, state, threshold, keep, 1)
        #expect(out == zip(x, want).map { $0 * $1 + $0 * $1 })
        if n >= 256 { #expect(want.filter { $0 == 0 }.count > n / 3 && want.filter { $0 == 0 }.count < 2 * n / 3) }
    }
}
