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

/// The same with half-precision centroids: centroid[l][k][d] = level_scales[l] · half[l][k][d], where
/// `centroids` holds levels × K × D IEEE binary16 values and `level_scales` one float per level
/// (a power of two keeps the product exact). Reads half the centroid bytes of `sheaf_decode_f32`.
void sheaf_decode_f16(const uint16_t *centroids, const float *level_scales, size_t levels, size_t K,
                      size_t D, const uint32_t *codes, const float *alphas, size_t n,
                      float *out, int streaming);

/// dst[i] = binary16(src[i] · inverse_scale), rounded to nearest even (values beyond ±65504
/// become ±infinity: the caller picks the scale so that none are).
void sheaf_float_to_half(const float *src, float inverse_scale, uint16_t *dst, size_t n);

/// One binary16 value widened to float (exact), for reference decoders and tests.
float sheaf_half_to_float_scalar(uint16_t h);

/// Which path the decode kernels use now: 2 = AVX2+FMA+F16C, 1 = portable (compiler-vectorised baseline).
int sheaf_decode_isa(void);

/// Forces a path, for tests: 0 = automatic, 1 = portable, 2 = AVX2+FMA+F16C (falls back to
/// portable when the CPU lacks one of them). Process-wide.
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

/// glibc only: raises M_MMAP_THRESHOLD to 1 GiB and M_TRIM_THRESHOLD to 2 GiB − 1, so large blocks
/// come from the heap and freed memory is kept. Returns 1 when both settings were applied, 0
/// otherwise (and always 0 off glibc). Process-wide.
int sheaf_retain_freed_buffers(void);


// MARK: - SheafNN kernels (sheaf_nn.c)
//
// Each works on whole arrays or rows; callers split large arrays into chunks for threads. An element
// (or row) never depends on how the array was split. `accumulate != 0` adds into the output,
// otherwise the output is overwritten (and need not be initialised).

/// y[i] = exp(x[i]) (within 2.5e-7 relative; x < −87.33 gives 0, x > 88 is treated as 88). y may be x.
void sheaf_exp(const float *x, float *y, size_t n);
/// y[i] = erf(x[i]) (within 5e-7 of libm's erff). y may be x.
void sheaf_erf(const float *x, float *y, size_t n);
/// GELU: cdf[i] = Φ(x[i]) = (1 + erf(x/√2)) / 2, y[i] = x[i] · cdf[i].
void sheaf_gelu_forward(const float *x, float *y, float *cdf, size_t n);
/// dx[i] (+)= g[i] · (cdf[i] + x[i] · φ(x[i])).
void sheaf_gelu_backward(const float *x, const float *cdf, const float *g, float *dx, size_t n, int accumulate);
/// Row-wise softmax of scale · scores over the allowed columns: column j of row r is allowed when
/// key_allowed is NULL or key_allowed[j] != 0, and, when `causal`, j ≤ r. Others get 0; a row with no
/// allowed column gets 1/cols everywhere. y may be scores.
void sheaf_softmax_rows(const float *scores, float *y, size_t rows, size_t cols, float scale, int causal,
                        const uint8_t *key_allowed);
/// The softmax backward pass: dx (+)= scale · y ⊙ (g − Σ_j g_j y_j), per row.
void sheaf_softmax_backward_rows(const float *y, const float *g, float *dx, size_t rows, size_t cols, float scale,
                                 int accumulate);
/// Layer norm of rows × d: xhat = (x − μ)·inv_std, y = xhat ⊙ γ + β; keeps xhat and inv_std (rows).
void sheaf_layernorm_forward(const float *x, const float *gamma, const float *beta, float *y, float *xhat,
                             float *inv_std, size_t rows, size_t d, float eps);
/// Layer norm input gradient: dx (+)= inv_std/d · (d·ĝ − Σĝ − xhat · Σ(ĝ ⊙ xhat)), ĝ = g ⊙ γ.
void sheaf_layernorm_backward(const float *g, const float *gamma, const float *xhat, const float *inv_std, float *dx,
                              size_t rows, size_t d, int accumulate);
/// out[j] += Σ_r a[r][j] · b[r][j] (b NULL: Σ_r a[r][j]), rows added in order.
void sheaf_column_sums(const float *a, const float *b, size_t rows, size_t d, float *out);
/// y[r][j] = a[r][j] + b[j]. y may be a.
void sheaf_add_rows(const float *a, const float *b, float *y, size_t rows, size_t d);
/// y[i] (+)= alpha · x[i].
void sheaf_axpy(float alpha, const float *x, float *y, size_t n, int accumulate);
/// y[r][j] (+)= a[r][j] · b[j] (b one row of d, repeated; rows = 1 multiplies two arrays).
void sheaf_mul_rows(const float *a, const float *b, float *y, size_t rows, size_t d, int accumulate);
/// SiLU: y[i] = x[i] · σ(x[i]).
void sheaf_silu_forward(const float *x, float *y, size_t n);
/// dx[i] (+)= g[i] · σ(x)(1 + x(1 − σ(x))).
void sheaf_silu_backward(const float *x, const float *g, float *dx, size_t n, int accumulate);
/// RMS norm of rows × d: y = x · inv_rms ⊙ γ, inv_rms = 1/√(mean(x²) + ε) kept per row.
void sheaf_rmsnorm_forward(const float *x, const float *gamma, float *y, float *inv_rms, size_t rows, size_t d,
                           float eps);
/// RMS norm input gradient: dx (+)= inv · (ĝ − x̂ · mean(ĝ ⊙ x̂)), x̂ = x · inv, ĝ = g ⊙ γ.
void sheaf_rmsnorm_backward(const float *g, const float *gamma, const float *x, const float *inv_rms, float *dx,
                            size_t rows, size_t d, int accumulate);
/// One AdamW update of n weights in place (g NULL: a zero gradient): m ← β₁m + (1−β₁)g,
/// v ← β₂v + (1−β₂)g², w ← w − lr · (m·inv_correction1 / (√(v·inv_correction2) + ε) + decay · w).
void sheaf_adamw(float *w, float *m, float *v, const float *g, size_t n, float lr, float beta1, float beta2,
                 float inv_correction1, float inv_correction2, float eps, float decay);
/// Σ x[i]², accumulated in double.
double sheaf_sum_squares(const float *x, size_t n);
/// Which path the SheafNN kernels use now on this thread: 2 = AVX2+FMA, 1 = portable.
int sheaf_nn_isa(void);
/// Forces the portable path (1) or restores automatic selection (0) on the calling thread only,
/// for tests.
void sheaf_nn_force_isa(int isa);

#ifdef __cplusplus
}
#endif

#endif /* SHEAF_KERNELS_H */
