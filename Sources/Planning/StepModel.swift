// The time of one data-parallel training step on R ranks (Docs/scaling.md, "The model").

/// One unit of the backward pass after which the trainer reports gradients final (ResNet3D's
/// `gradientsReady`): the fc layer, each BasicBlock, the stem. Listed in forward order.
///
/// `tensorElements` are the unit's parameter tensors in the order backward completes them (the
/// gradient buckets' order); `batchNormChannels` the channels of each of its batch norms, each of
/// which makes two small all-reduces per step (forward statistics: 1 + 2C doubles; backward
/// sums: 2C doubles).
public struct GradientUnit: Codable, Equatable, Sendable {
    public var name: String
    public var tensorElements: [Int]
    /// FLOPs of the unit's forward pass for one case.
    public var forwardFLOPs: Double
    /// FLOPs of the unit's backward pass for one case (input and weight gradients).
    public var backwardFLOPs: Double
    public var batchNormChannels: [Int]

    public init(name: String, tensorElements: [Int], forwardFLOPs: Double, backwardFLOPs: Double, batchNormChannels: [Int]) {
        self.name = name
        self.tensorElements = tensorElements
        self.forwardFLOPs = forwardFLOPs
        self.backwardFLOPs = backwardFLOPs
        self.batchNormChannels = batchNormChannels
    }

    public var parameters: Int { tensorElements.reduce(0, +) }
}

/// What the step model needs to know about the network and the machine.
public struct StepModel: Codable, Equatable, Sendable {
    /// The network's units in forward order.
    public var units: [GradientUnit]
    /// Achieved FLOP/s of one rank's training compute (forward + backward), as the conv FLOP
    /// count divided by the measured time of everything (convs, batch norm, ReLU, pooling, loss).
    public var trainingFLOPS: Double
    /// Achieved FLOP/s of one rank's eval-mode forward (validation).
    public var inferenceFLOPS: Double
    /// Seconds of one Adam step over all parameters on one rank (memory-bound, batch-independent).
    public var adamSeconds: Double
    /// Gradient bucket size in bytes (`bucket_mb` × 2²⁰).
    public var bucketBytes: Int
    public var network: NetworkModel

    public init(units: [GradientUnit], trainingFLOPS: Double, inferenceFLOPS: Double, adamSeconds: Double,
                bucketBytes: Int, network: NetworkModel) {
        precondition(!units.isEmpty && trainingFLOPS > 0 && inferenceFLOPS > 0 && adamSeconds >= 0 && bucketBytes > 0,
                     "StepModel: bad parameters")
        self.units = units
        self.trainingFLOPS = trainingFLOPS
        self.inferenceFLOPS = inferenceFLOPS
        self.adamSeconds = adamSeconds
        self.bucketBytes = bucketBytes
        self.network = network
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
    public var buckets: [Bucket] {
        let total = backwardFLOPs
        var result: [Bucket] = [], bytes = 0, done = 0.0
        for unit in units.reversed() {
            done += unit.backwardFLOPs
            let fraction = total > 0 ? done / total : 1
            for n in unit.tensorElements {
                bytes += 4 * n
                if bytes >= bucketBytes { result.append(Bucket(bytes: bytes, readyFraction: fraction)); bytes = 0 }
            }
        }
        if bytes > 0 { result.append(Bucket(bytes: bytes, readyFraction: 1)) }
        return result
    }

    /// The small all-reduces of one step, as message sizes in bytes: per batch norm one in the
    /// forward (1 + 2C doubles) and one in the backward (2C doubles), then the objective's 5 loss
    /// sums (doubles) and the all-gather of the ranks' shares (counted as one small collective
    /// of `8 (1 + ⌈B/R⌉)` bytes). All are on the critical path: the step waits for each.
    public func smallCollectives(batch: Int, ranks: Int) -> [Double] {
        var sizes: [Double] = []
        for unit in units {
            for c in unit.batchNormChannels { sizes.append(Double(8 * (1 + 2 * c))); sizes.append(Double(16 * c)) }
        }
        sizes.append(8 * 5)
        sizes.append(Double(8 * (1 + Self.share(batch: batch, ranks: ranks))))
        return sizes
    }

    /// Cases on the busiest rank: ⌈B / R⌉ (rank r takes slots [B·r/R, B·(r+1)/R)); the others
    /// wait for it at every synchronised batch norm.
    public static func share(batch: Int, ranks: Int) -> Int { (batch + ranks - 1) / ranks }

    /// Estimates one step of global batch `batch` on `ranks` ranks.
    public func step(batch: Int, ranks: Int) -> StepEstimate {
        precondition(batch >= 1 && ranks >= 1, "StepModel.step: batch \(batch), \(ranks) ranks")
        let n = Double(Self.share(batch: batch, ranks: ranks))
        let forward = n * forwardFLOPs / trainingFLOPS
        let backward = n * backwardFLOPs / trainingFLOPS
        let sync = smallCollectives(batch: batch, ranks: ranks).reduce(0) {
            $0 + CollectiveCost.smallAllreduce(bytes: $1, ranks: ranks, network: network)
        }
        let times = buckets.map { CollectiveCost.ringAllreduce(bytes: Double($0.bytes), ranks: ranks, network: network) }
        let communication = times.reduce(0, +)
        // Overlap: one communication thread reduces the buckets in order, each from the moment
        // backward has finished its last gradient (or the previous bucket is done, if later).
        var finish = 0.0
        for (b, t) in zip(buckets, times) { finish = max(finish, b.readyFraction * backward) + t }
        let exposed = ranks > 1 ? max(0, finish - backward) : 0
        return StepEstimate(ranks: ranks, share: Int(n), idleRanks: max(0, ranks - batch),
                            forward: forward, backward: backward, syncCollectives: sync,
                            gradientAllreduce: communication, lastBucket: times.last ?? 0,
                            exposedOverlapped: exposed, adam: adamSeconds)
    }

    /// Seconds rank 0 needs to evaluate `cases` validation cases one at a time in eval mode;
    /// the other ranks wait at a barrier (Trainer.validate), so this is added to the epoch.
    public func validation(cases: Int) -> Double { Double(cases) * forwardFLOPs / inferenceFLOPS }

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
}

/// One step's estimate, seconds (on the busiest rank).
public struct StepEstimate: Codable, Equatable, Sendable {
    public var ranks: Int
    /// Cases on the busiest rank, ⌈B / R⌉.
    public var share: Int
    /// Ranks with no case (R > B): they only join the collectives.
    public var idleRanks: Int
    public var forward: Double
    public var backward: Double
    /// The small all-reduces (synchronised batch norm, loss sums, the shares' gather).
    public var syncCollectives: Double
    /// All gradient buckets' ring all-reduces, back to back.
    public var gradientAllreduce: Double
    /// The last bucket's all-reduce (the stem and layer1: ready only when backward ends).
    public var lastBucket: Double
    /// With overlap, the part of the gradient all-reduce that backward does not hide.
    public var exposedOverlapped: Double
    public var adam: Double

    /// Step time with the bucket reductions overlapping backward.
    public var overlapped: Double { forward + backward + syncCollectives + exposedOverlapped + adam }
    /// Step time with every bucket reduced after backward.
    public var sequential: Double { forward + backward + syncCollectives + gradientAllreduce + adam }
    /// Whether only the last bucket is exposed with overlap on.
    public var hidden: Bool { exposedOverlapped <= lastBucket * (1 + 1e-9) + 1e-12 }
}
