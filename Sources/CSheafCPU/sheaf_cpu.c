#include "sheaf_cpu.h"
#include <string.h>

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>

static unsigned long long sheaf_xgetbv0(void) {
    unsigned eax, edx;
    __asm__ volatile("xgetbv" : "=a"(eax), "=d"(edx) : "c"(0));
    return ((unsigned long long)edx << 32) | eax;
}

unsigned sheaf_cpu_features(void) {
    unsigned a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d)) return 0;
    int osxsave = (c >> 27) & 1, avx = (c >> 28) & 1, fma = (c >> 12) & 1;
    if (!osxsave || !avx) return 0;
    unsigned long long xcr0 = sheaf_xgetbv0();
    int ymm = (xcr0 & 0x6) == 0x6;      // SSE and AVX state
    int zmm = (xcr0 & 0xE6) == 0xE6;    // plus opmask, ZMM_Hi256, Hi16_ZMM
    if (!ymm) return 0;
    unsigned f = fma ? SHEAF_CPU_FMA : 0;
    unsigned max = __get_cpuid_max(0, 0);
    if (max >= 7) {
        __cpuid_count(7, 0, a, b, c, d);
        if ((b >> 5) & 1) f |= SHEAF_CPU_AVX2;
        if (zmm && ((b >> 16) & 1)) {
            f |= SHEAF_CPU_AVX512F;
            // DQ = bit 17, BW = bit 30, VL = bit 31.
            if (((b >> 17) & 1) && ((b >> 30) & 1) && ((b >> 31) & 1)) f |= SHEAF_CPU_AVX512VL_BW_DQ;
            unsigned a1, b1, c1, d1;
            __cpuid_count(7, 1, a1, b1, c1, d1);
            if ((a1 >> 5) & 1) f |= SHEAF_CPU_AVX512BF16;
        }
    }
    return f;
}

void sheaf_cpu_brand(char *out) {
    unsigned regs[12];
    out[0] = 0;
    if (__get_cpuid_max(0x80000000, 0) < 0x80000004) return;
    for (unsigned i = 0; i < 3; i++)
        __get_cpuid(0x80000002 + i, &regs[4 * i], &regs[4 * i + 1], &regs[4 * i + 2], &regs[4 * i + 3]);
    memcpy(out, regs, 48);
    out[48] = 0;
    // Trim leading spaces (some CPUs pad the brand string).
    size_t start = 0;
    while (out[start] == ' ') start++;
    if (start) memmove(out, out + start, 49 - start);
}
#else
unsigned sheaf_cpu_features(void) { return 0; }
void sheaf_cpu_brand(char *out) { out[0] = 0; }
#endif
