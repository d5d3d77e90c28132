import Distributed
import Foundation
import MPI
import Model

/// Synchronised batch normalisation (SyncBatchNorm, DESIGN.md §4): every `BatchNorm3d` of the
/// model normalises with the statistics of the whole global batch, not of this rank's share.
///
/// `BatchNorm3d` (NN/Normalization.swift, "The synchronisation seam") computes per-channel sums
/// over its local samples and hands them to its `allReduce` hook: in forward the `1 + 2C` doubles
/// [count, Σ(x − K)_c…, Σ(x − K)²_c…], in backward the `2C` doubles [Σdy_c…, Σdy·(x − mean)_c…].
/// `attach(to:)` sets that hook on every batch norm of the model to an in-place sum over all ranks
/// (`Collectives.sum`, an `MPI_Iallreduce` bounded by the timeout), so R ranks compute the same
/// statistics, outputs and input gradients as one rank on the whole batch. A rank with an empty
/// share still joins with zero sums. Parameter gradients stay local (the gradient all-reduce sums
/// them), and running statistics are buffers, identical on every rank because every rank updates
/// them from the same global sums.
///
/// The hook cannot throw (it runs inside the layers' forward and backward): a failed sum is
/// logged with the rank and aborts the MPI job, which the other ranks see as a dead peer.
final class SyncBatchNorm {
    let collectives: Collectives
    let log: RunLog
    /// Seconds spent in the cross-rank sums (forward and backward) since the last `resetWait()`,
    /// waiting for the slowest rank included.
    private let wait = WaitClock()

    init(collectives: Collectives, log: RunLog) {
        self.collectives = collectives
        self.log = log
    }

    /// Makes every batch norm of `model` sum its statistics over all ranks.
    func attach(to model: ResNet3D) {
        model.setBatchNormAllReduce { [collectives, log, wait] buffer in
            let start = Date()
            defer { wait.seconds += Date().timeIntervalSince(start) }
            do { try collectives.sum(buffer) } catch {
                log.error("synchronised batch norm failed: \(error)")
                MPI.abort(code: 3)
            }
        }
    }

    /// Time in the sums since the last reset.
    var waitSeconds: Double { wait.seconds }

    func resetWait() { wait.seconds = 0 }

    /// Seconds accumulated by the hook, which outlives any one step.
    private final class WaitClock: @unchecked Sendable {
        var seconds = 0.0
    }
}
