/*
 * Range and moments of a numeric batch in one pass over memory (truthound_sketch.moments).
 *
 *   summarize(values, out=None) -> (n, lo, hi, mean, m2, nan, pos_inf, neg_inf)
 *
 * values: a C-contiguous buffer of integers (signed or unsigned, 1 to 8 bytes) or floats (4 or 8
 * bytes).  NaN and infinities are counted and left out of everything else.  n: the values
 * counted; lo, hi: the smallest and largest (int for integers, float for floats; None when n is
 * 0); mean; m2: the sum of squared deviations from the mean.  out: a float64 buffer as long as
 * values, or None; it receives every value as a double, floats with -0.0 made 0.0 and every NaN
 * one NaN (the frequent-value keys of floats), block by block while the block is in cache: the
 * copy KLL sorts, without a pass of its own over memory.
 *
 * The buffer is read in blocks of BLOCK values: each block's mean and m2 come from two passes
 * over the block while it is in cache, and blocks are combined by the pairwise update of Chan,
 * Golub and LeVeque (as truthound_sketch.moments merges partials), so that m2 never suffers the
 * cancellation of sum(x^2) - n * mean^2.  Integers are converted to double as they are read, as
 * polars' cast to Float64 does.  The GIL is released.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <math.h>
#include <stdint.h>
#include <string.h>

#define BLOCK 2048

typedef struct {
    double n, mean, m2;
} moments_t;

static inline void combine(moments_t *a, double nb, double mean_b, double m2_b) {
    if (nb == 0) return;
    if (a->n == 0) {
        a->n = nb;
        a->mean = mean_b;
        a->m2 = m2_b;
        return;
    }
    const double n = a->n + nb, delta = mean_b - a->mean;
    a->mean += delta * (nb / n);
    a->m2 += m2_b + delta * delta * (a->n * nb / n);
    a->n = n;
}

/* Sums and extremes of a block in four lanes (independent chains of additions keep the adder
 * busy; one chain waits for each addition's latency).  Integers keep an exact range. */
#define LANES4(T, CONV, BODY_MN_MX)                                                                  \
    double s0 = 0, s1 = 0, s2 = 0, s3 = 0;                                                         \
    Py_ssize_t i = at;                                                                             \
    for (; i + 4 <= end; i += 4) {                                                                 \
        const T x0 = v[i], x1 = v[i + 1], x2 = v[i + 2], x3 = v[i + 3];                            \
        BODY_MN_MX(x0, x1, x2, x3);                                                                \
        s0 += CONV(x0);                                                                            \
        s1 += CONV(x1);                                                                            \
        s2 += CONV(x2);                                                                            \
        s3 += CONV(x3);                                                                            \
    }                                                                                              \
    for (; i < end; i++) {                                                                         \
        BODY_MN_MX(v[i], v[i], v[i], v[i]);                                                        \
        s0 += CONV(v[i]);                                                                          \
    }                                                                                              \
    const double nb = (double)(end - at), mean = ((s0 + s1) + (s2 + s3)) / nb;                     \
    double q0 = 0, q1 = 0, q2 = 0, q3 = 0;                                                         \
    for (i = at; i + 4 <= end; i += 4) {                                                           \
        const double d0 = CONV(v[i]) - mean, d1 = CONV(v[i + 1]) - mean;                           \
        const double d2 = CONV(v[i + 2]) - mean, d3 = CONV(v[i + 3]) - mean;                       \
        q0 += d0 * d0;                                                                             \
        q1 += d1 * d1;                                                                             \
        q2 += d2 * d2;                                                                             \
        q3 += d3 * d3;                                                                             \
    }                                                                                              \
    for (; i < end; i++) {                                                                         \
        const double d = CONV(v[i]) - mean;                                                        \
        q0 += d * d;                                                                               \
    }                                                                                              \
    combine(m, nb, mean, (q0 + q1) + (q2 + q3));

#define TO_DOUBLE(x) ((double)(x))
#define MNMX(a, b, c, d)                                                                             \
    do {                                                                                           \
        mn0 = (a) < mn0 ? (a) : mn0;                                                               \
        mx0 = (a) > mx0 ? (a) : mx0;                                                               \
        mn1 = (b) < mn1 ? (b) : mn1;                                                               \
        mx1 = (b) > mx1 ? (b) : mx1;                                                               \
        mn2 = (c) < mn2 ? (c) : mn2;                                                               \
        mx2 = (c) > mx2 ? (c) : mx2;                                                               \
        mn3 = (d) < mn3 ? (d) : mn3;                                                               \
        mx3 = (d) > mx3 ? (d) : mx3;                                                               \
    } while (0)
#define LOWEST(a, b) ((a) < (b) ? (a) : (b))
#define HIGHEST(a, b) ((a) > (b) ? (a) : (b))

/* integers: exact range, moments over their doubles */
#define INT_SUMMARY(NAME, T)                                                                         \
    static void NAME(const T *v, Py_ssize_t len, moments_t *m, T *lo, T *hi, double *out) {        \
        T mn0 = len ? v[0] : 0, mx0 = mn0, mn1 = mn0, mx1 = mn0, mn2 = mn0, mx2 = mn0, mn3 = mn0, mx3 = mn0; \
        for (Py_ssize_t at = 0; at < len; at += BLOCK) {                                           \
            const Py_ssize_t end = at + BLOCK < len ? at + BLOCK : len;                            \
            if (out)                                                                               \
                for (Py_ssize_t i = at; i < end; i++) out[i] = (double)v[i];                       \
            LANES4(T, TO_DOUBLE, MNMX)                                                             \
        }                                                                                          \
        *lo = LOWEST(LOWEST(mn0, mn1), LOWEST(mn2, mn3));                                          \
        *hi = HIGHEST(HIGHEST(mx0, mx1), HIGHEST(mx2, mx3));                                       \
    }

INT_SUMMARY(sum_i8, int8_t)
INT_SUMMARY(sum_i16, int16_t)
INT_SUMMARY(sum_i32, int32_t)
INT_SUMMARY(sum_i64, int64_t)
INT_SUMMARY(sum_u8, uint8_t)
INT_SUMMARY(sum_u16, uint16_t)
INT_SUMMARY(sum_u32, uint32_t)
INT_SUMMARY(sum_u64, uint64_t)

/* floats: finite values only (a block holding NaN or an infinity takes the slow path, which
 * counts them) */
#define FLOAT_SUMMARY(NAME, T)                                                                       \
    static void NAME(const T *v, Py_ssize_t len, moments_t *m, double *lo, double *hi, Py_ssize_t *nan, \
                     Py_ssize_t *pinf, Py_ssize_t *ninf, double *out) {                             \
        double mn0 = INFINITY, mx0 = -INFINITY, mn1 = mn0, mx1 = mx0, mn2 = mn0, mx2 = mx0, mn3 = mn0, mx3 = mx0; \
        for (Py_ssize_t at = 0; at < len; at += BLOCK) {                                           \
            const Py_ssize_t end = at + BLOCK < len ? at + BLOCK : len;                            \
            if (out) /* -0.0 + 0.0 is 0.0; every NaN one NaN */                                   \
                for (Py_ssize_t i = at; i < end; i++) {                                            \
                    const double x = (double)v[i];                                                 \
                    out[i] = x != x ? (double)NAN : x + 0.0;                                       \
                }                                                                                  \
            double p0 = 0, p1 = 0;                                                                 \
            Py_ssize_t j = at;                                                                     \
            for (; j + 2 <= end; j += 2) { /* x * 0 is NaN for NaN and infinities */               \
                p0 += (double)v[j] * 0.0;                                                          \
                p1 += (double)v[j + 1] * 0.0;                                                      \
            }                                                                                      \
            if (j < end) p0 += (double)v[j] * 0.0;                                                 \
            if (p0 + p1 == 0) {                                                                    \
                LANES4(T, TO_DOUBLE, MNMX)                                                         \
                continue;                                                                          \
            }                                                                                      \
            double sum = 0;                                                                        \
            Py_ssize_t odd = 0;                                                                    \
            for (Py_ssize_t i = at; i < end; i++) {                                                \
                const double x = (double)v[i];                                                     \
                if (!isfinite(x)) {                                                                \
                    odd++;                                                                         \
                    if (isnan(x)) {                                                                \
                        (*nan)++;                                                                  \
                    } else if (x > 0) {                                                            \
                        (*pinf)++;                                                                 \
                    } else {                                                                       \
                        (*ninf)++;                                                                 \
                    }                                                                              \
                    continue;                                                                      \
                }                                                                                  \
                mn0 = x < mn0 ? x : mn0;                                                           \
                mx0 = x > mx0 ? x : mx0;                                                           \
                sum += x;                                                                          \
            }                                                                                      \
            const double nb = (double)(end - at - odd);                                            \
            if (nb == 0) continue;                                                                 \
            const double mean = sum / nb;                                                          \
            double m2 = 0;                                                                         \
            for (Py_ssize_t i = at; i < end; i++) {                                                \
                const double x = (double)v[i];                                                     \
                if (isfinite(x)) m2 += (x - mean) * (x - mean);                                    \
            }                                                                                      \
            combine(m, nb, mean, m2);                                                              \
        }                                                                                          \
        *lo = LOWEST(LOWEST(mn0, mn1), LOWEST(mn2, mn3));                                          \
        *hi = HIGHEST(HIGHEST(mx0, mx1), HIGHEST(mx2, mx3));                                       \
    }

FLOAT_SUMMARY(sum_f32, float)
FLOAT_SUMMARY(sum_f64, double)

static PyObject *py_summarize(PyObject *self, PyObject *args) {
    PyObject *arg, *out_obj = Py_None;
    if (!PyArg_ParseTuple(args, "O|O", &arg, &out_obj)) return NULL;
    Py_buffer b, o = {0};
    if (PyObject_GetBuffer(arg, &b, PyBUF_C_CONTIGUOUS | PyBUF_FORMAT) < 0) return NULL;
    const char *f = b.format ? b.format : "B";
    if (*f == '<' || *f == '=' || *f == '@') f++;
    const char code = f[1] == '\0' ? f[0] : '?';
    const Py_ssize_t size = b.itemsize, len = size ? b.len / size : 0;
    moments_t m = {0, 0, 0};
    Py_ssize_t nan = 0, pinf = 0, ninf = 0;
    double flo = 0, fhi = 0;
    int64_t ilo = 0, ihi = 0;
    uint64_t ulo = 0, uhi = 0;
    int kind; /* 0 signed, 1 unsigned, 2 float */
    switch (code) {
    case 'b': case 'h': case 'i': case 'l': case 'q': kind = 0; break;
    case 'B': case 'H': case 'I': case 'L': case 'Q': kind = 1; break;
    case 'f': case 'd': kind = 2; break;
    default: kind = -1;
    }
    if (kind < 0 || (kind < 2 && size != 1 && size != 2 && size != 4 && size != 8) ||
        (kind == 2 && size != 4 && size != 8)) {
        PyErr_Format(PyExc_ValueError, "values: expected integers or floats, got format %s of %zd bytes", b.format, size);
        PyBuffer_Release(&b);
        return NULL;
    }
    double *out = NULL;
    if (out_obj != Py_None) {
        if (PyObject_GetBuffer(out_obj, &o, PyBUF_C_CONTIGUOUS | PyBUF_FORMAT | PyBUF_WRITABLE) < 0) {
            PyBuffer_Release(&b);
            return NULL;
        }
        const char *of = o.format ? o.format : "B";
        if (*of == '<' || *of == '=' || *of == '@') of++;
        if (strcmp(of, "d") != 0 || o.len != len * (Py_ssize_t)sizeof(double)) {
            PyErr_Format(PyExc_ValueError, "out: expected %zd float64 values", len);
            PyBuffer_Release(&o);
            PyBuffer_Release(&b);
            return NULL;
        }
        out = o.buf;
    }
    Py_BEGIN_ALLOW_THREADS
    if (kind == 2) {
        if (size == 4) sum_f32(b.buf, len, &m, &flo, &fhi, &nan, &pinf, &ninf, out);
        else sum_f64(b.buf, len, &m, &flo, &fhi, &nan, &pinf, &ninf, out);
    } else if (kind == 0) {
        switch (size) {
        case 1: { int8_t lo, hi; sum_i8(b.buf, len, &m, &lo, &hi, out); ilo = lo; ihi = hi; break; }
        case 2: { int16_t lo, hi; sum_i16(b.buf, len, &m, &lo, &hi, out); ilo = lo; ihi = hi; break; }
        case 4: { int32_t lo, hi; sum_i32(b.buf, len, &m, &lo, &hi, out); ilo = lo; ihi = hi; break; }
        default: sum_i64(b.buf, len, &m, &ilo, &ihi, out);
        }
    } else {
        switch (size) {
        case 1: { uint8_t lo, hi; sum_u8(b.buf, len, &m, &lo, &hi, out); ulo = lo; uhi = hi; break; }
        case 2: { uint16_t lo, hi; sum_u16(b.buf, len, &m, &lo, &hi, out); ulo = lo; uhi = hi; break; }
        case 4: { uint32_t lo, hi; sum_u32(b.buf, len, &m, &lo, &hi, out); ulo = lo; uhi = hi; break; }
        default: sum_u64(b.buf, len, &m, &ulo, &uhi, out);
        }
    }
    Py_END_ALLOW_THREADS
    if (out != NULL) PyBuffer_Release(&o);
    PyBuffer_Release(&b);
    const Py_ssize_t n = (Py_ssize_t)m.n;
    PyObject *lo, *hi;
    if (n == 0) {
        lo = Py_NewRef(Py_None);
        hi = Py_NewRef(Py_None);
    } else if (kind == 2) {
        lo = PyFloat_FromDouble(flo);
        hi = PyFloat_FromDouble(fhi);
    } else if (kind == 0) {
        lo = PyLong_FromLongLong(ilo);
        hi = PyLong_FromLongLong(ihi);
    } else {
        lo = PyLong_FromUnsignedLongLong(ulo);
        hi = PyLong_FromUnsignedLongLong(uhi);
    }
    if (lo == NULL || hi == NULL) {
        Py_XDECREF(lo);
        Py_XDECREF(hi);
        return NULL;
    }
    return Py_BuildValue("(nNNddnnn)", n, lo, hi, m.mean, m.m2, nan, pinf, ninf);
}

static PyMethodDef moments_methods[] = {
    {"summarize", py_summarize, METH_VARARGS,
     "summarize(values, out=None) -> (n, lo, hi, mean, m2, nan, pos_inf, neg_inf): range and moments of a numeric "
     "buffer; `out` (float64, as long) receives the values as doubles (floats with -0.0 made 0.0 and NaN one NaN)."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef moments_module = {
    PyModuleDef_HEAD_INIT, "truthound_sketch._moments", "Range and moments of numeric buffers.", -1, moments_methods,
    NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__moments(void) {
    return PyModule_Create(&moments_module);
}
