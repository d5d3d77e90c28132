import Foundation
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

    @Test func aSmallRunMeasuresEveryConvAndPrintsItsTable() {
        let report = ThreadSettings.with {
            KernelBenchmark(threadCounts: [1], volume: [16, 16, 16], repetitions: 1, warmup: 0, workspaceMiB: 1).run()
        }
        #expect(report.runs.count == 1 && report.runs[0].threads == 1 && report.runs[0].convs.count == 12)
        #expect(report.networkConvs == 37 && report.inputSize == [16, 16, 16] && report.loadAverage.count == 2)
        for (c, conv) in zip(report.runs[0].convs, NetworkConv.resnet34(volume: [16, 16, 16])) {
            #expect(c.name == conv.name && c.countInNetwork == conv.count)
            #expect(c.forward.seconds > 0 && c.forward.gflops > 0, "\(c.name)")
            // Winograd is timed for exactly the convs it applies to, the 3³ stride-1 ones.
            #expect((c.winograd != nil) == WinogradConv.applies(to: conv.geometry), "\(c.name)")
        }
        let table = report.table
        #expect(table.contains("threads 1: sgemm 2048³ "))
        #expect(table.contains("network forward, 37 convs, "))
        #expect(table.split(separator: "\n").filter { $0.hasPrefix("layer3 3³") }.count == 1)
        #expect(table.hasPrefix("machine: \(Machine.description); OpenBLAS "))
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
        #expect(text.hasPrefix(report.blas.line + "\n" + (inference ? "inference" : "training step") + " at 16x16x16, batch 2, width 4, 1 thread(s), "))
        #expect(text.contains("loss + backward") != inference)
        #expect(text.hasSuffix(" GiB"))
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

/// `dsan bench vector`: every kernel at every level, the active level kept.
@Suite(.serialized) struct VectorBenchmarkTests {
    @Test func everyKernelAtEveryLevelAndTheLevelRestored() {
        let before = VectorLevel.active
        let benchmark = VectorBenchmark(elements: 4096, repetitions: 1)
        let rows = benchmark.run()
        #expect(VectorLevel.active == before)
        let levels = Set(rows.map(\.level))
        #expect(rows.count == 6 * levels.count)
        #expect(Set(rows.map(\.kernel)).count == 6)
        #expect(rows.filter { $0.level == rows[0].level }.allSatisfy { $0.speedup == 1 })
        let table = benchmark.table(rows).split(separator: "\n")
        #expect(table.count == 2 + rows.count)
        #expect(table[0] == "vector kernels: 4096 floats per array, 1 thread, median of 1; levels alternate; in use: \(VectorLevel.active)")
    }
}

/// `dsan bench allreduce`'s table (the measurement runs under mpirun in `BenchAllreduceTests`).
@Suite struct AllreduceBenchmarkTests {
    @Test func tableListsEverySizeAndTheGradients() {
        let blas = BLASKernelReport(cpu: "c", extensions: "e", openblas: "OpenBLAS 0.3.21 x", core: "Zen", chosenBy: .openBLAS, reason: "r")
        let report = AllreduceBenchmark.Report(
            ranks: 2,
            rows: [.init(megabytes: 1, ringSeconds: 0.002, mpiSeconds: 0.003, ratio: 1.5, ringBusGBps: 0.52)],
            gradients: .init(width: 64, megabytes: 254, buckets: 10, inPlaceSeconds: 0.5, packedSeconds: 0.6), blas: blas)
        #expect(report.table(repetitions: 5) == """
        \(blas.line)
        all-reduce of float32 buffers on 2 rank(s), median of 5
              MB     ring (s)  MPI_Allreduce (s)  MPI/ring   ring bus GB/s
               1       0.0020             0.0030      1.50           0.52
        gradients of the width-64 model, 254 MB in 10 buckets: in place 0.5000 s, packed and unpacked 0.6000 s (1.20x)
        """)
    }
}
