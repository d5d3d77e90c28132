// Shim over the x86 CPUID and XGETBV instructions: what the CPU offers (CPUID) and which register
// states the operating system saves and restores (XCR0, read with XGETBV). Static inline only.
// On a non-x86 target every query returns zeros, so every feature reads as absent.
#ifndef DSAN_CCPUID_SHIM_H
#define DSAN_CCPUID_SHIM_H
#include <stdint.h>
#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#endif

/// The four registers CPUID returns.
typedef struct { uint32_t eax, ebx, ecx, edx; } dsan_cpuid_registers;

/// CPUID leaf `leaf`, sub-leaf `subleaf`; zeros when the leaf is beyond the CPU's highest
/// (basic leaves) or highest extended (0x8000_0000 and up) leaf.
static inline dsan_cpuid_registers dsan_cpuid(uint32_t leaf, uint32_t subleaf) {
    dsan_cpuid_registers r = {0, 0, 0, 0};
#if defined(__x86_64__) || defined(__i386__)
    if (leaf > __get_cpuid_max(leaf & 0x80000000u, 0)) return r;
    __cpuid_count(leaf, subleaf, r.eax, r.ebx, r.ecx, r.edx);
#endif
    (void)leaf; (void)subleaf;
    return r;
}

/// XCR0, the register states the OS enables (bit 1 SSE, 2 AVX, 5-7 AVX-512, 17-18 AMX).
/// Only valid when CPUID.1:ECX.OSXSAVE (bit 27) is set: XGETBV faults otherwise, so this checks
/// the bit first and returns 0 without it.
static inline uint64_t dsan_xgetbv0(void) {
#if defined(__x86_64__) || defined(__i386__)
    dsan_cpuid_registers one = dsan_cpuid(1, 0);
    if ((one.ecx & (1u << 27)) == 0) return 0;
    uint32_t lo, hi;
    __asm__ __volatile__("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    return ((uint64_t)hi << 32) | lo;
#else
    return 0;
#endif
}
#endif
