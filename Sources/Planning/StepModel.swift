// The time of one data-parallel training step on R ranks (Docs/scaling.md, "The model").

/// One unit of the backward pass after which the trainer reports gradients final (ResNet3D's
/// `gradientsReady`): the fc layer, each BasicBlock, the stem. Listed in forward order.
///
/// `tensorElements` are the unit's parameter tensors in the order backward completes them (the
/// gradient buckets' order); `batchNormRounds` the channels of its batch norms grouped by the
/// round that synchronises them: each round makes two small all-reduces per step (forward
/// statistics: 1 + 2C doubles per batch norm; backward sums: 2C doubles per batch norm). A block
/// with a shortcut conv has one round holding its second batch norm and the shortcut's
/// (`BatchNorm3d.forward(together:)`); every other batch norm is a round of its own.
public struct GradientUnit: Codable, Equatable, Sendable {
    public var name: String
    public var tensorElements: [Int]
    /// FLOPs of the unit's forward pass for one case.
    public var forwardFLOPs: Double
    /// FLOPs of the unit's backward pass for one case (input and weight gradients).
    public var backwardFLOPs: Double
    public var batchNormRounds: [[Int]]

    public init(name: String, tensorElements: [Int], forwardFLOPs: Double, backwardFLOPs: Double, batchNormRounds: [[Int]]) {
        precondition(batchNormRounds.allSatisfy { !$0.isEmpty }, "GradientUnit \(name): an empty batch-norm round")
        self.name = name
        self.tensorElements = tensorElements
        self.forwardFLOPs = forwardFLOPs
        self.backwardFLOPs = backwardFLOPs
        self.batchNormRounds = batchNormRounds
    }

    /// A unit whose batch norms each synchronise in a round of their own.
    public init(name: String, tensorElements: [Int], forwardFLOPs: Double, backwardFLOPs: Double, batchNormChannels: [Int]) {
        self.init(name: name, tensorElements: tensorElements, forwardFLOPs: forwardFLOPs, backwardFLOPs: backwardFLOPs,
                  batchNormRounds: batchNormChannels.map { [$0] })
    }

    public var parameters: Int { tensorElements.reduce(0, +) }
}

/// What the step model needs to know about the network and the machine.
public struct StepModel: Codable, Equatable, Sendable {
    /// The network's units in forward order.
    public var units: [GradientUnit]
    /// Achieved FLOP/s of one rank's training compute (forward + backward), as the conv FLOP
    /// count divided by the measured time of everything (convs, batch norm, ReLU, pooling, loss),
    /// with the rank alone on its node.
    public var trainingFLOPS: Double
    /// Achieved FLOP/s of one rank's eval-mode forward (validation), alone on its node.
    public var inferenceFLOPS: Double
    /// Seconds of one Adam step over all parameters on one rank alone on its node (memory-bound,
    /// batch-independent).
    public var adamSeconds: Double
    /// Gradient bucket size in bytes (`bucket_mb` × 2²⁰).
    public var bucketBytes: Int
    public var network: NetworkModel
    /// The node's contention (measured by `dsan plan --save-profile`; none by default), the
    /// threads of a rank and how many ranks share a node: a rank computes `contention.slowdown`
    /// times slower when min(R, ranksPerNode) × threadsPerRank cores of its node are busy.
    public var contention: NodeContention
    public var threadsPerRank: Int
    public var ranksPerNode: Int
    /// Relative standard deviation of one rank's compute time per step (`NodeContention.spread`
    /// or calibrated from a 2-rank run): the ranks wait for the slowest at every synchronisation
    /// point, `SyncWait.seconds`.
    public var driftCV: Double

    public init(units: [GradientUnit], trainingFLOPS: Double, inferenceFLOPS: Double, adamSeconds: Double,
                bucketBytes: Int, network: NetworkModel, contention: NodeContention = .none, threadsPerRank: Int = 1,
                ranksPerNode: Int = 1, driftCV: Double = 0) {
        precondition(!units.isEmpty && trainingFLOPS > 0 && inferenceFLOPS > 0 && adamSeconds >= 0 && bucketBytes > 0
                     && threadsPerRank >= 1 && ranksPerNode >= 1 && driftCV >= 0,
                     "StepModel: bad parameters")
        self.units = units
        self.trainingFLOPS = trainingFLOPS
        self.inferenceFLOPS = inferenceFLOPS
        self.adamSeconds = adamSeconds
        self.bucketBytes = bucketBytes
        self.network = network
        self.contention = contention
        self.threadsPerRank = threadsPerRank
        self.ranksPerNode = ranksPerNode
        self.driftCV = driftCV
    }

    public var parameters: Int { units.reduce(0) { $0 + $1.parameters } }
    public var forwardFLOPs: Double { units.reduce(0) { $0 + $1.forwardFLOPs } }
    public var backwardFLOPs: Double { units.reduce(0) { $0 + $1.backwardFLOPs } }

    /// A gradient bucket: its size and the fraction of the backward pass done when its last
    /// gradient is final (its reduction can start then).
    public struct Bucket: Codable, Equatable, Sendable {
        public var bytes: Int
        public var readyFraction: Double

        public init(bytes: Int, readyFraction: Double) {
            self.bytes = bytes
            self.readyFraction = readyFraction
        }
    }

    /// The buckets as `GradientBuckets` forms them: tensors in backward order (units reversed,
    /// each unit's tensors in its listed order), a bucket closed as soon as it holds at least
    /// `bucketBytes`. A bucket is ready when the unit holding its last tensor has finished.
    public var buckets: [Bucket] { scheduledBuckets.map(\.bucket) }

    /// The buckets with the index, in backward order (units reversed), of the unit whose end
    /// makes each ready.
    var scheduledBuckets: [(bucket: Bucket, unit: Int)] {
        let total = backwardFLOPs
        var result: [(bucket: Bucket, unit: Int)] = [], bytes = 0, done = 0.0
        for (index, unit) in units.reversed().enumerated() {
            done += unit.backwardFLOPs
            let fraction = total > 0 ? done / total : 1
            for n in unit.tensorElements {
                bytes += 4 * n
                if bytes >= bucketBytes { result.append((Bucket(bytes: bytes, readyFraction: fraction), index)); bytes = 0 }
            }
        }
        if bytes > 0 { result.append((Bucket(bytes: bytes, readyFraction: 1), units.count - 1)) }
        return result
    }

    /// Synchronisation rounds of one step: two per batch-norm round (forward and backward).
    public var batchNormRoundsPerStep: Int { 2 * units.reduce(0) { $0 + $1.batchNormRounds.count } }

    /// The small all-reduces of one step, as message sizes in bytes: per batch-norm round one in
    /// the forward (Σ 1 + 2C doubles over its batch norms) and one in the backward (Σ 2C
    /// doubles), then the objective's 5 loss sums (doubles), the all-gather of the ranks' shares
    /// (counted as one small collective of `8 (1 + ⌈B/R⌉)` bytes) and the all-gather of the
    /// ranks' batch-norm waits (8 bytes). All are on the critical path: the step waits for each.
    public func smallCollectives(batch: Int, ranks: Int) -> [Double] {
        var sizes: [Double] = []
        for unit in units {
            for round in unit.batchNormRounds {
                sizes.append(Double(round.reduce(0) { $0 + 8 * (1 + 2 * $1) }))
                sizes.append(Double(round.reduce(0) { $0 + 16 * $1 }))
            }
        }
        sizes.append(8 * 5)
        sizes.append(Double(8 * (1 + Self.share(batch: batch, ranks: ranks))))
        sizes.append(8)
        return sizes
    }

    /// Cases on the busiest rank: ⌈B / R⌉ (rank r takes slots [B·r/R, B·(r+1)/R)); the others
    /// wait for it at every synchronised batch norm.
    public static func share(batch: Int, ranks: Int) -> Int { (batch + ranks - 1) / ranks }

    /// How many times slower a rank computes on `ranks` ranks than alone: its node has
    /// min(R, ranksPerNode) × threadsPerRank busy cores (1 for one rank).
    public func slowdown(ranks: Int) -> Double {
        ranks > 1 ? contention.slowdown(busyCores: min(ranks, ranksPerNode) * threadsPerRank) : 1
    }

    /// Estimates one step of global batch `batch` on `ranks` ranks.
    public func step(batch: Int, ranks: Int) -> StepEstimate {
        precondition(batch >= 1 && ranks >= 1, "StepModel.step: batch \(batch), \(ranks) ranks")
        let n = Double(Self.share(batch: batch, ranks: ranks))
        let slow = slowdown(ranks: ranks)
        let forward = n * forwardFLOPs / trainingFLOPS * slow
        let backward = n * backwardFLOPs / trainingFLOPS * slow
        let sync = smallCollectives(batch: batch, ranks: ranks).reduce(0) {
            $0 + CollectiveCost.smallAllreduce(bytes: $1, ranks: ranks, network: network)
        }
        let wait = SyncWait.seconds(compute: forward + backward, relativeSpread: driftCV, ranks: ranks)
        let scheduled = scheduledBuckets
        let times = scheduled.map { CollectiveCost.ringAllreduce(bytes: Double($0.bucket.bytes), ranks: ranks, network: network) }
        let communication = times.reduce(0, +)
        let overlap = ranks > 1 ? overlappedBackward(backward: backward, scheduled: scheduled, times: times)
                                : (queueWait: 0, exposed: 0)
        return StepEstimate(ranks: ranks, share: Int(n), idleRanks: max(0, ranks - batch), slowdown: slow,
                            forward: forward, backward: backward, syncCollectives: sync, syncWait: wait,
                            gradientAllreduce: communication, lastBucket: times.last ?? 0,
                            exposedOverlapped: overlap.exposed, queueWait: overlap.queueWait, adam: adamSeconds * slow)
    }

    /// Backward with the buckets reduced as it goes (overlap on). One communication thread
    /// reduces the buckets in order, each from the moment the unit holding its last gradient has
    /// finished (or the previous bucket is done, if later). Backward runs the units in reverse,
    /// each unit's batch-norm rounds spread over it (a round, then its share of the unit's
    /// compute: a block's backward meets its second batch norm first); a round that starts while
    /// a bucket is on the link waits `network.queueDelay` behind it. Returns those waits' total and
    /// the reduction left after backward (at least the last bucket, which is ready only at the end).
    func overlappedBackward(backward: Double, scheduled: [(bucket: Bucket, unit: Int)], times: [Double])
        -> (queueWait: Double, exposed: Double) {
        let total = backwardFLOPs, q = network.queueDelay
        var t = 0.0, queueWait = 0.0, commFinish = 0.0, next = 0
        var transfers: [(start: Double, end: Double)] = []
        for (index, unit) in units.reversed().enumerated() {
            let compute = total > 0 ? unit.backwardFLOPs / total * backward : 0
            let rounds = unit.batchNormRounds.count
            if rounds == 0 { t += compute }
            for _ in 0..<rounds {
                if q > 0 && transfers.contains(where: { $0.start <= t && t < $0.end }) { t += q; queueWait += q }
                t += compute / Double(rounds)
            }
            while next < scheduled.count && scheduled[next].unit == index {
                let start = max(commFinish, t)
                commFinish = start + times[next]
                transfers.append((start, commFinish))
                next += 1
            }
        }
        return (queueWait, max(0, commFinish - t))
    }

    /// Seconds the validation of `cases` cases (one at a time, eval mode, no collectives) adds to
    /// an epoch on `ranks` ranks. Shared (`Trainer.validate`, `validation: shared`): rank r takes
    /// the contiguous slice [N·r/R, N·(r+1)/R), the busiest ⌈N/R⌉ cases, with all ranks of a
    /// node busy; the gather of the probabilities is a few KB and not counted. `rank0`: rank 0
    /// evaluates all N alone on its node while the others wait.
    public func validation(cases: Int, ranks: Int = 1, placement: ValidationPlacement = .shared) -> Double {
        precondition(cases >= 0 && ranks >= 1, "StepModel.validation: \(cases) cases on \(ranks) ranks")
        let busiest = placement == .shared ? (cases + ranks - 1) / ranks : cases
        let slow = placement == .shared ? slowdown(ranks: ranks) : 1
        return Double(busiest) * forwardFLOPs / inferenceFLOPS * slow
    }

    /// The smallest R in 2…`maxRanks` at which the overlapped all-reduce no longer hides behind
    /// backward: more is exposed than the last bucket (which can only start when backward ends).
    /// nil if it hides at every R up to `maxRanks`.
    public func communicationStopsHiding(batch: Int, maxRanks: Int) -> Int? {
        guard maxRanks >= 2 else { return nil }
        for r in 2...maxRanks {
            let s = step(batch: batch, ranks: r)
            if s.exposedOverlapped > s.lastBucket * (1 + 1e-9) + 1e-12 { return r }
        }
        return nil
    }

    // MARK: Calibration from measured steps

    /// The training rate at which the model's 1-rank step of `batch` cases (overlap on) takes
    /// `seconds` (a measured `steps.jsonl` median): (forward + backward) FLOPs / (seconds − Adam).
    /// nil when `seconds` does not exceed Adam's time.
    public func trainingFLOPS(oneRankStep seconds: Double, batch: Int) -> Double? {
        let compute = seconds - adamSeconds
        guard compute > 0, seconds.isFinite else { return nil }
        return Double(batch) * (forwardFLOPs + backwardFLOPs) / compute
    }

    /// The drift (relative spread) at which the model's 2-rank step of global batch `batch`
    /// takes `seconds`: what the 2-rank step costs beyond the model without drift, divided by
    /// e₂ · compute (`SyncWait`); 0 when the step is not slower than that.
    public func driftCV(twoRankStep seconds: Double, batch: Int) -> Double {
        var still = self
        still.driftCV = 0
        let s = still.step(batch: batch, ranks: 2)
        let excess = seconds - s.overlapped
        guard excess > 0, seconds.isFinite else { return 0 }
        return excess / (SyncWait.expectedMaximum(ofNormals: 2) * (s.forward + s.backward))
    }
}

/// Who runs the validation forward passes (`validation:` in a training config).
public enum ValidationPlacement: String, Codable, Sendable, CaseIterable {
    /// Every rank a contiguous slice, rank 0 gathers (the default).
    case shared
    /// Rank 0 alone while the others wait.
    case rank0
}

/// One step's estimate, seconds (on the busiest rank).
public struct StepEstimate: Codable, Equatable, Sendable {
    public var ranks: Int
    /// Cases on the busiest rank, ⌈B / R⌉.
    public var share: Int
    /// Ranks with no case (R > B): they only join the collectives.
    public var idleRanks: Int
    /// The node's contention factor applied to forward, backward and Adam (1 for one rank).
    public var slowdown: Double
    public var forward: Double
    public var backward: Double
    /// The small all-reduces (synchronised batch norm, loss sums, the gathers), their messages only.
    public var syncCollectives: Double
    /// The expected wait for the slowest of R ranks at the synchronisation points (`SyncWait`).
    public var syncWait: Double
    /// All gradient buckets' ring all-reduces, back to back.
    public var gradientAllreduce: Double
    /// The last bucket's all-reduce (the stem and layer1: ready only when backward ends).
    public var lastBucket: Double
    /// With overlap, the part of the gradient all-reduce that backward does not hide.
    public var exposedOverlapped: Double
    /// With overlap, what backward's batch-norm rounds wait behind the buckets on the link
    /// (`NetworkModel.queueDelay` for each round that meets one).
    public var queueWait: Double
    public var adam: Double

    /// Step time with the bucket reductions overlapping backward.
    public var overlapped: Double { forward + backward + queueWait + syncCollectives + syncWait + exposedOverlapped + adam }
    /// Step time with every bucket reduced after backward.
    public var sequential: Double { forward + backward + syncCollectives + syncWait + gradientAllreduce + adam }
    /// Whether only the last bucket is exposed with overlap on.
    public var hidden: Bool { exposedOverlapped <= lastBucket * (1 + 1e-9) + 1e-12 }
}
