import ArgumentParser
import Distributed
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

        Example: mpirun --allow-run-as-root -np 2 dsan bench allreduce
        """
    )

    @Option(help: "Buffer sizes in MB, comma-separated.") var sizes = "1,16,64,256"
    @Option(help: "Timed repetitions per size.") var repetitions = 5
    @Flag(help: "Print JSON instead of a table.") var json = false

    struct Row: Codable {
        var megabytes: Double, ringSeconds: Double, mpiSeconds: Double, ratio: Double, ringBusGBps: Double
    }
    struct Report: Codable { var ranks: Int, rows: [Row] }

    func run() throws {
        let list = sizes.split(separator: ",").compactMap { Double($0.trimmingCharacters(in: .whitespaces)) }
        guard !list.isEmpty, list.allSatisfy({ $0 > 0 }), repetitions >= 1 else {
            throw ValidationError("--sizes must be positive numbers separated by commas and --repetitions ≥ 1")
        }
        try MPI.initialize(required: .funneled, minimum: .funneled)
        let comm = try Communicator.world
        let ring = RingAllreduce(comm: comm, timeout: 600)
        var rows: [Row] = []
        for mb in list {
            let n = Int(mb * 1_048_576 / 4)
            var buffer = [Float](repeating: 1, count: n)
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
            let ringTime = try timed { try ring.allreduce(&buffer) }
            let mpiTime = try timed { try comm.allreduce(&buffer) }
            let bytes = Double(n * 4), r = Double(comm.size)
            rows.append(Row(megabytes: mb, ringSeconds: ringTime, mpiSeconds: mpiTime, ratio: mpiTime / ringTime,
                            ringBusGBps: 2 * (r - 1) / r * bytes / ringTime / 1e9))
        }
        if comm.rank == 0 {
            if json {
                let e = JSONEncoder()
                e.outputFormatting = [.prettyPrinted, .sortedKeys]
                print(String(decoding: try e.encode(Report(ranks: comm.size, rows: rows)), as: UTF8.self))
            } else {
                print("all-reduce of float32 buffers on \(comm.size) rank(s), median of \(repetitions)")
                print("      MB     ring (s)  MPI_Allreduce (s)  MPI/ring   ring bus GB/s")
                for row in rows {
                    print(String(format: "%8.0f %12.4f %18.4f %9.2f %14.2f", row.megabytes, row.ringSeconds, row.mpiSeconds, row.ratio, row.ringBusGBps))
                }
            }
        }
        try MPI.finalize()
    }
}
