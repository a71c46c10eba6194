/*
 * KLL updates over an array of doubles, in the state and byte layout of Apache
 * DataSketches' kll_doubles_sketch (truthound_sketch.kll).
 *
 *   update(sketch_bytes, values, seed, level=0) -> sketch_bytes
 *
 * sketch_bytes: a serialized kll_doubles_sketch (empty, single-item or full form);
 * values: a C-contiguous float64 buffer; seed: 64 random bits.  With level 0 the
 * values are added one at a time by DataSketches' own algorithm (kll_sketch::update
 * and compress_while_updating: the same level capacities, the same compaction
 * schedule, a fair coin for each compaction's offset).  With level c (1-8), each
 * run of 256 values that is sorted is compacted c times at once (the items a
 * cascade of c random halvings keeps), the kept items are merged into level c and
 * the sketch compacted as its update compacts it when full (compress_while_updating:
 * the lowest level at its capacity, until the items fit the capacity); runs
 * that are not sorted and the values after the last whole run go one at a time.
 * The result is serialized as DataSketches does, so DataSketches reads it, merges
 * it and answers queries from it.  The coins are a splitmix64 stream from the
 * caller's seed (fresh random bits each call: coins never depend on the values and
 * are independent between sketches, as KLL's bounds assume).  NaN values are
 * ignored, as DataSketches does.  The GIL is released while the values are added.
 *
 * One at a time, the values are taken from the last to the first: callers pass
 * sorted runs, so level zero fills in ascending order and is usually sorted
 * already when it is compacted.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <math.h>
#include <stdint.h>
#include <string.h>

#define FAMILY 15
#define FLAG_EMPTY 1
#define FLAG_L0_SORTED 2
#define FLAG_SINGLE 4
#define MAX_LEVELS 61

typedef struct {
    uint32_t k, m, min_k;
    uint64_t n;
    uint32_t num_levels;
    uint32_t levels[MAX_LEVELS + 1];
    double *items; /* capacity levels[num_levels] */
    double *tmp;   /* sort buffer of tmp_cap items */
    uint32_t tmp_cap;
    double min, max;
    int l0_sorted;
    uint64_t rng;
} kll_t;

static const uint64_t POWERS_OF_THREE[31] = {
    1ULL, 3ULL, 9ULL, 27ULL, 81ULL, 243ULL, 729ULL, 2187ULL, 6561ULL, 19683ULL, 59049ULL, 177147ULL,
    531441ULL, 1594323ULL, 4782969ULL, 14348907ULL, 43046721ULL, 129140163ULL, 387420489ULL,
    1162261467ULL, 3486784401ULL, 10460353203ULL, 31381059609ULL, 94143178827ULL, 282429536481ULL,
    847288609443ULL, 2541865828329ULL, 7625597484987ULL, 22876792454961ULL, 68630377364883ULL,
    205891132094649ULL,
};

/* round(k * (2/3)^depth), as kll_helper::int_cap_aux */
static uint32_t cap_aux_aux(uint32_t k, uint32_t depth) {
    const uint64_t twok = (uint64_t)k << 1;
    const uint64_t tmp = (twok << depth) / POWERS_OF_THREE[depth];
    return (uint32_t)((tmp + 1) >> 1);
}

static uint32_t cap_aux(uint32_t k, uint32_t depth) {
    if (depth <= 30) return cap_aux_aux(k, depth);
    const uint32_t half = depth / 2, rest = depth - half;
    return cap_aux_aux(cap_aux_aux(k, half), rest);
}

static uint32_t level_capacity(uint32_t k, uint32_t num_levels, uint32_t height, uint32_t m) {
    const uint32_t c = cap_aux(k, num_levels - height - 1);
    return c > m ? c : m;
}

static uint32_t total_capacity(uint32_t k, uint32_t m, uint32_t num_levels) {
    uint32_t total = 0;
    for (uint32_t h = 0; h < num_levels; h++) total += level_capacity(k, num_levels, h, m);
    return total;
}

static inline uint32_t coin(kll_t *s) {
    uint64_t z = (s->rng += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return (uint32_t)((z ^ (z >> 31)) >> 63);
}

/* 0 on failure (no memory) */
static int sort_doubles(kll_t *s, double *a, uint32_t n) {
    uint32_t i = 1;
    while (i < n && a[i - 1] <= a[i]) i++;
    if (i >= n) return 1; /* sorted already (the usual case) */
    if (n <= 32) {
        for (i = 1; i < n; i++) {
            const double v = a[i];
            uint32_t j = i;
            for (; j > 0 && a[j - 1] > v; j--) a[j] = a[j - 1];
            a[j] = v;
        }
        return 1;
    }
    if (s->tmp_cap < n) { /* bottom-up merge sort through s->tmp */
        PyMem_RawFree(s->tmp);
        s->tmp = PyMem_RawMalloc((size_t)n * sizeof(double));
        s->tmp_cap = s->tmp != NULL ? n : 0;
        if (s->tmp == NULL) return 0;
    }
    double *src = a, *dst = s->tmp;
    for (uint32_t w = 1; w < n; w *= 2) {
        for (uint32_t lo = 0; lo < n; lo += 2 * w) {
            const uint32_t mid = lo + w < n ? lo + w : n, hi = lo + 2 * w < n ? lo + 2 * w : n;
            uint32_t x = lo, y = mid, o = lo;
            while (x < mid && y < hi) dst[o++] = src[y] < src[x] ? src[y++] : src[x++];
            while (x < mid) dst[o++] = src[x++];
            while (y < hi) dst[o++] = src[y++];
        }
        double *t = src;
        src = dst;
        dst = t;
    }
    if (src != a) memcpy(a, src, n * sizeof(double));
    return 1;
}

/* kll_sketch::add_empty_top_level_to_completely_full_sketch; 0 on failure (no memory) */
static int add_top_level(kll_t *s) {
    const uint32_t cur = s->levels[s->num_levels];
    const uint32_t delta = level_capacity(s->k, s->num_levels + 1, 0, s->m);
    double *grown = PyMem_RawMalloc((size_t)(cur + delta) * sizeof(double));
    if (grown == NULL) return 0;
    memcpy(grown + delta, s->items, (size_t)cur * sizeof(double));
    PyMem_RawFree(s->items);
    s->items = grown;
    for (uint32_t i = 0; i <= s->num_levels; i++) s->levels[i] += delta;
    s->num_levels++;
    s->levels[s->num_levels] = cur + delta;
    return 1;
}

/* kll_sketch::compress_while_updating; 0 on failure */
static int compress(kll_t *s) {
    uint32_t level = 0;
    for (;; level++) {
        if (s->levels[level + 1] - s->levels[level] >= level_capacity(s->k, s->num_levels, level, s->m)) break;
    }
    if (level == s->num_levels - 1) {
        if (s->num_levels == MAX_LEVELS || !add_top_level(s)) return 0;
    }
    double *items = s->items;
    const uint32_t raw_beg = s->levels[level], raw_lim = s->levels[level + 1];
    const uint32_t pop_above = s->levels[level + 2] - raw_lim, raw_pop = raw_lim - raw_beg;
    const int odd = raw_pop & 1;
    const uint32_t adj_beg = odd ? raw_beg + 1 : raw_beg, adj_pop = odd ? raw_pop - 1 : raw_pop;
    const uint32_t half = adj_pop / 2;
    if (level == 0 && !s->l0_sorted && !sort_doubles(s, items + adj_beg, adj_pop)) return 0;
    const uint32_t offset = coin(s);
    if (pop_above == 0) { /* randomly_halve_up */
        uint32_t j = adj_beg + adj_pop - 1 - offset;
        for (uint32_t i = adj_beg + adj_pop; i-- > adj_beg + half; j -= 2) items[i] = items[j];
    } else { /* randomly_halve_down, then merge with the level above */
        for (uint32_t i = 0; i < half; i++) items[adj_beg + i] = items[adj_beg + offset + 2 * i];
        uint32_t a = adj_beg, b = raw_lim;
        const uint32_t lim_a = adj_beg + half, lim_b = raw_lim + pop_above, lim_c = lim_a + half + pop_above;
        for (uint32_t c = lim_a; c < lim_c; c++) {
            if (a == lim_a) {
                items[c] = items[b++];
            } else if (b == lim_b || items[a] < items[b]) {
                items[c] = items[a++];
            } else {
                items[c] = items[b++];
            }
        }
    }
    s->levels[level + 1] -= half;
    if (odd) {
        s->levels[level] = s->levels[level + 1] - 1;
        if (s->levels[level] != raw_beg) items[s->levels[level]] = items[raw_beg];
    } else {
        s->levels[level] = s->levels[level + 1];
    }
    if (level > 0) {
        const uint32_t amount = raw_beg - s->levels[0];
        memmove(items + s->levels[0] + half, items + s->levels[0], (size_t)amount * sizeof(double));
        for (uint32_t l = 0; l < level; l++) s->levels[l] += half;
    }
    return 1;
}

static inline uint16_t rd16(const uint8_t *p) {
    uint16_t v;
    memcpy(&v, p, 2);
    return v;
}

static inline uint32_t rd32(const uint8_t *p) {
    uint32_t v;
    memcpy(&v, p, 4);
    return v;
}

/* Parse serialized bytes into s (items allocated); -1 with a Python error set */
static int parse(kll_t *s, const uint8_t *b, Py_ssize_t len) {
    memset(s, 0, sizeof(*s));
    if (len < 8 || b[2] != FAMILY) {
        PyErr_SetString(PyExc_ValueError, "sketch: not a serialized KLL sketch");
        return -1;
    }
    const uint8_t pre = b[0], ver = b[1], flags = b[3];
    s->k = rd16(b + 4);
    s->m = b[6];
    if (s->k < 8 || s->m < 2 || s->m > s->k) {
        PyErr_Format(PyExc_ValueError, "sketch: bad k (%u) or m (%u)", s->k, s->m);
        return -1;
    }
    s->min_k = s->k;
    if (flags & FLAG_EMPTY) {
        if (pre != 2 || ver != 1) goto bad;
        s->num_levels = 1;
        s->levels[0] = s->levels[1] = s->k;
    } else if (flags & FLAG_SINGLE) {
        if (pre != 2 || ver != 2 || len != 16) goto bad;
        s->n = 1;
        s->num_levels = 1;
        s->levels[0] = s->k - 1;
        s->levels[1] = s->k;
    } else {
        if (pre != 5 || ver != 1 || len < 20) goto bad;
        memcpy(&s->n, b + 8, 8);
        s->min_k = rd16(b + 16);
        s->num_levels = b[18];
        if (s->num_levels < 1 || s->num_levels > MAX_LEVELS || len < 20 + 4 * (Py_ssize_t)s->num_levels + 16) goto bad;
        for (uint32_t i = 0; i < s->num_levels; i++) s->levels[i] = rd32(b + 20 + 4 * i);
        s->levels[s->num_levels] = total_capacity(s->k, s->m, s->num_levels);
        for (uint32_t i = 0; i < s->num_levels; i++) {
            if (s->levels[i] > s->levels[i + 1]) goto bad;
        }
        const Py_ssize_t at = 20 + 4 * (Py_ssize_t)s->num_levels;
        memcpy(&s->min, b + at, 8);
        memcpy(&s->max, b + at + 8, 8);
        if (len != at + 16 + 8 * (Py_ssize_t)(s->levels[s->num_levels] - s->levels[0])) goto bad;
        s->l0_sorted = (flags & FLAG_L0_SORTED) != 0;
    }
    s->items = PyMem_RawMalloc((size_t)s->levels[s->num_levels] * sizeof(double));
    if (s->items == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    if (s->n == 1) {
        memcpy(&s->items[s->k - 1], b + 8, 8);
        s->min = s->max = s->items[s->k - 1];
    } else if (s->n > 1) {
        const Py_ssize_t at = 20 + 4 * (Py_ssize_t)s->num_levels + 16;
        memcpy(s->items + s->levels[0], b + at, 8 * (size_t)(s->levels[s->num_levels] - s->levels[0]));
    }
    return 0;
bad:
    PyErr_SetString(PyExc_ValueError, "sketch: malformed or unsupported KLL sketch bytes");
    return -1;
}

static PyObject *serialize(const kll_t *s) {
    const uint32_t retained = s->levels[s->num_levels] - s->levels[0];
    const int empty = s->n == 0, single = s->n == 1;
    const Py_ssize_t size = empty ? 8 : single ? 16 : 20 + 4 * (Py_ssize_t)s->num_levels + 16 + 8 * (Py_ssize_t)retained;
    PyObject *out = PyBytes_FromStringAndSize(NULL, size);
    if (out == NULL) return NULL;
    uint8_t *b = (uint8_t *)PyBytes_AS_STRING(out);
    memset(b, 0, (size_t)size);
    b[0] = empty || single ? 2 : 5;
    b[1] = single ? 2 : 1;
    b[2] = FAMILY;
    b[3] = (uint8_t)((empty ? FLAG_EMPTY : 0) | (s->l0_sorted ? FLAG_L0_SORTED : 0) | (single ? FLAG_SINGLE : 0));
    const uint16_t k = (uint16_t)s->k, min_k = (uint16_t)s->min_k;
    memcpy(b + 4, &k, 2);
    b[6] = (uint8_t)s->m;
    if (empty) return out;
    if (single) {
        memcpy(b + 8, &s->items[s->levels[0]], 8);
        return out;
    }
    memcpy(b + 8, &s->n, 8);
    memcpy(b + 16, &min_k, 2);
    b[18] = (uint8_t)s->num_levels;
    for (uint32_t i = 0; i < s->num_levels; i++) memcpy(b + 20 + 4 * i, &s->levels[i], 4);
    const Py_ssize_t at = 20 + 4 * (Py_ssize_t)s->num_levels;
    memcpy(b + at, &s->min, 8);
    memcpy(b + at + 8, &s->max, 8);
    memcpy(b + at + 16, s->items + s->levels[0], 8 * (size_t)retained);
    return out;
}

/* Add values one at a time, from the last to the first (NaN ignored); 0 on failure (no memory) */
static int add_values(kll_t *s, const double *values, Py_ssize_t count) {
    /* level zero's free slots are filled a stretch at a time (the same items in the same places
     * as one at a time), and compacted when a value finds none left */
    double lo = s->n ? s->min : INFINITY, hi = s->n ? s->max : -INFINITY;
    Py_ssize_t i = count;
    int ok = 1;
    for (;;) {
        uint32_t free = s->levels[0];
        double *items = s->items;
        for (; i > 0 && free > 0; i--) {
            const double v = values[i - 1];
            if (isnan(v)) continue;
            lo = v < lo ? v : lo;
            hi = v > hi ? v : hi;
            items[--free] = v;
        }
        s->n += s->levels[0] - free;
        if (free != s->levels[0]) s->l0_sorted = 0;
        s->levels[0] = free;
        while (i > 0 && isnan(values[i - 1])) i--;
        if (i == 0) break;
        if (!compress(s)) {
            ok = 0;
            break;
        }
    }
    if (s->n) {
        s->min = lo;
        s->max = hi;
    }
    return ok;
}

/* ---- batches compacted by runs ----------------------------------------------------------- */

#define RUN 256

/* ascending order of doubles as unsigned integers (-0.0 just below 0.0, NaN never present) */
static inline uint64_t order_key(double v) {
    uint64_t u;
    memcpy(&u, &v, 8);
    return u ^ ((uint64_t)((int64_t)u >> 63) | 0x8000000000000000ULL);
}

static inline double key_value(uint64_t u) {
    u ^= (u >> 63) ? 0x8000000000000000ULL : ~0ULL;
    double v;
    memcpy(&v, &u, 8);
    return v;
}

/* sort n keys (LSD radix, 11-bit digits, digits all keys share skipped); tmp holds n */
static void radix_sort(uint64_t *a, uint64_t *tmp, size_t n) {
    static const int BITS = 11, PASSES = 6;
    size_t (*hist)[1 << 11] = PyMem_RawCalloc(PASSES, sizeof(*hist));
    if (hist == NULL) { /* no memory for the counts: insertion sort is still correct */
        for (size_t i = 1; i < n; i++) {
            const uint64_t v = a[i];
            size_t j = i;
            for (; j > 0 && a[j - 1] > v; j--) a[j] = a[j - 1];
            a[j] = v;
        }
        return;
    }
    for (size_t i = 0; i < n; i++)
        for (int p = 0; p < PASSES; p++) hist[p][(a[i] >> (p * BITS)) & ((1 << BITS) - 1)]++;
    uint64_t *src = a, *dst = tmp;
    for (int p = 0; p < PASSES; p++) {
        const int shift = p * BITS;
        if (n == 0 || hist[p][(a[0] >> shift) & ((1 << BITS) - 1)] == n) continue; /* one digit for all */
        size_t at = 0;
        for (int d = 0; d < (1 << BITS); d++) {
            const size_t c = hist[p][d];
            hist[p][d] = at;
            at += c;
        }
        for (size_t i = 0; i < n; i++) dst[hist[p][(src[i] >> shift) & ((1 << BITS) - 1)]++] = src[i];
        uint64_t *t = src;
        src = dst;
        dst = t;
    }
    if (src != a) memcpy(a, src, n * sizeof(uint64_t));
    PyMem_RawFree(hist);
}

/* merge sorted a[0, na) and b[0, nb) into out */
static void merge_into(const double *a, size_t na, const double *b, size_t nb, double *out) {
    size_t i = 0, j = 0, o = 0;
    while (i < na && j < nb) out[o++] = b[j] < a[i] ? b[j++] : a[i++];
    while (i < na) out[o++] = a[i++];
    while (j < nb) out[o++] = b[j++];
}

/* Every run of RUN values that is sorted (no NaN) is compacted `level` times at once: the items
 * at offset + 2^level * i, offset a sum of `level` fair coins times their powers of two, which is
 * what `level` successive halvings of the run keep.  The kept items are sorted and merged into the
 * sketch's level `level`, and the levels are compacted as DataSketches compacts a merge.  Runs
 * that are not sorted, and the values after the last whole run, are added one at a time.
 * 0 on failure (no memory). */
static int add_runs(kll_t *s, const double *values, Py_ssize_t count, uint32_t level) {
    const size_t runs = (size_t)count / RUN, step = (size_t)1 << level, per = RUN >> level;
    uint8_t *clean = PyMem_RawMalloc(runs ? runs : 1);
    uint64_t *keys = PyMem_RawMalloc((runs * per > 0 ? runs * per : 1) * 2 * sizeof(uint64_t));
    int ok = clean != NULL && keys != NULL;
    size_t m = 0;
    double lo = s->n ? s->min : INFINITY, hi = s->n ? s->max : -INFINITY;
    for (size_t r = 0; ok && r < runs; r++) {
        const double *run = values + r * RUN;
        int sorted = 1;
        for (int i = 1; i < RUN; i++) sorted &= run[i - 1] <= run[i];
        clean[r] = (uint8_t)sorted;
        if (!sorted) continue;
        uint32_t offset = 0;
        for (uint32_t b = 0; b < level; b++) offset |= coin(s) << b;
        for (size_t i = 0; i < per; i++) keys[m++] = order_key(run[offset + i * step]);
        lo = run[0] < lo ? run[0] : lo;
        hi = run[RUN - 1] > hi ? run[RUN - 1] : hi;
    }
    if (ok && m) {
        radix_sort(keys, keys + m, m);
        double *kept = (double *)(keys + m);
        for (size_t i = 0; i < m; i++) kept[i] = key_value(keys[i]);
        /* the work buffer: the sketch's levels, with the kept items merged into level `level` */
        const uint32_t L = s->num_levels > level + 1 ? s->num_levels : level + 1;
        const size_t retained = s->levels[s->num_levels] - s->levels[0];
        double *w = PyMem_RawMalloc((retained + m) * sizeof(double));
        uint32_t in[MAX_LEVELS + 1] = {0};
        ok = w != NULL;
        for (uint32_t l = 0; ok && l < L; l++) {
            const double *mine = l < s->num_levels ? s->items + s->levels[l] : NULL;
            const uint32_t pop = l < s->num_levels ? s->levels[l + 1] - s->levels[l] : 0;
            const uint32_t extra = l == level ? (uint32_t)m : 0;
            if (extra) {
                merge_into(mine, pop, kept, m, w + in[l]);
            } else if (pop) {
                memcpy(w + in[l], mine, (size_t)pop * sizeof(double));
            }
            in[l + 1] = in[l] + pop + extra;
        }
        /* the sketch over the work buffer, compacted as an update compacts a full sketch (the
         * lowest level at its capacity, each time) until its items fit its capacity */
        kll_t t = *s;
        t.items = w;
        t.num_levels = L;
        memcpy(t.levels, in, sizeof(uint32_t) * (L + 1));
        while (ok && t.levels[t.num_levels] - t.levels[0] > total_capacity(t.k, t.m, t.num_levels)) ok = compress(&t);
        w = t.items; /* compress may have grown it */
        s->tmp = t.tmp;
        s->tmp_cap = t.tmp_cap;
        const uint32_t cap = ok ? total_capacity(t.k, t.m, t.num_levels) : 0, end = t.levels[t.num_levels];
        double *items = ok ? PyMem_RawMalloc((size_t)cap * sizeof(double)) : NULL;
        ok = items != NULL;
        if (ok) {
            memcpy(items + cap - (end - t.levels[0]), w + t.levels[0], (size_t)(end - t.levels[0]) * sizeof(double));
            for (uint32_t l = 0; l <= t.num_levels; l++) s->levels[l] = t.levels[l] + cap - end;
            s->num_levels = t.num_levels;
            s->l0_sorted = t.l0_sorted;
            PyMem_RawFree(s->items);
            s->items = items;
            s->n += (uint64_t)m << level;
            s->min = lo;
            s->max = hi;
        }
        PyMem_RawFree(w);
    }
    for (size_t r = 0; ok && r < runs; r++)
        if (!clean[r]) ok = add_values(s, values + r * RUN, RUN);
    if (ok) ok = add_values(s, values + runs * RUN, count - (Py_ssize_t)(runs * RUN));
    PyMem_RawFree(clean);
    PyMem_RawFree(keys);
    return ok;
}

static PyObject *py_update(PyObject *self, PyObject *args) {
    Py_buffer sb, vb;
    unsigned long long seed;
    unsigned int level = 0;
    if (!PyArg_ParseTuple(args, "y*y*K|I", &sb, &vb, &seed, &level)) return NULL;
    PyObject *result = NULL;
    kll_t s;
    if (vb.len % 8 != 0) {
        PyErr_SetString(PyExc_ValueError, "values: expected float64 items");
        goto done;
    }
    if (level > 8) {
        PyErr_SetString(PyExc_ValueError, "level: at most 8");
        goto done;
    }
    if (parse(&s, (const uint8_t *)sb.buf, sb.len) < 0) goto done;
    const double *values = (const double *)vb.buf;
    const Py_ssize_t count = vb.len / 8;
    int ok;
    s.rng = (uint64_t)seed;
    Py_BEGIN_ALLOW_THREADS
    ok = level ? add_runs(&s, values, count, level) : add_values(&s, values, count);
    Py_END_ALLOW_THREADS
    if (ok) {
        result = serialize(&s);
    } else {
        PyErr_SetString(PyExc_MemoryError, "KLL sketch: cannot grow");
    }
    PyMem_RawFree(s.items);
    PyMem_RawFree(s.tmp);
done:
    PyBuffer_Release(&sb);
    PyBuffer_Release(&vb);
    return result;
}

static PyMethodDef kll_methods[] = {
    {"update", py_update, METH_VARARGS,
     "update(sketch_bytes, values, seed) -> sketch_bytes: add float64 values to a serialized KLL doubles sketch."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef kll_module = {
    PyModuleDef_HEAD_INIT, "truthound_sketch._kll",
    "KLL updates in DataSketches' state and byte layout.", -1, kll_methods, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__kll(void) {
    return PyModule_Create(&kll_module);
}
