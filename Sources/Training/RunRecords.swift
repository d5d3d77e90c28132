import Foundation

// What a training run logs per step (`steps.jsonl`) and per epoch (`metrics.jsonl`), and the
// clock that splits a step into its phases.

/// One optimizer step's record, written by rank 0 to `steps.jsonl`.
public struct StepRecord: Codable, Equatable {
    public var epoch: Int
    public var step: Int
    public var globalStep: Int
    public var loss: Double
    public var classification: Double
    public var attention: Double
    public var lr: Double
    public var cases: Int
    public var covid: Int
    /// Cohort indices each rank trained on in this step, in rank order (their concatenation is
    /// the global batch: every rank reports what it really used).
    public var shares: [[Int]]
    /// Rank 0's wall time of the step, from taking its cases off the prefetch queue to the end
    /// of the optimizer step (seconds), and the part of it spent waiting for the prefetch thread.
    public var seconds: Double = 0
    public var dataWaitSeconds: Double = 0
    /// Rank 0's split of the step: forward with the losses (their global sums included),
    /// backward, the gradient all-reduce (time spent reducing buckets, and the part the step
    /// waited for after backward — equal without overlap), and Adam. With micro-batches forward
    /// and backward interleave and `backwardSeconds` holds both.
    public var forwardSeconds: Double = 0
    public var backwardSeconds: Double = 0
    public var allreduceSeconds: Double = 0
    public var exposedAllreduceSeconds: Double = 0
    public var optimizerSeconds: Double = 0
    /// Time in the synchronised batch norms' global sums (forward and backward), waiting for the
    /// slowest rank included; part of `forwardSeconds` and `backwardSeconds`.
    public var batchNormSyncSeconds: Double = 0
    /// Every rank's `batchNormSyncSeconds`, in rank order. The ranks wait for the slowest one,
    /// so the rank that waits least in step after step is the straggler (a slower node, a busy
    /// core, a noisy neighbour); ranks that wait about equally are drifting by chance.
    public var batchNormSyncSecondsByRank: [Double] = []
}

/// Splits a step's wall time into the phases `StepRecord` reports.
struct StepClock {
    struct Times {
        var forwardSeconds = 0.0, backwardSeconds = 0.0, allreduceSeconds = 0.0
        var exposedAllreduceSeconds = 0.0, optimizerSeconds = 0.0
    }
    var times = Times()
    private var last = Date()

    /// Adds the time since the previous lap to `phase`.
    mutating func lap(_ phase: WritableKeyPath<Times, Double>) {
        let now = Date()
        times[keyPath: phase] += now.timeIntervalSince(last)
        last = now
    }

    func copy(into record: inout StepRecord) {
        record.forwardSeconds = times.forwardSeconds
        record.backwardSeconds = times.backwardSeconds
        record.allreduceSeconds = times.allreduceSeconds
        record.exposedAllreduceSeconds = times.exposedAllreduceSeconds
        record.optimizerSeconds = times.optimizerSeconds
    }
}
