import NumericalTesting

// Helpers shared by the suites that compare dsan's kernels with references bit for bit (the C
// Winograd transforms against the Swift ones) or against float64 (the packed GEMM, F(4,3)).

/// Values with +0, −0 and magnitudes far apart, so rounding differences cannot hide.
func bitTestValues(_ count: Int, seed: UInt64) -> [Float] {
    var v = uniformTensor([count], seed: seed).array
    for i in stride(from: 0, to: count, by: 7) { v[i] = 0 }
    for i in stride(from: 3, to: count, by: 11) { v[i] = -0.0 }
    for i in stride(from: 5, to: count, by: 13) { v[i] *= 1e4 }
    return v
}

/// The first index where `a` and `b` differ in their bits (+0 and −0 differ), nil when none does.
func firstBitDifference(_ a: [Float], _ b: [Float]) -> Int? {
    (0..<min(a.count, b.count)).first { a[$0].bitPattern != b[$0].bitPattern }
}

/// max |fast − reference| / max |reference|.
func relativeErrorAgainstFloat64(_ fast: [Float], _ reference: [Double]) -> Double {
    let scale = max(reference.map(abs).max() ?? 0, .leastNormalMagnitude)
    var worst = 0.0
    for i in 0..<reference.count { worst = max(worst, abs(Double(fast[i]) - reference[i])) }
    return worst / scale
}

/// (Cout, Cin) of the weight transforms' tests: channel counts around multiples of 4, 8 and 16
/// (whole vectors, a partial one, one channel).
let winogradWeightShapes: [(cout: Int, cin: Int)] = [(5, 3), (11, 9), (6, 17), (3, 33), (2, 16), (4, 1)]

/// A volume and the channels of a Winograd transform test: the input `[N, C, D, H, W]`, the
/// output channels, and the bytes of V and M per block (1 forces blocks of the fewest tiles).
struct WinogradVolumeCase: CustomStringConvertible, Sendable {
    var input: [Int]
    var outC: Int
    var blockBytes: Int
    var description: String { "\(input) → \(outC) channels, blockBytes \(blockBytes)" }
}
