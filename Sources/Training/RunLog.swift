import Foundation

/// Log lines of a training run. Rank 0 reports progress: one updating line on a terminal, plain
/// timestamped lines otherwise (batch logs). Warnings and errors of every rank carry the rank.
public final class RunLog: @unchecked Sendable {
    public let rank: Int
    public let ranks: Int
    let isTerminal = isatty(STDERR_FILENO) != 0
    private var lastProgress = Date.distantPast
    private var progressShown = false

    public init(rank: Int, ranks: Int) {
        self.rank = rank
        self.ranks = ranks
    }

    /// ISO 8601 in UTC, "2026-12-01T04:00:00Z": how every log line of dsan starts.
    static func timestamp(_ date: Date = Date()) -> String { ISO8601DateFormatter().string(from: date) }

    private func write(_ text: String) {
        FileHandle.standardError.write(Data(text.utf8))
    }

    /// An informational line from rank 0 (other ranks stay quiet).
    public func info(_ text: String) {
        guard rank == 0 else { return }
        endProgress()
        write("\(Self.timestamp()) \(text)\n")
    }

    /// A warning from any rank, tagged with it.
    public func warning(_ text: String) {
        endProgress()
        write("\(Self.timestamp()) [rank \(rank)/\(ranks)] warning: \(text)\n")
    }

    /// An error from any rank, tagged with it.
    public func error(_ text: String) {
        endProgress()
        write("\(Self.timestamp()) [rank \(rank)/\(ranks)] error: \(text)\n")
    }

    /// Progress from rank 0: on a terminal rewritten in place at most 5× a second, otherwise a
    /// line at most every `interval` seconds (and always when `force`).
    public func progress(_ text: String, force: Bool = false, interval: Double = 10) {
        guard rank == 0 else { return }
        let now = Date()
        if isTerminal {
            if !force && now.timeIntervalSince(lastProgress) < 0.2 { return }
            write("\r\u{1B}[K" + text)
            progressShown = true
        } else {
            if !force && now.timeIntervalSince(lastProgress) < interval { return }
            write("\(Self.timestamp()) \(text)\n")
        }
        lastProgress = now
    }

    private func endProgress() {
        if progressShown { write("\n"); progressShown = false }
    }
}
