import Testing
@testable import Benchmarks

/// The sign test's interval for a median, which `dsan bench threads` gives for the rounds' step
/// gain ÷ sgemm gain.
@Suite struct MedianIntervalTests {
    /// P(Binomial(n, ½) ≤ j) by counting the n-bit words with at most j ones: the naive reference.
    static func naiveCDF(_ n: Int, _ j: Int) -> Double {
        var count = 0
        for word in 0..<(1 << n) where word.nonzeroBitCount <= j { count += 1 }
        return Double(count) / Double(1 << n)
    }

    @Test func binomialTailsMatchCountingWords() {
        for n in 1...16 {
            for j in -1...n {
                #expect(abs(MedianInterval.binomialHalfCDF(n, j) - Self.naiveCDF(n, j)) < 1e-12, "n \(n), j \(j)")
            }
        }
    }

    /// The widest k whose tail is at most 2.5 %, for every n up to 16, found by trying every k
    /// against the word count; the interval is the k-th smallest to the k-th largest value.
    @Test func intervalTakesTheWidestOrderStatisticsWithTheirCoverage() {
        for n in 1...16 {
            let values = (0..<n).map { Double((n - 1 - $0 + n / 2) % n) + 0.5 }   // 0.5, 1.5, …, rotated and reversed
            var k = 0
            while k + 1 <= (n + 1) / 2 && Self.naiveCDF(n, k) <= 0.025 { k += 1 }
            guard let i = MedianInterval(values) else {
                #expect(k == 0, "n \(n) has an interval with k \(k)")
                continue
            }
            #expect(k >= 1 && i.count == n)
            #expect(i.low == Double(k - 1) + 0.5 && i.high == Double(n - k) + 0.5, "n \(n): \(i)")
            #expect(abs(i.coverage - (1 - 2 * Self.naiveCDF(n, k - 1))) < 1e-12 && i.coverage >= 0.95, "n \(n): \(i)")
            #expect(i.median == (n % 2 == 1 ? Double(n / 2) + 0.5 : Double(n / 2)), "n \(n): \(i)")
        }
    }

    /// Known values: 5 rounds are too few at 95 % (min to max covers 1 − 2/32 = 0.9375); 6 give
    /// min to max (0.96875); 9 the 2nd to the 8th (1 − 20/512); 15 the 4th to the 12th.
    @Test func knownCounts() throws {
        #expect(MedianInterval([1, 2, 3, 4, 5]) == nil)
        #expect(MedianInterval([]) == nil)
        let six = try #require(MedianInterval([6, 1, 5, 2, 4, 3]))
        #expect(six.low == 1 && six.high == 6 && six.coverage == 1 - 2.0 / 64 && six.median == 3.5)
        let nine = try #require(MedianInterval([0.91, 1.03, 0.97, 0.88, 1.10, 0.95, 0.99, 1.01, 0.93]))
        #expect(nine.low == 0.91 && nine.high == 1.03 && abs(nine.coverage - (1 - 20.0 / 512)) < 1e-15 && nine.median == 0.97)
        let fifteen = try #require(MedianInterval((1...15).map(Double.init)))
        #expect(fifteen.low == 4 && fifteen.high == 12 && abs(fifteen.coverage - (1 - 2 * 576.0 / 32768)) < 1e-15)
        // At 80 %: 5 values give the 2nd to the 4th? P(B ≤ 0) = 1/32 ≤ 0.1, P(B ≤ 1) = 6/32 > 0.1: k = 1.
        let five = try #require(MedianInterval([1, 2, 3, 4, 5], confidence: 0.8))
        #expect(five.low == 1 && five.high == 5)
    }

    @Test func sideAgainstAReference() throws {
        let below = try #require(MedianInterval([0.8, 0.85, 0.9, 0.92, 0.95, 0.97]))
        #expect(below.side(of: 1) == -1)
        let across = try #require(MedianInterval([0.8, 0.85, 0.9, 0.92, 0.95, 1.02]))
        #expect(across.side(of: 1) == 0)
        let above = try #require(MedianInterval([1.01, 1.05, 1.1, 1.2, 1.3, 1.02]))
        #expect(above.side(of: 1) == 1)
        #expect(try #require(MedianInterval([1, 1.05, 1.1, 1.2, 1.3, 1.02])).side(of: 1) == 0)   // touching 1 is across
    }
}
