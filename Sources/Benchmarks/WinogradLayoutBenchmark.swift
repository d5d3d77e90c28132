import BLAS
import Foundation
import Model
import NN
import Tensor
import VectorKernels

/// `dsan bench winograd`: the Winograd kernels of each distinct Winograd conv of the model at a
/// volume size (batch 1, one block of tiles, one thread), each with and without one of dsan's
/// layout choices, the two alternating within each repetition so that a shared machine's load
/// hits them alike: the transforms of V and M with the ξ matrices one cache line apart
/// (`dsan_winograd_plane_floats`) and channels·ld apart; the packed weight transform (a sweep
/// over every row panel, forward and for dX) with its weight prefetch and without; and, on
/// `threads` threads, the whole forward and dX of each conv of one block (layers 3–4 at batch 1,
/// whose GEMM phase transforms the weights panel by panel) with the panels' weights in slices that
/// stay in L2 (`WinogradConv.panelSliceColumns`) and in whole panels. Reports the medians and their
/// ratio; the settings are restored afterwards.
public struct WinogradLayoutBenchmark {
    public var size: VolumeSize
    public var repetitions: Int
    /// Threads of the one-block convs' rows (the kernels' rows run on one).
    public var threads: Int

    public init(size: VolumeSize, repetitions: Int, threads: Int = 1) {
        precondition(repetitions >= 1 && threads >= 1, "WinogradLayoutBenchmark: invalid settings")
        self.size = size
        self.repetitions = repetitions
        self.threads = threads
    }

    /// One kernel of one conv.
    public struct Row: Codable {
        public var conv: String, kernel: String
        public var channels: Int, tiles: Int
        /// Threads it ran on.
        public var threads: Int
        /// The choice measured: "line between ξ matrices", "weight prefetch" or "weight slices in L2".
        public var without: String
        /// Medians with dsan's choice and without it.
        public var seconds: Double, secondsWithout: Double
        /// secondsWithout ÷ seconds.
        public var speedup: Double
    }

    public func run() -> [Row] {
        let savedPadding = dsan_winograd_set_plane_padding(16), savedPrefetch = dsan_winograd_set_weight_prefetch(4)
        defer { _ = dsan_winograd_set_plane_padding(savedPadding); _ = dsan_winograd_set_weight_prefetch(savedPrefetch) }
        var rows: [Row] = []
        /// Times `body` `repetitions` times after one warm-up, with and without, alternating:
        /// `around(on, body)` runs it with the choice on or off.
        func measure(_ conv: String, _ kernel: String, channels: Int, tiles: Int, threads: Int = 1, without: String,
                     around: (Bool, () -> Void) -> Void, _ body: () -> Void) {
            var with: [Double] = [], bare: [Double] = []
            for r in 0...repetitions {
                for on in [true, false] {
                    var dt = 0.0
                    withoutActuallyEscaping(body) { body in
                        around(on) {
                            let t0 = DispatchTime.now().uptimeNanoseconds
                            body()
                            dt = Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9
                        }
                    }
                    if r > 0 { if on { with.append(dt) } else { bare.append(dt) } }   // r = 0 warms up
                }
            }
            let (a, b) = (ContentionProbe.median(with), ContentionProbe.median(bare))
            rows.append(Row(conv: conv, kernel: kernel, channels: channels, tiles: tiles, threads: threads, without: without,
                            seconds: a, secondsWithout: b, speedup: b / a))
        }
        /// `measure` with a setting that `set(true)` turns on and `set(false)` off, on again after.
        func measure(_ conv: String, _ kernel: String, channels: Int, tiles: Int, without: String,
                     _ set: @escaping (Bool) -> Void, _ body: () -> Void) {
            measure(conv, kernel, channels: channels, tiles: tiles, without: without, around: { on, run in set(on); run() }, body)
            set(true)
        }
        /// Whole slices (the rule) or whole panels, for the body alone.
        func sliced(_ on: Bool, _ run: () -> Void) {
            WinogradConv.$panelSliceColumns.withValue(on ? nil : 0) { run() }
        }
        let line = "line between ξ matrices", prefetch = "weight prefetch", slices = "weight slices in L2"
        let direct = "stores unstaged"
        func padded(_ on: Bool) { _ = dsan_winograd_set_plane_padding(on ? 16 : 0) }
        func prefetched(_ on: Bool) { _ = dsan_winograd_set_weight_prefetch(on ? 4 : 0) }
        /// The conv with its panels' transform storing directly (on) or staged.
        func unstaged(_ on: Bool, _ run: () -> Void) { ConvTuning.with(.panelStaging, on ? 0 : 1) { run() } }
        for conv in NetworkConv.resnet34(volume: size.dims) {
            guard let block = WinogradBlock(conv.geometry, input: conv.input) else { continue }
            let (inC, outC) = (conv.geometry.inChannels, conv.geometry.outChannels)
            var g = block.geometry
            let voxels = conv.input.d * conv.input.h * conv.input.w
            let maxPlane = dsan_winograd_plane_floats(max(inC, outC), g.ld)   // with the line (set above)
            // FloatStorage, as the convs' tensors and buffers: the same alignment and pages.
            let x = FloatStorage.allocate(inC * voxels), dy = FloatStorage.allocate(outC * voxels)
            let y = FloatStorage.allocate(outC * voxels), vm = FloatStorage.allocate(block.transforms * maxPlane)
            let scratch = FloatStorage.allocate(block.f4 ? dsan_winograd4_scratch_floats(&g) : dsan_winograd_scratch_floats(&g))
            defer { for p in [x, dy, y, vm, scratch] { FloatStorage.free(p) } }
            for i in 0..<(inC * voxels) { x[i] = Float(i % 97) / 97 - 0.5 }
            for i in 0..<(outC * voxels) { dy[i] = Float(i % 89) / 89 - 0.5 }
            vm.update(repeating: 0.25, count: block.transforms * maxPlane)
            let t = block.tiles, name = conv.name
            if block.f4 {
                measure(name, "input transform (F(4,3))", channels: inC, tiles: t, without: line, padded) {
                    dsan_winograd4_input_transform(&g, x, inC, 0, inC, 0, t, vm, scratch)
                }
                measure(name, "output transform (F(4,3))", channels: outC, tiles: t, without: line, padded) {
                    dsan_winograd4_output_transform(&g, vm, outC, 0, outC, 0, t, y)
                }
                continue
            }
            measure(name, "input transform", channels: inC, tiles: t, without: line, padded) {
                dsan_winograd_input_transform(&g, x, inC, 0, inC, 0, t, vm, scratch)
            }
            measure(name, "gradient transform", channels: outC, tiles: t, without: line, padded) {
                dsan_winograd_gradient_transform(&g, dy, outC, 0, outC, 0, t, vm, scratch)
            }
            measure(name, "output transform", channels: outC, tiles: t, without: line, padded) {
                dsan_winograd_output_transform(&g, vm, outC, 0, outC, 0, t, y)
            }
            // A conv of one block: its whole forward and dX on `threads` threads, the panels'
            // weights in slices and whole.
            if block.blocks == 1 {
                let xT = Tensor(zeros: conv.input.dims), w = Tensor(zeros: conv.geometry.weightShape)
                let yT = Tensor(zeros: conv.geometry.outputShape(for: conv.input).dims)
                let dyT = Tensor(zeros: yT.shape), dxT = Tensor(zeros: xT.shape)
                var rng = SplitMix64(seed: 3)
                for tensor in [xT, dyT] { tensor.fillUniform(-0.5, 0.5, rng: &rng) }
                w.fillUniform(-0.05, 0.05, rng: &rng)
                let workspace = ConvWorkspace()
                let saved = (Parallel.threads, BLAS.threads)
                Parallel.threads = threads
                BLAS.threads = threads
                defer { (Parallel.threads, BLAS.threads) = saved }
                measure(name, "conv forward", channels: inC, tiles: t, threads: threads, without: slices, around: sliced) {
                    conv3dForward(y: yT, x: xT, weight: w, geometry: conv.geometry, workspace: workspace)
                }
                measure(name, "conv dX", channels: outC, tiles: t, threads: threads, without: slices, around: sliced) {
                    conv3dBackward(dX: dxT, dWeight: nil, dY: dyT, x: xT, weight: w, geometry: conv.geometry, workspace: workspace)
                }
                measure(name, "conv forward", channels: inC, tiles: t, threads: threads, without: direct, around: unstaged) {
                    conv3dForward(y: yT, x: xT, weight: w, geometry: conv.geometry, workspace: workspace)
                }
                measure(name, "conv dX", channels: outC, tiles: t, threads: threads, without: direct, around: unstaged) {
                    conv3dBackward(dX: dxT, dWeight: nil, dY: dyT, x: xT, weight: w, geometry: conv.geometry, workspace: workspace)
                }
            }
            // The packed weights, one row panel at a time and one slice of its columns at a time
            // into one slice's buffer, as the GEMM phase of a one-block conv on one thread
            // transforms them: forward (rows Cout) and for dX (rows Cin).
            let panelRows = dsan_packed_gemm_panel_rows()
            let most = WinogradConv.panelSlice(columns: max(inC, outC), panelRows: panelRows)
            let weights = FloatStorage.allocate(outC * inC * 27)
            let panel = FloatStorage.allocate(64 * dsan_winograd_panel_plane_floats(most))
            defer { FloatStorage.free(weights); FloatStorage.free(panel) }
            for i in 0..<(outC * inC * 27) { weights[i] = Float(i % 83) / 830 - 0.05 }
            for adjoint in [false, true] {
                let rowsOfA = adjoint ? inC : outC, columns = adjoint ? outC : inC
                let panels = (rowsOfA + panelRows - 1) / panelRows
                let slice = WinogradConv.panelSlice(columns: columns, panelRows: panelRows)
                var staged: Int32 = 0
                func sweep() {
                    for p in 0..<panels {
                        for k0 in stride(from: 0, to: columns, by: slice) {
                            dsan_winograd_weight_transform_panel(weights, outC, inC, adjoint ? 1 : 0, p, k0,
                                                                 min(columns, k0 + slice), 0, 1, staged, panel)
                        }
                    }
                }
                let kernel = adjoint ? "weight transform, dX" : "weight transform"
                measure(name, kernel, channels: rowsOfA, tiles: t, without: prefetch, prefetched, sweep)
                measure(name, kernel, channels: rowsOfA, tiles: t, without: direct, { staged = $0 ? 0 : 1 }, sweep)
            }
        }
        return rows
    }

    /// The table `dsan bench winograd` prints.
    public func table(_ rows: [Row]) -> String {
        var lines = ["Winograd kernels at \(size.dims.map(String.init).joined(separator: "x")), batch 1, one block, median of \(repetitions); with and without alternate",
                     "conv              kernel                      channels  tiles  threads       ms  ms without  ×      without"]
        for r in rows {
            lines.append(r.conv.padding(toLength: 18, withPad: " ", startingAt: 0)
                         + r.kernel.padding(toLength: 28, withPad: " ", startingAt: 0)
                         + String(format: "%8d %6d %8d %8.3f %11.3f %5.2f  ", r.channels, r.tiles, r.threads, r.seconds * 1e3,
                                  r.secondsWithout * 1e3, r.speedup) + r.without)
        }
        return lines.joined(separator: "\n")
    }
}
