import Foundation
import Testing
@testable import CTData

/// `InterruptNotice` and the message `prepare` and `synth` print when interrupted
/// (`InputRulesCLITests` interrupts the real commands).
@Suite(.serialized) struct InterruptNoticeTests {
    @Test func theMessageSaysNothingIsAShardAndHowToContinue() {
        let text = ShardDirectoryWriter.interruptedMessage(command: "prepare", signal: "SIGTERM", done: 3, total: 8, out: "data/p")
        #expect(text == "dsan prepare: interrupted by SIGTERM after 3 of 8 cases; data/p holds none of this run's shards "
                + "(its unfinished files end in .incomplete or .partial, and the next run into data/p removes them). "
                + "To continue, run the same command again: it starts over (see Docs/input-rules.md)")
    }

    /// A signal sent to this process reaches the handler with the progress at that moment, and
    /// does not end the process. SIGUSR1 stands in for SIGINT: children that other tests start
    /// meanwhile inherit an ignored signal, and none of them relies on SIGUSR1.
    @Test func aSignalReachesTheHandlerWithTheProgress() {
        final class Seen: @unchecked Sendable {
            let done = DispatchSemaphore(value: 0)
            var signal: InterruptNotice.Signal?
            var progress = -1
        }
        let seen = Seen()
        let usr1 = InterruptNotice.Signal(name: "SIGUSR1", number: SIGUSR1)
        #expect(InterruptNotice.signals.map(\.name) == ["SIGINT", "SIGTERM"])
        let notice = InterruptNotice(signals: [usr1]) { signal, progress in
            seen.signal = signal
            seen.progress = progress
            seen.done.signal()
        }
        defer { notice.cancel() }
        notice.progress = 5
        // Sent to the process, as `kill -INT` is, once the dispatch source has had time to arm
        // (until then the signal is ignored, not fatal).
        Thread.sleep(forTimeInterval: 0.5)
        kill(getpid(), SIGUSR1)
        #expect(seen.done.wait(timeout: .now() + 10) == .success)
        #expect(seen.signal == usr1)
        #expect(seen.progress == 5)
    }
}
