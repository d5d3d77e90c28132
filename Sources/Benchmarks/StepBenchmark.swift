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
    }

    /// Runs the repetitions; `repetitionDone(r, total, seconds)` after each (the command prints it).
    public func run(repetitionDone: (Int, Int, Double) -> Void = { _, _, _ in }) throws -> Report {
        let t = threads
        Parallel.threads = t
        BLAS.threads = t
        let shape = Shape5(n: batch, c: 1, d: size.d, h: size.h, w: size.w)
        let model = ResNet3D(config: ModelConfig(width: width, attention: true), seed: 1)
        let input = Tensor(zeros: shape.dims)
        // Infection masks only for training (the attention loss); inference needs none.
        let masks = Tensor(zeros: inference ? [0] : shape.dims)
        var rng = SplitMix64(seed: 2)
        input.fillUniform(0, 1, rng: &rng)
        for i in stride(from: 0, to: masks.count, by: 7) { masks.data[i] = 1 }
        let labels = (0..<batch).map { Float($0 % 2 == 0 ? 1 : 0) }
        let objective = Objective(lambda: 0.5)
        let optimizer = inference ? nil : Adam(parameters: model.registry.parameters.map { ($0.value, $0.gradient) })
        model.training = !inference
        var forward: [Double] = [], backward: [Double] = [], adam: [Double] = []
        for r in 0..<(warmup + repetitions) {
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
            if r >= warmup {
                forward.append(t1.timeIntervalSince(t0))
                backward.append(t2.timeIntervalSince(t1))
                adam.append(t3.timeIntervalSince(t2))
            }
            repetitionDone(r + 1, warmup + repetitions, t3.timeIntervalSince(t0))
        }
        func median(_ v: [Double]) -> Double { let s = v.sorted(); return s[s.count / 2] }
        let f = median(forward), b = median(backward), o = median(adam)
        let step = f + b + o
        let flop = model.forwardFLOPs(for: shape) * (inference ? 1 : 3)
        return Report(size: size.dims, batch: batch, threads: t, width: width, inference: inference,
                      forwardSeconds: f, backwardSeconds: b, optimizerSeconds: o, stepSeconds: step,
                      samplesPerSecond: Double(batch) / step, gflop: flop / 1e9, gflopsAchieved: flop / 1e9 / step,
                      sgemmGflops: Machine.sgemm2048(), peakRSSGiB: Self.peakRSS(),
                      parameters: model.registry.parameters.reduce(0) { $0 + $1.value.count },
                      blas: BLASStartUp.report)
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
        blas.line + "\n" + """
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
        """
    }
}
