import BLAS
import Foundation
import Model
import NN
import Tensor

/// `dsan bench tuning`: one conv tuning constant at another value against its default
/// (`ConvTuning`), timed in pairs in one process, the order alternating from pair to pair, on one
/// conv pass of the model or on the whole training step. Each pair's ratio (setting ÷ default)
/// compares two timings taken moments apart, so the host's slow minutes cancel; the report gives
/// their median and the sign test's interval for it (`MedianInterval`), and for a conv whether the
/// setting changes the result's bits. This is how the tuning figures in Docs/performance.md are
/// reproduced.
public struct TuningBenchmark {
    /// The conv passes a pair can time: the forward, the backward as training runs it (dX and dW
    /// in one call), or one of the two alone.
    public enum Pass: String, CaseIterable, Codable, Sendable {
        case forward, backward, dx, dw
    }

    public var setting: ConvTuning.Setting
    public var value: Int
    /// A conv by its name in the model (`ResNet3D.convolutions(for:)`: `conv1`, `layer3.0.conv1`,
    /// `layer2.0.downsample.0`, `attention`…); nil: the training step.
    public var conv: String?
    public var pass: Pass
    public var size: VolumeSize, batch: Int, width: Int
    /// dsan's and OpenBLAS's threads (set by `run`).
    public var threads: Int
    public var pairs: Int
    /// Runs of the pass per side of a pair (their total is timed): a conv pass of a few
    /// milliseconds is timed over several.
    public var runs: Int
    public var warmup: Int

    public init(setting: ConvTuning.Setting, value: Int, conv: String?, pass: Pass, size: VolumeSize, batch: Int,
                width: Int, threads: Int, pairs: Int, runs: Int, warmup: Int) {
        precondition(setting.accepts(value) && batch >= 1 && width >= 1 && threads >= 1 && pairs >= 1
                     && runs >= 1 && warmup >= 0, "TuningBenchmark: invalid settings")
        (self.setting, self.value, self.conv, self.pass) = (setting, value, conv, pass)
        (self.size, self.batch, self.width, self.threads) = (size, batch, width, threads)
        (self.pairs, self.runs, self.warmup) = (pairs, runs, warmup)
    }

    /// The model's convs at `size`: name, geometry and input shape, in forward order.
    public static func convolutions(size: VolumeSize, batch: Int, width: Int) -> [(name: String, geometry: Conv3dGeometry, input: Shape5)] {
        let input = Shape5(n: batch, c: 1, d: size.d, h: size.h, w: size.w)
        return ResNet3D(config: ModelConfig(width: width, attention: true)).convolutions(for: input)
    }

    public struct Pair: Codable {
        public var defaultFirst: Bool
        public var defaultSeconds: Double, settingSeconds: Double
        /// settingSeconds ÷ defaultSeconds.
        public var ratio: Double
    }

    /// What `dsan bench tuning` measured; encoded as is for `--json`.
    public struct Report: Codable {
        public var setting: String, value: Int, defaultValue: Int
        /// "the training step", or the conv's name and pass.
        public var target: String
        /// The conv's geometry and input shape (nil for the step).
        public var conv: String?, input: [Int]?
        public var size: [Int], batch: Int, width: Int, threads: Int, runs: Int
        public var pairs: [Pair]
        /// Medians of the pairs' sides.
        public var defaultSeconds: Double, settingSeconds: Double
        /// The pairs' ratios: median, and the sign test's 95 % interval (nil under 6 pairs).
        public var ratioMedian: Double
        public var ratioInterval: MedianInterval?
        /// For a conv: whether the setting gives the default's result bit for bit, and the largest
        /// difference relative to the largest magnitude of the result when not. Nil for the step.
        public var sameBits: Bool?
        public var largestRelativeDifference: Double?
        public var blas: BLASKernelReport

        public var text: String {
            var lines = [blas.line,
                         "tuning: \(setting) = \(value) against the default \(defaultValue), \(target) at "
                         + "\(size.map(String.init).joined(separator: "x")), batch \(batch), width \(width), \(threads) thread(s), "
                         + "\(pairs.count) pairs" + (runs > 1 ? " of \(runs) runs each" : "") + (conv.map { " (\($0) on \(input!))" } ?? "")]
            lines.append("pair".padded(to: 6) + "order".padded(to: 16) + "default".padded(to: 12, alignRight: true)
                         + "setting".padded(to: 12, alignRight: true) + "setting ÷ default".padded(to: 20, alignRight: true))
            for (i, p) in pairs.enumerated() {
                lines.append("\(i + 1)".padded(to: 6) + (p.defaultFirst ? "default first" : "setting first").padded(to: 16)
                             + String(format: "%10.4f s", p.defaultSeconds).padded(to: 12, alignRight: true)
                             + String(format: "%10.4f s", p.settingSeconds).padded(to: 12, alignRight: true)
                             + String(format: "%.3f", p.ratio).padded(to: 20, alignRight: true))
            }
            lines.append(String(format: "medians: default %.4f s, setting %.4f s", defaultSeconds, settingSeconds))
            lines.append(verdict)
            if let sameBits {
                lines.append(sameBits ? "bits: the setting gives the default's result bit for bit"
                             : String(format: "bits: the setting changes the result (largest difference %.2g of the largest magnitude)",
                                      largestRelativeDifference ?? .nan))
            }
            return lines.joined(separator: "\n")
        }

        /// The ratio's median and what its interval says.
        public var verdict: String {
            let head = String(format: "setting ÷ default, pair by pair: median %.3f", ratioMedian)
            guard let i = ratioInterval else { return head + "; too few pairs for a 95 % interval (at least 6: --pairs)" }
            let says: String
            switch i.side(of: 1) {
            case -1: says = "the setting is faster"
            case 1: says = "the default is faster"
            default: says = "this run cannot tell the two apart"
            }
            return head + String(format: "; %.0f %% interval %.3f–%.3f (sign test over the %d pairs): ", 100 * i.coverage,
                                 i.low, i.high, i.count) + says
        }
    }

    /// Runs the pairs; `pairDone(i, total)` after each (the command prints progress).
    public func run(pairDone: (Int, Int) -> Void = { _, _ in }) throws -> Report {
        Parallel.threads = threads
        BLAS.threads = threads
        let measure: () throws -> Double
        var check: (() -> (Bool, Double))? = nil
        var target = "the training step", described: String? = nil, input: [Int]? = nil
        if let conv {
            let all = Self.convolutions(size: size, batch: batch, width: width)
            guard let c = all.first(where: { $0.name == conv }) else {
                throw BenchmarkError("no conv named '\(conv)' in the model at this size; its convs: "
                                     + all.map(\.name).joined(separator: ", "))
            }
            target = "\(c.name) \(pass.rawValue)"
            described = c.geometry.description
            input = c.input.dims
            let passes = ConvPasses(geometry: c.geometry, input: c.input)
            measure = { [runs, pass] in
                let start = Date()
                for _ in 0..<runs { passes.run(pass) }
                return Date().timeIntervalSince(start)
            }
            check = { [setting, value, pass] in
                let reference = passes.result(pass)
                let changed = ConvTuning.with(setting, value) { passes.result(pass) }
                let scale = reference.map(abs).max() ?? 0
                let largest = zip(reference, changed).map { abs($0 - $1) }.max() ?? 0
                let same = zip(reference, changed).allSatisfy { $0.bitPattern == $1.bitPattern }
                return (same, scale > 0 ? Double(largest / scale) : Double(largest))
            }
        } else {
            let runner = try StepRunner(size: size, batch: batch, width: width, inference: false)
            measure = { [runs] in
                var total = 0.0
                for _ in 0..<runs { total += try runner.step().total }
                return total
            }
        }
        let withSetting = { [setting, value] in try ConvTuning.with(setting, value) { try measure() } }
        for _ in 0..<warmup { _ = try measure(); _ = try withSetting() }
        var result: [Pair] = []
        for i in 0..<pairs {
            let defaultFirst = i % 2 == 0
            let (d, s): (Double, Double)
            if defaultFirst { d = try measure(); s = try withSetting() } else { s = try withSetting(); d = try measure() }
            result.append(Pair(defaultFirst: defaultFirst, defaultSeconds: d, settingSeconds: s, ratio: s / d))
            pairDone(i + 1, pairs)
        }
        let bits = check?()
        let median = ContentionProbe.median
        let ratios = result.map(\.ratio)
        return Report(setting: setting.rawValue, value: value, defaultValue: setting.defaultValue, target: target,
                      conv: described, input: input, size: size.dims, batch: batch, width: width, threads: threads,
                      runs: runs, pairs: result, defaultSeconds: median(result.map(\.defaultSeconds)),
                      settingSeconds: median(result.map(\.settingSeconds)), ratioMedian: median(ratios),
                      ratioInterval: MedianInterval(ratios), sameBits: bits?.0, largestRelativeDifference: bits?.1,
                      blas: BLASStartUp.report)
    }
}

/// One conv's tensors, filled with fixed random values, and its passes (the workspace a model
/// would give it: one column slice per thread, grown as the model's is).
private final class ConvPasses {
    let g: Conv3dGeometry
    let x: Tensor, w: Tensor, y: Tensor, dY: Tensor, dX: Tensor, dW: Tensor
    let workspace = ConvWorkspace()

    init(geometry: Conv3dGeometry, input: Shape5) {
        g = geometry
        var rng = SplitMix64(seed: 1)
        x = Tensor(zeros: input.dims); w = Tensor(zeros: g.weightShape)
        x.fillUniform(-1, 1, rng: &rng)
        w.fillNormal(std: 0.05, rng: &rng)
        let out = g.outputShape(for: input)
        y = Tensor(zeros: out.dims); dY = Tensor(zeros: out.dims)
        dY.fillUniform(-1, 1, rng: &rng)
        dX = Tensor(zeros: x.shape); dW = Tensor(zeros: w.shape)
    }

    /// One pass (dW accumulates, as over the micro-batches of a step).
    func run(_ pass: TuningBenchmark.Pass) {
        switch pass {
        case .forward: conv3dForward(y: y, x: x, weight: w, geometry: g, workspace: workspace)
        case .backward: conv3dBackward(dX: dX, dWeight: dW, dY: dY, x: x, weight: w, geometry: g, workspace: workspace)
        case .dx: conv3dBackward(dX: dX, dWeight: nil, dY: dY, x: x, weight: w, geometry: g, workspace: workspace)
        case .dw: conv3dBackward(dX: nil, dWeight: dW, dY: dY, x: x, weight: w, geometry: g, workspace: workspace)
        }
    }

    /// The pass's outputs from zero (y; or dX and dW written afresh), one array.
    func result(_ pass: TuningBenchmark.Pass) -> [Float] {
        dW.zero()
        run(pass)
        switch pass {
        case .forward: return y.array
        case .backward: return dX.array + dW.array
        case .dx: return dX.array
        case .dw: return dW.array
        }
    }
}
