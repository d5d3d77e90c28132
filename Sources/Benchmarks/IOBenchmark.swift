import BLAS
import CTData
import Foundation
import Tensor

/// `dsan bench io`: how fast shards are read and decoded, against plain reads of the same files,
/// and whether the prefetch thread hides loading behind a (simulated) training step:
///
/// 1. raw: every .h5 file read with plain read(2) in 4 MiB blocks;
/// 2. decode: `Cohort.load` of every case (HDF5 + gzip inflate, image × lung, infection mask as
///    floats), the trainer's path;
/// 3. prefetch: `steps` steps, each taking `batch` cases from a `Prefetcher` (depth `depth`) and
///    then computing for `stepSeconds` (busy-spinning on `threads` threads, or sleeping); the
///    time spent waiting for cases is the stall.
///
/// Before the first (cold) pass of 1 and 2, and before 3, the files' cached pages are dropped
/// (`PageCache`); the other `passes` passes are warm.
public struct IOBenchmark {
    /// The stand-in for a training step's computation.
    public enum ComputeKind: String, CaseIterable, Codable, Sendable { case spin, sleep }

    /// Warm passes after the cold one (the median is reported).
    public var passes: Int
    /// Simulated steps, cases per step, the compute time of one step, the prefetch depth.
    public var steps: Int, batch: Int, stepSeconds: Double, depth: Int
    public var compute: ComputeKind
    /// Spinning threads.
    public var threads: Int

    public init(passes: Int, steps: Int, batch: Int, stepSeconds: Double, depth: Int, compute: ComputeKind, threads: Int) {
        precondition(passes >= 1 && steps >= 1 && batch >= 1 && depth >= 1 && threads >= 1
                     && stepSeconds >= 0 && stepSeconds.isFinite, "IOBenchmark: invalid settings")
        self.passes = passes
        self.steps = steps
        self.batch = batch
        self.stepSeconds = stepSeconds
        self.depth = depth
        self.compute = compute
        self.threads = threads
    }

    public struct Pass: Codable {
        public var seconds: Double, casesPerSecond: Double, fileMBPerSecond: Double
        /// Fraction of the files' pages in the page cache just before the pass.
        public var residentBefore: Double
    }
    public struct Throughput: Codable {
        public var cold: Pass
        public var warm: [Pass]
        public var warmMedian: Pass
    }
    public struct Prefetch: Codable {
        public var steps: Int, batch: Int, depth: Int, stepSeconds: Double, compute: ComputeKind, threads: Int
        public var residentBefore: Double
        /// Per step, seconds spent waiting for the batch (the first includes filling the queue).
        public var stalls: [Double]
        public var firstStall: Double, medianStallAfterFirst: Double, meanStallAfterFirst: Double
        /// Stall time over the whole loop's time.
        public var stallFraction: Double
    }
    public struct Report: Codable {
        public var directory: String, synthetic: Bool, files: Int, fileMB: Double
        public var cases: Int, size: [Int], decodedMBPerCase: Double
        public var raw: Throughput, decode: Throughput, prefetch: Prefetch
        /// The CPU and the OpenBLAS core (BLASStartUp).
        public var blas: BLASKernelReport = BLASStartUp.report
        public var loadAverage: Double
    }

    /// Measures the shards of `directory` (`synthetic`: a cohort written for the benchmark, which
    /// the report says); `note` receives a line as each measurement starts.
    public func run(directory: String, synthetic: Bool, note: (String) -> Void = { _ in }) throws -> Report {
        let cohort = try Cohort(directory: directory)
        let files = cohort.shards.map(\.path)
        let bytes = try files.reduce(0.0) { $0 + Double(try FileManager.default.attributesOfItem(atPath: $1)[.size] as? Int ?? 0) }
        let n = cohort.count

        func timedPasses(_ body: () throws -> Void) throws -> Throughput {
            var all: [Pass] = []
            for p in 0...passes {
                let resident = p == 0 ? try PageCache.drop(files) : try PageCache.resident(files)
                let t0 = Date()
                try body()
                let s = Date().timeIntervalSince(t0)
                all.append(Pass(seconds: s, casesPerSecond: Double(n) / s, fileMBPerSecond: bytes / 1e6 / s, residentBefore: resident))
            }
            let warm = Array(all.dropFirst())
            return Throughput(cold: all[0], warm: warm, warmMedian: warm.sorted { $0.seconds < $1.seconds }[warm.count / 2])
        }
        note("bench io: raw reads of \(files.count) file(s), \(String(format: "%.1f", bytes / 1e6)) MB")
        let raw = try timedPasses { for f in files { try Self.readAll(f) } }
        note("bench io: decoding \(n) case(s)")
        let decode = try timedPasses { for i in 0..<n { _ = try cohort.load(i) } }
        note("bench io: prefetch behind \(steps) simulated step(s) of \(stepSeconds) s")
        let prefetch = try measurePrefetch(directory: directory, files: files, count: n)

        return Report(directory: directory, synthetic: synthetic, files: files.count, fileMB: bytes / 1e6,
                      cases: n, size: cohort.size, decodedMBPerCase: Double(2 * 4 * cohort.size.reduce(1, *)) / 1e6,
                      raw: raw, decode: decode, prefetch: prefetch, loadAverage: Machine.loadAverage())
    }

    func measurePrefetch(directory: String, files: [String], count: Int) throws -> Prefetch {
        let t = threads
        let cohort = try Cohort(directory: directory)   // its own handles, as the trainer's epoch has
        let resident = try PageCache.drop(files)
        let prefetcher = Prefetcher(cohort: cohort, depth: depth)
        defer { prefetcher.stop() }
        prefetcher.schedule((0..<(steps * batch)).map { $0 % count })
        var stalls: [Double] = []
        let start = Date()
        for _ in 0..<steps {
            let t0 = Date()
            // Kept through the step, as the trainer keeps its batch: freeing tens of MB is not a stall.
            let cases = try (0..<batch).map { _ in try prefetcher.next() }
            stalls.append(Date().timeIntervalSince(t0))
            simulateStep(threads: t)
            withExtendedLifetime(cases) {}
        }
        let total = Date().timeIntervalSince(start)
        let rest = Array(stalls.dropFirst())
        return Prefetch(steps: steps, batch: batch, depth: depth, stepSeconds: stepSeconds, compute: compute, threads: t,
                        residentBefore: resident, stalls: stalls, firstStall: stalls[0],
                        medianStallAfterFirst: rest.isEmpty ? 0 : rest.sorted()[rest.count / 2],
                        meanStallAfterFirst: rest.isEmpty ? 0 : rest.reduce(0, +) / Double(rest.count),
                        stallFraction: stalls.reduce(0, +) / total)
    }

    /// The stand-in for forward + backward: `threads` busy threads (they compete with the
    /// prefetch thread for cores, as the conv kernels do) or a sleep.
    func simulateStep(threads t: Int) {
        switch compute {
        case .sleep:
            Thread.sleep(forTimeInterval: stepSeconds)
        case .spin:
            let deadline = Date().addingTimeInterval(stepSeconds)
            DispatchQueue.concurrentPerform(iterations: t) { _ in
                var x = 0.0
                while Date() < deadline { for i in 0..<1000 { x += Double(i) } }
                if x < 0 { print(x) }   // keep the loop
            }
        }
    }

    /// Reads a whole file with read(2) in 4 MiB blocks.
    static func readAll(_ path: String) throws {
        let fd = open(path, O_RDONLY)
        guard fd >= 0 else { throw BenchmarkError("cannot open \(path): \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        let block = 4 << 20
        let buffer = UnsafeMutableRawPointer.allocate(byteCount: block, alignment: 4096)
        defer { buffer.deallocate() }
        while true {
            let got = read(fd, buffer, block)
            if got < 0 { throw BenchmarkError("cannot read \(path): \(String(cString: strerror(errno)))") }
            if got == 0 { break }
        }
    }

    /// The text `dsan bench io` prints.
    public static func text(_ r: Report) -> String {
        func pass(_ label: String, _ p: Pass) -> String {
            "  " + label.padding(toLength: 22, withPad: " ", startingAt: 0)
                + String(format: "%8.3f s  %8.2f cases/s  %9.1f MB/s of shard  (resident before: %3.0f%%)", p.seconds, p.casesPerSecond, p.fileMBPerSecond, 100 * p.residentBefore)
        }
        let p = r.prefetch
        let perCase = r.decode.warmMedian.seconds / Double(r.cases)
        return [
            r.blas.line,
            "\(r.synthetic ? "synthetic cohort" : r.directory): \(r.cases) case(s) at \(r.size.map(String.init).joined(separator: "x")) in \(r.files) shard(s), \(String(format: "%.1f", r.fileMB)) MB on disk (\(String(format: "%.2f", r.fileMB / Double(r.cases))) MB per case); load average \(String(format: "%.2f", r.loadAverage))",
            "raw read(2) of the .h5 files:",
            pass("first (cold)", r.raw.cold),
            pass("warm, median of \(r.raw.warm.count)", r.raw.warmMedian),
            "decode (Cohort.load: HDF5 + inflate + image × lung, \(String(format: "%.1f", r.decodedMBPerCase)) MB of floats per case):",
            pass("first (cold)", r.decode.cold),
            pass("warm, median of \(r.decode.warm.count)", r.decode.warmMedian),
            String(format: "  warm decoded output   %8.1f MB/s; decode / raw warm time: %.1f×", r.decodedMBPerCase * r.decode.warmMedian.casesPerSecond,
                   r.decode.warmMedian.seconds / r.raw.warmMedian.seconds),
            "prefetch (depth \(p.depth), cold cache, resident before \(String(format: "%.0f%%", 100 * p.residentBefore))) behind \(p.steps) step(s) of \(p.stepSeconds) s (\(p.compute.rawValue)\(p.compute == .spin ? " on \(p.threads) thread(s)" : "")), \(p.batch) case(s) per step:",
            String(format: "  stall, first step     %8.3f s (fills the queue)", p.firstStall),
            String(format: "  stall, later steps    %8.3f s median, %.3f s mean", p.medianStallAfterFirst, p.meanStallAfterFirst),
            String(format: "  stall fraction        %8.1f%% of the loop; a batch takes %.3f s to decode warm (%.0f%% of a step)",
                   100 * p.stallFraction, perCase * Double(p.batch), p.stepSeconds > 0 ? 100 * perCase * Double(p.batch) / p.stepSeconds : .infinity),
        ].joined(separator: "\n")
    }
}

/// Per-file page-cache control: drop a file's cached pages (posix_fadvise) and measure how much
/// of it is resident (mincore on a mapping). Touches only the named files.
public enum PageCache {
    /// Writes back and drops the files' cached pages; returns the fraction still resident after.
    public static func drop(_ files: [String]) throws -> Double {
        for f in files {
            let fd = open(f, O_RDONLY)
            guard fd >= 0 else { throw BenchmarkError("cannot open \(f): \(String(cString: strerror(errno)))") }
            fdatasync(fd)   // dirty pages (a cohort just written) cannot be dropped
            _ = posix_fadvise(fd, 0, 0, Int32(POSIX_FADV_DONTNEED))
            close(fd)
        }
        return try resident(files)
    }

    /// Fraction of the files' pages in the page cache.
    public static func resident(_ files: [String]) throws -> Double {
        var pages = 0, present = 0
        let pageSize = Int(sysconf(Int32(_SC_PAGESIZE)))
        for f in files {
            let fd = open(f, O_RDONLY)
            guard fd >= 0 else { throw BenchmarkError("cannot open \(f): \(String(cString: strerror(errno)))") }
            defer { close(fd) }
            var st = stat()
            guard fstat(fd, &st) == 0, st.st_size > 0 else { continue }
            let length = Int(st.st_size)
            guard let map = mmap(nil, length, PROT_READ, MAP_SHARED, fd, 0), map != MAP_FAILED else { continue }
            defer { munmap(map, length) }
            let count = (length + pageSize - 1) / pageSize
            var vector = [UInt8](repeating: 0, count: count)
            if mincore(map, length, &vector) == 0 {
                pages += count
                present += vector.reduce(0) { $0 + Int($1 & 1) }
            }
        }
        return pages > 0 ? Double(present) / Double(pages) : 0
    }
}

/// A benchmark that cannot run as asked: a file the I/O benchmark could not open or read, a step
/// at a size the model cannot train on.
public struct BenchmarkError: Error, CustomStringConvertible, Equatable {
    public var description: String
    init(_ description: String) { self.description = description }
}
