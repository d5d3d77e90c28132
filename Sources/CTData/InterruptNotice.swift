import Foundation

/// Turns SIGINT and SIGTERM into a call of `handler` for commands that write a cohort over
/// minutes (`prepare`, `synth`): the command line prints what was kept and how to continue
/// (`ShardDirectoryWriter.interruptedMessage`) and exits with 128 + the signal's number (the
/// shell's convention). The handler runs on a dispatch queue when the signal arrives, not in a
/// signal handler, so it may read shared state. While a notice is active the two signals do not
/// end the process by themselves; `cancel()` restores their default actions.
public final class InterruptNotice: @unchecked Sendable {
    /// A signal the notice catches.
    public struct Signal: Sendable, Equatable {
        /// "SIGINT" or "SIGTERM".
        public var name: String
        public var number: Int32
    }

    /// The signals caught.
    public static let signals = [Signal(name: "SIGINT", number: SIGINT), Signal(name: "SIGTERM", number: SIGTERM)]

    private var sources: [DispatchSourceSignal] = []
    private let lock = NSLock()
    private var done = 0

    private let caught: [Signal]

    /// `handler(signal, itemsDone)` runs when one of `signals` (SIGINT and SIGTERM) arrives.
    public init(signals: [Signal] = InterruptNotice.signals, _ handler: @escaping @Sendable (Signal, Int) -> Void) {
        caught = signals
        for s in signals {
            signal(s.number, SIG_IGN)   // delivered to the source instead of ending the process
            let source = DispatchSource.makeSignalSource(signal: s.number, queue: .global())
            source.setEventHandler { [self] in handler(s, self.progress) }
            source.resume()
            sources.append(source)
        }
    }

    /// Items (cases) finished so far, for the handler.
    public var progress: Int {
        get { lock.lock(); defer { lock.unlock() }; return done }
        set { lock.lock(); done = newValue; lock.unlock() }
    }

    /// Stops catching and restores the default actions.
    public func cancel() {
        for s in sources { s.cancel() }
        for s in caught { signal(s.number, SIG_DFL) }
    }
}

extension ShardDirectoryWriter {
    /// What `prepare` and `synth` print when SIGINT or SIGTERM stops them: nothing of the run is a
    /// shard yet, and how to continue.
    public static func interruptedMessage(command: String, signal: String, done: Int, total: Int, out: String) -> String {
        "dsan \(command): interrupted by \(signal) after \(done) of \(total) cases; \(out) holds none of this run's shards "
            + "(its unfinished files end in \(incompleteSuffix) or .partial, and the next run into \(out) removes them). "
            + "To continue, run the same command again: it starts over (see \(InputRules.page))"
    }
}
