import COpenBLAS
import CPU
#if canImport(Glibc)
import Glibc
#endif

/// The loaded OpenBLAS library as far as choosing its kernels goes: its configuration, whether it
/// carries kernels for several CPUs (a DYNAMIC_ARCH build, which reads `OPENBLAS_CORETYPE` when it
/// loads), which cores it has, and the core it is running.
public struct OpenBLASBuild: Sendable, Equatable {
    /// `openblas_get_config()`: "OpenBLAS 0.3.21 NO_LAPACKE DYNAMIC_ARCH NO_AFFINITY Prescott MAX_THREADS=64".
    public var configuration: String
    /// The names of the cores this build has kernels for, as `OPENBLAS_CORETYPE` spells them.
    public var cores: [String]
    /// `openblas_get_corename()`: the core whose kernels run now.
    public var loadedCore: String

    public init(configuration: String, cores: [String], loadedCore: String) {
        self.configuration = configuration
        self.cores = cores
        self.loadedCore = loadedCore
    }

    /// Several cores selectable at load time (`DYNAMIC_ARCH` in the configuration string).
    public var isDynamic: Bool { configuration.split(separator: " ").contains("DYNAMIC_ARCH") }

    /// "OpenBLAS 0.3.21", the first two words of the configuration.
    public var version: String { configuration.split(separator: " ").prefix(2).joined(separator: " ") }

    /// The linked library. Its core list is the known x86-64 names (`OpenBLASCore.known`) that the
    /// library defines a kernel table for: a DYNAMIC_ARCH build exports one data symbol
    /// `gotoblas_<NAME>` per core it was built with (a core left out is an alias of another and
    /// has no symbol of its own). The list is a guide, not a promise: after dsan forces a core,
    /// the restarted process checks `openblas_get_corename()` names it (`BLASCoreSelection`).
    public static func loaded() -> OpenBLASBuild {
        let configuration = String(cString: openblas_get_config())
        var cores: [String] = []
        if configuration.split(separator: " ").contains("DYNAMIC_ARCH"), let handle = dlopen(nil, RTLD_NOW) {
            cores = OpenBLASCore.known.map(\.name).filter { dlsym(handle, "gotoblas_" + $0.uppercased()) != nil }
        }
        return OpenBLASBuild(configuration: configuration, cores: cores,
                             loadedCore: String(cString: openblas_get_corename()))
    }

    /// Whether `name` is one of `cores` (OpenBLAS compares names without case).
    public func has(_ name: String) -> Bool { cores.contains { $0.lowercased() == name.lowercased() } }
}

/// One OpenBLAS x86-64 kernel set ("core"), as `OPENBLAS_CORETYPE` names it, with the widest
/// vector extensions its kernels use.
public struct OpenBLASCore: Sendable, Equatable {
    /// How wide a core's kernels go; a core of a higher level is faster on a CPU that has it.
    public enum Level: Int, Sendable, Comparable, CustomStringConvertible {
        case sse, avx, avx2, avx512, avx512bf16, amx
        public static func < (a: Level, b: Level) -> Bool { a.rawValue < b.rawValue }
        public var description: String {
            switch self {
            case .sse: "SSE"
            case .avx: "AVX"
            case .avx2: "AVX2+FMA"
            case .avx512: "AVX-512"
            case .avx512bf16: "AVX-512 with BF16"
            case .amx: "AMX"
            }
        }
    }

    public var name: String
    public var level: Level
    /// The extensions the CPU must have (usable) for dsan to force this core.
    public var requires: Set<CPUFeatures.Extension>

    /// Every core name an x86-64 OpenBLAS (0.3.x) runs, with its level: OpenBLAS's own
    /// `corename[]` table in driver/others/dynamic.c, where SapphireRapids appears from 0.3.22 on.
    /// The 32-bit-only cores (Katmai, Coppermine, Northwood, Banias, Athlon) are left out: a 64-bit
    /// OpenBLAS replaces them with Prescott, and its library exports them as empty tables.
    public static let known: [OpenBLASCore] = {
        let sse = ["Prescott", "Atom", "Core2", "Penryn", "Dunnington", "Nehalem",
                   "Opteron", "Opteron_SSE3", "Barcelona", "Nano", "Bobcat"]
        let avx = ["Sandybridge", "Bulldozer", "Piledriver", "Steamroller", "Excavator"]
        let avx512: Set<CPUFeatures.Extension> = [.avx512f, .avx512bw, .avx512vl, .avx512dq]
        return sse.map { OpenBLASCore(name: $0, level: .sse, requires: []) }
            + avx.map { OpenBLASCore(name: $0, level: .avx, requires: [.avx]) }
            + [OpenBLASCore(name: "Haswell", level: .avx2, requires: [.avx, .avx2, .fma]),
               OpenBLASCore(name: "Zen", level: .avx2, requires: [.avx, .avx2, .fma]),
               OpenBLASCore(name: "SkylakeX", level: .avx512, requires: avx512.union([.avx2, .fma])),
               OpenBLASCore(name: "Cooperlake", level: .avx512bf16, requires: avx512.union([.avx2, .fma, .avx512bf16])),
               OpenBLASCore(name: "SapphireRapids", level: .amx, requires: avx512.union([.avx2, .fma, .avx512bf16, .amx]))]
    }()

    /// The known core called `name` (without case), if any.
    public static func named(_ name: String) -> OpenBLASCore? {
        known.first { $0.name.lowercased() == name.lowercased() }
    }

    /// The cores dsan may force, best first: each needs all of its `requires`. At the AVX2 level
    /// AMD and Hygon CPUs take Zen first and the others Haswell; SSE cores are never forced (they
    /// are OpenBLAS's own fallback, and their differences do not matter to dsan's GEMMs).
    static func candidates(vendor: String) -> [OpenBLASCore] {
        let amd = vendor == "AuthenticAMD" || vendor == "HygonGenuine"
        let avx2 = amd ? ["Zen", "Haswell"] : ["Haswell", "Zen"]
        return (["SapphireRapids", "Cooperlake", "SkylakeX"] + avx2 + ["Sandybridge"]).map { named($0)! }
    }
}

/// What dsan does about OpenBLAS's core: keep it, or restart with `OPENBLAS_CORETYPE` set to
/// another; either way with a sentence saying why.
public enum CoreDecision: Sendable, Equatable {
    case keep(reason: String)
    case force(core: String, reason: String)
}

extension OpenBLASCore {
    /// The choice, a pure function of the CPU's usable extensions, the build's cores and the core
    /// OpenBLAS chose by itself: the best core of the build whose extensions the CPU has
    /// (`candidates`), forced only when it is of a higher level than OpenBLAS's choice. A choice
    /// of the same level (Zen for Haswell) or a core dsan does not know is kept, and so is any
    /// choice of a build that has one core only.
    public static func choose(features: CPUFeatures, build: OpenBLASBuild) -> CoreDecision {
        let chose = build.loadedCore
        guard build.isDynamic else {
            return .keep(reason: "this OpenBLAS has the \(chose) kernels only (not a DYNAMIC_ARCH build)")
        }
        guard let current = named(chose) else {
            return .keep(reason: "OpenBLAS chose \(chose), a core dsan does not know")
        }
        let best = candidates(vendor: features.vendor).first { core in
            build.has(core.name) && core.requires.isSubset(of: features.extensions)
        }
        guard let best, best.level > current.level else {
            return .keep(reason: "OpenBLAS chose \(chose), the widest kernels this build has for the CPU")
        }
        return .force(core: best.name, reason: "OpenBLAS chose \(chose) (\(current.level)), the CPU supports \(best.name) (\(best.level))")
    }
}
