// Time per epoch and per cross-validation from the step model (Docs/scaling.md).

/// A cross-validation's shape: the cohort, the folds, the models per fold, the epochs.
public struct RunShape: Codable, Equatable, Sendable {
    public var cases: Int
    public var folds: Int
    public var epochs: Int
    public var batch: Int
    /// Models trained per fold: 2 (uniform and size-balanced sampling; `dsan cv --baseline` adds a third).
    public var modelsPerFold: Int

    public init(cases: Int, folds: Int, epochs: Int, batch: Int, modelsPerFold: Int = 2) {
        precondition(cases >= folds && folds >= 2 && epochs >= 1 && batch >= 1 && modelsPerFold >= 1, "RunShape: bad shape")
        self.cases = cases
        self.folds = folds
        self.epochs = epochs
        self.batch = batch
        self.modelsPerFold = modelsPerFold
    }

    /// Validation cases of a fold: N / F rounded (folds differ by at most one case per label).
    public var validationCases: Int { Int((Double(cases) / Double(folds)).rounded()) }
    /// Training cases of a fold.
    public var trainingCases: Int { cases - validationCases }
    /// Optimizer steps per epoch: ⌈training cases / B⌉ (the last batch may be short; counted whole).
    public var stepsPerEpoch: Int { (trainingCases + batch - 1) / batch }
}

/// The estimate for one rank count.
public struct RunEstimate: Codable, Equatable, Sendable {
    public var step: StepEstimate
    /// The step's total with overlap on and off (`StepEstimate.overlapped`, `.sequential`).
    public var stepOverlapped: Double
    public var stepSequential: Double
    public var stepsPerEpoch: Int
    /// Who validates, and the seconds it adds to an epoch (`StepModel.validation`).
    public var validation: ValidationPlacement
    public var validationSeconds: Double
    /// Epoch = steps × step + validation, with overlap on and off.
    public var epochOverlapped: Double
    public var epochSequential: Double
    /// Cross-validation = folds × models × epochs × epoch.
    public var crossValidationOverlapped: Double
    public var crossValidationSequential: Double
    /// Speed-up of the overlapped epoch over one rank's.
    public var speedup: Double
    /// Speed-up per rank.
    public var efficiency: Double
}

extension StepModel {
    /// The run's estimate on `ranks` ranks, validation placed as `validation`.
    public func estimate(_ shape: RunShape, ranks: Int, validation placement: ValidationPlacement = .shared) -> RunEstimate {
        let s = step(batch: shape.batch, ranks: ranks)
        let v = validation(cases: shape.validationCases, ranks: ranks, placement: placement)
        let steps = Double(shape.stepsPerEpoch)
        let epochO = steps * s.overlapped + v, epochS = steps * s.sequential + v
        let runs = Double(shape.folds * shape.modelsPerFold * shape.epochs)
        let one = steps * step(batch: shape.batch, ranks: 1).overlapped + validation(cases: shape.validationCases, ranks: 1)
        return RunEstimate(step: s, stepOverlapped: s.overlapped, stepSequential: s.sequential, stepsPerEpoch: shape.stepsPerEpoch, validation: placement, validationSeconds: v,
                           epochOverlapped: epochO, epochSequential: epochS,
                           crossValidationOverlapped: runs * epochO, crossValidationSequential: runs * epochS,
                           speedup: one / epochO, efficiency: one / epochO / Double(ranks))
    }
}

/// A machine's measured rates, saved by `dsan plan --save-profile` so a cluster user measures
/// once on a compute node and plans from anywhere.
public struct MachineProfile: Codable, Equatable, Sendable {
    /// CPU model (from /proc/cpuinfo) and when it was measured (ISO 8601).
    public var machine: String
    public var date: String
    /// Threads the rates were measured with.
    public var threads: Int
    /// sgemm at 2048³, GFLOP/s, with `threads` threads.
    public var sgemmGFLOPS: Double
    /// Achieved training GFLOP/s divided by sgemm's (from `dsan bench step`, which counts
    /// direct-conv FLOPs, so Winograd convs can make it exceed 1; `dsan plan`'s default is the 1.47
    /// measured at 138×256×256 on 2 threads with the Winograd convs, 0.69 with direct ones,
    /// Docs/performance.md).
    public var efficiency: Double
    /// Seconds of Adam per million parameters with `threads` threads.
    public var adamSecondsPerMillionParameters: Double
    /// The node's contention, from k copies of the probe run together (absent in profiles
    /// written before it was measured: no contention).
    public var contention: NodeContention?

    public init(machine: String, date: String, threads: Int, sgemmGFLOPS: Double, efficiency: Double,
                adamSecondsPerMillionParameters: Double, contention: NodeContention? = nil) {
        self.machine = machine
        self.date = date
        self.threads = threads
        self.sgemmGFLOPS = sgemmGFLOPS
        self.efficiency = efficiency
        self.adamSecondsPerMillionParameters = adamSecondsPerMillionParameters
        self.contention = contention
    }

    /// Achieved FLOP/s with `threads` threads: the measured rate scaled linearly from the
    /// measured thread count (optimistic when `threads` is larger; measure on the target).
    public func flops(threads t: Int) -> Double {
        sgemmGFLOPS * 1e9 * efficiency * Double(t) / Double(threads)
    }

    /// Adam seconds for `parameters` with `threads` threads: slower with fewer threads than
    /// measured, no faster with more (Adam is bound by memory bandwidth, not cores).
    public func adamSeconds(parameters: Int, threads t: Int) -> Double {
        let scale = min(1, Double(t) / Double(threads))
        return adamSecondsPerMillionParameters * Double(parameters) / 1e6 / scale
    }
}
