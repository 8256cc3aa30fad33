import Foundation

/// Wall time spent per named stage of a long command, in first-seen order (`--timings`).
struct StageTimes {
    private(set) var order: [String] = []
    private(set) var nanoseconds: [String: UInt64] = [:]

    static func now() -> UInt64 { DispatchTime.now().uptimeNanoseconds }

    /// Adds `ns` to `stage`.
    mutating func add(_ stage: String, nanoseconds ns: UInt64) {
        if nanoseconds[stage] == nil { order.append(stage) }
        nanoseconds[stage, default: 0] += ns
    }

    /// Runs `body`, adding its wall time to `stage`.
    mutating func time<R>(_ stage: String, _ body: () throws -> R) rethrows -> R {
        let start = Self.now()
        defer { add(stage, nanoseconds: Self.now() - start) }
        return try body()
    }

    /// A table of every stage: seconds, share of the total and, with `items`, items per second.
    func table(items: Int? = nil) -> String {
        let total = order.reduce(0) { $0 + nanoseconds[$1]! }
        let width = max(5, order.map(\.count).max() ?? 0)
        func row(_ name: String, _ ns: UInt64) -> String {
            let seconds = Double(ns) / 1e9
            let share = total > 0 ? 100 * Double(ns) / Double(total) : 0
            let rate = items.map { seconds > 0 ? "  \(thousands(Int(Double($0) / seconds)))/s" : "" } ?? ""
            return name.padding(toLength: width, withPad: " ", startingAt: 0)
                + String(format: "  %8.3f s  %5.1f%%", seconds, share) + rate
        }
        return (order.map { row($0, nanoseconds[$0]!) } + [row("total", total)]).joined(separator: "\n")
    }
}
