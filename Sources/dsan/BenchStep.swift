import ArgumentParser
import Benchmarks
import Foundation
import Model
import Tensor

struct BenchStep: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "step",
        abstract: "Time a training step (or inference) of the model on this machine.",
        discussion: """
        Median over --repetitions steps after --warmup untimed ones, split into forward, loss + \
        backward, and Adam; samples per second; achieved GFLOP/s from the model's analytic FLOP \
        count (conv passes; a training step counts forward, input gradient and weight gradient); \
        the same-run sgemm rate at 2048³ for comparison; and peak resident memory (VmHWM).

        --compare-eager-zeros also runs each repetition with the parameter gradients' zeros \
        written before the backward (DSAN_LAZY_ZEROS=0) instead of left to the kernels that write \
        the gradients, the two alternating in this process, and reports how much slower that is. \
        --compare-pool-wait does the same with the pool threads sleeping as soon as their \
        pause-spin is over (DSAN_POOL_YIELD_US=0) instead of first yielding the core between polls \
        for DSAN_POOL_YIELD_US (default 2000 µs): what the wake-ups after serial stretches cost. \
        --compare-whole-panels does the same with the one-block Winograd convs (layers 3–4 at \
        batch 1) transforming whole row panels of their weights, which go out to L3 and back, \
        instead of slices of 256 KiB that stay in a core's L2. One comparison at a time.

        Example: dsan bench step --size 138x256x256 --threads 2
                 dsan bench step --size 138x256x256 --inference
        """
    )

    @OptionGroup var model: StepOptions
    @Option(help: "Threads (dsan's loops and OpenBLAS); default: the cores this process may use.") var threads: Int?
    @Option(help: "Timed repetitions.") var repetitions = 3
    @Option(help: "Untimed warm-up repetitions.") var warmup = 1
    @Flag(help: "Time eval-mode inference (forward only) instead of a training step.") var inference = false
    @Flag(help: "Also time each repetition with the gradients' zeros written at once, alternating, and compare.")
    var compareEagerZeros = false
    @Flag(help: "Also time each repetition with pool threads that sleep without yielding the core first, alternating, and compare.")
    var comparePoolWait = false
    @Flag(help: "Also time each repetition with the one-block Winograd GEMMs transforming whole weight panels, alternating, and compare.")
    var compareWholePanels = false
    @Flag(help: "Print JSON instead of a table.") var json = false

    func validate() throws {
        if compareEagerZeros && inference { throw ValidationError("--compare-eager-zeros times training steps; drop --inference") }
        if comparePoolWait && (threads ?? ProcessInfoCores.available) < 2 {
            throw ValidationError("--compare-pool-wait compares how dsan's pool threads wait, and one thread has none: use --threads 2 or more")
        }
        let chosen = comparisons.filter(\.chosen).map(\.flag)
        if chosen.count > 1 {
            throw ValidationError("\(chosen.joined(separator: " and ")) each run a second step per repetition; use one at a time")
        }
        guard repetitions >= 1 else { throw ValidationError("--repetitions must be at least 1, got \(repetitions)") }
        guard warmup >= 0 else { throw ValidationError("--warmup must be at least 0, got \(warmup)") }
        guard (threads ?? 1) >= 1 else { throw ValidationError("--threads must be at least 1") }
    }

    /// The --compare-… flags, each with the comparison it asks for.
    private var comparisons: [(flag: String, chosen: Bool, comparison: StepComparison)] {
        [("--compare-eager-zeros", compareEagerZeros, .eagerZeros), ("--compare-pool-wait", comparePoolWait, .poolWait),
         ("--compare-whole-panels", compareWholePanels, .wholePanels)]
    }

    func run() throws {
        var benchmark = StepBenchmark(size: model.size, batch: model.batch, threads: threads ?? ProcessInfoCores.available, width: model.width,
                                      repetitions: repetitions, warmup: warmup, inference: inference)
        benchmark.comparison = comparisons.first(where: \.chosen)?.comparison
        let report = try benchmark.run { r, total, seconds in
            if !json { printError("bench step: repetition \(r)/\(total) took \(String(format: "%.2f", seconds)) s") }
        }
        if json {
            try printJSON(report)
        } else {
            print(report.text)
        }
    }
}

/// The model and batch of a timed step (`bench step`, `bench threads`).
struct StepOptions: ParsableArguments {
    @Option(help: "Volume size DxHxW.") var size = VolumeSize(64, 128, 128)
    @Option(help: "Batch size.") var batch = 1
    @Option(help: "Model width (64 = the paper's ResNet34).") var width = 64

    func validate() throws {
        guard batch >= 1 else { throw ValidationError("--batch must be at least 1, got \(batch)") }
        guard width >= 1 else { throw ValidationError("--width must be at least 1, got \(width)") }
    }
}
