import BLAS
import Foundation

/// What the benchmarks and the planner say about this machine: its load, its CPU and cores, and
/// the sgemm rate every benchmark figure is compared with. Beside `ProcessInfoCores`, whose core
/// count the description carries.
public enum Machine {
    /// The 1-minute load average, -1 when /proc/loadavg cannot be read: on a shared machine,
    /// figures taken at a load above the core count are not the machine's.
    public static func loadAverage() -> Double {
        guard let text = try? String(contentsOfFile: "/proc/loadavg", encoding: .utf8) else { return -1 }
        return loadAverage(procLoadavg: text)
    }

    /// The first field of /proc/loadavg's text ("0.52 0.58 0.59 1/189 4242"), -1 when it is not a
    /// number.
    public static func loadAverage(procLoadavg text: String) -> Double {
        guard let first = text.split(separator: " ").first, let value = Double(first) else { return -1 }
        return value
    }

    /// "<CPU model name>, <online cores> cores", from /proc/cpuinfo.
    public static var description: String {
        let info = (try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8)) ?? ""
        return "\(modelName(cpuinfo: info)), \(ProcessInfoCores.online) cores"
    }

    /// The first `model name` of /proc/cpuinfo's text, "unknown CPU" without one.
    public static func modelName(cpuinfo info: String) -> String {
        guard let line = info.split(separator: "\n").first(where: { $0.hasPrefix("model name") }),
              let colon = line.firstIndex(of: ":") else { return "unknown CPU" }
        return line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
    }

    /// The same-run ceiling every benchmark compares with: sgemm at 2048³ with the current
    /// `BLAS.threads`, GFLOP/s, the median of 3 timed runs after one warm-up.
    public static func sgemm2048() -> Double { sgemmRate(size: 2048) }

    /// sgemm at `size`³ with the current `BLAS.threads`, GFLOP/s, the median of 3 timed runs after
    /// one warm-up.
    public static func sgemmRate(size n: Int) -> Double {
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
