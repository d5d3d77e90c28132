import Benchmarks
import Foundation
import NN
import Tensor
import Testing

/// `dsan bench kernels` and `dsan bench vector` run in their own process: they switch the
/// process-wide conv algorithm and vector level, which other tests of this process rely on.
@Suite struct BenchKernelsVectorCLITests {
    /// `dsan bench tuning --help` lists every tuning constant with its default: a setting added
    /// to `ConvTuning` without a line there would be one nobody finds.
    @Test func tuningHelpListsEverySettingWithItsDefault() throws {
        let help = try dsan("bench", "tuning", "--help")
        #expect(help.status == 0, "\(help.stderr)")
        for setting in ConvTuning.Setting.allCases {
            #expect(help.stdout.contains("\n  \(setting.rawValue)=\(setting.defaultValue)\n"), "\(setting)")
        }
    }

    /// `dsan bench tuning`: pairs in alternating order, each ratio its own pair's, the medians and
    /// the interval from them; for a conv, whether the setting keeps the bits (the transform
    /// items do; fewer stem weight-gradient chunks do not); the errors name what to pass.
    @Test func tuningTimesASettingAgainstTheDefaultInPairs() throws {
        let step = try dsan("bench", "tuning", "--setting", "conv-jobs=8", "--size", "16x16x16", "--batch", "2", "--width", "4",
                            "--threads", "2", "--pairs", "6", "--warmup", "0", "--json")
        #expect(step.status == 0, "\(step.stderr)")
        let report = try JSONDecoder().decode(TuningBenchmark.Report.self, from: Data(step.stdout.utf8))
        #expect(report.setting == "conv-jobs" && report.value == 8 && report.defaultValue == 64)
        #expect(report.target == "the training step" && report.conv == nil && report.sameBits == nil && report.runs == 1)
        #expect(report.pairs.map(\.defaultFirst) == [true, false, true, false, true, false])
        for p in report.pairs { #expect(p.defaultSeconds > 0 && p.settingSeconds > 0 && p.ratio == p.settingSeconds / p.defaultSeconds) }
        let ratios = report.pairs.map(\.ratio).sorted()
        #expect(report.ratioMedian == (ratios[2] + ratios[3]) / 2)
        #expect(report.ratioInterval?.count == 6 && report.ratioInterval?.low == ratios[0] && report.ratioInterval?.high == ratios[5])

        let same = try dsan("bench", "tuning", "--setting", "transform-items-per-worker=16", "--conv", "layer1.0.conv1",
                            "--pass", "forward", "--size", "32x32x32", "--threads", "2", "--pairs", "2", "--warmup", "0", "--json")
        #expect(same.status == 0, "\(same.stderr)")
        let kept = try JSONDecoder().decode(TuningBenchmark.Report.self, from: Data(same.stdout.utf8))
        #expect(kept.target == "layer1.0.conv1 forward" && kept.input == [1, 64, 8, 8, 8] && kept.runs == 3)
        #expect(kept.sameBits == true && kept.largestRelativeDifference == 0 && kept.ratioInterval == nil)

        let text = try dsan("bench", "tuning", "--setting", "conv-jobs=8", "--conv", "conv1", "--pass", "dw",
                            "--size", "64x128x128", "--width", "4", "--threads", "1", "--pairs", "1", "--runs", "1", "--warmup", "0")
        #expect(text.status == 0, "\(text.stderr)")
        #expect(text.stdout.contains("tuning: conv-jobs = 8 against the default 64, conv1 dw at 64x128x128"), "\(text.stdout)")
        #expect(text.stdout.contains("bits: the setting changes the result"), "\(text.stdout)")
        #expect(text.stdout.contains("too few pairs for a 95 % interval"), "\(text.stdout)")

        let unknown = try dsan("bench", "tuning", "--setting", "conv-jobs=8", "--conv", "layer9.conv1", "--size", "16x16x16", "--width", "4")
        #expect(unknown.status != 0 && unknown.stderr.contains("no conv named 'layer9.conv1'")
                && unknown.stderr.contains("layer3.0.downsample.0"), "\(unknown.stderr)")
        let badSetting = try dsan("bench", "tuning", "--setting", "block=2")
        #expect(badSetting.status != 0 && badSetting.stderr.contains("--setting must be NAME=VALUE with NAME one of conv-jobs, "), "\(badSetting.stderr)")
        let tooFew = try dsan("bench", "tuning", "--setting", "conv-jobs=4")
        #expect(tooFew.status != 0 && tooFew.stderr.contains("the value must be a whole number of at least 8, got '4'"), "\(tooFew.stderr)")
        let tooMany = try dsan("bench", "tuning", "--setting", "packed-direct-forward=2")
        #expect(tooMany.status != 0 && tooMany.stderr.contains("the value must be a whole number from 0 to 1, got '2'"), "\(tooMany.stderr)")
        let notAPart = try dsan("bench", "tuning", "--setting", "panel-parts=3")
        #expect(notAPart.status != 0 && notAPart.stderr.contains("the value must be a whole number 0, 1, 2 or 4, got '3'"), "\(notAPart.stderr)")
        let passAlone = try dsan("bench", "tuning", "--setting", "conv-jobs=16", "--pass", "dx")
        #expect(passAlone.status != 0 && passAlone.stderr.contains("give --conv NAME too"), "\(passAlone.stderr)")
    }

    @Test func kernelsMeasuresEveryConvOfTheNetwork() throws {
        let result = try dsan("bench", "kernels", "--threads", "1", "--size", "16x16x16", "--repetitions", "1", "--warmup", "0", "--json")
        #expect(result.status == 0, "\(result.stderr)")
        let report = try JSONDecoder().decode(KernelReport.self, from: Data(result.stdout.utf8))
        let convs = NetworkConv.resnet34(volume: [16, 16, 16])
        #expect(report.inputSize == [16, 16, 16] && report.networkConvs == convs.reduce(0) { $0 + $1.count })
        #expect(report.runs.count == 1 && report.runs[0].threads == 1 && report.runs[0].sgemm2048GFlops > 0)
        #expect(report.workspaceMiB == 2, "at least 2 MiB: \(report.workspaceMiB)")
        #expect(report.runs[0].convs.map(\.name) == convs.map(\.name))
        for c in report.runs[0].convs {
            #expect(c.forward.seconds > 0 && c.inputGradient.gflops > 0 && c.weightGradient.ratioToSgemm > 0, "\(c.name)")
        }
        // Winograd is timed for the convs it applies to: the 3³ stride-1 convs of every layer among
        // them, never the stem, a 1×1×1 downsample or the attention conv.
        let winograd = Set(report.runs[0].convs.filter { $0.winograd != nil }.map(\.name))
        #expect(winograd.isSuperset(of: ["layer1 3³", "layer2 3³", "layer3 3³", "layer4 3³"]))
        #expect(!winograd.contains { $0 == "conv1 (stem)" || $0.hasSuffix("downsample") || $0 == "attention" })
    }

    /// `dsan bench granularity` (its own process: it switches the process-wide thread counts): a
    /// bound per thread count, each at most N times the 1-thread step and no site above its ideal;
    /// the convs' and Adam's regions among the sites; a thread count that is not one is refused
    /// with a message saying what to pass.
    @Test func granularityBoundsTheStepPerThreadCount() throws {
        let result = try dsan("bench", "granularity", "--threads", "2,4", "--size", "16x16x16", "--batch", "2", "--width", "4",
                              "--warmup", "0", "--json")
        #expect(result.status == 0, "\(result.stderr)")
        let report = try JSONDecoder().decode(GranularityBenchmark.Report.self, from: Data(result.stdout.utf8))
        #expect(report.size == [16, 16, 16] && report.batch == 2 && report.width == 4 && report.regionCalls > 0)
        #expect(report.bounds.map(\.threads) == [2, 4])
        for b in report.bounds {
            #expect(b.speedup >= 1 && b.speedup <= Double(b.threads) + 1e-9, "\(b.threads): \(b.speedup)")
            #expect(abs(b.boundSeconds - (b.serialSeconds + b.sites.reduce(0) { $0 + $1.boundSeconds })) < 1e-9)
            #expect(abs(report.oneThreadSeconds - (b.serialSeconds + b.sites.reduce(0) { $0 + $1.oneThreadSeconds })) < 1e-9)
            for s in b.sites {
                #expect(s.efficiency <= 1 + 1e-9 && s.boundSeconds >= s.oneThreadSeconds / Double(b.threads) - 1e-12, "\(s)")
                #expect(s.workersMax <= b.threads && s.workersMin >= 1, "\(s)")
            }
            #expect(b.sites.contains { $0.site.hasPrefix("NN/Optimizer.swift:") && $0.calls == 1 })
            #expect(b.sites.contains { $0.site.hasPrefix("NN/Convolution.swift:") || $0.site.hasPrefix("NN/Winograd") })
        }
        let text = try dsan("bench", "granularity", "--threads", "2", "--size", "16x16x16", "--batch", "2", "--width", "4", "--warmup", "0")
        #expect(text.status == 0 && text.stdout.contains("granularity of a training step at 16x16x16, batch 2, width 4"), "\(text.stdout)")
        #expect(text.stdout.contains("at 2 threads, the ") && text.stdout.contains("CPU "), "\(text.stdout)")
        let bad = try dsan("bench", "granularity", "--threads", "4,x")
        #expect(bad.status != 0 && bad.stderr.contains("--threads must be thread counts from 1 to 1024 separated by commas (e.g. --threads 4,8,16,32), got '4,x'"), "\(bad.stderr)")
    }

    /// `dsan bench threads --setting`: every step of the run takes the tuning constant, which
    /// the report names; here the old weight-gradient rule, whose OpenBLAS GEMMs on layer1 (64
    /// tiles per sample at 32³) open other parallel regions than the fused kernel of the default.
    /// A bad setting is an error naming the range.
    @Test func threadsRunsUnderATuningSetting() throws {
        func sites(_ extra: [String]) throws -> (ThreadGainBenchmark.Report, Set<String>) {
            let result = try run(dsanPath, ["bench", "threads", "--threads", "2", "--size", "32x32x32", "--batch", "2", "--width", "4",
                                               "--rounds", "1", "--warmup", "0", "--regions", "--json"] + extra)
            #expect(result.status == 0, "\(result.stderr)")
            let report = try JSONDecoder().decode(ThreadGainBenchmark.Report.self, from: Data(result.stdout.utf8))
            return (report, Set(try #require(report.regions).map(\.site)))
        }
        let (plain, defaultSites) = try sites([])
        let (tuned, tunedSites) = try sites(["--setting", "fused-weight-gradient=0"])
        #expect(plain.tuning == nil && tuned.tuning == "fused-weight-gradient=0")
        // The unfused dW's regions (its 64 GEMMs, its transform) appear; the fused ones stay, for
        // layers 2–4, with fewer calls.
        #expect(!tunedSites.subtracting(defaultSites).isEmpty, "\(defaultSites.sorted()) against \(tunedSites.sorted())")
        func calls(_ r: ThreadGainBenchmark.Report) -> [String: Int] {
            Dictionary(uniqueKeysWithValues: (r.regions ?? []).map { ($0.site, $0.callsPerStep) })
        }
        let (plainCalls, tunedCalls) = (calls(plain), calls(tuned))
        #expect(defaultSites.contains { plainCalls[$0]! > (tunedCalls[$0] ?? 0) })
        #expect(tuned.text.contains("\ntuning: fused-weight-gradient=0 for every step of this run"))
        #expect(!plain.text.contains("tuning: "))
        let bad = try dsan("bench", "threads", "--threads", "2", "--setting", "fused-weight-gradient=2")
        #expect(bad.status != 0 && bad.stderr.contains("--setting fused-weight-gradient: the value must be a whole number from 0 to 1"),
                "\(bad.stderr)")
    }

    /// `dsan bench threads` (its own process: it switches the process-wide thread counts): every
    /// round has a 1- and an N-thread step and sgemm rate, in alternating order, each gain is the
    /// ratio of its round's figures, the medians and the verdict follow from them, and the table
    /// has a row per round. With one thread to compare it stops with a message saying what to do.
    @Test func threadsMeasuresGainsInPairs() throws {
        let result = try dsan("bench", "threads", "--threads", "2", "--size", "16x16x16", "--batch", "2", "--width", "4",
                              "--rounds", "3", "--warmup", "0", "--regions", "--json")
        #expect(result.status == 0, "\(result.stderr)")
        let report = try JSONDecoder().decode(ThreadGainBenchmark.Report.self, from: Data(result.stdout.utf8))
        #expect(report.threads == 2 && report.size == [16, 16, 16] && report.batch == 2 && report.width == 4)
        #expect(report.rounds.map(\.manyFirst) == [false, true, false])
        for r in report.rounds {
            #expect(r.one.step > 0 && r.many.step > 0 && r.sgemmOne > 0 && r.sgemmMany > 0)
            #expect(abs(r.one.step - (r.one.forward + r.one.backward + r.one.optimizer)) < 1e-9)
            #expect(r.stepGain == r.one.step / r.many.step && r.sgemmGain == r.sgemmMany / r.sgemmOne)
        }
        #expect(report.stepGain == report.rounds.map(\.stepGain).sorted()[1])
        #expect(report.sgemmGain == report.rounds.map(\.sgemmGain).sorted()[1])
        #expect(report.roundsMet == report.rounds.filter { $0.stepGain >= $0.sgemmGain }.count)
        #expect(report.met == (report.stepGain >= report.sgemmGain))
        // The rounds' step gain ÷ sgemm gain: its median, and no 95 % interval from 3 rounds.
        #expect(report.ratioMedian == report.rounds.map { $0.stepGain / $0.sgemmGain }.sorted()[1])
        #expect(report.ratioInterval == nil)
        // With 6 rounds or more the text gives the interval and which side of 1 it lies on.
        var shown = report
        (shown.ratioMedian, shown.ratioInterval) = (0.99, MedianInterval([0.9, 0.95, 0.97, 1.01, 1.02, 1.05]))
        #expect(shown.text.contains("\nstep gain ÷ sgemm gain, round by round: median 0.99; 97 % interval 0.90–1.05 (sign test over the 6 rounds): this run does not tell the two gains apart\n"))
        shown.ratioInterval = MedianInterval([0.9, 0.95, 0.97, 0.91, 0.92, 0.99])
        #expect(shown.text.contains("97 % interval 0.90–0.99 (sign test over the 6 rounds): the step's gain is below sgemm's in this run\n"))
        for r in report.rounds {
            #expect(r.streamOne > 0 && r.streamMany > 0 && r.readOwn > 0 && r.readNeighbours > 0)
            #expect(r.arithmeticOne > 0 && r.arithmeticMany > 0 && r.helperSleeps >= 0)
        }
        #expect(report.arithmeticGain == report.rounds.map { $0.arithmeticMany / $0.arithmeticOne }.sorted()[1])
        let whole = report.rounds.filter { $0.arithmeticMany / $0.arithmeticOne >= 0.95 * 2 }
        #expect(report.wholeCoreRounds == whole.count)
        #expect(report.wholeCoreStepGain == (whole.isEmpty ? nil : ContentionProbe.median(whole.map(\.stepGain))))
        #expect(report.wholeCoreSgemmGain == (whole.isEmpty ? nil : ContentionProbe.median(whole.map(\.sgemmGain))))
        #expect(report.streamGain == report.rounds.map { $0.streamMany / $0.streamOne }.sorted()[1])
        #expect(report.streamArrayMiB == 128 && report.readBlockMiB == 4)
        // --regions: the step's parallel regions by source line, the convs' and Adam's among them,
        // each with its loss against 1/N of the 1-thread time, most lost first.
        let regions = try #require(report.regions)
        // The sites' medians are over the whole-core rounds, or over all when none was whole.
        let wholeRounds = report.rounds.indices.filter { report.rounds[$0].arithmeticMany / report.rounds[$0].arithmeticOne >= 1.9 }
        #expect(report.regionRounds == (wholeRounds.isEmpty ? [1, 2, 3] : wholeRounds.map { $0 + 1 }))
        #expect(regions.contains { $0.site.hasPrefix("NN/Winograd.swift:") && $0.callsPerStep > 0 && $0.one > 0 && $0.many > 0 })
        #expect(regions.contains { $0.site.hasPrefix("NN/Optimizer.swift:") && $0.callsPerStep == 1 })
        #expect(regions.contains { $0.site == "(after the last region)" })
        for r in regions {
            #expect(abs(r.lost - ((r.many + r.gapMany) - (r.one + r.gapOne) / 2)) < 1e-12, "\(r)")
            // Waiting is worker time inside the N-thread regions ÷ N: at least 0, at most their time.
            #expect(r.waiting >= 0 && r.waiting <= r.many + 1e-9, "\(r)")
        }
        // Two workers on two cores wait somewhere in a step (a region's shares never end together).
        #expect(regions.contains { $0.waiting > 0 })
        #expect(regions.map(\.lost) == regions.map(\.lost).sorted(by: >))
        // The memory ceiling splits the same sites: Adam among the passes, the convs in the rest.
        let ceiling = try #require(report.memoryCeiling)
        #expect(ceiling == ThreadGainBenchmark.ceiling(regions, threads: 2, streamGain: report.streamGain, target: report.sgemmGain))
        #expect(ceiling.passesOne > 0 && ceiling.restOne > ceiling.passesOne)
        let table = try dsan("bench", "threads", "--threads", "2", "--size", "16x16x24", "--width", "4", "--rounds", "2",
                             "--warmup", "0")
        #expect(table.status == 0, "\(table.stderr)")
        let lines = table.stdout.split(separator: "\n")
        #expect(lines.count == 4 + 2 + 7, "\(table.stdout)")
        #expect(lines[1].hasPrefix("memory pages: "), "\(table.stdout)")
        #expect(lines[3].hasSuffix("sgemm gain  registers gain"), "\(table.stdout)")   // a column per gain
        #expect(report.pages == FloatStorage.pageReport)
        #expect(lines[lines.count - 6].hasPrefix("step gain ≥ sgemm gain: ") && table.stderr.contains("round 2/2"))
        #expect(lines[lines.count - 5].hasPrefix("step gain ÷ sgemm gain, round by round: median ")
                && lines[lines.count - 5].hasSuffix("too few rounds for a 95 % interval (at least 6: --rounds)"), "\(table.stdout)")
        #expect(lines[lines.count - 3].hasPrefix("rounds on whole cores (registers ≥ 1.90×): "), "\(table.stdout)")
        #expect(lines[lines.count - 4].hasPrefix("cores (median): multiply-adds on registers only gain ")
                && table.stderr.contains("registers "), "\(table.stdout)")
        #expect(lines[lines.count - 2].hasPrefix("pool (median): its threads slept ")
                && lines[lines.count - 2].contains("they poll \(Parallel.poolSpinMicroseconds) µs"), "\(table.stdout)")
        #expect(lines.last?.hasPrefix("memory (medians): stream y = a + b over 3 × 128 MiB gains ") == true
                && lines.last?.contains("a worker reads a 4 MiB block") == true, "\(table.stdout)")
        let regionTable = try dsan("bench", "threads", "--threads", "2", "--size", "16x16x24", "--width", "4", "--rounds", "1",
                                   "--warmup", "0", "--regions")
        #expect(regionTable.status == 0, "\(regionTable.stderr)")
        #expect(regionTable.stdout.contains("parallel regions per step, by source line")
                && regionTable.stdout.contains("NN/Winograd.swift:")
                && regionTable.stdout.contains("lost  waiting")
                && regionTable.stdout.contains("\nlost in all: ")
                && regionTable.stdout.contains("\nmemory ceiling: the element-wise passes (Adam, ")
                && regionTable.stdout.split(separator: "\n").last?.hasPrefix("with the passes as measured and the rest at exactly 2× the step would gain ") == true,
                "\(regionTable.stdout)")
        let one = try dsan("bench", "threads", "--threads", "1")
        #expect(one.status != 0 && one.stderr.contains("--threads must be at least 2"), "\(one.stderr)")
        // A size where layer4 keeps one value per channel is an error that says what to change.
        let tiny = try dsan("bench", "threads", "--threads", "2", "--size", "16x16x16", "--width", "2", "--rounds", "1")
        #expect(tiny.status != 0 && tiny.stderr.contains("16x16x16 with batch 1 leaves layer4 one value per channel"), "\(tiny.stderr)")
        let eagerInference = try dsan("bench", "step", "--inference", "--compare-eager-zeros")
        #expect(eagerInference.status != 0 && eagerInference.stderr.contains("--compare-eager-zeros times training steps"),
                "\(eagerInference.stderr)")
        let both = try dsan("bench", "step", "--threads", "2", "--compare-eager-zeros", "--compare-pool-wait")
        #expect(both.status != 0 && both.stderr.contains("use one at a time"), "\(both.stderr)")
        let panelsAndPool = try dsan("bench", "step", "--threads", "2", "--compare-whole-panels", "--compare-pool-wait")
        #expect(panelsAndPool.status != 0
                && panelsAndPool.stderr.contains("--compare-pool-wait and --compare-whole-panels each run a second step per repetition"),
                "\(panelsAndPool.stderr)")
        let alone = try dsan("bench", "step", "--threads", "1", "--compare-pool-wait")
        #expect(alone.status != 0 && alone.stderr.contains("use --threads 2 or more"), "\(alone.stderr)")
        let tinyStep = try dsan("bench", "step", "--size", "16x16x16", "--width", "2", "--repetitions", "1")
        #expect(tinyStep.status != 0 && tinyStep.stderr.contains("use a size of at least 17 in one dimension or --batch 2"),
                "\(tinyStep.stderr)")
    }

    /// `dsan bench winograd` (its own process: it switches the layout of V and M and the weight
    /// prefetch): at 32×64×64 every conv that runs by Winograd has its transforms timed with and
    /// without the line between ξ matrices (F(4,3): input and output; F(2,3): input, gradient,
    /// output) and, for F(2,3), the weight transform with and without its prefetch and unstaged
    /// and staged; a conv of one block (layer2's 3³ convs here: 32 tiles) also has its whole
    /// forward and dX timed on --threads threads with the weights in slices and in whole panels,
    /// and with the panels' transform unstaged and staged. Each ratio is its two medians'; the
    /// table has a row per kernel.
    @Test func winogradTimesEachKernelWithAndWithout() throws {
        let result = try dsan("bench", "winograd", "--size", "32x64x64", "--repetitions", "1", "--threads", "2", "--json")
        #expect(result.status == 0, "\(result.stderr)")
        let rows = try JSONDecoder().decode([WinogradLayoutBenchmark.Row].self, from: Data(result.stdout.utf8))
        let convs = Set(rows.map(\.conv))
        #expect(convs.contains("layer1 3³") && convs.contains("layer2 3³") && !convs.contains("conv1 (stem)"), "\(convs)")
        let transforms = ["input transform", "gradient transform", "output transform"]
        let weights = ["weight transform", "weight transform", "weight transform, dX", "weight transform, dX"]
        let wholeConvs = ["conv forward", "conv dX", "conv forward", "conv dX"]
        for conv in convs {
            let kernels = rows.filter { $0.conv == conv }.map(\.kernel)
            #expect(kernels == ["input transform (F(4,3))", "output transform (F(4,3))"] || kernels == transforms + weights
                    || kernels == transforms + wholeConvs + weights, "\(conv): \(kernels)")
        }
        #expect(rows.contains { $0.conv == "layer2 3³" && $0.kernel == "conv dX" }, "\(rows.map(\.kernel))")
        for (conv, kernel) in Set(rows.map { [$0.conv, $0.kernel] }).map({ ($0[0], $0[1]) }) {
            // Each F(2,3) weight transform and whole conv twice: against its other layout choice and staged.
            let withouts = rows.filter { $0.conv == conv && $0.kernel == kernel }.map(\.without)
            let other = kernel.hasPrefix("conv") ? "weight slices in L2" : kernel.hasPrefix("weight") ? "weight prefetch"
                : "line between ξ matrices"
            #expect(withouts == (kernel.hasPrefix("conv") || kernel.hasPrefix("weight") ? [other, "stores unstaged"] : [other]),
                    "\(conv) \(kernel): \(withouts)")
        }
        for r in rows {
            #expect(r.seconds > 0 && r.secondsWithout > 0 && r.speedup == r.secondsWithout / r.seconds, "\(r)")
            #expect(r.threads == (r.kernel.hasPrefix("conv") ? 2 : 1), "\(r)")
        }
        let text = try dsan("bench", "winograd", "--size", "32x64x64", "--repetitions", "1", "--threads", "2")
        #expect(text.status == 0 && text.stdout.split(separator: "\n").count == 2 + rows.count, "\(text.stdout)")
        let none = try dsan("bench", "winograd", "--threads", "0")
        #expect(none.status != 0 && none.stderr.contains("--threads must be at least 1"), "\(none.stderr)")
    }

    @Test func vectorTimesEveryKernelAtEveryLevel() throws {
        let result = try dsan("bench", "vector", "--elements", "4096", "--repetitions", "1", "--json")
        #expect(result.status == 0, "\(result.stderr)")
        let rows = try JSONDecoder().decode([VectorBenchmark.Row].self, from: Data(result.stdout.utf8))
        let levels = Set(rows.map(\.level))
        #expect(levels.contains("baseline"))
        #expect(rows.count == 6 * levels.count && Set(rows.map(\.kernel)).count == 6)
        #expect(rows.filter { $0.level == rows[0].level }.allSatisfy { $0.speedup == 1 && $0.seconds > 0 })
        let text = try dsan("bench", "vector", "--elements", "4096", "--repetitions", "1")
        #expect(text.status == 0)
        #expect(text.stdout.split(separator: "\n").count == 2 + rows.count)
    }

    /// The pool's wait bounds are read at its first region (a 2-thread step): a value that is not
    /// a whole number of µs stops dsan with a message naming the variable; a number runs.
    @Test(arguments: ["DSAN_POOL_SPIN_US", "DSAN_POOL_YIELD_US"])
    func poolWaitBoundThatIsNotANumberNamesTheVariable(variable: String) throws {
        let step = ["bench", "step", "--size", "16x32x32", "--width", "2", "--repetitions", "1", "--warmup", "0",
                    "--threads", "2", "--json"]
        for value in ["2ms", "-5"] {
            let bad = try run(dsanPath, step, environment: [variable: value])
            #expect(bad.status != 0)
            #expect(bad.stderr.contains("\(variable)=\(value): expected a whole number of microseconds"), "\(bad.stderr.prefix(600))")
        }
        let ok = try run(dsanPath, step, environment: [variable: "300"])
        #expect(ok.status == 0, "\(variable)=300: \(ok.stderr)")
    }

    /// The switches a user sets in the environment (`DSAN_CONV`, `DSAN_WINOGRAD_GEMM`,
    /// `DSAN_DIRECT_GEMM`, `DSAN_SIMD`)
    /// stop a run with a value they do not know, with a message that names the variable and the
    /// accepted values (in a release build too), and accept the values they document.
    @Test(arguments: [("DSAN_CONV", "fast", "DSAN_CONV=fast: expected one of direct, winograd, winograd2"),
                      ("DSAN_WINOGRAD_GEMM", "mkl", "DSAN_WINOGRAD_GEMM=mkl: expected one of packed, openblas"),
                      ("DSAN_DIRECT_GEMM", "mkl", "DSAN_DIRECT_GEMM=mkl: expected one of packed, openblas"),
                      ("DSAN_SIMD", "sse9", "DSAN_SIMD=sse9: expected one of baseline, avx2, avx512")])
    func unknownSwitchValueNamesTheVariable(variable: String, value: String, message: String) throws {
        let step = ["bench", "step", "--size", "16x32x32", "--width", "2", "--repetitions", "1", "--warmup", "0",
                    "--threads", "1", "--json"]
        let bad = try run(dsanPath, step, environment: [variable: value])
        #expect(bad.status != 0)
        #expect(bad.stderr.contains(message), "\(bad.stderr.prefix(600))")
        let good = ["DSAN_CONV": "winograd2", "DSAN_WINOGRAD_GEMM": "openblas", "DSAN_DIRECT_GEMM": "openblas",
                    "DSAN_SIMD": "baseline"][variable]!
        let ok = try run(dsanPath, step, environment: [variable: good.uppercased()])
        #expect(ok.status == 0, "\(variable)=\(good.uppercased()): \(ok.stderr)")
    }
}
