import ArgumentParser
import Benchmarks
import Foundation
import Model

/// `dsan bench winograd`: the Winograd transforms of the model's convs with dsan's layout of V and
/// M and without the cache line between ξ matrices.
struct BenchWinograd: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "winograd",
        abstract: "The Winograd transforms of each conv, with and without a cache line between ξ matrices.",
        discussion: """
        For every distinct conv of the model that runs by Winograd at --size (batch 1), times the \
        input, gradient and output transforms of its first block of tiles (F(4,3): input and \
        output) on one thread, once with dsan's layout of V and M (consecutive ξ matrices one \
        cache line more than channels·ld apart) and once with the matrices channels·ld apart, \
        alternating, and prints the medians and their ratio.

        Example: taskset -c 0 dsan bench winograd --size 64x128x128 --repetitions 15
        """
    )

    @Option(help: "Volume size DxHxW.") var size = VolumeSize(64, 128, 128)
    @Option(help: "Timed repetitions per transform and layout (the median is reported).") var repetitions = 9
    @Flag(help: "Print JSON instead of a table.") var json = false

    func validate() throws {
        guard repetitions >= 1 else { throw ValidationError("--repetitions must be at least 1, got \(repetitions)") }
    }

    func run() throws {
        let benchmark = WinogradLayoutBenchmark(size: size, repetitions: repetitions)
        let rows = benchmark.run()
        if json {
            try printJSON(rows)
            return
        }
        print(benchmark.table(rows))
    }
}
