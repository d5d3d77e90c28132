import ArgumentParser
import Benchmarks
import Foundation
import MPI

struct BenchAllreduce: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "allreduce",
        abstract: "Compare dsan's ring all-reduce with MPI_Allreduce on the ranks it is launched with.",
        discussion: """
        For each size, the median over --repetitions of the time to sum a float buffer over all \
        ranks, by the ring (reduce-scatter + all-gather on point-to-point) and by MPI_Allreduce, \
        measured in the same run, with the ring's bus bandwidth 2(R−1)/R · bytes / time.

        Then the gradients of the model at --gradient-width (the paper's 64 by default: 254 MB in \
        ~10 buckets of --bucket-mb), reduced bucket by bucket the way `dsan train` does (in \
        place, the tensors as one buffer) and, for comparison, packed into one contiguous buffer \
        per bucket and unpacked again (what PyTorch DDP does without gradient_as_bucket_view).

        Example: mpirun --allow-run-as-root -np 2 dsan bench allreduce
        """
    )

    @Option(help: "Buffer sizes in MB, comma-separated.") var sizes = "1,16,64,256"
    @Option(help: "Timed repetitions per size.") var repetitions = 5
    @Option(help: "Model width whose gradient buckets to reduce (0 skips this part).") var gradientWidth = 64
    @Option(help: "Gradient bucket size in MB, as `bucket_mb` in training.") var bucketMb = 25.0
    @Flag(help: "Print JSON instead of a table.") var json = false

    func run() throws {
        let list = sizes.split(separator: ",").compactMap { Double($0.trimmingCharacters(in: .whitespaces)) }
        guard !list.isEmpty, list.allSatisfy({ $0 > 0 }), repetitions >= 1 else {
            throw ValidationError("--sizes must be positive numbers separated by commas and --repetitions ≥ 1")
        }
        guard gradientWidth >= 0, bucketMb > 0 else {
            throw ValidationError("--gradient-width must be ≥ 0 (0 skips the model's gradients) and --bucket-mb positive")
        }
        try MPI.initialize(required: .funneled, minimum: .funneled)
        let comm = try Communicator.world
        let report = try AllreduceBenchmark(sizes: list, repetitions: repetitions, gradientWidth: gradientWidth,
                                            bucketMB: bucketMb).run(comm: comm)
        if comm.rank == 0 {
            if json {
                try printJSON(report)
            } else {
                print(report.table(repetitions: repetitions))
            }
        }
        try MPI.finalize()
    }
}
