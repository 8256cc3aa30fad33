import ArgumentParser
import Foundation
import SheafCLI
import SheafModels
import SheafNN
import SheafRandom
import SheafStore
import _SheafBench

extension SheafMeasure {
    /// A training step (forward + backward) of the content SASRec and of HyMiRec on a store, with the
    /// items' content read as the store's codes through the code-space input layer, against the same
    /// model, same parameters and same batch reading the decoded float32 rows through a dense layer.
    /// Also times the input layer alone (every content projection of the model, forward + backward of
    /// Σ y · G for a fixed G), to give its share of the step. Steps of the two paths are interleaved.
    struct ModelStep: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "model-step",
            abstract: "Training-step time of the content SASRec and HyMiRec: code-space input layer against decoded rows.")

        @Option(help: "The store (histories and item codes), e.g. results/sasrec-store.")
        var store: String
        @Option(help: "Measured steps per model and path (after 2 warm-up steps).")
        var steps = 10
        @Option(help: "Examples per step.")
        var batchSize = 256
        @Option(help: "Threads of the tape's operations.")
        var threads = 1
        @Option(help: "Models: sasrec, hymirec (comma-separated).")
        var models = "sasrec,hymirec"
        @Option(help: "Write the results as JSON here.")
        var jsonOut: String?
        @Option(help: ArgumentHelp("Train over a catalogue of N items instead of the store's: the store's items are items 1…n, the rest only negatives and softmax rows; every item's content is random codes (L = 4, K = 256, speed only).", valueName: "N"))
        var syntheticCatalogue: Int?
        @Option(help: "The content width D of --synthetic-catalogue.")
        var syntheticDim = 384
        @Option(help: ArgumentHelp("Also time the input layer alone (one projection to H = 64, forward + backward) on random codes of these catalogue sizes, at D = 384 and 2048, L = 4, K = 256: speed only.", valueName: "N,N,..."))
        var scaling: String?

        struct Scaling: Codable {
            var items: Int
            var dimension: Int
            var codesMilliseconds: Double
            var rowsMilliseconds: Double
        }

        struct Timing: Codable {
            var model: String
            var content: String
            var stepMedianMilliseconds: Double
            var inputLayerMedianMilliseconds: Double
            var inputLayerShare: Double
            var loss: Double
        }

        func run() throws {
            Memory.retainFreedBuffers()
            var options = StoreOptions()
            options.readOnly = true
            let opened = try Store(path: store, options: options)
            let data = try SequenceDataset.load(from: opened)
            let ids = data.vocabulary.ids
            let codes: ContentTable, rows: ContentTable, itemCount: Int
            if let n = syntheticCatalogue {
                guard n >= ids.count else { throw MeasureError("--synthetic-catalogue \(n) is smaller than the store's \(ids.count) items") }
                var rng = SplitMix64(seed: 5)
                let (l, k, d) = (4, 256, syntheticDim)
                let random = ResidualCodes(
                    codes: (0..<(n * l)).map { _ in UInt32(rng.next() % UInt64(k)) }, magnitudes: (0..<(n * l)).map { _ in rng.float(in: 0...1) },
                    levels: l, codesPerLevel: k, centroids: (0..<(l * k * d)).map { _ in rng.float(in: -0.1...0.1) }, dimension: d)
                codes = .codes(random)
                rows = try .rows(random.decoded().values, dimension: d)
                itemCount = n
                log("model-step: \(data.users.count) users' histories over a synthetic catalogue of \(n) items, D = \(d), random codes L 4 K 256 (speed only)")
            } else {
                codes = try ContentTable.codes(from: opened, ids: ids)
                rows = try ContentTable.rows(try opened.read { try $0.decodeItems(ids) }, dimension: opened.dimension)
                itemCount = ids.count
                let cb = try opened.read { try $0.activeCodebook() }
                log("model-step: \(data.users.count) users, \(ids.count) items, D = \(opened.dimension); codebook L \(cb?.levels ?? 0) K \(cb?.codesPerLevel ?? 0): \((cb?.levels ?? 0) * (cb?.codesPerLevel ?? 0)) table rows against N + 1 = \(ids.count + 1)")
            }
            var results: [Timing] = []
            for name in models.split(separator: ",").map(String.init) {
                switch name {
                case "sasrec":
                    var c = SASRecConfiguration()
                    c.content = true
                    let make: (ContentTable) throws -> SASRec = { content in try SASRec(configuration: c, itemCount: itemCount, content: content, seed: 1) }
                    // Every item's content is projected once per step (the inputs and the tied softmax).
                    results += try measure(name, make, data: data, codes: codes, rows: rows) { (_: [SequenceExample]) in [("content_projection", nil)] }
                case "hymirec":
                    let c = HyMiRecConfiguration()
                    let make: (ContentTable) throws -> HyMiRec = { content in try HyMiRec(configuration: c, itemCount: itemCount, content: content, seed: 1) }
                    // A step projects the distinct items of its histories (lightweight) and of its recent
                    // tokens, targets and negatives (items): the same rows here, negatives drawn alike.
                    results += try measure(name, make, data: data, codes: codes, rows: rows) { (batch: [WindowExample]) in
                        let b = HyMiRecBatch(batch.map { (user: $0.user, cut: $0.cut) }, in: data, configuration: c)
                        var rng = SplitMix64(seed: 9)
                        let negatives = HyMiRec.negatives(c.negatives, itemCount: itemCount, rng: &rng)
                        let targets = batch.flatMap { e in e.targets.map { Int(data.users[e.user].items[$0]) } }
                        return [("lightweight.items", Set(b.history).sorted()), ("items", Set(b.recent + targets + negatives).sorted())]
                    }
                default: throw MeasureError("unknown model \(name): sasrec or hymirec")
                }
            }
            let m = MachineReport.current
            print("machine: \(m.summary)")
            print("| model | item content | step median ms | input layer ms | input layer share | step vs decoded rows |")
            print("|---|---|---:|---:|---:|---:|")
            for r in results {
                let dense = results.first { $0.model == r.model && $0.content == "decoded float32 rows" }!
                print(String(format: "| %@ | %@ | %.1f | %.2f | %.1f%% | %.2f× |", r.model, r.content, r.stepMedianMilliseconds,
                             r.inputLayerMedianMilliseconds, 100 * r.inputLayerShare, dense.stepMedianMilliseconds / r.stepMedianMilliseconds))
            }
            var scaled: [Scaling] = []
            if let scaling {
                print("")
                print("input layer alone (x · W + b to H = 64, forward + backward), random codes L = 4, K = 256 (speed only):")
                print("| items N | D | codes ms | dense rows ms | dense / codes |")
                print("|---:|---:|---:|---:|---:|")
                for n in scaling.split(separator: ",").compactMap({ Int($0) }) {
                    for d in [384, 2048] {
                        let r = layerAlone(items: n, dimension: d)
                        scaled.append(r)
                        print(String(format: "| %d | %d | %.2f | %.2f | %.2f× |", n, d, r.codesMilliseconds, r.rowsMilliseconds, r.rowsMilliseconds / r.codesMilliseconds))
                    }
                }
            }
            if let jsonOut {
                let encoder = JSONEncoder()
                encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
                struct Output: Codable {
                    var store: String; var threads: Int; var batchSize: Int; var steps: Int; var cpu: String; var blasCore: String; var results: [Timing]
                    var scaling: [Scaling]
                }
                try encoder.encode(Output(
                    store: store, threads: threads, batchSize: batchSize, steps: steps, cpu: m.cpu, blasCore: m.blasCoreSelection, results: results,
                    scaling: scaled)).write(to: URL(fileURLWithPath: jsonOut))
            }
        }

        /// Both paths of one model: interleaved steps on the same batches, then the input layers alone.
        func measure<Model: SequentialRecommender>(
            _ name: String, _ make: (ContentTable) throws -> Model, data: SequenceDataset, codes: ContentTable, rows: ContentTable,
            inputs: ([Model.Split.Example]) -> [(projection: String, rows: [Int]?)]
        ) throws -> [Timing] {
            let models = [try make(codes), try make(rows)]
            let split = models[0].split(data)
            var rng = SplitMix64(seed: 3)
            var order = Array(split.training.indices)
            rng.partialShuffle(&order, count: order.count)
            /// The examples of step `step` (both loops read the same batches).
            func batch(_ step: Int) -> [Model.Split.Example] {
                let start = (step * batchSize) % max(1, order.count - batchSize)
                return order[start..<(start + batchSize)].map { split.training[$0] }
            }
            var stepTimes: [[Double]] = [[], []], layerTimes: [[Double]] = [[], []], losses: [Double] = [0, 0]
            for step in 0..<(steps + 2) {
                let batch = batch(step)
                for (k, model) in models.enumerated() {
                    var stepRNG = SplitMix64(seed: UInt64(step))
                    let t0 = monotonicNanoseconds()
                    let tape = Tape(seed: UInt64(step), threads: threads)
                    let loss = model.loss(tape, batch, in: data, rng: &stepRNG)
                    tape.backward(loss)
                    let t1 = monotonicNanoseconds()
                    for p in model.namedParameters { p.tensor.zeroGrad() }
                    if step >= 2 { stepTimes[k].append(Double(t1 - t0) / 1e6) }
                    losses[k] = Double(loss.scalar)
                }
            }
            // The input layers alone: each content projection over the rows a step projects, forward
            // and backward.
            for step in 0..<(steps + 2) {
                let projections = inputs(batch(step))
                for (k, model) in models.enumerated() {
                    let params = Dictionary(model.namedParameters.map { ($0.name, $0.tensor) }, uniquingKeysWith: { a, _ in a })
                    let content = model.content!
                    let t0 = monotonicNanoseconds()
                    let tape = Tape(seed: 0, threads: threads)
                    var total: Tensor?
                    for (p, rows) in projections {
                        let (w, b) = (params[p + ".weight"]!, params[p + ".bias"]!)
                        let y = rows.map { content.linear(tape, w, bias: b, rows: $0) } ?? content.linear(tape, w, bias: b)
                        let s = tape.sum(tape.mul(y, Tensor(shape: y.shape, values: [Float](repeating: 0.01, count: y.count))))
                        total = total.map { tape.add($0, s) } ?? s
                    }
                    tape.backward(total!)
                    let t1 = monotonicNanoseconds()
                    for p in model.namedParameters { p.tensor.zeroGrad() }
                    if step >= 2 { layerTimes[k].append(Double(t1 - t0) / 1e6) }
                }
            }
            return (0..<2).map { k in
                let step = median(stepTimes[k]), layer = median(layerTimes[k])
                return Timing(
                    model: name, content: k == 0 ? "codes (code-space input layer)" : "decoded float32 rows",
                    stepMedianMilliseconds: step, inputLayerMedianMilliseconds: layer, inputLayerShare: layer / step, loss: losses[k])
            }
        }

        /// One content projection to H = 64 on N random items of L = 4, K = 256 codes: code space
        /// against the dense layer over the decoded rows (interleaved, median of `steps`).
        func layerAlone(items n: Int, dimension d: Int) -> Scaling {
            var rng = SplitMix64(seed: UInt64(n * 7 + d))
            let l = 4, k = 256, h = 64
            let codes = ResidualCodes(
                codes: (0..<(n * l)).map { _ in UInt32(rng.next() % UInt64(k)) }, magnitudes: (0..<(n * l)).map { _ in rng.float(in: 0...1) },
                levels: l, codesPerLevel: k, centroids: (0..<(l * k * d)).map { _ in rng.float(in: -1...1) }, dimension: d)
            let rows = codes.decoded()
            let w = Tensor.parameter(shape: [d, h], values: (0..<(d * h)).map { _ in rng.float(in: -0.05...0.05) })
            let b = Tensor.parameter(shape: [h], values: [Float](repeating: 0, count: h))
            let g = Tensor(shape: [n, h], values: [Float](repeating: 0.01, count: n * h))
            var times: [[Double]] = [[], []]
            for step in 0..<(steps + 2) {
                for k in 0..<2 {
                    let t0 = monotonicNanoseconds()
                    let tape = Tape(seed: 0, threads: threads)
                    let y = k == 0 ? tape.linear(codes, w, bias: b) : tape.linear(rows, w, bias: b)
                    tape.backward(tape.sum(tape.mul(y, g)))
                    let t1 = monotonicNanoseconds()
                    w.zeroGrad()
                    b.zeroGrad()
                    if step >= 2 { times[k].append(Double(t1 - t0) / 1e6) }
                }
            }
            return Scaling(items: n, dimension: d, codesMilliseconds: median(times[0]), rowsMilliseconds: median(times[1]))
        }

        func median(_ xs: [Double]) -> Double { xs.sorted()[xs.count / 2] }
    }
}
