import BLAS
import Foundation
import Model
import NN
import Tensor

/// `dsan bench threads`: what a training step gains from N threads over 1, against what OpenBLAS's
/// sgemm 2048³ gains on the same cores, measured in pairs within one process. Each round times a
/// step and the sgemm rate at 1 thread and at N, back to back (the order alternating from round to
/// round), so a round's two gains saw the same machine: on a shared or virtual machine whose speed
/// drifts by tens of percent from one minute to the next, separate runs compare different moments.
/// The report gives every round and the medians.
public struct ThreadGainBenchmark {
    public var size: VolumeSize
    public var batch: Int
    /// N: the thread count compared with 1 (dsan's loops and OpenBLAS).
    public var threads: Int
    public var width: Int
    public var rounds: Int
    /// Untimed steps at each thread count before the first round.
    public var warmup: Int
    /// Also time every parallel region of the steps by its source line (`RegionProfile`).
    public var regions: Bool
    /// A conv tuning constant every step of the run takes (`ConvTuning.with`); nil: the defaults.
    public var tuning: (setting: ConvTuning.Setting, value: Int)?
    /// The memory probes each round also runs (stream gain, handoff between cores).
    public var memory = MemoryScaling()
    /// The arithmetic probe each round also runs (multiply-adds on registers only).
    public var arithmetic = ArithmeticScaling()
    /// A round counts as run on whole cores when its probe gained at least this fraction of N.
    public static let wholeCoreFraction = 0.95

    public init(size: VolumeSize, batch: Int, threads: Int, width: Int, rounds: Int, warmup: Int, regions: Bool = false,
                tuning: (ConvTuning.Setting, Int)? = nil) {
        precondition(batch >= 1 && threads >= 2 && width >= 1 && rounds >= 1 && warmup >= 0
                     && tuning.map { $0.0.accepts($0.1) } != false, "ThreadGainBenchmark: invalid settings")
        self.tuning = tuning.map { (setting: $0.0, value: $0.1) }
        self.size = size
        self.batch = batch
        self.threads = threads
        self.width = width
        self.rounds = rounds
        self.warmup = warmup
        self.regions = regions
    }

    /// One step's phases, seconds.
    public struct Phases: Codable {
        public var forward: Double, backward: Double, optimizer: Double, step: Double
    }

    /// One round: a step and an sgemm rate at 1 thread and at N.
    public struct Round: Codable {
        /// True when the round ran N threads first.
        public var manyFirst: Bool
        public var one: Phases, many: Phases
        public var sgemmOne: Double, sgemmMany: Double
        /// one.step ÷ many.step and sgemmMany ÷ sgemmOne.
        public var stepGain: Double, sgemmGain: Double
        /// GB/s of the memory stream (`MemoryScaling.streamRate`) at 1 thread and at N.
        public var streamOne: Double, streamMany: Double
        /// GB/s per worker at N threads reading a block it wrote itself, and one the next worker wrote.
        public var readOwn: Double, readNeighbours: Double
        /// GFLOP/s of the arithmetic probe (`ArithmeticScaling.rate`) at 1 thread and at N, each
        /// run just before and just after that thread count's step: the higher of the 1-thread
        /// pair and the lower of the N-thread pair, so that their ratio reaches N only when the
        /// cores were whole on both sides of the step.
        public var arithmeticOne: Double, arithmeticMany: Double
        /// Times a pool thread went to sleep during the N-thread step (`Parallel.helperSleeps`):
        /// each costs the next region it takes part in a wake-up.
        public var helperSleeps: Int
    }

    /// One source line's parallel regions in a step at 1 thread and at N (medians over the rounds).
    public struct RegionGain: Codable {
        /// "Module/File.swift:line" of the `Parallel` call; "(after the last region)" for the
        /// step's tail.
        public var site: String
        public var callsPerStep: Int
        /// Seconds per step inside these regions, and in the serial gaps just before them.
        public var one: Double, many: Double
        public var gapOne: Double, gapMany: Double
        /// Seconds per step that N threads spent here beyond 1/N of the 1-thread time (regions and
        /// gaps): what keeps the step's gain below N.
        public var lost: Double
        /// Seconds per step of the N-thread regions' wall time that their workers spent waiting
        /// (`RegionProfile.Entry.waitSeconds` ÷ N): the part of `lost` an even split of the work
        /// over equally fast workers would have saved. The rest of `lost` (and of the gap) is
        /// work that ran slower per thread, or serial.
        public var waiting: Double
    }

    /// The step's sites split in two: the element-wise passes (`passFiles`), which move every
    /// byte they touch through the caches or memory and gain about what those gain from more
    /// threads, and the rest (convs, Winograd transforms, GEMMs), whose arithmetic can gain N.
    /// From one `--regions` run: what each part gained, what the step would gain with the passes
    /// as measured and the rest at exactly N×, and what the rest must gain for the step to match
    /// sgemm. (The rest can gain a little more than N where two cores' caches hold what one
    /// core's did not, so this is the goal's arithmetic, not a bound.)
    public struct MemoryCeiling: Codable, Equatable {
        /// Seconds per step in the passes' regions and the gaps before them, at 1 thread and at N.
        public var passesOne: Double, passesMany: Double
        /// The same for every other site.
        public var restOne: Double, restMany: Double
        /// The stream probe's median gain (`Report.streamGain`), for comparison with the passes'.
        public var streamGain: Double
        /// The step's gain with the rest at exactly N× and the passes as measured:
        /// (passesOne + restOne) ÷ (restOne / N + passesMany).
        public var ceilingGain: Double
        /// The gain the rest would need, with the passes as measured, for the step to gain
        /// `target`; nil when no gain of the rest would do (the passes alone take longer).
        public var restGainNeeded: Double?
        /// The gain asked for: sgemm's median.
        public var target: Double
    }

    /// Files whose parallel regions are element-wise passes over tensors (memory-bound): Adam,
    /// batch norm, ReLU and add, pooling, upsampling, the attention's element-wise steps, the
    /// losses, the gradients' zeroing and the blocks' gradient copies.
    public static let passFiles: Set<String> = [
        "NN/Optimizer.swift", "NN/Normalization.swift", "NN/Activation.swift", "NN/Pooling.swift", "NN/Upsample.swift",
        "NN/Attention.swift", "NN/Losses.swift", "Model/Layers.swift", "Model/ResNet3D.swift",
        "Tensor/ParallelWorkers.swift", "Tensor/LazyZero.swift",
    ]

    /// Whether `site` ("Module/File.swift:line") is one of the element-wise passes.
    public static func isPass(_ site: String) -> Bool {
        guard let colon = site.lastIndex(of: ":") else { return false }
        return passFiles.contains(String(site[..<colon]))
    }

    /// The ceiling of `regions` (at `threads`) against `target`; `streamGain` is reported beside it.
    public static func ceiling(_ regions: [RegionGain], threads: Int, streamGain: Double, target: Double) -> MemoryCeiling {
        var (po, pm, ro, rm) = (0.0, 0.0, 0.0, 0.0)
        for r in regions {
            if isPass(r.site) { po += r.one + r.gapOne; pm += r.many + r.gapMany } else { ro += r.one + r.gapOne; rm += r.many + r.gapMany }
        }
        let n = Double(threads)
        let ceiling = (po + ro) / (ro / n + pm)
        // (po + ro) / target = pm + ro / x  ⇒  x = ro / ((po + ro) / target − pm)
        let left = (po + ro) / target - pm
        return MemoryCeiling(passesOne: po, passesMany: pm, restOne: ro, restMany: rm, streamGain: streamGain,
                             ceilingGain: ceiling, restGainNeeded: left > 0 && ro > 0 ? ro / left : nil, target: target)
    }

    /// What `dsan bench threads` measured; encoded as is for `--json`.
    public struct Report: Codable {
        public var size: [Int], batch: Int, threads: Int, width: Int
        public var rounds: [Round]
        /// Medians over the rounds of each gain (per phase: the median 1-thread time ÷ the median
        /// N-thread time).
        public var stepGain: Double, sgemmGain: Double
        public var forwardGain: Double, backwardGain: Double, optimizerGain: Double
        /// Median over the rounds of streamMany ÷ streamOne, and medians of the read rates.
        public var streamGain: Double, readOwn: Double, readNeighbours: Double
        /// Median over the rounds of arithmeticMany ÷ arithmeticOne: what the cores gave.
        public var arithmeticGain: Double
        /// The rounds whose arithmetic probe gained at least `wholeCoreFraction` of N (the cores
        /// were whole while they ran), and the step's and sgemm's median gains over them (nil
        /// without such a round): the comparison with the host's interference left out.
        public var wholeCoreRounds: Int
        public var wholeCoreStepGain: Double?, wholeCoreSgemmGain: Double?
        /// MiB per streamed array (three arrays) and per worker's block in the read probe.
        public var streamArrayMiB: Double, readBlockMiB: Double
        /// Rounds whose step gain reached that round's sgemm gain.
        public var roundsMet: Int
        /// The rounds' step gain ÷ sgemm gain, each round's two gains taken on the same machine a
        /// few seconds apart: their median, and the sign test's 95 % interval for it (nil with
        /// fewer than 6 rounds). An interval across 1 means this run does not tell the two gains
        /// apart, whatever the verdict on the medians says.
        public var ratioMedian: Double
        public var ratioInterval: MedianInterval?
        /// The step's median gain is at least sgemm's.
        public var met: Bool
        public var blas: BLASKernelReport
        /// "NAME=VALUE" of the tuning constant every step ran with; nil: the defaults.
        public var tuning: String?
        /// The memory pages the tensors get (`FloatStorage.pageReport`).
        public var pages: String
        /// With `regions`: the rounds the sites' medians are taken over (the whole-core rounds,
        /// or every round when none was), 1-based.
        public var regionRounds: [Int]?
        /// With `regions`: every region site, most time lost first.
        public var regions: [RegionGain]?
        /// With `regions`: the sites split into element-wise passes and the rest, and the step's
        /// gain this machine's memory allows.
        public var memoryCeiling: MemoryCeiling?
    }

    /// Runs the rounds (with `tuning` in effect for all of them); `progress` gets a line after each.
    public func run(progress: (String) -> Void = { _ in }) throws -> Report {
        guard let tuning else { return try measured(progress: progress) }
        var report = try ConvTuning.with(tuning.setting, tuning.value) { try measured(progress: progress) }
        report.tuning = "\(tuning.setting.rawValue)=\(tuning.value)"
        return report
    }

    private func measured(progress: (String) -> Void) throws -> Report {
        let saved = (Parallel.threads, BLAS.threads)
        defer { Parallel.threads = saved.0; BLAS.threads = saved.1 }
        func use(_ t: Int) { Parallel.threads = t; BLAS.threads = t }
        let runner = try StepRunner(size: size, batch: batch, width: width, inference: false)
        for t in [1, threads] {
            use(t)
            for _ in 0..<warmup { _ = try runner.step() }
        }
        // Per thread count (0: one, 1: many) and round, each site's regions in the step.
        let tailSite = "(after the last region)"
        var profileRounds: [[[String: RegionProfile.Entry]]] = [[], []]
        /// One thread count's figures in a round.
        struct Sample { var phases: Phases, sgemm: Double, stream: Double, arithmetic: Double, sleeps: Int }
        func measure(_ t: Int) throws -> Sample {
            use(t)
            // The probe just before and just after the step: a round counts as run on whole cores
            // only if they were whole on both sides of it (the lower N-thread rate, the higher
            // 1-thread one), not if the host let go of the second core a moment after the step.
            let probeBefore = arithmetic.rate(threads: t)
            if regions { RegionProfile.start() }
            let sleeps = Parallel.helperSleeps
            let s = try runner.step()
            let slept = Parallel.helperSleeps - sleeps
            if regions {
                let (entries, tail) = RegionProfile.stop()
                var round = [tailSite: RegionProfile.Entry(site: tailSite, calls: 0, seconds: 0, gapSeconds: tail)]
                for e in entries { round[e.site] = e }
                profileRounds[t == 1 ? 0 : 1].append(round)
            }
            let probeAfter = arithmetic.rate(threads: t)
            let phases = Phases(forward: s.forward, backward: s.backward, optimizer: s.optimizer, step: s.total)
            return Sample(phases: phases, sgemm: Machine.sgemm2048(), stream: memory.streamRate(threads: t),
                          arithmetic: t == 1 ? max(probeBefore, probeAfter) : min(probeBefore, probeAfter), sleeps: slept)
        }
        var done: [Round] = []
        for r in 0..<rounds {
            let manyFirst = r % 2 == 1
            let one: Sample, many: Sample
            if manyFirst {
                many = try measure(threads); one = try measure(1)
            } else {
                one = try measure(1); many = try measure(threads)
            }
            let reads = memory.handoff(threads: threads)
            let round = Round(manyFirst: manyFirst, one: one.phases, many: many.phases, sgemmOne: one.sgemm,
                              sgemmMany: many.sgemm, stepGain: one.phases.step / many.phases.step,
                              sgemmGain: many.sgemm / one.sgemm, streamOne: one.stream, streamMany: many.stream,
                              readOwn: reads.own, readNeighbours: reads.neighbours,
                              arithmeticOne: one.arithmetic, arithmeticMany: many.arithmetic, helperSleeps: many.sleeps)
            done.append(round)
            progress(String(format: "bench threads: round %d/%d: step %.3f s → %.3f s (%.2f×), sgemm %.1f → %.1f GFLOP/s (%.2f×), registers %.1f → %.1f GFLOP/s (%.2f×), stream %.1f → %.1f GB/s, reads own %.1f, neighbour's %.1f GB/s",
                            r + 1, rounds, round.one.step, round.many.step, round.stepGain, round.sgemmOne,
                            round.sgemmMany, round.sgemmGain, round.arithmeticOne, round.arithmeticMany,
                            round.arithmeticMany / round.arithmeticOne, round.streamOne, round.streamMany, round.readOwn,
                            round.readNeighbours))
        }
        let median = ContentionProbe.median
        func gain(_ phase: KeyPath<Phases, Double>) -> Double {
            median(done.map { $0.one[keyPath: phase] }) / median(done.map { $0.many[keyPath: phase] })
        }
        let stepGain = median(done.map(\.stepGain)), sgemmGain = median(done.map(\.sgemmGain))
        let streamGain = median(done.map { $0.streamMany / $0.streamOne })
        let ratios = done.map { $0.stepGain / $0.sgemmGain }
        let isWhole = done.map { $0.arithmeticMany / $0.arithmeticOne >= Self.wholeCoreFraction * Double(threads) }
        let whole = zip(done, isWhole).filter(\.1).map(\.0)
        var regionGains: [RegionGain]?
        // The sites' medians over the whole-core rounds when there are any: a round whose second
        // core was shared moves every site's loss by more than the differences between sites.
        let regionRounds = whole.isEmpty ? Array(done.indices) : done.indices.filter { isWhole[$0] }
        if regions {
            let sites = Set(profileRounds.flatMap { $0.flatMap(\.keys) })
            func med(_ side: Int, _ site: String, _ value: KeyPath<RegionProfile.Entry, Double>) -> Double {
                median(regionRounds.map { profileRounds[side][$0][site]?[keyPath: value] ?? 0 })
            }
            regionGains = sites.map { site in
                let one = med(0, site, \.seconds), many = med(1, site, \.seconds)
                let gapOne = med(0, site, \.gapSeconds), gapMany = med(1, site, \.gapSeconds)
                let calls = profileRounds[0].first?[site]?.calls ?? profileRounds[1].first?[site]?.calls ?? 0
                return RegionGain(site: site, callsPerStep: calls, one: one, many: many, gapOne: gapOne, gapMany: gapMany,
                                  lost: (many + gapMany) - (one + gapOne) / Double(threads),
                                  waiting: med(1, site, \.waitSeconds) / Double(threads))
            }.sorted { $0.lost > $1.lost }
        }
        return Report(size: size.dims, batch: batch, threads: threads, width: width, rounds: done,
                      stepGain: stepGain, sgemmGain: sgemmGain, forwardGain: gain(\.forward),
                      backwardGain: gain(\.backward), optimizerGain: gain(\.optimizer),
                      streamGain: streamGain,
                      readOwn: median(done.map(\.readOwn)), readNeighbours: median(done.map(\.readNeighbours)),
                      arithmeticGain: median(done.map { $0.arithmeticMany / $0.arithmeticOne }),
                      wholeCoreRounds: whole.count,
                      wholeCoreStepGain: whole.isEmpty ? nil : median(whole.map(\.stepGain)),
                      wholeCoreSgemmGain: whole.isEmpty ? nil : median(whole.map(\.sgemmGain)),
                      streamArrayMiB: Double(4 * memory.streamFloats) / 1048576, readBlockMiB: Double(4 * memory.blockFloats) / 1048576,
                      roundsMet: done.filter { $0.stepGain >= $0.sgemmGain }.count,
                      ratioMedian: median(ratios), ratioInterval: MedianInterval(ratios), met: stepGain >= sgemmGain,
                      blas: BLASStartUp.report, pages: FloatStorage.pageReport,
                      regionRounds: regions ? regionRounds.map { $0 + 1 } : nil, regions: regionGains,
                      memoryCeiling: regionGains.map { Self.ceiling($0, threads: threads, streamGain: streamGain, target: sgemmGain) })
    }
}

extension ThreadGainBenchmark.Report {
    /// The rounds' step gain ÷ sgemm gain: the median and what the sign test's interval says.
    var ratioLine: String {
        let head = String(format: "step gain ÷ sgemm gain, round by round: median %.2f", ratioMedian)
        guard let i = ratioInterval else {
            return head + "; too few rounds for a 95 % interval (at least 6: --rounds)"
        }
        let verdict = [-1: "the step's gain is below sgemm's in this run",
                       0: "this run does not tell the two gains apart",
                       1: "the step's gain is above sgemm's in this run"][i.side(of: 1)]!
        return head + String(format: "; %.0f %% interval %.2f–%.2f (sign test over the %d rounds): ", 100 * i.coverage,
                             i.low, i.high, i.count) + verdict
    }

    /// The text `dsan bench threads` prints.
    public var text: String {
        func phases(_ p: ThreadGainBenchmark.Phases) -> String {
            String(format: "%.3f (%.3f / %.3f / %.3f)", p.step, p.forward, p.backward, p.optimizer)
        }
        let columns = [(6, "round"), (7, "order"), (34, "1 thread: step (fwd / bwd / Adam)"),
                       (34, "\(threads) threads: step (fwd / bwd / Adam)"), (11, "step gain"),
                       (20, "sgemm 2048³ GFLOP/s"), (11, "sgemm gain"), (14, "registers gain")]
        func row(_ cells: [String]) -> String {
            zip(columns, cells).map { $1.padded(to: $0.0) }.joined(separator: " ").trimmingCharacters(in: .whitespaces)
        }
        var lines = [blas.line, pages]
        if let tuning { lines.append("tuning: \(tuning) for every step of this run (dsan bench tuning --help lists the defaults)") }
        lines += ["training step at \(size.map(String.init).joined(separator: "x")), batch \(batch), width \(width): 1 thread against \(threads), in pairs",
                     row(columns.map(\.1))]
        for (i, r) in rounds.enumerated() {
            lines.append(row(["\(i + 1)", r.manyFirst ? "\(threads), 1" : "1, \(threads)", phases(r.one), phases(r.many),
                              String(format: "%.2f×", r.stepGain), String(format: "%.1f → %.1f", r.sgemmOne, r.sgemmMany),
                              String(format: "%.2f×", r.sgemmGain), String(format: "%.2f×", r.arithmeticMany / r.arithmeticOne)]))
        }
        lines.append(String(format: "median gains: step %.2f× (forward %.2f×, loss + backward %.2f×, Adam %.2f×), sgemm %.2f×",
                            stepGain, forwardGain, backwardGain, optimizerGain, sgemmGain))
        lines.append("step gain ≥ sgemm gain: \(met ? "yes" : "no") (median); in \(roundsMet) of \(rounds.count) rounds")
        lines.append(ratioLine)
        lines.append(String(format: "cores (median): multiply-adds on registers only gain %.2f× from 1 to %d threads (%d would mean whole cores); the step's gain is %.2f of it, sgemm's %.2f",
                            arithmeticGain, threads, threads, stepGain / arithmeticGain, sgemmGain / arithmeticGain))
        let wholeLine = String(format: "rounds on whole cores (registers ≥ %.2f×): %d of %d", ThreadGainBenchmark.wholeCoreFraction * Double(threads),
                               wholeCoreRounds, rounds.count)
        if let s = wholeCoreStepGain, let g = wholeCoreSgemmGain {
            lines.append(wholeLine + String(format: "; in them the step gains %.2f× and sgemm %.2f× (medians)", s, g))
        } else {
            lines.append(wholeLine)
        }
        let sleeps = Int(ContentionProbe.median(rounds.map { Double($0.helperSleeps) }))
        lines.append("pool (median): its threads slept \(sleeps) time\(sleeps == 1 ? "" : "s") in the \(threads)-thread step "
                     + "(each sleep costs the next region a wake-up; they poll \(Parallel.poolSpinMicroseconds) µs, "
                     + "then yield the core for \(Parallel.poolYieldMicroseconds) µs, before they sleep)")
        lines.append(String(format: "memory (medians): stream y = a + b over 3 × %g MiB gains %.2f× from 1 to %d threads; a worker reads a %g MiB block it has just written at %.1f GB/s, one the next worker has just written at %.1f GB/s",
                            streamArrayMiB, streamGain, threads, readBlockMiB, readOwn, readNeighbours))
        if let regions {
            lines.append("")
            let over = (regionRounds?.count ?? 0) == rounds.count ? "all \(rounds.count) rounds"
                : "the \(regionRounds?.count ?? 0) rounds on whole cores (\((regionRounds ?? []).map(String.init).joined(separator: ", ")))"
            lines.append("parallel regions per step, by source line (medians over \(over); ms): time in the regions and in the serial gap before them")
            lines.append("lost = N-thread time beyond 1/N of the 1-thread time, what keeps the step's gain below \(threads); waiting = the part of it the workers spent idle inside the regions (an uneven split, a slower core), the rest ran slower per thread")
            let width = max(24, regions.map(\.site.count).max() ?? 0)
            lines.append("site".padded(to: width) + "  calls   1 thread (gap)       \(threads) threads (gap)      gain   lost  waiting")
            for r in regions {
                let gain = r.many > 0 ? String(format: "%5.2f×", r.one / r.many) : "    – "
                lines.append(r.site.padded(to: width) + String(format: "  %5d  %8.1f (%6.1f)   %8.1f (%6.1f)   ", r.callsPerStep,
                                                         r.one * 1e3, r.gapOne * 1e3, r.many * 1e3, r.gapMany * 1e3)
                             + gain + String(format: "  %6.1f  %7.1f", r.lost * 1e3, r.waiting * 1e3))
            }
            let total = regions.reduce(0) { $0 + $1.lost }, waiting = regions.reduce(0) { $0 + $1.waiting }
            lines.append(String(format: "lost in all: %.1f ms per step, of which waiting %.1f ms", total * 1e3, waiting * 1e3))
            if let c = memoryCeiling { lines += c.lines(threads: threads) }
        }
        return lines.joined(separator: "\n")
    }
}

extension ThreadGainBenchmark.MemoryCeiling {
    /// The lines `--regions` ends with.
    func lines(threads: Int) -> [String] {
        func gain(_ one: Double, _ many: Double) -> String { many > 0 ? String(format: "%.2f×", one / many) : "–" }
        let ms = { (x: Double) in String(format: "%.1f", x * 1e3) }
        var out = ["memory ceiling: the element-wise passes (Adam, batch norm, activations, pooling, upsampling, losses, "
                   + "zeroing) \(ms(passesOne)) → \(ms(passesMany)) ms (\(gain(passesOne, passesMany))), the rest (convs, "
                   + "transforms, GEMMs) \(ms(restOne)) → \(ms(restMany)) ms (\(gain(restOne, restMany))); the stream gains "
                   + String(format: "%.2f×", streamGain)]
        var verdict = String(format: "with the passes as measured and the rest at exactly %d× the step would gain %.2f×; ", threads, ceilingGain)
        if let needed = restGainNeeded {
            verdict += String(format: "for sgemm's %.2f× the rest must gain %.2f×", target, needed) + " (it gained \(gain(restOne, restMany)))"
        } else {
            verdict += String(format: "no gain of the rest reaches sgemm's %.2f×: the passes alone take longer", target)
        }
        out.append(verdict)
        return out
    }
}
