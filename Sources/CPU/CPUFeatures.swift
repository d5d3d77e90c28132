import CCPUID

/// The CPUID words `CPUFeatures` decodes, as the instruction returned them; the corresponding C
/// functions are `dsan_cpuid` and `dsan_xgetbv0` (Sources/CCPUID). Tests write one by hand to
/// check the decoding, e.g. a CPU with AVX-512 whose OS does not save the AVX-512 registers.
public struct CPUIDWords: Sendable, Equatable {
    /// Leaf 0, EBX EDX ECX as text: "GenuineIntel", "AuthenticAMD", …
    public var vendor: String
    /// Leaves 0x8000_0002…4 as text, trimmed: "Intel(R) Xeon(R) Platinum 8480+".
    public var brand: String
    /// Leaf 1: EAX (family, model, stepping) and ECX (SSE3…AVX, OSXSAVE, hypervisor).
    public var leaf1EAX: UInt32, leaf1ECX: UInt32
    /// Leaf 7 sub-leaf 0: EBX (AVX2, AVX-512F/DQ/BW/VL) and EDX (AMX).
    public var leaf7EBX: UInt32, leaf7EDX: UInt32
    /// Leaf 7 sub-leaf 1: EAX (AVX512-BF16).
    public var leaf7Sub1EAX: UInt32
    /// XCR0: the register states the OS saves on a context switch (0 without OSXSAVE).
    public var xcr0: UInt64

    public init(vendor: String, brand: String, leaf1EAX: UInt32, leaf1ECX: UInt32,
                leaf7EBX: UInt32, leaf7EDX: UInt32, leaf7Sub1EAX: UInt32, xcr0: UInt64) {
        self.vendor = vendor
        self.brand = brand
        self.leaf1EAX = leaf1EAX
        self.leaf1ECX = leaf1ECX
        self.leaf7EBX = leaf7EBX
        self.leaf7EDX = leaf7EDX
        self.leaf7Sub1EAX = leaf7Sub1EAX
        self.xcr0 = xcr0
    }

    /// What this CPU returns, read with CPUID and XGETBV.
    public static func read() -> CPUIDWords {
        func text(_ words: [UInt32]) -> String {
            let bytes = words.flatMap { w in (0..<4).map { UInt8(truncatingIfNeeded: w >> (8 * $0)) } }
            return String(decoding: bytes.prefix { $0 != 0 }, as: UTF8.self).trimmingSpaces()
        }
        let l0 = dsan_cpuid(0, 0), l1 = dsan_cpuid(1, 0), l7 = dsan_cpuid(7, 0)
        let l7s1 = l7.eax >= 1 ? dsan_cpuid(7, 1) : dsan_cpuid_registers()
        let brandLeaves = (0x8000_0002...0x8000_0004).map { dsan_cpuid(UInt32($0), 0) }
        return CPUIDWords(
            vendor: text([l0.ebx, l0.edx, l0.ecx]),
            brand: text(brandLeaves.flatMap { [$0.eax, $0.ebx, $0.ecx, $0.edx] }),
            leaf1EAX: l1.eax, leaf1ECX: l1.ecx, leaf7EBX: l7.ebx, leaf7EDX: l7.edx,
            leaf7Sub1EAX: l7s1.eax, xcr0: dsan_xgetbv0())
    }
}

/// The vector extensions of the CPU dsan runs on, as far as they can be used: an extension counts
/// only when the CPU has it (CPUID) *and* the OS saves its registers (XCR0); one the CPU has but the
/// OS leaves disabled is listed in `disabledByOS` instead.
///
/// `CPUFeatures.current` is read once per process. `summary` is the readable form the log and
/// `dsan bench` print: "SSE4.2 AVX AVX2 FMA AVX-512F/BW/VL/DQ AVX512-BF16".
public struct CPUFeatures: Sendable, Equatable {
    /// One vector extension; the raw value is how `summary` writes it.
    public enum Extension: String, Sendable, CaseIterable, Comparable {
        case sse3 = "SSE3", ssse3 = "SSSE3", sse41 = "SSE4.1", sse42 = "SSE4.2"
        case avx = "AVX", avx2 = "AVX2", fma = "FMA"
        case avx512f = "AVX-512F", avx512bw = "AVX-512BW", avx512vl = "AVX-512VL", avx512dq = "AVX-512DQ"
        case avx512bf16 = "AVX512-BF16"
        /// AMX-TILE with AMX-BF16 (the tile registers and the BF16 dot products).
        case amx = "AMX"

        public static func < (a: Extension, b: Extension) -> Bool {
            allCases.firstIndex(of: a)! < allCases.firstIndex(of: b)!
        }
    }

    /// "GenuineIntel", "AuthenticAMD", "HygonGenuine", … (CPUID leaf 0).
    public var vendor: String
    /// The brand string, e.g. "AMD EPYC 7B13"; a hypervisor may replace it ("Intel Xeon Processor").
    public var brand: String
    /// Display family and model (base + extended fields), e.g. 6 and 143 for Sapphire Rapids.
    public var family: Int, model: Int
    /// CPUID.1:ECX bit 31: running under a hypervisor, which may hide the real model.
    public var hypervisor: Bool
    /// The usable extensions (CPU has it and the OS enables its registers).
    public var extensions: Set<Extension>
    /// Extensions the CPU reports but the OS does not enable (XCR0): not usable.
    public var disabledByOS: Set<Extension>

    public init(vendor: String, brand: String, family: Int, model: Int, hypervisor: Bool = false,
                extensions: Set<Extension>, disabledByOS: Set<Extension> = []) {
        self.vendor = vendor
        self.brand = brand
        self.family = family
        self.model = model
        self.hypervisor = hypervisor
        self.extensions = extensions
        self.disabledByOS = disabledByOS
    }

    /// Decodes CPUID words (Intel SDM vol. 2A, CPUID; AMD APM vol. 3, appendix E).
    public init(decoding w: CPUIDWords) {
        func bit(_ word: UInt32, _ n: Int) -> Bool { word & (1 << UInt32(n)) != 0 }
        let baseFamily = Int((w.leaf1EAX >> 8) & 0xF), baseModel = Int((w.leaf1EAX >> 4) & 0xF)
        let family = baseFamily == 0xF ? baseFamily + Int((w.leaf1EAX >> 20) & 0xFF) : baseFamily
        let model = baseFamily == 0x6 || baseFamily == 0xF ? baseModel + (Int((w.leaf1EAX >> 16) & 0xF) << 4) : baseModel

        // XCR0 bits: 1 SSE, 2 AVX (YMM upper halves), 5 opmask, 6 ZMM0-15 upper, 7 ZMM16-31,
        // 17 XTILECFG, 18 XTILEDATA.
        let osxsave = bit(w.leaf1ECX, 27)
        let ymmState = osxsave && w.xcr0 & 0b110 == 0b110
        let zmmState = ymmState && w.xcr0 & 0xE0 == 0xE0
        let tileState = ymmState && w.xcr0 & (0b11 << 17) == (0b11 << 17)

        var has: Set<Extension> = [], disabled: Set<Extension> = []
        func add(_ e: Extension, cpu: Bool, os: Bool = true) {
            if cpu && os { has.insert(e) } else if cpu { disabled.insert(e) }
        }
        add(.sse3, cpu: bit(w.leaf1ECX, 0))
        add(.ssse3, cpu: bit(w.leaf1ECX, 9))
        add(.sse41, cpu: bit(w.leaf1ECX, 19))
        add(.sse42, cpu: bit(w.leaf1ECX, 20))
        add(.avx, cpu: bit(w.leaf1ECX, 28), os: ymmState)
        add(.fma, cpu: bit(w.leaf1ECX, 12), os: ymmState)
        add(.avx2, cpu: bit(w.leaf7EBX, 5), os: ymmState)
        add(.avx512f, cpu: bit(w.leaf7EBX, 16), os: zmmState)
        add(.avx512dq, cpu: bit(w.leaf7EBX, 17), os: zmmState)
        add(.avx512bw, cpu: bit(w.leaf7EBX, 30), os: zmmState)
        add(.avx512vl, cpu: bit(w.leaf7EBX, 31), os: zmmState)
        add(.avx512bf16, cpu: bit(w.leaf7Sub1EAX, 5), os: zmmState)
        add(.amx, cpu: bit(w.leaf7EDX, 24) && bit(w.leaf7EDX, 22), os: tileState)

        self.init(vendor: w.vendor, brand: w.brand, family: family, model: model,
                  hypervisor: bit(w.leaf1ECX, 31), extensions: has, disabledByOS: disabled)
    }

    /// The CPU this process runs on (CPUID read once).
    public static let current = CPUFeatures(decoding: .read())

    public func has(_ e: Extension) -> Bool { extensions.contains(e) }

    /// AVX-512 F, BW, VL and DQ together: the set Skylake-SP introduced and OpenBLAS's
    /// SkylakeX kernels need.
    public var hasAVX512Core: Bool { [.avx512f, .avx512bw, .avx512vl, .avx512dq].allSatisfy(has) }

    /// "SSE4.2 AVX AVX2 FMA AVX-512F/BW/VL/DQ AVX512-BF16": the highest SSE level, then each wider
    /// extension; "SSE2" alone for a baseline x86-64 CPU. Extensions the OS disables follow in
    /// brackets: "… [AVX-512F/BW disabled by the OS]".
    public var summary: String {
        var text = Self.describe(extensions)
        if text.isEmpty { text = "SSE2" }
        if !disabledByOS.isEmpty { text += " [\(Self.describe(disabledByOS)) disabled by the OS]" }
        return text
    }

    private static func describe(_ set: Set<Extension>) -> String {
        var words: [String] = []
        if let sse = [Extension.sse42, .sse41, .ssse3, .sse3].first(where: set.contains) { words.append(sse.rawValue) }
        for e in [Extension.avx, .avx2, .fma] where set.contains(e) { words.append(e.rawValue) }
        let avx512 = [Extension.avx512f, .avx512bw, .avx512vl, .avx512dq].filter(set.contains)
        if !avx512.isEmpty {
            words.append("AVX-512" + avx512.map { String($0.rawValue.dropFirst("AVX-512".count)) }.joined(separator: "/"))
        }
        for e in [Extension.avx512bf16, .amx] where set.contains(e) { words.append(e.rawValue) }
        return words.joined(separator: " ")
    }

    /// "Intel(R) Xeon(R) Processor (GenuineIntel family 6 model 207, under a hypervisor)".
    public var identity: String {
        "\(brand.isEmpty ? "unknown CPU" : brand) (\(vendor.isEmpty ? "unknown vendor" : vendor) family \(family) model \(model)\(hypervisor ? ", under a hypervisor" : ""))"
    }
}

extension String {
    fileprivate func trimmingSpaces() -> String {
        var s = Substring(self)
        while s.first == " " { s = s.dropFirst() }
        while s.last == " " { s = s.dropLast() }
        return String(s)
    }
}
