#ifndef SHEAF_CPU_H
#define SHEAF_CPU_H

#ifdef __cplusplus
extern "C" {
#endif

/// Bits of `sheaf_cpu_features()`.
enum {
    SHEAF_CPU_AVX2 = 1 << 0,
    SHEAF_CPU_FMA = 1 << 1,
    SHEAF_CPU_AVX512F = 1 << 2,
    SHEAF_CPU_AVX512BF16 = 1 << 3,
    /// AVX-512 VL, BW and DQ together (what OpenBLAS's SkylakeX kernels use beside F).
    SHEAF_CPU_AVX512VL_BW_DQ = 1 << 4,
};

/// What the CPU supports, from CPUID, masked by what the operating system saves (XGETBV: the
/// AVX bits need the YMM state, the AVX-512 bits the ZMM and opmask state). 0 off x86-64.
unsigned sheaf_cpu_features(void);

/// The CPU's brand string from CPUID (e.g. "Intel(R) Xeon(R) Processor @ 2.80GHz"), written with a
/// terminating NUL into `out` (at least 49 bytes); an empty string when CPUID has none.
void sheaf_cpu_brand(char *out);

#ifdef __cplusplus
}
#endif

#endif /* SHEAF_CPU_H */
