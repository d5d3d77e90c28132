import ArgumentParser
import BLAS
import Benchmarks
import Foundation
import Model
import NN
import Planning
import Tensor

/// `dsan plan`: estimated time per step, epoch and cross-validation on R ranks, from rates
/// measured on this machine (or a saved profile) and an α-β model of the network.
struct Plan: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Estimate time per step, epoch and cross-validation on a cluster.",
        discussion: """
        Compute: the model's conv FLOPs (a training step counts 3× the forward, as `dsan bench \
        step` does) at sgemm's rate (2048³, measured here with --threads-per-rank threads, or \
        read from --profile) times --efficiency, the fraction `dsan bench step` achieves; Adam \
        timed on this machine. The busiest rank trains ⌈B/R⌉ cases per step. Communication: \
        per gradient bucket a ring all-reduce, c + 2(R−1)·⌈b/(R·1 MiB)⌉·α + 2(R−1)/R·b/β; per \
        synchronised batch-norm round (33 per step at the paper's depth) two small all-reduces \
        of ⌈log₂R⌉(α + m/β). With overlap the buckets are reduced in order as backward finishes \
        them, and a backward batch-norm round that meets a bucket on the link waits q behind it. \
        The presets have c = q = 0; `dsan bench allreduce --save-network FILE`, run over the \
        job's links, measures α, β, c and q for --network-profile FILE. Ranks sharing a node (--ranks-per-node) compute slower by the node's contention, \
        measured by --save-profile (k copies of a training-step probe together, k = cores / \
        threads per rank). The step waits for the slowest of R ranks: e_R · cv · compute, e_R \
        the expected maximum of R standard normals, cv the rank's spread (the profile's, \
        --drift-cv, or --two-rank-step). Validation is shared by the R ranks (--validation). \
        The model and its check against measurements: Docs/scaling.md.

        Examples: dsan plan --ranks 16 --threads-per-rank 32 --network infiniband --profile node.json
                  dsan plan --save-profile node.json --threads-per-rank 8      (on a compute node)
                  dsan plan --ranks 16 --ranks-per-node 4 --threads-per-rank 8 --profile node.json --one-rank-step 3.93@2 --two-rank-step 4.88@4 --size 64x128x128 --batch 16
                  dsan plan --ranks 8 --sweep --json
                  mpirun -np 2 --map-by ppr:1:node dsan bench allreduce --save-network net.json; dsan plan --ranks 8 --network-profile net.json
        """
    )

    @Option(help: "Ranks R.") var ranks: Int?
    @Option(name: .customLong("threads-per-rank"), help: "Threads per rank T (default: the profile's, or this machine's cores).")
    var threadsPerRank: Int?
    @Option(help: "Volume size DxHxW.") var size = VolumeSize(138, 256, 256)
    @Option(help: "Cases in the cohort (the paper's training-validation set: 2186 scans).") var cases = 2186
    @Option(help: "Epochs per model.") var epochs = 20
    @Option(help: "Global batch size B.") var batch = 20
    @Option(help: "Cross-validation folds.") var folds = 5
    @Option(help: "Models trained per fold (uniform and size-balanced: 2; 3 with `dsan cv --baseline`).") var models = 2
    @Option(help: "Model width (64 = the paper's ResNet34).") var width = 64
    @Option(help: "Network preset: infiniband (α 2 µs, β 12 GB/s), 10gbe (α 30 µs, β 1.1 GB/s) or 1gbe (α 50 µs, β 0.118 GB/s).") var network = "infiniband"
    @Option(name: .customLong("network-profile"), help: "Read the network from this file, written by `dsan bench allreduce --save-network` over the links the job will use (α, β, the ring's overhead per all-reduce and the batch-norm rounds' wait behind a bucket); replaces --network.")
    var networkProfile: String?
    @Option(name: .customLong("latency-us"), help: "α, µs per message (overrides the preset's).") var latencyMicroseconds: Double?
    @Option(name: .customLong("bandwidth-gbps"), help: "β, GB/s (10⁹ bytes) per rank (overrides the preset's).") var bandwidthGBps: Double?
    @Option(name: .customLong("bucket-mb"), help: "Gradient bucket size in MB (MiB), as `bucket_mb`.") var bucketMB = 25.0
    @Option(help: "Achieved training rate (direct-conv FLOPs per second) as a fraction of sgemm's, from `dsan bench step` (default: the profile's, else 1.47, measured at 138x256x256 on 2 threads with the default Winograd convs; 0.69 with DSAN_CONV=direct).") var efficiency: Double?
    @Option(help: "Read machine rates from this JSON profile instead of measuring.") var profile: String?
    @Option(name: .customLong("save-profile"), help: "Measure this machine and write its profile to this file.") var saveProfile: String?
    @Option(name: .customLong("ranks-per-node"), help: "Ranks that share a node (their cores, memory bandwidth and cache); the node's contention applies to min(R, this) ranks × --threads-per-rank busy cores.")
    var ranksPerNode = 1
    @Option(help: "Who runs the validation forward passes: shared (every rank a slice, as `validation: shared`) or rank0.")
    var validation = ValidationPlacement.shared
    @Option(name: .customLong("drift-cv"), help: "Relative spread of a rank's step compute time, for the wait for the slowest rank (default: the profile's measured spread, else 0).")
    var driftCV: Double?
    @Option(name: .customLong("one-rank-step"), help: "SECONDS@CASES: a measured 1-rank step of CASES cases (default --batch) at --size and --width (steps.jsonl median); sets the training rate from it instead of sgemm × efficiency.")
    var oneRankStep: MeasuredStep?
    @Option(name: .customLong("two-rank-step"), help: "SECONDS@CASES: a measured 2-rank step of global batch CASES (default --batch), both ranks on one node; sets --drift-cv so the model's 2-rank step equals it.")
    var twoRankStep: MeasuredStep?
    @Option(name: .customLong("contention-copies"), help: "With --save-profile: copies of the probe run together to measure the node's contention (default: usable cores / --threads-per-rank; 1 skips the probe).")
    var contentionCopies: Int?
    @Option(name: .customLong("probe-size"), help: "Volume DxHxW of the contention probe's training step.") var probeSize = VolumeSize(32, 64, 64)
    @Option(name: .customLong("probe-seconds"), help: "Seconds the contention probe runs, alone and with all copies.") var probeSeconds = 8.0
    @Flag(help: .hidden) var probeWorker = false
    @Option(name: .customLong("probe-ready"), help: .hidden) var probeReady: String?
    @Flag(help: "Also estimate R = 1, 2, 4, …, 1024.") var sweep = false
    @Flag(help: "Print JSON instead of text.") var json = false

    /// Achieved/sgemm measured by `dsan bench step --size 138x256x256 --threads 2` with the
    /// default (Winograd) convs on the Zen 3 VM: the median of 1.47, 1.64 and 1.42
    /// (Docs/performance.md, "Zen 3 VM").
    static let defaultEfficiency = 1.47
    /// Achieved is counted in direct-conv FLOPs, so with Winograd's fewer multiplications it can
    /// exceed sgemm's rate; at most 3.375× (its multiply reduction) times sgemm, with a margin.
    static let maximumEfficiency = 10.0

    func validate() throws {
        if probeWorker {
            guard let k = contentionCopies, k >= 1, probeReady != nil, let t = threadsPerRank, t >= 1, probeSeconds > 0 else {
                throw ValidationError("--probe-worker is internal to --save-profile")
            }
            return
        }
        if ranks == nil && saveProfile == nil { throw ValidationError("--ranks is required (or give --save-profile FILE to only measure)") }
        if let r = ranks, r < 1 { throw ValidationError("--ranks must be at least 1, got \(r)") }
        if let t = threadsPerRank, t < 1 { throw ValidationError("--threads-per-rank must be at least 1, got \(t)") }
        guard batch >= 1 else { throw ValidationError("--batch must be at least 1, got \(batch)") }
        guard epochs >= 1 else { throw ValidationError("--epochs must be at least 1, got \(epochs)") }
        guard folds >= 2 else { throw ValidationError("--folds must be at least 2, got \(folds)") }
        guard cases >= folds else { throw ValidationError("--cases must be at least --folds (\(folds)), got \(cases)") }
        guard models >= 1 else { throw ValidationError("--models must be at least 1, got \(models)") }
        guard width >= 1 else { throw ValidationError("--width must be at least 1, got \(width)") }
        guard NetworkModel.presets[network] != nil else {
            throw ValidationError("--network must be one of \(NetworkModel.presets.keys.sorted().joined(separator: ", ")), got '\(network)'")
        }
        if let a = latencyMicroseconds, !(a >= 0 && a.isFinite) { throw ValidationError("--latency-us must be a non-negative number, got \(a)") }
        if let b = bandwidthGBps, !(b > 0 && b.isFinite) { throw ValidationError("--bandwidth-gbps must be positive, got \(b)") }
        guard bucketMB > 0 else { throw ValidationError("--bucket-mb must be positive, got \(bucketMB)") }
        if let e = efficiency, !(e > 0 && e <= Self.maximumEfficiency) { throw ValidationError("--efficiency must be in (0, \(Int(Self.maximumEfficiency))], got \(e)") }
        guard ranksPerNode >= 1 else { throw ValidationError("--ranks-per-node must be at least 1, got \(ranksPerNode)") }
        if let c = driftCV, !(c >= 0 && c.isFinite) { throw ValidationError("--drift-cv must be a non-negative number, got \(c)") }
        if driftCV != nil && twoRankStep != nil { throw ValidationError("give either --drift-cv or --two-rank-step (which sets it), not both") }
        if let k = contentionCopies, k < 1 { throw ValidationError("--contention-copies must be at least 1, got \(k)") }
        guard probeSeconds > 0 && probeSeconds.isFinite else { throw ValidationError("--probe-seconds must be positive, got \(probeSeconds)") }
        if profile != nil && saveProfile != nil { throw ValidationError("give either --profile (read) or --save-profile (measure and write), not both") }
    }

    struct Report: Codable {
        var size: [Int], width: Int, parameters: Int, forwardGFLOP: Double
        var shape: RunShape
        var threadsPerRank: Int
        var ranksPerNode: Int
        /// The contention factor at the planned R, and the drift used (with where it came from).
        var slowdown: Double
        var driftCV: Double
        var driftSource: String
        var validation: ValidationPlacement
        var profile: MachineProfile
        var profileSource: String
        var trainingGFLOPS: Double
        var network: NetworkModel
        var buckets: [StepModel.Bucket]
        var smallCollectivesPerStep: Int
        var estimate: RunEstimate?
        /// The smallest R at which communication stops hiding; absent if it hides at every R up
        /// to `searchedUpTo`.
        var stopsHidingAt: Int?
        var searchedUpTo: Int
        var sweep: [RunEstimate]?
    }

    func run() throws {
        if probeWorker {
            try ContentionProbe.worker(copies: contentionCopies!, threads: threadsPerRank!, width: width, size: probeSize,
                                       seconds: probeSeconds, ready: probeReady!)
            return
        }
        var machine: MachineProfile
        var source: String
        if let path = profile {
            machine = try Self.loadProfile(path)
            source = path
        } else {
            let t = min(threadsPerRank ?? ProcessInfoCores.available, ProcessInfoCores.available)
            machine = Self.measure(threads: t, efficiency: efficiency ?? Self.defaultEfficiency)
            source = "measured now"
            // The probe runs when a profile is saved, or when this plan puts ranks together on a node.
            if saveProfile != nil || ranksPerNode > 1 {
                let k = contentionCopies ?? max(1, ContentionProbe.allowedCores().count / t)
                if k > 1 {
                    machine.contention = try ContentionProbe.measure(copies: k, threads: t, width: width, size: probeSize, seconds: probeSeconds,
                                                                progress: printError)
                }
            }
            if let path = saveProfile {
                let e = JSONEncoder()
                e.outputFormatting = [.prettyPrinted, .sortedKeys]
                try e.encode(machine).write(to: URL(fileURLWithPath: path))
                printError("plan: wrote the profile of this machine to \(path)")
            }
        }
        if let e = efficiency { machine.efficiency = e }
        guard let ranks else {
            if !json { print(Self.describe(machine)) }
            return
        }
        let threads = threadsPerRank ?? machine.threads
        var net = NetworkModel.presets[network]!
        if let path = networkProfile { net = try Self.loadNetwork(path) }
        if let a = latencyMicroseconds { net.latency = a * 1e-6 }
        if let b = bandwidthGBps { net.bandwidth = b * 1e9 }
        let units = Self.units(width: width, size: size)
        let parameters = units.reduce(0) { $0 + $1.parameters }
        var rate = machine.flops(threads: threads)
        var model = StepModel(units: units, trainingFLOPS: rate, inferenceFLOPS: rate,
                              adamSeconds: machine.adamSeconds(parameters: parameters, threads: threads),
                              bucketBytes: Int(bucketMB * 1_048_576), network: net,
                              contention: machine.contention ?? .none, threadsPerRank: threads, ranksPerNode: ranksPerNode)
        if let measured = oneRankStep {
            guard let calibrated = model.trainingFLOPS(oneRankStep: measured.seconds, batch: measured.cases ?? batch) else {
                throw ValidationError("--one-rank-step \(measured) is not longer than the model's Adam step (\(Self.duration(model.adamSeconds))): nothing is left for forward and backward")
            }
            rate = calibrated
            model.trainingFLOPS = rate
            model.inferenceFLOPS = rate
            machine.efficiency = rate / (machine.flops(threads: threads) / machine.efficiency)
        }
        var driftSource = "none"
        if let c = driftCV {
            model.driftCV = c
            driftSource = "--drift-cv"
        } else if let measured = twoRankStep {
            model.driftCV = model.driftCV(twoRankStep: measured.seconds, batch: measured.cases ?? batch)
            driftSource = "--two-rank-step \(measured)"
        } else if let c = machine.contention?.spread {
            model.driftCV = c
            driftSource = "the profile's probe spread"
        }
        let shape = RunShape(cases: cases, folds: folds, epochs: epochs, batch: batch, modelsPerFold: models)
        let maxRanks = max(1024, ranks)
        let sweepRanks = sweep ? (0...Int(log2(Double(maxRanks)))).map { 1 << $0 } : []
        let report = Report(size: size.dims, width: width, parameters: parameters, forwardGFLOP: model.forwardFLOPs / 1e9,
                            shape: shape, threadsPerRank: threads, ranksPerNode: ranksPerNode, slowdown: model.slowdown(ranks: ranks),
                            driftCV: model.driftCV, driftSource: driftSource, validation: validation,
                            profile: machine, profileSource: source,
                            trainingGFLOPS: rate / 1e9, network: net, buckets: model.buckets,
                            smallCollectivesPerStep: model.smallCollectives(batch: batch, ranks: ranks).count,
                            estimate: model.estimate(shape, ranks: ranks, validation: validation),
                            stopsHidingAt: model.communicationStopsHiding(batch: batch, maxRanks: maxRanks), searchedUpTo: maxRanks,
                            sweep: sweep ? sweepRanks.map { model.estimate(shape, ranks: $0, validation: validation) } : nil)
        if json {
            let e = JSONEncoder()
            e.outputFormatting = [.prettyPrinted, .sortedKeys]
            print(String(decoding: try e.encode(report), as: UTF8.self))
        } else {
            print(Self.text(report, maxRanks: maxRanks))
        }
    }

    // MARK: The network's units

    /// fc, each BasicBlock, the stem, in forward order, from the real model's parameter registry
    /// (bucket layout) and conv list (FLOPs; training counts backward as 2× forward, the
    /// convention of `dsan bench step`'s achieved rate).
    static func units(width: Int, size: VolumeSize) -> [GradientUnit] {
        let model = ResNet3D(config: ModelConfig(width: width, attention: true), seed: 0)
        func unit(of name: String) -> String {
            if name.hasPrefix("fc.") || name == "attention" { return "fc" }
            if name.hasPrefix("layer") { return name.split(separator: ".").prefix(2).joined(separator: ".") }
            return "stem"
        }
        var order: [String] = [], tensors: [String: [Int]] = [:], flops: [String: Double] = [:]
        for p in model.registry.parameters {
            let u = unit(of: p.name)
            if tensors[u] == nil { order.append(u) }
            tensors[u, default: []].append(p.value.count)
        }
        let input = Shape5(n: 1, c: 1, d: size.d, h: size.h, w: size.w)
        for c in model.convolutions(for: input) { flops[unit(of: c.name), default: 0] += c.geometry.flops(input: c.input) }
        // A block's shortcut batch norm shares the round of its second batch norm, registered
        // just before it (BasicBlock.forward: `BatchNorm3d.forward(together:)`).
        var rounds: [String: [[Int]]] = [:]
        for b in model.registry.batchNorms {
            let u = unit(of: b.name)
            if b.name.contains(".downsample."), var r = rounds[u], !r.isEmpty {
                r[r.count - 1].append(b.layer.channels)
                rounds[u] = r
            } else {
                rounds[u, default: []].append([b.layer.channels])
            }
        }
        // Registry order is forward order: stem, blocks, fc.
        return order.map { u in
            GradientUnit(name: u, tensorElements: tensors[u]!.reversed(), forwardFLOPs: flops[u] ?? 0,
                         backwardFLOPs: 2 * (flops[u] ?? 0), batchNormRounds: rounds[u] ?? [])
        }
    }

    // MARK: Calibration

    static func measure(threads: Int, efficiency: Double) -> MachineProfile {
        BLAS.threads = threads
        Parallel.threads = threads
        let gemm = Machine.sgemm2048()
        // Adam over 8 M parameters (128 MB of state, well past the caches): median of 3.
        let count = 8 << 20
        let p = Tensor(zeros: [count]), g = Tensor(shape: [count], repeating: 1e-3)
        let adam = Adam(parameters: [(p, g)])
        var adamTimes: [Double] = []
        for _ in 0..<4 {
            let t0 = Date()
            adam.step()
            adamTimes.append(Date().timeIntervalSince(t0))
        }
        let adamPerMillion = adamTimes.dropFirst().sorted()[1] / (Double(count) / 1e6)
        return MachineProfile(machine: Machine.description, date: ISO8601DateFormatter().string(from: Date()), threads: threads,
                              sgemmGFLOPS: gemm, efficiency: efficiency, adamSecondsPerMillionParameters: adamPerMillion)
    }

    static func loadProfile(_ path: String) throws -> MachineProfile {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw ValidationError("--profile \(path): cannot read the file; write one with `dsan plan --save-profile \(path)`")
        }
        let p: MachineProfile
        do { p = try JSONDecoder().decode(MachineProfile.self, from: data) } catch {
            throw ValidationError("--profile \(path): not a dsan machine profile (\(error)); write one with `dsan plan --save-profile \(path)`")
        }
        guard p.threads >= 1, p.sgemmGFLOPS > 0, p.efficiency > 0, p.efficiency <= maximumEfficiency, p.adamSecondsPerMillionParameters >= 0 else {
            throw ValidationError("--profile \(path): threads, sgemmGFLOPS, efficiency (0…\(Int(maximumEfficiency))] and adamSecondsPerMillionParameters must be positive")
        }
        return p
    }

    static func loadNetwork(_ path: String) throws -> NetworkModel {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw ValidationError("--network-profile \(path): cannot read the file; write one with `mpirun … dsan bench allreduce --save-network \(path)` over the links the job will use")
        }
        do { return try JSONDecoder().decode(NetworkModel.self, from: data) } catch {
            throw ValidationError("--network-profile \(path): not a dsan network profile (\(error)); write one with `dsan bench allreduce --save-network \(path)`")
        }
    }

    // MARK: Text

    static func describe(_ p: MachineProfile) -> String {
        var line = String(format: "profile: %@, %d thread(s), %@: sgemm %.1f GFLOP/s, efficiency %.2f, Adam %.4f s per million parameters",
                          p.machine, p.threads, p.date, p.sgemmGFLOPS, p.efficiency, p.adamSecondsPerMillionParameters)
        if let c = p.contention {
            line += String(format: "; %d copies × %d thread(s) together %.2f× slower than one alone", c.copies, c.threadsPerCopy, c.slowdown)
            if let s = c.spread { line += String(format: " (spread %.1f %%)", 100 * s) }
        } else {
            line += "; node contention not measured (--save-profile measures it)"
        }
        return line
    }

    static func duration(_ s: Double) -> String {
        if s < 1 { return String(format: "%.1f ms", s * 1e3) }
        if s < 120 { return String(format: "%.2f s", s) }
        if s < 7200 { return String(format: "%.1f min", s / 60) }
        if s < 3 * 86400 { return String(format: "%.1f h", s / 3600) }
        return String(format: "%.1f days", s / 86400)
    }

    static func text(_ r: Report, maxRanks: Int) -> String {
        let s = r.shape, e = r.estimate!, st = e.step
        let mb = Double(r.parameters * 4) / 1e6
        var lines: [String] = []
        lines.append("ResNet34 (width \(r.width), attention on, \(r.parameters) parameters, \(String(format: "%.0f", mb)) MB of gradients) at \(r.size.map(String.init).joined(separator: "x")), global batch \(s.batch)")
        lines.append("cohort \(s.cases) cases, \(s.folds) folds: \(s.trainingCases) training + \(s.validationCases) validation cases, \(s.stepsPerEpoch) steps per epoch, \(s.epochs) epochs, \(s.modelsPerFold) models per fold")
        lines.append(describe(r.profile) + " (\(r.profileSource))")
        lines.append(String(format: "compute per rank: %.1f GFLOP/s with %d thread(s)%@; forward %.0f GFLOP per case, training 3×",
                            r.trainingGFLOPS, r.threadsPerRank,
                            r.threadsPerRank > r.profile.threads ? " (scaled linearly from \(r.profile.threads): optimistic)" as NSString : "" as NSString,
                            r.forwardGFLOP))
        lines.append(String(format: "node: %d rank(s) per node; contention at this R %.2f×; drift (spread of a rank's compute) %.1f %% from %@",
                            r.ranksPerNode, r.slowdown, 100 * r.driftCV, r.driftSource))
        let extra = r.network.allreduceOverhead > 0 || r.network.queueDelay > 0
            ? String(format: ", %.1f ms per all-reduce, %.1f ms queueing behind a bucket", r.network.allreduceOverhead * 1e3, r.network.queueDelay * 1e3) : ""
        lines.append(String(format: "network %@: α %.1f µs, β %.3f GB/s%@; %d gradient buckets (%@ MB); %d small all-reduces per step",
                            r.network.name, r.network.latency * 1e6, r.network.bandwidth / 1e9, extra as NSString, r.buckets.count,
                            r.buckets.map { String(format: "%.0f", Double($0.bytes) / 1e6) }.joined(separator: ", "), r.smallCollectivesPerStep))
        lines.append("")
        lines.append("R = \(st.ranks) rank(s) × \(r.threadsPerRank) thread(s): \(st.share) case(s) on the busiest rank" + (st.idleRanks > 0 ? ", \(st.idleRanks) rank(s) idle (R > B)" : ""))
        func row(_ label: String, _ v: String) { lines.append("  " + label.padding(toLength: 26, withPad: " ", startingAt: 0) + v) }
        if st.slowdown != 1 { row("node contention", String(format: "%.2f× on forward, backward and Adam", st.slowdown)) }
        row("forward", duration(st.forward))
        row("backward", duration(st.backward))
        row("sync batch norm + losses", duration(st.syncCollectives))
        row("wait for slowest rank", duration(st.syncWait))
        row("gradient all-reduce", "\(duration(st.gradientAllreduce)) (last bucket \(duration(st.lastBucket))); exposed with overlap \(duration(st.exposedOverlapped))")
        if st.queueWait > 0 { row("batch norm behind buckets", duration(st.queueWait) + " (backward's rounds queued behind the buckets on the link)") }
        row("Adam", duration(st.adam))
        row("step", "\(duration(st.overlapped)) with overlap, \(duration(st.sequential)) without")
        row(e.validation == .shared ? "validation (shared)" : "validation (rank 0)", duration(e.validationSeconds) + " per epoch")
        row("epoch", "\(duration(e.epochOverlapped)) with overlap, \(duration(e.epochSequential)) without")
        row("cross-validation", "\(duration(e.crossValidationOverlapped)) with overlap, \(duration(e.crossValidationSequential)) without (\(s.folds) folds × \(s.modelsPerFold) models × \(s.epochs) epochs)")
        row("speed-up over 1 rank", String(format: "%.2f× (%.0f%% per rank)", e.speedup, 100 * e.efficiency))
        lines.append("")
        if let k = r.stopsHidingAt {
            lines.append("communication stops hiding behind backward at R = \(k): from there more than the last bucket is exposed")
        } else {
            lines.append("communication hides behind backward (all but the last bucket) at every R up to \(maxRanks)")
        }
        if let sweep = r.sweep {
            lines.append("")
            func cell(_ text: String, _ width: Int) -> String { String(repeating: " ", count: max(0, width - text.count)) + text }
            lines.append("     R  share  step (overlap)  step (no overlap)  exposed comm       epoch  cross-validation  speed-up")
            for x in sweep {
                lines.append(cell("\(x.step.ranks)", 6) + cell("\(x.step.share)", 7) + cell(duration(x.step.overlapped), 16)
                             + cell(duration(x.step.sequential), 19) + cell(duration(x.step.exposedOverlapped), 14)
                             + cell(duration(x.epochOverlapped), 12) + cell(duration(x.crossValidationOverlapped), 18)
                             + cell(String(format: "%.1f×", x.speedup), 10))
            }
        }
        return lines.joined(separator: "\n")
    }
}

extension ValidationPlacement: ExpressibleByArgument {}

/// A measured step for calibration: `SECONDS` or `SECONDS@CASES` (the step's global batch).
struct MeasuredStep: ExpressibleByArgument, CustomStringConvertible {
    var seconds: Double
    var cases: Int?

    init?(argument: String) {
        let parts = argument.split(separator: "@", omittingEmptySubsequences: false)
        guard (1...2).contains(parts.count), let s = Double(parts[0]), s > 0, s.isFinite else { return nil }
        seconds = s
        if parts.count == 2 {
            guard let n = Int(parts[1]), n >= 1 else { return nil }
            cases = n
        }
    }

    var description: String { cases.map { "\(seconds) s @ \($0) cases" } ?? "\(seconds) s" }
    static var defaultValueDescription: String { "SECONDS[@CASES]" }
}
