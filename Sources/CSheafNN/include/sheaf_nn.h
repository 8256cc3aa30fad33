// SheafNN's element-wise and row-wise kernels (AVX2+FMA or portable, chosen at run time) and the
// allocator setting for training loops. Used by SheafNN only.
//
// Path selection: the best path the CPU supports is detected once (cached). Tests can force the
// portable path with `sheaf_nn_force_isa`; the override is per thread (it applies on the calling
// thread only), so concurrent work on other threads keeps the automatic path.

#ifndef SHEAF_NN_H
#define SHEAF_NN_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/// glibc only: raises M_MMAP_THRESHOLD to 1 GiB and M_TRIM_THRESHOLD to 2 GiB − 1, so large blocks
/// come from the heap and freed memory is kept. Returns 1 when both settings were applied, 0
/// otherwise (and always 0 off glibc). Process-wide.
int sheaf_retain_freed_buffers(void);

// MARK: - Kernels (sheaf_nn.c)
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
/// Dropout factors of n values from a SplitMix64 whose state starts at `state` (each draw: state +=
/// 0x9E3779B97F4A7C15, then SplitMix64's finaliser): each 64-bit draw decides four values, 16 bits
/// each from the low end; a value is dropped (factor 0) when its 16 bits are below `threshold`, kept
/// (factor `keep`) otherwise. Exact integer work: the same factors on every path and machine.
void sheaf_dropout_factors(float *factors, size_t n, uint64_t state, uint16_t threshold, float keep);
/// out[i] (+)= x[i] · factor(i), with the factors of `sheaf_dropout_factors`, never stored.
void sheaf_dropout_apply(const float *x, float *out, size_t n, uint64_t state, uint16_t threshold, float keep,
                         int accumulate);
/// Which path the SheafNN kernels use now on this thread: 2 = AVX2+FMA, 1 = portable.
int sheaf_nn_isa(void);
/// Forces the portable path (1) or restores automatic selection (0) on the calling thread only,
/// for tests.
void sheaf_nn_force_isa(int isa);

#ifdef __cplusplus
}
#endif

#endif /* SHEAF_NN_H */
