import ArgumentParser
import CTData
import Distributed
import Workflows
import Foundation

// How the command line speaks to its user and sets its exit code. The library throws errors
// that say what to do; these turn them into the one line `dsan: <cause>` on standard error and
// a status (STYLE.md, "Errors people read").

/// Writes a line to standard error.
func printError(_ text: String) {
    FileHandle.standardError.write(Data((text + "\n").utf8))
}

extension ExitCode {
    /// Prints `message` as the one-line cause on stderr and returns self.
    func withMessage(_ message: String) -> ExitCode {
        printError("dsan: \(message)")
        return self
    }
}

/// Runs `body`, turning any error other than the argument parser's into the one-line
/// `dsan: <cause>` on stderr and a non-zero exit.
enum CommandErrors {
    static func reporting(_ body: () throws -> Void) throws {
        do {
            try body()
        } catch let error as ExitCode {
            throw error
        } catch let error as ValidationError {
            throw error
        } catch {
            throw ExitCode.failure.withMessage("\(error)")
        }
    }
}

extension InterruptNotice {
    /// For `prepare` and `synth`: on SIGINT or SIGTERM, says that `out` holds none of the run's
    /// shards and how to continue, and exits with 128 + the signal's number.
    static func forShards(command: String, total: Int, out: String) -> InterruptNotice {
        InterruptNotice { signal, done in
            printError(ShardDirectoryWriter.interruptedMessage(command: command, signal: signal.name, done: done,
                                                               total: total, out: out))
            _exit(128 + signal.number)
        }
    }
}

/// `MPIJob.run` for a command: a failure prints `dsan: rank R of N: <cause>` and exits non-zero.
func runMPIJob(timeout: Double, _ body: (Collectives) throws -> Void) throws {
    do {
        try MPIJob.run(timeout: timeout, report: { printError("dsan: \($0)") }, body)
    } catch is MPIJobFailed {
        throw ExitCode.failure
    }
}

/// Prints `value` as JSON, pretty-printed with sorted keys: what every `--json` of `dsan bench`
/// prints.
func printJSON<T: Encodable>(_ value: T) throws {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
    print(String(decoding: try encoder.encode(value), as: UTF8.self))
}
