import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Wall time per parallel region of dsan's own loops, by the source line that opened it, for
/// `dsan bench threads --regions`: which regions gain less than the rest from the second thread,
/// and how much of a step runs outside any region (serial code, and OpenBLAS's own GEMM threads).
///
/// Off unless `start()` was called; then every outermost `Parallel.forEach` family call on the
/// thread that called `start()` is timed, and the time since the previous one ended is booked to
/// it as the gap before it. Regions opened from inside a region, or by other threads (the
/// prefetcher), are not timed separately: they are inside their caller's time. Off, a region
/// costs one load and one branch.
///
/// Each timed region also books the time its workers waited inside it (`waitSeconds`): for every
/// worker, the region's wall time less the time it spent in its own share, summed. A worker waits
/// when its share ended before another's (the split was uneven, or the other core ran slower) or
/// started late (the hand-over). What the N-thread region loses beyond 1/N of the 1-thread time
/// and is not waiting is work that ran slower per thread (shared caches, memory, the host).
public enum RegionProfile {
    /// One source line's regions, summed since `start()`.
    public struct Entry: Codable, Equatable, Sendable {
        /// "Module/File.swift:line" of the `Parallel` call.
        public var site: String
        public var calls: Int
        /// Time inside the regions.
        public var seconds: Double
        /// Time on the profiled thread outside any region, just before each of these regions:
        /// the serial code (and OpenBLAS calls) between the previous region and this one.
        public var gapSeconds: Double
        /// Worker-seconds spent waiting inside these regions (summed over the workers): the
        /// region's wall time less each worker's time in its share. 0 for regions run by one
        /// worker.
        public var waitSeconds: Double

        public init(site: String, calls: Int, seconds: Double, gapSeconds: Double, waitSeconds: Double = 0) {
            self.site = site
            self.calls = calls
            self.seconds = seconds
            self.gapSeconds = gapSeconds
            self.waitSeconds = waitSeconds
        }
    }

    /// One outermost region as `start(loggingCalls: true)` records it, in the order they ran: how
    /// finely its loop was cut for the workers there were, and its wall time.
    public struct Call: Codable, Equatable, Sendable {
        /// "Module/File.swift:line" of the `Parallel` call.
        public var site: String
        /// The loop's items: its elements (`forEach`, `forEachWorker`) or the units of `grain`
        /// elements that workers take (`forEachWorkerDynamically`).
        public var items: Int
        /// Workers the loop engaged (1: it ran on the calling thread alone).
        public var workers: Int
        /// Time inside the region, and on the profiled thread outside any region before it.
        public var seconds: Double
        public var gapSeconds: Double

        public init(site: String, items: Int, workers: Int, seconds: Double, gapSeconds: Double) {
            self.site = site
            self.items = items
            self.workers = workers
            self.seconds = seconds
            self.gapSeconds = gapSeconds
        }
    }

    @usableFromInline nonisolated(unsafe) static var active = false
    /// The regions since `start(loggingCalls: true)`, nil when not logging.
    nonisolated(unsafe) private static var log: [Call]? = nil
    nonisolated(unsafe) private static var owner = pthread_self()
    nonisolated(unsafe) private static var depth = 0
    nonisolated(unsafe) private static var lastEnd: UInt64 = 0
    nonisolated(unsafe) private static var entries: [SiteKey: Entry] = [:]
    /// Gap after the last region, booked by `stop()`.
    nonisolated(unsafe) private static var tail: Double = 0
    /// While a timed region's shares run: nanoseconds each share took (slot t for share t).
    nonisolated(unsafe) private static var shareNanoseconds = UnsafeMutablePointer<UInt64>.allocate(capacity: 0)
    nonisolated(unsafe) private static var shareCapacity = 0
    /// A region's shares are being timed (nested `run`s inside them are not).
    nonisolated(unsafe) private static var sharesTimed = false
    /// Worker-nanoseconds waited in the current outermost region so far.
    nonisolated(unsafe) private static var waited: UInt64 = 0

    private struct SiteKey: Hashable {
        var file: UInt
        var line: UInt
    }

    /// Starts timing the calling thread's regions, from zero; with `loggingCalls`, also keeps every
    /// region as a `Call` (`calls()`).
    public static func start(loggingCalls: Bool = false) {
        entries = [:]
        log = loggingCalls ? [] : nil
        tail = 0
        depth = 0
        owner = pthread_self()
        lastEnd = now()
        active = true
    }

    /// Stops and returns the entries (largest total first) and the time after the last region.
    public static func stop() -> (entries: [Entry], tail: Double) {
        active = false
        tail = seconds(now() - lastEnd)
        return (entries.values.sorted { ($0.seconds + $0.gapSeconds) > ($1.seconds + $1.gapSeconds) }, tail)
    }

    /// The regions logged since `start(loggingCalls: true)`, in the order they ran (empty when
    /// not logging).
    public static func calls() -> [Call] { log ?? [] }

    /// Runs `body`, a region of `items` items on `workers` workers opened at `file`:`line`.
    @inlinable
    static func region<R>(_ file: StaticString, _ line: UInt, items: Int, workers: Int, _ body: () -> R) -> R {
        if _slowPath(active) { return measured(file, line, items: items, workers: workers, body) }
        return body()
    }

    @usableFromInline
    static func measured<R>(_ file: StaticString, _ line: UInt, items: Int, workers: Int, _ body: () -> R) -> R {
        if depth > 0 || pthread_equal(pthread_self(), owner) == 0 { return body() }
        let begin = now()
        depth += 1
        waited = 0
        let result = body()
        depth -= 1
        let end = now()
        let key = SiteKey(file: UInt(bitPattern: file.utf8Start), line: line)
        var entry = entries[key] ?? Entry(site: "\(file):\(line)", calls: 0, seconds: 0, gapSeconds: 0)
        entry.calls += 1
        entry.seconds += seconds(end - begin)
        entry.gapSeconds += seconds(begin - lastEnd)
        entry.waitSeconds += seconds(waited)
        entries[key] = entry
        log?.append(Call(site: entry.site, items: items, workers: workers, seconds: seconds(end - begin),
                         gapSeconds: seconds(begin - lastEnd)))
        lastEnd = end
        return result
    }

    /// For `Parallel.run`: when this is the outermost timed region's own `run` (on the profiled
    /// thread, not nested in another share), starts timing its shares (`timeShare`, then
    /// `endShares`) and returns the start; otherwise nil.
    @usableFromInline
    static func beginShares(_ workers: Int) -> UInt64? {
        guard active, depth == 1, !sharesTimed, pthread_equal(pthread_self(), owner) != 0 else { return nil }
        if shareCapacity < workers {
            shareNanoseconds.deallocate()
            shareNanoseconds = .allocate(capacity: workers)
            shareCapacity = workers
        }
        shareNanoseconds.update(repeating: 0, count: workers)
        sharesTimed = true
        return now()
    }

    /// Runs share `t` of the region `beginShares` started, timing it (any thread).
    @usableFromInline
    static func timeShare(_ t: Int, _ share: (Int) -> Void) {
        let start = now()
        share(t)
        shareNanoseconds[t] = now() - start
    }

    /// Ends the region's share timing: books, per worker, its wall time less the share's.
    @usableFromInline
    static func endShares(_ workers: Int, begin: UInt64) {
        let wall = now() - begin
        sharesTimed = false
        for t in 0..<workers { waited += wall - min(wall, shareNanoseconds[t]) }
    }

    private static func now() -> UInt64 {
        var t = timespec()
        clock_gettime(CLOCK_MONOTONIC, &t)
        return UInt64(t.tv_sec) * 1_000_000_000 + UInt64(t.tv_nsec)
    }

    private static func seconds(_ nanoseconds: UInt64) -> Double { Double(nanoseconds) / 1e9 }
}
