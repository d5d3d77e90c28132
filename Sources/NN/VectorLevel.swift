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

    /// `fatalError`, not `preconditionFailure`: its message survives release builds. (The `dsan`
    /// executable checks `DSAN_SIMD` with `requested` before any command runs, so there a bad
    /// value stops the program with a plain message instead.)
    @usableFromInline static let configured: Bool = {
        do {
            guard let level = try requested(environmentValue) else { return true }
            guard dsan_vk_set_level(level.rawValue) == 0, dsan_vk_set_gemm_level(level.rawValue) == 0 else {
                fatalError("DSAN_SIMD=\(level): the kernels refused a level the CPU check accepted")
            }
        } catch {
            fatalError("\(error)")
        }
        return true
    }()

    /// `DSAN_SIMD` as this process sees it (nil when unset or empty).
    public static var environmentValue: String? {
        guard let raw = getenv("DSAN_SIMD"), raw.pointee != 0 else { return nil }
        return String(cString: raw)
    }

    /// The level a `DSAN_SIMD` value asks for (case-insensitive; nil for nil: the widest). Throws
    /// for a name that is no level, or a level wider than this CPU and OS support.
    public static func requested(_ value: String?, supported: VectorLevel = supported) throws -> VectorLevel? {
        guard let value else { return nil }
        let name = value.lowercased()
        guard let level = allCases.first(where: { $0.description == name }) else {
            throw VectorLevelError(message: "DSAN_SIMD=\(name): expected one of \(allCases.map(\.description).joined(separator: ", "))")
        }
        guard level.rawValue <= supported.rawValue else {
            throw VectorLevelError(message: "DSAN_SIMD=\(name): this CPU supports up to \(supported); unset DSAN_SIMD or choose a narrower level")
        }
        return level
    }

    /// What dsan's own kernels run at and why, for the start-up report: "avx512, the widest this
    /// CPU has", or "avx2, set by DSAN_SIMD=avx2 (this CPU has up to avx512)".
    public static func describe(active: VectorLevel, supported: VectorLevel, requested: String?) -> String {
        guard let requested else { return "\(active), the widest this CPU has" }
        return active == supported ? "\(active), set by DSAN_SIMD=\(requested.lowercased()) (the widest this CPU has)"
            : "\(active), set by DSAN_SIMD=\(requested.lowercased()) (this CPU has up to \(supported))"
    }

    /// `describe` for this process (applies `DSAN_SIMD` first).
    public static var report: String { describe(active: active, supported: supported, requested: environmentValue) }

    public var description: String { String(cString: dsan_vk_level_name(rawValue)) }
}

/// A `DSAN_SIMD` value that names no level, or one this CPU lacks.
public struct VectorLevelError: Error, CustomStringConvertible {
    public var message: String
    public var description: String { message }
}
