/*
 * Vectorized hashing for HyperLogLog sketches that are bit-compatible with
 * Apache DataSketches' HLL sketch (HLL_8 register layout, LIST/SET coupons).
 *
 * Every datum is hashed with MurmurHash3_x64_128 (seed 9001), exactly as
 * DataSketches does:
 *   - 64-bit integers: their 8 little-endian bytes;
 *   - doubles: their 8 bytes after canonicalisation (-0.0 -> 0.0, every NaN
 *     -> 0x7ff8000000000000);
 *   - strings / binary: their bytes (Arrow offset or view layouts); empty values
 *     are ignored.
 * The coupon of a hash (h1, h2) is value << 26 | address, with address
 * h1 & (2^26 - 1) and value min(clz64(h2), 62) + 1 (1..63; 0 is never a
 * coupon).  With 2^lg_k registers the slot is the low lg_k bits of the address
 * and the register keeps the maximum value.
 *
 * Two families of entry points take objects exposing the buffer protocol
 * (numpy arrays, bytearray, memoryview, pyarrow buffers):
 *   - update_*(registers, ...) fold every hash into a writable uint8 register
 *     buffer of 2^lg_k bytes (4 <= lg_k <= 21) in place;
 *   - collect_*(coupons, ..., limit) gather distinct coupons (the small-count
 *     mode of DataSketches) into a private hash set that starts with the given
 *     coupons, stop as soon as `limit` distinct coupons are held, and return
 *     (the coupons as uint32 bytes, in no particular order, the number of
 *     input values consumed).
 * The GIL is released while hashing; update_int64, update_float64 and
 * update_utf8_view (inline strings) hash eight values at a time with AVX-512
 * where the processor has it (use_wide).
 *
 * Safety: every buffer is requested C-contiguous with a checked item size and
 * format; register slots are masked; string offsets and views are checked as
 * they are used (each read once), so a buffer that another thread mutates while
 * the GIL is released can make a call fail with ValueError but never read or
 * write out of bounds; update_* also validate all of them before touching the
 * registers; hash-set probes are bounded.
 * Calls on different buffers may run in parallel from several threads.  Calls
 * that update the SAME register buffer at the same time are memory-safe but
 * may lose updates (the read-compare-write of a register is not atomic):
 * callers must serialize them (HllDistinct holds a lock per sketch).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <stdint.h>
#include <string.h>

#define HLL_SEED 9001ULL
#define HLL_MIN_LG_K 4
#define HLL_MAX_LG_K 21
#define KEY_MASK_26 0x3FFFFFFu
/* DataSketches' SET mode: smallest table, and its load limit RESIZE_NUMER/RESIZE_DENOM. */
#define SET_LG_INIT 5
#define SET_RESIZE_NUMER 3
#define SET_RESIZE_DENOM 4
#define MAX_COLLECT_LIMIT (1 << 24)

#if defined(__GNUC__) || defined(__clang__)
#define ALWAYS_INLINE static inline __attribute__((always_inline))
#else
#define ALWAYS_INLINE static inline
#endif

#define C1 0x87c37b91114253d5ULL
#define C2 0x4cf5ad432745937fULL

static inline uint64_t rotl64(uint64_t x, int r) {
    return (x << r) | (x >> (64 - r));
}

static inline uint64_t fmix64(uint64_t k) {
    k ^= k >> 33;
    k *= 0xff51afd7ed558ccdULL;
    k ^= k >> 33;
    k *= 0xc4ceb9fe1a85ec53ULL;
    k ^= k >> 33;
    return k;
}

static inline uint64_t load_le64(const uint8_t *p) {
    uint64_t v;
    memcpy(&v, p, 8);
#if defined(__BYTE_ORDER__) && (__BYTE_ORDER__ == __ORDER_BIG_ENDIAN__)
    v = __builtin_bswap64(v);
#endif
    return v;
}

/* MurmurHash3_x64_128 of an arbitrary byte string, 64-bit seed in both lanes.  With `padded`, the
 * 16 bytes from the start of the tail (the last len % 16 bytes) may be read: the tail is then
 * loaded as two words and masked instead of byte by byte (no jump on the tail's length). */
static inline void murmur3_128_at(const uint8_t *data, size_t len, const int padded, uint64_t *out1, uint64_t *out2) {
    uint64_t h1 = HLL_SEED, h2 = HLL_SEED;
    const size_t nblocks = len >> 4;
    for (size_t i = 0; i < nblocks; i++) {
        uint64_t k1 = load_le64(data + 16 * i);
        uint64_t k2 = load_le64(data + 16 * i + 8);
        k1 *= C1; k1 = rotl64(k1, 31); k1 *= C2; h1 ^= k1;
        h1 = rotl64(h1, 27); h1 += h2; h1 = h1 * 5 + 0x52dce729;
        k2 *= C2; k2 = rotl64(k2, 33); k2 *= C1; h2 ^= k2;
        h2 = rotl64(h2, 31); h2 += h1; h2 = h2 * 5 + 0x38495ab5;
    }
    const uint8_t *tail = data + (nblocks << 4);
    uint64_t k1 = 0, k2 = 0;
    const size_t rem = len & 15;
    if (padded && rem) {
        const uint64_t w1 = load_le64(tail), w2 = load_le64(tail + 8);
        if (rem > 8) {
            k2 = w2 & ((1ULL << (8 * (rem - 8))) - 1);
            k2 *= C2; k2 = rotl64(k2, 33); k2 *= C1; h2 ^= k2;
        }
        k1 = rem >= 8 ? w1 : w1 & ((1ULL << (8 * rem)) - 1);
        k1 *= C1; k1 = rotl64(k1, 31); k1 *= C2; h1 ^= k1;
    } else switch (rem) {
    case 15: k2 ^= (uint64_t)tail[14] << 48; /* fall through */
    case 14: k2 ^= (uint64_t)tail[13] << 40; /* fall through */
    case 13: k2 ^= (uint64_t)tail[12] << 32; /* fall through */
    case 12: k2 ^= (uint64_t)tail[11] << 24; /* fall through */
    case 11: k2 ^= (uint64_t)tail[10] << 16; /* fall through */
    case 10: k2 ^= (uint64_t)tail[9] << 8; /* fall through */
    case 9:
        k2 ^= (uint64_t)tail[8];
        k2 *= C2; k2 = rotl64(k2, 33); k2 *= C1; h2 ^= k2;
        /* fall through */
    case 8: k1 ^= (uint64_t)tail[7] << 56; /* fall through */
    case 7: k1 ^= (uint64_t)tail[6] << 48; /* fall through */
    case 6: k1 ^= (uint64_t)tail[5] << 40; /* fall through */
    case 5: k1 ^= (uint64_t)tail[4] << 32; /* fall through */
    case 4: k1 ^= (uint64_t)tail[3] << 24; /* fall through */
    case 3: k1 ^= (uint64_t)tail[2] << 16; /* fall through */
    case 2: k1 ^= (uint64_t)tail[1] << 8; /* fall through */
    case 1:
        k1 ^= (uint64_t)tail[0];
        k1 *= C1; k1 = rotl64(k1, 31); k1 *= C2; h1 ^= k1;
        break;
    default:
        break;
    }
    h1 ^= (uint64_t)len;
    h2 ^= (uint64_t)len;
    h1 += h2;
    h2 += h1;
    h1 = fmix64(h1);
    h2 = fmix64(h2);
    h1 += h2;
    h2 += h1;
    *out1 = h1;
    *out2 = h2;
}

static inline void murmur3_128(const uint8_t *data, size_t len, uint64_t *out1, uint64_t *out2) {
    murmur3_128_at(data, len, 0, out1, out2);
}

/* MurmurHash3_x64_128 of exactly 8 bytes holding the little-endian word v. */
static inline void murmur3_128_u64(uint64_t v, uint64_t *out1, uint64_t *out2) {
    uint64_t h1 = HLL_SEED, h2 = HLL_SEED;
    uint64_t k1 = v;
    k1 *= C1; k1 = rotl64(k1, 31); k1 *= C2; h1 ^= k1;
    h1 ^= 8;
    h2 ^= 8;
    h1 += h2;
    h2 += h1;
    h1 = fmix64(h1);
    h2 = fmix64(h2);
    h1 += h2;
    h2 += h1;
    *out1 = h1;
    *out2 = h2;
}


/* clz64(h2 | 1) differs from clz64(h2) only for h2 = 0 (63 instead of 64), and
 * both are clamped to 62: no branch needed. */
ALWAYS_INLINE uint32_t coupon_of(uint64_t h1, uint64_t h2) {
    const int lz = __builtin_clzll(h2 | 1);
    const uint32_t value = (uint32_t)((lz > 62 ? 62 : lz) + 1);
    return (value << 26) | ((uint32_t)h1 & KEY_MASK_26);
}

/* ---- sinks: where the hashes go ----------------------------------------- */

/* Either a register array (coupon_mode 0) or a bounded open-addressing set of
 * distinct coupons (coupon_mode 1): home cell = low bits of the coupon, linear
 * probing, 0 = empty.  The set is private to one call. */
typedef struct {
    uint8_t *reg;
    uint32_t reg_mask;
    uint32_t *tab;
    uint32_t tab_mask;
    Py_ssize_t count;
    Py_ssize_t limit;
    int full;
} sink_t;

/* Adds coupon `c` whose home cell `i` holds another coupon or none (slow path). */
#if defined(__GNUC__) || defined(__clang__)
__attribute__((noinline))
#endif
static int set_add_probe(sink_t *s, uint32_t c, uint32_t i) {
    for (uint32_t probes = 0; probes <= s->tab_mask; probes++) {
        const uint32_t cur = s->tab[i];
        if (cur == c) return 0;
        if (cur == 0) {
            s->tab[i] = c;
            return ++s->count >= s->limit;
        }
        i = (i + 1) & s->tab_mask;
    }
    s->full = 1; /* cannot happen: the table is at most half full */
    return 1;
}

/* Adds a coupon to the set; returns 1 when the caller must stop.  The home
 * cell is the low bits of the coupon's address (tab_mask < 2^26); most lookups
 * of a value seen before end there. */
ALWAYS_INLINE int set_add(sink_t *s, const uint32_t *tab, uint32_t tab_mask, uint32_t c) {
    const uint32_t i = c & tab_mask;
    if (tab[i] == c) return 0;
    return set_add_probe(s, c, i);
}

/* The sink's pointers and masks, copied into locals so that the compiler keeps
 * them in registers across the (rare) calls of the slow path. */
typedef struct {
    uint8_t *reg;
    uint32_t reg_mask;
    const uint32_t *tab;
    uint32_t tab_mask;
} hot_t;

ALWAYS_INLINE hot_t hot_of(const sink_t *s) {
    hot_t h = {s->reg, s->reg_mask, s->tab, s->tab_mask};
    return h;
}

ALWAYS_INLINE int sink_put(sink_t *s, const hot_t h, const int coupon_mode, uint64_t h1, uint64_t h2) {
    if (!coupon_mode) {
        const uint32_t slot = (uint32_t)h1 & h.reg_mask; /* mask < 2^26: same as low26 & mask */
        const int lz = h2 ? __builtin_clzll(h2) : 64;
        const uint8_t value = (uint8_t)((lz > 62 ? 62 : lz) + 1);
        if (value > h.reg[slot]) h.reg[slot] = value;
        return 0;
    }
    /* same cell as set_add's, from h1 alone: the load starts before the value bits are known */
    const uint32_t i = (uint32_t)h1 & h.tab_mask;
    const uint32_t c = coupon_of(h1, h2);
    if (h.tab[i] == c) return 0;
    return set_add_probe(s, c, i);
}

/* ---- loops (each instantiated for both sinks) ----------------------------- */

/* Each returns the number of values consumed (all of them unless the sink
 * asked to stop). */

ALWAYS_INLINE Py_ssize_t loop_int64(sink_t *s, const int cm, const uint8_t *v, Py_ssize_t n) {
    const hot_t hot = hot_of(s);
    for (Py_ssize_t i = 0; i < n; i++) {
        uint64_t h1, h2;
        murmur3_128_u64(load_le64(v + 8 * i), &h1, &h2);
        if (sink_put(s, hot, cm, h1, h2)) return i + 1;
    }
    return n;
}

ALWAYS_INLINE Py_ssize_t loop_float64(sink_t *s, const int cm, const uint8_t *v, Py_ssize_t n) {
    const hot_t hot = hot_of(s);
    for (Py_ssize_t i = 0; i < n; i++) {
        double d;
        memcpy(&d, v + 8 * i, 8);
        uint64_t bits;
        if (d == 0.0) {
            bits = 0; /* -0.0 and 0.0 */
        } else if (d != d) {
            bits = 0x7ff8000000000000ULL; /* canonical NaN */
        } else {
            memcpy(&bits, &d, 8);
        }
        uint64_t h1, h2;
        murmur3_128_u64(bits, &h1, &h2);
        if (sink_put(s, hot, cm, h1, h2)) return i + 1;
    }
    return n;
}

/* Eight values at a time with AVX-512 (F, DQ and CD: 64-bit multiplies and leading-zero
 * counts), chosen at run time on the processors that have it. */
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>
#define HAVE_WIDE 1

#define WIDE __attribute__((target("avx512f,avx512dq,avx512cd")))

static inline WIDE __m512i wide_fmix(__m512i x) {
    x = _mm512_xor_si512(x, _mm512_srli_epi64(x, 33));
    x = _mm512_mullo_epi64(x, _mm512_set1_epi64((long long)0xff51afd7ed558ccdULL));
    x = _mm512_xor_si512(x, _mm512_srli_epi64(x, 33));
    x = _mm512_mullo_epi64(x, _mm512_set1_epi64((long long)0xc4ceb9fe1a85ec53ULL));
    return _mm512_xor_si512(x, _mm512_srli_epi64(x, 33));
}

/* MurmurHash3's finalisation of eight (h1, h2) pairs (after the blocks and the tail, length mixed
 * in), then each hash into its register */
static inline WIDE void wide_fold(uint8_t *reg, uint32_t reg_mask, __m512i h1, __m512i h2) {
    uint64_t slots[8], values[8];
    h1 = _mm512_add_epi64(h1, h2);
    h2 = _mm512_add_epi64(h2, h1);
    h1 = wide_fmix(h1);
    h2 = wide_fmix(h2);
    h1 = _mm512_add_epi64(h1, h2);
    h2 = _mm512_add_epi64(h2, h1);
    _mm512_storeu_si512((void *)slots, _mm512_and_si512(h1, _mm512_set1_epi64((long long)reg_mask)));
    const __m512i lz = _mm512_min_epu64(_mm512_lzcnt_epi64(h2), _mm512_set1_epi64(62));
    _mm512_storeu_si512((void *)values, _mm512_add_epi64(lz, _mm512_set1_epi64(1)));
    for (int j = 0; j < 8; j++) {
        const uint8_t value = (uint8_t)values[j];
        if (value > reg[slots[j]]) reg[slots[j]] = value;
    }
}

/* Register mode over int64 or float64 values: the same MurmurHash3 as murmur3_128_u64, lane by
 * lane (int64 4.8 -> 1.6 ns, float64 2.9 -> 1.6 ns a value, measured).  Returns the number of
 * values done, a multiple of 8; the caller finishes the rest. */
static WIDE Py_ssize_t wide_registers(uint8_t *reg, uint32_t reg_mask, const uint8_t *v, Py_ssize_t n, const int is_float) {
    const __m512i c1 = _mm512_set1_epi64((long long)C1), c2 = _mm512_set1_epi64((long long)C2);
    const __m512i h_in = _mm512_set1_epi64((long long)(HLL_SEED ^ 8)); /* the seed, length 8 mixed in */
    const __m512i nan = _mm512_set1_epi64((long long)0x7ff8000000000000ULL), zero = _mm512_setzero_si512();
    Py_ssize_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m512i k = _mm512_loadu_si512((const void *)(v + 8 * i));
        if (is_float) { /* -0.0 and 0.0 hash as 0.0, every NaN as the canonical one */
            const __m512d d = _mm512_castsi512_pd(k);
            k = _mm512_mask_mov_epi64(k, _mm512_cmp_pd_mask(d, _mm512_setzero_pd(), _CMP_EQ_OQ), zero);
            k = _mm512_mask_mov_epi64(k, _mm512_cmp_pd_mask(d, d, _CMP_UNORD_Q), nan);
        }
        k = _mm512_mullo_epi64(_mm512_rol_epi64(_mm512_mullo_epi64(k, c1), 31), c2);
        wide_fold(reg, reg_mask, _mm512_xor_si512(h_in, k), h_in);
    }
    return i;
}

static int wide_ok = 0; /* whether the processor has AVX-512 F, DQ and CD (set at import) and it is used */

static int wide_available(void) {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512cd");
}
#endif

PyDoc_STRVAR(use_wide_doc,
"use_wide(flag) -> bool\n\n"
"Whether update_int64, update_float64 and update_utf8_view hash eight values at a time with\n"
"AVX-512: turned off with a false flag, on with a true one where the processor has it; returns\n"
"the setting now in force (for tests that compare both paths).");

static PyObject *py_use_wide(PyObject *self, PyObject *flag) {
    const int want = PyObject_IsTrue(flag);
    if (want < 0) return NULL;
#ifdef HAVE_WIDE
    wide_ok = want && wide_available();
    return PyBool_FromLong(wide_ok);
#else
    return PyBool_FromLong(0);
#endif
}

ALWAYS_INLINE int64_t read_offset(const uint8_t *o, Py_ssize_t i, int wide) {
    if (wide) { int64_t t; memcpy(&t, o + 8 * i, 8); return t; }
    int32_t t;
    memcpy(&t, o + 4 * i, 4);
    return t;
}

/* First offset index that is negative, decreasing or past the data, or -1. */
static Py_ssize_t check_offsets(const uint8_t *o, Py_ssize_t count, int wide, int64_t dlen) {
    int64_t prev = 0;
    for (Py_ssize_t i = 0; i < count; i++) {
        const int64_t cur = read_offset(o, i, wide);
        if (cur < 0 || cur < prev || cur > dlen) return i;
        prev = cur;
    }
    return -1;
}

/* Strings of an Arrow offsets layout (count = n + 1 offsets).  Every offset is
 * read once and re-checked, so concurrent mutation cannot cause an
 * out-of-bounds read: *bad receives the offending offset index. */
ALWAYS_INLINE Py_ssize_t loop_utf8(sink_t *s, const int cm, const uint8_t *o, Py_ssize_t count, const int wide,
                                   const uint8_t *d, int64_t dlen, Py_ssize_t *bad) {
    const hot_t hot = hot_of(s);
    int64_t t0 = read_offset(o, 0, wide);
    if (t0 < 0 || t0 > dlen) { *bad = 0; return 0; }
    for (Py_ssize_t i = 1; i < count; i++) {
        const int64_t t1 = read_offset(o, i, wide);
        if (t1 < t0 || t1 > dlen) { *bad = i; return i - 1; }
        if (t1 > t0) {
            uint64_t h1, h2;
            murmur3_128(d + t0, (size_t)(t1 - t0), &h1, &h2);
            if (sink_put(s, hot, cm, h1, h2)) return i;
        }
        t0 = t1;
    }
    return count - 1;
}

/* View i is valid: non-negative length, inline or inside its data buffer. */
ALWAYS_INLINE int view_ok(const uint8_t *v, Py_ssize_t nbuf, const int64_t *blen, int32_t *len, int32_t *idx,
                          int32_t *off) {
    memcpy(len, v, 4);
    if (*len < 0) return 0;
    if (*len <= 12) return 1;
    memcpy(idx, v + 8, 4);
    memcpy(off, v + 12, 4);
    return !(*idx < 0 || *idx >= nbuf || *off < 0 || (int64_t)*off + *len > blen[*idx]);
}

static Py_ssize_t check_views(const uint8_t *v, Py_ssize_t n, Py_ssize_t nbuf, const int64_t *blen) {
    for (Py_ssize_t i = 0; i < n; i++) {
        int32_t len, idx, off;
        if (!view_ok(v + 16 * i, nbuf, blen, &len, &idx, &off)) return i;
    }
    return -1;
}

ALWAYS_INLINE Py_ssize_t loop_views(sink_t *s, const int cm, const uint8_t *v, Py_ssize_t n, Py_ssize_t nbuf,
                                    const uint8_t *const *bptr, const int64_t *blen, Py_ssize_t *bad) {
    const hot_t hot = hot_of(s);
    for (Py_ssize_t i = 0; i < n; i++) {
        /* every field is read once and checked before it is used */
        const uint8_t *view = v + 16 * i;
        int32_t len;
        memcpy(&len, view, 4);
        const uint8_t *p;
        int padded; /* 16 bytes readable from the tail: within the views, or the data buffer */
        if (len <= 12) {
            if (len <= 0) {
                if (len < 0) { *bad = i; return i; }
                continue;
            }
            p = view + 4;
            padded = i + 1 < n;
        } else {
            int32_t idx, off;
            memcpy(&idx, view + 8, 4);
            memcpy(&off, view + 12, 4);
            if (idx < 0 || idx >= nbuf || off < 0 || (int64_t)off + len > blen[idx]) { *bad = i; return i; }
            p = bptr[idx] + off;
            padded = (int64_t)off + (len & ~15) + 16 <= blen[idx];
        }
        uint64_t h1, h2;
        murmur3_128_at(p, (size_t)len, padded, &h1, &h2);
        if (sink_put(s, hot, cm, h1, h2)) return i + 1;
    }
    return n;
}

#ifdef HAVE_WIDE
/* Register mode over string views (checked already): groups of eight inline strings (1 to 12
 * bytes, their bytes inside the view) hashed together with AVX-512, lane by lane the same
 * MurmurHash3 as murmur3_128_at; a group with a longer or empty string goes through loop_views.
 * Returns the number of views done: once more than half of the groups (and 32) were not inline,
 * the caller hashes the rest one at a time (1M 10-byte strings: 6.3 -> 3.0 ns a string with the
 * views' check, measured). */
static WIDE Py_ssize_t wide_views(sink_t *s, const uint8_t *v, Py_ssize_t n, Py_ssize_t nbuf, const uint8_t *const *bptr,
                             const int64_t *blen) {
    const __m512i c1 = _mm512_set1_epi64((long long)C1), c2 = _mm512_set1_epi64((long long)C2);
    const __m512i seed = _mm512_set1_epi64((long long)HLL_SEED), ones = _mm512_set1_epi64(-1);
    const __m512i low32 = _mm512_set1_epi64(0xffffffffLL), eight = _mm512_set1_epi64(8), one = _mm512_set1_epi64(1);
    const __m512i eleven = _mm512_set1_epi64(11), zero = _mm512_setzero_si512();
    const __m512i first = _mm512_setr_epi64(0, 2, 4, 6, 8, 10, 12, 14), second = _mm512_setr_epi64(1, 3, 5, 7, 9, 11, 13, 15);
    Py_ssize_t i = 0, bad = -1, groups = 0, mixed = 0;
    for (; i + 8 <= n; i += 8) {
        groups++;
        const __m512i a = _mm512_loadu_si512((const void *)(v + 16 * i));
        const __m512i b = _mm512_loadu_si512((const void *)(v + 16 * i + 64));
        const __m512i q0 = _mm512_permutex2var_epi64(a, first, b);  /* bytes 0-7 of each view */
        const __m512i q1 = _mm512_permutex2var_epi64(a, second, b); /* bytes 8-15 */
        const __m512i len = _mm512_and_si512(q0, low32);
        if (_mm512_cmple_epu64_mask(_mm512_sub_epi64(len, one), eleven) != 0xff) { /* not all 1..12 */
            loop_views(s, 0, v + 16 * i, 8, nbuf, bptr, blen, &bad);
            if (++mixed > 32 && 2 * mixed > groups) { /* mostly longer strings: one at a time from here */
                i += 8;
                break;
            }
            continue;
        }
        /* the string's bytes 0-7 and 8-11, zero past its length */
        __m512i k1 = _mm512_or_si512(_mm512_srli_epi64(q0, 32), _mm512_slli_epi64(q1, 32));
        __m512i k2 = _mm512_srli_epi64(q1, 32);
        k1 = _mm512_andnot_si512(_mm512_sllv_epi64(ones, _mm512_slli_epi64(len, 3)), k1);
        const __m512i past8 = _mm512_max_epi64(_mm512_sub_epi64(len, eight), zero);
        k2 = _mm512_andnot_si512(_mm512_sllv_epi64(ones, _mm512_slli_epi64(past8, 3)), k2);
        k1 = _mm512_mullo_epi64(_mm512_rol_epi64(_mm512_mullo_epi64(k1, c1), 31), c2);
        k2 = _mm512_mullo_epi64(_mm512_rol_epi64(_mm512_mullo_epi64(k2, c2), 33), c1); /* 0 stays 0 */
        wide_fold(s->reg, s->reg_mask, _mm512_xor_si512(_mm512_xor_si512(seed, k1), len),
                  _mm512_xor_si512(_mm512_xor_si512(seed, k2), len));
    }
    return i; /* the caller hashes the rest one at a time */
}
#endif

/* ---- argument helpers ---------------------------------------------------- */

/* The format of a buffer without its byte-order prefix. */
static const char *bare_format(const Py_buffer *view) {
    const char *fmt = view->format ? view->format : "B";
    if (fmt[0] == '@' || fmt[0] == '=' || fmt[0] == '<' || fmt[0] == '>' || fmt[0] == '!') {
#if defined(__BYTE_ORDER__) && (__BYTE_ORDER__ == __ORDER_BIG_ENDIAN__)
        if (fmt[0] == '<' && view->itemsize > 1) return "?";
#else
        if ((fmt[0] == '>' || fmt[0] == '!') && view->itemsize > 1) return "?";
#endif
        fmt++;
    }
    return fmt;
}

/* A C-contiguous buffer whose items are `itemsize` bytes with a format among `codes`. */
static int get_typed(PyObject *obj, Py_buffer *view, int flags, Py_ssize_t itemsize, const char *codes,
                     const char *what, const char *expected) {
    if (PyObject_GetBuffer(obj, view, flags | PyBUF_C_CONTIGUOUS | PyBUF_FORMAT) < 0) {
        PyErr_Format(PyExc_TypeError,
                     "%s must be a%s C-contiguous buffer of %s items (e.g. a numpy array), got %.200s", what,
                     (flags & PyBUF_WRITABLE) ? " writable," : "", expected, Py_TYPE(obj)->tp_name);
        return -1;
    }
    const char *fmt = bare_format(view);
    if (view->itemsize != itemsize || fmt[0] == '\0' || fmt[1] != '\0' || strchr(codes, fmt[0]) == NULL) {
        PyErr_Format(PyExc_TypeError, "%s must be a buffer of %s items, got format '%s' with itemsize %zd", what,
                     expected, view->format ? view->format : "B", view->itemsize);
        PyBuffer_Release(view);
        return -1;
    }
    return 0;
}

/* Any C-contiguous buffer, read as bytes. */
static int get_bytes(PyObject *obj, Py_buffer *view, const char *what) {
    if (PyObject_GetBuffer(obj, view, PyBUF_C_CONTIGUOUS) < 0) {
        PyErr_Format(PyExc_TypeError, "%s must be a C-contiguous buffer, got %.200s", what, Py_TYPE(obj)->tp_name);
        return -1;
    }
    return 0;
}

static int get_registers(PyObject *obj, Py_buffer *view, uint32_t *mask) {
    if (get_typed(obj, view, PyBUF_WRITABLE, 1, "B", "registers", "uint8") < 0) return -1;
    const Py_ssize_t n = view->len;
    if (n < ((Py_ssize_t)1 << HLL_MIN_LG_K) || n > ((Py_ssize_t)1 << HLL_MAX_LG_K) || (n & (n - 1)) != 0) {
        PyErr_Format(PyExc_ValueError,
                     "registers must hold 2^lg_k bytes with %d <= lg_k <= %d, got %zd bytes",
                     HLL_MIN_LG_K, HLL_MAX_LG_K, n);
        PyBuffer_Release(view);
        return -1;
    }
    *mask = (uint32_t)(n - 1);
    return 0;
}

static int get_values8(PyObject *obj, Py_buffer *view, char kind) {
    if (kind == 'i') return get_typed(obj, view, 0, 8, "qQlL", "values", "int64");
    return get_typed(obj, view, 0, 8, "d", "values", "float64");
}

static int get_coupons(PyObject *obj, Py_buffer *view) {
    return get_typed(obj, view, 0, 4, "IL", "coupons", "uint32");
}

static int parse_limit(Py_ssize_t limit) {
    if (limit < 1 || limit > MAX_COLLECT_LIMIT) {
        PyErr_Format(PyExc_ValueError, "limit must be between 1 and %d, got %zd", MAX_COLLECT_LIMIT, limit);
        return -1;
    }
    return 0;
}

/* The destination of one call: registers, or a fresh coupon set seeded with
 * `coupons` that will hold at most `limit` coupons from `coupons` + `nvals`
 * values.  Holds the buffers it needs until sink_release. */
typedef struct {
    sink_t s;
    int coupon_mode;
    Py_buffer reg;
    Py_buffer seed;
    int have_reg, have_seed;
} dest_t;

static int dest_open(dest_t *d, int coupon_mode, PyObject *target, Py_ssize_t limit) {
    memset(d, 0, sizeof(*d));
    d->coupon_mode = coupon_mode;
    if (!coupon_mode) {
        if (get_registers(target, &d->reg, &d->s.reg_mask) < 0) return -1;
        d->s.reg = (uint8_t *)d->reg.buf;
        d->have_reg = 1;
        return 0;
    }
    if (parse_limit(limit) < 0) return -1;
    if (get_coupons(target, &d->seed) < 0) return -1;
    d->have_seed = 1;
    if (d->seed.len / 4 > limit) {
        PyErr_Format(PyExc_ValueError, "%zd coupons given but the limit is %zd", d->seed.len / 4, limit);
        return -1;
    }
    d->s.limit = limit;
    return 0;
}

/* Allocates the coupon set for `nvals` more values and inserts the seed
 * coupons (GIL held).  Returns -1 with an exception set on failure. */
static int dest_start(dest_t *d, Py_ssize_t nvals) {
    if (!d->coupon_mode) return 0;
    const Py_ssize_t nseed = d->seed.len / 4;
    Py_ssize_t need = d->s.limit;
    if (nvals < need - nseed) need = nseed + nvals;
    /* Sparse (1/16 load, up to 2^18 cells = 1 MiB) so that most lookups end at the first cell:
     * fewer branch mispredictions.  Larger sets are at most half full: fewer cache misses. */
    int lg = 6;
    while (((Py_ssize_t)1 << lg) < 16 * need && lg < 18) lg++;
    while (((Py_ssize_t)1 << lg) < 2 * need) lg++;
    d->s.tab = PyMem_Calloc((size_t)1 << lg, sizeof(uint32_t));
    if (d->s.tab == NULL) { PyErr_NoMemory(); return -1; }
    d->s.tab_mask = ((uint32_t)1 << lg) - 1;
    const uint8_t *c = (const uint8_t *)d->seed.buf;
    for (Py_ssize_t i = 0; i < nseed; i++) {
        uint32_t coupon;
        memcpy(&coupon, c + 4 * i, 4);
        if (coupon == 0 || (coupon >> 26) == 0) {
            PyErr_Format(PyExc_ValueError, "coupons[%zd] = %u is not a coupon (its value bits are 0)", i,
                         (unsigned)coupon);
            return -1;
        }
        set_add(&d->s, d->s.tab, d->s.tab_mask, coupon);
    }
    return 0;
}

/* Result of a call: None for registers, (coupon bytes, consumed) for coupons. */
static PyObject *dest_result(dest_t *d, Py_ssize_t consumed) {
    if (!d->coupon_mode) Py_RETURN_NONE;
    if (d->s.full) {
        PyErr_SetString(PyExc_RuntimeError, "coupon set overflow");
        return NULL;
    }
    PyObject *out = PyBytes_FromStringAndSize(NULL, d->s.count * 4);
    if (out == NULL) return NULL;
    uint8_t *p = (uint8_t *)PyBytes_AS_STRING(out);
    Py_ssize_t k = 0;
    for (uint32_t i = 0; i <= d->s.tab_mask && k < d->s.count; i++) {
        const uint32_t c = d->s.tab[i];
        if (c) { memcpy(p + 4 * k, &c, 4); k++; }
    }
    return Py_BuildValue("(Nn)", out, consumed);
}

static void dest_close(dest_t *d) {
    PyMem_Free(d->s.tab);
    d->s.tab = NULL;
    if (d->have_seed) PyBuffer_Release(&d->seed);
    if (d->have_reg) PyBuffer_Release(&d->reg);
    d->have_seed = d->have_reg = 0;
}

/* ---- numbers ------------------------------------------------------------- */

static PyObject *run_values8(PyObject *args, int coupon_mode, char kind) {
    PyObject *target, *val_obj;
    Py_ssize_t limit = 0;
    const char *spec = coupon_mode ? (kind == 'i' ? "OOn:collect_int64" : "OOn:collect_float64")
                                   : (kind == 'i' ? "OO:update_int64" : "OO:update_float64");
    if (coupon_mode ? !PyArg_ParseTuple(args, spec, &target, &val_obj, &limit)
                    : !PyArg_ParseTuple(args, spec, &target, &val_obj)) return NULL;
    dest_t d;
    Py_buffer val;
    PyObject *result = NULL;
    if (dest_open(&d, coupon_mode, target, limit) < 0) { dest_close(&d); return NULL; }
    if (get_values8(val_obj, &val, kind) < 0) { dest_close(&d); return NULL; }
    const Py_ssize_t n = val.len / 8;
    if (dest_start(&d, n) == 0) {
        const uint8_t *v = (const uint8_t *)val.buf;
        Py_ssize_t consumed = 0;
        sink_t *s = &d.s;
        if (!(coupon_mode && s->count >= s->limit)) {
            Py_BEGIN_ALLOW_THREADS
            Py_ssize_t done = 0;
#ifdef HAVE_WIDE
            if (!coupon_mode && wide_ok) done = wide_registers(s->reg, s->reg_mask, v, n, kind == 'f');
#endif
            v += 8 * done;
            if (kind == 'i') consumed = coupon_mode ? loop_int64(s, 1, v, n - done) : loop_int64(s, 0, v, n - done);
            else consumed = coupon_mode ? loop_float64(s, 1, v, n - done) : loop_float64(s, 0, v, n - done);
            consumed += done;
            Py_END_ALLOW_THREADS
        }
        result = dest_result(&d, consumed);
    }
    PyBuffer_Release(&val);
    dest_close(&d);
    return result;
}

PyDoc_STRVAR(update_int64_doc,
"update_int64(registers, values) -> None\n\n"
"Hash each 64-bit integer of `values` (a C-contiguous int64/uint64 buffer) the way\n"
"DataSketches' HLL update(int64) does and fold it into `registers` (writable,\n"
"C-contiguous uint8 buffer of 2^lg_k bytes, 4 <= lg_k <= 21) in place.");

static PyObject *py_update_int64(PyObject *self, PyObject *args) { return run_values8(args, 0, 'i'); }

PyDoc_STRVAR(collect_int64_doc,
"collect_int64(coupons, values, limit) -> (bytes, consumed)\n\n"
"Distinct coupons of `coupons` (a uint32 buffer of at most `limit` coupons) plus\n"
"those of the int64 `values`, gathered until `limit` distinct coupons are held.\n"
"Returns them as little-endian uint32 bytes (no particular order) and the number\n"
"of values consumed (len(values) unless the limit was reached first).");

static PyObject *py_collect_int64(PyObject *self, PyObject *args) { return run_values8(args, 1, 'i'); }

PyDoc_STRVAR(update_float64_doc,
"update_float64(registers, values) -> None\n\n"
"Hash each double of `values` (a C-contiguous float64 buffer) the way DataSketches'\n"
"HLL update(double) does (-0.0 counts as 0.0, every NaN as one canonical NaN) and\n"
"fold it into `registers` in place.");

static PyObject *py_update_float64(PyObject *self, PyObject *args) { return run_values8(args, 0, 'f'); }

PyDoc_STRVAR(collect_float64_doc,
"collect_float64(coupons, values, limit) -> (bytes, consumed)\n\n"
"As collect_int64, for a float64 buffer hashed like update_float64.");

static PyObject *py_collect_float64(PyObject *self, PyObject *args) { return run_values8(args, 1, 'f'); }

/* ---- strings (Arrow offsets layout) -------------------------------------- */

static PyObject *run_utf8(PyObject *args, int coupon_mode) {
    PyObject *target, *off_obj, *data_obj;
    int wide;
    Py_ssize_t limit = 0;
    if (coupon_mode ? !PyArg_ParseTuple(args, "OOOpn:collect_utf8", &target, &off_obj, &data_obj, &wide, &limit)
                    : !PyArg_ParseTuple(args, "OOOp:update_utf8", &target, &off_obj, &data_obj, &wide)) return NULL;
    dest_t d;
    Py_buffer off, data;
    PyObject *result = NULL;
    if (dest_open(&d, coupon_mode, target, limit) < 0) { dest_close(&d); return NULL; }
    const int w = wide ? 8 : 4;
    if (get_typed(off_obj, &off, 0, w, wide ? "qQlL" : "iIlL", "offsets", wide ? "int64" : "int32") < 0) {
        dest_close(&d);
        return NULL;
    }
    if (get_bytes(data_obj, &data, "data") < 0) {
        PyBuffer_Release(&off);
        dest_close(&d);
        return NULL;
    }
    const Py_ssize_t count = off.len / w;
    if (count == 0) {
        /* no offsets at all: no strings */
        if (dest_start(&d, 0) == 0) result = dest_result(&d, 0);
    } else if (dest_start(&d, count - 1) == 0) {
        const uint8_t *o = (const uint8_t *)off.buf;
        const uint8_t *dp = (const uint8_t *)data.buf;
        const int64_t dlen = (int64_t)data.len;
        Py_ssize_t bad = -1, consumed = 0;
        sink_t *s = &d.s;
        Py_BEGIN_ALLOW_THREADS
        /* The registers are shared: validate every offset first, so a bad layout changes
         * nothing.  The coupon set is private and returned only on success: the loop's own
         * checks suffice (no second pass over the strings the caller hashes next). */
        if (!coupon_mode) bad = check_offsets(o, count, wide, dlen);
        if (bad < 0 && !(coupon_mode && s->count >= s->limit)) {
            if (wide) {
                consumed = coupon_mode ? loop_utf8(s, 1, o, count, 1, dp, dlen, &bad)
                                       : loop_utf8(s, 0, o, count, 1, dp, dlen, &bad);
            } else {
                consumed = coupon_mode ? loop_utf8(s, 1, o, count, 0, dp, dlen, &bad)
                                       : loop_utf8(s, 0, o, count, 0, dp, dlen, &bad);
            }
        }
        Py_END_ALLOW_THREADS
        if (bad >= 0) {
            PyErr_Format(PyExc_ValueError,
                         "invalid string offsets: entry %zd is negative, decreasing or outside the %zd-byte data "
                         "buffer",
                         bad, data.len);
        } else {
            result = dest_result(&d, consumed);
        }
    }
    PyBuffer_Release(&data);
    PyBuffer_Release(&off);
    dest_close(&d);
    return result;
}

PyDoc_STRVAR(update_utf8_doc,
"update_utf8(registers, offsets, data, offsets_are_int64) -> None\n\n"
"Hash the byte strings of an Arrow string/binary layout: `offsets` holds n+1\n"
"int32 (or int64 when offsets_are_int64) positions into `data`; string i is\n"
"data[offsets[i]:offsets[i+1]].  Empty strings are skipped, as DataSketches does.\n"
"Raises ValueError, without touching the registers, if the offsets are negative,\n"
"decreasing or point outside `data`.");

static PyObject *py_update_utf8(PyObject *self, PyObject *args) { return run_utf8(args, 0); }

PyDoc_STRVAR(collect_utf8_doc,
"collect_utf8(coupons, offsets, data, offsets_are_int64, limit) -> (bytes, consumed)\n\n"
"As collect_int64, for the strings of an Arrow offsets layout (see update_utf8);\n"
"`consumed` counts strings.");

static PyObject *py_collect_utf8(PyObject *self, PyObject *args) { return run_utf8(args, 1); }

/* ---- strings (Arrow view layout) ----------------------------------------- */

static PyObject *run_utf8_view(PyObject *args, int coupon_mode) {
    PyObject *target, *views_obj, *bufs_obj;
    Py_ssize_t limit = 0;
    if (coupon_mode ? !PyArg_ParseTuple(args, "OOOn:collect_utf8_view", &target, &views_obj, &bufs_obj, &limit)
                    : !PyArg_ParseTuple(args, "OOO:update_utf8_view", &target, &views_obj, &bufs_obj)) return NULL;
    PyObject *seq = PySequence_Fast(bufs_obj, "data_buffers must be a sequence of buffers");
    if (seq == NULL) return NULL;
    const Py_ssize_t nbuf = PySequence_Fast_GET_SIZE(seq);
    if (nbuf > INT32_MAX) {
        Py_DECREF(seq);
        PyErr_SetString(PyExc_ValueError, "too many data buffers");
        return NULL;
    }
    dest_t d;
    Py_buffer views;
    int have_views = 0;
    Py_buffer *bufs = NULL;
    const uint8_t **bptr = NULL;
    int64_t *blen = NULL;
    Py_ssize_t got = 0;
    PyObject *result = NULL;
    if (dest_open(&d, coupon_mode, target, limit) < 0) goto out;
    if (get_bytes(views_obj, &views, "views") < 0) goto out;
    have_views = 1;
    if (views.len % 16 != 0) {
        PyErr_Format(PyExc_ValueError, "views buffer length %zd is not a multiple of 16", views.len);
        goto out;
    }
    bufs = PyMem_Calloc(nbuf > 0 ? (size_t)nbuf : 1, sizeof(Py_buffer));
    bptr = PyMem_Calloc(nbuf > 0 ? (size_t)nbuf : 1, sizeof(uint8_t *));
    blen = PyMem_Calloc(nbuf > 0 ? (size_t)nbuf : 1, sizeof(int64_t));
    if (bufs == NULL || bptr == NULL || blen == NULL) {
        PyErr_NoMemory();
        goto out;
    }
    for (; got < nbuf; got++) {
        /* the list holds the items; the buffers keep their memory alive */
        if (get_bytes(PySequence_Fast_GET_ITEM(seq, got), &bufs[got], "every data buffer") < 0) goto out;
        bptr[got] = (const uint8_t *)bufs[got].buf;
        blen[got] = (int64_t)bufs[got].len;
    }
    {
        const uint8_t *v = (const uint8_t *)views.buf;
        const Py_ssize_t n = views.len / 16;
        if (dest_start(&d, n) < 0) goto out;
        Py_ssize_t bad = -1, consumed = 0;
        sink_t *s = &d.s;
        Py_BEGIN_ALLOW_THREADS
        if (!coupon_mode) bad = check_views(v, n, nbuf, blen); /* see run_utf8 */
        if (bad < 0 && !(coupon_mode && s->count >= s->limit)) {
#ifdef HAVE_WIDE
            if (!coupon_mode && wide_ok) {
                const Py_ssize_t done = wide_views(s, v, n, nbuf, bptr, blen);
                consumed = done + loop_views(s, 0, v + 16 * done, n - done, nbuf, bptr, blen, &bad);
            } else
#endif
            consumed = coupon_mode ? loop_views(s, 1, v, n, nbuf, bptr, blen, &bad)
                                   : loop_views(s, 0, v, n, nbuf, bptr, blen, &bad);
        }
        Py_END_ALLOW_THREADS
        if (bad >= 0) {
            PyErr_Format(PyExc_ValueError,
                         "invalid string view %zd: negative length or outside its data buffer", bad);
            goto out;
        }
        result = dest_result(&d, consumed);
    }
out:
    for (Py_ssize_t i = 0; i < got; i++) PyBuffer_Release(&bufs[i]);
    PyMem_Free(bufs);
    PyMem_Free((void *)bptr);
    PyMem_Free(blen);
    if (have_views) PyBuffer_Release(&views);
    dest_close(&d);
    Py_DECREF(seq);
    return result;
}

PyDoc_STRVAR(update_utf8_view_doc,
"update_utf8_view(registers, views, data_buffers) -> None\n\n"
"Hash the byte strings of an Arrow string_view/binary_view layout: `views` holds\n"
"16-byte views (int32 length; up to 12 bytes inline, else prefix, int32 buffer\n"
"index and int32 offset into data_buffers[index]).  Empty strings are skipped.\n"
"Raises ValueError, without touching the registers, if a view points outside its buffer.");

static PyObject *py_update_utf8_view(PyObject *self, PyObject *args) { return run_utf8_view(args, 0); }

PyDoc_STRVAR(collect_utf8_view_doc,
"collect_utf8_view(coupons, views, data_buffers, limit) -> (bytes, consumed)\n\n"
"As collect_int64, for the strings of an Arrow view layout (see update_utf8_view);\n"
"`consumed` counts views.");

static PyObject *py_collect_utf8_view(PyObject *self, PyObject *args) { return run_utf8_view(args, 1); }

/* ---- coupons ------------------------------------------------------------- */

PyDoc_STRVAR(apply_coupons_doc,
"apply_coupons(registers, coupons) -> None\n\n"
"Fold the coupons of a uint32 buffer into `registers` in place (slot = low lg_k\n"
"bits of the 26-bit address, keep the maximum value); 0 cells are skipped.\n"
"Raises ValueError, without touching the registers, for a non-zero cell whose\n"
"value bits are 0.");

static PyObject *py_apply_coupons(PyObject *self, PyObject *args) {
    PyObject *reg_obj, *cp_obj;
    if (!PyArg_ParseTuple(args, "OO:apply_coupons", &reg_obj, &cp_obj)) return NULL;
    Py_buffer reg, cp;
    uint32_t mask;
    if (get_registers(reg_obj, &reg, &mask) < 0) return NULL;
    if (get_coupons(cp_obj, &cp) < 0) { PyBuffer_Release(&reg); return NULL; }
    uint8_t *r = (uint8_t *)reg.buf;
    const uint8_t *c = (const uint8_t *)cp.buf;
    const Py_ssize_t n = cp.len / 4;
    Py_ssize_t bad = -1;
    Py_BEGIN_ALLOW_THREADS
    for (Py_ssize_t i = 0; i < n; i++) {
        uint32_t coupon;
        memcpy(&coupon, c + 4 * i, 4);
        if (coupon != 0 && (coupon >> 26) == 0) { bad = i; break; }
    }
    if (bad < 0) {
        for (Py_ssize_t i = 0; i < n; i++) {
            uint32_t coupon;
            memcpy(&coupon, c + 4 * i, 4);
            const uint8_t value = (uint8_t)(coupon >> 26);
            const uint32_t slot = coupon & KEY_MASK_26 & mask;
            if (value > r[slot]) r[slot] = value;
        }
    }
    Py_END_ALLOW_THREADS
    PyBuffer_Release(&cp);
    PyBuffer_Release(&reg);
    if (bad >= 0) {
        PyErr_Format(PyExc_ValueError, "coupons[%zd] is not a coupon (its value bits are 0)", bad);
        return NULL;
    }
    Py_RETURN_NONE;
}

/* DataSketches' CouponHashSet probe: slot of `coupon` in a table of 2^lg cells,
 * or -1 if it is already there, or -2 if the table is full. */
static int64_t ds_find(const uint32_t *tab, int lg, uint32_t coupon) {
    const uint32_t mask = ((uint32_t)1 << lg) - 1;
    uint32_t probe = coupon & mask;
    const uint32_t start = probe;
    do {
        const uint32_t cur = tab[probe];
        if (cur == 0) return probe;
        if (cur == coupon) return -1;
        const uint32_t stride = ((coupon & KEY_MASK_26) >> lg) | 1;
        probe = (probe + stride) & mask;
    } while (probe != start);
    return -2;
}

PyDoc_STRVAR(set_layout_doc,
"set_layout(coupons, lg_k) -> (lg_arr, bytes)\n\n"
"The hash table DataSketches' SET mode builds when the coupons (uint32, distinct)\n"
"are inserted in the given order into a sketch with this lg_k (8 <= lg_k <= 21),\n"
"growing from 2^5 cells at 3/4 load as it does.  Returns the final lg_arr and the\n"
"coupons in table order, which is what its compact serialization lists.  Raises\n"
"ValueError for a 0 cell, a duplicate, or more coupons than SET mode holds.");

static PyObject *py_set_layout(PyObject *self, PyObject *args) {
    PyObject *cp_obj;
    int lg_k;
    if (!PyArg_ParseTuple(args, "Oi:set_layout", &cp_obj, &lg_k)) return NULL;
    if (lg_k < 8 || lg_k > HLL_MAX_LG_K) {
        PyErr_Format(PyExc_ValueError, "SET mode needs 8 <= lg_k <= %d, got %d", HLL_MAX_LG_K, lg_k);
        return NULL;
    }
    Py_buffer cp;
    if (get_coupons(cp_obj, &cp) < 0) return NULL;
    const Py_ssize_t n = cp.len / 4;
    const int lg_max = lg_k - 3;
    if ((int64_t)SET_RESIZE_DENOM * n > (int64_t)SET_RESIZE_NUMER << lg_max) {
        PyBuffer_Release(&cp);
        PyErr_Format(PyExc_ValueError, "%zd coupons exceed what SET mode holds at lg_k %d", n, lg_k);
        return NULL;
    }
    uint32_t *tab = PyMem_Calloc((size_t)1 << lg_max, sizeof(uint32_t));
    uint32_t *tmp = PyMem_Calloc((size_t)1 << lg_max, sizeof(uint32_t));
    if (tab == NULL || tmp == NULL) {
        PyMem_Free(tab);
        PyMem_Free(tmp);
        PyBuffer_Release(&cp);
        return PyErr_NoMemory();
    }
    const uint8_t *c = (const uint8_t *)cp.buf;
    int lg = SET_LG_INIT;
    Py_ssize_t count = 0, bad = -1;
    int dup = 0;
    Py_BEGIN_ALLOW_THREADS
    for (Py_ssize_t i = 0; i < n; i++) {
        uint32_t coupon;
        memcpy(&coupon, c + 4 * i, 4);
        if ((coupon >> 26) == 0) { bad = i; break; }
        const int64_t at = ds_find(tab, lg, coupon);
        if (at < 0) { bad = i; dup = 1; break; }
        tab[at] = coupon;
        count++;
        if ((int64_t)SET_RESIZE_DENOM * count > ((int64_t)SET_RESIZE_NUMER << lg)) {
            if (lg == lg_max) { bad = i; break; } /* would be promoted to HLL */
            /* grow: re-insert in the order of the old table, as DataSketches does */
            const uint32_t old_len = (uint32_t)1 << lg;
            memset(tmp, 0, sizeof(uint32_t) << (lg + 1));
            for (uint32_t j = 0; j < old_len; j++) {
                if (tab[j]) {
                    const int64_t to = ds_find(tmp, lg + 1, tab[j]);
                    if (to >= 0) tmp[to] = tab[j];
                }
            }
            lg++;
            memcpy(tab, tmp, sizeof(uint32_t) << lg);
        }
    }
    Py_END_ALLOW_THREADS
    PyBuffer_Release(&cp);
    PyObject *result = NULL;
    if (bad >= 0) {
        PyErr_Format(PyExc_ValueError, "coupons[%zd] is %s", bad,
                     dup ? "a duplicate" : "not a coupon or one too many for SET mode");
    } else {
        PyObject *out = PyBytes_FromStringAndSize(NULL, count * 4);
        if (out != NULL) {
            uint8_t *p = (uint8_t *)PyBytes_AS_STRING(out);
            Py_ssize_t k = 0;
            for (uint32_t j = 0; j < ((uint32_t)1 << lg) && k < count; j++) {
                if (tab[j]) { memcpy(p + 4 * k, &tab[j], 4); k++; }
            }
            result = Py_BuildValue("(iN)", lg, out);
        }
    }
    PyMem_Free(tab);
    PyMem_Free(tmp);
    return result;
}

PyDoc_STRVAR(hash128_doc,
"hash128(data: bytes) -> tuple[int, int]\n\n"
"MurmurHash3_x64_128 of `data` with DataSketches' seed 9001 (for tests and tools).");

static PyObject *py_hash128(PyObject *self, PyObject *args) {
    Py_buffer buf;
    if (!PyArg_ParseTuple(args, "y*:hash128", &buf)) return NULL;
    uint64_t h1, h2;
    murmur3_128((const uint8_t *)buf.buf, (size_t)buf.len, &h1, &h2);
    PyBuffer_Release(&buf);
    return Py_BuildValue("(KK)", (unsigned long long)h1, (unsigned long long)h2);
}

static PyMethodDef hll_methods[] = {
    {"update_int64", py_update_int64, METH_VARARGS, update_int64_doc},
    {"use_wide", py_use_wide, METH_O, use_wide_doc},
    {"update_float64", py_update_float64, METH_VARARGS, update_float64_doc},
    {"update_utf8", py_update_utf8, METH_VARARGS, update_utf8_doc},
    {"update_utf8_view", py_update_utf8_view, METH_VARARGS, update_utf8_view_doc},
    {"collect_int64", py_collect_int64, METH_VARARGS, collect_int64_doc},
    {"collect_float64", py_collect_float64, METH_VARARGS, collect_float64_doc},
    {"collect_utf8", py_collect_utf8, METH_VARARGS, collect_utf8_doc},
    {"collect_utf8_view", py_collect_utf8_view, METH_VARARGS, collect_utf8_view_doc},
    {"apply_coupons", py_apply_coupons, METH_VARARGS, apply_coupons_doc},
    {"set_layout", py_set_layout, METH_VARARGS, set_layout_doc},
    {"hash128", py_hash128, METH_VARARGS, hash128_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef hll_module = {
    PyModuleDef_HEAD_INIT,
    "truthound_sketch._hll",
    "Vectorized hashing for HyperLogLog sketches compatible with Apache DataSketches HLL.",
    -1,
    hll_methods,
    NULL,
    NULL,
    NULL,
    NULL,
};

PyMODINIT_FUNC PyInit__hll(void) {
#ifdef HAVE_WIDE
    wide_ok = wide_available();
#endif
    PyObject *m = PyModule_Create(&hll_module);
    if (m == NULL) return NULL;
    if (PyModule_AddIntConstant(m, "SEED", (long)HLL_SEED) < 0 ||
        PyModule_AddIntConstant(m, "MIN_LG_K", HLL_MIN_LG_K) < 0 ||
        PyModule_AddIntConstant(m, "MAX_LG_K", HLL_MAX_LG_K) < 0 ||
        PyModule_AddIntConstant(m, "MAX_COLLECT_LIMIT", MAX_COLLECT_LIMIT) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
