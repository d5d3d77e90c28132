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

        On two or more ranks it also measures the links as `dsan plan` models them: a small \
        all-reduce (a batch-norm round) on idle links and while ring all-reduces of a bucket run \
        on a second thread, as in training; and fits α, β, the ring's fixed cost per all-reduce \
        and the small all-reduce's wait behind a bucket (--save-network writes them for \
        `dsan plan --network-profile`). Run it over the links the job will use, with the ranks \
        placed as the job places them.

        Examples: mpirun --allow-run-as-root -np 2 dsan bench allreduce
                  mpirun -np 2 --map-by node dsan bench allreduce --save-network net.json   (2 hosts)
        """
    )

    @Option(help: "Buffer sizes in MB, comma-separated.") var sizes = "1,16,64,256"
    @Option(help: "Timed repetitions per size.") var repetitions = 5
    @Option(help: "Model width whose gradient buckets to reduce (0 skips this part).") var gradientWidth = 64
    @Option(help: "Gradient bucket size in MB, as `bucket_mb` in training.") var bucketMb = 25.0
    @Option(name: .customLong("save-network"), help: "Write the fitted network (for `dsan plan --network-profile`) to this file (rank 0; needs ≥ 2 ranks and ≥ 2 --sizes).")
    var saveNetwork: String?
    @Flag(help: "Print JSON instead of a table.") var json = false

    func run() throws {
        let list = sizes.split(separator: ",").compactMap { Double($0.trimmingCharacters(in: .whitespaces)) }
        guard !list.isEmpty, list.allSatisfy({ $0 > 0 }), repetitions >= 1 else {
            throw ValidationError("--sizes must be positive numbers separated by commas and --repetitions ≥ 1")
        }
        guard gradientWidth >= 0, bucketMb > 0 else {
            throw ValidationError("--gradient-width must be ≥ 0 (0 skips the model's gradients) and --bucket-mb positive")
        }
        if saveNetwork != nil && Set(list).count < 2 {
            throw ValidationError("--save-network fits a line through the ring's times: give at least two different --sizes")
        }
        let level = try MPI.initialize(required: .multiple, minimum: .funneled)
        let comm = try Communicator.world
        let report = try AllreduceBenchmark(sizes: list, repetitions: repetitions, gradientWidth: gradientWidth,
                                            bucketMB: bucketMb).run(comm: comm, threadLevel: level)
        if comm.rank == 0 {
            if json {
                try printJSON(report)
            } else {
                print(report.table(repetitions: repetitions, bucketMegabytes: bucketMb))
            }
            if let path = saveNetwork {
                guard let network = report.link?.network else {
                    try? MPI.finalize()
                    throw ExitCode.failure.withMessage("bench allreduce: no network to write to \(path): "
                                               + (report.link?.note ?? "it needs at least 2 ranks"))
                }
                let e = JSONEncoder()
                e.outputFormatting = [.prettyPrinted, .sortedKeys]
                try e.encode(network).write(to: URL(fileURLWithPath: path))
                printError("bench allreduce: wrote the fitted network to \(path) (dsan plan --network-profile \(path))")
            }
        }
        try MPI.finalize()
    }
}
