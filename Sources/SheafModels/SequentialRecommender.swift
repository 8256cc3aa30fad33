import SheafNN
import SheafRandom

/// A configuration with defaults for every field.
public protocol DefaultConstructible { init() }

extension SASRecConfiguration: DefaultConstructible {}
extension HyMiRecConfiguration: DefaultConstructible {}

/// A split of a store's histories into training, validation and test examples.
public protocol ExampleSplit: Sendable {
    associatedtype Example: UserExample
    var training: [Example] { get }
    var validation: [Example] { get }
    var test: [Example] { get }
}

extension LeaveOneOutSplit: ExampleSplit {}
extension WindowSplit: ExampleSplit {}

/// An example of one user's history: what every split's examples share.
public protocol UserExample: Sendable {
    /// Index into `SequenceDataset.users`.
    var user: Int { get }
    /// How many of the user's behaviours come before the (first) target: the history the model may
    /// read, whole or in part.
    var behavioursBefore: Int { get }
}

extension SequenceExample: UserExample {
    public var behavioursBefore: Int { inputEnd }
}

extension WindowExample: UserExample {
    public var behavioursBefore: Int { cut }
}

/// An example with its target's rank (`SequentialRecommender.targetRanks`), to group ranks as examples.
public struct RankedExample<Example: UserExample>: UserExample {
    public let example: Example
    /// The target's 0-based rank.
    public let rank: Int
    public var user: Int { example.user }
    public var behavioursBefore: Int { example.behavioursBefore }

    public init(example: Example, rank: Int) {
        self.example = example
        self.rank = rank
    }
}

/// Test examples grouped by how many behaviours precede the target: the buckets 0…b₁, b₁ + 1…b₂,
/// …, and above the last bound (empty buckets left out), with each bucket's examples in order.
public enum HistoryLengthBuckets {
    public struct Bucket<Example> {
        /// The bucket holds the examples with `behavioursBefore` in from…to (no `to`: from on).
        public let from: Int
        public let to: Int?
        public let examples: [Example]
    }

    /// - Parameter bounds: strictly increasing, non-negative.
    public static func split<Example: UserExample>(_ examples: [Example], bounds: [Int]) -> [Bucket<Example>] {
        precondition(zip(bounds, bounds.dropFirst()).allSatisfy { $0 < $1 } && bounds.allSatisfy { $0 >= 0 },
                     "bounds must be strictly increasing and non-negative")
        let ranges = zip([0] + bounds.map { $0 + 1 }, bounds.map(Optional.some) + [nil])
        return ranges.compactMap { from, to in
            let inside = examples.filter { e in e.behavioursBefore >= from && (to.map { e.behavioursBefore <= $0 } ?? true) }
            return inside.isEmpty ? nil : Bucket(from: from, to: to, examples: inside)
        }
    }
}

/// A recommender over the store's histories that `Trainer` trains, `CheckpointStore` saves and
/// loads, and `sheaf evaluate` and `sheaf recommend` apply: SASRec and HyMiRec.
///
/// A model's item tables have N + 1 rows, row 0 being padding; its frozen content (when it reads
/// content: float32 rows or the store's codes) is saved with its parameters, so that a checkpoint
/// is self-contained.
public protocol SequentialRecommender: AnyObject {
    /// Every field is saved in checkpoints. A checkpoint that lacks a field (added after it was
    /// written) is read with the field's value in `fieldsAddedLater` when it is listed there (the
    /// behaviour models had before it), and with today's default (`init()`) otherwise.
    associatedtype Configuration: Codable, Sendable, Equatable, DefaultConstructible
    associatedtype Split: ExampleSplit

    /// The checkpoint's `sheaf.model` ("sasrec", "hymirec").
    static var kind: String { get }
    /// Configuration fields whose default changed the model's behaviour when they were added, with
    /// the JSON value that means the earlier behaviour (what a checkpoint without the field gets).
    static var fieldsAddedLater: [String: String] { get }
    /// Whether a model of this configuration reads content embeddings (then `init` needs them).
    static func readsContent(_ configuration: Configuration) -> Bool

    /// - Parameters:
    ///   - content: the content of items 0…N, when the configuration reads content.
    init(configuration: Configuration, itemCount: Int, content: ContentTable?, seed: UInt64) throws(ModelError)

    var configuration: Configuration { get }
    var itemCount: Int { get }
    /// The frozen content of items 0…N, when the model reads content.
    var content: ContentTable? { get }
    /// Every trainable tensor with its checkpoint name, in a fixed order.
    var namedParameters: [(name: String, tensor: Tensor)] { get }

    /// The model's leave-one-out split of `data` (the test and validation targets are the same for
    /// every model: each user's last and second-to-last behaviour).
    func split(_ data: SequenceDataset) -> Split
    /// The training loss of a batch of examples, with dropout; `rng` draws anything else the loss
    /// samples (negatives), seeded per step by the trainer.
    func loss(_ t: Tape, _ examples: [Split.Example], in data: SequenceDataset, rng: inout SplitMix64) -> Tensor
    /// Each example's 0-based target rank when every item is ranked (no dropout), in order: what
    /// `evaluate` and any grouping of the examples (`HistoryLengthBuckets`) are computed from.
    func targetRanks(_ examples: [Split.Example], in data: SequenceDataset, batchSize: Int, threads: Int) -> [Int]
    /// An epoch's steps: `order` (a seeded shuffle of the indices of `examples`) cut into batches of
    /// at most `batchSize`, ⌈count / batchSize⌉ of them. The default cuts it in order; a model may
    /// group examples of similar cost (drawing only from `rng`).
    func batches(_ order: [Int], of examples: [Split.Example], in data: SequenceDataset, batchSize: Int, rng: inout SplitMix64)
        -> [ArraySlice<Int>]
    /// Every item's score after each given user's whole history (index into `data.users`), without
    /// dropout: [users × (N + 1)], column 0 (padding) included.
    func scoresAfterHistory(of users: [Int], in data: SequenceDataset, threads: Int) -> [Float]
}

extension SequentialRecommender {
    public static var fieldsAddedLater: [String: String] { [:] }

    /// Full-ranking metrics of examples (every item ranked, no dropout).
    public func evaluate(_ examples: [Split.Example], in data: SequenceDataset, batchSize: Int, threads: Int) -> RankingMetrics {
        RankingMetrics(ranks: targetRanks(examples, in: data, batchSize: batchSize, threads: threads))
    }

    /// Width of the content embeddings (0 when the model reads none).
    public var contentDimension: Int { content?.dimension ?? 0 }

    public func batches(_ order: [Int], of examples: [Split.Example], in data: SequenceDataset, batchSize: Int, rng: inout SplitMix64)
        -> [ArraySlice<Int>]
    {
        order.consecutive(batchSize)
    }

    /// Weight matrices and embeddings (which AdamW may decay), and biases and norms (which it never does).
    public var parameterGroups: (decayed: [Tensor], undecayed: [Tensor]) {
        let all = namedParameters
        return (all.filter { $0.tensor.rank == 2 }.map(\.tensor), all.filter { $0.tensor.rank != 2 }.map(\.tensor))
    }
}

extension SASRec: SequentialRecommender {
    public static var kind: String { "sasrec" }
    public static func readsContent(_ configuration: SASRecConfiguration) -> Bool { configuration.content }

    public func split(_ data: SequenceDataset) -> LeaveOneOutSplit { LeaveOneOutSplit(data, maxLength: configuration.maxLength) }

    /// SASRec samples nothing: `rng` is not drawn from.
    public func loss(_ t: Tape, _ examples: [SequenceExample], in data: SequenceDataset, rng: inout SplitMix64) -> Tensor {
        loss(t, SequenceBatch(examples, in: data, maxLength: configuration.maxLength))
    }

    public func scoresAfterHistory(of users: [Int], in data: SequenceDataset, threads: Int) -> [Float] {
        let examples = users.map { u in
            let n = data.users[u].count
            return SequenceExample(user: u, inputStart: max(0, n - configuration.maxLength), inputEnd: n, target: 0)
        }
        return scores(SequenceBatch(examples, in: data, maxLength: configuration.maxLength), threads: threads)
    }
}

extension Array {
    /// The array cut in order into slices of `size` (the last one shorter when the count is not a
    /// multiple).
    func consecutive(_ size: Int) -> [ArraySlice<Element>] {
        stride(from: 0, to: count, by: size).map { self[$0..<Swift.min(count, $0 + size)] }
    }
}
