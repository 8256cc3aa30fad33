#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import CSheafNN

/// AdamW (Loshchilov & Hutter): Adam moments with bias correction, and weight decay applied to the
/// weights directly (decoupled), not through the gradient.
///
/// θ ← θ − lr · (m̂ / (√v̂ + ε) + λ · θ), with λ = 0 for the `undecayed` parameters (biases, norms).
public final class AdamW {
    public struct Configuration: Sendable {
        public var beta1: Float = 0.9
        public var beta2: Float = 0.999
        public var epsilon: Float = 1e-8
        public var weightDecay: Float = 0.01
        public init(beta1: Float = 0.9, beta2: Float = 0.999, epsilon: Float = 1e-8, weightDecay: Float = 0.01) {
            self.beta1 = beta1
            self.beta2 = beta2
            self.epsilon = epsilon
            self.weightDecay = weightDecay
        }
    }

    public let configuration: Configuration
    /// Every parameter, decayed ones first.
    public let parameters: [Tensor]
    /// How many threads an update uses (each parameter is updated in fixed runs of values, so the
    /// result does not depend on it).
    public var threads: Int
    private let decays: [Bool]
    private var firstMoments: [[Float]]
    private var secondMoments: [[Float]]
    /// Steps taken so far.
    public private(set) var stepCount = 0

    public init(
        decayed: [Tensor], undecayed: [Tensor] = [], configuration: Configuration = Configuration(), threads: Int = Tape.defaultThreads
    ) {
        let all = decayed + undecayed
        for p in all { precondition(p.requiresGrad, "AdamW: a parameter of shape \(p.shape) does not require a gradient") }
        precondition(Set(all.map(ObjectIdentifier.init)).count == all.count, "AdamW: a parameter is listed twice")
        precondition(threads >= 1, "AdamW needs at least one thread")
        self.configuration = configuration
        self.threads = threads
        parameters = all
        decays = decayed.map { _ in true } + undecayed.map { _ in false }
        firstMoments = all.map { [Float](repeating: 0, count: $0.count) }
        secondMoments = all.map { [Float](repeating: 0, count: $0.count) }
    }

    /// One update at `learningRate` from the current gradients (a parameter without a gradient is
    /// treated as having a zero one: its moments decay and weight decay still applies).
    public func step(learningRate: Float) {
        stepCount += 1
        let c = configuration
        let correction1 = 1 - powf(c.beta1, Float(stepCount))
        let correction2 = 1 - powf(c.beta2, Float(stepCount))
        let (inv1, inv2) = (1 / correction1, 1 / correction2)
        let threads = self.threads
        for (k, p) in parameters.enumerated() where p.count > 0 {
            let decay = decays[k] ? c.weightDecay : 0
            firstMoments[k].withUnsafeMutableBufferPointer { m in
                secondMoments[k].withUnsafeMutableBufferPointer { v in
                    p.updateValues { w in
                        func update(_ g: UnsafePointer<Float>?) {
                            // Fixed runs of values, each updated alone: the same result on any thread count.
                            Parallel.forEachChunk(w.count, chunk: Kernel.elementChunk, threads: threads) { r in
                                let i = r.lowerBound
                                sheaf_adamw(
                                    w.baseAddress! + i, m.baseAddress! + i, v.baseAddress! + i, g.map { $0 + i }, r.count, learningRate,
                                    c.beta1, c.beta2, inv1, inv2, c.epsilon, decay)
                            }
                        }
                        if let grad = p.grad {
                            grad.withUnsafeBufferPointer { update($0.baseAddress!) }
                        } else {
                            update(nil)
                        }
                    }
                }
            }
        }
    }

    /// Clears every parameter's gradient.
    public func zeroGrad() {
        for p in parameters { p.zeroGrad() }
    }

    /// The optimizer's state, for checkpoints: the step count and both moments of every parameter,
    /// in `parameters` order.
    public struct State: Sendable, Equatable {
        public var stepCount: Int
        public var firstMoments: [[Float]]
        public var secondMoments: [[Float]]
        public init(stepCount: Int, firstMoments: [[Float]], secondMoments: [[Float]]) {
            self.stepCount = stepCount
            self.firstMoments = firstMoments
            self.secondMoments = secondMoments
        }
    }

    public var state: State { State(stepCount: stepCount, firstMoments: firstMoments, secondMoments: secondMoments) }

    /// Restores a state saved from an optimizer over parameters of the same shapes.
    /// - Returns: false (changing nothing) when the state does not fit these parameters.
    @discardableResult
    public func restore(_ state: State) -> Bool {
        guard state.stepCount >= 0, state.firstMoments.map(\.count) == parameters.map(\.count),
            state.secondMoments.map(\.count) == parameters.map(\.count)
        else { return false }
        stepCount = state.stepCount
        firstMoments = state.firstMoments
        secondMoments = state.secondMoments
        return true
    }
}

/// Scales the gradients of `parameters` so that their global L2 norm is at most `maxNorm`; returns
/// the norm before clipping (computed in Double).
@discardableResult
public func clipGradientNorm(_ parameters: [Tensor], maxNorm: Float) -> Float {
    precondition(maxNorm > 0, "maxNorm must be positive")
    var total = 0.0
    for p in parameters {
        guard let g = p.grad else { continue }
        if !g.isEmpty { total += g.withUnsafeBufferPointer { sheaf_sum_squares($0.baseAddress!, $0.count) } }
    }
    let norm = Float(total.squareRoot())
    if norm > maxNorm {
        let factor = maxNorm / norm
        for p in parameters where p.grad != nil { p.accumulateGrad { g in for i in 0..<g.count { g[i] *= factor } } }
    }
    return norm
}

/// Linear warm-up from 0 to `peak` over `warmupSteps`, then a cosine decay to `minimum` at
/// `totalSteps` (and `minimum` after).
public struct WarmupCosineSchedule: Sendable {
    public var peak: Float
    public var minimum: Float
    public var warmupSteps: Int
    public var totalSteps: Int

    public init(peak: Float, warmupSteps: Int, totalSteps: Int, minimum: Float = 0) {
        precondition(warmupSteps >= 0 && totalSteps > warmupSteps, "schedule needs 0 ≤ warm-up < total steps")
        self.peak = peak
        self.minimum = minimum
        self.warmupSteps = warmupSteps
        self.totalSteps = totalSteps
    }

    /// The rate for step `step` (0-based: the first update uses step 0).
    public func learningRate(at step: Int) -> Float {
        if step < warmupSteps { return peak * Float(step + 1) / Float(warmupSteps) }
        if step >= totalSteps { return minimum }
        let progress = Double(step - warmupSteps) / Double(totalSteps - warmupSteps)
        return minimum + (peak - minimum) * Float(0.5 * (1 + cos(Double.pi * progress)))
    }
}
