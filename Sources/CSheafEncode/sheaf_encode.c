#include "sheaf_encode.h"
#include <math.h>
#include <string.h>

#if defined(__x86_64__)
#include <immintrin.h>
#define SHEAF_X86 1
#endif

static int sheaf_encode_detected = 0;
static _Thread_local int sheaf_encode_forced = 0;

int sheaf_encode_isa(void) {
    if (sheaf_encode_forced == 1) return 1;
    int d = __atomic_load_n(&sheaf_encode_detected, __ATOMIC_RELAXED);
    if (d == 0) {
#ifdef SHEAF_X86
        __builtin_cpu_init();
        d = (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
             __builtin_cpu_supports("avx512vnni")) ? 2 : 1;
#else
        d = 1;
#endif
        __atomic_store_n(&sheaf_encode_detected, d, __ATOMIC_RELAXED);
    }
    return d;
}

void sheaf_encode_force_isa(int isa) { sheaf_encode_forced = isa == 1 ? 1 : 0; }

/// Inserts (v, j) into the sorted list of `*filled` ≤ m best (ties keep the earlier index first).
static inline void insert_candidate(float v, int32_t j, size_t m, size_t *filled, int32_t *idx, float *val) {
    if (*filled == m && !(v > val[m - 1])) return;
    size_t p = *filled < m ? *filled : m - 1;
    while (p > 0 && val[p - 1] < v) { val[p] = val[p - 1]; idx[p] = idx[p - 1]; p--; }
    val[p] = v;
    idx[p] = j;
    if (*filled < m) (*filled)++;
}

size_t sheaf_i8_padded_depth(size_t d) { return (d + 3) & ~(size_t)3; }
size_t sheaf_i8_packed_size(size_t cols, size_t d) { return ((cols + 15) / 16) * 16 * sheaf_i8_padded_depth(d); }

/// round-to-nearest-even of v · inv, clamped to −127…127. |v · inv| ≤ 127 by the choice of scale (plus
/// rounding), far below 2²², so adding and subtracting 1.5 · 2²³ rounds exactly as rintf does (the C
/// target is compiled without fast-math, so the two additions are not folded), without a libm call.
/// The product is its own statement: C may fuse `v * inv + c` in one expression into an FMA where the
/// target has one (the AVX-512 functions inline this), which would round differently.
static inline int8_t quantize_one(float v, float inv) {
    float p = v * inv;
    float r = (p + 12582912.0f) - 12582912.0f;
    r = r > 127.0f ? 127.0f : (r < -127.0f ? -127.0f : r);
    return (int8_t)(int)r;
}

static float row_scale(const float *r, size_t d, float *inv) {
    float m = 0;
    for (size_t t = 0; t < d; t++) { float a = fabsf(r[t]); m = a > m ? a : m; }
    *inv = m > 0 ? 127.0f / m : 0;
    return m / 127.0f;
}

#ifdef SHEAF_X86
static void quantize_rows_avx512(const float *x, size_t rows, size_t d, size_t padded_d, uint8_t *out, float *scales);
#endif

void sheaf_quantize_rows_u8(const float *x, size_t rows, size_t d, size_t padded_d, uint8_t *out, float *scales) {
#ifdef SHEAF_X86
    if (sheaf_encode_isa() == 2) { quantize_rows_avx512(x, rows, d, padded_d, out, scales); return; }
#endif
    for (size_t i = 0; i < rows; i++) {
        float inv;
        scales[i] = row_scale(x + i * d, d, &inv);
        for (size_t t = 0; t < d; t++) out[i * padded_d + t] = (uint8_t)(quantize_one(x[i * d + t], inv) + 128);
        for (size_t t = d; t < padded_d; t++) out[i * padded_d + t] = 128;
    }
}

#ifdef SHEAF_X86
static void pack_i8_avx512(const float *b, size_t cols, size_t d, int8_t *packed, float *scales, int32_t *col_sums);
#endif

void sheaf_pack_i8(const float *b, size_t cols, size_t d, int8_t *packed, float *scales, int32_t *col_sums) {
#ifdef SHEAF_X86
    if (sheaf_encode_isa() == 2) { pack_i8_avx512(b, cols, d, packed, scales, col_sums); return; }
#endif
    size_t dp = sheaf_i8_padded_depth(d);
    memset(packed, 0, sheaf_i8_packed_size(cols, d));
    for (size_t j = 0; j < cols; j++) {
        float inv;
        scales[j] = row_scale(b + j * d, d, &inv);
        int32_t sum = 0;
        size_t group = j / 16, lane = j % 16;
        for (size_t t = 0; t < d; t++) {
            int8_t q = quantize_one(b[j * d + t], inv);
            sum += q;
            packed[(group * (dp / 4) + t / 4) * 64 + lane * 4 + (t % 4)] = q;
        }
        col_sums[j] = sum;
    }
}

/// Column j's int8 value at depth t in the packed layout.
static inline int8_t packed_at(const int8_t *packed, size_t dp, size_t j, size_t t) {
    return packed[((j / 16) * (dp / 4) + t / 4) * 64 + (j % 16) * 4 + (t % 4)];
}

static void dot_portable(const uint8_t *a, const float *as, size_t rows, const int8_t *packed, const float *bs,
                         const int32_t *sums, size_t cols, size_t d, float *out) {
    size_t dp = sheaf_i8_padded_depth(d);
    for (size_t i = 0; i < rows; i++)
        for (size_t j = 0; j < cols; j++) {
            int32_t acc = 0;
            for (size_t t = 0; t < dp; t++) acc += (int32_t)a[i * dp + t] * (int32_t)packed_at(packed, dp, j, t);
            out[i * cols + j] = as[i] * bs[j] * (float)(acc - 128 * sums[j]);
        }
}

#ifdef SHEAF_X86
#define SHEAF_VNNI __attribute__((target("avx512f,avx512bw,avx512vnni")))

/// The scores of one 16-column accumulator: a_scale · b_scale · (acc − 128 · col_sum), `n` ≤ 16 columns
/// (lanes past n are 0).
SHEAF_VNNI static inline __m512 score16(__m512i acc, float a_scale, const float *bs, const int32_t *sums, size_t n) {
    __mmask16 m = (__mmask16)(n >= 16 ? 0xFFFF : ((1u << n) - 1));
    __m512i s = _mm512_maskz_loadu_epi32(m, sums);
    __m512 b = _mm512_maskz_loadu_ps(m, bs);
    __m512i dot = _mm512_sub_epi32(acc, _mm512_slli_epi32(s, 7));
    return _mm512_mul_ps(_mm512_mul_ps(_mm512_set1_ps(a_scale), b), _mm512_cvtepi32_ps(dot));
}

/// Stores one 16-column accumulator's scores, `n` ≤ 16 columns.
SHEAF_VNNI static inline void store16(float *out, __m512i acc, float a_scale, const float *bs, const int32_t *sums,
                                      size_t n) {
    __mmask16 m = (__mmask16)(n >= 16 ? 0xFFFF : ((1u << n) - 1));
    _mm512_mask_storeu_ps(out, m, score16(acc, a_scale, bs, sums, n));
}

/// Per-row candidate lists of the fused shortlist (NULL for plain dot products).
typedef struct {
    const float *w;
    int cosine;
    size_t m;
    int32_t *idx;   /* rows × m */
    float *val;     /* rows × m */
    size_t *filled; /* rows */
} sheaf_selection;

/// Converts 16 scores of one row to objective values and inserts those above the row's current m-th
/// best, in column order (so ties keep the lower index, as `top_portable` does).
SHEAF_VNNI static inline void select16(__m512 score, size_t j, size_t n, size_t row, sheaf_selection *sel) {
    __mmask16 valid = (__mmask16)(n >= 16 ? 0xFFFF : ((1u << n) - 1));
    __m512 w = _mm512_maskz_loadu_ps(valid, sel->w + j);
    __m512 v = sel->cosine ? _mm512_mul_ps(_mm512_mul_ps(score, score), w) : _mm512_sub_ps(_mm512_add_ps(score, score), w);
    size_t m = sel->m, *filled = sel->filled + row;
    int32_t *idx = sel->idx + row * m;
    float *val = sel->val + row * m;
    __mmask16 hit = *filled < m ? valid : (__mmask16)(valid & _mm512_cmp_ps_mask(v, _mm512_set1_ps(val[m - 1]), _CMP_GT_OQ));
    if (!hit) return;
    float lanes[16];
    _mm512_storeu_ps(lanes, v);
    // Only the lanes that passed, lowest first (insert_candidate re-checks against the rising m-th best).
    for (unsigned bits = hit; bits; bits &= bits - 1) {
        int q = __builtin_ctz(bits);
        insert_candidate(lanes[q], (int32_t)(j + (size_t)q), m, filled, idx, val);
    }
}

/// The objective of 16 scores: s²·w (cosine) or 2s − w (euclidean), as `select16` computes it.
SHEAF_VNNI static inline __m512 objective16(__m512 score, __m512 w, int cosine) {
    return cosine ? _mm512_mul_ps(_mm512_mul_ps(score, score), w) : _mm512_sub_ps(_mm512_add_ps(score, score), w);
}

/// `select16` over a whole tile of R rows × 64 full columns (j0 … j0 + 63 < cols): the same scores,
/// objective values and insertions in the same (column) order, but the 4 groups of a row are compared
/// with its current m-th best at once, so a row none of whose 64 values qualifies (the usual case once
/// the lists have filled) costs one comparison instead of four branches.
SHEAF_VNNI static void select_tile(__m512i acc[][4], size_t R, size_t i0, size_t j0, const float *as, const float *bs,
                                   const int32_t *sums, sheaf_selection *sel) {
    __m512 b[4], w[4];
    __m512i s7[4];
    for (int g = 0; g < 4; g++) {
        b[g] = _mm512_loadu_ps(bs + j0 + 16 * (size_t)g);
        s7[g] = _mm512_slli_epi32(_mm512_loadu_si512(sums + j0 + 16 * (size_t)g), 7);
        w[g] = _mm512_loadu_ps(sel->w + j0 + 16 * (size_t)g);
    }
    size_t m = sel->m;
    for (size_t r = 0; r < R; r++) {
        size_t row = i0 + r, *filled = sel->filled + row;
        int32_t *idx = sel->idx + row * m;
        float *val = sel->val + row * m;
        __m512 a = _mm512_set1_ps(as[row]);
        __m512 v[4];
        for (int g = 0; g < 4; g++) {
            // The score exactly as score16 computes it: (a_scale · b_scale) · (float)(acc − 128 · sum).
            __m512 score = _mm512_mul_ps(_mm512_mul_ps(a, b[g]), _mm512_cvtepi32_ps(_mm512_sub_epi32(acc[r][g], s7[g])));
            v[g] = objective16(score, w[g], sel->cosine);
        }
        if (*filled == m) {
            __m512 top = _mm512_max_ps(_mm512_max_ps(v[0], v[1]), _mm512_max_ps(v[2], v[3]));
            if (!_mm512_cmp_ps_mask(top, _mm512_set1_ps(val[m - 1]), _CMP_GT_OQ)) continue;
        }
        for (int g = 0; g < 4; g++) {
            __mmask16 hit = *filled < m ? (__mmask16)0xFFFF
                                        : _mm512_cmp_ps_mask(v[g], _mm512_set1_ps(val[m - 1]), _CMP_GT_OQ);
            if (!hit) continue;
            float lanes[16];
            _mm512_storeu_ps(lanes, v[g]);
            for (unsigned bits = hit; bits; bits &= bits - 1) {
                int q = __builtin_ctz(bits);
                insert_candidate(lanes[q], (int32_t)(j0 + 16 * (size_t)g + (size_t)q), m, filled, idx, val);
            }
        }
    }
}

/// Rows per tile: 6 rows × 4 groups of 16 columns = 24 accumulators, plus 4 column vectors and a row
/// broadcast, fit the 32 AVX-512 registers. Each step then issues 24 `vpdpbusd` for 4 + 6 loads; 4 rows
/// (16 per 8 loads) ran about 25% slower here (Ice Lake server: two `vpdpbusd` per cycle), 7 spills.
#define SHEAF_TILE_ROWS 6

/// rows × (groups of 16 columns), R ≤ SHEAF_TILE_ROWS rows and G ≤ 4 groups per tile, accumulators in
/// registers. Writes `out` (rows × cols), or, with `sel`, keeps only each row's best candidates.
SHEAF_VNNI static void dot_vnni(const uint8_t *a, const float *as, size_t rows, const int8_t *packed,
                                const float *bs, const int32_t *sums, size_t cols, size_t d, float *out,
                                sheaf_selection *sel) {
    size_t dp = sheaf_i8_padded_depth(d), steps = dp / 4, groups = (cols + 15) / 16;
    // Columns outside, rows inside: a tile of 64 packed columns (64 × padded_d bytes, 24 KiB at
    // d = 384) stays in L1 while every row passes, instead of the whole packed matrix streaming from
    // L3 once per few rows.
    for (size_t g0 = 0; g0 < groups; g0 += 4) {
        size_t G = groups - g0 < 4 ? groups - g0 : 4;
        for (size_t i0 = 0; i0 < rows; i0 += SHEAF_TILE_ROWS) {
            size_t R = rows - i0 < SHEAF_TILE_ROWS ? rows - i0 : SHEAF_TILE_ROWS;
            __m512i acc[SHEAF_TILE_ROWS][4];
            for (size_t r = 0; r < SHEAF_TILE_ROWS; r++)
                for (size_t g = 0; g < 4; g++) acc[r][g] = _mm512_setzero_si512();
            const int8_t *pb = packed + g0 * steps * 64;
            if (R == SHEAF_TILE_ROWS && G == 4) {
                const uint8_t *a0 = a + i0 * dp;
                for (size_t s = 0; s < steps; s++) {
                    __m512i b0 = _mm512_loadu_si512(pb + (0 * steps + s) * 64);
                    __m512i b1 = _mm512_loadu_si512(pb + (1 * steps + s) * 64);
                    __m512i b2 = _mm512_loadu_si512(pb + (2 * steps + s) * 64);
                    __m512i b3 = _mm512_loadu_si512(pb + (3 * steps + s) * 64);
#pragma unroll
                    for (int r = 0; r < SHEAF_TILE_ROWS; r++) {
                        int32_t w;
                        memcpy(&w, a0 + (size_t)r * dp + 4 * s, 4);
                        __m512i x = _mm512_set1_epi32(w);
                        acc[r][0] = _mm512_dpbusd_epi32(acc[r][0], x, b0);
                        acc[r][1] = _mm512_dpbusd_epi32(acc[r][1], x, b1);
                        acc[r][2] = _mm512_dpbusd_epi32(acc[r][2], x, b2);
                        acc[r][3] = _mm512_dpbusd_epi32(acc[r][3], x, b3);
                    }
                }
            } else {
                for (size_t s = 0; s < steps; s++)
                    for (size_t g = 0; g < G; g++) {
                        __m512i bv = _mm512_loadu_si512(pb + (g * steps + s) * 64);
                        for (size_t r = 0; r < R; r++) {
                            int32_t w;
                            memcpy(&w, a + (i0 + r) * dp + 4 * s, 4);
                            acc[r][g] = _mm512_dpbusd_epi32(acc[r][g], _mm512_set1_epi32(w), bv);
                        }
                    }
            }
            if (sel && G == 4 && (g0 + 4) * 16 <= cols) {
                select_tile(acc, R, i0, g0 * 16, as, bs, sums, sel);
                continue;
            }
            for (size_t r = 0; r < R; r++)
                for (size_t g = 0; g < G; g++) {
                    size_t j = (g0 + g) * 16;
                    size_t n = cols - j < 16 ? cols - j : 16;
                    if (sel) select16(score16(acc[r][g], as[i0 + r], bs + j, sums + j, n), j, n, i0 + r, sel);
                    else store16(out + (i0 + r) * cols + j, acc[r][g], as[i0 + r], bs + j, sums + j, n);
                }
        }
    }
}
#endif

static size_t top_portable(const float *s, const float *w, int cosine, size_t k, size_t m, int32_t *idx, float *val) {
    size_t filled = 0;
    for (size_t j = 0; j < k; j++) {
        float v = cosine ? s[j] * s[j] * w[j] : 2 * s[j] - w[j];
        insert_candidate(v, (int32_t)j, m, &filled, idx, val);
    }
    return filled;
}

#ifdef SHEAF_X86
/// 16 values at a time; only lanes above the current m-th best are inserted (in index order).
SHEAF_VNNI static size_t top_avx512(const float *s, const float *w, int cosine, size_t k, size_t m, int32_t *idx,
                                    float *val) {
    size_t filled = 0, j = 0;
    float lanes[16];
    for (; j + 16 <= k; j += 16) {
        __m512 a = _mm512_loadu_ps(s + j), b = _mm512_loadu_ps(w + j);
        __m512 v = cosine ? _mm512_mul_ps(_mm512_mul_ps(a, a), b) : _mm512_sub_ps(_mm512_add_ps(a, a), b);
        __mmask16 hit = filled < m ? 0xFFFF : _mm512_cmp_ps_mask(v, _mm512_set1_ps(val[m - 1]), _CMP_GT_OQ);
        if (!hit) continue;
        _mm512_storeu_ps(lanes, v);
        for (int q = 0; q < 16; q++)
            if (hit & (1u << q)) insert_candidate(lanes[q], (int32_t)(j + q), m, &filled, idx, val);
    }
    for (; j < k; j++) {
        float v = cosine ? s[j] * s[j] * w[j] : 2 * s[j] - w[j];
        insert_candidate(v, (int32_t)j, m, &filled, idx, val);
    }
    return filled;
}
#endif

static float dot_f32_portable(const float *x, const float *y, size_t d) {
    float part[16] = {0};
    size_t t = 0;
    for (; t + 16 <= d; t += 16)
        for (int q = 0; q < 16; q++) part[q] += x[t + q] * y[t + q];
    float sum = 0;
    for (int q = 0; q < 16; q++) sum += part[q];
    for (; t < d; t++) sum += x[t] * y[t];
    return sum;
}

#ifdef SHEAF_X86
/// `row_scale` 16 values at a time: max |r[t]| is exact in any order, so the scale is the same.
SHEAF_VNNI static inline float row_scale_avx512(const float *r, size_t d, float *inv) {
    size_t d16 = d & ~(size_t)15, t = 0;
    __m512 mx = _mm512_setzero_ps();
    for (; t < d16; t += 16) mx = _mm512_max_ps(mx, _mm512_abs_ps(_mm512_loadu_ps(r + t)));
    float m = _mm512_reduce_max_ps(mx);
    for (; t < d; t++) { float a = fabsf(r[t]); m = a > m ? a : m; }
    *inv = m > 0 ? 127.0f / m : 0;
    return m / 127.0f;
}

/// `quantize_one` of 16 values, as int32 in −127…127: the same float operations (multiply, then add
/// and subtract 1.5 · 2²³ as separate instructions, never fused), so the same integers.
SHEAF_VNNI static inline __m512i quantize16_avx512(const float *r, __m512 inv) {
    const __m512 magic = _mm512_set1_ps(12582912.0f);
    __m512 v = _mm512_mul_ps(_mm512_loadu_ps(r), inv);
    v = _mm512_sub_ps(_mm512_add_ps(v, magic), magic);
    v = _mm512_min_ps(_mm512_max_ps(v, _mm512_set1_ps(-127.0f)), _mm512_set1_ps(127.0f));
    return _mm512_cvttps_epi32(v);
}

/// `sheaf_quantize_rows_u8` 16 values at a time, byte-identical to the portable loop.
SHEAF_VNNI static void quantize_rows_avx512(const float *x, size_t rows, size_t d, size_t padded_d, uint8_t *out,
                                            float *scales) {
    size_t d16 = d & ~(size_t)15;
    const __m512i offset = _mm512_set1_epi32(128);
    for (size_t i = 0; i < rows; i++) {
        const float *r = x + i * d;
        uint8_t *o = out + i * padded_d;
        float inv;
        scales[i] = row_scale_avx512(r, d, &inv);
        const __m512 vinv = _mm512_set1_ps(inv);
        size_t t = 0;
        for (; t < d16; t += 16) {
            __m512i q = _mm512_add_epi32(quantize16_avx512(r + t, vinv), offset);  // 1…255
            _mm_storeu_si128((__m128i *)(o + t), _mm512_cvtepi32_epi8(q));
        }
        for (; t < d; t++) o[t] = (uint8_t)(quantize_one(r[t], inv) + 128);
        for (t = d; t < padded_d; t++) o[t] = 128;
    }
}

/// `sheaf_pack_i8` 16 depths at a time: the same bytes, scales and sums as the portable loop. A
/// column's 16 values are 4 groups of 4 depths, one 32-bit store each.
SHEAF_VNNI static void pack_i8_avx512(const float *b, size_t cols, size_t d, int8_t *packed, float *scales,
                                      int32_t *col_sums) {
    size_t dp = sheaf_i8_padded_depth(d), d16 = d & ~(size_t)15;
    memset(packed, 0, sheaf_i8_packed_size(cols, d));
    for (size_t j = 0; j < cols; j++) {
        const float *r = b + j * d;
        float inv;
        scales[j] = row_scale_avx512(r, d, &inv);
        const __m512 vinv = _mm512_set1_ps(inv);
        int8_t *col = packed + (j / 16) * (dp / 4) * 64 + (j % 16) * 4;
        __m512i sum = _mm512_setzero_si512();
        size_t t = 0;
        for (; t < d16; t += 16) {
            __m512i q = quantize16_avx512(r + t, vinv);
            sum = _mm512_add_epi32(sum, q);
            uint32_t groups[4];
            _mm_storeu_si128((__m128i *)groups, _mm512_cvtepi32_epi8(q));
            for (int g = 0; g < 4; g++) memcpy(col + (t / 4 + (size_t)g) * 64, &groups[g], 4);
        }
        int32_t total = _mm512_reduce_add_epi32(sum);
        for (; t < d; t++) {
            int8_t q = quantize_one(r[t], inv);
            total += q;
            col[(t / 4) * 64 + (t % 4)] = q;
        }
        col_sums[j] = total;
    }
}

SHEAF_VNNI static void dot_rows_avx512(const float *x, const float *rows, const int32_t *idx, size_t m, size_t d,
                                       float *out) {
    size_t d16 = d & ~(size_t)15;
    for (size_t q = 0; q < m; q++) {
        const float *y = rows + (size_t)idx[q] * d;
        if (q + 1 < m) {
            // The candidates are scattered over the centroid table (L3 at K = 4096): ask for the next row early.
            const char *next = (const char *)(rows + (size_t)idx[q + 1] * d);
            for (size_t b = 0; b < d * sizeof(float); b += 64) _mm_prefetch(next + b, _MM_HINT_T0);
        }
        __m512 acc = _mm512_setzero_ps();
        for (size_t t = 0; t < d16; t += 16) acc = _mm512_fmadd_ps(_mm512_loadu_ps(x + t), _mm512_loadu_ps(y + t), acc);
        float sum = _mm512_reduce_add_ps(acc);
        for (size_t t = d16; t < d; t++) sum += x[t] * y[t];
        out[q] = sum;
    }
}
#endif

void sheaf_dot_rows_f32(const float *x, const float *rows, const int32_t *idx, size_t m, size_t d, float *out) {
#ifdef SHEAF_X86
    if (sheaf_encode_isa() == 2) { dot_rows_avx512(x, rows, idx, m, d, out); return; }
#endif
    for (size_t q = 0; q < m; q++) out[q] = dot_f32_portable(x, rows + (size_t)idx[q] * d, d);
}

size_t sheaf_top_candidates(const float *s, const float *w, int cosine, size_t k, size_t m, int32_t *idx,
                            float *val) {
    if (m == 0) return 0;
#ifdef SHEAF_X86
    if (sheaf_encode_isa() == 2) return top_avx512(s, w, cosine, k, m, idx, val);
#endif
    return top_portable(s, w, cosine, k, m, idx, val);
}

void sheaf_dot_u8i8(const uint8_t *a, const float *as, size_t rows, const int8_t *packed, const float *bs,
                    const int32_t *sums, size_t cols, size_t d, float *out) {
#ifdef SHEAF_X86
    if (sheaf_encode_isa() == 2) { dot_vnni(a, as, rows, packed, bs, sums, cols, d, out, NULL); return; }
#endif
    dot_portable(a, as, rows, packed, bs, sums, cols, d, out);
}

size_t sheaf_shortlist_u8i8(const uint8_t *a, const float *as, size_t rows, const int8_t *packed, const float *bs,
                            const int32_t *sums, const float *w, int cosine, size_t cols, size_t d, size_t m,
                            float *scratch, int32_t *indices, float *values, size_t *counts) {
    size_t mm = m < cols ? m : cols;
    for (size_t i = 0; i < rows; i++) counts[i] = 0;
    if (mm == 0) return 0;
#ifdef SHEAF_X86
    if (sheaf_encode_isa() == 2) {
        sheaf_selection sel = {w, cosine, mm, indices, values, counts};
        dot_vnni(a, as, rows, packed, bs, sums, cols, d, NULL, &sel);
        return mm;
    }
#endif
    // Portable: a row of scores at a time, then the same selection.
    for (size_t i = 0; i < rows; i++) {
        dot_portable(a + i * sheaf_i8_padded_depth(d), as + i, 1, packed, bs, sums, cols, d, scratch);
        counts[i] = top_portable(scratch, w, cosine, cols, mm, indices + i * mm, values + i * mm);
    }
    return mm;
}
