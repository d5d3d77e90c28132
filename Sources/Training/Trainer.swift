import CTData
import Distributed
import Foundation
import HDF5
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

/// The data-parallel trainer (DESIGN.md §3, §4, §6).
///
/// Every rank holds a replica; rank 0's initial parameters and buffers are broadcast and every
/// rank checks it holds the same model. Each step, every rank computes the same global batch from
/// (seed, epoch, step), takes its share, runs forward and backward with synchronised batch norm
/// and global loss normalisers, sums the gradients with the ring all-reduce, and applies the same
/// Adam step — so R ranks compute the step one rank would. Rank 0 validates after each epoch and
/// writes the checkpoints; the other ranks wait at a barrier bounded by the timeout.
public final class Trainer {
    public let request: TrainRequest
    let config: TrainConfig
    let collectives: Collectives
    let log: RunLog
    let cohort: Cohort
    let validationCohort: Cohort?
    let trainIndices: [Int]
    let validationIndices: [Int]
    let sampler: GlobalBatchSampler
    public let model: ResNet3D
    let optimizer: Adam
    let objective: Objective
    let buckets: GradientBuckets
    /// The communication thread that reduces buckets during backward (several ranks, overlap on,
    /// MPI_THREAD_MULTIPLE available); nil reduces after backward.
    let overlapped: OverlappedReduction?
    let schedule: StepLRSchedule
    var state = TrainingState()
    /// Time this step spent in the synchronised batch norms' global sums.
    let batchNormSync = Accumulator()
    /// Test hook, `DSAN_FAULT=KIND:RANK:STEP`: at global step STEP, rank RANK makes its loss NaN
    /// (`nan-loss`), exits at once without a word (`exit`), or stops answering (`hang`).
    let fault: (kind: String, rank: Int, step: Int)?

    var rank: Int { collectives.rank }

    public init(request: TrainRequest, collectives: Collectives) throws {
        self.request = request
        config = request.config
        self.collectives = collectives
        log = RunLog(rank: collectives.rank, ranks: collectives.size)

        let cohort = try Cohort(directory: request.data)
        self.cohort = cohort
        let config = request.config
        if config.fold >= 0 {
            if request.validation != nil {
                throw ConfigError(source: "--val", message: "give either --fold (validation is that fold) or --val DIR, not both")
            }
            let folds = try Folds(cases: cohort.cases, folds: config.folds, seed: config.seed)
            let split = folds.split(config.fold)
            trainIndices = split.train
            validationIndices = split.validation
            validationCohort = cohort
        } else {
            trainIndices = Array(cohort.cases.indices)
            if let v = request.validation {
                let vc = try Cohort(directory: v)
                validationCohort = vc
                validationIndices = Array(vc.cases.indices)
            } else {
                validationCohort = nil
                validationIndices = []
            }
        }
        let trainIndices = self.trainIndices
        if let bad = trainIndices.first(where: { !cohort.cases[$0].hasInfectionMask }) {
            let (reader, _) = cohort.shard(of: bad)
            throw DataError(file: reader.path, caseID: cohort.cases[bad].caseID,
                            "has no infection mask (infection_ratio is NaN); such a case can be predicted on but not trained on — move it to a predict-only directory")
        }
        if let vc = validationCohort, vc.size != cohort.size {
            throw DataError(file: vc.directory, "volumes are \(vc.size) but the training data has \(cohort.size); validation must share the size")
        }
        switch config.sampling {
        case "size-balanced":
            sampler = SizeBalancedSampler(indices: trainIndices, cases: trainIndices.map { cohort.cases[$0] },
                                          batch: config.batch, seed: config.seed)
        default:
            sampler = UniformSampler(indices: trainIndices, batch: config.batch, seed: config.seed, shuffle: config.shuffle)
        }

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
        state.seed = config.seed
        state.ranks = collectives.size

        if let spec = ProcessInfo.processInfo.environment["DSAN_FAULT"] {
            let parts = spec.split(separator: ":").map(String.init)
            guard parts.count == 3, ["nan-loss", "exit", "hang"].contains(parts[0]),
                  let r = Int(parts[1]), let s = Int(parts[2]) else {
                throw ConfigError(source: "DSAN_FAULT", message: "expected nan-loss|exit|hang:RANK:STEP, got `\(spec)`")
            }
            fault = (parts[0], r, s)
        } else {
            fault = nil
        }
    }

    var lastPath: String { (request.out as NSString).appendingPathComponent("last.h5") }
    var bestPath: String { (request.out as NSString).appendingPathComponent("best.h5") }
    func outPath(_ name: String) -> String { (request.out as NSString).appendingPathComponent(name) }

    /// Trains; returns the final state.
    @discardableResult
    public func run() throws -> TrainingState {
        try FileManager.default.createDirectory(atPath: request.out, withIntermediateDirectories: true)
        try prepareModel()
        if rank == 0 { try writeRunFiles() }
        let steps = sampler.stepsPerEpoch
        let prefetchDepth = config.prefetchDepth(ranks: collectives.size, voxels: cohort.size.reduce(1, *))
        if collectives.size > 1 {
            log.info(overlapped != nil ? "gradient buckets (\(buckets.buckets.count) of ~\(config.bucketMB) MB) are reduced on a communication thread during backward"
                     : "gradient buckets (\(buckets.buckets.count)) are reduced after backward (overlap off or MPI_THREAD_MULTIPLE unavailable)")
        }
        log.info("training \(trainIndices.count) cases (\(cohort.size.map(String.init).joined(separator: "×"))) on \(collectives.size) rank(s), global batch \(config.batch), \(steps) steps per epoch, \(config.epochs) epochs, sampling \(config.sampling), attention \(config.attention ? "on" : "off")"
                 + (validationIndices.isEmpty ? ", no validation set" : ", validating on \(validationIndices.count) cases")
                 + "; \(prefetchDepth) case(s) decoded ahead" + (config.prefetch == 0 ? " (prefetch: auto)" : ""))
        if microBatches > 1 {
            log.info("micro-batches: each rank runs its share in \(microBatches) micro-batches of at most \(config.microBatch) cases with gradient accumulation; batch-norm statistics are those of one micro-batch across ranks, a deviation from exact equivalence with one rank on the whole global batch")
        }
        if let sb = sampler as? SizeBalancedSampler {
            let w = sb.weights.map { String(format: "%.3f", $0) }, p = sb.probabilities.map { String(format: "%.3f", $0) }
            log.info("size-balanced groups [COVID small, COVID large, CAP small, CAP large]: cases \(sb.groups.map(\.count)), weights \(w), probabilities \(p)")
        }
        if collectives.size > 1 {
            model.setBatchNormAllReduce { [collectives, log, batchNormSync] buffer in
                let start = Date()
                defer { batchNormSync.seconds += Date().timeIntervalSince(start) }
                do { try collectives.sum(buffer) } catch {
                    log.error("synchronised batch norm failed: \(error)")
                    MPI.abort(code: 3)
                }
            }
        }
        let input = Tensor(zeros: [0]), masks = Tensor(zeros: [0])
        var inputs = (input, masks)
        let limit = config.steps
        while state.epoch < config.epochs {
            let epoch = state.epoch
            optimizer.learningRate = schedule.learningRate(epoch: epoch)
            let prefetcher = Prefetcher(cohort: cohort, depth: prefetchDepth)
            defer { prefetcher.stop() }
            let shares = (state.step..<steps).map { s -> [Int] in
                let batch = sampler.globalBatch(epoch: epoch, step: s)
                return Array(batch[rankShare(count: batch.count, rank: rank, ranks: collectives.size)])
            }
            prefetcher.schedule(shares.flatMap { $0 })
            let start = Date()
            var lossSum = 0.0, lossSteps = 0, casesSeen = 0
            for (k, share) in shares.enumerated() {
                let step = state.step
                let stepStart = Date()
                batchNormSync.seconds = 0
                let cases = try share.map { _ in try prefetcher.next() }
                let dataWait = Date().timeIntervalSince(stepStart)
                inputs = assemble(cases, reuse: inputs)
                let labels = cases.map { Float($0.info.label.rawValue) }
                var record = microBatches > 1
                    ? try microBatchedStep(input: inputs.0, masks: inputs.1, labels: labels, epoch: epoch, step: step,
                                           globalBatch: sampler.globalBatch(epoch: epoch, step: step).count)
                    : try trainStep(input: inputs.0, masks: inputs.1, labels: labels, epoch: epoch, step: step)
                record.shares = try collectives.gather(cases.map(\.index), maxCount: (config.batch + collectives.size - 1) / collectives.size)
                record.seconds = Date().timeIntervalSince(stepStart)
                record.batchNormSyncSeconds = batchNormSync.seconds
                record.batchNormSyncSecondsByRank = try collectives.gather(batchNormSync.seconds,
                                                                           what: "the ranks' batch-norm sync waits")
                record.dataWaitSeconds = dataWait
                lossSum += record.loss
                lossSteps += 1
                casesSeen += record.cases   // the global batch
                state.step += 1
                state.globalStep += 1
                if rank == 0 { try appendLine(record, to: outPath("steps.jsonl")) }
                let elapsed = Date().timeIntervalSince(start)
                let rate = Double(casesSeen) / max(elapsed, 1e-9)
                let remaining = Double(shares.count - k - 1) * elapsed / Double(k + 1)
                log.progress(String(format: "epoch %d/%d step %d/%d loss %.4f (cls %.4f att %.4f) %.2f cases/s ETA %@",
                                    epoch + 1, config.epochs, step + 1, steps, record.loss, record.classification,
                                    record.attention, rate, Self.duration(remaining) as NSString),
                             force: k == shares.count - 1)
                if limit > 0 && state.globalStep >= limit {
                    try saveCheckpoint(best: false)
                    log.info("stopped after \(state.globalStep) steps (--steps \(limit)); checkpoint \(lastPath)")
                    return state
                }
                if config.checkpointEvery > 0 && state.globalStep % config.checkpointEvery == 0 && state.step < steps {
                    try saveCheckpoint(best: false)
                }
            }
            let seconds = Date().timeIntervalSince(start)
            state.epoch += 1
            state.step = 0
            let metrics = try validate(epoch: epoch)
            var improved = false
            if let auc = metrics?.auc, auc > (state.bestAUC ?? -1) {
                state.bestAUC = auc
                state.bestEpoch = epoch
                improved = true
            }
            if rank == 0 {
                let record = EpochRecord(epoch: epoch, meanLoss: lossSum / Double(max(1, lossSteps)),
                                         lr: optimizer.learningRate, seconds: seconds,
                                         samplesPerSecond: Double(casesSeen) / max(seconds, 1e-9),
                                         validation: metrics)
                try appendLine(record, to: outPath("metrics.jsonl"))
                var line = String(format: "epoch %d done in %@: mean loss %.4f", epoch + 1, Self.duration(seconds) as NSString, record.meanLoss)
                if let m = metrics {
                    line += String(format: ", validation AUC %@ accuracy %@", Self.format(m.auc), Self.format(m.accuracy))
                    if improved { line += " (best so far)" }
                }
                log.info(line)
            }
            try saveCheckpoint(best: improved || (validationIndices.isEmpty && rank == 0))
        }
        log.info("finished \(config.epochs) epochs; last checkpoint \(lastPath)" + (state.bestAUC != nil ? ", best \(bestPath) (epoch \(state.bestEpoch! + 1), AUC \(Self.format(state.bestAUC)))" : ""))
        return state
    }

    /// Initial weights: --resume loads the last checkpoint, else rank 0's are broadcast; then
    /// every rank verifies it holds the same parameters and buffers.
    func prepareModel() throws {
        if request.resume {
            guard FileManager.default.fileExists(atPath: lastPath) else {
                throw ConfigError(source: "--resume", message: "\(lastPath) does not exist; nothing to resume (start without --resume)")
            }
            guard let json = try Checkpoint.load(into: model, optimizer: optimizer, from: lastPath),
                  let saved = try? JSONDecoder().decode(TrainingState.self, from: Data(json.utf8)) else {
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
        if let fault, fault.rank == rank, fault.step == state.globalStep {
            switch fault.kind {
            case "exit": exit(0)
            case "hang": while true { sleep(60) }
            default: if logits.count > 0 { logits.data[0] = .nan }
            }
        }
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
        if state.globalStep == 0, let path = request.dumpGradients, rank == 0 { try dumpGradients(to: path) }
        optimizer.step()
        clock.lap(\.optimizerSeconds)
        var record = StepRecord(epoch: epoch, step: step, globalStep: state.globalStep, loss: losses.total,
                                classification: losses.classification, attention: losses.attention,
                                lr: optimizer.learningRate, cases: losses.globalBatch, covid: losses.covidCases, shares: [])
        clock.copy(into: &record)
        return record
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
        let useAttention = config.attention && objective.lambda > 0
        var global = [0, Double(globalBatch), 0, 0, 0]
        if useAttention {
            let saved = model.batchNorms.map { ($0.runningMean.copy(), $0.runningVar.copy(), $0.numBatchesTracked) }
            var local = [Double](repeating: 0, count: 5)
            for r in ranges {
                model.forward(slice(input, r))
                let l = try objective.localSums(model: model, labels: Array(labels[r]), masks: slice(masks, r))
                for i in 0..<5 { local[i] += l[i] }
            }
            for (bn, s) in zip(model.batchNorms, saved) {
                bn.runningMean.assign(s.0); bn.runningVar.assign(s.1); bn.numBatchesTracked = s.2
            }
            global = try sum(local)
        }
        var reported = [Double](repeating: 0, count: 5)
        for (k, r) in ranges.enumerated() {
            let mk = slice(masks, r)
            model.forward(slice(input, r))
            let l = try objective.localSums(model: model, labels: Array(labels[r]), masks: mk)
            for i in 0..<5 { reported[i] += l[i] }
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
        if state.globalStep == 0, let path = request.dumpGradients, rank == 0 { try dumpGradients(to: path) }
        optimizer.step()
        clock.lap(\.optimizerSeconds)
        let totals = try sum(reported)
        let lc = totals[0] / totals[1]
        let lex = useAttention && totals[4] > 0 && totals[3] > 0 ? totals[2] / totals[3] : 0
        var record = StepRecord(epoch: epoch, step: step, globalStep: state.globalStep, loss: lc + objective.lambda * lex,
                                classification: lc, attention: lex, lr: optimizer.learningRate, cases: Int(totals[1]),
                                covid: Int(totals[4]), shares: [])
        clock.copy(into: &record)
        return record
    }

    /// Rank 0 evaluates the validation cases in eval mode (running statistics, no collectives);
    /// the other ranks wait at a barrier bounded by the timeout.
    func validate(epoch: Int) throws -> Metrics? {
        guard let vc = validationCohort, !validationIndices.isEmpty else { return nil }
        var metrics: Metrics?
        if rank == 0 {
            model.training = false
            defer { model.training = true }
            var rows: [String] = ["case_id,patient_id,label,infection_ratio,probability"]
            var labels: [Int] = [], scores: [Double] = []
            let prefetcher = Prefetcher(cohort: vc, depth: config.prefetch > 0 ? config.prefetch : 2)
            defer { prefetcher.stop() }
            prefetcher.schedule(validationIndices)
            var tensors = (Tensor(zeros: [0]), Tensor(zeros: [0]))
            for _ in validationIndices {
                let c = try prefetcher.next()
                tensors = assemble([c], reuse: tensors)
                let logit = Double(model.forward(tensors.0).data[0])
                let p = 1 / (1 + exp(-logit))
                labels.append(Int(c.info.label.rawValue))
                scores.append(p)
                let r = c.info.infectionRatio.isNaN ? "" : "\(c.info.infectionRatio)"
                rows.append("\(csvField(c.info.caseID)),\(csvField(c.info.patientID)),\(c.info.label.rawValue),\(r),\(p)")
            }
            metrics = Metrics(labels: labels, scores: scores)
            let text = rows.joined(separator: "\n") + "\n"
            try text.write(toFile: outPath("val_predictions_last.csv"), atomically: true, encoding: .utf8)
            if let auc = metrics?.auc, auc > (state.bestAUC ?? -1) {
                try text.write(toFile: outPath("val_predictions.csv"), atomically: true, encoding: .utf8)
            }
        }
        try collectives.barrier("waiting for rank 0's validation")
        // Every rank learns the AUC so that all agree on `bestAUC` in the saved state.
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
            try Checkpoint.save(model, optimizer: optimizer, trainingState: json, configuration: config.yaml, to: lastPath)
            if best {
                try Checkpoint.save(model, optimizer: nil, trainingState: json, configuration: config.yaml, to: bestPath)
            }
        }
        try collectives.barrier("waiting for rank 0 to write the checkpoint")
    }

    func writeRunFiles() throws {
        try config.yaml.write(toFile: outPath("config.yaml"), atomically: true, encoding: .utf8)
        if !request.resume {
            for name in ["steps.jsonl", "metrics.jsonl"] { try? FileManager.default.removeItem(atPath: outPath(name)) }
        }
    }

    /// The all-reduced gradients of the first step, one float32 dataset per `state_dict` name.
    func dumpGradients(to path: String) throws {
        let file = try File(creating: path)
        try file.setAttribute("ranks", Int64(collectives.size))
        try file.setAttribute("global_batch", Int64(config.batch))
        for p in model.registry.parameters {
            try file.createDataset(p.name, type: .float32, shape: p.gradient.shape).write(p.gradient.array)
        }
        log.info("wrote the first step's gradients to \(path)")
    }

    func appendLine<T: Encodable>(_ value: T, to path: String) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        var data = try encoder.encode(value)
        data.append(0x0A)
        if let handle = FileHandle(forWritingAtPath: path) {
            defer { try? handle.close() }
            try handle.seekToEnd()
            try handle.write(contentsOf: data)
        } else {
            try data.write(to: URL(fileURLWithPath: path))
        }
    }

    static func duration(_ s: Double) -> String {
        if !s.isFinite { return "?" }
        if s < 60 { return String(format: "%.0fs", s) }
        if s < 3600 { return String(format: "%dm%02ds", Int(s) / 60, Int(s) % 60) }
        return String(format: "%dh%02dm", Int(s) / 3600, (Int(s) % 3600) / 60)
    }

    static func format(_ v: Double?) -> String { v.map { String(format: "%.4f", $0) } ?? "n/a" }
}

/// A CSV field, quoted when it holds a comma, quote or line break.
func csvField(_ s: String) -> String {
    if s.contains(where: { $0 == "," || $0 == "\"" || $0 == "\n" || $0 == "\r" }) {
        return "\"" + s.replacingOccurrences(of: "\"", with: "\"\"") + "\""
    }
    return s
}
