import ArgumentParser
import Benchmarks
import Foundation

/// `dsan bench vector`: dsan's elementwise kernels (VectorKernels) at every vector level this CPU
/// supports, on one thread, levels alternating within each repetition so that a shared machine's
/// load hits them alike.
struct BenchVector: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "vector",
        abstract: "dsan's elementwise kernels at each vector level this CPU supports (baseline, AVX2, AVX-512).",
        discussion: """
        Times ReLU forward (in place) and backward, the fused add-then-ReLU, batch norm's \
        normalisation and input gradient, and Adam over --elements floats on one thread, once \
        per level per repetition (levels alternating), and prints the median time, the memory \
        traffic rate, and the speed-up over the baseline (SSE2) build. The level dsan uses is \
        the widest supported one unless DSAN_SIMD narrows it.

        Example: dsan bench vector --elements 16777216 --repetitions 9
        """
    )

    @Option(help: "Floats per array (default 16 M: 64 MiB, larger than the caches).") var elements = 1 << 24
    @Option(help: "Timed repetitions per kernel and level (the median is reported).") var repetitions = 7
    @Flag(help: "Print JSON instead of a table.") var json = false

    func validate() throws {
        guard elements >= 1 else { throw ValidationError("--elements must be at least 1, got \(elements)") }
        guard repetitions >= 1 else { throw ValidationError("--repetitions must be at least 1, got \(repetitions)") }
    }

    func run() throws {
        let benchmark = VectorBenchmark(elements: elements, repetitions: repetitions)
        let rows = benchmark.run()
        if json {
            try printJSON(rows)
            return
        }
        print(benchmark.table(rows))
    }
}
