import ArgumentParser

struct BenchKernels: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "kernels",
        abstract: "GFLOP/s of sgemm and of every distinct conv of ResNet34, as ratios to sgemm."
    )
    func run() throws {
        throw ValidationError("bench kernels is not built yet")
    }
}
