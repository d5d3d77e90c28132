import Foundation

/// How the trainer's log lines spell durations and metrics.
enum ProgressText {
    /// "42s", "3m07s", "2h05m"; "?" when not finite (an ETA before the first step).
    static func duration(_ s: Double) -> String {
        if !s.isFinite { return "?" }
        if s < 60 { return String(format: "%.0fs", s) }
        if s < 3600 { return String(format: "%dm%02ds", Int(s) / 60, Int(s) % 60) }
        return String(format: "%dh%02dm", Int(s) / 3600, (Int(s) % 3600) / 60)
    }

    /// A metric to four decimals, "n/a" when undefined (an AUC with one class).
    static func metric(_ v: Double?) -> String { v.map { String(format: "%.4f", $0) } ?? "n/a" }
}
