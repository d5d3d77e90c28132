import CTData
import Distributed
import Evaluation
import Foundation
import MPI
import Model
import NN

/// What `dsan train` was asked to do, beyond the configuration.
public struct TrainRequest {
    public var data: String
    public var out: String
    public var config: TrainConfig
    /// Validation shards when not cross-validating (`--val`).
    public var validation: String?
    /// Start from this checkpoint's weights (`--init`).
    public var initFrom: String?
    /// Continue `out/last.h5` (`--resume`).
    public var resume = false
    /// Replace an earlier run in `out` (`--overwrite`); without it (and without `resume`) a
    /// directory holding a run is refused.
    public var overwrite = false
    /// Write the all-reduced gradients of the first step here (`--dump-gradients`).
    public var dumpGradients: String?

    public init(data: String, out: String, config: TrainConfig) {
        self.data = data
        self.out = out
        self.config = config
    }
}

/// Where a run stands; saved in every checkpoint so `--resume` continues exactly.
public struct TrainingState: Codable, Equatable {
    /// The epoch and the step within it that run next.
    public var epoch = 0
    public var step = 0
    /// Optimizer steps taken so far.
    public var globalStep = 0
    public var bestAUC: Double?
    public var bestEpoch: Int?
    public var seed: UInt64 = 0
    public var ranks = 1
}

/// The data-parallel trainer (DESIGN.md §3, §4, §6): the step loop.
///
/// Every rank holds a replica; rank 0's initial parameters and buffers are broadcast and every
/// rank checks it holds the same model. Each step, every rank computes the same global batch from
/// (seed, epoch, step), takes its share, runs forward and backward with synchronised batch norm
/// (`SyncBatchNorm`) and global loss normalisers (`LossSums`), sums the gradients with the ring
/// all-reduce, and applies the same Adam step — so R ranks compute the step one rank would.
/// Rank 0 validates after each epoch and writes the run's files (`RunDirectory`); the other ranks
/// wait at a barrier bounded by the timeout.
public final class Trainer {
    public let request: TrainRequest
    let config: TrainConfig
    let collectives: Collectives
    let log: RunLog
    let split: TrainingSplit
    let sampler: GlobalBatchSampler
    public let model: ResNet3D
    let optimizer: Adam
    let objective: Objective
    let buckets: GradientBuckets
    /// The communication thread that reduces buckets during backward (several ranks, overlap on,
    /// MPI_THREAD_MULTIPLE available); nil reduces after backward.
    let overlapped: OverlappedReduction?
    let schedule: StepLRSchedule
    let syncBatchNorm: SyncBatchNorm
    let directory: RunDirectory
    var state = TrainingState()
    /// How many validation cases each rank evaluated in the last validation (rank order).
    var validationCasesByRank: [Int] = []
    /// Test seam: told after every forward pass and once the gradients are reduced (see
    /// `StepObserver`); nil in production.
    public var stepObserver: StepObserver?

    var rank: Int { collectives.rank }
    var cohort: Cohort { split.cohort }

    public init(request: TrainRequest, collectives: Collectives) throws {
        self.request = request
        let config = request.config
        self.config = config
        self.collectives = collectives
        log = RunLog(rank: collectives.rank, ranks: collectives.size)
        directory = RunDirectory(request.out)
        split = try TrainingSplit(request: request)
        sampler = try config.sampling.sampler(indices: split.trainIndices, cohort: split.cohort, config: config)

        model = ResNet3D(config: ModelConfig(width: config.width, attention: config.attention), seed: config.seed)
        if let initFrom = request.initFrom { try Checkpoint.load(into: model, from: initFrom) }
        optimizer = Adam(parameters: model.registry.parameters.map { ($0.value, $0.gradient) },
                         learningRate: config.lr, weightDecay: config.weightDecay)
        objective = Objective(lambda: config.attention ? config.attentionWeight : 0)
        // Backward completes gradients from fc back to conv1: buckets in that order.
        buckets = GradientBuckets(gradients: model.registry.parameters.reversed().map(\.gradient),
                                  bucketBytes: Int(config.bucketMB * 1_048_576))
        schedule = StepLRSchedule(baseLearningRate: config.lr, stepSize: config.lrStep, gamma: config.lrGamma)
        if collectives.size > 1 && config.overlap && collectives.threadLevel == .multiple {
            // Its own communicator: ring messages never meet the main thread's reductions.
            let ring = RingAllreduce(comm: try collectives.comm.duplicate(), timeout: config.timeoutSeconds)
            let reduction = OverlappedReduction(buckets: buckets, ring: ring)
            model.gradientsReady = { reduction.ready($0) }
            overlapped = reduction
        } else {
            overlapped = nil
        }
        syncBatchNorm = SyncBatchNorm(collectives: collectives, log: log)
        state.seed = config.seed
        state.ranks = collectives.size
    }

    /// Trains; returns the final state.
    @discardableResult
    public func run() throws -> TrainingState {
        try directory.create()
        try checkSameJobOnEveryRank()
        try prepareModel()
        if rank == 0 && !request.resume { try directory.claimForNewRun(overwrite: request.overwrite) }
        if rank == 0 { try directory.writeStart(config: config, resuming: request.resume) }
        let prefetchDepth = config.prefetchDepth(ranks: collectives.size, voxels: cohort.size.reduce(1, *))
        logStart(steps: sampler.stepsPerEpoch, prefetchDepth: prefetchDepth)
        if collectives.size > 1 { syncBatchNorm.attach(to: model) }
        var inputs = (Tensor(zeros: [0]), Tensor(zeros: [0]))
        while state.epoch < config.epochs {
            let epoch = state.epoch
            guard let totals = try trainEpoch(epoch, prefetchDepth: prefetchDepth, inputs: &inputs) else { return state }
            state.epoch += 1
            state.step = 0
            try finishEpoch(epoch, totals)
        }
        log.info("finished \(config.epochs) epochs; last checkpoint \(directory.lastCheckpoint)" + (state.bestAUC != nil ? ", best \(directory.bestCheckpoint) (epoch \(state.bestEpoch! + 1), AUC \(Evaluation.format(state.bestAUC)))" : ""))
        return state
    }

    // MARK: Start-up

    /// Every rank must run the same resolved configuration on the same data: each rank's
    /// configuration lines, flags and case list are hashed and gathered, and a rank that differs
    /// from rank 0 stops the job at start, naming what differs (a mixed software install or a
    /// node that sees other files would otherwise train a wrong model without a word).
    func checkSameJobOnEveryRank() throws {
        guard collectives.size > 1 else { return }
        var items = config.yaml.split(separator: "\n").map(String.init)
        items.append("flags: resume \(request.resume), init \(request.initFrom ?? "-"), overwrite \(request.overwrite)")
        items.append("training data: \(split.cohort.cases.count) cases in \(split.cohort.directory), ids " + split.cohort.cases.map(\.caseID).joined(separator: ","))
        items.append("validation data: " + (split.validationCohort.map { "\($0.cases.count) cases in \($0.directory), ids " + $0.cases.map(\.caseID).joined(separator: ",") } ?? "none"))
        // FNV-1a, 52 bits: exact in a Double.
        let hashes = items.map { item -> Double in
            var h: UInt64 = 0xcbf29ce484222325
            for b in item.utf8 { h = (h ^ UInt64(b)) &* 0x100000001b3 }
            return Double(h & ((1 << 52) - 1))
        }
        let all = try collectives.gather(hashes, maxCount: 256, what: "every rank's configuration and data")
        var problems: [String] = []
        for (r, theirs) in all.enumerated() where r > 0 && theirs != all[0] {
            let differing = zip(items.indices, zip(all[0], theirs)).filter { $0.1.0 != $0.1.1 }.map { items[$0.0].split(separator: ":").first.map(String.init) ?? "?" }
            problems.append("rank \(r) differs from rank 0 in " + (differing.isEmpty ? "the number of settings" : differing.joined(separator: ", ")))
        }
        if !problems.isEmpty {
            throw ConfigError(source: "mpirun", message: "the ranks do not run the same job: " + problems.joined(separator: "; ")
                              + " (this rank has: " + items.filter { !$0.hasPrefix("training data") && !$0.hasPrefix("validation data") }.joined(separator: "; ")
                              + "). Give every rank the same command, configuration and data")
        }
    }

    /// Initial weights: --resume loads the last checkpoint, else rank 0's are broadcast; then
    /// every rank verifies it holds the same parameters and buffers.
    func prepareModel() throws {
        let lastPath = directory.lastCheckpoint
        if request.resume {
            guard FileManager.default.fileExists(atPath: lastPath) else {
                throw ConfigError(source: "--resume", message: "\(lastPath) does not exist; nothing to resume (start without --resume)")
            }
            guard let json = try Checkpoint.load(into: model, optimizer: optimizer, from: lastPath),
                  let saved = try? JSONDecoder().decode(TrainingState.self, from: Foundation.Data(json.utf8)) else {
                throw ConfigError(source: lastPath, message: "holds no training state; it is not a dsan training checkpoint")
            }
            if saved.seed != config.seed {
                throw ConfigError(source: "--resume", message: "\(lastPath) was trained with seed \(saved.seed), this run has seed \(config.seed); resume with the same configuration")
            }
            state = saved
            state.ranks = collectives.size
            log.info("resuming \(lastPath) at epoch \(state.epoch + 1), step \(state.step + 1) (\(state.globalStep) steps done)")
        }
        let tensors = model.registry.parameters.map(\.value) + model.registry.buffers.map(\.value)
        try collectives.broadcast(tensors, root: 0)
        let tracked = try collectives.broadcast(model.batchNorms.map { Double($0.numBatchesTracked) }, root: 0)
        for (bn, n) in zip(model.batchNorms, tracked) { bn.numBatchesTracked = Int(n) }
        try collectives.verifyIdentical(tensors, what: "model (parameters and buffers)")
        if !request.resume { try collectives.verifyIdentical(optimizer.firstMoments, what: "optimizer state") }
    }

    /// What the run is about to do, on rank 0's log.
    func logStart(steps: Int, prefetchDepth: Int) {
        if collectives.size > 1 {
            log.info(overlapped != nil ? "gradient buckets (\(buckets.buckets.count) of ~\(config.bucketMB) MB) are reduced on a communication thread during backward"
                     : "gradient buckets (\(buckets.buckets.count)) are reduced after backward (overlap off or MPI_THREAD_MULTIPLE unavailable)")
        }
        log.info("training \(split.trainIndices.count) cases (\(cohort.size.map(String.init).joined(separator: "×"))) on \(collectives.size) rank(s), global batch \(config.batch), \(steps) steps per epoch, \(config.epochs) epochs, sampling \(config.sampling), attention \(config.attention ? "on" : "off")"
                 + (split.validationIndices.isEmpty ? ", no validation set" : ", validating on \(split.validationIndices.count) cases")
                 + "; \(prefetchDepth) case(s) decoded ahead" + (config.prefetch == 0 ? " (prefetch: auto)" : ""))
        if microBatches > 1 {
            log.info("micro-batches: each rank runs its share in \(microBatches) micro-batches of at most \(config.microBatch) cases with gradient accumulation; batch-norm statistics are those of one micro-batch across ranks, a deviation from exact equivalence with one rank on the whole global batch")
        }
        if let sb = sampler as? SizeBalancedSampler {
            let w = sb.weights.map { String(format: "%.3f", $0) }, p = sb.probabilities.map { String(format: "%.3f", $0) }
            log.info("size-balanced groups [COVID small, COVID large, CAP small, CAP large]: cases \(sb.groups.map(\.count)), weights \(w), probabilities \(p)")
        }
    }

    // MARK: Steps

    /// What an epoch's steps add up to, for its record.
    struct EpochTotals {
        var lossSum = 0.0, steps = 0
        /// Cases of the global batches trained on.
        var cases = 0
        var seconds = 0.0
    }

    /// Runs the steps of `epoch` from `state.step` on, advancing the state and writing each step's
    /// record; nil when `--steps` stopped the run (its checkpoint written).
    func trainEpoch(_ epoch: Int, prefetchDepth: Int, inputs: inout (Tensor, Tensor)) throws -> EpochTotals? {
        let steps = sampler.stepsPerEpoch
        optimizer.learningRate = schedule.learningRate(epoch: epoch)
        let prefetcher = Prefetcher(cohort: cohort, depth: prefetchDepth)
        defer { prefetcher.stop() }
        let shares = (state.step..<steps).map { s -> [Int] in
            let batch = sampler.globalBatch(epoch: epoch, step: s)
            return Array(batch[rankShare(count: batch.count, rank: rank, ranks: collectives.size)])
        }
        prefetcher.schedule(shares.flatMap { $0 })
        let start = Date()
        var totals = EpochTotals()
        for (k, share) in shares.enumerated() {
            let step = state.step
            let record = try runStep(share: share, from: prefetcher, epoch: epoch, step: step, inputs: &inputs)
            totals.lossSum += record.loss
            totals.steps += 1
            totals.cases += record.cases   // the global batch
            state.step += 1
            state.globalStep += 1
            if rank == 0 { try directory.append(record) }
            let elapsed = Date().timeIntervalSince(start)
            let rate = Double(totals.cases) / max(elapsed, 1e-9)
            let remaining = Double(shares.count - k - 1) * elapsed / Double(k + 1)
            log.progress(String(format: "epoch %d/%d step %d/%d loss %.4f (cls %.4f att %.4f) %.2f cases/s ETA %@",
                                epoch + 1, config.epochs, step + 1, steps, record.loss, record.classification,
                                record.attention, rate, DurationText.short(remaining, fractionDigits: 0) as NSString),
                         force: k == shares.count - 1)
            if config.steps > 0 && state.globalStep >= config.steps {
                try saveCheckpoint(best: false)
                log.info("stopped after \(state.globalStep) steps (--steps \(config.steps)); checkpoint \(directory.lastCheckpoint)")
                return nil
            }
            if config.checkpointEvery > 0 && state.globalStep % config.checkpointEvery == 0 && state.step < steps {
                try saveCheckpoint(best: false)
            }
        }
        totals.seconds = Date().timeIntervalSince(start)
        return totals
    }

    /// One optimizer step on this rank's `share` of the global batch, and its record with every
    /// rank's share and batch-norm wait.
    func runStep(share: [Int], from prefetcher: Prefetcher, epoch: Int, step: Int,
                 inputs: inout (Tensor, Tensor)) throws -> StepRecord {
        let stepStart = Date()
        syncBatchNorm.resetWait()
        let cases = try share.map { _ in try prefetcher.next() }
        let dataWait = Date().timeIntervalSince(stepStart)
        inputs = assemble(cases, reuse: inputs)
        let labels = cases.map { Float($0.info.label.rawValue) }
        var record: StepRecord
        do {
            record = microBatches > 1
                ? try microBatchedStep(input: inputs.0, masks: inputs.1, labels: labels, epoch: epoch, step: step,
                                       globalBatch: sampler.globalBatch(epoch: epoch, step: step).count)
                : try trainStep(input: inputs.0, masks: inputs.1, labels: labels, epoch: epoch, step: step)
        } catch let error where error is NonFiniteLossError || error is NonFiniteGradientError {
            throw NonFiniteStepError(cause: "\(error)", epoch: epoch, step: step, globalStep: state.globalStep,
                                     rankCases: cases.map(\.info.caseID),
                                     batchCases: sampler.globalBatch(epoch: epoch, step: step).map { split.cohort.cases[$0].caseID })
        }
        record.shares = try collectives.gather(cases.map(\.index), maxCount: (config.batch + collectives.size - 1) / collectives.size)
        record.seconds = Date().timeIntervalSince(stepStart)
        record.batchNormSyncSeconds = syncBatchNorm.waitSeconds
        record.batchNormSyncSecondsByRank = try collectives.gather(syncBatchNorm.waitSeconds,
                                                                   what: "the ranks' batch-norm sync waits")
        record.dataWaitSeconds = dataWait
        return record
    }

    /// Packs this rank's cases into `[n, 1, D, H, W]` input and infection-mask tensors, reusing
    /// the previous tensors when n is unchanged.
    func assemble(_ cases: [LoadedCase], reuse: (Tensor, Tensor)) -> (Tensor, Tensor) {
        let size = cohort.size
        let shape = [cases.count, 1] + size
        let (input, masks) = reuse.0.shape == shape ? reuse : (Tensor(zeros: shape), Tensor(zeros: shape))
        let v = size.reduce(1, *)
        for (i, c) in cases.enumerated() {
            c.input.withUnsafeBufferPointer { (input.data + i * v).update(from: $0.baseAddress!, count: v) }
            c.infection.withUnsafeBufferPointer { (masks.data + i * v).update(from: $0.baseAddress!, count: v) }
        }
        return (input, masks)
    }

    /// Forward, losses over the global batch, backward, gradient all-reduce, Adam.
    func trainStep(input: Tensor, masks: Tensor, labels: [Float], epoch: Int, step: Int) throws -> StepRecord {
        var clock = StepClock()
        model.training = true
        model.zeroGradients()
        let logits = model.forward(input)
        stepObserver?.forwardFinished(globalStep: state.globalStep, rank: rank, logits: logits)
        let losses = try objective.evaluate(model: model, labels: labels, masks: masks) { [collectives] in
            try collectives.sum($0)
        }
        clock.lap(\.forwardSeconds)
        if let overlapped {
            overlapped.begin()
            objective.backward(model: model)
            clock.lap(\.backwardSeconds)
            try overlapped.finish()
            clock.lap(\.exposedAllreduceSeconds)
            clock.times.allreduceSeconds = overlapped.reduceSeconds
        } else {
            objective.backward(model: model)
            clock.lap(\.backwardSeconds)
            try buckets.allReduce(collectives.ring)
            clock.lap(\.exposedAllreduceSeconds)
            clock.times.allreduceSeconds = clock.times.exposedAllreduceSeconds
        }
        try applyGradients(&clock)
        return record(epoch: epoch, step: step, losses: losses, clock: clock)
    }

    /// Micro-batches per step, the same on every rank (so collectives line up): the largest share
    /// divided by `micro_batch`; 1 when micro-batching is off or not needed.
    var microBatches: Int {
        let largestShare = (config.batch + collectives.size - 1) / collectives.size
        return config.microBatch > 0 ? max(1, (largestShare + config.microBatch - 1) / config.microBatch) : 1
    }

    /// A step in micro-batches (DESIGN.md §4): gradients accumulate over the micro-batches and the
    /// loss normalisers stay global. The attention loss is one ratio of sums over the whole global
    /// batch, and its gradient needs those sums before any backward, so with the attention loss
    /// on a first forward pass over the micro-batches only collects the sums (batch-norm running
    /// statistics restored afterwards); the second pass runs forward and backward per
    /// micro-batch. Ranks with fewer cases run empty micro-batches to join every collective.
    func microBatchedStep(input: Tensor, masks: Tensor, labels: [Float], epoch: Int, step: Int,
                          globalBatch: Int) throws -> StepRecord {
        var clock = StepClock()
        model.training = true
        model.zeroGradients()
        let m = config.microBatch, n = labels.count
        let ranges = (0..<microBatches).map { k in min(n, k * m)..<min(n, (k + 1) * m) }
        let perCase = cohort.size.reduce(1, *)
        func slice(_ t: Tensor, _ r: Range<Int>) -> Tensor {
            let part = Tensor(zeros: [r.count, 1] + cohort.size)
            if !r.isEmpty { part.data.update(from: t.data + r.lowerBound * perCase, count: r.count * perCase) }
            return part
        }
        let sum: SumAcrossRanks = { [collectives] in try collectives.sum($0) }
        let useAttention = objective.usesAttention(model)
        // Without the attention loss the gradients need only the global batch size.
        var global = LossSums()
        global.cases = Double(globalBatch)
        if useAttention {
            let saved = model.batchNorms.map { ($0.runningMean.copy(), $0.runningVar.copy(), $0.numBatchesTracked) }
            var local = LossSums()
            for r in ranges {
                model.forward(slice(input, r))
                local += try objective.localSums(model: model, labels: Array(labels[r]), masks: slice(masks, r))
            }
            for (bn, s) in zip(model.batchNorms, saved) {
                bn.runningMean.assign(s.0); bn.runningVar.assign(s.1); bn.numBatchesTracked = s.2
            }
            global = try local.summed(sum)
        }
        var reported = LossSums()
        for (k, r) in ranges.enumerated() {
            let mk = slice(masks, r)
            let logits = model.forward(slice(input, r))
            stepObserver?.forwardFinished(globalStep: state.globalStep, rank: rank, logits: logits)
            reported += try objective.localSums(model: model, labels: Array(labels[r]), masks: mk)
            _ = try objective.gradients(model: model, labels: Array(labels[r]), masks: mk, global: global)
            if k == ranges.count - 1, let overlapped {
                overlapped.begin()   // gradients are final only in the last micro-batch's backward
                objective.backward(model: model)
                try overlapped.finish()
            } else {
                objective.backward(model: model)
            }
        }
        clock.lap(\.backwardSeconds)   // forward and backward interleave: both count as backward
        if overlapped == nil { try buckets.allReduce(collectives.ring) }
        clock.lap(\.exposedAllreduceSeconds)
        clock.times.allreduceSeconds = overlapped?.reduceSeconds ?? clock.times.exposedAllreduceSeconds
        try applyGradients(&clock)
        let losses = try reported.summed(sum).losses(lambda: objective.lambda, attention: useAttention)
        return record(epoch: epoch, step: step, losses: losses, clock: clock)
    }

    /// The tail of every step, once the gradients are all-reduced: the first step's gradient dump
    /// (`--dump-gradients`, rank 0) and the Adam step.
    func applyGradients(_ clock: inout StepClock) throws {
        if state.globalStep == 0, let path = request.dumpGradients, rank == 0 {
            try GradientDump.write(model, ranks: collectives.size, globalBatch: config.batch, to: path)
            log.info("wrote the first step's gradients to \(path)")
        }
        stepObserver?.gradientsReduced(globalStep: state.globalStep, rank: rank, gradients: model.registry.parameters.map(\.gradient))
        if let bad = firstNonFiniteGradient() { throw NonFiniteGradientError(tensor: bad.name, index: bad.index, value: bad.value) }
        optimizer.step()
        clock.lap(\.optimizerSeconds)
    }

    /// The first all-reduced gradient entry that is NaN or infinite, if any (`Adam`'s parallel
    /// scan; the optimizer's parameters are the registry's, in order). The sum over all ranks is
    /// the same on every rank, so every rank stops at the same step.
    func firstNonFiniteGradient() -> (name: String, index: Int, value: Float)? {
        guard let bad = optimizer.firstNonFiniteGradient() else { return nil }
        return (model.registry.parameters[bad.parameter].name, bad.index, bad.value)
    }

    /// The step's record for `steps.jsonl` (the shares and waits are filled in by the loop).
    func record(epoch: Int, step: Int, losses: StepLosses, clock: StepClock) -> StepRecord {
        var record = StepRecord(epoch: epoch, step: step, globalStep: state.globalStep, loss: losses.total,
                                classification: losses.classification, attention: losses.attention,
                                lr: optimizer.learningRate, cases: losses.globalBatch, covid: losses.covidCases, shares: [])
        clock.copy(into: &record)
        return record
    }

    // MARK: End of an epoch

    /// After an epoch's steps: validation, the best AUC so far, the epoch's record and log line,
    /// and the checkpoints.
    func finishEpoch(_ epoch: Int, _ totals: EpochTotals) throws {
        let validationStart = Date()
        let metrics = try validate(epoch: epoch)
        let validationSeconds = Date().timeIntervalSince(validationStart)
        var improved = false
        if let auc = metrics?.auc, auc > (state.bestAUC ?? -1) {
            state.bestAUC = auc
            state.bestEpoch = epoch
            improved = true
        }
        if rank == 0 {
            let record = EpochRecord(epoch: epoch, meanLoss: totals.lossSum / Double(max(1, totals.steps)),
                                     lr: optimizer.learningRate, seconds: totals.seconds,
                                     samplesPerSecond: Double(totals.cases) / max(totals.seconds, 1e-9),
                                     validation: metrics,
                                     validationSeconds: metrics == nil ? nil : validationSeconds,
                                     validationCasesByRank: metrics == nil ? nil : validationCasesByRank)
            try directory.append(record)
            var line = String(format: "epoch %d done in %@: mean loss %.4f", epoch + 1, DurationText.short(totals.seconds, fractionDigits: 0) as NSString, record.meanLoss)
            if let m = metrics {
                line += String(format: ", validation AUC %@ accuracy %@", Evaluation.format(m.auc), Evaluation.format(m.accuracy))
                if improved { line += " (best so far)" }
            }
            log.info(line)
        }
        try saveCheckpoint(best: improved || (split.validationIndices.isEmpty && rank == 0))
    }

    /// Validation after an epoch (DESIGN.md §4). The forward passes (eval mode: running
    /// statistics, no collectives) are split across the ranks in contiguous slices of the
    /// validation cases (`validation: shared`) or all run on rank 0 (`validation: rank0`); rank 0
    /// gathers the probabilities in case order, so they are the values one rank computes (a conv
    /// gives the same bits on any thread count), writes the predictions and computes the metrics.
    /// Every rank learns the AUC, so all agree on `bestAUC` in the saved state.
    func validate(epoch: Int) throws -> Metrics? {
        guard let vc = split.validationCohort, !split.validationIndices.isEmpty else { return nil }
        let indices = split.validationIndices
        let ranks = collectives.size, count = indices.count
        let mine: Range<Int> = config.validation == .shared
            ? (count * rank / ranks)..<(count * (rank + 1) / ranks)
            : (rank == 0 ? 0..<count : 0..<0)
        var local: [Double] = []
        if !mine.isEmpty {
            model.training = false
            defer { model.training = true }
            let prefetcher = Prefetcher(cohort: vc, depth: config.prefetch > 0 ? config.prefetch : 2)
            defer { prefetcher.stop() }
            prefetcher.schedule(Array(indices[mine]))
            var tensors = (Tensor(zeros: [0]), Tensor(zeros: [0]))
            for _ in mine {
                tensors = assemble([try prefetcher.next()], reuse: tensors)
                let logit = Double(model.forward(tensors.0).data[0])
                local.append(1 / (1 + exp(-logit)))
            }
        }
        let widest = config.validation == .shared ? (count + ranks - 1) / ranks : count
        let gathered = try collectives.gather(local, maxCount: widest, what: "the validation predictions")
        validationCasesByRank = gathered.map(\.count)
        var metrics: Metrics?
        if rank == 0 {
            let scores = gathered.flatMap { $0 }
            precondition(scores.count == count, "validation: gathered \(scores.count) predictions for \(count) cases")
            let predictions = zip(indices, scores).map { i, p -> Prediction in
                let info = vc.cases[i], ratio = info.infectionRatio
                // The ratio as its Float spelling reads (what `dsan predict` writes), not widened.
                return Prediction(caseID: info.caseID, patientID: info.patientID, label: info.label,
                                  infectionRatio: ratio.isNaN ? nil : Double("\(ratio)"), probability: p)
            }
            metrics = Metrics(labels: predictions.map { Int($0.label.rawValue) }, scores: scores)
            let best = metrics?.auc.map { $0 > (state.bestAUC ?? -1) } ?? false
            try directory.writeValidationPredictions(predictions, best: best)
        }
        let auc = try collectives.broadcast([metrics?.auc ?? .nan], root: 0)[0]
        if rank != 0 && !auc.isNaN {
            metrics = Metrics(labels: [], scores: [])
            metrics?.auc = auc
        }
        return metrics
    }

    /// Rank 0 writes `last.h5` (and `best.h5`); every rank waits for it.
    func saveCheckpoint(best: Bool) throws {
        if rank == 0 {
            let json = String(decoding: try JSONEncoder().encode(state), as: UTF8.self)
            try Checkpoint.save(model, optimizer: optimizer, trainingState: json, configuration: config.yaml, to: directory.lastCheckpoint)
            if best {
                try Checkpoint.save(model, optimizer: nil, trainingState: json, configuration: config.yaml, to: directory.bestCheckpoint)
            }
        }
        try collectives.barrier("waiting for rank 0 to write the checkpoint")
    }
}

/// An all-reduced gradient entry that is NaN or infinite: Adam would write it into every weight.
public struct NonFiniteGradientError: Error, CustomStringConvertible {
    public var tensor: String
    public var index: Int
    public var value: Float
    public var description: String { "the gradient of `\(tensor)` is not finite (entry \(index) is \(value))" }
}

/// A step that cannot go on (a non-finite loss or gradient), with where it happened: the step and
/// the cases of the global batch, this rank's first. Nothing of the step reached the weights.
public struct NonFiniteStepError: Error, CustomStringConvertible {
    public var cause: String
    public var epoch: Int
    public var step: Int
    public var globalStep: Int
    public var rankCases: [String]
    public var batchCases: [String]
    public var description: String {
        "epoch \(epoch + 1), step \(step + 1) (global step \(globalStep + 1)): \(cause); this rank's cases: "
            + (rankCases.isEmpty ? "none" : rankCases.joined(separator: ", "))
            + "; the step's cases: \(batchCases.joined(separator: ", ")). The weights are those of the last checkpoint; "
            + "check these cases (`dsan inspect`) or lower the learning rate, then continue with --resume"
    }
}
