import CSheafDecode
import SheafNN
import SheafRandom
import Testing

/// `Tape.linear(codes, W, bias:)` and `gatherCodes`: the input layer in code space.
@Suite struct CodeOperationTests {
    func expectGood(_ c: GradientCheck, _ what: String, minimum: Int, sourceLocation: SourceLocation = #_sourceLocation) {
        #expect(c.compared >= minimum, "\(what): only \(c.compared) components compared", sourceLocation: sourceLocation)
        #expect(c.worst <= 1, "\(what): \(c.worstAt)", sourceLocation: sourceLocation)
    }

    /// n rows of L levels of K codes over D: random codes (each code of level 0 used twice, so dT
    /// rows receive sums), random magnitudes, one all-zero-magnitude row (padding).
    static func codes(n: Int, levels L: Int, perLevel K: Int, dimension D: Int, seed: UInt64) -> ResidualCodes {
        var rng = SplitMix64(seed: seed)
        var codes = (0..<(n * L)).map { _ in UInt32(rng.next() % UInt64(K)) }
        codes[L] = codes[0]  // row 1 shares row 0's level-0 code
        var mags = rng.floats(n * L, -1.5, 1.5)
        for l in 0..<L { mags[(n - 1) * L + l] = 0 }
        return ResidualCodes(
            codes: codes, magnitudes: mags, levels: L, codesPerLevel: K, centroids: rng.floats(L * K * D), dimension: D)
    }

    /// dW and db against central differences, for L = 1…4, D and H not multiples of 8, both kernel paths.
    @Test func gradientsMatchFiniteDifferences() {
        defer { sheaf_decode_force_isa(0) }
        for isa: Int32 in [1, 2] {
            sheaf_decode_force_isa(isa)
            for L in 1...4 {
                var rng = SplitMix64(seed: 60 + UInt64(L))
                let codes = Self.codes(n: 7, levels: L, perLevel: 5, dimension: 9, seed: UInt64(L))
                let w = rng.tensor([9, 11]), b = rng.tensor([11])
                expectGood(checkGradients([w, b]) { t, v in t.linear(codes, v[0], bias: v[1]) }, "codes · W + b, L \(L) isa \(isa)", minimum: 110)
                // Without a bias, and the gather alone (the tables a parameter).
                expectGood(checkGradients([w]) { t, v in t.linear(codes, v[0]) }, "codes · W, L \(L)", minimum: 99)
                let tables = rng.tensor([L * 5, 6])
                expectGood(checkGradients([tables]) { t, v in t.gatherCodes(codes, tables: v[0]) }, "gather, L \(L)", minimum: L * 30)
            }
        }
    }

    /// Values and gradients equal the dense layer over the decoded rows (`linear(decoded, W, b)`),
    /// within float32 rounding: the code-space layer is the same function.
    @Test func equalsTheDenseLayerOverDecodedRows() {
        var rng = SplitMix64(seed: 71)
        let codes = Self.codes(n: 40, levels: 3, perLevel: 16, dimension: 37, seed: 9)
        let w = rng.tensor([37, 13]), b = rng.tensor([13])
        let upstream = Tensor(shape: [40, 13], values: rng.floats(40 * 13))

        func run(_ layer: (Tape) -> Tensor) -> (y: [Float], dw: [Float], db: [Float]) {
            w.zeroGrad()
            b.zeroGrad()
            let t = Tape()
            let y = layer(t)
            t.backward(t.sum(t.mul(y, upstream)))
            return (y.values, w.grad!, b.grad!)
        }
        let sparse = run { $0.linear(codes, w, bias: b) }
        let dense = run { $0.linear(codes.decoded(), w, bias: b) }
        func close(_ a: [Float], _ c: [Float], _ what: String) {
            let scale = c.map(abs).max()!
            let worst = zip(a, c).map { abs($0 - $1) }.max()!
            #expect(worst <= 1e-5 * scale, "\(what): worst \(worst) against scale \(scale)")
        }
        close(sparse.y, dense.y, "y")
        close(sparse.dw, dense.dw, "dW")
        close(sparse.db, dense.db, "db")
        // The padding row (all magnitudes 0) is the bias.
        #expect(Array(sparse.y[(39 * 13)...]) == b.values)
    }

    /// An empty batch gives an empty result and no gradient trouble.
    @Test func emptyRows() {
        var rng = SplitMix64(seed: 72)
        let codes = ResidualCodes(codes: [], magnitudes: [], levels: 2, codesPerLevel: 4, centroids: rng.floats(2 * 4 * 3), dimension: 3)
        let w = rng.tensor([3, 2])
        let t = Tape()
        let y = t.linear(codes, w)
        #expect(y.shape == [0, 2])
        #expect(codes.decoded().shape == [0, 3])
    }
}
