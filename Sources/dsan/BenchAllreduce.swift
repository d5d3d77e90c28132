import ArgumentParser
import BLAS
import Distributed
import Foundation
import MPI
import Model

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

    struct Row: Codable {
        var megabytes: Double, ringSeconds: Double, mpiSeconds: Double, ratio: Double, ringBusGBps: Double
    }
    struct Gradients: Codable {
        var width: Int, megabytes: Double, buckets: Int, inPlaceSeconds: Double, packedSeconds: Double
    }
    struct Report: Codable { var ranks: Int, rows: [Row], gradients: Gradients?, blas: BLASKernelReport }

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
        let ring = RingAllreduce(comm: comm, timeout: 600)
        /// Median over `repetitions` (after one untimed run) of the slowest rank's time.
        func timed(_ body: () throws -> Void) throws -> Double {
            var times: [Double] = []
            for r in 0..<(repetitions + 1) {
                try comm.barrier()
                let t0 = MPI.wallTime
                try body()
                let t = MPI.wallTime - t0
                var slowest = [t]
                try comm.allreduce(&slowest, .max)   // a collective ends when its last rank does
                if r > 0 { times.append(slowest[0]) }
            }
            return times.sorted()[times.count / 2]
        }
        var rows: [Row] = []
        for mb in list {
            let n = Int(mb * 1_048_576 / 4)
            var buffer = [Float](repeating: 1, count: n)
            let ringTime = try timed { try ring.allreduce(&buffer) }
            let mpiTime = try timed { try comm.allreduce(&buffer) }
            let bytes = Double(n * 4), r = Double(comm.size)
            rows.append(Row(megabytes: mb, ringSeconds: ringTime, mpiSeconds: mpiTime, ratio: mpiTime / ringTime,
                            ringBusGBps: 2 * (r - 1) / r * bytes / ringTime / 1e9))
        }
        var gradients: Gradients?
        if gradientWidth > 0 {
            let model = ResNet3D(config: ModelConfig(width: gradientWidth, attention: true), seed: 1)
            let tensors = model.registry.parameters.reversed().map(\.gradient)
            for t in tensors { t.fill(1) }
            let buckets = GradientBuckets(gradients: tensors, bucketBytes: Int(bucketMb * 1_048_576))
            let inPlace = try timed { try buckets.allReduce(ring) }
            // The packed baseline: copy each bucket's tensors into one buffer, reduce, copy back.
            var packed = buckets.buckets.map { b in [Float](repeating: 0, count: b.reduce(0) { $0 + tensors[$1].count }) }
            let packedTime = try timed {
                for (k, members) in buckets.buckets.enumerated() {
                    try packed[k].withUnsafeMutableBufferPointer { buffer in
                        var offset = 0
                        for i in members {
                            (buffer.baseAddress! + offset).update(from: tensors[i].data, count: tensors[i].count)
                            offset += tensors[i].count
                        }
                        try ring.allreduce(buffer, verifyLength: false)
                        offset = 0
                        for i in members {
                            tensors[i].data.update(from: buffer.baseAddress! + offset, count: tensors[i].count)
                            offset += tensors[i].count
                        }
                    }
                }
            }
            let floats = tensors.reduce(0) { $0 + $1.count }
            gradients = Gradients(width: gradientWidth, megabytes: Double(floats * 4) / 1e6, buckets: buckets.buckets.count,
                                  inPlaceSeconds: inPlace, packedSeconds: packedTime)
        }
        if comm.rank == 0 {
            if json {
                let e = JSONEncoder()
                e.outputFormatting = [.prettyPrinted, .sortedKeys]
                print(String(decoding: try e.encode(Report(ranks: comm.size, rows: rows, gradients: gradients, blas: BLASStartUp.report)), as: UTF8.self))
            } else {
                print(BLASStartUp.report.line)
                print("all-reduce of float32 buffers on \(comm.size) rank(s), median of \(repetitions)")
                print("      MB     ring (s)  MPI_Allreduce (s)  MPI/ring   ring bus GB/s")
                for row in rows {
                    print(String(format: "%8.0f %12.4f %18.4f %9.2f %14.2f", row.megabytes, row.ringSeconds, row.mpiSeconds, row.ratio, row.ringBusGBps))
                }
                if let g = gradients {
                    print(String(format: "gradients of the width-%d model, %.0f MB in %d buckets: in place %.4f s, packed and unpacked %.4f s (%.2fx)",
                                 g.width, g.megabytes, g.buckets, g.inPlaceSeconds, g.packedSeconds, g.packedSeconds / g.inPlaceSeconds))
                }
            }
        }
        try MPI.finalize()
    }
}
