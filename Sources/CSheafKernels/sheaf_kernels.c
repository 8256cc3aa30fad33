// Decode kernel for Sheaf residual codebooks: out[i] = Σ_l α[i][l] · C[l][b[i][l]].
//
// Two paths, chosen once at run time:
//  - AVX2+FMA: `target("avx2,fma")` functions with intrinsics. Each output row is produced in
//    blocks of 32 floats held in four ymm accumulators across all levels (no read-modify-write
//    of `out`), then 8-float blocks, then a masked tail for D % 8. While a row is computed the
//    centroid rows of the row two ahead are prefetched. Non-temporal stores when asked and aligned.
//  - portable: plain C loops over 32-float blocks that the compiler vectorises for the
//    baseline ISA (SSE2 on x86-64); non-temporal 16-byte stores on x86 when asked and aligned.
// Both accumulate in level order; the AVX2 path uses fused multiply-adds, so the two paths can
// differ in the last bits.

#include "sheaf_kernels.h"

// The most levels a code tuple may have (the per-row pointer arrays are this long).
#define SHEAF_MAX_LEVELS 16

#include <string.h>

// Keep `a * b + c` as two roundings in the portable path (it matches the scalar reference bit for
// bit); the AVX2 path fuses explicitly with intrinsics.
#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#endif

#if defined(__x86_64__) || defined(__i386__)
#define SHEAF_X86 1
#include <immintrin.h>
#else
#define SHEAF_X86 0
#endif

// MARK: - Path selection

// 0 = not yet detected, otherwise the best path the CPU supports. Written once (benign if two
// threads race: both store the same value), read with relaxed atomics.
static int sheaf_detected_isa = 0;
// 0 = automatic, 1 = portable, 2 = avx2.
static int sheaf_forced_isa = 0;

static int sheaf_detect_isa(void) {
    int d = __atomic_load_n(&sheaf_detected_isa, __ATOMIC_RELAXED);
    if (d != 0) return d;
#if SHEAF_X86
    __builtin_cpu_init();
    d = (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) ? 2 : 1;
#else
    d = 1;
#endif
    __atomic_store_n(&sheaf_detected_isa, d, __ATOMIC_RELAXED);
    return d;
}

int sheaf_decode_isa(void) {
    int best = sheaf_detect_isa();
    int forced = __atomic_load_n(&sheaf_forced_isa, __ATOMIC_RELAXED);
    if (forced == 1) return 1;
    return best;  // automatic, or avx2 requested (granted only when supported)
}

void sheaf_decode_force_isa(int isa) {
    if (isa < 0 || isa > 2) isa = 0;
    __atomic_store_n(&sheaf_forced_isa, isa, __ATOMIC_RELAXED);
}

// MARK: - Portable path

#define SHEAF_PB 32  // floats per block: 8 SSE registers of accumulators

static inline __attribute__((always_inline)) void
portable_rows(const float *restrict C, size_t L, size_t K, size_t D, const uint32_t *restrict codes,
              const float *restrict alphas, size_t n, float *restrict out, int streaming, int *streamed) {
    const size_t KD = K * D;
    for (size_t i = 0; i < n; i++) {
        const uint32_t *b = codes + i * L;
        const float *a = alphas + i * L;
        const float *p[SHEAF_MAX_LEVELS];
        for (size_t l = 0; l < L; l++) p[l] = C + l * KD + (size_t)b[l] * D;
        float *o = out + i * D;
#if SHEAF_X86
        const int st = streaming && (((uintptr_t)o & 15) == 0);
#else
        (void)streaming;
        const int st = 0;
#endif
        size_t d = 0;
        for (; d + SHEAF_PB <= D; d += SHEAF_PB) {
            float acc[SHEAF_PB];
            const float a0 = a[0];
            const float *p0 = p[0] + d;
            for (size_t j = 0; j < SHEAF_PB; j++) acc[j] = a0 * p0[j];
            for (size_t l = 1; l < L; l++) {
                const float al = a[l];
                const float *pl = p[l] + d;
                for (size_t j = 0; j < SHEAF_PB; j++) acc[j] += al * pl[j];
            }
#if SHEAF_X86
            if (st) {
                for (size_t j = 0; j < SHEAF_PB; j += 4) _mm_stream_ps(o + d + j, _mm_loadu_ps(acc + j));
                *streamed = 1;
                continue;
            }
#endif
            memcpy(o + d, acc, sizeof acc);
        }
        if (d < D) {
            const size_t r = D - d;
            float acc[SHEAF_PB];
            const float a0 = a[0];
            const float *p0 = p[0] + d;
            for (size_t j = 0; j < r; j++) acc[j] = a0 * p0[j];
            for (size_t l = 1; l < L; l++) {
                const float al = a[l];
                const float *pl = p[l] + d;
                for (size_t j = 0; j < r; j++) acc[j] += al * pl[j];
            }
            memcpy(o + d, acc, r * sizeof(float));
        }
    }
}

#define SHEAF_PORTABLE_FN(name, LV)                                                                 \
    static __attribute__((noinline)) void name(const float *C, size_t L, size_t K, size_t D,        \
                                               const uint32_t *codes, const float *alphas, size_t n, \
                                               float *out, int streaming, int *streamed) {           \
        (void)L;                                                                                    \
        portable_rows(C, LV, K, D, codes, alphas, n, out, streaming, streamed);                     \
    }
SHEAF_PORTABLE_FN(portable_l1, 1)
SHEAF_PORTABLE_FN(portable_l2, 2)
SHEAF_PORTABLE_FN(portable_l3, 3)
SHEAF_PORTABLE_FN(portable_l4, 4)
SHEAF_PORTABLE_FN(portable_ln, L)

// MARK: - AVX2 + FMA path

#if SHEAF_X86
#define SHEAF_AVX2 __attribute__((target("avx2,fma")))

// How many rows ahead centroid rows are prefetched (measured: 2 beats 1 by ~5% at D=384, L=3,
// K=4096 on an EPYC; 3 is no better).
#define SHEAF_PREFETCH_ROWS 2

// mask_table + 8 - r selects r lanes (0 ≤ r ≤ 8).
static const int32_t sheaf_mask_table[16] = {-1, -1, -1, -1, -1, -1, -1, -1, 0, 0, 0, 0, 0, 0, 0, 0};

static inline SHEAF_AVX2 __attribute__((always_inline)) void
avx2_rows(const float *restrict C, size_t L, size_t K, size_t D, const uint32_t *restrict codes,
          const float *restrict alphas, size_t n, float *restrict out, int streaming, int *streamed) {
    const size_t KD = K * D;
    const size_t rem = D & 7;
    const __m256i tail = _mm256_loadu_si256((const __m256i *)(sheaf_mask_table + 8 - rem));
    const size_t D32 = D & ~(size_t)31;
    for (size_t i = 0; i < n; i++) {
        const uint32_t *b = codes + i * L;
        const float *a = alphas + i * L;
        // The centroid rows of the row SHEAF_PREFETCH_ROWS ahead, prefetched while this one is computed.
        const uint32_t *bn = (i + SHEAF_PREFETCH_ROWS < n) ? b + SHEAF_PREFETCH_ROWS * L : b;
        const float *p[SHEAF_MAX_LEVELS], *q[SHEAF_MAX_LEVELS];
        __m256 av[SHEAF_MAX_LEVELS];
        for (size_t l = 0; l < L; l++) {
            p[l] = C + l * KD + (size_t)b[l] * D;
            q[l] = C + l * KD + (size_t)bn[l] * D;
            av[l] = _mm256_set1_ps(a[l]);
        }
        float *o = out + i * D;
        const int st = streaming && (((uintptr_t)o & 31) == 0);
        size_t d = 0;
        for (; d < D32; d += 32) {
            __m256 s0 = _mm256_mul_ps(av[0], _mm256_loadu_ps(p[0] + d));
            __m256 s1 = _mm256_mul_ps(av[0], _mm256_loadu_ps(p[0] + d + 8));
            __m256 s2 = _mm256_mul_ps(av[0], _mm256_loadu_ps(p[0] + d + 16));
            __m256 s3 = _mm256_mul_ps(av[0], _mm256_loadu_ps(p[0] + d + 24));
            for (size_t l = 1; l < L; l++) {
                s0 = _mm256_fmadd_ps(av[l], _mm256_loadu_ps(p[l] + d), s0);
                s1 = _mm256_fmadd_ps(av[l], _mm256_loadu_ps(p[l] + d + 8), s1);
                s2 = _mm256_fmadd_ps(av[l], _mm256_loadu_ps(p[l] + d + 16), s2);
                s3 = _mm256_fmadd_ps(av[l], _mm256_loadu_ps(p[l] + d + 24), s3);
            }
            for (size_t l = 0; l < L; l++) {
                _mm_prefetch((const char *)(q[l] + d), _MM_HINT_T0);
                _mm_prefetch((const char *)(q[l] + d + 16), _MM_HINT_T0);
            }
            if (st) {
                _mm256_stream_ps(o + d, s0);
                _mm256_stream_ps(o + d + 8, s1);
                _mm256_stream_ps(o + d + 16, s2);
                _mm256_stream_ps(o + d + 24, s3);
            } else {
                _mm256_storeu_ps(o + d, s0);
                _mm256_storeu_ps(o + d + 8, s1);
                _mm256_storeu_ps(o + d + 16, s2);
                _mm256_storeu_ps(o + d + 24, s3);
            }
        }
        // Prefetch the rest of the next row (the part past the last 32-float block).
        for (size_t pd = D32; pd < D; pd += 16) {
            for (size_t l = 0; l < L; l++) _mm_prefetch((const char *)(q[l] + pd), _MM_HINT_T0);
        }
        for (; d + 8 <= D; d += 8) {
            __m256 s = _mm256_mul_ps(av[0], _mm256_loadu_ps(p[0] + d));
            for (size_t l = 1; l < L; l++) s = _mm256_fmadd_ps(av[l], _mm256_loadu_ps(p[l] + d), s);
            if (st) _mm256_stream_ps(o + d, s);
            else _mm256_storeu_ps(o + d, s);
        }
        if (rem) {
            // Masked loads never touch (or fault on) the lanes past the row's end.
            __m256 s = _mm256_mul_ps(av[0], _mm256_maskload_ps(p[0] + d, tail));
            for (size_t l = 1; l < L; l++) s = _mm256_fmadd_ps(av[l], _mm256_maskload_ps(p[l] + d, tail), s);
            _mm256_maskstore_ps(o + d, tail, s);
        }
        if (st) *streamed = 1;
    }
}

#define SHEAF_AVX2_FN(name, LV)                                                                     \
    static SHEAF_AVX2 __attribute__((noinline)) void name(                                          \
        const float *C, size_t L, size_t K, size_t D, const uint32_t *codes, const float *alphas,   \
        size_t n, float *out, int streaming, int *streamed) {                                       \
        (void)L;                                                                                    \
        avx2_rows(C, LV, K, D, codes, alphas, n, out, streaming, streamed);                         \
    }
SHEAF_AVX2_FN(avx2_l1, 1)
SHEAF_AVX2_FN(avx2_l2, 2)
SHEAF_AVX2_FN(avx2_l3, 3)
SHEAF_AVX2_FN(avx2_l4, 4)
SHEAF_AVX2_FN(avx2_ln, L)
#endif

// MARK: - Entry point

void sheaf_decode_f32(const float *centroids, size_t levels, size_t K, size_t D, const uint32_t *codes,
                      const float *alphas, size_t n, float *out, int streaming) {
    if (n == 0 || D == 0 || levels == 0) return;
    if (levels > SHEAF_MAX_LEVELS) levels = SHEAF_MAX_LEVELS;  // the contract says 1...16; never index past the pointer arrays
    int streamed = 0;
#if SHEAF_X86
    if (sheaf_decode_isa() == 2) {
        switch (levels) {
        case 1: avx2_l1(centroids, levels, K, D, codes, alphas, n, out, streaming, &streamed); break;
        case 2: avx2_l2(centroids, levels, K, D, codes, alphas, n, out, streaming, &streamed); break;
        case 3: avx2_l3(centroids, levels, K, D, codes, alphas, n, out, streaming, &streamed); break;
        case 4: avx2_l4(centroids, levels, K, D, codes, alphas, n, out, streaming, &streamed); break;
        default: avx2_ln(centroids, levels, K, D, codes, alphas, n, out, streaming, &streamed); break;
        }
        if (streamed) _mm_sfence();
        return;
    }
#endif
    switch (levels) {
    case 1: portable_l1(centroids, levels, K, D, codes, alphas, n, out, streaming, &streamed); break;
    case 2: portable_l2(centroids, levels, K, D, codes, alphas, n, out, streaming, &streamed); break;
    case 3: portable_l3(centroids, levels, K, D, codes, alphas, n, out, streaming, &streamed); break;
    case 4: portable_l4(centroids, levels, K, D, codes, alphas, n, out, streaming, &streamed); break;
    default: portable_ln(centroids, levels, K, D, codes, alphas, n, out, streaming, &streamed); break;
    }
#if SHEAF_X86
    if (streamed) _mm_sfence();
#endif
}
