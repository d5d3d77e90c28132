import Foundation
import NN
import VectorKernels

/// `dsan bench vector`: dsan's elementwise kernels (VectorKernels) at every vector level this CPU
/// supports, on one thread, levels alternating within each repetition so that a shared machine's
/// load hits them alike. Each row is the median of `repetitions` (after one warm-up), the memory
/// traffic rate and the speed-up over the baseline (SSE2) build. The active level is restored.
public struct VectorBenchmark {
    /// Floats per array.
    public var elements: Int
    /// Timed repetitions per kernel and level.
    public var repetitions: Int

    public init(elements: Int, repetitions: Int) {
        precondition(elements >= 1 && repetitions >= 1, "VectorBenchmark: invalid settings")
        self.elements = elements
        self.repetitions = repetitions
    }

    /// One kernel at one level.
    public struct Row: Codable { public var kernel: String; public var level: String; public var seconds: Double; public var gbPerSecond: Double; public var speedup: Double }

    /// Every kernel at every supported level, kernels in a fixed order, levels from the baseline up.
    public func run() -> [Row] {
        let n = elements
        let start = dsan_vk_active_level()
        defer { _ = dsan_vk_set_level(start) }
        let levels = Array(0...dsan_vk_supported_level())
        let a = UnsafeMutablePointer<Float>.allocate(capacity: n), b = UnsafeMutablePointer<Float>.allocate(capacity: n)
        let c = UnsafeMutablePointer<Float>.allocate(capacity: n), d = UnsafeMutablePointer<Float>.allocate(capacity: n)
        defer { a.deallocate(); b.deallocate(); c.deallocate(); d.deallocate() }
        for i in 0..<n {
            a[i] = Float(i % 97) / 48 - 1; b[i] = Float(i % 89) / 44 - 1
            c[i] = Float(i % 13) / 130; d[i] = Float(i % 7) / 700
        }
        // (name, floats moved per element, body)
        let kernels: [(String, Int, () -> Void)] = [
            ("relu forward, in place", 2, { dsan_vk_relu_forward(b, b, n) }),
            ("relu backward", 3, { dsan_vk_relu_backward(a, b, c, n) }),
            ("add + relu", 3, { dsan_vk_add_relu(a, b, c, n) }),
            ("batch norm normalize", 2, { dsan_vk_affine(a, c, n, 1.01, 0.001) }),
            ("batch norm input gradient", 3, { dsan_vk_bn_input_gradient(a, b, c, n, 0.01, 0.02, 0.5, 1.1) }),
            ("adam", 7, { dsan_vk_adam(a, b, c, d, n, 1e-6, 0.5, 0.999, 0.1, 0.001, 1e-4, 1e-8) }),
        ]
        var rows: [Row] = []
        for (name, floats, body) in kernels {
            var times = [[Double]](repeating: [], count: levels.count)
            for r in 0...repetitions {
                for (k, level) in levels.enumerated() {
                    _ = dsan_vk_set_level(level)
                    let t0 = DispatchTime.now().uptimeNanoseconds
                    body()
                    let dt = Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9
                    if r > 0 { times[k].append(dt) }  // repetition 0 warms up
                }
            }
            let medians = times.map { $0.sorted()[$0.count / 2] }
            for (k, level) in levels.enumerated() {
                rows.append(Row(kernel: name, level: String(cString: dsan_vk_level_name(level)), seconds: medians[k],
                                gbPerSecond: Double(floats * 4 * n) / medians[k] / 1e9, speedup: medians[0] / medians[k]))
            }
        }
        return rows
    }

    /// The table `dsan bench vector` prints.
    public func table(_ rows: [Row]) -> String {
        var lines = ["vector kernels: \(elements) floats per array, 1 thread, median of \(repetitions); levels alternate; in use: \(VectorLevel.active)",
                     "kernel                        level         ms     GB/s   × baseline"]
        for row in rows {
            lines.append(row.kernel.padding(toLength: 30, withPad: " ", startingAt: 0)
                         + row.level.padding(toLength: 10, withPad: " ", startingAt: 0)
                         + String(format: "%8.2f %8.1f %8.2f", row.seconds * 1e3, row.gbPerSecond, row.speedup))
        }
        return lines.joined(separator: "\n")
    }
}
