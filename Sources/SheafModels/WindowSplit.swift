/// One multi-interest training example (HyMiRec): the user's behaviours before `cut` are the input
/// (the refined recommender reads the last few, the lightweight one everything before those), and
/// the window targets are the behaviours `cut..<targetEnd`, at most w of them.
public struct WindowExample: Sendable, Equatable {
    /// Index into `SequenceDataset.users`.
    public let user: Int
    /// The input is behaviours 0..<cut.
    public let cut: Int
    /// The window targets are behaviours cut..<targetEnd.
    public let targetEnd: Int

    public var targets: Range<Int> { cut..<targetEnd }

    public init(user: Int, cut: Int, targetEnd: Int) {
        self.user = user
        self.cut = cut
        self.targetEnd = targetEnd
    }
}

/// The leave-one-out split of `LeaveOneOutSplit`, with window targets for training: per user with n
/// behaviours, the last is the test target and the one before it the validation target (users with
/// fewer than 3 keep every behaviour for training, as there). Each cut c in 1..<T of the T training
/// behaviours gives a training example whose targets are the next min(w, T − c) training behaviours,
/// so no window reaches into the validation or test behaviour. Validation and test have one target
/// each: cut n − 2 and n − 1.
public struct WindowSplit: Sendable {
    public let window: Int
    public let training: [WindowExample]
    public let validation: [WindowExample]
    public let test: [WindowExample]

    public init(_ data: SequenceDataset, window: Int) {
        precondition(window >= 1, "the window must hold at least one target")
        self.window = window
        var training: [WindowExample] = [], validation: [WindowExample] = [], test: [WindowExample] = []
        for (u, s) in data.users.enumerated() {
            let n = s.count
            let trainEnd = LeaveOneOutSplit.trainingCount(of: n)
            if trainEnd > 1 {
                for c in 1..<trainEnd { training.append(WindowExample(user: u, cut: c, targetEnd: min(c + window, trainEnd))) }
            }
            if n >= 3 {
                validation.append(WindowExample(user: u, cut: n - 2, targetEnd: n - 1))
                test.append(WindowExample(user: u, cut: n - 1, targetEnd: n))
            }
        }
        self.training = training
        self.validation = validation
        self.test = test
    }
}
