// Sheaf's decode kernels (residual-codebook decode, half conversion) and CRC-32C, in C with AVX2/F16C
// and SSE4.2 paths chosen at run time and a portable fallback. Used by SheafCodebook and SheafStore.
//
// Path selection: each family detects the best path the CPU supports once (cached). Tests can force
// a path with `*_force_isa`; the override is per thread (it applies on the calling thread only), so
// concurrent work on other threads keeps the automatic path.

#ifndef SHEAF_DECODE_H
#define SHEAF_DECODE_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/// Residual-codebook decode: out[i] = Σ_l alphas[i][l] · centroids[l][codes[i][l]].
///
/// - centroids: levels × K × D floats, row-major.
/// - codes, alphas: n × levels (row-major). Every code must be < K (the caller guarantees it;
///   the kernel does not check and would read outside `centroids` otherwise).
/// - out: n × D floats; must not overlap the inputs.
/// - levels: 1...16.
/// - streaming != 0: use non-temporal stores for rows whose address is suitably aligned
///   (32 bytes for AVX2, 16 for the portable path); meant for large outputs that go to DRAM.
///   Rows that are not aligned are written with ordinary stores. A store fence is issued
///   before returning whenever non-temporal stores were used.
void sheaf_decode_f32(const float *centroids, size_t levels, size_t K, size_t D,
                      const uint32_t *codes, const float *alphas, size_t n,
                      float *out, int streaming);

/// The same with half-precision centroids: centroid[l][k][d] = level_scales[l] · half[l][k][d], where
/// `centroids` holds levels × K × D IEEE binary16 values and `level_scales` one float per level
/// (a power of two keeps the product exact). Reads half the centroid bytes of `sheaf_decode_f32`.
void sheaf_decode_f16(const uint16_t *centroids, const float *level_scales, size_t levels, size_t K,
                      size_t D, const uint32_t *codes, const float *alphas, size_t n,
                      float *out, int streaming);

/// `sheaf_decode_f32` and `sheaf_decode_f16` with a bias row added to every output row after the
/// levels are summed: out[i] = Σ_l alphas[i][l] · centroids[l][codes[i][l]] + bias (bias: D floats,
/// or NULL for none). Projected decodes use them (tables T_l = C_l · W, then + b, in one pass).
void sheaf_decode_f32_bias(const float *centroids, size_t levels, size_t K, size_t D,
                           const uint32_t *codes, const float *alphas, size_t n, const float *bias,
                           float *out, int streaming);
void sheaf_decode_f16_bias(const uint16_t *centroids, const float *level_scales, size_t levels, size_t K,
                           size_t D, const uint32_t *codes, const float *alphas, size_t n,
                           const float *bias, float *out, int streaming);

/// dst[i] = binary16(src[i] · inverse_scale), rounded to nearest even (values beyond ±65504
/// become ±infinity: the caller picks the scale so that none are).
void sheaf_float_to_half(const float *src, float inverse_scale, uint16_t *dst, size_t n);

/// One binary16 value widened to float (exact), for reference decoders and tests.
float sheaf_half_to_float_scalar(uint16_t h);

/// Which path the decode kernels use now on this thread: 2 = AVX2+FMA+F16C, 1 = portable (compiler-vectorised baseline).
int sheaf_decode_isa(void);

/// Forces a path on the calling thread only, for tests: 0 = automatic, 1 = portable,
/// 2 = AVX2+FMA+F16C (falls back to portable when the CPU lacks one of them).
void sheaf_decode_force_isa(int isa);

/// CRC-32C (Castagnoli, reflected polynomial 0x82F63B78) of `n` bytes, continuing from `crc`
/// (0 for a new checksum; pass a previous result to chain buffers). The usual pre- and
/// post-inversion is applied, so crc32c("123456789") == 0xE3069283.
/// Uses the SSE4.2 `crc32` instruction when the CPU has it, a byte-wise table otherwise.
uint32_t sheaf_crc32c(uint32_t crc, const void *data, size_t n);

/// Which path `sheaf_crc32c` uses now on this thread: 2 = SSE4.2, 1 = portable table.
int sheaf_crc32c_isa(void);

/// Forces the portable path (1) or restores automatic selection (0) on the calling thread only,
/// for tests.
void sheaf_crc32c_force_isa(int isa);

#ifdef __cplusplus
}
#endif

#endif /* SHEAF_DECODE_H */
