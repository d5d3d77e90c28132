import Testing
@testable import Tensor

/// `Tensor.zeroLazily` and its two ends: a kernel that takes the mark writes instead of adding,
/// one that cannot resolves it to zeros first.
@Suite struct LazyZeroTests {
    @Test func theMarkIsTakenOnceAndResolvedToZeros() {
        let t = Tensor(shape: [5], values: [1, 2, 3, 4, 5])
        #expect(!t.isLazilyZero && !t.takeLazyZero())
        t.zeroLazily()
        #expect(t.isLazilyZero)
        #expect(t.takeLazyZero())                 // the kernel writes every element now
        #expect(!t.isLazilyZero && !t.takeLazyZero())
        t.zeroLazily()
        t.resolveLazyZero()
        #expect(t.array == [0, 0, 0, 0, 0] && !t.isLazilyZero)
        t.fill(7)
        t.resolveLazyZero()                       // not marked: untouched
        #expect(t.array == [7, 7, 7, 7, 7])
    }

    /// Large tensors are zeroed by the workers, every element of them.
    @Test func aLargeMarkIsResolvedInParallel() {
        let t = Tensor(shape: [200_003], repeating: 3)
        t.zeroLazily()
        withThreads(3) { t.resolveLazyZero() }
        #expect(t.buffer.allSatisfy { $0 == 0 })
    }

    /// With poisoning on (the test command's DSAN_POISON_LAZY_ZEROS=1), a marked tensor holds NaN
    /// until it is written or resolved, so that adding into it unnoticed shows.
    @Test func poisoningFillsTheMarkedTensorWithNaN() {
        let saved = Tensor.poisonsLazyZeros
        defer { Tensor.poisonsLazyZeros = saved }
        Tensor.poisonsLazyZeros = true
        let t = Tensor(shape: [9], repeating: 1)
        t.zeroLazily()
        #expect(t.array.allSatisfy { $0.isNaN })
        t.resolveLazyZero()
        #expect(t.buffer.allSatisfy { $0 == 0 })
        Tensor.poisonsLazyZeros = false
        t.fill(2)
        t.zeroLazily()
        #expect(t.array == Array(repeating: 2, count: 9))   // the mark alone, nothing written
        _ = t.takeLazyZero()
    }
}
