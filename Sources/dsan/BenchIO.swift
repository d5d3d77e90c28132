import ArgumentParser
import Benchmarks
import CTData
import Foundation
import Model
import Tensor

/// `dsan bench io`: how fast shards are read and decoded, against plain reads of the same files,
/// and whether the prefetch thread hides loading behind a (simulated) training step.
struct BenchIO: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "io",
        abstract: "Shard read + decode throughput, raw file reads, and prefetch stalls behind a step.",
        discussion: """
        Three measurements on the shards of --data (or of a synthetic cohort of --cases at --size \
        written to a temporary directory and removed afterwards):

        1. raw: read every .h5 file with plain read(2) in 4 MiB blocks;
        2. decode: Cohort.load of every case (HDF5 + gzip inflate, image × lung, infection mask \
           as floats), the trainer's path;
        3. prefetch: --steps steps, each taking --batch cases from a Prefetcher (depth --depth) \
           and then computing for --step-seconds (busy-spinning on --threads threads, or \
           sleeping); the time spent waiting for cases is the stall.

        The page cache: before the first pass of 1 and 2, and before 3, each file's cached pages \
        are dropped with posix_fadvise(POSIX_FADV_DONTNEED) (this file only, no root needed) \
        and the fraction still resident is reported (mincore), so the first pass is cold if the \
        kernel honoured it. The other --passes passes are warm (the files are in memory).

        Example: dsan bench io --cases 16 --size 64x128x128 --step-seconds 2.7
                 dsan bench io --data data/train --step-seconds 18 --json
        """
    )

    @Option(help: "Shard directory to read (default: a temporary synthetic cohort).") var data: String?
    @Option(help: "Cases of the synthetic cohort (without --data).") var cases = 16
    @Option(help: "Volume size DxHxW of the synthetic cohort (without --data).") var size = VolumeSize(64, 128, 128)
    @Option(help: "Warm passes after the cold one (the median is reported).") var passes = 3
    @Option(help: "Simulated training steps for the prefetch measurement.") var steps = 8
    @Option(help: "Cases per step (one rank's share of the global batch).") var batch = 1
    @Option(name: .customLong("step-seconds"), help: "Compute time of one simulated step, e.g. the median step of `dsan bench step`.")
    var stepSeconds = 0.5
    @Option(help: "Prefetch depth (cases decoded ahead; `prefetch` in the configuration).") var depth = 2
    @Option(help: "Simulated compute: spin (busy threads, competing for cores as training does) or sleep.")
    var compute: IOBenchmark.ComputeKind = .spin
    @Option(help: "Spinning threads (default: the cores this process may use).") var threads: Int?
    @Flag(help: "Print JSON instead of text.") var json = false

    func validate() throws {
        guard cases >= 1 else { throw ValidationError("--cases must be at least 1, got \(cases)") }
        guard passes >= 1 else { throw ValidationError("--passes must be at least 1, got \(passes)") }
        guard steps >= 1 else { throw ValidationError("--steps must be at least 1, got \(steps)") }
        guard batch >= 1 else { throw ValidationError("--batch must be at least 1, got \(batch)") }
        guard depth >= 1 else { throw ValidationError("--depth must be at least 1, got \(depth)") }
        guard stepSeconds >= 0 && stepSeconds.isFinite else { throw ValidationError("--step-seconds must be a non-negative number, got \(stepSeconds)") }
        if let t = threads, t < 1 { throw ValidationError("--threads must be at least 1, got \(t)") }
    }

    func run() throws {
        var directory = data ?? ""
        let synthetic = data == nil
        if synthetic {
            directory = FileManager.default.temporaryDirectory.appendingPathComponent("dsan-bench-io-\(UUID().uuidString)").path
            if !json { printError("bench io: writing \(cases) synthetic cases at \(size) to \(directory)") }
            try SyntheticCohort.write(directory: directory, cases: cases, size: size.dims, seed: 1, shardSize: 8)
        }
        defer { if synthetic { try? FileManager.default.removeItem(atPath: directory) } }
        let benchmark = IOBenchmark(passes: passes, steps: steps, batch: batch, stepSeconds: stepSeconds, depth: depth,
                                    compute: compute, threads: threads ?? ProcessInfoCores.available)
        let report: IOBenchmark.Report
        do {
            report = try benchmark.run(directory: directory, synthetic: synthetic) { if !json { printError($0) } }
        } catch let error as BenchmarkError {
            throw ValidationError(error.description)
        }
        if json {
            try printJSON(report)
        } else {
            print(IOBenchmark.text(report))
        }
    }
}

/// `--compute spin|sleep`.
extension IOBenchmark.ComputeKind: ExpressibleByArgument {}
