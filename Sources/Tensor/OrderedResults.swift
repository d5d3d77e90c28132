import Foundation

/// Results that arrive in any order from worker threads and are taken in index order: `dsan
/// prepare` runs cases on several threads and writes them in manifest order. `take` waits for
/// the result it names; each result is taken once.
public final class OrderedResults<T: Sendable>: @unchecked Sendable {
    private let condition = NSCondition()
    private var results: [Int: Result<T, Error>] = [:]

    public init() {}

    /// Stores the result of `index` (from any thread) and wakes a waiting `take`.
    public func put(_ index: Int, _ result: Result<T, Error>) {
        condition.lock()
        results[index] = result
        condition.broadcast()
        condition.unlock()
    }

    /// Waits for the result of `index` and removes it.
    public func take(_ index: Int) -> Result<T, Error> {
        condition.lock()
        defer { condition.unlock() }
        while results[index] == nil { condition.wait() }
        return results.removeValue(forKey: index)!
    }
}
