import BLAS
import Foundation
import Tensor

/// The thread counts are process-wide (`Parallel.threads`, `BLAS.threads`) and the test suites run
/// side by side in one process: a test that changes them does so here, holding one lock, so two
/// such tests never interleave and each restores what it found.
public enum ThreadSettings {
    /// BLAS's own settings lock: `BLAS.withThreads` in the kernels waits while a test holds it.
    private static var lock: NSRecursiveLock { BLAS.settingsLock }

    /// Runs `body` with `parallel` dsan threads and `blas` OpenBLAS threads (nil: unchanged).
    public static func with<T>(parallel: Int? = nil, blas: Int? = nil, _ body: () throws -> T) rethrows -> T {
        lock.lock()
        defer { lock.unlock() }
        let savedParallel = Parallel.threads, savedBLAS = BLAS.threads
        defer { Parallel.threads = savedParallel; BLAS.threads = savedBLAS }
        if let parallel { Parallel.threads = parallel }
        if let blas { BLAS.threads = blas }
        return try body()
    }
}
