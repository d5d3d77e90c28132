import Testing
@testable import Tensor

@Suite struct SplitMix64Tests {
    /// The published reference outputs of SplitMix64 (Vigna's splitmix64.c) from seed 0.
    @Test func matchesTheReferenceSequence() {
        var rng = SplitMix64(seed: 0)
        #expect(rng.next() == 0xE220_A839_7B1D_CDAF)
        #expect(rng.next() == 0x6E78_9E6A_A1B9_65F4)
        #expect(rng.next() == 0x06C4_5D18_8009_454F)
    }

    @Test func stateRestoresTheSequence() {
        var a = SplitMix64(seed: 42)
        for _ in 0..<5 { _ = a.next() }
        var b = SplitMix64(seed: 0)
        b.state = a.state
        #expect((0..<10).map { _ in a.next() } == (0..<10).map { _ in b.next() })
    }

    @Test func uniformIsInTheUnitIntervalWithMeanOneHalf() {
        var rng = SplitMix64(seed: 7)
        let n = 200_000
        let u = (0..<n).map { _ in rng.uniform() }
        #expect(u.allSatisfy { $0 >= 0 && $0 < 1 })
        let mean = u.reduce(0, +) / Double(n)
        // Standard error √(1/12/n) ≈ 6.5e-4: six of them.
        #expect(abs(mean - 0.5) < 4e-3, "mean \(mean)")
    }

    @Test func normalHasMeanZeroAndVarianceOne() {
        var rng = SplitMix64(seed: 3)
        let n = 200_000
        let x = (0..<n).map { _ in rng.normal() }
        let mean = x.reduce(0, +) / Double(n)
        let variance = x.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / Double(n - 1)
        #expect(abs(mean) < 0.014, "mean \(mean)")          // 6 standard errors (1/√n ≈ 2.2e-3)
        #expect(abs(variance - 1) < 0.02, "variance \(variance)")   // ≈ 6 standard errors (√(2/n) ≈ 3.2e-3)
    }

    @Test func fillUniformAndNormalUseTheGenerator() {
        var a = SplitMix64(seed: 5), b = SplitMix64(seed: 5)
        let t = Tensor(zeros: [1000])
        t.fillUniform(-2, 3, rng: &a)
        #expect(t.array.allSatisfy { $0 >= -2 && $0 < 3 })
        let u17 = (0...17).map { _ in b.uniform() }.last!
        #expect(t[17] == -2 + 5 * Float(u17))
        t.fillNormal(std: 0.5, rng: &a)
        let sd = (t.array.map { Double($0 * $0) }.reduce(0, +) / 1000).squareRoot()
        #expect(abs(sd - 0.5) < 0.05, "standard deviation \(sd)")
    }
}
