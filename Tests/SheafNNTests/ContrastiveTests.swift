import Foundation
import SheafNN
import SheafRandom
import Testing

@Suite struct ContrastiveTests {
    /// The loss against values worked out by hand: chosen negatives, several positives, a negative
    /// left out because it shares the positive's key, and rows without positives adding nothing.
    @Test func handComputed() {
        let logits = Tensor(shape: [3, 4], values: [1, 2, 0, -1, 0.5, -0.5, 1.5, 0, 9, 9, 9, 9])
        let targets = ContrastiveTargets(
            positives: [[0], [1, 2], []], negatives: [[1, 2, 3], [3], [0]], columnKeys: [5, 6, 7, 6])
        let row0 = -1 + log(exp(1.0) + exp(2.0) + exp(0.0) + exp(-1.0))
        // Row 1: column 3 shares key 6 with positive 1, so that term has no negative at all (ℓ = 0).
        let row1 = (0 + (-1.5 + log(exp(1.5) + exp(0.0)))) / 2
        let loss = Tape(recording: false).contrastive(logits, targets).scalar
        #expect(abs(Double(loss) - (row0 + row1) / 2) < 1e-6)
        // Without keys, row 1's first term counts column 3.
        let unkeyed = Tape(recording: false).contrastive(logits, ContrastiveTargets(positives: [[0], [1, 2], []], negatives: [[1, 2, 3], [3], [0]]))
        let row1Unkeyed = ((0.5 + log(exp(-0.5) + exp(0.0))) + (-1.5 + log(exp(1.5) + exp(0.0)))) / 2
        #expect(abs(Double(unkeyed.scalar) - (row0 + row1Unkeyed) / 2) < 1e-6)
        // nil negatives: every other column; one positive per row is plain softmax cross-entropy.
        let all = Tape(recording: false).contrastive(logits, ContrastiveTargets(positives: [[2], [0], [3]]))
        let ce = Tape(recording: false).crossEntropy(logits, targets: [2, 0, 3])
        #expect(abs(all.scalar - ce.scalar) < 1e-6)
        // No positives anywhere: 0.
        #expect(Tape(recording: false).contrastive(logits, ContrastiveTargets(positives: [[], [], []])).scalar == 0)
    }

    /// Gradients match central differences, and threads do not change a bit.
    @Test func gradients() {
        var rng = SplitMix64(seed: 41)
        let logits = rng.tensor([4, 6], true, -2, 2)
        let targets = ContrastiveTargets(
            positives: [[0, 3], [1], [], [5, 2]], negatives: [[1, 2, 4], [0, 2, 3, 4, 5], [1], [0, 1, 3]],
            columnKeys: [1, 2, 3, 1, 4, 3])
        let check = checkGradients([logits], atol: 1e-3, rtol: 2e-2) { t, v in t.contrastive(v[0], targets) }
        #expect(check.compared >= 18 && check.worst <= 1, "\(check)")
        let one = Tape(recording: false, threads: 1).contrastive(logits, targets).scalar
        let three = Tape(recording: false, threads: 3).contrastive(logits, targets).scalar
        #expect(one == three)
    }

    @Test func sigmoid() {
        let x = Tensor(shape: [4], values: [0, 2, -3, 40])
        let y = Tape(recording: false).sigmoid(x).values
        #expect(y[0] == 0.5 && abs(y[1] - 0.880_797) < 1e-6 && abs(y[2] - 0.047_426) < 1e-6 && y[3] == 1)
        var rng = SplitMix64(seed: 43)
        let v = rng.tensor([3, 5])
        let check = checkGradients([v]) { t, x in t.sigmoid(x[0]) }
        #expect(check.compared == 15 && check.worst <= 1, "\(check)")
    }

    @Test func binaryCrossEntropy() {
        let z = Tensor(shape: [4], values: [0, 2, -3, 30])
        let loss = Tape(recording: false).binaryCrossEntropy(z, labels: [1, 0, 0, 1]).scalar
        let expected = (log(2.0) + log(1 + exp(2.0)) + log(1 + exp(-3.0)) + log(1 + exp(-30.0))) / 4
        #expect(abs(Double(loss) - expected) < 1e-6)
        var rng = SplitMix64(seed: 47)
        let v = rng.tensor([2, 3], true, -3, 3)
        let check = checkGradients([v]) { t, x in t.binaryCrossEntropy(x[0], labels: [1, 0, 0.5, 1, 0, 1]) }
        #expect(check.compared == 6 && check.worst <= 1, "\(check)")
    }
}
