import BLAS
import Foundation
import Model
import Tensor

/// How finely each parallel region of a training step is cut for N workers, and the speed-up that
/// the cuts alone allow on N cores, for N beyond the cores of the machine it runs on
/// (`dsan bench granularity`): which loops would leave workers idle on a 16- or 32-core node.
///
/// It profiles one step at 1 thread (each region's wall time, in order: `RegionProfile` with
/// `loggingCalls`), then one step at each N, where it only reads how each region was cut: k items
/// (elements, or units of `grain` taken dynamically) over w engaged workers. The N-thread runs may
/// share fewer cores than N: their times are not used, only the cuts, which depend on N and not
/// on the cores. Each region's i-th call at N is paired with its i-th call at 1 thread.
///
/// The model (`bound`): a region of k equal items on w workers ends when the busiest worker has
/// done ⌈k/w⌉ of them, so its N-thread time is at least t₁·⌈k/w⌉/k, against the ideal t₁/N; the
/// serial code between regions keeps its 1-thread time. Everything else that costs on more cores
/// (slower memory per thread, uneven items, hand-overs, work a cut repeats, such as the weight
/// transform of a panel cut into parts of tiles) comes on top: the bound is an upper limit, and
/// a region below it on a real N-core machine is held back by its cut, not by the machine.
public struct GranularityBenchmark {
    public let size: VolumeSize
    public let batch: Int
    public let width: Int
    /// The thread counts N to cut the regions for.
    public let threadCounts: [Int]
    public let warmup: Int

    public init(size: VolumeSize, batch: Int, width: Int, threadCounts: [Int], warmup: Int) {
        self.size = size
        self.batch = batch
        self.width = width
        self.threadCounts = threadCounts
        self.warmup = warmup
    }

    /// One source line's regions at N threads.
    public struct Site: Codable, Sendable, Equatable {
        public var site: String
        public var calls: Int
        /// Its regions' time in the 1-thread step.
        public var oneThreadSeconds: Double
        /// Items and engaged workers over its calls at N.
        public var itemsMin: Int, itemsMax: Int
        public var workersMin: Int, workersMax: Int
        /// Its least N-thread time by the cuts alone, and the ideal oneThreadSeconds / N over it.
        public var boundSeconds: Double
        public var efficiency: Double
        /// boundSeconds − oneThreadSeconds / N: what the cuts cost at N.
        public var lostSeconds: Double
        /// The serial code just before its regions in the 1-thread step (the same at any N).
        public var gapSeconds: Double
    }

    /// What the cuts allow at N threads.
    public struct Bound: Codable, Sendable, Equatable {
        public var threads: Int
        /// Time outside the regions in the 1-thread step (serial at any N).
        public var serialSeconds: Double
        /// The step's least N-thread time by the cuts alone (regions and serial code).
        public var boundSeconds: Double
        /// The 1-thread step ÷ boundSeconds, and that ÷ N.
        public var speedup: Double
        public var efficiency: Double
        /// The sites, the most time lost first.
        public var sites: [Site]
    }

    public struct Report: Codable, Sendable {
        public var size: [Int]
        public var batch: Int
        public var width: Int
        public var blas: BLASKernelReport
        /// The profiled 1-thread step: its regions and the serial code between them.
        public var oneThreadSeconds: Double
        public var regionCalls: Int
        public var bounds: [Bound]
        /// Sites listed per N in `text`.
        public var listed: Int

        public var text: String {
            var lines = [blas.line]
            lines.append("granularity of a training step at \(size.map(String.init).joined(separator: "x")), batch \(batch), width \(width): "
                         + "what the cuts of its parallel regions alone allow on N threads (an upper limit; see --help)")
            let serial = bounds.first?.serialSeconds ?? 0
            lines.append(String(format: "1-thread step (profiled): %.3f s in %d regions, %.3f s of it outside them (serial at any N)",
                                oneThreadSeconds, regionCalls, serial))
            let serialSites = (bounds.first?.sites ?? []).filter { $0.gapSeconds > 0 }.sorted { $0.gapSeconds > $1.gapSeconds }
            if !serialSites.isEmpty && listed > 0 {
                lines.append("the serial code between the regions, by the region it runs before (ms in the 1-thread step; no thread count shortens it):")
                lines.append(serialSites.prefix(listed).map { String(format: "  %@ %.1f", $0.site, 1000 * $0.gapSeconds) }
                                 .joined(separator: ","))
            }
            lines.append("")
            lines.append(table([(8, "threads"), (16, "least step (s)"), (12, "speed-up"), (11, "efficiency"), (0, "lost to the cuts (s)")],
                               bounds.map { b in
                                   [String(b.threads), String(format: "%.3f", b.boundSeconds), String(format: "%.2f×", b.speedup),
                                    String(format: "%.0f %%", 100 * b.efficiency),
                                    String(format: "%.3f", b.sites.reduce(0) { $0 + $1.lostSeconds })]
                               }))
            for b in bounds {
                lines.append("")
                lines.append("at \(b.threads) threads, the \(min(listed, b.sites.count)) sites that lose most to their cuts "
                             + "(items: elements, or units taken dynamically; workers: those the loop engaged):")
                lines.append(table([(30, "site"), (7, "calls"), (16, "1 thread (ms)"), (13, "items"), (10, "workers"), (12, "efficiency"), (0, "lost (ms)")],
                                   b.sites.prefix(listed).map { s in
                                       [s.site, String(s.calls), String(format: "%.1f", 1000 * s.oneThreadSeconds),
                                        range(s.itemsMin, s.itemsMax), range(s.workersMin, s.workersMax),
                                        String(format: "%.0f %%", 100 * s.efficiency), String(format: "%.1f", 1000 * s.lostSeconds)]
                                   }))
            }
            return lines.joined(separator: "\n")
        }

        private func range(_ a: Int, _ b: Int) -> String { a == b ? String(a) : "\(a)–\(b)" }

        private func table(_ columns: [(width: Int, title: String)], _ rows: [[String]]) -> String {
            func line(_ cells: [String]) -> String {
                zip(columns, cells).map { c, cell in
                    c.width == 0 ? cell : cell.padded(to: max(c.width, cell.count + 1))
                }.joined()
            }
            return ([line(columns.map(\.title))] + rows.map(line)).joined(separator: "\n")
        }
    }

    /// The least N-thread step that the cuts in `many` (the regions of a step at `threads`) allow,
    /// from the 1-thread regions `oneThread` of the same step and the serial code after its last
    /// region (`tail`). Throws when the two steps did not run the same regions the same number of
    /// times (then no call can be paired).
    public static func bound(oneThread: [RegionProfile.Call], tail: Double, many: [RegionProfile.Call],
                             threads: Int) throws -> Bound {
        precondition(threads >= 1, "bound: threads must be at least 1")
        func bySite(_ calls: [RegionProfile.Call]) -> [String: [RegionProfile.Call]] {
            Dictionary(grouping: calls, by: \.site)
        }
        let one = bySite(oneThread), cut = bySite(many)
        for site in Set(one.keys).union(cut.keys) where one[site]?.count != cut[site]?.count {
            throw BenchmarkError("\(site) opened \(one[site]?.count ?? 0) regions in the 1-thread step and "
                                 + "\(cut[site]?.count ?? 0) at \(threads) threads: the steps differ, no region can be paired")
        }
        var sites: [Site] = []
        for (site, calls) in one {
            let cuts = cut[site]!
            var t1 = 0.0, least = 0.0, gap = 0.0
            for (c, k) in zip(calls, cuts) {
                gap += c.gapSeconds
                let items = max(1, k.items), workers = max(1, min(k.workers, items))
                t1 += c.seconds
                least += c.seconds * Double((items + workers - 1) / workers) / Double(items)
            }
            let ideal = t1 / Double(threads)
            sites.append(Site(site: site, calls: calls.count, oneThreadSeconds: t1,
                              itemsMin: cuts.map(\.items).min()!, itemsMax: cuts.map(\.items).max()!,
                              workersMin: cuts.map(\.workers).min()!, workersMax: cuts.map(\.workers).max()!,
                              boundSeconds: least, efficiency: least > 0 ? ideal / least : 1, lostSeconds: least - ideal,
                              gapSeconds: gap))
        }
        sites.sort { ($0.lostSeconds, $1.site) > ($1.lostSeconds, $0.site) }
        let serial = oneThread.reduce(tail) { $0 + $1.gapSeconds }
        let total = oneThread.reduce(serial) { $0 + $1.seconds }
        let least = sites.reduce(serial) { $0 + $1.boundSeconds }
        let speedup = least > 0 ? total / least : 1
        return Bound(threads: threads, serialSeconds: serial, boundSeconds: least, speedup: speedup,
                     efficiency: speedup / Double(threads), sites: sites)
    }

    public func run(listed: Int = 12, progress: (String) -> Void = { _ in }) throws -> Report {
        let saved = (Parallel.threads, BLAS.threads)
        defer { Parallel.threads = saved.0; BLAS.threads = saved.1 }
        func use(_ t: Int) { Parallel.threads = t; BLAS.threads = t }
        // The model's conv workspace grows to one column slice per thread at each N
        // (`ConvWorkspace.reserveSlices`), so where the model is created does not matter.
        let runner = try StepRunner(size: size, batch: batch, width: width, inference: false)
        func profiled(_ t: Int) throws -> (calls: [RegionProfile.Call], tail: Double) {
            use(t)
            for _ in 0..<warmup { _ = try runner.step() }
            let started = Date()
            RegionProfile.start(loggingCalls: true)
            let stepped = Result { try runner.step() }
            let tail = RegionProfile.stop().tail
            _ = try stepped.get()
            progress(String(format: "bench granularity: the step at %d thread%@ took %.2f s", t, t == 1 ? "" : "s",
                            Date().timeIntervalSince(started)))
            return (RegionProfile.calls(), tail)
        }
        let one = try profiled(1)
        var bounds: [Bound] = []
        for n in threadCounts {
            bounds.append(try GranularityBenchmark.bound(oneThread: one.calls, tail: one.tail,
                                                         many: try profiled(n).calls, threads: n))
        }
        return Report(size: size.dims, batch: batch, width: width, blas: BLASStartUp.report,
                      oneThreadSeconds: one.calls.reduce(one.tail) { $0 + $1.seconds + $1.gapSeconds },
                      regionCalls: one.calls.count, bounds: bounds, listed: listed)
    }
}
