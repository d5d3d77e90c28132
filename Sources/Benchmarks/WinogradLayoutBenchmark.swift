import Foundation
import Model
import NN
import VectorKernels

/// `dsan bench winograd`: the Winograd transforms of each distinct Winograd conv of the model at a
/// volume size (batch 1, one block of tiles, one thread), with the ξ matrices of V and M one cache
/// line apart (dsan's layout, `dsan_winograd_plane_floats`) and without that line, the two
/// alternating within each repetition so that a shared machine's load hits them alike. Reports
/// the medians and their ratio. The padding is restored afterwards.
public struct WinogradLayoutBenchmark {
    public var size: VolumeSize
    public var repetitions: Int

    public init(size: VolumeSize, repetitions: Int) {
        precondition(repetitions >= 1, "WinogradLayoutBenchmark: invalid settings")
        self.size = size
        self.repetitions = repetitions
    }

    /// One transform of one conv.
    public struct Row: Codable {
        public var conv: String, transform: String
        public var channels: Int, tiles: Int, transforms: Int
        /// Medians with dsan's layout (padded) and with the ξ matrices channels·ld apart.
        public var paddedSeconds: Double, unpaddedSeconds: Double
        /// unpadded ÷ padded.
        public var speedup: Double
    }

    public func run() -> [Row] {
        let saved = dsan_winograd_set_plane_padding(16)
        defer { _ = dsan_winograd_set_plane_padding(saved) }
        var rows: [Row] = []
        for conv in NetworkConv.resnet34(volume: size.dims) {
            guard let block = WinogradBlock(conv.geometry, input: conv.input) else { continue }
            let (inC, outC) = (conv.geometry.inChannels, conv.geometry.outChannels)
            var g = block.geometry
            let voxels = conv.input.d * conv.input.h * conv.input.w
            let maxPlane = max(inC, outC) * g.ld + 16
            let x = UnsafeMutablePointer<Float>.allocate(capacity: inC * voxels)
            let dy = UnsafeMutablePointer<Float>.allocate(capacity: outC * voxels)
            let y = UnsafeMutablePointer<Float>.allocate(capacity: outC * voxels)
            let vm = UnsafeMutablePointer<Float>.allocate(capacity: block.transforms * maxPlane)
            let scratchFloats = block.f4 ? dsan_winograd4_scratch_floats(&g) : dsan_winograd_scratch_floats(&g)
            let scratch = UnsafeMutablePointer<Float>.allocate(capacity: scratchFloats)
            defer { x.deallocate(); dy.deallocate(); y.deallocate(); vm.deallocate(); scratch.deallocate() }
            for i in 0..<(inC * voxels) { x[i] = Float(i % 97) / 97 - 0.5 }
            for i in 0..<(outC * voxels) { dy[i] = Float(i % 89) / 89 - 0.5 }
            vm.update(repeating: 0.25, count: block.transforms * maxPlane)
            let t = block.tiles
            var transforms: [(String, Int, () -> Void)] = []
            if block.f4 {
                transforms = [
                    ("input (F(4,3))", inC, { dsan_winograd4_input_transform(&g, x, inC, 0, inC, 0, t, vm, scratch) }),
                    ("output (F(4,3))", outC, { dsan_winograd4_output_transform(&g, vm, outC, 0, outC, 0, t, y) }),
                ]
            } else {
                transforms = [
                    ("input", inC, { dsan_winograd_input_transform(&g, x, inC, 0, inC, 0, t, vm, scratch) }),
                    ("gradient", outC, { dsan_winograd_gradient_transform(&g, dy, outC, 0, outC, 0, t, vm, scratch) }),
                    ("output", outC, { dsan_winograd_output_transform(&g, vm, outC, 0, outC, 0, t, y) }),
                ]
            }
            for (name, channels, body) in transforms {
                var padded: [Double] = [], unpadded: [Double] = []
                for r in 0...repetitions {
                    for padding in [16, 0] {
                        _ = dsan_winograd_set_plane_padding(padding)
                        let t0 = DispatchTime.now().uptimeNanoseconds
                        body()
                        let dt = Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9
                        if r > 0 { if padding == 16 { padded.append(dt) } else { unpadded.append(dt) } }   // r = 0 warms up
                    }
                }
                _ = dsan_winograd_set_plane_padding(16)
                let (p, u) = (ContentionProbe.median(padded), ContentionProbe.median(unpadded))
                rows.append(Row(conv: conv.name, transform: name, channels: channels, tiles: t,
                                transforms: block.transforms, paddedSeconds: p, unpaddedSeconds: u, speedup: u / p))
            }
        }
        return rows
    }

    /// The table `dsan bench winograd` prints.
    public func table(_ rows: [Row]) -> String {
        var lines = ["Winograd transforms at \(size.dims.map(String.init).joined(separator: "x")), batch 1, one block, 1 thread, median of \(repetitions); layouts alternate",
                     "conv              transform          channels  tiles   ms (ξ padded)   ms (channels·ld)   ×"]
        for r in rows {
            lines.append(r.conv.padding(toLength: 18, withPad: " ", startingAt: 0)
                         + r.transform.padding(toLength: 19, withPad: " ", startingAt: 0)
                         + String(format: "%8d %6d %15.3f %18.3f %7.2f", r.channels, r.tiles, r.paddedSeconds * 1e3,
                                  r.unpaddedSeconds * 1e3, r.speedup))
        }
        return lines.joined(separator: "\n")
    }
}
