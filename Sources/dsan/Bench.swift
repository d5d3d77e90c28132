import ArgumentParser

/// `dsan bench …`: benchmarks whose figures go into Docs/performance.md.
struct Bench: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Measure kernels, training steps, the all-reduce and shard I/O on this machine.",
        subcommands: [BenchKernels.self, BenchStep.self, BenchThreads.self, BenchGranularity.self, BenchWinograd.self, BenchTuning.self, BenchAllreduce.self, BenchIO.self, BenchVector.self]
    )
}
