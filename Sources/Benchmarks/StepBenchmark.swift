import BLAS
import Foundation
import Model
import NN
import Tensor

/// `dsan bench step`: a training step (or eval-mode inference) of the model, the median over
/// `repetitions` after `warmup` untimed ones, split into forward, loss + backward and Adam; with
/// samples per second, achieved GFLOP/s from the model's analytic FLOP count (a training step
/// counts forward, input gradient and weight gradient), the same-run sgemm rate at 2048³ and
/// peak resident memory.
public struct StepBenchmark {
    public var size: VolumeSize
    public var batch: Int
    /// dsan's and OpenBLAS's threads (set by `run`).
    public var threads: Int
    public var width: Int
    public var repetitions: Int
    public var warmup: Int
    public var inference: Bool
    /// A second setting that each timed repetition also runs a step with, the two in alternating
    /// order in this process; the report's figures are the default steps', and the comparison's
    /// field (`eagerZeros`, `withoutPoolYield`, `wholePanels`) has the other's median and the median
    /// ratio of the pairs. Nil: no comparison.
    public var comparison: StepComparison?

    public init(size: VolumeSize, batch: Int, threads: Int, width: Int, repetitions: Int, warmup: Int, inference: Bool) {
        precondition(batch >= 1 && threads >= 1 && width >= 1 && repetitions >= 1 && warmup >= 0,
                     "StepBenchmark: invalid settings")
        self.size = size
        self.batch = batch
        self.threads = threads
        self.width = width
        self.repetitions = repetitions
        self.warmup = warmup
        self.inference = inference
    }

    /// What `dsan bench step` measured; encoded as is for `--json`.
    public struct Report: Codable {
        public var size: [Int], batch: Int, threads: Int, width: Int, inference: Bool
        public var forwardSeconds: Double, backwardSeconds: Double, optimizerSeconds: Double, stepSeconds: Double
        public var samplesPerSecond: Double, gflop: Double, gflopsAchieved: Double, sgemmGflops: Double
        public var peakRSSGiB: Double, parameters: Int
        /// The CPU and the OpenBLAS core (BLASStartUp).
        public var blas: BLASKernelReport
        /// The memory pages the tensors get (`FloatStorage.pageReport`).
        public var pages: String
        /// With `.eagerZeros`: the median step with the zeros written at once, and the
        /// median over the repetitions of (that step ÷ the lazy step of the same repetition).
        public var eagerZeros: Comparison?
        /// With `.poolWait`: the same for the steps whose pool threads do not yield before they
        /// sleep.
        public var withoutPoolYield: Comparison?
        /// With `.wholePanels`: the same for the steps whose one-block Winograd GEMM phases
        /// transform whole row panels of the weights instead of slices that stay in L2.
        public var wholePanels: Comparison?
    }

    /// The median step of the other setting, and the median over the repetitions of (its step ÷
    /// the default step of the same repetition).
    public struct Comparison: Codable {
        public var stepSeconds: Double, ratio: Double
    }

    /// Runs the repetitions; `repetitionDone(r, total, seconds)` after each (the command prints it).
    public func run(repetitionDone: (Int, Int, Double) -> Void = { _, _, _ in }) throws -> Report {
        let t = threads
        Parallel.threads = t
        BLAS.threads = t
        let runner = try StepRunner(size: size, batch: batch, width: width, inference: inference)
        precondition(comparison != .poolWait || t >= 2, "StepBenchmark: the pool-wait comparison needs at least 2 threads")
        precondition(comparison != .eagerZeros || !inference, "StepBenchmark: inference has no gradients to zero")
        // A step with the other setting, which is set for it alone.
        let savedSetting = Tensor.zerosLazily
        let savedWait = (spin: Parallel.poolSpinMicroseconds, yield: Parallel.poolYieldMicroseconds)
        defer {
            Tensor.zerosLazily = savedSetting
            Parallel.setPoolWait(spinMicroseconds: savedWait.spin, yieldMicroseconds: savedWait.yield)
        }
        if comparison == .eagerZeros { Tensor.zerosLazily = true }
        func otherStep() throws -> Double? {
            switch comparison {
            case nil:
                return nil
            case .eagerZeros:
                Tensor.zerosLazily = false
                defer { Tensor.zerosLazily = true }
                return try runner.step().total
            case .poolWait:
                Parallel.setPoolWait(spinMicroseconds: savedWait.spin, yieldMicroseconds: 0)
                defer { Parallel.setPoolWait(spinMicroseconds: savedWait.spin, yieldMicroseconds: savedWait.yield) }
                return try runner.step().total
            case .wholePanels:
                return try WinogradConv.$panelSliceColumns.withValue(0) { try runner.step().total }
            }
        }
        var times: [StepRunner.Times] = [], others: [Double] = []
        for r in 0..<(warmup + repetitions) {
            let otherFirst = r % 2 == 1
            let before = otherFirst ? try otherStep() : nil
            let step = try runner.step()
            let after = !otherFirst ? try otherStep() : nil
            if r >= warmup {
                times.append(step)
                if let o = before ?? after { others.append(o) }
            }
            repetitionDone(r + 1, warmup + repetitions, step.total)
        }
        let median = ContentionProbe.median
        let measured = others.isEmpty ? nil
            : Comparison(stepSeconds: median(others), ratio: median(zip(others, times).map { $0 / $1.total }))
        let f = median(times.map(\.forward)), b = median(times.map(\.backward)), o = median(times.map(\.optimizer))
        let step = f + b + o
        let flop = runner.flop
        return Report(size: size.dims, batch: batch, threads: t, width: width, inference: inference,
                      forwardSeconds: f, backwardSeconds: b, optimizerSeconds: o, stepSeconds: step,
                      samplesPerSecond: Double(batch) / step, gflop: flop / 1e9, gflopsAchieved: flop / 1e9 / step,
                      sgemmGflops: Machine.sgemm2048(), peakRSSGiB: Self.peakRSS(),
                      parameters: runner.parameters, blas: BLASStartUp.report, pages: FloatStorage.pageReport,
                      eagerZeros: comparison == .eagerZeros ? measured : nil,
                      withoutPoolYield: comparison == .poolWait ? measured : nil,
                      wholePanels: comparison == .wholePanels ? measured : nil)
    }

    /// Peak resident set size of this process (VmHWM in /proc/self/status), GiB; NaN when unknown.
    public static func peakRSS() -> Double {
        guard let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8) else { return .nan }
        return peakRSS(procStatus: status)
    }

    /// VmHWM of a /proc/PID/status text, GiB; NaN without it.
    public static func peakRSS(procStatus status: String) -> Double {
        guard let line = status.split(separator: "\n").first(where: { $0.hasPrefix("VmHWM:") }),
              let kb = Double(line.split(separator: " ", omittingEmptySubsequences: true).dropFirst().first ?? "") else { return .nan }
        return kb / 1_048_576
    }
}

extension StepBenchmark.Report {
    /// The text `dsan bench step` prints.
    public var text: String {
        blas.line + "\n" + pages + "\n" + """
        \(inference ? "inference" : "training step") at \(size.map(String.init).joined(separator: "x")), batch \(batch), width \(width), \(threads) thread(s), \(parameters) parameters
          forward            \(String(format: "%8.3f s", forwardSeconds))
        """ + (inference ? "" : """

          loss + backward    \(String(format: "%8.3f s", backwardSeconds))
          Adam               \(String(format: "%8.3f s", optimizerSeconds))
          step               \(String(format: "%8.3f s", stepSeconds))
        """) + """

          samples/s          \(String(format: "%8.3f", samplesPerSecond))
          GFLOP (convs)      \(String(format: "%8.1f", gflop))
          achieved GFLOP/s   \(String(format: "%8.1f", gflopsAchieved)) (sgemm 2048³ same run: \(String(format: "%.1f", sgemmGflops)), ratio \(String(format: "%.2f", gflopsAchieved / sgemmGflops)))
          peak RSS           \(String(format: "%8.2f GiB", peakRSSGiB))
        """ + (eagerZeros.map {
            String(format: "\n  eager zeros        %8.3f s (the same step with the gradients' zeros written first; per repetition %.3f× the lazy step, median)",
                   $0.stepSeconds, $0.ratio)
        } ?? "") + (withoutPoolYield.map {
            String(format: "\n  no pool yield      %8.3f s (the same step with pool threads that sleep after the pause-spin, without yielding the core first; per repetition %.3f× the default step, median)",
                   $0.stepSeconds, $0.ratio)
        } ?? "") + (wholePanels.map {
            String(format: "\n  whole panels       %8.3f s (the same step with the one-block Winograd GEMMs' weights transformed in whole row panels, not slices kept in L2; per repetition %.3f× the default step, median)",
                   $0.stepSeconds, $0.ratio)
        } ?? "")
    }
}

/// The second setting `StepBenchmark` can time each repetition with (`dsan bench step --compare-…`).
public enum StepComparison: String, Codable, CaseIterable, Sendable {
    /// The gradients' zeros written at once (`Tensor.zerosLazily` off, as `DSAN_LAZY_ZEROS=0`).
    case eagerZeros
    /// Pool threads that sleep once the pause-spin bound is past, without yielding the core first
    /// (`DSAN_POOL_YIELD_US=0`, the pool before the yield stage). Needs at least 2 threads.
    case poolWait
    /// The one-block Winograd GEMM phases (layers 3–4 at batch 1) transforming whole row panels of
    /// the weights (`WinogradConv.panelSliceColumns` 0), as before the slices that stay in L2.
    case wholePanels
}

/// The model, batch and optimizer of a timed step, shared by `dsan bench step` and `dsan bench
/// threads`: the paper's model (online attention on), input uniform in [0, 1), an infection mask at
/// every 7th voxel, labels alternating 1, 0, …, the loss of DESIGN.md §2 and Adam; eval mode and no
/// optimizer for `inference`. Steps run with whatever `Parallel.threads` and `BLAS.threads` are.
final class StepRunner {
    struct Times {
        var forward: Double, backward: Double, optimizer: Double
        var total: Double { forward + backward + optimizer }
    }

    let model: ResNet3D
    let input: Tensor, masks: Tensor
    let labels: [Float]
    let objective = Objective(lambda: 0.5)
    let optimizer: Adam?
    /// FLOPs of a step's convs (forward only for inference; forward, dX and dW for training).
    let flop: Double
    let parameters: Int

    /// Throws when a training step cannot run at this size: batch norm needs more than one value
    /// per channel, and layer4 has batch · ⌈D/16⌉·⌈H/16⌉·⌈W/16⌉.
    init(size: VolumeSize, batch: Int, width: Int, inference: Bool) throws {
        let shape = Shape5(n: batch, c: 1, d: size.d, h: size.h, w: size.w)
        model = ResNet3D(config: ModelConfig(width: width, attention: true), seed: 1)
        let smallest = model.featureShape(for: shape)
        if !inference && smallest.n * smallest.d * smallest.h * smallest.w < 2 {
            throw BenchmarkError("a training step at \(size.dims.map(String.init).joined(separator: "x")) with batch \(batch) "
                + "leaves layer4 one value per channel, and batch norm needs more than one: "
                + "use a size of at least 17 in one dimension or --batch 2")
        }
        input = Tensor(zeros: shape.dims)
        // Infection masks only for training (the attention loss); inference needs none.
        masks = Tensor(zeros: inference ? [0] : shape.dims)
        var rng = SplitMix64(seed: 2)
        input.fillUniform(0, 1, rng: &rng)
        for i in stride(from: 0, to: masks.count, by: 7) { masks.data[i] = 1 }
        labels = (0..<batch).map { Float($0 % 2 == 0 ? 1 : 0) }
        optimizer = inference ? nil : Adam(parameters: model.registry.parameters.map { ($0.value, $0.gradient) })
        model.training = !inference
        if inference { model.releaseGradients() }   // as `dsan predict` does
        flop = model.forwardFLOPs(for: shape) * (inference ? 1 : 3)
        parameters = model.registry.parameters.reduce(0) { $0 + $1.value.count }
    }

    /// One timed step (a forward pass for inference).
    func step() throws -> Times {
        let t0 = Date()
        model.forward(input)
        let t1 = Date()
        var t2 = t1, t3 = t1
        if let optimizer {
            model.zeroGradients()
            _ = try objective.evaluate(model: model, labels: labels, masks: masks) { $0 }
            objective.backward(model: model)
            t2 = Date()
            optimizer.step()
            t3 = Date()
        }
        return Times(forward: t1.timeIntervalSince(t0), backward: t2.timeIntervalSince(t1), optimizer: t3.timeIntervalSince(t2))
    }
}
