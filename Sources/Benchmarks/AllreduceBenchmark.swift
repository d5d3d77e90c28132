import BLAS
import Distributed
import Foundation
import MPI
import Model
import Planning
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
        /// The mean of the ring's repetitions (the network fit's input).
        public var ringMeanSeconds: Double? = nil
    }
    public struct Gradients: Codable {
        public var width: Int, megabytes: Double, buckets: Int, inPlaceSeconds: Double, packedSeconds: Double
        /// The mean of the in-place repetitions (what the fitted network's prediction is set against).
        public var inPlaceMeanSeconds: Double? = nil
    }
    /// The links as the step model sees them (`NetworkModel`): a small all-reduce the size of a
    /// batch-norm round, on idle links and while ring all-reduces of a gradient bucket run on a
    /// thread of their own (as `dsan train`'s communication thread does), and the network fitted
    /// to those and to the rows' ring times.
    public struct Link: Codable {
        /// Bytes of the small all-reduce (a 256-channel batch norm's forward round: 1 + 2·256 doubles).
        public var smallBytes: Int
        public var idleSmallSeconds: Double
        /// Median of the rounds during which every rank's ring was running, and how many there were.
        public var loadedSmallSeconds: Double?
        /// Their mean (the network fit's input: every round that meets a bucket waits, on average, this).
        public var loadedSmallMeanSeconds: Double? = nil
        public var loadedRounds: Int
        /// The ring all-reduces of `bucketMB` that ran meanwhile, and their median time.
        public var loadedRings: Int
        public var loadedRingSeconds: Double?
        /// The fitted network (nil with `note` saying why).
        public var network: NetworkModel?
        /// The fitted network's time for the model's buckets (all of them, back to back), next to
        /// the measured in-place time of `gradients`.
        public var predictedGradientSeconds: Double?
        public var note: String?
    }
    /// What every rank measured (the times are the slowest rank's); encoded as is for `--json`.
    public struct Report: Codable {
        public var ranks: Int, rows: [Row], gradients: Gradients?, link: Link?, blas: BLASKernelReport
    }

    /// Runs on every rank of `comm` (a collective: all ranks call it). `threadLevel` is what
    /// `MPI_Init_thread` provided: the loaded measurement of `link` needs `MPI_THREAD_MULTIPLE`.
    public func run(comm: Communicator, threadLevel: ThreadLevel = .funneled) throws -> Report {
        let ring = RingAllreduce(comm: comm, timeout: 600)
        /// Median over `repetitions` (after one untimed run) of the slowest rank's time; the
        /// mean goes to `lastMean` (for the network fit: a stall of TCP's retransmission timer in
        /// one repetition out of three is part of the expected cost, which the median hides).
        var lastMean = 0.0
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
            lastMean = times.reduce(0, +) / Double(times.count)
            return times.sorted()[times.count / 2]
        }
        var rows: [Row] = []
        for mb in sizes {
            let n = Int(mb * 1_048_576 / 4)
            var buffer = [Float](repeating: 1, count: n)
            let ringTime = try timed { try ring.allreduce(&buffer) }
            let ringMean = lastMean
            let mpiTime = try timed { try comm.allreduce(&buffer) }
            let bytes = Double(n * 4), r = Double(comm.size)
            rows.append(Row(megabytes: mb, ringSeconds: ringTime, mpiSeconds: mpiTime, ratio: mpiTime / ringTime,
                            ringBusGBps: 2 * (r - 1) / r * bytes / ringTime / 1e9, ringMeanSeconds: ringMean))
        }
        var gradients: Gradients?
        var bucketSizes: [Int] = []
        if gradientWidth > 0 {
            let model = ResNet3D(config: ModelConfig(width: gradientWidth, attention: true), seed: 1)
            let tensors = model.registry.parameters.reversed().map(\.gradient)
            for t in tensors { t.fill(1) }
            let buckets = GradientBuckets(gradients: tensors, bucketBytes: Int(bucketMB * 1_048_576))
            bucketSizes = buckets.buckets.map { b in 4 * b.reduce(0) { $0 + tensors[$1].count } }
            let inPlace = try timed { try buckets.allReduce(ring) }
            let inPlaceMean = lastMean
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
                                  inPlaceSeconds: inPlace, packedSeconds: packedTime, inPlaceMeanSeconds: inPlaceMean)
        }
        var link: Link?
        if comm.size > 1 {
            let fit = rows.map { (bytes: $0.megabytes * 1_048_576, seconds: $0.ringMeanSeconds ?? $0.ringSeconds) }
            link = try measureLink(comm: comm, threadLevel: threadLevel, rows: fit, timed: timed)
            if let net = link?.network, !bucketSizes.isEmpty {
                link?.predictedGradientSeconds = bucketSizes.reduce(0) {
                    $0 + CollectiveCost.ringAllreduce(bytes: Double($1), ranks: comm.size, network: net)
                }
            }
        }
        return Report(ranks: comm.size, rows: rows, gradients: gradients, link: link, blas: BLASStartUp.report)
    }

    /// The small all-reduce's time on idle links, then while ring all-reduces of a bucket run on
    /// a second thread (own communicator) with the small ones spaced a few ms apart, as backward's
    /// batch-norm rounds are; then the network fitted to those and to `rows`.
    func measureLink(comm: Communicator, threadLevel: ThreadLevel, rows ringRows: [(bytes: Double, seconds: Double)],
                     timed: (() throws -> Void) throws -> Double) throws -> Link {
        let count = 1 + 2 * 256
        var small = [Double](repeating: 1, count: count)
        func smallRound() throws -> Double {
            let t0 = MPI.wallTime
            try small.withUnsafeMutableBufferPointer { b in try comm.iallreduce(b, .sum).wait(timeout: 600) }
            return MPI.wallTime - t0
        }
        var idle: [Double] = []
        for _ in 0..<max(21, repetitions) { idle.append(try timed { _ = try smallRound() }) }
        let idleMedian = idle.sorted()[idle.count / 2]
        var link = Link(smallBytes: 8 * count, idleSmallSeconds: idleMedian, loadedSmallSeconds: nil, loadedRounds: 0,
                        loadedRings: 0, loadedRingSeconds: nil, network: nil, predictedGradientSeconds: nil, note: nil)
        if threadLevel < .multiple {
            link.note = "MPI provides \(threadLevel), not MPI_THREAD_MULTIPLE: the small all-reduces under a running ring were not measured"
        } else {
            let ringComm = try comm.duplicate()
            let ring = RingAllreduce(comm: ringComm, timeout: 600)
            let rings = repetitions + 1
            let background = BackgroundRings(ring: ring, floats: Int(bucketMB * 1_048_576 / 4), count: rings)
            try comm.barrier()
            background.start()
            var loaded: [Double] = []
            var generator = SplitMix64(seed: 7)
            while true {
                // 0–10 ms apart, so that the rounds meet the ring at every point of its steps.
                usleep(UInt32(generator.next() % 10_000))
                small[0] = background.isDone ? 1 : 0
                for i in 1..<count { small[i] = 1 }
                let t = try smallRound()
                if small[0] >= Double(comm.size) { break }     // every rank's rings are done
                if small[0] == 0 { loaded.append(t) }         // every rank's ring was still running
            }
            let ringTimes = try background.join()
            link.loadedRings = ringTimes.count
            link.loadedRingSeconds = ringTimes.sorted()[ringTimes.count / 2]
            link.loadedRounds = loaded.count
            if !loaded.isEmpty {
                var summary = [loaded.sorted()[loaded.count / 2], loaded.reduce(0, +) / Double(loaded.count)]
                try comm.allreduce(&summary, .max)
                link.loadedSmallSeconds = summary[0]
                link.loadedSmallMeanSeconds = summary[1]
            } else {
                link.note = "no small all-reduce ran while every rank's ring was running (the rings were too quick): queueing not measured"
            }
        }
        if ringRows.count < 2 {
            link.note = (link.note.map { $0 + "; " } ?? "") + "the network is fitted to at least two different --sizes"
        } else {
            let name = "measured by dsan bench allreduce on \(comm.size) ranks, \(ISO8601DateFormatter().string(from: Date()))"
            link.network = NetworkModel.fitted(name: name, ranks: comm.size, ring: ringRows,
                                               idleSmall: idleMedian, loadedSmall: link.loadedSmallMeanSeconds ?? idleMedian)
            if link.network == nil {
                link.note = (link.note.map { $0 + "; " } ?? "") + "the ring's times do not grow with size: no bandwidth to fit"
            }
        }
        return link
    }
}

/// Ring all-reduces of one buffer, `count` of them back to back on a thread of their own, as
/// the trainer's communication thread runs the gradient buckets.
final class BackgroundRings: @unchecked Sendable {
    let ring: RingAllreduce
    let count: Int
    private var buffer: [Float]
    private let finished = NSCondition()
    private var done = false
    private var times: [Double] = []
    private var failure: Error?

    init(ring: RingAllreduce, floats: Int, count: Int) {
        self.ring = ring
        self.count = count
        buffer = [Float](repeating: 1, count: floats)
    }

    /// Whether the thread has finished its all-reduces (read by the measuring thread).
    var isDone: Bool {
        finished.lock(); defer { finished.unlock() }
        return done
    }

    func start() {
        let thread = Thread { [self] in
            var error: Error?
            var measured: [Double] = []
            for k in 0..<count {
                let t0 = MPI.wallTime
                do {
                    try buffer.withUnsafeMutableBufferPointer { try ring.allreduce($0, verifyLength: k == 0) }
                } catch let e { error = e; break }
                measured.append(MPI.wallTime - t0)
            }
            finished.lock()
            times = measured
            failure = error
            done = true
            finished.broadcast()
            finished.unlock()
        }
        thread.name = "dsan-bench-ring"
        thread.start()
    }

    /// Waits for the thread; its all-reduces' times, or its error.
    func join() throws -> [Double] {
        finished.lock(); defer { finished.unlock() }
        while !done { finished.wait() }
        if let failure { throw failure }
        return times
    }
}

extension AllreduceBenchmark.Report {
    /// The table `dsan bench allreduce` prints on rank 0.
    public func table(repetitions: Int, bucketMegabytes: Double = 25) -> String {
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
        if let l = link {
            var line = String(format: "links: a %d-byte all-reduce (a batch-norm round) %.3f ms idle", l.smallBytes, l.idleSmallSeconds * 1e3)
            if let loaded = l.loadedSmallSeconds {
                line += String(format: ", %.3f ms while a %.0f MB ring runs (median of %d rounds, mean %.3f ms, during %d rings of %.3f s)",
                               loaded * 1e3, bucketMegabytes, l.loadedRounds, (l.loadedSmallMeanSeconds ?? loaded) * 1e3,
                               l.loadedRings, l.loadedRingSeconds ?? 0)
            }
            lines.append(line)
            if let n = l.network {
                lines.append(String(format: "fitted network (ring means, loaded mean): α %.1f µs, β %.4f GB/s, %.2f ms per ring all-reduce, %.2f ms queueing behind a bucket",
                                    n.latency * 1e6, n.bandwidth / 1e9, n.allreduceOverhead * 1e3, n.queueDelay * 1e3))
                if let p = l.predictedGradientSeconds, let g = gradients {
                    let measured = g.inPlaceMeanSeconds ?? g.inPlaceSeconds
                    lines.append(String(format: "  its time for the gradients' %d buckets: %.4f s (measured in place, mean: %.4f s, %+.1f %%)",
                                        g.buckets, p, measured, 100 * (p / measured - 1)))
                }
            }
            if let note = l.note { lines.append("note: " + note) }
        }
        return lines.joined(separator: "\n")
    }
}
