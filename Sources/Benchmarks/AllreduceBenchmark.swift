import BLAS
import Distributed
import Foundation
import MPI
import Model
import Tensor

/// `dsan bench allreduce`: dsan's ring all-reduce against MPI_Allreduce on the ranks of `comm`.
/// For each size, the median over `repetitions` (after one untimed run) of the slowest rank's
/// time to sum a float buffer, by the ring (reduce-scatter + all-gather on point-to-point) and by
/// MPI_Allreduce in the same run, with the ring's bus bandwidth 2(R−1)/R · bytes / time. Then the
/// gradients of the model at `gradientWidth` reduced bucket by bucket the way `dsan train` does
/// (in place, the tensors as one buffer) and, for comparison, packed into one contiguous buffer
/// per bucket and unpacked again (what PyTorch DDP does without gradient_as_bucket_view).
public struct AllreduceBenchmark {
    /// Buffer sizes in MB (MiB).
    public var sizes: [Double]
    public var repetitions: Int
    /// The model width whose gradients are reduced; 0 skips that part.
    public var gradientWidth: Int
    /// Gradient bucket size in MB (MiB), as `bucket_mb` in training.
    public var bucketMB: Double

    public init(sizes: [Double], repetitions: Int, gradientWidth: Int, bucketMB: Double) {
        precondition(!sizes.isEmpty && sizes.allSatisfy { $0 > 0 } && repetitions >= 1 && gradientWidth >= 0 && bucketMB > 0,
                     "AllreduceBenchmark: invalid settings")
        self.sizes = sizes
        self.repetitions = repetitions
        self.gradientWidth = gradientWidth
        self.bucketMB = bucketMB
    }

    public struct Row: Codable {
        public var megabytes: Double, ringSeconds: Double, mpiSeconds: Double, ratio: Double, ringBusGBps: Double
    }
    public struct Gradients: Codable {
        public var width: Int, megabytes: Double, buckets: Int, inPlaceSeconds: Double, packedSeconds: Double
    }
    /// What every rank measured (the times are the slowest rank's); encoded as is for `--json`.
    public struct Report: Codable { public var ranks: Int, rows: [Row], gradients: Gradients?, blas: BLASKernelReport }

    /// Runs on every rank of `comm` (a collective: all ranks call it).
    public func run(comm: Communicator) throws -> Report {
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
        for mb in sizes {
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
            let buckets = GradientBuckets(gradients: tensors, bucketBytes: Int(bucketMB * 1_048_576))
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
        return Report(ranks: comm.size, rows: rows, gradients: gradients, blas: BLASStartUp.report)
    }
}

extension AllreduceBenchmark.Report {
    /// The table `dsan bench allreduce` prints on rank 0.
    public func table(repetitions: Int) -> String {
        var lines = [blas.line,
                     "all-reduce of float32 buffers on \(ranks) rank(s), median of \(repetitions)",
                     "      MB     ring (s)  MPI_Allreduce (s)  MPI/ring   ring bus GB/s"]
        for row in rows {
            lines.append(String(format: "%8.0f %12.4f %18.4f %9.2f %14.2f", row.megabytes, row.ringSeconds, row.mpiSeconds, row.ratio, row.ringBusGBps))
        }
        if let g = gradients {
            lines.append(String(format: "gradients of the width-%d model, %.0f MB in %d buckets: in place %.4f s, packed and unpacked %.4f s (%.2fx)",
                                g.width, g.megabytes, g.buckets, g.inPlaceSeconds, g.packedSeconds, g.packedSeconds / g.inPlaceSeconds))
        }
        return lines.joined(separator: "\n")
    }
}
