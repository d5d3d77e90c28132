import ArgumentParser
import Benchmarks
import Foundation
import NN

/// `dsan bench kernels`: sgemm and every distinct conv of ResNet34, forward, input gradient and
/// weight gradient, at each requested thread count; every conv pass is also given as a fraction of
/// the same-run sgemm rate at 2048³, the ceiling the conv kernels are built on. The 3³ stride-1
/// convs are timed with both algorithms in the same run: direct (vol2col + GEMM) and Winograd, the
/// latter as "effective" GFLOP/s (the direct conv's FLOPs ÷ Winograd's time) and as a speed-up.
struct BenchKernels: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "kernels",
        abstract: "GFLOP/s of sgemm and of every distinct conv of ResNet34, as ratios to sgemm.",
        discussion: """
        Each figure is the median of --repetitions timed runs after --warmup untimed ones, batch 1. \
        The network forward estimate sums the forward time of the 36 convs of ResNet34 at --size \
        (the other layers are memory-bound and not included), once all direct and once with \
        Winograd for the 3³ stride-1 convs. Build with -c release.
        """
    )

    @Flag(help: "Print JSON instead of a table.")
    var json = false

    @Option(help: "Comma-separated thread counts; each sets both BLAS.threads and Parallel.threads.")
    var threads: String = "1,2"

    @Option(help: "Network input size D×H×W (the convs' inputs follow from it).")
    var size: String = "64x128x128"

    @Option(help: "Timed runs per figure (the median is reported).")
    var repetitions: Int = 5

    @Option(help: "Untimed runs before timing.")
    var warmup: Int = 1

    @Option(name: .customLong("workspace-mib"), help: "Conv workspace size in MiB (bounds the column tile; the direct convs run at most one worker per MiB); default: 1 MiB per thread of the largest --threads count, at least 2.")
    var workspaceMiB: Int?

    func validate() throws {
        if threadCounts == nil { throw ValidationError("--threads must be positive integers separated by commas, got '\(threads)'") }
        if volume == nil { throw ValidationError("--size must be D×H×W with positive integers, e.g. 64x128x128, got '\(size)'") }
        if repetitions < 1 { throw ValidationError("--repetitions must be at least 1, got \(repetitions)") }
        if warmup < 0 { throw ValidationError("--warmup must be at least 0, got \(warmup)") }
        if let workspaceMiB, workspaceMiB < 1 { throw ValidationError("--workspace-mib must be at least 1, got \(workspaceMiB)") }
    }

    private var threadCounts: [Int]? { parseThreadCounts(threads) }

    private var volume: [Int]? {
        let parts = size.lowercased().split(whereSeparator: { $0 == "x" || $0 == "×" }).map { Int($0) }
        guard parts.count == 3, parts.allSatisfy({ ($0 ?? 0) >= 1 }) else { return nil }
        return parts.map { $0! }
    }

    func run() throws {
        let report = KernelBenchmark(threadCounts: threadCounts!, volume: volume!, repetitions: repetitions, warmup: warmup,
                                     workspaceMiB: workspaceMiB ?? max(2, threadCounts!.max()!) * (ConvWorkspace.tileBytes >> 20)).run()
        if json {
            try printJSON(report)
        } else {
            print(report.table)
        }
    }
}
