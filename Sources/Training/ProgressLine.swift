import Foundation

/// The progress line of a command that works through a known number of items (`prepare`, `synth`,
/// `predict`, `inspect`), on standard error: one updating line on a terminal, plain timestamped
/// lines otherwise (batch logs), each with a count, a rate and an ETA — at most 5 lines a second
/// on a terminal and one every 5 s otherwise, and always the last:
///
///     2026-12-01T04:00:00Z prepare: 3/8 cases (0.5 cases/s, ETA 10.0s)
///     2026-12-01T04:00:16Z prepare: 8/8 cases (0.5 cases/s, took 16.0s)
public final class ProgressLine {
    public let label: String
    public let total: Int
    let start: Date
    let isTerminal: Bool
    private let now: () -> Date
    private let write: (String) -> Void
    private var lastPrint = Date.distantPast

    /// Progress written to standard error.
    public convenience init(_ label: String, total: Int) {
        self.init(label, total: total, isTerminal: isatty(STDERR_FILENO) != 0, now: Date.init) {
            FileHandle.standardError.write(Data($0.utf8))
        }
    }

    /// Progress written by `write`, with `now` as the clock (tests).
    public init(_ label: String, total: Int, isTerminal: Bool, now: @escaping () -> Date,
                write: @escaping (String) -> Void) {
        self.label = label
        self.total = total
        self.isTerminal = isTerminal
        self.now = now
        self.write = write
        self.start = now()
    }

    /// `done` of `total` items finished.
    public func update(_ done: Int, unit: String = "cases") {
        let now = self.now()
        let finished = done >= total
        if !finished && now.timeIntervalSince(lastPrint) < (isTerminal ? 0.2 : 5) { return }
        lastPrint = now
        let elapsed = now.timeIntervalSince(start)
        let rate = elapsed > 0 ? Double(done) / elapsed : 0
        let eta = rate > 0 ? Double(total - done) / rate : 0
        let line = String(format: "%@: %d/%d %@ (%.1f %@/s, %@ %@)", label, done, total, unit, rate, unit,
                          finished ? "took" : "ETA", DurationText.short(finished ? elapsed : eta))
        if isTerminal {
            write("\r\u{1B}[K" + line + (finished ? "\n" : ""))
        } else {
            write(RunLog.timestamp(now) + " " + line + "\n")
        }
    }
}
