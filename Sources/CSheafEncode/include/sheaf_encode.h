#ifndef SHEAF_ENCODE_H
#define SHEAF_ENCODE_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

// Approximate scores for encoding: int8 rows against int8 centroids, for a shortlist that is then
// rescored exactly in float32. Integer products are exact, so every path gives the same integers and
// (computing out = a_scale · b_scale · (float)dot in that order) the same floats.

/// Symmetric int8 quantization of each row, stored offset by +128 as unsigned bytes (the form the
/// dot kernel reads): scales[i] = max_t |x[i][t]| / 127 (0 for a zero row), q = round(x / scale) in
/// −127…127, out[i][t] = q + 128 for t < d and 128 (a zero) for d ≤ t < padded_d.
void sheaf_quantize_rows_u8(const float *x, size_t rows, size_t d, size_t padded_d, uint8_t *out, float *scales);

/// The padded depth (d rounded up to a multiple of 4) and the bytes of a packed matrix of `cols` rows.
size_t sheaf_i8_padded_depth(size_t d);
size_t sheaf_i8_packed_size(size_t cols, size_t d);

/// Quantizes `cols` × d float rows (centroids) to int8 with a scale per row and packs them for
/// `sheaf_dot_u8i8`: groups of 16 rows, 4 consecutive depths of the 16 rows per 64 bytes (zero padded).
/// col_sums[j] = Σ_t q[j][t] (the kernel subtracts 128 · col_sums to undo the +128 offset of a).
void sheaf_pack_i8(const float *b, size_t cols, size_t d, int8_t *packed, float *scales, int32_t *col_sums);

/// out[i][j] = a_scales[i] · b_scales[j] · Σ_t q_a[i][t] · q_b[j][t], for rows × cols.
/// Accumulates in int32: |Σ (q_a + 128) · q_b| ≤ d · 255 · 127, which fits for d ≤ 66,000 (Sheaf's
/// dimensions are at most 65,536).
/// a: rows × padded_d from `sheaf_quantize_rows_u8`; packed, b_scales, col_sums from `sheaf_pack_i8`.
/// AVX-512 VNNI when the CPU has it (checked at run time), portable otherwise.
void sheaf_dot_u8i8(const uint8_t *a, const float *a_scales, size_t rows, const int8_t *packed,
                    const float *b_scales, const int32_t *col_sums, size_t cols, size_t d, float *out);

/// The indices of the `m` largest values v[j] over j < k, best first (ties: the lower index first), where
/// v[j] = cosine ? s[j]² · w[j] : 2 · s[j] − w[j] (the greedy encoding objectives, w = 1/‖c‖² or ‖c‖²).
/// Returns how many were written (min(m, k)). `values` receives their v. AVX-512 or portable, same result.
size_t sheaf_top_candidates(const float *s, const float *w, int cosine, size_t k, size_t m, int32_t *indices,
                            float *values);

/// out[q] = Σ_t x[t] · rows[indices[q]][t] for q < m (rows: d floats each), the exact rescoring of a
/// shortlist. AVX-512 with FMA (16 partial sums) or portable (16 partial sums, unfused): equal within rounding.
void sheaf_dot_rows_f32(const float *x, const float *rows, const int32_t *indices, size_t m, size_t d, float *out);

/// `sheaf_dot_u8i8` and `sheaf_top_candidates` fused: each row's best min(m, cols) columns by the greedy
/// objective, without materialising rows × cols scores (the AVX-512 path selects each 4 × 64 tile while
/// it is in registers). indices, values: rows × min(m, cols), best first; counts[i]: how many row i has.
/// scratch: cols floats (the portable path's row of scores). Same results on both paths.
size_t sheaf_shortlist_u8i8(const uint8_t *a, const float *a_scales, size_t rows, const int8_t *packed,
                            const float *b_scales, const int32_t *col_sums, const float *w, int cosine, size_t cols,
                            size_t d, size_t m, float *scratch, int32_t *indices, float *values, size_t *counts);

/// Which path `sheaf_dot_u8i8` uses on this thread: 2 = AVX-512 VNNI, 1 = portable.
int sheaf_encode_isa(void);
/// Forces the portable path (1) or restores automatic selection (0) on the calling thread only, for tests.
void sheaf_encode_force_isa(int isa);

#ifdef __cplusplus
}
#endif

#endif /* SHEAF_ENCODE_H */
