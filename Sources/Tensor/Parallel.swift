import Dispatch

/// dsan's own parallel loops for the memory-bound kernels (im2col, batch norm, pooling,
/// elementwise). GEMM threads are OpenBLAS's and set separately (`BLAS.threads`).
///
/// Work is split into `threads` contiguous chunks with fixed boundaries, so a kernel whose chunks
/// write disjoint outputs computes the same bits for any thread count. Reductions must therefore
/// reduce per fixed block, not per thread (see `blockedSum`).
public enum Parallel {
    /// Worker count for dsan's own loops. Defaults to the number of online cores; under `mpirun`
    /// the launcher sets it to the cores bound to the rank.
    nonisolated(unsafe) public static var threads: Int = ProcessInfoCores.online

    /// Calls `body` on disjoint ranges covering `0..<count`, in parallel when worthwhile.
    /// `grain` is the smallest range worth a thread.
    @inlinable
    public static func forEach(_ count: Int, grain: Int = 1, _ body: (Range<Int>) -> Void) {
        if count <= 0 { return }
        let workers = min(threads, max(1, count / max(grain, 1)))
        if workers <= 1 { body(0..<count); return }
        DispatchQueue.concurrentPerform(iterations: workers) { t in
            let lo = count * t / workers, hi = count * (t + 1) / workers
            if lo < hi { body(lo..<hi) }
        }
    }

    /// Sum over `0..<count` of `term(i)` computed in fixed blocks of `block` indices and combined in
    /// index order: the result does not depend on the thread count.
    @inlinable
    public static func blockedSum(_ count: Int, block: Int = 4096, _ term: (Range<Int>) -> Double) -> Double {
        if count <= 0 { return 0 }
        let blocks = (count + block - 1) / block
        var partial = [Double](repeating: 0, count: blocks)
        partial.withUnsafeMutableBufferPointer { p in
            let base = p.baseAddress!
            forEach(blocks) { r in
                for b in r { base[b] = term((b * block)..<min(count, (b + 1) * block)) }
            }
        }
        return partial.reduce(0, +)
    }
}

/// Core count of this machine, as the OS reports it.
public enum ProcessInfoCores {
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
