// Decode kernel for Sheaf residual codebooks: out[i] = Σ_l α[i][l] · C[l][b[i][l]].
//
// Centroids come either as float32 or as IEEE binary16 ("half") with a power-of-two scale per level
// (C[l] = scale[l] · half[l]); the half table halves the bytes read per decoded row, which is what
// bounds this kernel (it reads L centroid rows per output row). The scale is folded into α, so
// both element types share one loop.
//
// Two paths, chosen once at run time (tests can force one on their own thread):
//  - AVX2+FMA+F16C: `target("avx2,fma,f16c")` functions with intrinsics. Each output row is produced in
//    blocks of 32 floats held in four ymm accumulators across all levels (no read-modify-write
//    of `out`), then 8-float blocks, then a masked tail for D % 8. While a row is computed the
//    centroid rows of the row two ahead are prefetched. Non-temporal stores when asked and aligned.
//  - portable: plain C loops over 32-float blocks that the compiler vectorises for the
//    baseline ISA (SSE2 on x86-64); non-temporal 16-byte stores on x86 when asked and aligned.
// Both accumulate in level order; the AVX2 path uses fused multiply-adds, so the two paths can
// differ in the last bits. An optional bias row is added to each output row after the L levels
// (projected decodes: out[i] = Σ_l α · T_l[b] + bias), in registers, with no second pass. Half centroids are widened exactly (vcvtph2ps, or `_Float16` in the
// portable path), so the two element types differ only by the rounding of the table itself.

#include "sheaf_decode.h"

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
// 0 = automatic, 1 = portable, 2 = avx2. Per thread, so a test that forces a path does not change
// what concurrent work computes.
static _Thread_local int sheaf_forced_isa = 0;

static int sheaf_detect_isa(void) {
    int d = __atomic_load_n(&sheaf_detected_isa, __ATOMIC_RELAXED);
    if (d != 0) return d;
#if SHEAF_X86
    __builtin_cpu_init();
    d = (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && __builtin_cpu_supports("f16c")) ? 2 : 1;
#else
    d = 1;
#endif
    __atomic_store_n(&sheaf_detected_isa, d, __ATOMIC_RELAXED);
    return d;
}

int sheaf_decode_isa(void) {
    int best = sheaf_detect_isa();
    if (sheaf_forced_isa == 1) return 1;
    return best;  // automatic, or avx2 requested (granted only when supported)
}

void sheaf_decode_force_isa(int isa) {
    if (isa < 0 || isa > 2) isa = 0;
    sheaf_forced_isa = isa;
}

// MARK: - Portable path

#define SHEAF_PB 32  // floats per block: 8 SSE registers of accumulators

// Half → float. `_Float16` is a clang/gcc extension on x86-64 and arm64; the conversion is exact.
static inline float sheaf_half_to_float(uint16_t h) {
    _Float16 f;
    memcpy(&f, &h, sizeof f);
    return (float)f;
}

// Element j of centroid row `row` (float32 or half).
static inline __attribute__((always_inline)) float portable_load(const void *row, size_t j, int half) {
    return half ? sheaf_half_to_float(((const uint16_t *)row)[j]) : ((const float *)row)[j];
}

static inline __attribute__((always_inline)) void
portable_rows(const void *restrict C, int half, const float *restrict scales, size_t L, size_t K, size_t D,
              const uint32_t *restrict codes, const float *restrict alphas, size_t n, const float *restrict bias,
              float *restrict out, int streaming, int *streamed) {
    const size_t es = half ? 2 : 4;
    const size_t rowBytes = D * es;
    const size_t levelBytes = K * rowBytes;
    for (size_t i = 0; i < n; i++) {
        const uint32_t *b = codes + i * L;
        const char *p[SHEAF_MAX_LEVELS];
        float a[SHEAF_MAX_LEVELS];
        for (size_t l = 0; l < L; l++) {
            p[l] = (const char *)C + l * levelBytes + (size_t)b[l] * rowBytes;
            a[l] = scales ? alphas[i * L + l] * scales[l] : alphas[i * L + l];
        }
        float *o = out + i * D;
#if SHEAF_X86
        const int st = streaming && (((uintptr_t)o & 15) == 0);
#else
        (void)streaming;
        const int st = 0;
#endif
        size_t d = 0;
        for (; d < D; d += SHEAF_PB) {
            const size_t r = (D - d < SHEAF_PB) ? D - d : SHEAF_PB;
            float acc[SHEAF_PB];
            const float a0 = a[0];
            const char *p0 = p[0] + d * es;
            for (size_t j = 0; j < r; j++) acc[j] = a0 * portable_load(p0, j, half);
            for (size_t l = 1; l < L; l++) {
                const float al = a[l];
                const char *pl = p[l] + d * es;
                for (size_t j = 0; j < r; j++) acc[j] += al * portable_load(pl, j, half);
            }
            if (bias)
                for (size_t j = 0; j < r; j++) acc[j] += bias[d + j];
#if SHEAF_X86
            if (st && r == SHEAF_PB) {
                for (size_t j = 0; j < SHEAF_PB; j += 4) _mm_stream_ps(o + d + j, _mm_loadu_ps(acc + j));
                *streamed = 1;
                continue;
            }
#endif
            memcpy(o + d, acc, r * sizeof(float));
        }
    }
}

#define SHEAF_PORTABLE_FN(name, LV, HALF)                                                           \
    static __attribute__((noinline)) void name(const void *C, const float *scales, size_t L, size_t K, \
                                               size_t D, const uint32_t *codes, const float *alphas,  \
                                               size_t n, const float *bias, float *out, int streaming, \
                                               int *streamed) {                                     \
        (void)L;                                                                                    \
        portable_rows(C, HALF, scales, LV, K, D, codes, alphas, n, bias, out, streaming, streamed); \
    }
SHEAF_PORTABLE_FN(portable_l1, 1, 0)
SHEAF_PORTABLE_FN(portable_l2, 2, 0)
SHEAF_PORTABLE_FN(portable_l3, 3, 0)
SHEAF_PORTABLE_FN(portable_l4, 4, 0)
SHEAF_PORTABLE_FN(portable_ln, L, 0)
SHEAF_PORTABLE_FN(portable_h1, 1, 1)
SHEAF_PORTABLE_FN(portable_h2, 2, 1)
SHEAF_PORTABLE_FN(portable_h3, 3, 1)
SHEAF_PORTABLE_FN(portable_h4, 4, 1)
SHEAF_PORTABLE_FN(portable_hn, L, 1)

// MARK: - AVX2 + FMA (+ F16C) path

#if SHEAF_X86
#define SHEAF_AVX2 __attribute__((target("avx2,fma,f16c")))

// How many rows ahead centroid rows are prefetched (measured: 2 beats 1 by ~5% at D=384, L=3,
// K=4096 on an EPYC; 3 is no better).
#define SHEAF_PREFETCH_ROWS 2

// mask_table + 8 - r selects r lanes (0 ≤ r ≤ 8).
static const int32_t sheaf_mask_table[16] = {-1, -1, -1, -1, -1, -1, -1, -1, 0, 0, 0, 0, 0, 0, 0, 0};

// Eight centroid elements starting at element `j` of `row`, as floats.
static inline SHEAF_AVX2 __attribute__((always_inline)) __m256 avx2_load(const char *row, size_t j, int half) {
    if (half) return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(row + 2 * j)));
    return _mm256_loadu_ps((const float *)row + j);
}

// The last r < 8 elements from element `j` on, without touching memory past them.
static inline SHEAF_AVX2 __attribute__((always_inline)) __m256 avx2_load_tail(const char *row, size_t j, size_t r,
                                                                              __m256i mask, int half) {
    if (half) {
        uint16_t buf[8] = {0};
        memcpy(buf, row + 2 * j, r * 2);
        return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)buf));
    }
    return _mm256_maskload_ps((const float *)row + j, mask);
}

static inline SHEAF_AVX2 __attribute__((always_inline)) void
avx2_rows(const void *restrict C, int half, const float *restrict scales, size_t L, size_t K, size_t D,
          const uint32_t *restrict codes, const float *restrict alphas, size_t n, const float *restrict bias,
          float *restrict out, int streaming, int *streamed) {
    const size_t es = half ? 2 : 4;
    const size_t rowBytes = D * es;
    const size_t levelBytes = K * rowBytes;
    const size_t rem = D & 7;
    const __m256i tail = _mm256_loadu_si256((const __m256i *)(sheaf_mask_table + 8 - rem));
    const size_t D32 = D & ~(size_t)31;
    for (size_t i = 0; i < n; i++) {
        const uint32_t *b = codes + i * L;
        const float *a = alphas + i * L;
        // The centroid rows of the row SHEAF_PREFETCH_ROWS ahead, prefetched while this one is computed.
        const uint32_t *bn = (i + SHEAF_PREFETCH_ROWS < n) ? b + SHEAF_PREFETCH_ROWS * L : b;
        const char *p[SHEAF_MAX_LEVELS], *q[SHEAF_MAX_LEVELS];
        __m256 av[SHEAF_MAX_LEVELS];
        for (size_t l = 0; l < L; l++) {
            p[l] = (const char *)C + l * levelBytes + (size_t)b[l] * rowBytes;
            q[l] = (const char *)C + l * levelBytes + (size_t)bn[l] * rowBytes;
            av[l] = _mm256_set1_ps(scales ? a[l] * scales[l] : a[l]);
        }
        float *o = out + i * D;
        const int st = streaming && (((uintptr_t)o & 31) == 0);
        size_t d = 0;
        for (; d < D32; d += 32) {
            __m256 s0 = _mm256_mul_ps(av[0], avx2_load(p[0], d, half));
            __m256 s1 = _mm256_mul_ps(av[0], avx2_load(p[0], d + 8, half));
            __m256 s2 = _mm256_mul_ps(av[0], avx2_load(p[0], d + 16, half));
            __m256 s3 = _mm256_mul_ps(av[0], avx2_load(p[0], d + 24, half));
            for (size_t l = 1; l < L; l++) {
                s0 = _mm256_fmadd_ps(av[l], avx2_load(p[l], d, half), s0);
                s1 = _mm256_fmadd_ps(av[l], avx2_load(p[l], d + 8, half), s1);
                s2 = _mm256_fmadd_ps(av[l], avx2_load(p[l], d + 16, half), s2);
                s3 = _mm256_fmadd_ps(av[l], avx2_load(p[l], d + 24, half), s3);
            }
            if (bias) {
                s0 = _mm256_add_ps(s0, _mm256_loadu_ps(bias + d));
                s1 = _mm256_add_ps(s1, _mm256_loadu_ps(bias + d + 8));
                s2 = _mm256_add_ps(s2, _mm256_loadu_ps(bias + d + 16));
                s3 = _mm256_add_ps(s3, _mm256_loadu_ps(bias + d + 24));
            }
            // One 64-byte line per 32 halves, two per 32 floats.
            for (size_t l = 0; l < L; l++) {
                _mm_prefetch(q[l] + d * es, _MM_HINT_T0);
                if (!half) _mm_prefetch(q[l] + d * es + 64, _MM_HINT_T0);
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
        for (size_t pb = D32 * es; pb < rowBytes; pb += 64) {
            for (size_t l = 0; l < L; l++) _mm_prefetch(q[l] + pb, _MM_HINT_T0);
        }
        for (; d + 8 <= D; d += 8) {
            __m256 s = _mm256_mul_ps(av[0], avx2_load(p[0], d, half));
            for (size_t l = 1; l < L; l++) s = _mm256_fmadd_ps(av[l], avx2_load(p[l], d, half), s);
            if (bias) s = _mm256_add_ps(s, _mm256_loadu_ps(bias + d));
            if (st) _mm256_stream_ps(o + d, s);
            else _mm256_storeu_ps(o + d, s);
        }
        if (rem) {
            // Masked (or buffered) loads never touch, or fault on, the elements past the row's end.
            __m256 s = _mm256_mul_ps(av[0], avx2_load_tail(p[0], d, rem, tail, half));
            for (size_t l = 1; l < L; l++) s = _mm256_fmadd_ps(av[l], avx2_load_tail(p[l], d, rem, tail, half), s);
            if (bias) s = _mm256_add_ps(s, _mm256_maskload_ps(bias + d, tail));
            _mm256_maskstore_ps(o + d, tail, s);
        }
        if (st) *streamed = 1;
    }
}

#define SHEAF_AVX2_FN(name, LV, HALF)                                                               \
    static SHEAF_AVX2 __attribute__((noinline)) void name(                                          \
        const void *C, const float *scales, size_t L, size_t K, size_t D, const uint32_t *codes,    \
        const float *alphas, size_t n, const float *bias, float *out, int streaming, int *streamed) { \
        (void)L;                                                                                    \
        avx2_rows(C, HALF, scales, LV, K, D, codes, alphas, n, bias, out, streaming, streamed);     \
    }
SHEAF_AVX2_FN(avx2_l1, 1, 0)
SHEAF_AVX2_FN(avx2_l2, 2, 0)
SHEAF_AVX2_FN(avx2_l3, 3, 0)
SHEAF_AVX2_FN(avx2_l4, 4, 0)
SHEAF_AVX2_FN(avx2_ln, L, 0)
SHEAF_AVX2_FN(avx2_h1, 1, 1)
SHEAF_AVX2_FN(avx2_h2, 2, 1)
SHEAF_AVX2_FN(avx2_h3, 3, 1)
SHEAF_AVX2_FN(avx2_h4, 4, 1)
SHEAF_AVX2_FN(avx2_hn, L, 1)
#endif

// MARK: - Entry points

typedef void (*sheaf_rows_fn)(const void *, const float *, size_t, size_t, size_t, const uint32_t *, const float *,
                              size_t, const float *, float *, int, int *);

static void sheaf_decode_any(const void *centroids, int half, const float *scales, size_t levels, size_t K, size_t D,
                             const uint32_t *codes, const float *alphas, size_t n, const float *bias, float *out,
                             int streaming) {
    if (n == 0 || D == 0 || levels == 0) return;
    if (levels > SHEAF_MAX_LEVELS) levels = SHEAF_MAX_LEVELS;  // the contract says 1...16; never index past the pointer arrays
    const size_t pick = levels <= 4 ? levels - 1 : 4;
    sheaf_rows_fn fn;
#if SHEAF_X86
    static const sheaf_rows_fn avx2_f32[5] = {avx2_l1, avx2_l2, avx2_l3, avx2_l4, avx2_ln};
    static const sheaf_rows_fn avx2_f16[5] = {avx2_h1, avx2_h2, avx2_h3, avx2_h4, avx2_hn};
    if (sheaf_decode_isa() == 2) fn = half ? avx2_f16[pick] : avx2_f32[pick];
    else
#endif
    {
        static const sheaf_rows_fn portable_f32[5] = {portable_l1, portable_l2, portable_l3, portable_l4, portable_ln};
        static const sheaf_rows_fn portable_f16[5] = {portable_h1, portable_h2, portable_h3, portable_h4, portable_hn};
        fn = half ? portable_f16[pick] : portable_f32[pick];
    }
    int streamed = 0;
    fn(centroids, scales, levels, K, D, codes, alphas, n, bias, out, streaming, &streamed);
#if SHEAF_X86
    if (streamed) _mm_sfence();
#endif
}

void sheaf_decode_f32(const float *centroids, size_t levels, size_t K, size_t D, const uint32_t *codes,
                      const float *alphas, size_t n, float *out, int streaming) {
    sheaf_decode_any(centroids, 0, NULL, levels, K, D, codes, alphas, n, NULL, out, streaming);
}

void sheaf_decode_f16(const uint16_t *centroids, const float *level_scales, size_t levels, size_t K, size_t D,
                      const uint32_t *codes, const float *alphas, size_t n, float *out, int streaming) {
    sheaf_decode_any(centroids, 1, level_scales, levels, K, D, codes, alphas, n, NULL, out, streaming);
}

void sheaf_decode_f32_bias(const float *centroids, size_t levels, size_t K, size_t D, const uint32_t *codes,
                           const float *alphas, size_t n, const float *bias, float *out, int streaming) {
    sheaf_decode_any(centroids, 0, NULL, levels, K, D, codes, alphas, n, bias, out, streaming);
}

void sheaf_decode_f16_bias(const uint16_t *centroids, const float *level_scales, size_t levels, size_t K, size_t D,
                           const uint32_t *codes, const float *alphas, size_t n, const float *bias, float *out,
                           int streaming) {
    sheaf_decode_any(centroids, 1, level_scales, levels, K, D, codes, alphas, n, bias, out, streaming);
}

// MARK: - Conversion

#if SHEAF_X86
static SHEAF_AVX2 __attribute__((noinline)) void avx2_to_half(const float *src, float inverse_scale, uint16_t *dst,
                                                              size_t n) {
    const __m256 m = _mm256_set1_ps(inverse_scale);
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        const __m128i h = _mm256_cvtps_ph(_mm256_mul_ps(_mm256_loadu_ps(src + i), m), _MM_FROUND_TO_NEAREST_INT);
        _mm_storeu_si128((__m128i *)(dst + i), h);
    }
    for (; i < n; i++) {
        _Float16 f = (_Float16)(src[i] * inverse_scale);
        memcpy(dst + i, &f, sizeof f);
    }
}
#endif

void sheaf_float_to_half(const float *src, float inverse_scale, uint16_t *dst, size_t n) {
#if SHEAF_X86
    if (sheaf_decode_isa() == 2) {
        avx2_to_half(src, inverse_scale, dst, n);
        return;
    }
#endif
    for (size_t i = 0; i < n; i++) {
        _Float16 f = (_Float16)(src[i] * inverse_scale);
        memcpy(dst + i, &f, sizeof f);
    }
}

float sheaf_half_to_float_scalar(uint16_t h) { return sheaf_half_to_float(h); }
