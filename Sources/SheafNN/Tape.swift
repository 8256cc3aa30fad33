import Foundation
import SheafRandom

/// Records operations for reverse-mode differentiation.
///
/// Every operation is a method of a tape. When the tape is recording and an input requires a
/// gradient, the operation appends a node: its output and a closure that, given ∂loss/∂output,
/// adds the input gradients. `backward(_:)` walks the nodes in reverse recording order, which is a
/// valid reverse topological order, so a tensor used twice receives the sum of both contributions
/// before its own node runs.
///
/// A tape keeps every recorded output alive until it is released or `reset()`: use one tape per
/// training step. `Tape(recording: false)` runs the same operations for inference without
/// keeping anything.
///
/// Operations, forward and backward, run on up to `threads` threads. Each splits its work into
/// chunks that depend only on the shapes (row blocks, (sequence, head) pairs, runs of elements) and
/// combines partial sums in a fixed order, so results are bit-identical on any number of threads.
public final class Tape {
    struct Node {
        let output: Tensor
        let backward: (UnsafeBufferPointer<Float>) -> Void
    }

    /// Whether operations record nodes (when an input requires a gradient).
    public let isRecording: Bool
    private(set) var nodes: [Node] = []
    /// The default thread count of tapes and optimizers: every core the process may use.
    public static var defaultThreads: Int { ProcessInfo.processInfo.activeProcessorCount }

    /// How many threads operations on this tape (and their backward passes) may use.
    public let threads: Int
    /// The generator of dropout masks (seeded at `init`).
    var random: SplitMix64

    /// - Parameters:
    ///   - recording: false for inference (nothing is kept, no gradients).
    ///   - seed: seeds the dropout masks drawn on this tape.
    ///   - threads: threads per operation; by default every core the process may use. Pass 1 when
    ///     the caller already runs several tapes at once.
    public init(recording: Bool = true, seed: UInt64 = 0x5EAF, threads: Int = Tape.defaultThreads) {
        precondition(threads >= 1, "a tape needs at least one thread")
        isRecording = recording
        random = SplitMix64(seed: seed)
        self.threads = threads
    }

    /// Number of nodes recorded.
    public var nodeCount: Int { nodes.count }

    /// Drops every recorded node (and the activations they keep alive).
    public func reset() { nodes.removeAll(keepingCapacity: true) }

    /// Whether an operation on `inputs` must record a node (and its output require a gradient).
    func needsGrad(_ inputs: Tensor...) -> Bool {
        isRecording && inputs.contains { $0.requiresGrad }
    }

    /// Makes the output tensor of an operation and records its backward closure when needed.
    /// `backward` receives ∂loss/∂output and must accumulate into the inputs that require gradients.
    func record(
        shape: [Int], values: [Float], inputs: [Tensor],
        backward: @escaping (UnsafeBufferPointer<Float>) -> Void
    ) -> Tensor {
        let tracked = isRecording && inputs.contains { $0.requiresGrad }
        let out = Tensor(shape: shape, values: values, requiresGrad: tracked)
        if tracked { nodes.append(Node(output: out, backward: backward)) }
        return out
    }

    /// Back-propagates from `loss` (a one-value tensor): its gradient is seeded with 1 and every
    /// recorded node whose output received a gradient passes it on. Gradients accumulate into
    /// `grad` of each tensor that requires one (call `zeroGrad` on parameters between steps).
    public func backward(_ loss: Tensor) {
        precondition(loss.count == 1, "backward needs a one-value loss, got shape \(loss.shape)")
        precondition(loss.requiresGrad, "the loss does not depend on any tensor that requires a gradient")
        loss.accumulateGrad { $0[0] += 1 }
        for node in nodes.reversed() {
            guard let g = node.output.grad else { continue }
            g.withUnsafeBufferPointer { node.backward($0) }
        }
    }
}
