import ArgumentParser
import Foundation
import NN
import VectorKernels

/// `dsan bench vector`: dsan's elementwise kernels (VectorKernels) at every vector level this CPU
/// supports, on one thread, levels alternating within each repetition so that a shared machine's
/// load hits them alike.
struct BenchVector: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "vector",
        abstract: "dsan's elementwise kernels at each vector level this CPU supports (baseline, AVX2, AVX-512).",
        discussion: """
        Times ReLU forward (in place) and backward, the fused add-then-ReLU, batch norm's \
        normalisation and input gradient, and Adam over --elements floats on one thread, once \
        per level per repetition (levels alternating), and prints the median time, the memory \
        traffic rate, and the speed-up over the baseline (SSE2) build. The level dsan uses is \
        the widest supported one unless DSAN_SIMD narrows it.

        Example: dsan bench vector --elements 16777216 --repetitions 9
        """
    )

    @Option(help: "Floats per array (default 16 M: 64 MiB, larger than the caches).") var elements = 1 << 24
    @Option(help: "Timed repetitions per kernel and level (the median is reported).") var repetitions = 7
    @Flag(help: "Print JSON instead of a table.") var json = false

    func validate() throws {
        guard elements >= 1 else { throw ValidationError("--elements must be at least 1, got \(elements)") }
        guard repetitions >= 1 else { throw ValidationError("--repetitions must be at least 1, got \(repetitions)") }
    }

    struct Row: Codable { var kernel: String; var level: String; var seconds: Double; var gbPerSecond: Double; var speedup: Double }

    func run() throws {
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
        if json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            print(String(decoding: try encoder.encode(rows), as: UTF8.self))
            return
        }
        print("vector kernels: \(n) floats per array, 1 thread, median of \(repetitions); levels alternate; in use: \(VectorLevel.active)")
        print("kernel                        level         ms     GB/s   × baseline")
        for row in rows {
            print(row.kernel.padding(toLength: 30, withPad: " ", startingAt: 0)
                  + row.level.padding(toLength: 10, withPad: " ", startingAt: 0)
                  + String(format: "%8.2f %8.1f %8.2f", row.seconds * 1e3, row.gbPerSecond, row.speedup))
        }
    }
}
