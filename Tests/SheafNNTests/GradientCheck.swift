import SheafNN
import SheafRandom
import Testing

/// Fixed-seed random numbers for the tests, on SheafRandom's SplitMix64.
extension SplitMix64 {
    /// Uniform in [lower, upper).
    mutating func float(_ lower: Float = -1, _ upper: Float = 1) -> Float {
        lower + (upper - lower) * Float(next() >> 40) / Float(1 << 24)
    }
    mutating func floats(_ n: Int, _ lower: Float = -1, _ upper: Float = 1) -> [Float] {
        (0..<n).map { _ in float(lower, upper) }
    }
    mutating func tensor(_ shape: [Int], _ requiresGrad: Bool = true, _ lower: Float = -1, _ upper: Float = 1) -> Tensor {
        Tensor(shape: shape, values: floats(Tensor.count(of: shape), lower, upper), requiresGrad: requiresGrad)
    }
}

/// The outcome of one gradient check: how many components were compared and the worst violation of
/// |analytic − numeric| ≤ atol + rtol·|numeric| as a ratio (≤ 1 passes).
struct GradientCheck {
    var compared = 0
    var worst: Double = 0
    var worstAt = ""
}

/// Checks the gradients `build` produces for every input that requires one, against central
/// differences of L = Σ_i out_i · r_i for fixed random weights r (so every output component matters
/// with a different weight). L is summed in Double; each input component is moved by ±eps.
func checkGradients(
    _ inputs: [Tensor], seed: UInt64 = 99, eps: Float = 1e-2, atol: Double = 1e-3, rtol: Double = 1e-2,
    _ build: (Tape, [Tensor]) -> Tensor
) -> GradientCheck {
    // Analytic (from zero: the same inputs may serve several checks).
    for input in inputs { input.zeroGrad() }
    let tape = Tape()
    let out = build(tape, inputs)
    var rng = SplitMix64(seed: seed)
    let weights = rng.floats(out.count)
    let loss = tape.sum(tape.mul(out, Tensor(shape: out.shape, values: weights)))
    tape.backward(loss)

    func lossValue() -> Double {
        let o = build(Tape(recording: false), inputs)
        var total = 0.0
        for i in 0..<o.count { total += Double(o.values[i]) * Double(weights[i]) }
        return total
    }

    var result = GradientCheck()
    for (k, input) in inputs.enumerated() where input.requiresGrad {
        let analytic = input.grad ?? [Float](repeating: 0, count: input.count)
        for i in 0..<input.count {
            let original = input.values[i]
            input.updateValues { $0[i] = original + eps }
            let plus = lossValue()
            input.updateValues { $0[i] = original - eps }
            let minus = lossValue()
            input.updateValues { $0[i] = original }
            let numeric = (plus - minus) / (2 * Double(eps))
            let ratio = abs(Double(analytic[i]) - numeric) / (atol + rtol * abs(numeric))
            result.compared += 1
            if !(ratio <= result.worst) {
                result.worst = ratio.isNaN ? .infinity : ratio
                result.worstAt = "input \(k) component \(i): analytic \(analytic[i]), numeric \(numeric)"
            }
        }
    }
    return result
}
