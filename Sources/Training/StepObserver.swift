import Tensor

/// A test seam in the step loop: `Trainer.stepObserver` is told after each forward pass, on every
/// rank, and may change the logits before the losses are computed from them. Production runs set
/// none; tests use it to inject faults (a NaN loss on one rank, a rank that dies or hangs) and
/// check that the job stops with an error naming the rank.
public protocol StepObserver: AnyObject {
    /// The forward pass of optimizer step `globalStep` (counted from 0 over the whole run) has
    /// produced `logits` (`[n, 1]`, this rank's cases; in a micro-batched step, one micro-batch's)
    /// on `rank`.
    func forwardFinished(globalStep: Int, rank: Int, logits: Tensor)
    func gradientsReduced(globalStep: Int, rank: Int, gradients: [Tensor])
}

extension StepObserver {
    /// The all-reduced gradients of step `globalStep`, before Adam applies them, on `rank`; a test
    /// may change them (the same on every rank in a real run). Default: nothing.
    public func gradientsReduced(globalStep: Int, rank: Int, gradients: [Tensor]) {}
}
