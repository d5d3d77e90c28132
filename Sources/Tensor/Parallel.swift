import Dispatch
import Foundation

/// dsan's own parallel loops for the memory-bound kernels (im2col, batch norm, pooling,
/// elementwise). GEMM threads are OpenBLAS's and set separately (`BLAS.threads`).
///
/// Work is split into `threads` contiguous chunks with fixed boundaries, so a kernel whose chunks
/// write disjoint outputs computes the same bits for any thread count. Reductions must therefore
/// reduce per fixed block, not per thread (see `blockedSum`). Chunk t runs on worker t of dsan's
/// persistent pool, the caller being worker 0 (`run`, Sources/Tensor/ParallelPool.swift).
public enum Parallel {
    /// Worker count for dsan's own loops. Defaults to the number of online cores; under `mpirun`
    /// the launcher sets it to the cores bound to the rank.
    nonisolated(unsafe) public static var threads: Int = ProcessInfoCores.available

    /// Runs `body` with `threads` set to `count` and restores the previous count afterwards (also
    /// when `body` throws). The count is process-wide: code on other threads of the process sees
    /// it too, so use this where one piece of work owns the process for its duration (a benchmark's
    /// measurement, `dsan prepare`). It takes no lock: `body`'s own workers may still call
    /// `BLAS.withThreads`, which would wait forever on a lock held here.
    public static func withThreads<R>(_ count: Int, _ body: () throws -> R) rethrows -> R {
        let saved = threads
        threads = count
        defer { threads = saved }
        return try body()
    }

    /// Calls `body` on disjoint ranges covering `0..<count`, in parallel when worthwhile.
    /// `grain` is the smallest range worth a thread.
    @inlinable
    public static func forEach(_ count: Int, grain: Int = 1, file: StaticString = #fileID, line: UInt = #line,
                               _ body: (Range<Int>) -> Void) {
        if count <= 0 { return }
        let workers = min(threads, max(1, count / max(grain, 1)))
        RegionProfile.region(file, line, items: count, workers: workers) {
            if workers <= 1 { body(0..<count); return }
            run(workers) { t in
                let lo = count * t / workers, hi = count * (t + 1) / workers
                if lo < hi { body(lo..<hi) }
            }
        }
    }

    /// Sum over `0..<count` of `term(i)` computed in fixed blocks of `block` indices and combined in
    /// index order: the result does not depend on the thread count.
    @inlinable
    public static func blockedSum(_ count: Int, block: Int = 4096, file: StaticString = #fileID, line: UInt = #line,
                                  _ term: (Range<Int>) -> Double) -> Double {
        if count <= 0 { return 0 }
        let blocks = (count + block - 1) / block
        var partial = [Double](repeating: 0, count: blocks)
        partial.withUnsafeMutableBufferPointer { p in
            let base = p.baseAddress!
            forEach(blocks, file: file, line: line) { r in
                for b in r { base[b] = term((b * block)..<min(count, (b + 1) * block)) }
            }
        }
        return partial.reduce(0, +)
    }
}

/// Core counts, as the OS reports them.
public enum ProcessInfoCores {
    /// Cores this process may run on (its CPU affinity mask): under `mpirun`, which binds each
    /// rank to a core, this is 1, and dsan's loops and OpenBLAS then use one thread per rank.
    public static var available: Int {
        // Linux reports the mask in /proc/self/status as "Cpus_allowed:\t<hex words, commas>".
        if let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8),
           let line = status.split(separator: "\n").first(where: { $0.hasPrefix("Cpus_allowed:") }) {
            let hex = line.dropFirst("Cpus_allowed:".count).filter { $0.isHexDigit }
            let bits = hex.reduce(0) { $0 + (Int(String($1), radix: 16) ?? 0).nonzeroBitCount }
            if bits > 0 { return min(bits, online) }
        }
        return online
    }

    /// Cores online on this machine.
    public static var online: Int {
        #if canImport(Glibc)
        return max(1, Int(sysconfOnline()))
        #else
        return 1
        #endif
    }
}

#if canImport(Glibc)
import Glibc
@usableFromInline func sysconfOnline() -> Int { Int(sysconf(Int32(_SC_NPROCESSORS_ONLN))) }
#endif
