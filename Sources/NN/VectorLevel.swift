import VectorKernels
#if canImport(Glibc)
import Glibc
#endif

/// The instruction-set level of dsan's own elementwise kernels (ReLU, the residual join, batch
/// norm's elementwise passes, Adam): the VectorKernels build for 4, 8 or 16 float lanes.
///
/// At start-up the widest level the CPU and OS support is chosen (CPUID + XGETBV). The
/// environment variable `DSAN_SIMD` (`baseline`, `avx2` or `avx512`, read once) narrows it, for
/// comparisons; a level the CPU lacks or an unknown name stops the program with a message naming
/// the variable and what this CPU offers. Every level computes the same bits, except the packed
/// GEMM of the Winograd convs (AVX2 and AVX-512 fuse its multiply-adds), which is why it runs at
/// its own level, set here once and never switched by the tests' `dsan_vk_set_level`.
public enum VectorLevel: Int32, Sendable, CaseIterable, CustomStringConvertible {
    case baseline = 0
    case avx2 = 1
    case avx512 = 2

    /// The widest level this CPU and OS support.
    public static var supported: VectorLevel { VectorLevel(rawValue: dsan_vk_supported_level()) ?? .baseline }

    /// The level the kernels use (after `DSAN_SIMD`).
    public static var active: VectorLevel {
        configure()
        return VectorLevel(rawValue: dsan_vk_active_level()) ?? .baseline
    }

    /// Applies `DSAN_SIMD` once; the kernels' Swift callers call it before their first kernel.
    @inlinable public static func configure() { _ = configured }

    /// `fatalError`, not `preconditionFailure`: its message survives release builds.
    @usableFromInline static let configured: Bool = {
        guard let raw = getenv("DSAN_SIMD"), raw.pointee != 0 else { return true }
        let value = String(cString: raw).lowercased()
        guard let level = allCases.first(where: { $0.description == value }) else {
            fatalError("DSAN_SIMD=\(value): expected one of \(allCases.map(\.description).joined(separator: ", "))")
        }
        guard dsan_vk_set_level(level.rawValue) == 0, dsan_vk_set_gemm_level(level.rawValue) == 0 else {
            fatalError("DSAN_SIMD=\(value): this CPU supports up to \(supported); unset DSAN_SIMD or choose a narrower level")
        }
        return true
    }()

    public var description: String { String(cString: dsan_vk_level_name(rawValue)) }
}
