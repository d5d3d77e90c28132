import Testing
@testable import BLAS
import CPU

/// Feature sets of real CPUs (as CPUID shows them, OS state enabled) and OpenBLAS builds.
enum Fixture {
    static let avx2Set: Set<CPUFeatures.Extension> = [.sse3, .ssse3, .sse41, .sse42, .avx, .avx2, .fma]
    static let avx512Set = avx2Set.union([.avx512f, .avx512bw, .avx512vl, .avx512dq])

    static let zen3 = CPUFeatures(vendor: "AuthenticAMD", brand: "AMD EPYC 7B13 64-Core Processor",
                                  family: 0x19, model: 0x01, hypervisor: true, extensions: avx2Set)
    static let zen4 = CPUFeatures(vendor: "AuthenticAMD", brand: "AMD EPYC 9654 96-Core Processor",
                                  family: 0x19, model: 0x11, extensions: avx512Set.union([.avx512bf16]))
    static let skylakeSP = CPUFeatures(vendor: "GenuineIntel", brand: "Intel(R) Xeon(R) Gold 6148 CPU @ 2.40GHz",
                                       family: 6, model: 85, extensions: avx512Set)
    static let sapphireRapids = CPUFeatures(vendor: "GenuineIntel", brand: "Intel(R) Xeon(R) Platinum 8480+",
                                            family: 6, model: 143, extensions: avx512Set.union([.avx512bf16, .amx]))
    /// A VM whose hypervisor shows a generic model (QEMU's "Common KVM processor", family 15
    /// model 6) but passes the host's AVX-512 flags through.
    static let maskedVM = CPUFeatures(vendor: "GenuineIntel", brand: "Common KVM processor",
                                      family: 15, model: 6, hypervisor: true, extensions: avx512Set)
    /// This machine: Intel family 6 model 207 behind a hypervisor, AMX hidden.
    static let xeon207 = CPUFeatures(vendor: "GenuineIntel", brand: "Intel(R) Xeon(R) Processor",
                                     family: 6, model: 207, hypervisor: true, extensions: avx512Set.union([.avx512bf16]))
    static let sseOnly = CPUFeatures(vendor: "GenuineIntel", brand: "Intel(R) Core(TM)2 Duo CPU E8400",
                                     family: 6, model: 23, extensions: [.sse3, .ssse3, .sse41])

    /// Debian 12's OpenBLAS 0.3.21 (DYNAMIC_ARCH), as `OpenBLASBuild.loaded()` lists it here.
    static let debian0321Cores = ["Prescott", "Atom", "Core2", "Penryn", "Dunnington", "Nehalem", "Opteron",
                                  "Opteron_SSE3", "Barcelona", "Nano", "Bobcat", "Sandybridge", "Bulldozer",
                                  "Piledriver", "Steamroller", "Excavator", "Haswell", "Zen", "SkylakeX", "Cooperlake"]
    static func debian0321(loaded: String) -> OpenBLASBuild {
        OpenBLASBuild(configuration: "OpenBLAS 0.3.21 NO_LAPACKE DYNAMIC_ARCH NO_AFFINITY \(loaded) MAX_THREADS=64",
                      cores: debian0321Cores, loadedCore: loaded)
    }
    /// A newer build with the SapphireRapids core.
    static func withSapphireRapids(loaded: String) -> OpenBLASBuild {
        OpenBLASBuild(configuration: "OpenBLAS 0.3.26 DYNAMIC_ARCH NO_AFFINITY \(loaded) MAX_THREADS=64",
                      cores: debian0321Cores + ["SapphireRapids"], loadedCore: loaded)
    }
}

/// `OpenBLASCore.choose`, the pure choice table.
@Suite struct CoreChoiceTests {
    func forced(_ d: CoreDecision) -> String? {
        if case let .force(core, _) = d { return core }
        return nil
    }

    @Test func zen3KeepsZenAndRecoversFromAMaskedFallback() {
        #expect(forced(OpenBLASCore.choose(features: Fixture.zen3, build: Fixture.debian0321(loaded: "Zen"))) == nil)
        // Same level as Zen: OpenBLAS's choice stands.
        #expect(forced(OpenBLASCore.choose(features: Fixture.zen3, build: Fixture.debian0321(loaded: "Haswell"))) == nil)
        #expect(forced(OpenBLASCore.choose(features: Fixture.zen3, build: Fixture.debian0321(loaded: "Prescott"))) == "Zen")
    }

    @Test func zen4GetsTheAVX512Kernels() {
        let d = OpenBLASCore.choose(features: Fixture.zen4, build: Fixture.debian0321(loaded: "Zen"))
        #expect(d == .force(core: "Cooperlake", reason: "OpenBLAS chose Zen (AVX2+FMA), the CPU supports Cooperlake (AVX-512 with BF16)"))
        #expect(forced(OpenBLASCore.choose(features: Fixture.zen4, build: Fixture.debian0321(loaded: "Cooperlake"))) == nil)
    }

    @Test func skylakeSPKeepsSkylakeXAndABuildWithoutAVX512KeepsHaswell() {
        #expect(forced(OpenBLASCore.choose(features: Fixture.skylakeSP, build: Fixture.debian0321(loaded: "SkylakeX"))) == nil)
        #expect(forced(OpenBLASCore.choose(features: Fixture.skylakeSP, build: Fixture.debian0321(loaded: "Prescott"))) == "SkylakeX")
        var noAVX512 = Fixture.debian0321(loaded: "Haswell")
        noAVX512.cores.removeAll { $0 == "SkylakeX" || $0 == "Cooperlake" }
        #expect(forced(OpenBLASCore.choose(features: Fixture.skylakeSP, build: noAVX512)) == nil)
    }

    @Test func sapphireRapidsTakesTheBestCoreTheBuildHas() {
        #expect(forced(OpenBLASCore.choose(features: Fixture.sapphireRapids, build: Fixture.debian0321(loaded: "Cooperlake"))) == nil)
        #expect(forced(OpenBLASCore.choose(features: Fixture.sapphireRapids, build: Fixture.debian0321(loaded: "Prescott"))) == "Cooperlake")
        #expect(forced(OpenBLASCore.choose(features: Fixture.sapphireRapids, build: Fixture.withSapphireRapids(loaded: "Prescott"))) == "SapphireRapids")
        #expect(forced(OpenBLASCore.choose(features: Fixture.sapphireRapids, build: Fixture.withSapphireRapids(loaded: "SapphireRapids"))) == nil)
    }

    @Test func maskedVMGetsWhatItsFlagsAllow() {
        let d = OpenBLASCore.choose(features: Fixture.maskedVM, build: Fixture.debian0321(loaded: "Prescott"))
        #expect(d == .force(core: "SkylakeX", reason: "OpenBLAS chose Prescott (SSE), the CPU supports SkylakeX (AVX-512)"))
        // This machine: no AMX visible, so Cooperlake even where the build has SapphireRapids.
        #expect(forced(OpenBLASCore.choose(features: Fixture.xeon207, build: Fixture.withSapphireRapids(loaded: "Prescott"))) == "Cooperlake")
    }

    @Test func sseOnlyCPUIsLeftAlone() {
        for loaded in ["Prescott", "Core2", "Penryn"] {
            #expect(OpenBLASCore.choose(features: Fixture.sseOnly, build: Fixture.debian0321(loaded: loaded))
                    == .keep(reason: "OpenBLAS chose \(loaded), the widest kernels this build has for the CPU"))
        }
    }

    @Test func aSingleCoreBuildOrAnUnknownCoreIsKept() {
        let single = OpenBLASBuild(configuration: "OpenBLAS 0.3.21 NO_AFFINITY HASWELL MAX_THREADS=64", cores: [], loadedCore: "Haswell")
        #expect(forced(OpenBLASCore.choose(features: Fixture.xeon207, build: single)) == nil)
        #expect(forced(OpenBLASCore.choose(features: Fixture.xeon207, build: Fixture.debian0321(loaded: "GraniteRapids"))) == nil)
    }

    @Test func everyCandidateIsAKnownCoreAndAMDPrefersZen() {
        #expect(OpenBLASCore.candidates(vendor: "AuthenticAMD").map(\.name).prefix(5) == ["SapphireRapids", "Cooperlake", "SkylakeX", "Zen", "Haswell"])
        #expect(OpenBLASCore.candidates(vendor: "GenuineIntel").map(\.name)[3] == "Haswell")
        var noZen = Fixture.debian0321(loaded: "Prescott")
        noZen.cores.removeAll { $0 == "Zen" }
        #expect(forced(OpenBLASCore.choose(features: Fixture.zen3, build: noZen)) == "Haswell")
    }

    /// The library linked here: a DYNAMIC_ARCH build lists the core it loaded, Prescott (its
    /// fallback) and no 32-bit core.
    @Test func loadedBuildListsItsCores() {
        let build = OpenBLASBuild.loaded()
        #expect(build.loadedCore == BLAS.coreName)
        if build.isDynamic {
            #expect(build.has(build.loadedCore), "\(build.cores)")
            #expect(build.has("Prescott"))
        } else {
            #expect(build.cores.isEmpty)
        }
    }
}
