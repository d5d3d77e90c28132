import BLAS
import Foundation
import Tensor

/// What the benchmarks and the planner say about this machine.
enum Machine {
    /// The 1-minute load average, -1 when /proc/loadavg cannot be read: on a shared machine,
    /// figures taken at a load above the core count are not the machine's.
    static func loadAverage() -> Double {
        guard let text = try? String(contentsOfFile: "/proc/loadavg", encoding: .utf8),
              let first = text.split(separator: " ").first, let value = Double(first) else { return -1 }
        return value
    }

    /// "<CPU model name>, <online cores> cores", from /proc/cpuinfo.
    static var description: String {
        var model = "unknown CPU"
        if let info = try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8),
           let line = info.split(separator: "\n").first(where: { $0.hasPrefix("model name") }),
           let colon = line.firstIndex(of: ":") {
            model = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
        }
        return "\(model), \(ProcessInfoCores.online) cores"
    }

    /// The same-run ceiling every benchmark compares with: sgemm at 2048³ with the current
    /// `BLAS.threads`, GFLOP/s, the median of 3 timed runs after one warm-up.
    static func sgemm2048() -> Double {
        let n = 2048
        let a = [Float](repeating: 0.5, count: n * n), b = [Float](repeating: 0.25, count: n * n)
        var c = [Float](repeating: 0, count: n * n)
        var times: [Double] = []
        for _ in 0..<4 {
            let t0 = Date()
            c.withUnsafeMutableBufferPointer { cp in
                BLAS.sgemm(.none, .none, m: n, n: n, k: n, a: a, lda: n, b: b, ldb: n, c: cp.baseAddress!, ldc: n)
            }
            times.append(Date().timeIntervalSince(t0))
        }
        return 2 * Double(n * n * n) / times.dropFirst().sorted()[1] / 1e9
    }
}
