import Foundation
import Tensor
import VectorKernels

/// The ceiling of any thread gain on this machine: the rate of multiply-adds on registers only
/// (`dsan_multiply_add_probe`, at the level of dsan's GEMM) on one of dsan's workers and on N,
/// each running the same loop. Nothing touches memory, so on a machine that gives each thread a
/// core of its own the N-thread rate is N times the 1-thread rate, to within the clock's turbo
/// steps. When it is not, the cores are not whole: a hypervisor that runs other guests' vCPUs on
/// them, two vCPUs on the two hyperthreads of one core, a clock that drops with more active
/// cores. `dsan bench threads` runs it in every round, beside the step, sgemm and the memory
/// probes, so that a step's gain can be read against what the cores themselves gave that minute.
public struct ArithmeticScaling {
    /// Probe iterations per worker and measurement (each `dsan_multiply_add_probe_flops()` FLOP).
    public var iterations: Int

    public init(iterations: Int = 25_000_000) {
        precondition(iterations >= 1, "ArithmeticScaling: iterations must be at least 1")
        self.iterations = iterations
    }

    /// GFLOP/s of `threads` workers each running the probe (all together), the median of 3.
    public func rate(threads: Int) -> Double {
        precondition(threads >= 1, "ArithmeticScaling.rate: needs at least 1 worker")
        let sink = UnsafeMutableBufferPointer<Float>.allocate(capacity: threads)
        defer { sink.deallocate() }
        let flops = Double(threads) * Double(iterations) * Double(dsan_multiply_add_probe_flops())
        var rates: [Double] = []
        Parallel.withThreads(threads) {
            for _ in 0..<3 {
                let start = DispatchTime.now().uptimeNanoseconds
                Parallel.forEachWorker(threads) { w, _ in
                    // x ← 0.999·x + 0.001 converges to 1: no overflow, no subnormals, any length.
                    sink[w] = dsan_multiply_add_probe(iterations, 0.999, 0.001)
                }
                let seconds = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
                rates.append(flops / seconds / 1e9)
            }
        }
        precondition(sink.allSatisfy(\.isFinite), "ArithmeticScaling: the probe's registers left the finite range")
        return ContentionProbe.median(rates)
    }
}
