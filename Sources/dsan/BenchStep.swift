import ArgumentParser
import BLAS
import Foundation
import Model
import NN
import Tensor

struct BenchStep: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "step",
        abstract: "Time a training step (or inference) of the model on this machine.",
        discussion: """
        Median over --repetitions steps after --warmup untimed ones, split into forward, loss + \
        backward, and Adam; samples per second; achieved GFLOP/s from the model's analytic FLOP \
        count (conv passes; a training step counts forward, input gradient and weight gradient); \
        the same-run sgemm rate at 2048³ for comparison; and peak resident memory (VmHWM).

        Example: dsan bench step --size 138x256x256 --threads 2
                 dsan bench step --size 138x256x256 --inference
        """
    )

    @Option(help: "Volume size DxHxW.") var size = VolumeSize(64, 128, 128)
    @Option(help: "Batch size.") var batch = 1
    @Option(help: "Threads (dsan's loops and OpenBLAS); default: the cores this process may use.") var threads: Int?
    @Option(help: "Model width (64 = the paper's ResNet34).") var width = 64
    @Option(help: "Timed repetitions.") var repetitions = 3
    @Option(help: "Untimed warm-up repetitions.") var warmup = 1
    @Flag(help: "Time eval-mode inference (forward only) instead of a training step.") var inference = false
    @Flag(help: "Print JSON instead of a table.") var json = false

    func validate() throws {
        guard batch >= 1 else { throw ValidationError("--batch must be at least 1, got \(batch)") }
        guard repetitions >= 1 else { throw ValidationError("--repetitions must be at least 1, got \(repetitions)") }
        guard warmup >= 0 else { throw ValidationError("--warmup must be at least 0, got \(warmup)") }
        guard (threads ?? 1) >= 1 else { throw ValidationError("--threads must be at least 1") }
        guard width >= 1 else { throw ValidationError("--width must be at least 1, got \(width)") }
    }

    struct Report: Codable {
        var size: [Int], batch: Int, threads: Int, width: Int, inference: Bool
        var forwardSeconds: Double, backwardSeconds: Double, optimizerSeconds: Double, stepSeconds: Double
        var samplesPerSecond: Double, gflop: Double, gflopsAchieved: Double, sgemmGflops: Double
        var peakRSSGiB: Double, parameters: Int
        /// The CPU and the OpenBLAS core (BLASStartUp).
        var blas: BLASKernelReport
    }

    func run() throws {
        let t = threads ?? ProcessInfoCores.available
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
            if !json { printError("bench step: repetition \(r + 1)/\(warmup + repetitions) took \(String(format: "%.2f", t3.timeIntervalSince(t0))) s") }
        }
        func median(_ v: [Double]) -> Double { let s = v.sorted(); return s[s.count / 2] }
        let f = median(forward), b = median(backward), o = median(adam)
        let step = f + b + o
        let flop = model.forwardFLOPs(for: shape) * (inference ? 1 : 3)
        let report = Report(size: size.dims, batch: batch, threads: t, width: width, inference: inference,
                            forwardSeconds: f, backwardSeconds: b, optimizerSeconds: o, stepSeconds: step,
                            samplesPerSecond: Double(batch) / step, gflop: flop / 1e9, gflopsAchieved: flop / 1e9 / step,
                            sgemmGflops: Machine.sgemm2048(), peakRSSGiB: peakRSS(),
                            parameters: model.registry.parameters.reduce(0) { $0 + $1.value.count },
                            blas: BLASStartUp.report)
        if json {
            let e = JSONEncoder()
            e.outputFormatting = [.prettyPrinted, .sortedKeys]
            print(String(decoding: try e.encode(report), as: UTF8.self))
            return
        }
        print(BLASStartUp.report.line)
        print("""
        \(inference ? "inference" : "training step") at \(size), batch \(batch), width \(width), \(t) thread(s), \(report.parameters) parameters
          forward            \(String(format: "%8.3f s", f))
        """ + (inference ? "" : """

          loss + backward    \(String(format: "%8.3f s", b))
          Adam               \(String(format: "%8.3f s", o))
          step               \(String(format: "%8.3f s", step))
        """) + """

          samples/s          \(String(format: "%8.3f", report.samplesPerSecond))
          GFLOP (convs)      \(String(format: "%8.1f", report.gflop))
          achieved GFLOP/s   \(String(format: "%8.1f", report.gflopsAchieved)) (sgemm 2048³ same run: \(String(format: "%.1f", report.sgemmGflops)), ratio \(String(format: "%.2f", report.gflopsAchieved / report.sgemmGflops)))
          peak RSS           \(String(format: "%8.2f GiB", report.peakRSSGiB))
        """)
    }


    /// Peak resident set size of this process (VmHWM in /proc/self/status), GiB.
    func peakRSS() -> Double {
        guard let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8),
              let line = status.split(separator: "\n").first(where: { $0.hasPrefix("VmHWM:") }),
              let kb = Double(line.split(separator: " ", omittingEmptySubsequences: true).dropFirst().first ?? "") else { return .nan }
        return kb / 1_048_576
    }
}
