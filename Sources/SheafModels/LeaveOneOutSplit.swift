/// One next-item prediction: the input is `user`'s items `inputStart..<inputEnd` (at most the split's
/// maximum length, the most recent ones), the target the item at `inputEnd`.
public struct SequenceExample: Sendable, Equatable {
    /// Index into `SequenceDataset.users`.
    public let user: Int
    public let inputStart: Int
    public let inputEnd: Int
    /// The dense index of the item to predict.
    public let target: Int32

    public var length: Int { inputEnd - inputStart }

    public init(user: Int, inputStart: Int, inputEnd: Int, target: Int32) {
        self.user = user
        self.inputStart = inputStart
        self.inputEnd = inputEnd
        self.target = target
    }
}

/// The field's leave-one-out split by time, as RecBole does it (`eval_args: split LS valid_and_test,
/// order TO, mode full`):
/// - per user, the last behaviour is the test target and the one before it the validation target;
///   the rest are training;
/// - training examples are every prefix of the training part predicting its next item (a user with T
///   training behaviours gives T − 1), each input being the most recent `maxLength` behaviours of the
///   prefix;
/// - the validation input is the training part, the test input the training part plus the
///   validation behaviour (the most recent `maxLength` of each);
/// - a user with fewer than 3 behaviours has no validation or test example; all their behaviours train.
///
/// Behaviours are in the store's order: by timestamp, equal timestamps in their load's order (ties
/// between two loads merged by item id; `WriteTransaction.appendBehaviors`).
public struct LeaveOneOutSplit: Sendable {
    public let maxLength: Int
    public let training: [SequenceExample]
    public let validation: [SequenceExample]
    public let test: [SequenceExample]

    /// Of a user's n behaviours, how many train: all but the validation and test behaviours, or all
    /// of them when there are fewer than 3.
    public static func trainingCount(of n: Int) -> Int { n >= 3 ? n - 2 : n }

    public init(_ data: SequenceDataset, maxLength: Int = 50) {
        precondition(maxLength > 0, "maxLength must be positive")
        self.maxLength = maxLength
        var training: [SequenceExample] = [], validation: [SequenceExample] = [], test: [SequenceExample] = []
        func example(_ u: Int, end: Int) -> SequenceExample {
            SequenceExample(user: u, inputStart: max(0, end - maxLength), inputEnd: end, target: data.users[u].items[end])
        }
        for (u, s) in data.users.enumerated() {
            let n = s.count
            let trainEnd = Self.trainingCount(of: n)
            if trainEnd > 1 { for end in 1..<trainEnd { training.append(example(u, end: end)) } }
            if n >= 3 {
                validation.append(example(u, end: n - 2))
                test.append(example(u, end: n - 1))
            }
        }
        self.training = training
        self.validation = validation
        self.test = test
    }
}
