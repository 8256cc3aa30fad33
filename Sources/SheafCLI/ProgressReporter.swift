import Foundation

/// A one-line progress display on stderr: count, rate and time left.
///
/// Shown only when stderr is a terminal and the command is not `--quiet`; otherwise every call is a
/// no-op, so logs and pipes stay clean. Redraws at most four times a second.
final class ProgressReporter {
    private let label: String
    private let total: Int?
    private let unit: String
    private let enabled: Bool
    private let started = DispatchTime.now().uptimeNanoseconds
    private var lastDraw: UInt64 = 0
    private(set) var done = 0
    /// Shown after the count and rate (e.g. the running loss); updated by the caller.
    var detail = ""

    init(label: String, total: Int?, unit: String, enabled: Bool) {
        self.label = label
        self.total = total
        self.unit = unit
        self.enabled = enabled && CommandOutput.current.stderrIsTerminal
    }

    /// Seconds since the reporter was made.
    var elapsed: Double { Double(DispatchTime.now().uptimeNanoseconds - started) / 1e9 }

    /// Records `n` more units done.
    func advance(by n: Int) {
        done += n
        guard enabled else { return }
        let now = DispatchTime.now().uptimeNanoseconds
        if now - lastDraw >= 250_000_000 {
            lastDraw = now
            draw(final: false)
        }
    }

    /// Draws the last state and ends the line.
    func finish() {
        guard enabled else { return }
        draw(final: true)
    }

    private func draw(final: Bool) {
        let t = max(elapsed, 1e-9)
        let rate = Double(done) / t
        var line = "\(label): \(thousands(done))"
        if let total { line += "/\(thousands(total))" }
        line += " \(unit)  \(thousands(Int(rate)))/s"
        if !detail.isEmpty { line += "  " + detail }
        if let total, !final, rate > 0, total > done {
            line += "  \(duration(Double(total - done) / rate)) left"
        } else if final {
            line += "  in \(duration(t))"
        }
        CommandOutput.current.writeError("\r\u{1B}[K" + line + (final ? "\n" : ""))
    }
}

/// 1234567 → "1,234,567".
func thousands(_ n: Int) -> String {
    let s = String(n.magnitude)
    var out = ""
    for (i, ch) in s.enumerated() {
        if i > 0, (s.count - i) % 3 == 0 { out.append(",") }
        out.append(ch)
    }
    return (n < 0 ? "-" : "") + out
}

/// Seconds as "1:05" or "2:03:04".
func duration(_ seconds: Double) -> String {
    let s = Int(seconds.rounded())
    return s >= 3600 ? String(format: "%d:%02d:%02d", s / 3600, s / 60 % 60, s % 60) : String(format: "%d:%02d", s / 60, s % 60)
}
