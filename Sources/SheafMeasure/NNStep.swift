import ArgumentParser
import Foundation
import SheafCLI
import SheafCodebook
import SheafNN
import SheafRandom
import _SheafBench

extension SheafMeasure {
    /// The time of one training step (forward, backward, AdamW) of a small causal transformer over
    /// item sequences, the shape of the models the next issues train. The same model and data sizes
    /// are in tools/torch_step.py, for PyTorch on CPU with the same thread count (tools/nn-step-compare
    /// runs both):
    ///
    ///   batch 32 × sequence 64, item table 10,000 × 64, 2 post-LN layers of width 64, 4 heads,
    ///   feed-forward 256 (GELU), causal mask; loss: InfoNCE (temperature 0.1) between each sequence's
    ///   last output and its next item's embedding, in-batch negatives.
    ///
    /// Prints a summary line, then a JSON line (median_ms, min_ms, steps, threads).
    struct NNStep: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "nn-step", abstract: "The time of one training step of a small causal transformer (see tools/nn-step-compare).")

        @Option(help: "Measured steps (after 3 warm-up steps).")
        var steps = 20
        @Option(help: "Threads of the tape's operations and the optimizer.")
        var threads = 1
        @Flag(help: "Use plain malloc for activations instead of Memory.retainFreedBuffers().")
        var plainMalloc = false

        func run() throws {
            // Without it, fresh pages for every activation dominate the step (see Memory.retainFreedBuffers).
            if !plainMalloc { Memory.retainFreedBuffers() }
            let model = TransformerStepModel(seed: 1)
            let optimizer = AdamW(decayed: model.matrices, undecayed: model.vectors, threads: threads)
            var rng = SplitMix64(seed: 2)
            var times: [Double] = []
            var losses: [Float] = []
            for step in 0..<(steps + 3) {
                let sequences = (0..<(model.batch * model.length)).map { _ in Int(rng.next() % UInt64(model.items)) }
                let next = (0..<model.batch).map { _ in Int(rng.next() % UInt64(model.items)) }
                let t0 = monotonicNanoseconds()
                let tape = Tape(seed: UInt64(step), threads: threads)
                let loss = model.loss(tape, sequences: sequences, next: next)
                optimizer.zeroGrad()
                tape.backward(loss)
                clipGradientNorm(optimizer.parameters, maxNorm: 1)
                optimizer.step(learningRate: 1e-3)
                let t1 = monotonicNanoseconds()
                if step >= 3 { times.append(Double(t1 - t0) / 1e6) }
                losses.append(loss.scalar)
            }
            times.sort()
            let median = quantile(ofSorted: times, 0.5)  // the upper median: times[times.count / 2]
            print(String(format: "nn-step: %d thread(s), median %.2f ms per step (min %.2f), %d steps after 3 warm-up; loss %.3f -> %.3f", threads, median, times[0], times.count, losses[0], losses.last!))
            let m = MachineReport.current
            let extra = try JSONSerialization.data(withJSONObject: ["blas_core": m.blasCoreSelection, "cpu": m.cpu])
            print("{\"median_ms\": \(median), \"min_ms\": \(times[0]), \"steps\": \(times.count), \"threads\": \(threads), \"machine\": \(String(decoding: extra, as: UTF8.self))}")
        }
    }
}

// MARK: - The model

/// The measured model: parameters as flat tensors, and the loss of one batch.
struct TransformerStepModel {
    let items = 10_000, width = 64, heads = 4, ffn = 256, layers = 2, length = 64, batch = 32
    var table: Tensor
    var blocks: [[Tensor]] = []  // wq, bq, wk, bk, wv, bv, wo, bo, g1, b1, w1, c1, w2, c2, g2, b2
    var positions: Tensor

    init(seed: UInt64) {
        var rng = SplitMix64(seed: seed)
        func p(_ shape: [Int], _ scale: Float) -> Tensor {
            Tensor.parameter(shape: shape, values: (0..<shape.reduce(1, *)).map { _ in (rng.nextFloat() * 2 - 1) * scale })
        }
        func constant(_ n: Int, _ v: Float) -> Tensor { Tensor.parameter(shape: [n], values: [Float](repeating: v, count: n)) }
        table = p([items, width], 0.1)
        positions = p([length, width], 0.1)
        let s = 1 / Float(width).squareRoot()
        for _ in 0..<layers {
            blocks.append([
                p([width, width], s), constant(width, 0), p([width, width], s), constant(width, 0), p([width, width], s), constant(width, 0),
                p([width, width], s), constant(width, 0), constant(width, 1), constant(width, 0),
                p([width, ffn], s), constant(ffn, 0), p([ffn, width], 1 / Float(ffn).squareRoot()), constant(width, 0),
                constant(width, 1), constant(width, 0),
            ])
        }
    }

    var matrices: [Tensor] { [table, positions] + blocks.flatMap { [$0[0], $0[2], $0[4], $0[6], $0[10], $0[12]] } }
    var vectors: [Tensor] { blocks.flatMap { [$0[1], $0[3], $0[5], $0[7], $0[8], $0[9], $0[11], $0[13], $0[14], $0[15]] } }

    /// The loss of one batch: `sequences` (batch × length item ids) and `next` (batch ids).
    func loss(_ t: Tape, sequences: [Int], next: [Int]) -> Tensor {
        let positionIDs = (0..<batch).flatMap { _ in Array(0..<length) }
        var x = t.reshape(t.add(t.embedding(table, ids: sequences), t.embedding(positions, ids: positionIDs)), [batch, length, width])
        for b in blocks {
            let q = t.linear(x, b[0], bias: b[1]), k = t.linear(x, b[2], bias: b[3]), v = t.linear(x, b[4], bias: b[5])
            let a = t.linear(t.attention(q, k, v, heads: heads, causal: true), b[6], bias: b[7])
            x = t.layerNorm(t.add(x, a), gamma: b[8], beta: b[9])
            let f = t.linear(t.gelu(t.linear(x, b[10], bias: b[11])), b[12], bias: b[13])
            x = t.layerNorm(t.add(x, f), gamma: b[14], beta: b[15])
        }
        let last = t.reshape(t.sliceSequence(x, (length - 1)..<length), [batch, width])
        let targets = t.embedding(table, ids: next)
        return t.infoNCE(queries: t.l2Normalize(last), keys: t.l2Normalize(targets), temperature: 0.1)
    }
}
