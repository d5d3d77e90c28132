import Foundation
import Testing
@testable import CPU

/// CPUID decoding: family/model arithmetic, extensions gated by the OS's XCR0, the summary text,
/// and the live CPU against the kernel's own reading (/proc/cpuinfo).
@Suite struct CPUFeaturesTests {
    // CPUID bit positions (Intel SDM vol. 2A, CPUID).
    static let sse3: UInt32 = 1 << 0, ssse3: UInt32 = 1 << 9, fma: UInt32 = 1 << 12, sse41: UInt32 = 1 << 19,
               sse42: UInt32 = 1 << 20, osxsave: UInt32 = 1 << 27, avx: UInt32 = 1 << 28, hypervisor: UInt32 = 1 << 31
    static let avx2: UInt32 = 1 << 5, avx512f: UInt32 = 1 << 16, avx512dq: UInt32 = 1 << 17,
               avx512bw: UInt32 = 1 << 30, avx512vl: UInt32 = 1 << 31
    static let amxBF16: UInt32 = 1 << 22, amxTile: UInt32 = 1 << 24, avx512bf16: UInt32 = 1 << 5
    static let leaf1Full = sse3 | ssse3 | fma | sse41 | sse42 | osxsave | avx
    static let leaf7AVX512 = avx2 | avx512f | avx512dq | avx512bw | avx512vl

    /// This machine as its hypervisor shows it: an Intel Xeon, family 6 model 0xCF (207).
    static func xeon207(xcr0: UInt64, leaf7EDX: UInt32 = 0) -> CPUIDWords {
        CPUIDWords(vendor: "GenuineIntel", brand: "Intel(R) Xeon(R) Processor",
                   leaf1EAX: 0x000C_06F2, leaf1ECX: leaf1Full | hypervisor,
                   leaf7EBX: leaf7AVX512, leaf7EDX: leaf7EDX, leaf7Sub1EAX: avx512bf16, xcr0: xcr0)
    }

    @Test func decodesIntelFamilyModelAndEveryExtensionTheOSEnables() {
        let f = CPUFeatures(decoding: Self.xeon207(xcr0: 0xE7))
        #expect(f.family == 6 && f.model == 207)
        #expect(f.hypervisor)
        #expect(f.hasAVX512Core && f.has(.avx512bf16) && !f.has(.amx))
        #expect(f.disabledByOS.isEmpty)
        #expect(f.summary == "SSE4.2 AVX AVX2 FMA AVX-512F/BW/VL/DQ AVX512-BF16")
        #expect(f.identity == "Intel(R) Xeon(R) Processor (GenuineIntel family 6 model 207, under a hypervisor)")
    }

    @Test func avx512WithoutItsOSStateIsNotUsable() {
        // XCR0 = x87|SSE|AVX: the OS does not save the opmask and ZMM registers.
        let f = CPUFeatures(decoding: Self.xeon207(xcr0: 0x7))
        #expect(f.has(.avx2) && f.has(.fma))
        #expect(!f.hasAVX512Core && !f.has(.avx512bf16))
        #expect(f.disabledByOS == [.avx512f, .avx512bw, .avx512vl, .avx512dq, .avx512bf16])
        #expect(f.summary == "SSE4.2 AVX AVX2 FMA [AVX-512F/BW/VL/DQ AVX512-BF16 disabled by the OS]")
    }

    @Test func withoutOSXSAVEThereIsNoAVXAtAll() {
        var w = Self.xeon207(xcr0: 0xE7)
        w.leaf1ECX &= ~Self.osxsave
        let f = CPUFeatures(decoding: w)
        #expect(f.extensions == [.sse3, .ssse3, .sse41, .sse42])
        #expect(f.summary.hasPrefix("SSE4.2 [AVX AVX2 FMA AVX-512F/BW/VL/DQ"))
    }

    @Test func amxNeedsTheTileStateToo() {
        let tiles: UInt64 = 0b11 << 17
        let on = CPUFeatures(decoding: Self.xeon207(xcr0: 0xE7 | tiles, leaf7EDX: Self.amxBF16 | Self.amxTile))
        #expect(on.has(.amx))
        #expect(on.summary.hasSuffix("AVX512-BF16 AMX"))
        let off = CPUFeatures(decoding: Self.xeon207(xcr0: 0xE7, leaf7EDX: Self.amxBF16 | Self.amxTile))
        #expect(!off.has(.amx) && off.disabledByOS == [.amx])
    }

    @Test func decodesAMDExtendedFamily() {
        // AMD EPYC 7B13 (Zen 3): base family 0xF + extended 0xA = 0x19, model 0x01.
        let w = CPUIDWords(vendor: "AuthenticAMD", brand: "AMD EPYC 7B13 64-Core Processor",
                           leaf1EAX: 0x00A0_0F11, leaf1ECX: Self.leaf1Full,
                           leaf7EBX: Self.avx2, leaf7EDX: 0, leaf7Sub1EAX: 0, xcr0: 0x7)
        let f = CPUFeatures(decoding: w)
        #expect(f.family == 0x19 && f.model == 0x01 && !f.hypervisor)
        #expect(f.summary == "SSE4.2 AVX AVX2 FMA")
    }

    @Test func baselineCPUSaysSSE2() {
        let w = CPUIDWords(vendor: "GenuineIntel", brand: "", leaf1EAX: 0xF41, leaf1ECX: 0,
                           leaf7EBX: 0, leaf7EDX: 0, leaf7Sub1EAX: 0, xcr0: 0)
        let f = CPUFeatures(decoding: w)
        #expect(f.summary == "SSE2")
        #expect(f.family == 15 && f.model == 4)
    }

    /// The live CPU agrees with the Linux kernel's flags for every extension dsan reports (the
    /// kernel, too, hides a flag whose register state it does not enable).
    @Test(.enabled(if: FileManager.default.fileExists(atPath: "/proc/cpuinfo")))
    func currentCPUMatchesProcCPUInfo() throws {
        let info = try String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8)
        let line = try #require(info.split(separator: "\n").first { $0.hasPrefix("flags") })
        let flags = Set(line.split(separator: " ").map(String.init))
        let current = CPUFeatures.current
        let pairs: [(CPUFeatures.Extension, String)] = [
            (.sse3, "pni"), (.ssse3, "ssse3"), (.sse41, "sse4_1"), (.sse42, "sse4_2"), (.avx, "avx"), (.avx2, "avx2"),
            (.fma, "fma"), (.avx512f, "avx512f"), (.avx512bw, "avx512bw"), (.avx512vl, "avx512vl"),
            (.avx512dq, "avx512dq"), (.avx512bf16, "avx512_bf16"),
        ]
        for (e, flag) in pairs {
            #expect(current.has(e) == flags.contains(flag), "\(e.rawValue): CPUID says \(current.has(e)), /proc/cpuinfo flag \(flag) \(flags.contains(flag))")
        }
        #expect(current.has(.amx) == (flags.contains("amx_tile") && flags.contains("amx_bf16")))
        #expect(current.hypervisor == flags.contains("hypervisor"))
        #expect(!current.vendor.isEmpty)
    }
}
