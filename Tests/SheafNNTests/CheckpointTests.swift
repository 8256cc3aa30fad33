import Foundation
import SheafFormats
import SheafNN
import SheafRandom
import Testing

@Suite struct CheckpointTests {
    func path() -> String { NSTemporaryDirectory() + "sheaf-nn-\(UUID().uuidString).safetensors" }

    @Test func saveThenLoadIsExact() throws {
        var rng = SplitMix64(seed: 40)
        let w = rng.tensor([3, 4]), b = rng.tensor([4])
        let p = path()
        defer { try? FileManager.default.removeItem(atPath: p) }
        try Checkpoint.save([("w", w), ("b", b)], metadata: ["step": "7"], to: p)
        let w2 = Tensor(zeros: [3, 4]), b2 = Tensor(zeros: [4])
        try Checkpoint.load([("w", w2), ("b", b2)], from: p)
        #expect(w2.values == w.values && b2.values == b.values)
        #expect(try SafeTensors.read(path: p).metadata == ["step": "7"])
        let t = try Checkpoint.tensor(try SafeTensors.read(path: p), "w", shape: [3, 4], trainable: true)
        #expect(t.requiresGrad && t.values == w.values)
    }

    /// A missing tensor or a wrong shape throws before anything is loaded.
    @Test func badCheckpointChangesNothing() throws {
        var rng = SplitMix64(seed: 41)
        let p = path()
        defer { try? FileManager.default.removeItem(atPath: p) }
        try Checkpoint.save([("w", rng.tensor([3, 4])), ("b", rng.tensor([5]))], to: p)
        let w = rng.tensor([3, 4]), b = rng.tensor([4]), c = rng.tensor([2])
        let (wBefore, bBefore) = (w.values, b.values)
        #expect(throws: FormatError.tensorShapeMismatch(path: p, name: "b", expected: [4], actual: [5])) {
            try Checkpoint.load([("w", w), ("b", b)], from: p)
        }
        #expect(throws: FormatError.missingTensor(path: p, name: "c")) { try Checkpoint.load([("w", w), ("c", c)], from: p) }
        #expect(w.values == wBefore && b.values == bBefore)
    }
}
