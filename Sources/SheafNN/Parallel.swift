import Foundation
import Synchronization

/// Runs independent work items on several threads: worker w takes items w, w + workers, … (a
/// static interleave, so the split does not depend on timing). OpenBLAS stays single-threaded
/// inside each item (SheafLinearAlgebra's policy), so threads never nest.
package enum Parallel {
    package static func forEach(_ count: Int, threads: Int, _ body: (Int) -> Void) {
        guard count > 0 else { return }
        let workers = max(1, min(threads, count))
        if workers == 1 {
            for i in 0..<count { body(i) }
            return
        }
        withoutActuallyEscaping(body) { body in
            // Unchecked: callers give items that touch disjoint outputs and only read shared inputs.
            let work = UncheckedSendableBox(body)
            DispatchQueue.concurrentPerform(iterations: workers) { w in
                var i = w
                while i < count {
                    work.value(i)
                    i += workers
                }
            }
        }
    }
}

extension Parallel {
    /// Runs `body` over the chunks of `0..<count`: `chunk` items each (the last may be shorter).
    /// The chunks depend only on `count` and `chunk`, never on `threads`, so an operation whose
    /// chunks are computed independently gives the same bits on any number of threads.
    package static func forEachChunk(_ count: Int, chunk: Int, threads: Int, _ body: (Range<Int>) -> Void) {
        precondition(chunk > 0, "chunk size must be positive")
        let chunks = (count + chunk - 1) / chunk
        forEach(chunks, threads: threads) { c in body((c * chunk)..<min(count, (c + 1) * chunk)) }
    }
}

/// Carries a value into a concurrent closure whose safety the caller has argued for.
package struct UncheckedSendableBox<T>: @unchecked Sendable {
    package let value: T
    package init(_ value: T) { self.value = value }
}

/// A counter that several threads add to, reporting each new total (under its lock, so reports
/// arrive one at a time and in increasing order).
package final class ProgressCounter: Sendable {
    private let total = Mutex(0)
    private let report: UncheckedSendableBox<((Int) -> Void)?>

    package init(_ report: ((Int) -> Void)?) { self.report = UncheckedSendableBox(report) }

    package func add(_ n: Int) {
        total.withLock { t in
            t += n
            report.value?(t)
        }
    }
}
