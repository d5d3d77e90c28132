import Foundation
import Testing
import VectorKernels

// The vector level of dsan's elementwise, layout and Winograd kernels is one process-wide switch
// (dsan_vk_set_level), and Swift Testing runs suites side by side. Every test that sets the level
// holds `levelLock` while it runs at the level it chose, and the test of the start-up choice holds
// it while it reads the level: otherwise one suite switches the level under another, which then
// checks a level other than the one it names (or, for the start-up test, fails).
private let levelLock = NSRecursiveLock()

/// Runs `body` at each level this CPU supports, narrowest first, with the level lock held, then
/// restores the level found at the start.
func atEveryVectorLevel(_ body: (Int32) -> Void) {
    levelLock.lock()
    defer { levelLock.unlock() }
    let start = dsan_vk_active_level()
    defer { _ = dsan_vk_set_level(start) }
    for level in 0...dsan_vk_supported_level() {
        #expect(dsan_vk_set_level(level) == 0)
        #expect(dsan_vk_active_level() == level)
        body(level)
    }
}

/// As `atEveryVectorLevel`, passing the level's name.
func atEveryVectorLevelNamed(_ body: (String) -> Void) {
    atEveryVectorLevel { body(String(cString: dsan_vk_level_name($0))) }
}

/// Runs `body` with the level lock held: no test switches the level meanwhile.
func withVectorLevelUnchanged<T>(_ body: () throws -> T) rethrows -> T {
    levelLock.lock()
    defer { levelLock.unlock() }
    return try body()
}
