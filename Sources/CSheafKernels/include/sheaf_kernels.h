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

#ifdef __cplusplus
}
#endif

#endif /* SHEAF_KERNELS_H */
