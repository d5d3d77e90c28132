import BLAS
import Foundation
import Model
import NN
import Tensor

/// `dsan bench kernels`: sgemm and every distinct conv of ResNet34, forward, input gradient and
/// weight gradient, at each requested thread count; every conv pass is also given as a fraction of
/// the same-run sgemm rate at 2048³, the ceiling the conv kernels are built on. The 3³ stride-1
/// convs are timed with both algorithms in the same run: direct (vol2col + GEMM) and Winograd, the
/// latter as "effective" GFLOP/s (the direct conv's FLOPs ÷ Winograd's time) and as a speed-up.
public struct KernelBenchmark {
    /// Each sets both `BLAS.threads` and `Parallel.threads`.
    public var threadCounts: [Int]
    /// The network's input D×H×W (the convs' inputs follow from it).
    public var volume: [Int]
    /// Timed runs per figure (the median is reported), after `warmup` untimed ones.
    public var repetitions: Int
    public var warmup: Int
    /// Conv workspace size (bounds the column tile).
    public var workspaceMiB: Int

    public init(threadCounts: [Int], volume: [Int], repetitions: Int, warmup: Int, workspaceMiB: Int) {
        precondition(!threadCounts.isEmpty && threadCounts.allSatisfy { $0 >= 1 } && volume.count == 3
                     && repetitions >= 1 && warmup >= 0 && workspaceMiB >= 1, "KernelBenchmark: invalid settings")
        self.threadCounts = threadCounts
        self.volume = volume
        self.repetitions = repetitions
        self.warmup = warmup
        self.workspaceMiB = workspaceMiB
    }

    /// Measures every thread count in turn (each sets `BLAS.threads` and `Parallel.threads`, left
    /// at the last).
    public func run() -> KernelReport {
        let loadBefore = Machine.loadAverage()
        let convs = NetworkConv.resnet34(volume: volume)
        let workspace = ConvWorkspace(bytes: workspaceMiB << 20)
        var runs: [KernelReport.ThreadRun] = []
        for t in threadCounts {
            BLAS.threads = t
            Parallel.threads = t
            let gemm2048 = sgemmRate(m: 2048, n: 2048, k: 2048)
            var rows: [KernelReport.ConvRow] = []
            for conv in convs {
                rows.append(measureConv(conv, workspace: workspace, sgemm2048: gemm2048))
            }
            let forward = rows.reduce(0) { $0 + $1.forward.seconds * Double($1.countInNetwork) }
            let winograd = rows.reduce(0) {
                $0 + ($1.winograd?.forward.seconds ?? $1.forward.seconds) * Double($1.countInNetwork)
            }
            runs.append(.init(threads: t, sgemm2048GFlops: gemm2048, convs: rows,
                              networkForwardSeconds: forward, networkForwardWinogradSeconds: winograd))
        }
        let flops = convs.reduce(0) { $0 + $1.geometry.flops(input: $1.input) * Double($1.count) }
        return KernelReport(
            machine: Machine.description, openblas: BLAS.configuration, coreName: BLAS.coreName, blas: BLASStartUp.report,
            loadAverage: [loadBefore, Machine.loadAverage()],
            inputSize: volume, repetitions: repetitions, warmup: warmup,
            workspaceMiB: workspaceMiB, networkConvs: convs.reduce(0) { $0 + $1.count },
            networkForwardGFlop: flops / 1e9, runs: runs)
    }

    func measureConv(_ c: NetworkConv, workspace: ConvWorkspace, sgemm2048: Double) -> KernelReport.ConvRow {
        let g = c.geometry
        var rng = SplitMix64(seed: 1)
        let x = Tensor(zeros: c.input.dims), w = Tensor(zeros: g.weightShape)
        x.fillUniform(-1, 1, rng: &rng)
        w.fillNormal(std: 0.05, rng: &rng)
        let out = g.outputShape(for: c.input)
        let y = Tensor(zeros: out.dims), dY = Tensor(zeros: out.dims)
        dY.fillUniform(-1, 1, rng: &rng)
        let dX = Tensor(zeros: x.shape), dW = Tensor(zeros: w.shape)
        let flops = g.flops(input: c.input)
        let K = g.columnRows, P = out.spatial
        let (tile, channels) = g.isPointwise ? (P, g.inChannels) : workspace.tile(for: g, positions: P)
        let rows = channels * g.kernel.volume

        // The GEMM calls the forward makes, without vol2col: [Cout×rows]·[rows×T] per tile.
        let a = Tensor(zeros: [g.outChannels, K]), b = Tensor(zeros: [rows, tile])
        let gemmSeconds = median {
            var p0 = 0
            while p0 < P {
                let t = min(tile, P - p0)
                var r0 = 0
                while r0 < K {
                    let r = min(rows, K - r0)
                    BLAS.sgemm(.none, .none, m: g.outChannels, n: t, k: r, a: a.data + r0, lda: K, b: b.data, ldb: t,
                               beta: r0 == 0 ? 0 : 1, c: y.data + p0, ldc: P)
                    r0 += r
                }
                p0 += t
            }
        }
        let saved = ConvAlgorithm.selected
        defer { ConvAlgorithm.selected = saved }
        /// Median seconds of the forward, dX and dW passes with `algorithm`.
        func passes(_ algorithm: ConvAlgorithm) -> [Double] {
            ConvAlgorithm.selected = algorithm
            return [
                median { conv3dForward(y: y, x: x, weight: w, geometry: g, workspace: workspace) },
                median { conv3dBackward(dX: dX, dWeight: nil, dY: dY, x: x, weight: w, geometry: g, workspace: workspace) },
                median { conv3dBackward(dX: nil, dWeight: dW, dY: dY, x: x, weight: w, geometry: g, workspace: workspace) },
            ]
        }
        func pass(_ seconds: Double) -> KernelReport.Pass {
            let rate = flops / seconds / 1e9
            return .init(seconds: seconds, gflops: rate, ratioToSgemm: rate / sgemm2048)
        }
        let direct = passes(.direct)
        var winograd: KernelReport.WinogradPasses? = nil
        if WinogradConv.applies(to: g) {
            let t = passes(saved == .winograd2 ? .winograd2 : .winograd)   // DSAN_CONV=winograd2: F(2,3) only
            winograd = .init(forward: pass(t[0]), inputGradient: pass(t[1]), weightGradient: pass(t[2]),
                             speedUp: zip(direct, t).map { $0 / $1 })
        }
        return .init(name: c.name, conv: g.description, input: c.input.dims, countInNetwork: c.count,
                     gflop: flops / 1e9, gemmShape: [g.outChannels, rows, tile],
                     sgemmAtShapeGFlops: flops / gemmSeconds / 1e9,
                     forward: pass(direct[0]), inputGradient: pass(direct[1]), weightGradient: pass(direct[2]),
                     winograd: winograd)
    }

    func sgemmRate(m: Int, n: Int, k: Int) -> Double {
        let a = Tensor(zeros: [m, k]), b = Tensor(zeros: [k, n]), c = Tensor(zeros: [m, n])
        var rng = SplitMix64(seed: 2)
        a.fillUniform(-1, 1, rng: &rng)
        b.fillUniform(-1, 1, rng: &rng)
        let seconds = median {
            BLAS.sgemm(.none, .none, m: m, n: n, k: k, a: a.data, lda: k, b: b.data, ldb: n, c: c.data, ldc: n)
        }
        return 2 * Double(m) * Double(n) * Double(k) / seconds / 1e9
    }

    /// Median wall time in seconds of `repetitions` runs of `body` after `warmup` runs.
    func median(_ body: () -> Void) -> Double {
        for _ in 0..<warmup { body() }
        var times: [Double] = []
        for _ in 0..<repetitions {
            let start = DispatchTime.now().uptimeNanoseconds
            body()
            times.append(Double(DispatchTime.now().uptimeNanoseconds - start) * 1e-9)
        }
        times.sort()
        let mid = times.count / 2
        return times.count % 2 == 1 ? times[mid] : (times[mid - 1] + times[mid]) / 2
    }
}

/// One distinct conv of the network and how many times it runs it.
public struct NetworkConv: Equatable {
    public var name: String
    public var geometry: Conv3dGeometry
    public var input: Shape5
    public var count: Int

    /// The distinct convs of the network for a batch-1 input of `volume` D×H×W, in its order:
    /// `ResNet3D.convolutions(for:)` — ResNet34's 36 convs (11 distinct) and the attention
    /// module's 1×1×1 conv — with the repeated 3³ convs of a layer (same geometry, same input)
    /// counted once, named `layerN 3³`.
    public static func resnet34(volume: [Int]) -> [NetworkConv] {
        let input = Shape5(n: 1, c: 1, d: volume[0], h: volume[1], w: volume[2])
        var distinct: [NetworkConv] = []
        for conv in ResNet3D(config: .paper).convolutions(for: input) {
            if let i = distinct.firstIndex(where: { $0.geometry == conv.geometry && $0.input == conv.input }) {
                distinct[i].count += 1
                distinct[i].name = conv.name.prefix { $0 != "." } + " 3³"
            } else {
                let name = conv.name == "conv1" ? "conv1 (stem)"
                    : conv.name.hasSuffix(".downsample.0") ? String(conv.name.dropLast(2)) : conv.name
                distinct.append(NetworkConv(name: name, geometry: conv.geometry, input: conv.input, count: 1))
            }
        }
        return distinct
    }
}

/// What `dsan bench kernels` measured; encoded as is for `--json`.
public struct KernelReport: Codable {
    public struct Pass: Codable {
        public var seconds: Double
        public var gflops: Double
        public var ratioToSgemm: Double
    }
    public struct ConvRow: Codable {
        public var name: String
        public var conv: String
        public var input: [Int]
        public var countInNetwork: Int
        public var gflop: Double
        /// [M, K, N] of each GEMM call of the forward: [Cout, tile channels·k³, tile width].
        public var gemmShape: [Int]
        public var sgemmAtShapeGFlops: Double
        /// The direct conv (vol2col + GEMM).
        public var forward: Pass
        public var inputGradient: Pass
        public var weightGradient: Pass
        /// Winograd (`ConvAlgorithm.winograd`: F(4×4×4, 3×3×3) where `WinogradF4Conv.isUsed`, else
        /// F(2×2×2, 3×3×3)), for the 3³ stride-1 padding-1 convs only.
        public var winograd: WinogradPasses?
    }
    /// Winograd's passes; GFLOP/s are effective (the direct conv's FLOPs ÷ Winograd's time).
    public struct WinogradPasses: Codable {
        public var forward: Pass
        public var inputGradient: Pass
        public var weightGradient: Pass
        /// Direct time ÷ Winograd time for forward, dX, dW, measured in the same run.
        public var speedUp: [Double]
    }
    public struct ThreadRun: Codable {
        public var threads: Int
        public var sgemm2048GFlops: Double
        public var convs: [ConvRow]
        /// Every conv direct.
        public var networkForwardSeconds: Double
        /// The 3³ stride-1 convs by Winograd, the others direct.
        public var networkForwardWinogradSeconds: Double
    }
    public var machine: String
    public var openblas: String
    public var coreName: String
    /// The CPU and the OpenBLAS core (BLASStartUp).
    public var blas: BLASKernelReport
    /// 1-minute load average before and after the run.
    public var loadAverage: [Double]
    public var inputSize: [Int]
    public var repetitions: Int
    public var warmup: Int
    public var workspaceMiB: Int
    public var networkConvs: Int
    public var networkForwardGFlop: Double
    public var runs: [ThreadRun]

    /// The table `dsan bench kernels` prints.
    public var table: String {
        func f(_ x: Double, _ digits: Int) -> String { String(format: "%.\(digits)f", x) }
        func pad(_ s: String, _ n: Int) -> String { s.padded(to: n) }
        func lpad(_ s: String, _ n: Int) -> String { s.padded(to: n, alignRight: true) }
        var out = """
        machine: \(machine); OpenBLAS \(openblas) (\(coreName))
        \(blas.line)
        load average (1 min) before/after: \(f(loadAverage[0], 2)) / \(f(loadAverage[1], 2))
        network input 1×1×\(inputSize.map(String.init).joined(separator: "×")); batch 1; \
        median of \(repetitions) after \(warmup) warm-up; conv workspace \(workspaceMiB) MiB
        GF/s = GFLOP/s; (r) = ratio to sgemm 2048³ in the same run and thread count;
        gemm@tile = sgemm alone (threaded) at the conv's single-worker tile shape M×K×T
        wino = Winograd on the 3³ stride-1 convs (F(4×4×4, 3×3×3) for forward and dX where its rule says, else F(2×2×2, 3×3×3); DSAN_CONV=winograd2: F(2,3) only): effective GF/s (direct FLOPs ÷ time) \
        (×) = direct time ÷ Winograd time, same run

        """
        for run in runs {
            out += "\nthreads \(run.threads): sgemm 2048³ \(f(run.sgemm2048GFlops, 1)) GF/s\n"
            out += pad("conv", 21) + pad("geometry", 28) + pad("input C×D×H×W", 16) + lpad("GFLOP", 6)
                + lpad("×n", 4) + lpad("M×K×T", 17) + lpad("gemm@tile", 10)
                + lpad("forward (r)", 15) + lpad("dX (r)", 15) + lpad("dW (r)", 15)
                + lpad("wino fwd (×)", 16) + lpad("wino dX (×)", 16) + lpad("wino dW (×)", 16) + "\n"
            for c in run.convs {
                func cell(_ p: Pass) -> String { lpad("\(f(p.gflops, 1)) (\(f(p.ratioToSgemm, 2)))", 15) }
                out += pad(c.name, 21) + pad(c.conv, 28)
                    + pad(c.input.dropFirst().map(String.init).joined(separator: "×"), 16)
                    + lpad(f(c.gflop, 2), 6) + lpad("\(c.countInNetwork)", 4)
                    + lpad(c.gemmShape.map(String.init).joined(separator: "×"), 17)
                    + lpad(f(c.sgemmAtShapeGFlops, 1), 10)
                    + cell(c.forward) + cell(c.inputGradient) + cell(c.weightGradient)
                if let w = c.winograd {
                    for (p, x) in zip([w.forward, w.inputGradient, w.weightGradient], w.speedUp) {
                        out += lpad("\(f(p.gflops, 1)) (\(f(x, 2)))", 16)
                    }
                }
                out += "\n"
            }
            out += "network forward, \(networkConvs) convs, \(f(networkForwardGFlop, 1)) GFLOP: "
                + "direct \(f(run.networkForwardSeconds, 3)) s (\(f(networkForwardGFlop / run.networkForwardSeconds, 1)) GF/s), "
                + "with Winograd \(f(run.networkForwardWinogradSeconds, 3)) s "
                + "(\(f(networkForwardGFlop / run.networkForwardWinogradSeconds, 1)) effective GF/s, "
                + "×\(f(run.networkForwardSeconds / run.networkForwardWinogradSeconds, 2)))\n"
        }
        return out
    }
}
