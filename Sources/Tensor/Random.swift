/// A small deterministic generator (SplitMix64) for initialisation, sampling and tests.
///
/// Its whole state is one `UInt64`, so it is saved into checkpoints and restored exactly.
/// Sequences are identical on every platform and rank.
public struct SplitMix64: RandomNumberGenerator, Sendable, Equatable {
    public var state: UInt64

    public init(seed: UInt64) { state = seed }

    @inlinable
    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// Uniform in [0, 1) with 53 random bits.
    @inlinable
    public mutating func uniform() -> Double { Double(next() >> 11) * 0x1.0p-53 }

    /// Standard normal (Box–Muller; one value per call, the pair's second half discarded so that
    /// the state advance per value is fixed).
    @inlinable
    public mutating func normal() -> Double {
        var u1 = uniform()
        while u1 <= 0 { u1 = uniform() }
        let u2 = uniform()
        return (-2 * _log(u1)).squareRoot() * _cos(2 * Double.pi * u2)
    }
}

#if canImport(Glibc)
import Glibc
@usableFromInline func _log(_ x: Double) -> Double { Glibc.log(x) }
@usableFromInline func _cos(_ x: Double) -> Double { Glibc.cos(x) }
#endif

extension Tensor {
    /// Fills with independent normal values of the given standard deviation.
    public func fillNormal(std: Float, rng: inout SplitMix64) {
        for i in 0..<count { data[i] = Float(rng.normal()) * std }
    }

    /// Fills with independent uniform values in [lo, hi).
    public func fillUniform(_ lo: Float, _ hi: Float, rng: inout SplitMix64) {
        for i in 0..<count { data[i] = lo + (hi - lo) * Float(rng.uniform()) }
    }
}
