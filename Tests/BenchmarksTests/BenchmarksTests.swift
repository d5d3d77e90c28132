import Foundation
import Planning
import Testing
import BLAS
import CTData
import Model
import NN
import NumericalTesting
import Tensor
@testable import Benchmarks

/// `dsan bench kernels`: ResNet34's distinct convs, the median, a small measurement and its table.
@Suite struct KernelBenchmarkTests {
    /// ResNet34's 11 distinct convs (36 in all) and the attention module's 1×1×1 conv, which the
    /// network runs too.
    @Test func resnet34HasElevenDistinctConvsAndThirtySixInAllPlusTheAttentionConv() {
        let convs = NetworkConv.resnet34(volume: [64, 128, 128])
        #expect(convs.count == 12)
        #expect(convs.reduce(0) { $0 + $1.count } == 37)
        let counts = Dictionary(uniqueKeysWithValues: convs.map { ($0.name, $0.count) })
        #expect(counts == ["conv1 (stem)": 1, "layer1 3³": 6,
                           "layer2.0.conv1": 1, "layer2.0.downsample": 1, "layer2 3³": 7,
                           "layer3.0.conv1": 1, "layer3.0.downsample": 1, "layer3 3³": 11,
                           "layer4.0.conv1": 1, "layer4.0.downsample": 1, "layer4 3³": 5,
                           "attention": 1])
        #expect(convs.first?.name == "conv1 (stem)" && convs.last?.name == "attention")
        // Every one is what `ResNet3D.convolutions(for:)` lists.
        let all = ResNet3D(config: .paper).convolutions(for: Shape5(n: 1, c: 1, d: 64, h: 128, w: 128))
        for c in convs {
            #expect(all.filter { $0.geometry == c.geometry && $0.input == c.input }.count == c.count, "\(c.name)")
        }
    }

    @Test func medianOfOddAndEvenCounts() {
        var b = KernelBenchmark(threadCounts: [1], volume: [16, 16, 16], repetitions: 3, warmup: 2, workspaceMiB: 1)
        var runs = 0
        _ = b.median { runs += 1 }
        #expect(runs == 5)
        b.repetitions = 4
        runs = 0
        let m = b.median { runs += 1 }
        #expect(runs == 6 && m >= 0)
    }

    /// The table of a hand-built report (the measurement itself flips the process-wide
    /// `ConvAlgorithm.selected`, so it runs in its own process: `BenchKernelsVectorCLITests`).
    @Test func tableHasARowPerConvAndTheNetworkLine() {
        let blas = BLASKernelReport(cpu: "c", extensions: "e", openblas: "OpenBLAS 0.3.21 x", core: "Zen", chosenBy: .openBLAS, reason: "r")
        func pass(_ s: Double) -> KernelReport.Pass { .init(seconds: s, gflops: 2 / s, ratioToSgemm: 0.5 / s) }
        let direct = KernelReport.ConvRow(name: "layer3 3³", conv: "g", input: [1, 256, 4, 8, 8], countInNetwork: 11, gflop: 2,
                                          gemmShape: [256, 2304, 256], sgemmAtShapeGFlops: 40, forward: pass(0.1),
                                          inputGradient: pass(0.2), weightGradient: pass(0.4),
                                          winograd: .init(forward: pass(0.05), inputGradient: pass(0.1), weightGradient: pass(0.2),
                                                          speedUp: [2, 2, 2]))
        var stem = direct
        stem.name = "conv1 (stem)"; stem.countInNetwork = 1; stem.winograd = nil
        let report = KernelReport(machine: "m, 2 cores", openblas: "OpenBLAS 0.3.21 x", coreName: "Zen", blas: blas,
                                  loadAverage: [1.5, 2.25], inputSize: [16, 16, 16], repetitions: 3, warmup: 1, workspaceMiB: 8,
                                  networkConvs: 12, networkForwardGFlop: 24,
                                  runs: [.init(threads: 2, sgemm2048GFlops: 80, convs: [stem, direct],
                                               networkForwardSeconds: 1.2, networkForwardWinogradSeconds: 0.6)])
        let lines = report.table.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        #expect(lines[0] == "machine: m, 2 cores; OpenBLAS OpenBLAS 0.3.21 x (Zen)")
        #expect(lines[1] == blas.line)
        #expect(lines[2] == "load average (1 min) before/after: 1.50 / 2.25")
        #expect(lines.contains("threads 2: sgemm 2048³ 80.0 GF/s"))
        let rows = lines.filter { $0.hasPrefix("conv1 (stem)") || $0.hasPrefix("layer3 3³") }
        #expect(rows.count == 2)
        #expect(rows[1].contains("256×2304×256") && rows[1].hasSuffix("10.0 (2.00)"))   // Winograd's dW and its speed-up
        #expect(!rows[0].contains("(2.00)"))
        #expect(lines.contains("network forward, 12 convs, 24.0 GFLOP: direct 1.200 s (20.0 GF/s), with Winograd 0.600 s (40.0 effective GF/s, ×2.00)"))
    }
}

/// `dsan bench step`: a training step and an inference of a narrow model.
@Suite struct StepBenchmarkTests {
    @Test func peakRSSReadsVmHWM() {
        #expect(StepBenchmark.peakRSS(procStatus: "Name:\tdsan\nVmHWM:\t 1048576 kB\nVmRSS:\t 10 kB\n") == 1)
        #expect(StepBenchmark.peakRSS(procStatus: "Name:\tdsan\n").isNaN)
        #expect(StepBenchmark.peakRSS() > 0)
    }

    @Test(arguments: [false, true]) func aStepIsTimedAndReported(inference: Bool) throws {
        var repetitions: [Int] = []
        let report = try ThreadSettings.with {
            try StepBenchmark(size: VolumeSize(16, 16, 16), batch: 2, threads: 1, width: 4, repetitions: 1, warmup: 1,
                              inference: inference).run { r, total, _ in repetitions.append(r); #expect(total == 2) }
        }
        #expect(repetitions == [1, 2])
        #expect(report.size == [16, 16, 16] && report.batch == 2 && report.threads == 1 && report.inference == inference)
        #expect(report.forwardSeconds > 0 && report.stepSeconds >= report.forwardSeconds)
        #expect(inference ? report.backwardSeconds == 0 && report.optimizerSeconds == 0 : report.backwardSeconds > 0)
        #expect(report.gflop > 0 && report.sgemmGflops > 0 && report.parameters > 0)
        let text = report.text
        #expect(report.pages == FloatStorage.pageReport && report.pages.hasPrefix("memory pages: "))
        #expect(text.hasPrefix(report.blas.line + "\n" + report.pages + "\n" + (inference ? "inference" : "training step") + " at 16x16x16, batch 2, width 4, 1 thread(s), "))
        #expect(text.contains("loss + backward") != inference)
        #expect(text.hasSuffix(" GiB"))
        #expect(report.eagerZeros == nil && report.withoutPoolYield == nil && report.wholePanels == nil)
    }

    /// A small training step timed with `comparison`, under the thread settings restored after.
    static func compared(_ comparison: StepComparison, size: VolumeSize = VolumeSize(16, 16, 24), threads: Int = 1,
                         width: Int = 4, repetitions: Int = 3, warmup: Int = 1) throws -> StepBenchmark.Report {
        var benchmark = StepBenchmark(size: size, batch: 1, threads: threads, width: width, repetitions: repetitions,
                                      warmup: warmup, inference: false)
        benchmark.comparison = comparison
        return try ThreadSettings.with { try benchmark.run() }
    }

    /// --compare-eager-zeros: every timed repetition also runs a step with the zeros written at
    /// once; the report has both medians and the median ratio, and the setting is restored.
    @Test func eagerZerosAreComparedInTheSameRun() throws {
        let setting = Tensor.zerosLazily
        let report = try Self.compared(.eagerZeros)
        #expect(Tensor.zerosLazily == setting)
        let eager = try #require(report.eagerZeros)
        #expect(eager.stepSeconds > 0 && eager.ratio > 0)
        #expect(report.text.split(separator: "\n").last?.hasPrefix("  eager zeros ") == true, "\(report.text)")
        #expect(report.withoutPoolYield == nil && report.wholePanels == nil)
    }

    /// --compare-pool-wait: every timed repetition also runs a 2-thread step whose pool threads do
    /// not yield before they sleep; the report has both medians and the ratio, and the pool's
    /// wait bounds are the same afterwards.
    @Test func poolWaitIsComparedInTheSameRun() throws {
        let bounds = (Parallel.poolSpinMicroseconds, Parallel.poolYieldMicroseconds)
        let report = try Self.compared(.poolWait, threads: 2)
        #expect((Parallel.poolSpinMicroseconds, Parallel.poolYieldMicroseconds) == bounds)
        let other = try #require(report.withoutPoolYield)
        #expect(other.stepSeconds > 0 && other.ratio > 0 && report.eagerZeros == nil)
        #expect(report.text.split(separator: "\n").last?.hasPrefix("  no pool yield ") == true, "\(report.text)")
    }

    /// --compare-whole-panels: every timed repetition also runs a step whose one-block Winograd
    /// convs transform whole weight panels; at 32×128×128 and width 16 layers 3–4 have 16 tiles in
    /// one block, and layer4's 128 channels make more than one slice at every level. Both medians
    /// and the ratio, and the slicing is the rule's again afterwards.
    @Test func wholePanelsAreComparedInTheSameRun() throws {
        let report = try Self.compared(.wholePanels, size: VolumeSize(32, 128, 128), width: 16, repetitions: 2, warmup: 0)
        #expect(WinogradConv.panelSliceColumns == nil)
        let other = try #require(report.wholePanels)
        #expect(other.stepSeconds > 0 && other.ratio > 0 && report.eagerZeros == nil && report.withoutPoolYield == nil)
        #expect(report.text.split(separator: "\n").last?.hasPrefix("  whole panels ") == true, "\(report.text)")
    }
}

/// `dsan bench io`: the page cache, raw reads, and a small run on a synthetic cohort.
@Suite struct IOBenchmarkTests {
    @Test func pageCacheAndRawReadsNameAFileTheyCannotOpen() throws {
        let missing = NSTemporaryDirectory() + "dsan-no-such-file-\(UUID().uuidString).h5"
        #expect(throws: BenchmarkError("cannot open \(missing): No such file or directory")) { try PageCache.drop([missing]) }
        #expect(throws: BenchmarkError("cannot open \(missing): No such file or directory")) { try PageCache.resident([missing]) }
        #expect(throws: BenchmarkError("cannot open \(missing): No such file or directory")) { try IOBenchmark.readAll(missing) }
    }

    @Test func residentIsAFractionOfTheFilesPages() throws {
        let path = NSTemporaryDirectory() + "dsan-page-cache-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: path) }
        try Data(repeating: 7, count: 1 << 20).write(to: URL(fileURLWithPath: path))
        let empty = path + ".empty"
        defer { try? FileManager.default.removeItem(atPath: empty) }
        FileManager.default.createFile(atPath: empty, contents: nil)
        try IOBenchmark.readAll(path)
        let resident = try PageCache.resident([path, empty])
        #expect(resident >= 0 && resident <= 1)
        let after = try PageCache.drop([path])
        #expect(after >= 0 && after <= 1)
        #expect(try PageCache.resident([empty]) == 0)   // no pages to count
    }

    @Test func aSmallRunOnASyntheticCohort() throws {
        let directory = NSTemporaryDirectory() + "dsan-bench-io-test-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: directory) }
        try SyntheticCohort.write(directory: directory, cases: 3, size: [16, 16, 16], seed: 1, shardSize: 2)
        var notes: [String] = []
        let benchmark = IOBenchmark(passes: 2, steps: 3, batch: 2, stepSeconds: 0.01, depth: 1, compute: .sleep, threads: 1)
        let report = try benchmark.run(directory: directory, synthetic: true) { notes.append($0) }
        #expect(notes.count == 3 && notes[0] == "bench io: raw reads of 2 file(s), \(String(format: "%.1f", report.fileMB)) MB")
        #expect(report.files == 2 && report.cases == 3 && report.size == [16, 16, 16] && report.synthetic)
        #expect(report.raw.warm.count == 2 && report.decode.warm.count == 2)
        #expect(report.prefetch.stalls.count == 3 && report.prefetch.stallFraction >= 0 && report.prefetch.stallFraction <= 1)
        let text = IOBenchmark.text(report)
        #expect(text.hasPrefix(report.blas.line + "\nsynthetic cohort: 3 case(s) at 16x16x16 in 2 shard(s), "))
        #expect(text.contains("prefetch (depth 1, cold cache, ") && text.contains("behind 3 step(s) of 0.01 s (sleep), 2 case(s) per step:"))
    }
}

/// `dsan bench vector`'s table (the measurement switches the process-wide vector level, so it
/// runs in its own process: `BenchKernelsVectorCLITests`).
@Suite struct VectorBenchmarkTests {
    @Test func tableHasAHeaderAndARowPerKernelAndLevel() {
        let rows = [VectorBenchmark.Row(kernel: "relu backward", level: "baseline", seconds: 0.004, gbPerSecond: 12.5, speedup: 1),
                    VectorBenchmark.Row(kernel: "relu backward", level: "avx2", seconds: 0.002, gbPerSecond: 25, speedup: 2)]
        let lines = VectorBenchmark(elements: 4096, repetitions: 3).table(rows).split(separator: "\n").map(String.init)
        #expect(lines.count == 4)
        #expect(lines[0] == "vector kernels: 4096 floats per array, 1 thread, median of 3; levels alternate; in use: \(VectorLevel.active)")
        #expect(lines[2] == "relu backward                 baseline      4.00     12.5     1.00")
        #expect(lines[3] == "relu backward                 avx2          2.00     25.0     2.00")
    }
}

/// `dsan bench allreduce`'s table (the measurement runs under mpirun in `BenchAllreduceTests`).
@Suite struct AllreduceBenchmarkTests {
    @Test func tableListsEverySizeAndTheGradients() {
        let blas = BLASKernelReport(cpu: "c", extensions: "e", openblas: "OpenBLAS 0.3.21 x", core: "Zen", chosenBy: .openBLAS, reason: "r")
        let report = AllreduceBenchmark.Report(
            ranks: 2,
            rows: [.init(megabytes: 1, ringSeconds: 0.002, mpiSeconds: 0.003, ratio: 1.5, ringBusGBps: 0.52)],
            gradients: .init(width: 64, megabytes: 254, buckets: 10, inPlaceSeconds: 0.5, packedSeconds: 0.6), link: nil, blas: blas)
        #expect(report.table(repetitions: 5) == """
        \(blas.line)
        all-reduce of float32 buffers on 2 rank(s), median of 5
              MB     ring (s)  MPI_Allreduce (s)  MPI/ring   ring bus GB/s
               1       0.0020             0.0030      1.50           0.52
        gradients of the width-64 model, 254 MB in 10 buckets: in place 0.5000 s, packed and unpacked 0.6000 s (1.20x)
        """)
    }

    /// The links' lines: idle and loaded small all-reduce, the fitted network, and its time for
    /// the gradients against the measured one; a note when something was not measured.
    @Test func tableShowsTheLinksAndTheFittedNetwork() {
        let blas = BLASKernelReport(cpu: "c", extensions: "e", openblas: "OpenBLAS 0.3.21 x", core: "Zen", chosenBy: .openBLAS, reason: "r")
        let net = NetworkModel(name: "m", latency: 50e-6, bandwidth: 0.1e9, allreduceOverhead: 0.1, queueDelay: 0.04)
        let link = AllreduceBenchmark.Link(smallBytes: 4104, idleSmallSeconds: 0.0001, loadedSmallSeconds: 0.0401, loadedRounds: 30,
                                           loadedRings: 6, loadedRingSeconds: 0.35, network: net, predictedGradientSeconds: 0.55, note: nil)
        let report = AllreduceBenchmark.Report(
            ranks: 2, rows: [], gradients: .init(width: 64, megabytes: 254, buckets: 10, inPlaceSeconds: 0.5, packedSeconds: 0.6),
            link: link, blas: blas)
        let lines = report.table(repetitions: 5).split(separator: "\n").map(String.init)
        #expect(lines.suffix(3) == [
            "links: a 4104-byte all-reduce (a batch-norm round) 0.100 ms idle, 40.100 ms while a 25 MB ring runs (median of 30 rounds, mean 40.100 ms, during 6 rings of 0.350 s)",
            "fitted network (ring means, loaded mean): α 50.0 µs, β 0.1000 GB/s, 100.00 ms per ring all-reduce, 40.00 ms queueing behind a bucket",
            "  its time for the gradients' 10 buckets: 0.5500 s (measured in place, mean: 0.5000 s, +10.0 %)",
        ])
        var unmeasured = link
        unmeasured.loadedSmallSeconds = nil
        unmeasured.network = nil
        unmeasured.note = "why"
        let other = AllreduceBenchmark.Report(ranks: 2, rows: [], gradients: nil, link: unmeasured, blas: blas)
        #expect(other.table(repetitions: 5).split(separator: "\n").suffix(2).map(String.init) == [
            "links: a 4104-byte all-reduce (a batch-norm round) 0.100 ms idle", "note: why",
        ])
    }
}

/// `dsan plan --save-profile`'s contention probe: the pieces that do not start processes (the
/// probe itself runs through the binary in Tests/CLITests/PlanCLITests).
@Suite struct ContentionProbeTests {
    /// The kernel's CPU-list format, as `Cpus_allowed_list` prints it.
    @Test func coreListReadsRangesAndSingles() {
        #expect(ContentionProbe.coreList("0-3,8") == [0, 1, 2, 3, 8])
        #expect(ContentionProbe.coreList(" 5 ") == [5])
        #expect(ContentionProbe.coreList("0,2-3,10-11") == [0, 2, 3, 10, 11])
        #expect(ContentionProbe.coreList("") == [])
        #expect(ContentionProbe.coreList("3-1,x,4") == [4])
    }

    /// This process's own list is not empty and holds no duplicates.
    @Test func allowedCoresOfThisProcess() {
        let cores = ContentionProbe.allowedCores()
        #expect(!cores.isEmpty)
        #expect(Set(cores).count == cores.count)
    }

    @Test func medianOfOddAndEvenCounts() {
        #expect(ContentionProbe.median([3, 1, 2]) == 2)
        #expect(ContentionProbe.median([4, 1, 3, 2]) == 2.5)
    }
}

/// The benchmarks' table cells: padded on either side to the width, never cut.
@Suite struct TextColumnsTests {
    @Test func padsToTheWidthAndNeverCuts() {
        #expect("ab".padded(to: 5) == "ab   ")
        #expect("ab".padded(to: 5, alignRight: true) == "   ab")
        #expect("abcdef".padded(to: 3) == "abcdef" && "abcdef".padded(to: 3, alignRight: true) == "abcdef")
        #expect("1³×".padded(to: 4) == "1³× ", "counts characters, not bytes")
        #expect("".padded(to: 0) == "")
    }
}

/// `bench threads --regions`' memory ceiling: which sites count as element-wise passes, and the
/// arithmetic of the step's gain with the passes as measured and the rest at exactly N×.
@Suite struct MemoryCeilingTests {
    private func site(_ name: String, one: Double, many: Double, gapOne: Double = 0, gapMany: Double = 0) -> ThreadGainBenchmark.RegionGain {
        .init(site: name, callsPerStep: 1, one: one, many: many, gapOne: gapOne, gapMany: gapMany,
              lost: many + gapMany - (one + gapOne) / 2, waiting: 0)
    }

    @Test func passesAreTheElementwiseFilesOnly() {
        for pass in ["NN/Optimizer.swift:91", "NN/Normalization.swift:182", "NN/Activation.swift:38", "NN/Pooling.swift:84",
                     "NN/Upsample.swift:75", "NN/Losses.swift:119", "Model/ResNet3D.swift:161", "Model/Layers.swift:176",
                     "Tensor/ParallelWorkers.swift:83", "Tensor/LazyZero.swift:57", "NN/Attention.swift:90"] {
            #expect(ThreadGainBenchmark.isPass(pass), "\(pass)")
        }
        for rest in ["NN/Winograd.swift:306", "NN/WinogradF4.swift:176", "NN/Convolution.swift:494", "(after the last region)",
                     "NN/Optimizer.swift", "XNN/Optimizer.swift:91"] {
            #expect(!ThreadGainBenchmark.isPass(rest), "\(rest)")
        }
        // Every file named must exist: a moved file would silently count as "the rest".
        let sources = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../../Sources").standardized
        for file in ThreadGainBenchmark.passFiles {
            #expect(FileManager.default.fileExists(atPath: sources.appendingPathComponent(file).path), "\(file)")
        }
    }

    @Test func ceilingFollowsFromTheSites() throws {
        // Passes: 100 ms (90 + 10 of gap) → 80 ms; the rest: 900 → 460 ms. 2 threads.
        let sites = [site("NN/Optimizer.swift:91", one: 0.040, many: 0.038),
                     site("NN/Normalization.swift:182", one: 0.050, many: 0.032, gapOne: 0.010, gapMany: 0.010),
                     site("NN/Winograd.swift:306", one: 0.600, many: 0.300),
                     site("NN/Convolution.swift:494", one: 0.300, many: 0.160)]
        let c = ThreadGainBenchmark.ceiling(sites, threads: 2, streamGain: 1.3, target: 1.9)
        #expect(abs(c.passesOne - 0.100) < 1e-12 && abs(c.passesMany - 0.080) < 1e-12)
        #expect(abs(c.restOne - 0.900) < 1e-12 && abs(c.restMany - 0.460) < 1e-12)
        #expect(c.streamGain == 1.3 && c.target == 1.9)
        // 1.000 s ÷ (0.450 + 0.080) s
        #expect(abs(c.ceilingGain - 1.0 / 0.53) < 1e-9)
        // 1.000 / 1.9 = 0.080 + 0.900 / x
        let needed = try #require(c.restGainNeeded)
        #expect(abs(1.0 / 1.9 - (0.080 + 0.900 / needed)) < 1e-12 && needed > 2)
        let text = c.lines(threads: 2).joined(separator: "\n")
        #expect(text.contains("100.0 → 80.0 ms (1.25×)") && text.contains("900.0 → 460.0 ms (1.96×)"), "\(text)")
        #expect(text.contains("the step would gain 1.89×; for sgemm's 1.90× the rest must gain 2.02× (it gained 1.96×)"), "\(text)")
        // Passes that alone take longer than the target allows: no gain of the rest will do.
        let slow = ThreadGainBenchmark.ceiling(sites, threads: 2, streamGain: 1.3, target: 20)
        #expect(slow.restGainNeeded == nil)
        #expect(slow.lines(threads: 2).joined().contains("no gain of the rest reaches sgemm's 20.00×: the passes alone take longer"))
    }
}
