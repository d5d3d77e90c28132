import ArgumentParser
import Benchmarks
import Foundation
import Model
import NN
import Tensor

struct BenchThreads: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "threads",
        abstract: "What a training step gains from more threads, against sgemm's own gain, in pairs.",
        discussion: """
        Each round times one training step and the sgemm 2048³ rate at 1 thread and at --threads, \
        back to back in this process (the order alternating from round to round), so that both \
        gains of a round saw the same machine. Prints every round, the median gains (step, per \
        phase, sgemm) and whether the step gains at least what sgemm gains. Then, round by round, \
        the step's gain ÷ sgemm's: its median and a 95 % interval for it (the sign test: the k-th \
        smallest to the k-th largest of the rounds, from 6 rounds); an interval across 1 means the \
        run cannot tell the two gains apart, however the medians compare. More rounds narrow it \
        (41 rounds gave 0.92–1.03 on a noisy VM). Pin the process to the cores you mean to compare \
        (1 thread runs on one of them).

        Each round also measures what the cores themselves give: multiply-adds on registers only \
        at 1 thread and at --threads, just before and just after each of the two steps (the \
        lower N-thread rate against the higher 1-thread one). On whole cores that gains --threads times; on a virtual \
        machine whose host runs other work on the same cores it gains less, and no loop can gain \
        more. The report also gives the step's and sgemm's gains over the rounds whose probe \
        gained at least 0.95 × --threads (run on whole cores), the comparison with the host's \
        interference left out. And it measures the memory: the stream rate of y = a + b over 3 × 128 MiB at 1 \
        thread and at --threads (what a memory-bound pass such as Adam can gain at most), and how \
        fast a worker reads a 4 MiB block the next worker has just written against one it wrote \
        itself (what a phase pays when its split of the data differs from the previous one's).

        With --regions, also times each parallel region of the step by the source line that \
        opened it (and the serial code before it) and lists them by the time the N-thread step \
        loses there (medians over the whole-core rounds, or over all rounds when none was): \
        where to look when the step gains less than sgemm. Its "waiting" column is the part \
        of that loss the workers spent idle inside the region (one share ended before \
        another: an uneven split, or a core the host slowed); the rest is work that ran \
        slower per thread (shared caches, memory bandwidth) or serial code. It ends with the \
        memory's share of the goal: the sites split into element-wise passes (Adam, batch norm, \
        activations, pooling, upsampling, losses, zeroing), which gain what the caches and the \
        memory gain, and the rest; what each gained; the step's gain with the passes as measured \
        and the rest at exactly --threads times; and what the rest must gain for the step to \
        match sgemm. Where that is more than --threads, only the caches of more cores holding \
        more can close the gap: the passes' traffic through memory, not dsan's arithmetic, keeps \
        the step below sgemm on this machine.

        With --setting NAME=VALUE, every step of the run (both thread counts) runs with that conv \
        tuning constant (the names and defaults: dsan bench tuning --help), so that two runs tell \
        what a constant does to the gain; dsan bench tuning compares its time in pairs.

        Example: taskset -c 0-1 dsan bench threads --threads 2 --rounds 7
                 taskset -c 0-1 dsan bench threads --threads 2 --rounds 5 --regions
                 taskset -c 0-1 dsan bench threads --threads 2 --rounds 9 --regions \
                   --setting fused-weight-gradient=0
        """
    )

    @OptionGroup var model: StepOptions
    @Option(help: "Threads compared with 1 (at least 2); default: the cores this process may use.") var threads: Int?
    @Option(help: "Rounds (pairs of 1- and N-thread measurements).") var rounds = 5
    @Option(help: "Untimed warm-up steps at each thread count.") var warmup = 1
    @Flag(help: "Also time every parallel region of dsan's loops by its source line, at 1 thread and at N, and list where the N-thread step loses time (regions, and the serial gaps between them).") var regions = false
    @Option(help: "A conv tuning constant for every step of the run, NAME=VALUE (see dsan bench tuning --help).")
    var setting: String?
    @Flag(help: "Print JSON instead of a table.") var json = false

    func validate() throws {
        if let setting { _ = try parseTuningSetting(setting) }
        guard rounds >= 1 else { throw ValidationError("--rounds must be at least 1, got \(rounds)") }
        guard warmup >= 0 else { throw ValidationError("--warmup must be at least 0, got \(warmup)") }
        let n = threads ?? ProcessInfoCores.available
        guard n >= 2 else {
            throw ValidationError(threads == nil
                ? "this process may use only 1 core; pass --threads 2 or more, or run it on more cores (taskset -c 0-1 …)"
                : "--threads must be at least 2 (it is compared with 1), got \(n)")
        }
    }

    func run() throws {
        let benchmark = ThreadGainBenchmark(size: model.size, batch: model.batch,
                                            threads: threads ?? ProcessInfoCores.available, width: model.width,
                                            rounds: rounds, warmup: warmup, regions: regions,
                                            tuning: try setting.map(parseTuningSetting))
        let report = try benchmark.run { line in if !json { printError(line) } }
        if json {
            try printJSON(report)
        } else {
            print(report.text)
        }
    }
}
