import ArgumentParser
import Benchmarks
import Foundation
import Model
import Tensor

struct BenchGranularity: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "granularity",
        abstract: "How finely a training step's parallel loops are cut for N threads, and the speed-up those cuts allow.",
        discussion: """
        For cluster nodes with more cores than this machine. Profiles one training step at 1 \
        thread (each parallel region's time, by the source line that opened it), then runs one \
        step at each --threads count and reads how each region was cut there: k items (elements, \
        or the units of work that workers take as they finish) over w workers. A region of k \
        equal items on w workers takes at least ⌈k/w⌉ items' time, against k/N ideally; the \
        serial code between regions keeps its 1-thread time. Prints, per N, the least step time \
        those cuts allow, the speed-up over 1 thread and its efficiency, and the sites that lose \
        most to their cuts.

        The N-thread steps may run on fewer cores than N (their times are not used; the cuts \
        depend on N, not on the cores), so this runs anywhere. The result is an upper limit: on \
        a real N-core machine memory bandwidth, uneven items, hand-overs and work a cut repeats \
        cost more. A region far below 100 % here cannot keep N cores busy whatever the machine.

        Example: dsan bench granularity --threads 4,8,16,32
                 dsan bench granularity --size 138x256x256 --threads 16 --json
        """
    )

    @OptionGroup var model: StepOptions
    @Option(help: "Comma-separated thread counts N to cut the step's loops for.") var threads = "4,8,16,32"
    @Option(help: "Untimed warm-up steps at each thread count.") var warmup = 1
    @Option(help: "Sites listed per thread count (all are in --json).") var top = 12
    @Flag(help: "Print JSON instead of a table.") var json = false

    func counts() throws -> [Int] {
        guard let counts = parseThreadCounts(threads), counts.allSatisfy({ $0 <= 1024 }) else {
            throw ValidationError("--threads must be thread counts from 1 to 1024 separated by commas (e.g. --threads 4,8,16,32), got '\(threads)'")
        }
        return counts
    }

    func validate() throws {
        _ = try counts()
        guard warmup >= 0 else { throw ValidationError("--warmup must be at least 0, got \(warmup)") }
        guard top >= 0 else { throw ValidationError("--top must be at least 0, got \(top)") }
    }

    func run() throws {
        let benchmark = GranularityBenchmark(size: model.size, batch: model.batch, width: model.width,
                                             threadCounts: try counts(), warmup: warmup)
        let report = try benchmark.run(listed: top) { line in if !json { printError(line) } }
        if json {
            try printJSON(report)
        } else {
            print(report.text)
        }
    }
}
