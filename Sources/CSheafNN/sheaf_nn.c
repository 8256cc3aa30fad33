// Element-wise and row-wise kernels for SheafNN: exp, erf, GELU, SiLU, masked softmax, layer and RMS
// norm, row products, AdamW.
//
// Every kernel body is written once, on 8-float vectors (clang's vector extensions), and compiled
// twice: inside `target("avx2,fma")` functions (8 lanes, fused multiply-adds) and for the baseline
// ISA (SSE2 on x86-64, the vectors split in halves). The path is chosen once at run time; tests can
// force the portable one. Tails shorter than 8 go through the same vector code on a zero-padded
// copy, so every element of an array gets the same formula.
//
// The two paths can differ in the last bits (FMA contraction); within one path results never depend
// on how a caller splits an array into chunks, because each element (or row) is computed alone.
//
// exp: Cephes-style range reduction x = n·ln2 + r and a degree-6 polynomial (within 2.5e-7 relative, tested); inputs
// below −87.33 give exactly 0, inputs above 88 are treated as 88.
// erf: the rational approximation Eigen and XLA use for float (odd degree-13 numerator over an even
// degree-8 denominator, argument clamped to ±4); within 5e-7 of libm's erff (tested).

#include "sheaf_nn.h"

#include <math.h>
#include <string.h>

// The 8-float vectors only cross always-inline helpers, never a real call boundary.
#pragma clang diagnostic ignored "-Wpsabi"

#if defined(__x86_64__) || defined(__i386__)
#define SHEAF_NN_X86 1
#else
#define SHEAF_NN_X86 0
#endif

typedef float f8 __attribute__((vector_size(32)));
typedef float f8u __attribute__((vector_size(32), aligned(4)));
typedef int32_t i8 __attribute__((vector_size(32)));
typedef float f4 __attribute__((vector_size(16)));
typedef float f4u __attribute__((vector_size(16), aligned(4)));
typedef double d4 __attribute__((vector_size(32)));

#define INLINE static inline __attribute__((always_inline))

INLINE f8 load8(const float *p) { return *(const f8u *)p; }
INLINE void store8(float *p, f8 v) { *(f8u *)p = v; }
INLINE f8 splat(float x) { return (f8){x, x, x, x, x, x, x, x}; }
INLINE float hsum(f8 v) {
    // A fixed pairwise order, the same on both paths.
    f4 a = __builtin_shufflevector(v, v, 0, 1, 2, 3) + __builtin_shufflevector(v, v, 4, 5, 6, 7);
    float s0 = a[0] + a[2], s1 = a[1] + a[3];
    return s0 + s1;
}

// Loads up to 8 floats, the rest `fill`.
INLINE f8 load_partial(const float *p, size_t n, float fill) {
    float tmp[8];
    for (int i = 0; i < 8; i++) tmp[i] = fill;
    memcpy(tmp, p, n * sizeof(float));
    return load8(tmp);
}
INLINE void store_partial(float *p, f8 v, size_t n) {
    float tmp[8];
    store8(tmp, v);
    memcpy(p, tmp, n * sizeof(float));
}

INLINE f8 exp8(f8 x) {
    const i8 underflow = x < splat(-87.33654f);
    x = __builtin_elementwise_min(__builtin_elementwise_max(x, splat(-87.33654f)), splat(88.0f));
    const f8 fx = __builtin_elementwise_floor(x * 1.44269504088896341f + 0.5f);
    x = x - fx * 0.693359375f;
    x = x + fx * 2.12194440e-4f;
    const f8 z = x * x;
    f8 y = splat(1.9875691500e-4f);
    y = y * x + 1.3981999507e-3f;
    y = y * x + 8.3334519073e-3f;
    y = y * x + 4.1665795894e-2f;
    y = y * x + 1.6666665459e-1f;
    y = y * x + 5.0000001201e-1f;
    y = y * z + x + 1.0f;
    const i8 n = __builtin_convertvector(fx, i8);
    y = y * (f8)((n + 127) << 23);
    return (f8)((i8)y & ~underflow);
}

INLINE f8 erf8(f8 x) {
    x = __builtin_elementwise_min(__builtin_elementwise_max(x, splat(-4.0f)), splat(4.0f));
    const f8 x2 = x * x;
    f8 p = x2 * -2.72614225801306e-10f + 2.77068142495902e-08f;
    p = p * x2 + -2.10102402082508e-06f;
    p = p * x2 + -5.69250639462346e-05f;
    p = p * x2 + -7.34990630326855e-04f;
    p = p * x2 + -2.95459980854025e-03f;
    p = p * x2 + -1.60960333262415e-02f;
    p = p * x;
    f8 q = x2 * -1.45660718464996e-05f + -2.13374055278905e-04f;
    q = q * x2 + -1.68282697438203e-03f;
    q = q * x2 + -7.37332916720468e-03f;
    q = q * x2 + -1.42647390514189e-02f;
    return p / q;
}

// MARK: - Kernel bodies

INLINE void exp_body(const float *x, float *y, size_t n) {
    size_t i = 0;
    for (; i + 8 <= n; i += 8) store8(y + i, exp8(load8(x + i)));
    if (i < n) store_partial(y + i, exp8(load_partial(x + i, n - i, 0)), n - i);
}

INLINE void erf_body(const float *x, float *y, size_t n) {
    size_t i = 0;
    for (; i + 8 <= n; i += 8) store8(y + i, erf8(load8(x + i)));
    if (i < n) store_partial(y + i, erf8(load_partial(x + i, n - i, 0)), n - i);
}

INLINE void gelu_forward_body(const float *x, float *y, float *cdf, size_t n) {
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        const f8 v = load8(x + i);
        const f8 c = 0.5f * (1.0f + erf8(v * 0.70710678118654752f));
        store8(cdf + i, c);
        store8(y + i, v * c);
    }
    if (i < n) {
        const f8 v = load_partial(x + i, n - i, 0);
        const f8 c = 0.5f * (1.0f + erf8(v * 0.70710678118654752f));
        store_partial(cdf + i, c, n - i);
        store_partial(y + i, v * c, n - i);
    }
}

INLINE f8 gelu_derivative(f8 v, f8 c) { return c + v * 0.39894228040143268f * exp8(-0.5f * v * v); }

INLINE void gelu_backward_body(const float *x, const float *cdf, const float *g, float *dx, size_t n, int accumulate) {
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        const f8 d = load8(g + i) * gelu_derivative(load8(x + i), load8(cdf + i));
        store8(dx + i, accumulate ? load8(dx + i) + d : d);
    }
    if (i < n) {
        const size_t r = n - i;
        const f8 d = load_partial(g + i, r, 0) * gelu_derivative(load_partial(x + i, r, 0), load_partial(cdf + i, r, 0));
        store_partial(dx + i, accumulate ? load_partial(dx + i, r, 0) + d : d, r);
    }
}

INLINE float sum_row(const float *x, size_t n) {
    f8 acc = splat(0);
    size_t i = 0;
    for (; i + 8 <= n; i += 8) acc += load8(x + i);
    if (i < n) acc += load_partial(x + i, n - i, 0);
    return hsum(acc);
}

INLINE float dot_row(const float *a, const float *b, size_t n) {
    f8 acc = splat(0);
    size_t i = 0;
    for (; i + 8 <= n; i += 8) acc += load8(a + i) * load8(b + i);
    if (i < n) acc += load_partial(a + i, n - i, 0) * load_partial(b + i, n - i, 0);
    return hsum(acc);
}

INLINE void scale_row(float *y, float s, size_t n) {
    size_t i = 0;
    for (; i + 8 <= n; i += 8) store8(y + i, load8(y + i) * s);
    for (; i < n; i++) y[i] *= s;
}

INLINE void softmax_rows_body(const float *s, float *y, size_t rows, size_t cols, float scale, int causal,
                              const uint8_t *key_allowed) {
    for (size_t r = 0; r < rows; r++) {
        const float *sr = s + r * cols;
        float *yr = y + r * cols;
        const size_t limit = causal ? (r + 1 < cols ? r + 1 : cols) : cols;
        float m = -INFINITY;
        int any = 0;
        if (key_allowed == NULL) {
            // Columns < limit are allowed: scale them, −∞ for the rest, vectorised.
            f8 mv = splat(-INFINITY);
            const f8 lanes = {0, 1, 2, 3, 4, 5, 6, 7};
            size_t j = 0;
            for (; j + 8 <= cols; j += 8) {
                const i8 valid = (lanes + (float)j) < (float)limit;
                const f8 v = (f8)(((i8)(load8(sr + j) * scale) & valid) | ((i8)splat(-INFINITY) & ~valid));
                store8(yr + j, v);
                mv = __builtin_elementwise_max(mv, v);
            }
            for (; j < cols; j++) yr[j] = j < limit ? sr[j] * scale : -INFINITY;
            for (int l = 0; l < 8; l++) m = mv[l] > m ? mv[l] : m;
            for (j = (cols / 8) * 8; j < limit; j++) m = yr[j] > m ? yr[j] : m;
            any = limit > 0;
        } else {
            for (size_t j = 0; j < cols; j++) {
                if (j < limit && key_allowed[j]) {
                    const float v = sr[j] * scale;
                    yr[j] = v;
                    m = v > m ? v : m;
                    any = 1;
                } else {
                    yr[j] = -INFINITY;
                }
            }
        }
        if (!any) {
            for (size_t j = 0; j < cols; j++) yr[j] = 1.0f / (float)cols;
            continue;
        }
        // exp(−∞ − m) clamps to the underflow limit and gives exactly 0.
        f8 z = splat(0);
        size_t j = 0;
        for (; j + 8 <= cols; j += 8) {
            const f8 e = exp8(load8(yr + j) - m);
            store8(yr + j, e);
            z += e;
        }
        if (j < cols) {
            const f8 e = exp8(load_partial(yr + j, cols - j, -INFINITY) - m);
            store_partial(yr + j, e, cols - j);
            z += e;
        }
        scale_row(yr, 1.0f / hsum(z), cols);
    }
}

INLINE void softmax_backward_rows_body(const float *y, const float *g, float *dx, size_t rows, size_t cols,
                                       float scale, int accumulate) {
    for (size_t r = 0; r < rows; r++) {
        const float *yr = y + r * cols, *gr = g + r * cols;
        float *dr = dx + r * cols;
        const float dot = dot_row(gr, yr, cols);
        size_t j = 0;
        for (; j + 8 <= cols; j += 8) {
            const f8 d = scale * load8(yr + j) * (load8(gr + j) - dot);
            store8(dr + j, accumulate ? load8(dr + j) + d : d);
        }
        for (; j < cols; j++) {
            const float d = scale * yr[j] * (gr[j] - dot);
            dr[j] = accumulate ? dr[j] + d : d;
        }
    }
}

INLINE void layernorm_forward_body(const float *x, const float *gamma, const float *beta, float *y, float *xhat,
                                   float *inv_std, size_t rows, size_t d, float eps) {
    for (size_t r = 0; r < rows; r++) {
        const float *xr = x + r * d;
        float *yr = y + r * d, *hr = xhat + r * d;
        const float mu = sum_row(xr, d) / (float)d;
        f8 acc = splat(0);
        size_t j = 0;
        for (; j + 8 <= d; j += 8) {
            const f8 c = load8(xr + j) - mu;
            acc += c * c;
        }
        float var = hsum(acc);
        for (; j < d; j++) var += (xr[j] - mu) * (xr[j] - mu);
        const float inv = 1.0f / sqrtf(var / (float)d + eps);
        inv_std[r] = inv;
        j = 0;
        for (; j + 8 <= d; j += 8) {
            const f8 h = (load8(xr + j) - mu) * inv;
            store8(hr + j, h);
            store8(yr + j, h * load8(gamma + j) + load8(beta + j));
        }
        for (; j < d; j++) {
            const float h = (xr[j] - mu) * inv;
            hr[j] = h;
            yr[j] = h * gamma[j] + beta[j];
        }
    }
}

INLINE void layernorm_backward_body(const float *g, const float *gamma, const float *xhat, const float *inv_std,
                                    float *dx, size_t rows, size_t d, int accumulate) {
    const float fd = (float)d;
    for (size_t r = 0; r < rows; r++) {
        const float *gr = g + r * d, *hr = xhat + r * d;
        float *dr = dx + r * d;
        f8 a1 = splat(0), a2 = splat(0);
        size_t j = 0;
        for (; j + 8 <= d; j += 8) {
            const f8 gh = load8(gr + j) * load8(gamma + j);
            a1 += gh;
            a2 += gh * load8(hr + j);
        }
        float s1 = hsum(a1), s2 = hsum(a2);
        for (; j < d; j++) {
            const float gh = gr[j] * gamma[j];
            s1 += gh;
            s2 += gh * hr[j];
        }
        const float k = inv_std[r] / fd;
        j = 0;
        for (; j + 8 <= d; j += 8) {
            const f8 v = k * (fd * (load8(gr + j) * load8(gamma + j)) - s1 - load8(hr + j) * s2);
            store8(dr + j, accumulate ? load8(dr + j) + v : v);
        }
        for (; j < d; j++) {
            const float v = k * (fd * (gr[j] * gamma[j]) - s1 - hr[j] * s2);
            dr[j] = accumulate ? dr[j] + v : v;
        }
    }
}

// out[j] += Σ_r a[r][j] · (b ? b[r][j] : 1), rows in order.
INLINE void column_sums_body(const float *a, const float *b, size_t rows, size_t d, float *out) {
    for (size_t r = 0; r < rows; r++) {
        const float *ar = a + r * d;
        const float *br = b ? b + r * d : NULL;
        size_t j = 0;
        if (br) {
            for (; j + 8 <= d; j += 8) store8(out + j, load8(out + j) + load8(ar + j) * load8(br + j));
            for (; j < d; j++) out[j] += ar[j] * br[j];
        } else {
            for (; j + 8 <= d; j += 8) store8(out + j, load8(out + j) + load8(ar + j));
            for (; j < d; j++) out[j] += ar[j];
        }
    }
}

INLINE void add_rows_body(const float *a, const float *b, float *y, size_t rows, size_t d) {
    for (size_t r = 0; r < rows; r++) {
        const float *ar = a + r * d;
        float *yr = y + r * d;
        size_t j = 0;
        for (; j + 8 <= d; j += 8) store8(yr + j, load8(ar + j) + load8(b + j));
        for (; j < d; j++) yr[j] = ar[j] + b[j];
    }
}

INLINE void axpy_body(float alpha, const float *x, float *y, size_t n, int accumulate) {
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        const f8 v = alpha * load8(x + i);
        store8(y + i, accumulate ? load8(y + i) + v : v);
    }
    for (; i < n; i++) y[i] = accumulate ? y[i] + alpha * x[i] : alpha * x[i];
}

// y[r][j] (+)= a[r][j] · b[j].
INLINE void mul_rows_body(const float *a, const float *b, float *y, size_t rows, size_t d, int accumulate) {
    for (size_t r = 0; r < rows; r++) {
        const float *ar = a + r * d;
        float *yr = y + r * d;
        size_t j = 0;
        for (; j + 8 <= d; j += 8) {
            const f8 v = load8(ar + j) * load8(b + j);
            store8(yr + j, accumulate ? load8(yr + j) + v : v);
        }
        for (; j < d; j++) yr[j] = accumulate ? yr[j] + ar[j] * b[j] : ar[j] * b[j];
    }
}

INLINE f8 sigmoid8(f8 x) { return 1.0f / (1.0f + exp8(-x)); }

INLINE void silu_forward_body(const float *x, float *y, size_t n) {
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        const f8 v = load8(x + i);
        store8(y + i, v * sigmoid8(v));
    }
    if (i < n) {
        const f8 v = load_partial(x + i, n - i, 0);
        store_partial(y + i, v * sigmoid8(v), n - i);
    }
}

INLINE f8 silu_derivative(f8 v) {
    const f8 s = sigmoid8(v);
    return s * (1.0f + v * (1.0f - s));
}

INLINE void silu_backward_body(const float *x, const float *g, float *dx, size_t n, int accumulate) {
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        const f8 d = load8(g + i) * silu_derivative(load8(x + i));
        store8(dx + i, accumulate ? load8(dx + i) + d : d);
    }
    if (i < n) {
        const size_t r = n - i;
        const f8 d = load_partial(g + i, r, 0) * silu_derivative(load_partial(x + i, r, 0));
        store_partial(dx + i, accumulate ? load_partial(dx + i, r, 0) + d : d, r);
    }
}

INLINE void rmsnorm_forward_body(const float *x, const float *gamma, float *y, float *inv_rms, size_t rows, size_t d,
                                 float eps) {
    for (size_t r = 0; r < rows; r++) {
        const float *xr = x + r * d;
        float *yr = y + r * d;
        const float inv = 1.0f / sqrtf(dot_row(xr, xr, d) / (float)d + eps);
        inv_rms[r] = inv;
        size_t j = 0;
        for (; j + 8 <= d; j += 8) store8(yr + j, load8(xr + j) * inv * load8(gamma + j));
        for (; j < d; j++) yr[j] = xr[j] * inv * gamma[j];
    }
}

// x̂ = x·inv; dx (+)= inv · (ĝ − x̂ · mean(ĝ ⊙ x̂)), ĝ = g ⊙ γ.
INLINE void rmsnorm_backward_body(const float *g, const float *gamma, const float *x, const float *inv_rms, float *dx,
                                  size_t rows, size_t d, int accumulate) {
    for (size_t r = 0; r < rows; r++) {
        const float *gr = g + r * d, *xr = x + r * d;
        float *dr = dx + r * d;
        const float inv = inv_rms[r];
        f8 acc = splat(0);
        size_t j = 0;
        for (; j + 8 <= d; j += 8) acc += load8(gr + j) * load8(gamma + j) * load8(xr + j);
        float s = hsum(acc);
        for (; j < d; j++) s += gr[j] * gamma[j] * xr[j];
        const float m = s * inv / (float)d;  // mean(ĝ ⊙ x̂)
        j = 0;
        for (; j + 8 <= d; j += 8) {
            const f8 v = inv * (load8(gr + j) * load8(gamma + j) - load8(xr + j) * inv * m);
            store8(dr + j, accumulate ? load8(dr + j) + v : v);
        }
        for (; j < d; j++) {
            const float v = inv * (gr[j] * gamma[j] - xr[j] * inv * m);
            dr[j] = accumulate ? dr[j] + v : v;
        }
    }
}

INLINE void adamw_body(float *w, float *m, float *v, const float *g, size_t n, float lr, float beta1, float beta2,
                       float inv_correction1, float inv_correction2, float eps, float decay) {
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        const f8 gi = g ? load8(g + i) : splat(0);
        const f8 mi = beta1 * load8(m + i) + (1.0f - beta1) * gi;
        const f8 vi = beta2 * load8(v + i) + (1.0f - beta2) * gi * gi;
        store8(m + i, mi);
        store8(v + i, vi);
        const f8 wi = load8(w + i);
        const f8 step = (mi * inv_correction1) / (__builtin_elementwise_sqrt(vi * inv_correction2) + eps) + decay * wi;
        store8(w + i, wi - lr * step);
    }
    for (; i < n; i++) {
        const float gi = g ? g[i] : 0.0f;
        m[i] = beta1 * m[i] + (1.0f - beta1) * gi;
        v[i] = beta2 * v[i] + (1.0f - beta2) * gi * gi;
        const float step = (m[i] * inv_correction1) / (sqrtf(v[i] * inv_correction2) + eps) + decay * w[i];
        w[i] -= lr * step;
    }
}

INLINE double sum_squares_body(const float *x, size_t n) {
    d4 a = {0, 0, 0, 0}, b = {0, 0, 0, 0};
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        const d4 lo = __builtin_convertvector(*(const f4u *)(x + i), d4);
        const d4 hi = __builtin_convertvector(*(const f4u *)(x + i + 4), d4);
        a += lo * lo;
        b += hi * hi;
    }
    const d4 s = a + b;
    double total = (s[0] + s[2]) + (s[1] + s[3]);
    for (; i < n; i++) total += (double)x[i] * (double)x[i];
    return total;
}

// MARK: - Path selection and entry points

static int sheaf_nn_detected = 0;
// Per thread, so a test that forces the portable path does not change what concurrent work computes.
static _Thread_local int sheaf_nn_forced = 0;

int sheaf_nn_isa(void) {
    const int forced = sheaf_nn_forced;
    int d = __atomic_load_n(&sheaf_nn_detected, __ATOMIC_RELAXED);
    if (d == 0) {
#if SHEAF_NN_X86
        __builtin_cpu_init();
        d = (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) ? 2 : 1;
#else
        d = 1;
#endif
        __atomic_store_n(&sheaf_nn_detected, d, __ATOMIC_RELAXED);
    }
    return forced == 1 ? 1 : d;
}

void sheaf_nn_force_isa(int isa) { sheaf_nn_forced = isa == 1 ? 1 : 0; }

#if SHEAF_NN_X86
#define SHEAF_NN_AVX2 __attribute__((target("avx2,fma"), noinline))
// name_avx2 and name_portable from one body; `ret` is the return type, PARAMS/ARGS the parameter lists.
#define SHEAF_NN_VARIANTS(ret, name, PARAMS, ARGS)                          \
    static SHEAF_NN_AVX2 ret name##_avx2 PARAMS { return name##_body ARGS; } \
    static __attribute__((noinline)) ret name##_portable PARAMS { return name##_body ARGS; }
#define SHEAF_NN_CALL(name, ARGS) (sheaf_nn_isa() == 2 ? name##_avx2 ARGS : name##_portable ARGS)
#else
#define SHEAF_NN_VARIANTS(ret, name, PARAMS, ARGS) \
    static ret name##_portable PARAMS { return name##_body ARGS; }
#define SHEAF_NN_CALL(name, ARGS) (name##_portable ARGS)
#endif

SHEAF_NN_VARIANTS(void, exp, (const float *x, float *y, size_t n), (x, y, n))
SHEAF_NN_VARIANTS(void, erf, (const float *x, float *y, size_t n), (x, y, n))
SHEAF_NN_VARIANTS(void, gelu_forward, (const float *x, float *y, float *cdf, size_t n), (x, y, cdf, n))
SHEAF_NN_VARIANTS(void, gelu_backward, (const float *x, const float *cdf, const float *g, float *dx, size_t n, int acc),
                  (x, cdf, g, dx, n, acc))
SHEAF_NN_VARIANTS(void, softmax_rows,
                  (const float *s, float *y, size_t rows, size_t cols, float scale, int causal, const uint8_t *keys),
                  (s, y, rows, cols, scale, causal, keys))
SHEAF_NN_VARIANTS(void, softmax_backward_rows,
                  (const float *y, const float *g, float *dx, size_t rows, size_t cols, float scale, int acc),
                  (y, g, dx, rows, cols, scale, acc))
SHEAF_NN_VARIANTS(void, layernorm_forward,
                  (const float *x, const float *gamma, const float *beta, float *y, float *xhat, float *inv_std,
                   size_t rows, size_t d, float eps),
                  (x, gamma, beta, y, xhat, inv_std, rows, d, eps))
SHEAF_NN_VARIANTS(void, layernorm_backward,
                  (const float *g, const float *gamma, const float *xhat, const float *inv_std, float *dx, size_t rows,
                   size_t d, int acc),
                  (g, gamma, xhat, inv_std, dx, rows, d, acc))
SHEAF_NN_VARIANTS(void, column_sums, (const float *a, const float *b, size_t rows, size_t d, float *out),
                  (a, b, rows, d, out))
SHEAF_NN_VARIANTS(void, add_rows, (const float *a, const float *b, float *y, size_t rows, size_t d), (a, b, y, rows, d))
SHEAF_NN_VARIANTS(void, axpy, (float alpha, const float *x, float *y, size_t n, int acc), (alpha, x, y, n, acc))
SHEAF_NN_VARIANTS(void, mul_rows, (const float *a, const float *b, float *y, size_t rows, size_t d, int acc),
                  (a, b, y, rows, d, acc))
SHEAF_NN_VARIANTS(void, silu_forward, (const float *x, float *y, size_t n), (x, y, n))
SHEAF_NN_VARIANTS(void, silu_backward, (const float *x, const float *g, float *dx, size_t n, int acc), (x, g, dx, n, acc))
SHEAF_NN_VARIANTS(void, rmsnorm_forward,
                  (const float *x, const float *gamma, float *y, float *inv_rms, size_t rows, size_t d, float eps),
                  (x, gamma, y, inv_rms, rows, d, eps))
SHEAF_NN_VARIANTS(void, rmsnorm_backward,
                  (const float *g, const float *gamma, const float *x, const float *inv_rms, float *dx, size_t rows,
                   size_t d, int acc),
                  (g, gamma, x, inv_rms, dx, rows, d, acc))
SHEAF_NN_VARIANTS(void, adamw,
                  (float *w, float *m, float *v, const float *g, size_t n, float lr, float b1, float b2, float i1,
                   float i2, float eps, float decay),
                  (w, m, v, g, n, lr, b1, b2, i1, i2, eps, decay))
SHEAF_NN_VARIANTS(double, sum_squares, (const float *x, size_t n), (x, n))

void sheaf_exp(const float *x, float *y, size_t n) { SHEAF_NN_CALL(exp, (x, y, n)); }
void sheaf_erf(const float *x, float *y, size_t n) { SHEAF_NN_CALL(erf, (x, y, n)); }
void sheaf_gelu_forward(const float *x, float *y, float *cdf, size_t n) { SHEAF_NN_CALL(gelu_forward, (x, y, cdf, n)); }
void sheaf_gelu_backward(const float *x, const float *cdf, const float *g, float *dx, size_t n, int accumulate) {
    SHEAF_NN_CALL(gelu_backward, (x, cdf, g, dx, n, accumulate));
}
void sheaf_softmax_rows(const float *scores, float *y, size_t rows, size_t cols, float scale, int causal,
                        const uint8_t *key_allowed) {
    SHEAF_NN_CALL(softmax_rows, (scores, y, rows, cols, scale, causal, key_allowed));
}
void sheaf_softmax_backward_rows(const float *y, const float *g, float *dx, size_t rows, size_t cols, float scale,
                                 int accumulate) {
    SHEAF_NN_CALL(softmax_backward_rows, (y, g, dx, rows, cols, scale, accumulate));
}
void sheaf_layernorm_forward(const float *x, const float *gamma, const float *beta, float *y, float *xhat,
                             float *inv_std, size_t rows, size_t d, float eps) {
    SHEAF_NN_CALL(layernorm_forward, (x, gamma, beta, y, xhat, inv_std, rows, d, eps));
}
void sheaf_layernorm_backward(const float *g, const float *gamma, const float *xhat, const float *inv_std, float *dx,
                              size_t rows, size_t d, int accumulate) {
    SHEAF_NN_CALL(layernorm_backward, (g, gamma, xhat, inv_std, dx, rows, d, accumulate));
}
void sheaf_column_sums(const float *a, const float *b, size_t rows, size_t d, float *out) {
    SHEAF_NN_CALL(column_sums, (a, b, rows, d, out));
}
void sheaf_add_rows(const float *a, const float *b, float *y, size_t rows, size_t d) {
    SHEAF_NN_CALL(add_rows, (a, b, y, rows, d));
}
void sheaf_axpy(float alpha, const float *x, float *y, size_t n, int accumulate) {
    SHEAF_NN_CALL(axpy, (alpha, x, y, n, accumulate));
}
void sheaf_adamw(float *w, float *m, float *v, const float *g, size_t n, float lr, float beta1, float beta2,
                 float inv_correction1, float inv_correction2, float eps, float decay) {
    SHEAF_NN_CALL(adamw, (w, m, v, g, n, lr, beta1, beta2, inv_correction1, inv_correction2, eps, decay));
}
double sheaf_sum_squares(const float *x, size_t n) { return SHEAF_NN_CALL(sum_squares, (x, n)); }
void sheaf_mul_rows(const float *a, const float *b, float *y, size_t rows, size_t d, int accumulate) {
    SHEAF_NN_CALL(mul_rows, (a, b, y, rows, d, accumulate));
}
void sheaf_silu_forward(const float *x, float *y, size_t n) { SHEAF_NN_CALL(silu_forward, (x, y, n)); }
void sheaf_silu_backward(const float *x, const float *g, float *dx, size_t n, int accumulate) {
    SHEAF_NN_CALL(silu_backward, (x, g, dx, n, accumulate));
}
void sheaf_rmsnorm_forward(const float *x, const float *gamma, float *y, float *inv_rms, size_t rows, size_t d,
                           float eps) {
    SHEAF_NN_CALL(rmsnorm_forward, (x, gamma, y, inv_rms, rows, d, eps));
}
void sheaf_rmsnorm_backward(const float *g, const float *gamma, const float *x, const float *inv_rms, float *dx,
                            size_t rows, size_t d, int accumulate) {
    SHEAF_NN_CALL(rmsnorm_backward, (g, gamma, x, inv_rms, dx, rows, d, accumulate));
}

// MARK: - Dropout masks

static inline uint64_t dropout_draw(uint64_t *state) {
    uint64_t z = (*state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

void sheaf_dropout_factors(float *factors, size_t n, uint64_t state, uint16_t threshold, float keep) {
    size_t i = 0;
    for (; i + 4 <= n; i += 4) {
        uint64_t bits = dropout_draw(&state);
        for (int k = 0; k < 4; k++) factors[i + k] = (uint16_t)(bits >> (16 * k)) < threshold ? 0.0f : keep;
    }
    if (i < n) {
        uint64_t bits = dropout_draw(&state);
        for (int k = 0; i < n; i++, k++) factors[i] = (uint16_t)(bits >> (16 * k)) < threshold ? 0.0f : keep;
    }
}

void sheaf_dropout_apply(const float *x, float *out, size_t n, uint64_t state, uint16_t threshold, float keep,
                         int accumulate) {
    float f[256];
    for (size_t start = 0; start < n; start += 256) {
        size_t m = n - start < 256 ? n - start : 256;
        // Runs of 256 (a multiple of 4) keep the draws in step with sheaf_dropout_factors over all n.
        sheaf_dropout_factors(f, m, state, threshold, keep);
        state += 0x9E3779B97F4A7C15ull * (uint64_t)((m + 3) / 4);
        if (accumulate) for (size_t i = 0; i < m; i++) out[start + i] += x[start + i] * f[i];
        else for (size_t i = 0; i < m; i++) out[start + i] = x[start + i] * f[i];
    }
}
