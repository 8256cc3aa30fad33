#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Which columns of a row of logits are its positives and which its negatives, for
/// `Tape.contrastive`.
public struct ContrastiveTargets: Sendable {
    /// Per row, the columns that are positives (a row with none adds no term).
    public var positives: [[Int]]
    /// Per row, the columns that are negatives; nil: every column that is not one of the row's positives.
    public var negatives: [[Int]]?
    /// Per column, a key (an item): a negative whose key equals the positive's is left out of that
    /// positive's term (the same item is not its own negative). nil: no exclusion.
    public var columnKeys: [Int]?

    public init(positives: [[Int]], negatives: [[Int]]? = nil, columnKeys: [Int]? = nil) {
        self.positives = positives
        self.negatives = negatives
        self.columnKeys = columnKeys
    }
}

extension Tape {
    /// InfoNCE with several positives per row and chosen negatives, as a scalar.
    ///
    /// For row r and each positive p, with s = `logits` (already divided by the temperature) and
    /// N' = r's negatives whose key differs from p's:
    ///
    ///     ℓ(r, p) = −s[r, p] + log(exp s[r, p] + Σ_{j ∈ N'} exp s[r, j])
    ///
    /// The loss is the mean over rows that have positives of the mean of ℓ over their positives, so
    /// every row weighs the same however many positives it has. A row with positives but no
    /// negatives gives ℓ = 0. With one positive per row and every other column as a negative this
    /// is the plain InfoNCE (softmax cross-entropy over the row).
    public func contrastive(_ logits: Tensor, _ targets: ContrastiveTargets) -> Tensor {
        precondition(logits.rank == 2, "contrastive: logits must be [rows, columns], got \(logits.shape)")
        let (n, c) = (logits.shape[0], logits.shape[1])
        precondition(targets.positives.count == n, "contrastive: \(targets.positives.count) positive lists for \(n) rows")
        if let negatives = targets.negatives { precondition(negatives.count == n, "contrastive: \(negatives.count) negative lists for \(n) rows") }
        if let keys = targets.columnKeys { precondition(keys.count == c, "contrastive: \(keys.count) column keys for \(c) columns") }
        for row in targets.positives + (targets.negatives ?? []) {
            for j in row { precondition(j >= 0 && j < c, "contrastive: column \(j) outside 0..<\(c)") }
        }
        let active = targets.positives.indices.filter { !targets.positives[$0].isEmpty }
        guard !active.isEmpty else { return record(shape: [], values: [0], inputs: [logits]) { _ in } }
        let weightPerRow = 1 / Float(active.count)
        let threads = self.threads
        // Row r's loss and its gradient (∂loss/∂s[r, ·], already weighted), computed per row in parallel.
        var rowLoss = [Double](repeating: 0, count: n)
        var gradient = [Float](repeating: 0, count: logits.isTracked(self) ? n * c : 0)
        let keepGradient = !gradient.isEmpty
        logits.values.withUnsafeBufferPointer { s in
            rowLoss.withUnsafeMutableBufferPointer { losses in
                gradient.withUnsafeMutableBufferPointer { grad in
                    Parallel.forEach(active.count, threads: threads) { a in
                        let r = active[a]
                        let row = s.baseAddress! + r * c
                        let positives = targets.positives[r]
                        let negatives: [Int]
                        if let given = targets.negatives?[r] {
                            negatives = given
                        } else {
                            let isPositive = Set(positives)
                            negatives = (0..<c).filter { !isPositive.contains($0) }
                        }
                        let w = weightPerRow / Float(positives.count)
                        var total: Double = 0
                        var e = [Float](repeating: 0, count: negatives.count)
                        for p in positives {
                            let key = targets.columnKeys?[p]
                            var m = row[p]
                            for j in negatives where key == nil || targets.columnKeys![j] != key {
                                m = max(m, row[j])
                            }
                            let ep = expf(row[p] - m)
                            var z = ep
                            for (i, j) in negatives.enumerated() where key == nil || targets.columnKeys![j] != key {
                                e[i] = expf(row[j] - m)
                                z += e[i]
                            }
                            total += Double(logf(z) + m - row[p])
                            if keepGradient {
                                let g = grad.baseAddress! + r * c
                                g[p] += w * (ep / z - 1)
                                for (i, j) in negatives.enumerated() where key == nil || targets.columnKeys![j] != key {
                                    g[j] += w * e[i] / z
                                }
                            }
                        }
                        losses[r] = total / Double(positives.count)
                    }
                }
            }
        }
        var loss: Double = 0
        for r in active { loss += rowLoss[r] }  // in row order: the same bits on any thread count
        return record(shape: [], values: [Float(loss / Double(active.count))], inputs: [logits]) { [gradient] g in
            let k = g[0]
            logits.accumulateGrad { dl in for i in 0..<dl.count { dl[i] += k * gradient[i] } }
        }
    }

    /// Mean binary cross-entropy of `logits` (any shape) against labels in [0, 1], computed stably:
    /// ℓ = max(z, 0) − z·y + log(1 + e^−|z|).
    public func binaryCrossEntropy(_ logits: Tensor, labels: [Float]) -> Tensor {
        precondition(labels.count == logits.count && logits.count > 0, "binaryCrossEntropy: \(logits.count) logits, \(labels.count) labels")
        var total: Double = 0
        for (z, y) in zip(logits.values, labels) { total += Double(max(z, 0) - z * y + log1pf(expf(-abs(z)))) }
        let n = Float(logits.count)
        return record(shape: [], values: [Float(total / Double(n))], inputs: [logits]) { g in
            let k = g[0] / n
            logits.accumulateGrad { dz in
                for i in 0..<dz.count { dz[i] += k * (1 / (1 + expf(-logits.values[i])) - labels[i]) }
            }
        }
    }

    /// The logistic function σ(x) = 1 / (1 + e^−x), element-wise.
    public func sigmoid(_ a: Tensor) -> Tensor {
        let out = a.values.map { 1 / (1 + expf(-$0)) }
        return record(shape: a.shape, values: out, inputs: [a]) { g in
            a.accumulateGrad { da in for i in 0..<da.count { da[i] += g[i] * out[i] * (1 - out[i]) } }
        }
    }
}

extension Tensor {
    /// Whether an operation on `tape` with this input records a node.
    func isTracked(_ tape: Tape) -> Bool { tape.needsGrad(self) }
}
