#ifndef SHEAF_KERNELS_H
#define SHEAF_KERNELS_H

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

/// Which path `sheaf_decode_f32` uses now: 2 = AVX2+FMA, 1 = portable (compiler-vectorised baseline).
int sheaf_decode_isa(void);

/// Forces a path, for tests: 0 = automatic, 1 = portable, 2 = AVX2+FMA (falls back to portable
/// when the CPU lacks AVX2 or FMA). Process-wide.
void sheaf_decode_force_isa(int isa);

/// CRC-32C (Castagnoli, reflected polynomial 0x82F63B78) of `n` bytes, continuing from `crc`
/// (0 for a new checksum; pass a previous result to chain buffers). The usual pre- and
/// post-inversion is applied, so crc32c("123456789") == 0xE3069283.
/// Uses the SSE4.2 `crc32` instruction when the CPU has it, a byte-wise table otherwise.
uint32_t sheaf_crc32c(uint32_t crc, const void *data, size_t n);

/// Which path `sheaf_crc32c` uses now: 2 = SSE4.2, 1 = portable table.
int sheaf_crc32c_isa(void);

/// Forces the portable path (1) or restores automatic selection (0), for tests. Process-wide.
void sheaf_crc32c_force_isa(int isa);

#ifdef __cplusplus
}
#endif

#endif /* SHEAF_KERNELS_H */
