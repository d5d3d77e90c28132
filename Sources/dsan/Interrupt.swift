import Foundation

/// Turns SIGINT and SIGTERM into a message that says what was kept and how to continue, then
/// exits with 128 + the signal's number (the shell's convention), for commands that write a
/// cohort over minutes (`prepare`, `synth`). The message is built when the signal arrives, from
/// `status()`, on a dispatch queue — not in a signal handler — so it may read shared state.
final class InterruptNotice: @unchecked Sendable {
    private var sources: [DispatchSourceSignal] = []
    private let lock = NSLock()
    private var done = 0

    /// `message(signalName, casesDone)` is printed on stderr before the exit.
    init(_ message: @escaping @Sendable (String, Int) -> String) {
        for (number, name) in [(SIGINT, "SIGINT"), (SIGTERM, "SIGTERM")] {
            signal(number, SIG_IGN)   // delivered to the source instead of ending the process
            let source = DispatchSource.makeSignalSource(signal: number, queue: .global())
            source.setEventHandler { [self] in
                printError(message(name, self.progress))
                _exit(128 + number)
            }
            source.resume()
            sources.append(source)
        }
    }

    /// Cases finished so far (for the message).
    var progress: Int {
        get { lock.lock(); defer { lock.unlock() }; return done }
        set { lock.lock(); done = newValue; lock.unlock() }
    }

    /// Restores the default actions.
    func cancel() {
        for s in sources { s.cancel() }
        signal(SIGINT, SIG_DFL)
        signal(SIGTERM, SIG_DFL)
    }
}
