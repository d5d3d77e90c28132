import Foundation
import COpenBLAS

/// Whether a GEMM operand is used as stored or transposed.
public enum Transpose: Sendable {
    case none, transpose

    @usableFromInline var cblas: CBLAS_TRANSPOSE { self == .none ? CblasNoTrans : CblasTrans }
}

/// Thin, checked wrapper over OpenBLAS (single precision, row-major).
///
/// The corresponding C function of `sgemm` is `cblas_sgemm`; CBLAS reports no error codes (a bad
/// argument makes OpenBLAS print and return), so the shape contract is checked here with
/// preconditions before the call: a mismatch is a bug in dsan, not a failure of the world.
public enum BLAS {
    /// C[m×n] = alpha · op(A)[m×k] · op(B)[k×n] + beta · C, all row-major.
    ///
    /// `lda`, `ldb`, `ldc` are the row strides of A, B and C as stored: A is stored `m×k` (or `k×m`
    /// when transposed), so `lda ≥ k` (or `≥ m`); likewise for B and C.
    @inlinable
    public static func sgemm(
        _ transA: Transpose, _ transB: Transpose,
        m: Int, n: Int, k: Int,
        alpha: Float = 1,
        a: UnsafePointer<Float>, lda: Int,
        b: UnsafePointer<Float>, ldb: Int,
        beta: Float = 0,
        c: UnsafeMutablePointer<Float>, ldc: Int
    ) {
        precondition(m >= 0 && n >= 0 && k >= 0, "sgemm: negative size m=\(m) n=\(n) k=\(k)")
        precondition(lda >= max(1, transA == .none ? k : m), "sgemm: lda \(lda) too small")
        precondition(ldb >= max(1, transB == .none ? n : k), "sgemm: ldb \(ldb) too small")
        precondition(ldc >= max(1, n), "sgemm: ldc \(ldc) too small")
        if m == 0 || n == 0 { return }
        cblas_sgemm(CblasRowMajor, transA.cblas, transB.cblas,
                    blasint(m), blasint(n), blasint(k),
                    alpha, a, blasint(lda), b, blasint(ldb), beta, c, blasint(ldc))
    }

    /// The number of threads OpenBLAS uses inside one call.
    public static var threads: Int {
        get { Int(openblas_get_num_threads()) }
        set {
            precondition(newValue >= 1, "BLAS.threads must be at least 1, got \(newValue)")
            openblas_set_num_threads(Int32(newValue))
        }
    }

    /// Runs `body` with OpenBLAS on `count` threads, then restores the previous count. dsan's
    /// kernels run their GEMMs with `withThreads(1)` inside their own workers.
    ///
    /// OpenBLAS's thread count is one process-wide setting, so `body` runs holding `settingsLock`:
    /// two threads that each ran a kernel this way at the same time (test suites do, side by side)
    /// would otherwise restore each other's counts, and a kernel meant to run single-threaded GEMMs
    /// could run them on OpenBLAS's threads, which round differently. Call it from the thread
    /// that owns the work, never from inside `body`'s workers.
    public static func withThreads<R>(_ count: Int, _ body: () throws -> R) rethrows -> R {
        settingsLock.lock()
        defer { settingsLock.unlock() }
        let saved = threads
        if saved == count { return try body() }
        threads = count
        defer { threads = saved }
        return try body()
    }

    /// Held while a thread depends on the process-wide thread counts staying as it set them
    /// (`withThreads`; the tests' `ThreadSettings`). Recursive: a holder may nest.
    public static let settingsLock = NSRecursiveLock()

    /// The CPU core type OpenBLAS detected and dispatches kernels for (e.g. "Zen", "Haswell").
    public static var coreName: String { String(cString: openblas_get_corename()) }

    /// OpenBLAS's build configuration string (version, threading model, max threads).
    public static var configuration: String { String(cString: openblas_get_config()) }
}
