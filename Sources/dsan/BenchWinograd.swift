import ArgumentParser
import Benchmarks
import Foundation
import Model

/// `dsan bench winograd`: the Winograd kernels of the model's convs with and without dsan's layout
/// choices (the cache line between ξ matrices of V and M, the weight transform's prefetch).
struct BenchWinograd: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "winograd",
        abstract: "Each conv's Winograd kernels with and without dsan's layout choices.",
        discussion: """
        For every distinct conv of the model that runs by Winograd at --size (batch 1), on one \
        thread: the input, gradient and output transforms of its first block of tiles (F(4,3): \
        input and output) with dsan's layout of V and M (consecutive ξ matrices one cache line \
        more than channels·ld apart) and with the matrices channels·ld apart; and the packed \
        weight transform, panel by panel and slice by slice as the GEMM phase takes them, forward \
        and for dX, with its weight prefetch and without, and with its results stored straight \
        into the slice's matrices (dsan's choice) and staged. For every conv whose tiles make one \
        block (layers 3–4 at batch 1), on --threads threads: its whole forward and dX with the GEMM \
        phase's weights transformed in slices that stay in a core's L2 (dsan's choice) and in \
        whole row panels, and with the transform's stores unstaged and staged. With and without \
        alternate; prints the medians and their ratio.

        Example: taskset -c 0 dsan bench winograd --size 64x128x128 --repetitions 15
                 taskset -c 0-1 dsan bench winograd --size 64x128x128 --threads 2
        """
    )

    @Option(help: "Volume size DxHxW.") var size = VolumeSize(64, 128, 128)
    @Option(help: "Timed repetitions per kernel, with and without (the median is reported).") var repetitions = 9
    @Option(help: "Threads of the one-block convs' forward and dX (the transforms run on one).") var threads = 1
    @Flag(help: "Print JSON instead of a table.") var json = false

    func validate() throws {
        guard repetitions >= 1 else { throw ValidationError("--repetitions must be at least 1, got \(repetitions)") }
        guard threads >= 1 else { throw ValidationError("--threads must be at least 1, got \(threads)") }
    }

    func run() throws {
        let benchmark = WinogradLayoutBenchmark(size: size, repetitions: repetitions, threads: threads)
        let rows = benchmark.run()
        if json {
            try printJSON(rows)
            return
        }
        print(benchmark.table(rows))
    }
}
