/*
 * Counting by hashing, for the frequent-values summary and exact value counts
 * (truthound_sketch.frequent).
 *
 * 1. Multiplicities of 64-bit hashes: the prefilter of
 *    FrequentItems.from_batch.
 *
 *   heavy_rows(hashes, k, floor) -> (kth, floor, rows)
 *
 * hashes: one uint64 per row (C-contiguous buffer).  kth: the k-th largest
 * multiplicity over the distinct hashes (0 when there are fewer than k);
 * rows: the indices (uint32 bytes, ascending) of the rows whose hash occurs
 * more than `floor` times, or None when they are more than half the rows;
 * floor FLOOR_KTH (-2) means kth (no rows when kth is 0), -1 max(kth - 1, 1);
 * the floor used is returned as the second item.
 *
 * Equal values have equal hashes, so a row's hash multiplicity is an upper
 * bound of its value's count: rows left out belong to values seen at most
 * `floor` times, whatever collisions there are.
 *
 *   heavy_keys(keys, k) -> (kth, keys, counts)
 *
 * The same count for keys that are the values themselves (distinct values, distinct
 * keys): the keys occurring more than kth times and their multiplicities.
 *
 * Both count the keys alone (heavy_rows then finds the rows of the keys it keeps in
 * a second pass over the hashes: 9.8 -> 8.7 ms on 1M rows of 100k keys, measured).
 * The keys are radix-partitioned by the top bits of their (mixed) hash, keys seen
 * once are sifted out of each partition (sift), and the rest of a partition
 * is counted in an open-addressing table of eight times its size
 * (linear probing, keyed by the full 64 bits), small enough to stay in cache and
 * sparse enough that most probes end at the first slot (fewer mispredicted
 * branches: 7.8 -> 6 ns a row on 262,144 distinct hashes, measured).
 *
 *   heavy_views(chunks, k) -> (kth, strings, counts) or None
 *
 * The same count for a string column whose strings all have at most 12 bytes,
 * keyed by their 16-byte views (which hold such strings whole): exact, with the
 * strings above kth returned themselves.
 *
 * 2. Exact counts of strings in the Arrow string-view layout:
 *
 *   count_views(views, data, limit) -> (first_rows, counts) or None
 *
 * views: the 16-byte views of a column without nulls; data: the list of its
 * data buffers.  Returns the row of the first occurrence of every distinct
 * string (uint32 bytes) and its count (uint64 bytes), in order of first
 * occurrence, or None as soon as more than `limit` distinct strings are seen.
 * Strings of at most 12 bytes live in their view and are compared as 16 bytes;
 * longer ones are compared byte for byte.  Views are checked as they are read
 * (a bad buffer index, offset or length raises ValueError).  The table starts
 * small and doubles when half full.
 *
 * They release the GIL while they count, and work in scratch memory kept
 * between calls.
 *
 * 3. string_stats(views, data) -> (min_row, max_row, hist, longer): the range and
 *    the lengths in characters (a histogram) of a string-view column without nulls,
 *    in one pass.
 *
 * 4. dense_counts(values, limit) -> (lo, counts) or None: a histogram of integers
 *    spanning at most `limit` values.
 *
 * 5. view_chunks(stream) -> [(views, data, owner), ...] or None: the chunks of a
 *    string-view column from its Arrow C stream (a polars Series' __arrow_c_stream__
 *    capsule), as memoryviews of the views and data buffers, without pyarrow.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#define HUGE_PAGE ((size_t)2 << 20)

static int get_buffer(PyObject *obj, Py_buffer *view, int writable, Py_ssize_t itemsize, const char *what) {
    int flags = PyBUF_C_CONTIGUOUS | PyBUF_FORMAT | (writable ? PyBUF_WRITABLE : 0);
    if (PyObject_GetBuffer(obj, view, flags) < 0) return -1;
    if (view->itemsize != itemsize || view->len % itemsize != 0) {
        PyErr_Format(PyExc_ValueError, "%s: expected items of %zd bytes, got %zd", what, itemsize, view->itemsize);
        PyBuffer_Release(view);
        return -1;
    }
    return 0;
}

/* the slot of a key: a multiply-xorshift mix, so that weak input hashes do not cluster */
static inline uint64_t mix(uint64_t k) {
    k ^= k >> 33;
    k *= 0xff51afd7ed558ccdULL;
    k ^= k >> 33;
    return k;
}

/* ---- scratch memory ---------------------------------------------------------------------- */

/* Grow-only blocks reused by the calls of the process, so that a call on a batch does not
 * page-fault freshly mapped memory every time (with two threads, one shared block left the other
 * thread allocating its own, a quarter of a run's page faults: measured); a call takes the first
 * free one of SCRATCH_SLOTS blocks, and allocates its own when all are in use.  The blocks are
 * whole huge pages, advised as such: the scatter writes to 256 places at once, across ten
 * megabytes (synthetic-10m 0.917 -> 0.869 s, 1.463 -> 1.387 s of CPU).  Blocks above
 * SCRATCH_KEEP bytes are not kept. */
#define SCRATCH_KEEP ((size_t)64 << 20)
#define SCRATCH_SLOTS 8

static struct scratch_slot {
    uint8_t *buf;
    size_t size;
    PyThread_type_lock lock;
} scratch[SCRATCH_SLOTS];

static void *scratch_take(size_t bytes, int *slot) {
    for (int i = 0; i < SCRATCH_SLOTS; i++) {
        struct scratch_slot *s = &scratch[i];
        if (!PyThread_acquire_lock(s->lock, NOWAIT_LOCK)) continue;
        if (s->size < bytes) { /* with room to spare: the next batch may have a few more rows */
            const size_t grown = (bytes + bytes / 4 + HUGE_PAGE - 1) & ~(HUGE_PAGE - 1);
            free(s->buf);
            s->buf = aligned_alloc(HUGE_PAGE, grown);
            s->size = s->buf != NULL ? grown : 0;
            if (s->buf != NULL) madvise(s->buf, grown, MADV_HUGEPAGE);
        }
        if (s->buf != NULL) {
            *slot = i;
            return s->buf;
        }
        PyThread_release_lock(s->lock);
        break;
    }
    *slot = -1;
    return PyMem_RawMalloc(bytes);
}

static void scratch_give(void *p, int slot) {
    if (slot < 0) {
        PyMem_RawFree(p);
        return;
    }
    struct scratch_slot *s = &scratch[slot];
    if (s->size > SCRATCH_KEEP) {
        free(s->buf);
        s->buf = NULL;
        s->size = 0;
    }
    PyThread_release_lock(s->lock);
}

/* carve `count` items of `size` bytes off *at, 64-byte aligned */
static void *carve(uint8_t **at, size_t count, size_t size) {
    void *p = *at;
    *at += (count * size + 63) & ~(size_t)63;
    return p;
}

static size_t carve_size(size_t count, size_t size) { return (count * size + 63) & ~(size_t)63; }

/* heavy_rows' floor argument for "the k-th largest multiplicity itself" */
#define FLOOR_KTH (-2)

/* multiplicities up to HIST_CAP are tallied in a histogram; larger ones (at most n / HIST_CAP of
 * them) are listed and sorted */
#define HIST_CAP 4096

/* the inverse of mix(): x ^ x >> 33 is its own inverse, and the odd multiplier has one mod 2^64
 * (0xff51afd7ed558ccd * 0x4f74430c22a54005 = 1 mod 2^64) */
static inline uint64_t unmix(uint64_t k) {
    k ^= k >> 33;
    k *= 0x4f74430c22a54005ULL;
    k ^= k >> 33;
    return k;
}

/* The partitions' places in the scatter buffer: from their rows (counted: begin[p + 1] holds
 * partition p's), or, on a first try, each its expected share of the n rows and a quarter more
 * (distinct keys fall in partitions binomially; keys seen about ten times each spread wider, and
 * an eighth made 1M rows of 100k keys try twice: 8.1 -> 5.1 ms).  Sets begin[0..parts] and
 * *largest (the largest partition's room); returns the buffer's slots. */
static size_t lay_out(size_t *begin, size_t parts, int bits, size_t n, int counted, size_t *largest) {
    if (counted) {
        *largest = 0;
        for (size_t p = 0; p < parts; p++) {
            if (begin[p + 1] > *largest) *largest = begin[p + 1];
            begin[p + 1] += begin[p];
        }
        return n;
    }
    const size_t share = n >> bits, stride = share + share / 4 + 64;
    for (size_t p = 0; p <= parts; p++) begin[p] = p * stride;
    *largest = stride;
    return parts * stride;
}

/* a distinct key's multiplicity: into the histogram, or the list of the larger ones */
static inline void tally_multiplicity(uint32_t c, uint32_t *hist, uint32_t *big, size_t *nb) {
    if (c <= HIST_CAP) {
        hist[c]++;
    } else {
        big[(*nb)++] = c;
    }
}

/* the k-th largest multiplicity (0 when there are fewer than k), from a histogram of the
 * multiplicities up to HIST_CAP and the larger ones listed in `big` (sorted here; nb is tiny) */
static Py_ssize_t kth_largest(const uint32_t *hist, uint32_t *big, size_t nb, Py_ssize_t k) {
    for (size_t i = 1; i < nb; i++) { /* descending */
        const uint32_t c = big[i];
        size_t j = i;
        for (; j > 0 && big[j - 1] < c; j--) big[j] = big[j - 1];
        big[j] = c;
    }
    if ((size_t)k <= nb) return big[k - 1];
    size_t seen = nb;
    for (size_t c = HIST_CAP; c > 0; c--) {
        seen += hist[c];
        if (seen >= (size_t)k) return (Py_ssize_t)c;
    }
    return 0;
}

/* the largest sifting bitmap, in 64-bit words (32 KB) */
#define SIFT_WORDS_MOST 4096

/* A partition's slot of an inline string's view (two words), for heavy_views */
static inline uint64_t vk_hash(uint64_t w0, uint64_t w1) { return mix(w0 ^ (w1 * 0x9E3779B97F4A7C15ULL)); }

/* Sifting a partition of keys mostly seen once (heavy_keys' mixed keys, `width` 1, or heavy_views'
 * views, `width` 2, hashed by vk_hash): a pass that sets each key's bit in a bitmap of `words`
 * words (zero on entry and on return) lists the hashes whose bit was set already (every key seen
 * twice or more is among them, with the keys that share its bit); a second pass keeps the keys
 * whose bit a candidate has.  Returns how many keys were kept (written to `out`), or more than
 * size / 4 when too many keys repeat to gain anything.  The keys left out occur once each in the
 * partition: their bit has no candidate.  Two passes over a bitmap that stays in the first-level
 * cache cost less than a probe of the counting table a key. */
static inline __attribute__((always_inline)) size_t sift(const uint64_t *pk, size_t size, const int width, size_t words,
                                                         uint64_t *bm, uint64_t *cand, uint64_t *out) {
#define SIFT_HASH(j) (width == 1 ? pk[j] : vk_hash(pk[2 * (j)], pk[2 * (j) + 1]))
    const size_t most = size / 8, mask = words * 64 - 1;
    size_t nc = 0, j = 0;
    for (; j < size && nc <= most; j++) {
        const uint64_t h = SIFT_HASH(j), idx = h & mask, bit = (uint64_t)1 << (idx & 63), w = bm[idx >> 6];
        cand[nc] = h;
        nc += (w & bit) != 0;
        bm[idx >> 6] = w | bit;
    }
    memset(bm, 0, words * 8);
    if (nc > most) return size;
    for (size_t i = 0; i < nc; i++) bm[(cand[i] & mask) >> 6] |= (uint64_t)1 << (cand[i] & 63);
    size_t kept = 0;
    if (nc)
        for (j = 0; j < size && kept <= size / 4; j++) {
            const uint64_t idx = SIFT_HASH(j) & mask;
            out[width * kept] = pk[width * j];
            if (width == 2) out[2 * kept + 1] = pk[2 * j + 1];
            kept += (bm[idx >> 6] >> (idx & 63)) & 1;
        }
    memset(bm, 0, words * 8);
    return kept;
#undef SIFT_HASH
}

/* heavy_rows: the rows, ascending, whose mixed hash is one of the m distinct `keys` (`total` rows
 * in all), in scratch memory taken from `*slot`; NULL when out of memory.  A bitmap of 32 bits a
 * key turns most rows away before the table of the keys is probed. */
static uint32_t *select_rows(const uint64_t *hs, size_t n, const uint64_t *keys, size_t m, size_t total, int *slot) {
    size_t words = 8, cap = 16;
    while (words * 64 < 32 * m) words <<= 1;
    while (cap < 4 * m) cap <<= 1;
    uint8_t *at = scratch_take(carve_size(total, 4) + carve_size(words, 8) + carve_size(cap, 8) + carve_size(cap, 1), slot);
    if (at == NULL) return NULL;
    uint32_t *rows = carve(&at, total, 4);
    uint64_t *bm = carve(&at, words, 8), *tk = carve(&at, cap, 8);
    uint8_t *used = carve(&at, cap, 1);
    const uint64_t fmask = words * 64 - 1, tmask = cap - 1;
    memset(bm, 0, words * 8);
    memset(used, 0, cap);
    for (size_t i = 0; i < m; i++) {
        const uint64_t key = keys[i];
        uint64_t s = (key >> 32) & tmask;
        bm[(key & fmask) >> 6] |= (uint64_t)1 << (key & 63);
        while (used[s]) s = (s + 1) & tmask;
        used[s] = 1;
        tk[s] = key;
    }
    size_t r = 0;
    for (size_t i = 0; i < n; i++) {
        const uint64_t key = mix(hs[i]), idx = key & fmask;
        if (!((bm[idx >> 6] >> (idx & 63)) & 1)) continue;
        uint64_t s = (key >> 32) & tmask;
        while (used[s] && tk[s] != key) s = (s + 1) & tmask;
        if (used[s]) rows[r++] = (uint32_t)i;
    }
    return rows;
}

/* heavy_rows (rows = 1) and heavy_keys (rows = 0), specialised by the compiler for each */
static inline __attribute__((always_inline)) PyObject *heavy(PyObject *args, const int rows_wanted) {
    PyObject *h_obj;
    Py_ssize_t k, floor = FLOOR_KTH;
    Py_buffer h;
    if (!(rows_wanted ? PyArg_ParseTuple(args, "Onn", &h_obj, &k, &floor) : PyArg_ParseTuple(args, "On", &h_obj, &k)))
        return NULL;
    if (k < 1) {
        PyErr_SetString(PyExc_ValueError, "k must be at least 1");
        return NULL;
    }
    if (floor == 0 || floor < FLOOR_KTH) { /* keys seen once are not counted one by one */
        PyErr_SetString(PyExc_ValueError, "floor must be at least 1, or -1 or -2");
        return NULL;
    }
    if (get_buffer(h_obj, &h, 0, 8, rows_wanted ? "hashes (uint64)" : "keys (uint64)") < 0) return NULL;
    const size_t n = (size_t)(h.len / 8);
    if (n >= UINT32_MAX) {
        PyErr_SetString(PyExc_ValueError, "at most 2^32 - 1 rows");
        PyBuffer_Release(&h);
        return NULL;
    }
    const uint64_t *hs = (const uint64_t *)h.buf;
    /* Radix-partition the rows by the top bits of their mixed hash, so that each partition is
     * counted in a small table that stays in cache: parts of about 2048 rows, at most 256 parts
     * (more would scatter to more places than the caches follow; measured). */
    int bits = 0;
    while (bits < 8 && ((size_t)1 << bits) * 2048 < n) bits++;
    const size_t parts = (size_t)1 << bits, nbig = n / (HIST_CAP + 1) + 1;
    const size_t nheavy = n / 2 + 1; /* keys seen at least twice, heavy_keys' candidates */
    const int shift = 64 - bits;
    size_t *begin = PyMem_RawMalloc((2 * parts + 1) * sizeof(size_t)), *end = begin + parts + 1;
    if (begin == NULL) {
        PyBuffer_Release(&h);
        return PyErr_NoMemory();
    }
    Py_ssize_t kth = 0, m = 0;
    int slot = -1, no_memory = 0;
    uint8_t *block = NULL;
    uint32_t *prows = NULL;
    size_t total = 0; /* heavy_rows: the rows of the keys kept */
    int sel_slot = -1;
    uint64_t *hkeys = NULL;
    uint32_t *hcounts = NULL;
    Py_BEGIN_ALLOW_THREADS
    /* First try: one scatter pass, each partition given its expected share of the rows and a margin
     * (lay_out; no pass to count them first: 5.8 -> 4.6 ms on 1M distinct keys, measured).  A
     * partition that fills up (many equal keys) makes a second try that counts the partitions' rows
     * first. */
    for (int counted = bits == 0;; counted = 1) {
        size_t largest = 0;
        if (counted) {
            memset(begin, 0, (parts + 1) * sizeof(size_t));
            for (size_t i = 0; i < n; i++) begin[bits ? (mix(hs[i]) >> shift) + 1 : 1]++;
        }
        const size_t slots = lay_out(begin, parts, bits, n, counted, &largest);
        size_t cap = 16;
        while (cap < 8 * largest) cap <<= 1;
        const size_t rows = slots ? slots : 1, some = largest ? largest : 1;
        const size_t bytes = carve_size(rows, 8) + carve_size(HIST_CAP + 1, 4) + carve_size(nbig, 4) +
                             carve_size(cap, 8) + carve_size(cap, 4) + carve_size(some, 4) + carve_size(nheavy, 8) +
                             carve_size(nheavy, 4) + carve_size(SIFT_WORDS_MOST, 8) + carve_size(some / 8 + 1, 8) +
                             carve_size(some / 4 + 1, 8);
        uint8_t *at = block = scratch_take(bytes, &slot);
        if (block == NULL) {
            no_memory = 1;
            break;
        }
        uint64_t *pkeys = carve(&at, rows, 8);
        uint32_t *hist = carve(&at, HIST_CAP + 1, 4);
        uint32_t *big = carve(&at, nbig, 4);
        uint64_t *keys = carve(&at, cap, 8);
        uint32_t *counts = carve(&at, cap, 4);
        uint32_t *fresh = carve(&at, some, 4);
        /* the (mixed) keys seen at least twice, and their multiplicities */
        hkeys = carve(&at, nheavy, 8);
        hcounts = carve(&at, nheavy, 4);
        /* sifting: a bitmap of 16 bits a key, candidates and the keys left */
        size_t bits_words = 64;
        while (bits_words * 64 < 16 * some && bits_words < SIFT_WORDS_MOST) bits_words <<= 1;
        uint64_t *bits_at = carve(&at, bits_words, 8);
        uint64_t *cand = carve(&at, some / 8 + 1, 8);
        uint64_t *sifted = carve(&at, some / 4 + 1, 8);
        memcpy(end, begin, parts * sizeof(size_t)); /* scatter: end[p] moves to the end of partition p */
        int full = 0;
        for (size_t i = 0; i < n; i++) {
            const uint64_t key = mix(hs[i]);
            const size_t p = bits ? key >> shift : 0, pos = end[p]++;
            if (!counted && pos == begin[p + 1]) {
                full = 1;
                break;
            }
            pkeys[pos] = key;
        }
        if (full) {
            scratch_give(block, slot);
            continue;
        }
        memset(hist, 0, (HIST_CAP + 1) * sizeof(uint32_t));
        memset(counts, 0, cap * sizeof(uint32_t));
        memset(bits_at, 0, bits_words * 8);
        size_t nb = 0;
        int sifting = 1; /* sift out the keys seen once while that pays */
        for (size_t p = 0; p < parts; p++) {
            const size_t lo = begin[p];
            size_t size = end[p] - lo;
            const uint64_t *pk = pkeys + lo;
            if (sifting && size >= 256) {
                const size_t left = sift(pk, size, 1, bits_words, bits_at, cand, sifted);
                if (left <= size / 4) {
                    hist[1] += (uint32_t)(size - left);
                    pk = sifted;
                    size = left;
                } else {
                    sifting = 0; /* many keys repeat: count the remaining parts directly */
                }
            }
            size_t pcap = 16, d = 0;
            while (pcap < 8 * size) pcap <<= 1;
            const size_t mask = pcap - 1;
            for (size_t j = 0; j < size; j++) {
                const uint64_t key = pk[j];
                size_t s = (size_t)key & mask;
                while (counts[s] != 0 && keys[s] != key) s = (s + 1) & mask;
                if (counts[s] == 0) {
                    keys[s] = key;
                    fresh[d++] = (uint32_t)s;
                }
                counts[s]++;
            }
            for (size_t i = 0; i < d; i++) { /* tally, and leave the table empty for the next part */
                const uint32_t c = counts[fresh[i]];
                counts[fresh[i]] = 0;
                if (c > 1) {
                    hkeys[m] = keys[fresh[i]];
                    hcounts[m++] = c;
                }
                tally_multiplicity(c, hist, big, &nb);
            }
        }
        kth = kth_largest(hist, big, nb, k);
        if (floor == FLOOR_KTH) {
            floor = kth ? kth : (Py_ssize_t)n; /* nothing when fewer than k distinct hashes */
        } else if (floor < 0) {
            floor = kth > 2 ? kth - 1 : 1;
        }
        size_t kept = 0; /* the keys to keep, written over the candidates */
        for (Py_ssize_t i = 0; i < m; i++) {
            hkeys[kept] = rows_wanted ? hkeys[i] : unmix(hkeys[i]);
            hcounts[kept] = hcounts[i];
            total += hcounts[i] > (uint64_t)floor ? hcounts[i] : 0;
            kept += hcounts[i] > (uint64_t)floor;
        }
        m = (Py_ssize_t)kept;
        if (rows_wanted && total && total <= n / 2) {
            prows = select_rows(hs, n, hkeys, kept, total, &sel_slot);
            no_memory = prows == NULL;
        }
        break;
    }
    Py_END_ALLOW_THREADS
    PyMem_RawFree(begin);
    PyObject *result = no_memory ? PyErr_NoMemory()
        : rows_wanted
        ? (total > n / 2 ? Py_BuildValue("(nnO)", kth, floor, Py_None)
                         : Py_BuildValue("(nny#)", kth, floor, prows ? (const char *)prows : "",
                                         (Py_ssize_t)(total * sizeof(uint32_t))))
        : Py_BuildValue("(ny#y#)", kth, (const char *)hkeys, (Py_ssize_t)(m * sizeof(uint64_t)),
                        (const char *)hcounts, (Py_ssize_t)(m * sizeof(uint32_t)));
    if (block != NULL) scratch_give(block, slot);
    if (prows != NULL) scratch_give(prows, sel_slot);
    PyBuffer_Release(&h);
    return result;
}

static PyObject *py_heavy_rows(PyObject *self, PyObject *args) { return heavy(args, 1); }

static PyObject *py_heavy_keys(PyObject *self, PyObject *args) { return heavy(args, 0); }

/* ---- exact counts of string views ------------------------------------------------------- */

#define MAX_COUNT_LIMIT (1 << 22)

typedef struct {
    const uint8_t *ptr; /* the string's bytes */
    uint32_t len;
} str_ref;

/* Resolve a view to its bytes; -1 if it points outside the data buffers. */
static inline int view_bytes(const uint8_t *v, const Py_buffer *bufs, Py_ssize_t nbufs, str_ref *out) {
    int32_t len;
    memcpy(&len, v, 4);
    if (len < 0) return -1;
    out->len = (uint32_t)len;
    if (len <= 12) {
        out->ptr = v + 4;
        return 0;
    }
    int32_t bi, off;
    memcpy(&bi, v + 8, 4);
    memcpy(&off, v + 12, 4);
    if (bi < 0 || bi >= nbufs || off < 0 || (int64_t)off + len > (int64_t)bufs[bi].len) return -1;
    out->ptr = (const uint8_t *)bufs[bi].buf + off;
    return 0;
}

/* the hash of an inline string (at most 12 bytes, zero-padded): its 16-byte view as two words */
static inline uint64_t view_hash(uint64_t w0, uint64_t w1) { return mix((w0 ^ mix(w1)) * 0x9E3779B97F4A7C15ULL); }

static inline uint64_t bytes_hash(const uint8_t *p, uint32_t len) {
    uint64_t h = 0x9E3779B97F4A7C15ULL ^ len;
    uint32_t i = 0;
    for (; i + 8 <= len; i += 8) {
        uint64_t w;
        memcpy(&w, p + i, 8);
        h = mix((h ^ w) * 0xff51afd7ed558ccdULL);
    }
    uint64_t w = 0;
    memcpy(&w, p + i, len - i);
    return mix((h ^ w) * 0xc4ceb9fe1a85ec53ULL);
}

/* A string-view column: its 16-byte views and its data buffers, held for a call. */
typedef struct {
    Py_buffer v, *bufs;
    Py_ssize_t n, nbufs, got;
    PyObject *seq;
} views_t;

static void views_release(views_t *c) {
    if (c->v.obj != NULL) PyBuffer_Release(&c->v);
    for (Py_ssize_t j = 0; j < c->got; j++) PyBuffer_Release(&c->bufs[j]);
    PyMem_Free(c->bufs);
    Py_XDECREF(c->seq);
}

/* 0, or -1 with a Python error set (and nothing held) */
static int views_get(views_t *c, PyObject *v_obj, PyObject *d_obj) {
    memset(c, 0, sizeof(*c));
    c->seq = PySequence_Fast(d_obj, "data must be a list of buffers");
    if (c->seq == NULL) return -1;
    c->nbufs = PySequence_Fast_GET_SIZE(c->seq);
    c->bufs = PyMem_Calloc(c->nbufs ? c->nbufs : 1, sizeof(Py_buffer));
    if (c->bufs == NULL) {
        PyErr_NoMemory();
        views_release(c);
        return -1;
    }
    for (; c->got < c->nbufs; c->got++) {
        if (PyObject_GetBuffer(PySequence_Fast_GET_ITEM(c->seq, c->got), &c->bufs[c->got], PyBUF_SIMPLE) < 0) {
            views_release(c);
            return -1;
        }
    }
    if (get_buffer(v_obj, &c->v, 0, 1, "views (uint8)") < 0) {
        c->v.obj = NULL;
        views_release(c);
        return -1;
    }
    c->n = c->v.len / 16;
    if (c->v.len % 16 != 0 || c->n >= (Py_ssize_t)UINT32_MAX) {
        PyErr_SetString(PyExc_ValueError, "views: expected 16 bytes a row, below 2^32 rows");
        views_release(c);
        return -1;
    }
    return 0;
}

/* ---- string views through the Arrow C stream interface ---------------------------------- */

/* The structures of the Arrow C data and stream interfaces (an ABI: Arrow's specification) */
struct ArrowSchema {
    const char *format, *name, *metadata;
    int64_t flags, n_children;
    struct ArrowSchema **children, *dictionary;
    void (*release)(struct ArrowSchema *);
    void *private_data;
};

struct ArrowArray {
    int64_t length, null_count, offset, n_buffers, n_children;
    const void **buffers;
    struct ArrowArray **children, *dictionary;
    void (*release)(struct ArrowArray *);
    void *private_data;
};

struct ArrowArrayStream {
    int (*get_schema)(struct ArrowArrayStream *, struct ArrowSchema *);
    int (*get_next)(struct ArrowArrayStream *, struct ArrowArray *);
    const char *(*get_last_error)(struct ArrowArrayStream *);
    void (*release)(struct ArrowArrayStream *);
    void *private_data;
};

static void array_capsule_free(PyObject *capsule) {
    struct ArrowArray *a = PyCapsule_GetPointer(capsule, "truthound_sketch.arrow_array");
    if (a == NULL) {
        PyErr_Clear();
        return;
    }
    if (a->release != NULL) a->release(a);
    PyMem_RawFree(a);
}

static PyObject *stream_error(struct ArrowArrayStream *st, int code) {
    const char *why = st->get_last_error != NULL ? st->get_last_error(st) : NULL;
    PyErr_Format(PyExc_ValueError, "Arrow stream: error %d%s%s", code, why ? ": " : "", why ? why : "");
    return NULL;
}

/* One chunk of a string-view array: (views, data, owner), or NULL with an error set; `a` is handed
 * to the owner (a capsule that releases it), which the memoryviews need alive. */
static PyObject *view_chunk(struct ArrowArray *a) {
    if (a->n_buffers < 3 || a->length < 0 || a->offset < 0 || a->length > (INT64_MAX / 16) - a->offset ||
        (a->length > 0 && a->buffers[1] == NULL) || (a->n_buffers > 3 && a->buffers[a->n_buffers - 1] == NULL)) {
        a->release(a);
        PyMem_RawFree(a);
        PyErr_SetString(PyExc_ValueError, "Arrow stream: a malformed string-view array");
        return NULL;
    }
    PyObject *owner = PyCapsule_New(a, "truthound_sketch.arrow_array", array_capsule_free);
    if (owner == NULL) {
        a->release(a);
        PyMem_RawFree(a);
        return NULL;
    }
    const Py_ssize_t ndata = (Py_ssize_t)a->n_buffers - 3;
    const int64_t *sizes = ndata ? (const int64_t *)a->buffers[a->n_buffers - 1] : NULL;
    PyObject *data = PyList_New(ndata), *views = NULL;
    for (Py_ssize_t i = 0; data != NULL && i < ndata; i++) {
        const char *buf = a->buffers[2 + i];
        if (sizes[i] < 0 || (buf == NULL && sizes[i] > 0)) {
            PyErr_SetString(PyExc_ValueError, "Arrow stream: a malformed string-view data buffer");
            Py_CLEAR(data);
            break;
        }
        PyObject *mv = PyMemoryView_FromMemory(buf != NULL ? (char *)buf : (char *)"", (Py_ssize_t)sizes[i], PyBUF_READ);
        if (mv == NULL) {
            Py_CLEAR(data);
            break;
        }
        PyList_SET_ITEM(data, i, mv);
    }
    if (data != NULL) {
        const char *v = a->length ? (const char *)a->buffers[1] + 16 * a->offset : "";
        views = PyMemoryView_FromMemory((char *)v, (Py_ssize_t)(16 * a->length), PyBUF_READ);
    }
    PyObject *out = views != NULL ? PyTuple_Pack(3, views, data, owner) : NULL;
    Py_XDECREF(views);
    Py_XDECREF(data);
    Py_DECREF(owner);
    return out;
}

/* view_chunks(stream) -> [(views, data, owner)...] or None */
static PyObject *py_view_chunks(PyObject *self, PyObject *capsule) {
    struct ArrowArrayStream *given = PyCapsule_GetPointer(capsule, "arrow_array_stream");
    if (given == NULL) return NULL;
    if (given->release == NULL) {
        PyErr_SetString(PyExc_ValueError, "Arrow stream: already consumed");
        return NULL;
    }
    struct ArrowArrayStream st = *given; /* moved out: the capsule no longer releases it */
    given->release = NULL;
    struct ArrowSchema schema;
    int code = st.get_schema(&st, &schema);
    if (code != 0) {
        stream_error(&st, code);
        st.release(&st);
        return NULL;
    }
    const int views = schema.format != NULL && (strcmp(schema.format, "vu") == 0 || strcmp(schema.format, "vz") == 0);
    if (schema.release != NULL) schema.release(&schema);
    if (!views) {
        st.release(&st);
        Py_RETURN_NONE;
    }
    PyObject *chunks = PyList_New(0);
    while (chunks != NULL) {
        struct ArrowArray *a = PyMem_RawMalloc(sizeof *a);
        if (a == NULL) {
            PyErr_NoMemory();
            Py_CLEAR(chunks);
            break;
        }
        code = st.get_next(&st, a);
        if (code != 0 || a->release == NULL) { /* an error, or the end of the stream */
            PyMem_RawFree(a);
            if (code != 0) {
                stream_error(&st, code);
                Py_CLEAR(chunks);
            }
            break;
        }
        if (a->null_count != 0) { /* callers pass columns without nulls */
            a->release(a);
            PyMem_RawFree(a);
            Py_CLEAR(chunks);
            PyErr_SetString(PyExc_ValueError, "Arrow stream: string views with nulls");
            break;
        }
        PyObject *chunk = view_chunk(a);
        if (chunk == NULL || PyList_Append(chunks, chunk) < 0) Py_CLEAR(chunks);
        Py_XDECREF(chunk);
    }
    st.release(&st);
    return chunks;
}

/* Long strings decoded from a parquet dictionary share their views (the same buffer and offset
 * for the same dictionary entry): count_views keeps up to VIEW_CACHE / 2 views of long strings
 * with their distinct ids, so that a repeated view is counted without hashing its bytes. */
#define VIEW_CACHE 4096

typedef struct {
    uint64_t w0, w1;
    uint32_t id; /* distinct id + 1; 0: empty */
} view_slot;

static PyObject *py_count_views(PyObject *self, PyObject *args) {
    PyObject *v_obj, *d_obj;
    Py_ssize_t limit;
    if (!PyArg_ParseTuple(args, "OOn", &v_obj, &d_obj, &limit)) return NULL;
    if (limit < 1 || limit > MAX_COUNT_LIMIT) {
        PyErr_Format(PyExc_ValueError, "limit must be in [1, %d], got %zd", MAX_COUNT_LIMIT, limit);
        return NULL;
    }
    views_t col;
    if (views_get(&col, v_obj, d_obj) < 0) return NULL;
    const Py_ssize_t n = col.n, nbufs = col.nbufs;
    const Py_buffer *bufs = col.bufs;
    PyObject *result = NULL;
    /* The table holds distinct ids + 1 (0: empty) and doubles whenever it is half full, so a
     * batch of few distinct strings touches little memory. */
    const size_t most = (size_t)(limit < n ? limit : (n ? n : 1));
    size_t top = 64;
    while (top < 2 * most) top <<= 1;
    int slot;
    uint8_t *block = scratch_take(carve_size(top, 4) + carve_size(most, 8) * 2 + carve_size(most, 4) +
                                  carve_size(VIEW_CACHE, sizeof(view_slot)), &slot);
    uint8_t *at = block;
    if (block == NULL) {
        PyErr_NoMemory();
    } else {
        uint32_t *table = carve(&at, top, 4);
        uint64_t *hashes = carve(&at, most, 8); /* by distinct id */
        uint64_t *counts = carve(&at, most, 8);
        uint32_t *firsts = carve(&at, most, 4);
        view_slot *cache = carve(&at, VIEW_CACHE, sizeof(view_slot));
        const uint8_t *views = (const uint8_t *)col.v.buf;
        size_t cap = 64, mask = cap - 1, cached = 0, hits = 0;
        Py_ssize_t distinct = 0, bad = -1;
        int over = 0, caching = 1;
        Py_BEGIN_ALLOW_THREADS
        memset(table, 0, cap * sizeof(uint32_t));
        memset(cache, 0, VIEW_CACHE * sizeof(view_slot));
        for (Py_ssize_t i = 0; i < n; i++) {
            const uint8_t *vi = views + 16 * i;
            uint64_t w0, w1, h;
            memcpy(&w0, vi, 8);
            memcpy(&w1, vi + 8, 8);
            size_t c = 0;
            if (caching && (int32_t)w0 > 12) { /* a long string: its view seen before? */
                c = (size_t)mix(w1 ^ mix(w0)) & (VIEW_CACHE - 1);
                while (cache[c].id != 0 && (cache[c].w0 != w0 || cache[c].w1 != w1)) c = (c + 1) & (VIEW_CACHE - 1);
                if (cache[c].id != 0) {
                    counts[cache[c].id - 1]++;
                    hits++;
                    continue;
                }
            }
            str_ref a;
            if (view_bytes(vi, bufs, nbufs, &a) < 0) {
                bad = i;
                break;
            }
            h = a.len <= 12 ? view_hash(w0, w1) : bytes_hash(a.ptr, a.len);
            uint32_t got = 0; /* the string's distinct id + 1 */
            size_t s = (size_t)h & mask;
            for (;;) {
                const uint32_t id = table[s];
                if (id == 0) {
                    if (distinct == limit) {
                        over = 1;
                        break;
                    }
                    hashes[distinct] = h;
                    firsts[distinct] = (uint32_t)i;
                    counts[distinct++] = 1;
                    table[s] = got = (uint32_t)distinct;
                    if ((size_t)distinct * 2 > cap) { /* grow: re-insert the distinct ids */
                        cap *= 2;
                        mask = cap - 1;
                        memset(table, 0, cap * sizeof(uint32_t));
                        for (Py_ssize_t d = 0; d < distinct; d++) {
                            size_t t = (size_t)hashes[d] & mask;
                            while (table[t] != 0) t = (t + 1) & mask;
                            table[t] = (uint32_t)d + 1;
                        }
                    }
                    break;
                }
                if (hashes[id - 1] == h) {
                    const uint8_t *vr = views + 16 * (size_t)firsts[id - 1];
                    int same;
                    if (a.len <= 12) {
                        same = memcmp(vi, vr, 16) == 0;
                    } else {
                        str_ref b = {NULL, 0};
                        view_bytes(vr, bufs, nbufs, &b); /* checked when it was first seen */
                        same = b.len == a.len && memcmp(a.ptr, b.ptr, a.len) == 0;
                    }
                    if (same) {
                        counts[id - 1]++;
                        got = id;
                        break;
                    }
                }
                s = (s + 1) & mask;
            }
            if (over) break;
            if (caching && a.len > 12) {
                if (cached < VIEW_CACHE / 2) {
                    cache[c] = (view_slot){w0, w1, got};
                    cached++;
                } else if (hits < cached) { /* views are rarely repeated here: stop looking */
                    caching = 0;
                }
            }
        }
        Py_END_ALLOW_THREADS
        if (bad >= 0) {
            PyErr_Format(PyExc_ValueError, "views: row %zd points outside the %zd data buffers", bad, nbufs);
        } else if (over) {
            result = Py_NewRef(Py_None);
        } else {
            result = Py_BuildValue("(y#y#)", (const char *)firsts, (Py_ssize_t)(distinct * sizeof(uint32_t)),
                                   (const char *)counts, (Py_ssize_t)(distinct * sizeof(uint64_t)));
        }
        scratch_give(block, slot);
    }
    views_release(&col);
    return result;
}

/* -1, 0 or 1 as a < b, a == b, a > b in byte order (a shorter string first on a common prefix);
 * the views' 4-byte prefixes decide most pairs */
static inline int str_cmp(const uint8_t *va, const str_ref *a, const uint8_t *vb, const str_ref *b) {
    if (a->len <= 12 && b->len <= 12) { /* both inline, zero-padded: 12 bytes as two words, then the lengths */
        uint64_t xa, xb;
        uint32_t ya, yb;
        memcpy(&xa, va + 4, 8);
        memcpy(&xb, vb + 4, 8);
        if (xa != xb) return __builtin_bswap64(xa) < __builtin_bswap64(xb) ? -1 : 1;
        memcpy(&ya, va + 12, 4);
        memcpy(&yb, vb + 12, 4);
        if (ya != yb) return __builtin_bswap32(ya) < __builtin_bswap32(yb) ? -1 : 1;
        return a->len < b->len ? -1 : a->len > b->len;
    }
    uint32_t pa, pb;
    memcpy(&pa, va + 4, 4);
    memcpy(&pb, vb + 4, 4);
    if (pa != pb) return __builtin_bswap32(pa) < __builtin_bswap32(pb) ? -1 : 1;
    const uint32_t m = a->len < b->len ? a->len : b->len;
    const int c = memcmp(a->ptr, b->ptr, m);
    if (c != 0) return c < 0 ? -1 : 1;
    return a->len < b->len ? -1 : a->len > b->len;
}

static inline uint32_t utf8_chars(const uint8_t *p, uint32_t len) {
    uint32_t cont = 0, i = 0;
    for (; i + 8 <= len; i += 8) {
        uint64_t w;
        memcpy(&w, p + i, 8);
        if (w & 0x8080808080808080ULL) { /* count the continuation bytes 10xxxxxx */
            const uint64_t hi = w & 0x8080808080808080ULL, not6 = ~w & 0x4040404040404040ULL;
            cont += (uint32_t)__builtin_popcountll(hi & (not6 << 1));
        }
    }
    for (; i < len; i++) cont += (p[i] & 0xC0) == 0x80;
    return len - cont;
}

/* whether no byte of a column's data buffers is above 0x7f (string_stats checks the strings
 * inlined in views as it reads them) */
static int buffers_ascii(const views_t *c) {
    uint64_t any = 0;
    for (Py_ssize_t b = 0; b < c->nbufs; b++) {
        const uint8_t *p = (const uint8_t *)c->bufs[b].buf;
        const Py_ssize_t len = c->bufs[b].len;
        Py_ssize_t i = 0;
        for (; i + 8 <= len; i += 8) {
            uint64_t w;
            memcpy(&w, p + i, 8);
            any |= w;
        }
        for (; i < len; i++) any |= p[i];
    }
    return (any & 0x8080808080808080ULL) == 0;
}

/* string_stats counts lengths below this in a histogram; longer ones are listed */
#define LENGTH_HIST 4096

/* a histogram of lengths; a run of equal lengths is counted in a register (incrementing the same
 * slot row after row waits on its last store: 4.2 -> 3.5 ms per 1M strings, measured) */
typedef struct {
    uint64_t *hist;
    size_t run_len, run, top, nlong;
} length_tally;

static inline void tally(length_tally *t, size_t len) {
    if (len == t->run_len) {
        t->run++;
    } else if (len < LENGTH_HIST) {
        t->hist[t->run_len] += t->run;
        t->run_len = len;
        t->run = 1;
        t->top = len > t->top ? len : t->top;
    } else {
        t->nlong++;
    }
}

static PyObject *py_string_stats(PyObject *self, PyObject *args) {
    PyObject *v_obj, *d_obj;
    if (!PyArg_ParseTuple(args, "OO", &v_obj, &d_obj)) return NULL;
    views_t col;
    if (views_get(&col, v_obj, d_obj) < 0) return NULL;
    const Py_ssize_t n = col.n;
    if (n == 0) {
        PyErr_SetString(PyExc_ValueError, "views: no rows");
        views_release(&col);
        return NULL;
    }
    uint64_t *hist = PyMem_RawCalloc(LENGTH_HIST, sizeof(uint64_t));
    if (hist == NULL) {
        views_release(&col);
        return PyErr_NoMemory();
    }
    const uint8_t *views = (const uint8_t *)col.v.buf;
    Py_ssize_t lo = 0, hi = 0, bad = -1, top = 0, nlong = 0;
    int ascii;
    Py_BEGIN_ALLOW_THREADS
    /* one pass: the range, and the lengths in bytes, which are the lengths in characters when no
     * byte is above 0x7f (the inline strings are checked here, the data buffers after); otherwise
     * the lengths are counted again (a pass over the views is about 1.5 ms per 1M rows) */
    str_ref smin, smax;
    if (view_bytes(views, col.bufs, col.nbufs, &smin) < 0) bad = 0;
    smax = smin;
    uint64_t high = 0;
    length_tally t = {hist, 0, 0, 0, 0};
    for (Py_ssize_t i = 0; i < n && bad < 0; i++) {
        const uint8_t *vi = views + 16 * i;
        str_ref a;
        if (view_bytes(vi, col.bufs, col.nbufs, &a) < 0) {
            bad = i;
            break;
        }
        uint64_t w0, w1;
        memcpy(&w0, vi, 8);
        memcpy(&w1, vi + 8, 8);
        high |= ((w0 >> 32) | w1) & -(uint64_t)(a.len <= 12); /* an inline string's bytes */
        tally(&t, a.len);
        if (str_cmp(vi, &a, views + 16 * lo, &smin) < 0) {
            lo = i;
            smin = a;
        } else if (str_cmp(vi, &a, views + 16 * hi, &smax) > 0) {
            hi = i;
            smax = a;
        }
    }
    ascii = (high & 0x8080808080808080ULL) == 0 && buffers_ascii(&col);
    if (bad < 0 && !ascii) {
        memset(hist, 0, LENGTH_HIST * sizeof(uint64_t));
        t = (length_tally){hist, 0, 0, 0, 0};
        for (Py_ssize_t i = 0; i < n; i++) {
            str_ref a = {0};
            view_bytes(views + 16 * i, col.bufs, col.nbufs, &a); /* checked above */
            tally(&t, utf8_chars(a.ptr, a.len));
        }
    }
    hist[t.run_len] += t.run;
    top = (Py_ssize_t)t.top;
    nlong = (Py_ssize_t)t.nlong;
    Py_END_ALLOW_THREADS
    PyObject *result = NULL, *longer = NULL;
    if (bad >= 0) {
        PyErr_Format(PyExc_ValueError, "views: row %zd points outside the %zd data buffers", bad, col.nbufs);
    } else if ((longer = PyBytes_FromStringAndSize(NULL, nlong * (Py_ssize_t)sizeof(uint32_t))) != NULL) {
        uint32_t *out = (uint32_t *)PyBytes_AS_STRING(longer);
        if (nlong) { /* the rows were checked above */
            Py_BEGIN_ALLOW_THREADS
            for (Py_ssize_t i = 0, m = 0; i < n && m < nlong; i++) {
                str_ref a;
                if (view_bytes(views + 16 * i, col.bufs, col.nbufs, &a) < 0) continue;
                const size_t len = ascii ? a.len : utf8_chars(a.ptr, a.len);
                if (len >= LENGTH_HIST) out[m++] = (uint32_t)len;
            }
            Py_END_ALLOW_THREADS
        }
        result = Py_BuildValue("(nny#N)", lo, hi, (const char *)hist, (top + 1) * (Py_ssize_t)sizeof(uint64_t), longer);
    }
    PyMem_RawFree(hist);
    views_release(&col);
    return result;
}

/* ---- histograms of narrow-range integers ---------------------------------------------------- */

#define DENSE_LOOP(T)                                                                               \
    do {                                                                                            \
        const T *a = (const T *)v.buf;                                                              \
        T mn = a[0], mx = a[0];                                                                     \
        for (Py_ssize_t i = 1; i < n; i++) {                                                        \
            mn = a[i] < mn ? a[i] : mn;                                                             \
            mx = a[i] > mx ? a[i] : mx;                                                             \
        }                                                                                           \
        lo = (int64_t)mn;                                                                           \
        span = (uint64_t)(int64_t)mx - (uint64_t)(int64_t)mn + 1; /* 0: all 2^64 values */          \
        if (span != 0 && span <= (uint64_t)limit) {                                                 \
            hist = PyMem_RawCalloc((size_t)span, sizeof(uint64_t));                                 \
            if (hist != NULL)                                                                       \
                for (Py_ssize_t i = 0; i < n; i++) hist[(uint64_t)((int64_t)a[i] - lo)]++;          \
        }                                                                                           \
    } while (0)

static PyObject *py_dense_counts(PyObject *self, PyObject *args) {
    PyObject *v_obj;
    Py_ssize_t limit;
    Py_buffer v;
    if (!PyArg_ParseTuple(args, "On", &v_obj, &limit)) return NULL;
    if (limit < 1 || limit > MAX_COUNT_LIMIT) {
        PyErr_Format(PyExc_ValueError, "limit must be in [1, %d], got %zd", MAX_COUNT_LIMIT, limit);
        return NULL;
    }
    if (PyObject_GetBuffer(v_obj, &v, PyBUF_C_CONTIGUOUS | PyBUF_FORMAT) < 0) return NULL;
    const char *f = v.format ? v.format : "B";
    if (*f == '<' || *f == '=' || *f == '@') f++;
    const char fmt = *f;
    const Py_ssize_t n = v.itemsize ? v.len / v.itemsize : 0;
    if (strchr("qlihbIHB", fmt) == NULL || f[1] != '\0' || (fmt == 'l' && v.itemsize != 8)) {
        PyErr_Format(PyExc_ValueError, "values: expected signed integers or unsigned ones below 2^32, got format %s", v.format);
        PyBuffer_Release(&v);
        return NULL;
    }
    if (n == 0) {
        PyBuffer_Release(&v);
        return Py_NewRef(Py_None);
    }
    int64_t lo = 0;
    uint64_t span = 0, *hist = NULL;
    Py_BEGIN_ALLOW_THREADS
    switch (fmt) {
    case 'q': case 'l': DENSE_LOOP(int64_t); break;
    case 'i': DENSE_LOOP(int32_t); break;
    case 'I': DENSE_LOOP(uint32_t); break;
    case 'h': DENSE_LOOP(int16_t); break;
    case 'H': DENSE_LOOP(uint16_t); break;
    case 'b': DENSE_LOOP(int8_t); break;
    default: DENSE_LOOP(uint8_t); break;
    }
    Py_END_ALLOW_THREADS
    PyObject *result;
    if (span == 0 || span > (uint64_t)limit) {
        result = Py_NewRef(Py_None);
    } else if (hist == NULL) {
        result = PyErr_NoMemory();
    } else {
        result = Py_BuildValue("(Ly#)", (long long)lo, (const char *)hist, (Py_ssize_t)(span * sizeof(uint64_t)));
    }
    PyMem_RawFree(hist);
    PyBuffer_Release(&v);
    return result;
}

/* ---- frequent short strings, counted by their views ------------------------------------ */

/* a slot of heavy_views' counting table: a view (two words) and its count */
typedef struct {
    uint64_t w0, w1;
    uint32_t count;
} views_slot;

/* heavy_views(chunks, k) -> (kth, strings, counts) or None.
 *
 * heavy_keys for a string column whose strings are all inline (at most 12 bytes): an inline
 * string's 16-byte view is the string itself (its length and its zero-padded bytes), so the views
 * are counted exactly, as 128-bit keys, with no hash to verify and no rows to gather afterwards.
 * chunks: the 16-byte views (uint8 buffers) of the column's chunks, without nulls.  kth: the k-th
 * largest count (0 when there are fewer than k distinct strings); strings: the strings counted
 * more than kth times (a list of str); counts: their counts (uint32 bytes).  None as soon as a
 * string is longer than 12 bytes.  The views are radix-partitioned as heavy_keys' keys are (one
 * scatter pass with a margin, or a counting pass first when a partition fills up), strings seen
 * once are sifted out of each partition as heavy_keys' keys are, and the rest of a partition is
 * counted in a table of eight slots a string, or a distinct string of the last part. */
static PyObject *py_heavy_views(PyObject *self, PyObject *args) {
    PyObject *chunks_obj;
    Py_ssize_t k;
    if (!PyArg_ParseTuple(args, "On", &chunks_obj, &k)) return NULL;
    if (k < 1) {
        PyErr_SetString(PyExc_ValueError, "k must be at least 1");
        return NULL;
    }
    PyObject *seq = PySequence_Fast(chunks_obj, "chunks: expected a sequence of view buffers");
    if (seq == NULL) return NULL;
    const Py_ssize_t nch = PySequence_Fast_GET_SIZE(seq);
    Py_buffer *bufs = PyMem_RawCalloc(nch ? (size_t)nch : 1, sizeof(Py_buffer));
    size_t *begin = PyMem_RawMalloc((2 * 256 + 1) * sizeof(size_t)), *end = begin + 256 + 1;
    Py_ssize_t got = 0;
    size_t n = 0;
    PyObject *result = NULL;
    if (bufs == NULL || begin == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    for (; got < nch; got++) {
        if (get_buffer(PySequence_Fast_GET_ITEM(seq, got), &bufs[got], 0, 1, "views (uint8)") < 0) goto done;
        if (bufs[got].len % 16 != 0) {
            PyBuffer_Release(&bufs[got]);
            PyErr_SetString(PyExc_ValueError, "views: expected 16 bytes a row");
            goto done;
        }
        n += (size_t)(bufs[got].len / 16);
    }
    if (n >= UINT32_MAX) {
        PyErr_SetString(PyExc_ValueError, "at most 2^32 - 1 rows");
        goto done;
    }
    int bits = 0;
    while (bits < 8 && ((size_t)1 << bits) * 2048 < n) bits++;
    const size_t parts = (size_t)1 << bits, nbig = n / (HIST_CAP + 1) + 1, nheavy = n / 2 + 1;
    const int shift = 64 - bits;
    Py_ssize_t kth = 0;
    size_t m = 0;
    int slot = -1, no_memory = 0, longer = 0;
    uint8_t *block = NULL;
    uint64_t *hkeys = NULL;
    uint32_t *hcounts = NULL;
    Py_BEGIN_ALLOW_THREADS
    for (int counted = bits == 0;; counted = 1) {
        size_t largest = 0;
        if (counted) {
            memset(begin, 0, (parts + 1) * sizeof(size_t));
            for (Py_ssize_t c = 0; c < nch && !longer; c++) {
                const uint8_t *v = bufs[c].buf;
                for (Py_ssize_t i = 0, len = bufs[c].len / 16; i < len; i++) {
                    uint64_t w0, w1;
                    memcpy(&w0, v + 16 * i, 8);
                    memcpy(&w1, v + 16 * i + 8, 8);
                    if ((uint32_t)w0 > 12) { /* a longer string (or a bad length) */
                        longer = 1;
                        break;
                    }
                    begin[bits ? (vk_hash(w0, w1) >> shift) + 1 : 1]++;
                }
            }
            if (longer) break;
        }
        const size_t slots = lay_out(begin, parts, bits, n, counted, &largest);
        size_t cap = 16;
        while (cap < 8 * largest) cap <<= 1;
        const size_t rows = slots ? slots : 1, some = largest ? largest : 1;
        uint8_t *at = block = scratch_take(carve_size(rows, 16) + carve_size(HIST_CAP + 1, 4) + carve_size(nbig, 4) +
                                               carve_size(cap, sizeof(views_slot)) + carve_size(some, 4) +
                                               carve_size(SIFT_WORDS_MOST, 8) + carve_size(some / 8 + 1, 8) +
                                               carve_size(some / 4 + 1, 16) +
                                               carve_size(nheavy, 16) + carve_size(nheavy, 4),
                                           &slot);
        if (block == NULL) {
            no_memory = 1;
            break;
        }
        uint64_t *pkeys = carve(&at, rows, 16);
        uint32_t *hist = carve(&at, HIST_CAP + 1, 4), *big = carve(&at, nbig, 4);
        views_slot *table = carve(&at, cap, sizeof(views_slot));
        uint32_t *fresh = carve(&at, some, 4);
        size_t bits_words = 64;
        while (bits_words * 64 < 16 * some && bits_words < SIFT_WORDS_MOST) bits_words <<= 1;
        uint64_t *bits_at = carve(&at, bits_words, 8), *cand = carve(&at, some / 8 + 1, 8);
        uint64_t *sifted = carve(&at, some / 4 + 1, 16);
        hkeys = carve(&at, nheavy, 16);
        hcounts = carve(&at, nheavy, 4);
        memcpy(end, begin, parts * sizeof(size_t));
        int full = 0;
        for (Py_ssize_t c = 0; c < nch && !full && !longer; c++) {
            const uint8_t *v = bufs[c].buf;
            for (Py_ssize_t i = 0, len = bufs[c].len / 16; i < len; i++) {
                uint64_t w0, w1;
                memcpy(&w0, v + 16 * i, 8);
                memcpy(&w1, v + 16 * i + 8, 8);
                if ((uint32_t)w0 > 12) {
                    longer = 1;
                    break;
                }
                const size_t p = bits ? vk_hash(w0, w1) >> shift : 0, pos = end[p]++;
                if (!counted && pos == begin[p + 1]) {
                    full = 1;
                    break;
                }
                pkeys[2 * pos] = w0;
                pkeys[2 * pos + 1] = w1;
            }
        }
        if (full || longer) {
            scratch_give(block, slot);
            block = NULL;
            if (longer) break;
            continue;
        }
        memset(hist, 0, (HIST_CAP + 1) * sizeof(uint32_t));
        memset(table, 0, cap * sizeof(views_slot));
        memset(bits_at, 0, bits_words * 8);
        size_t nb = 0, last_d = 0;
        int sifting = 1; /* sift out the strings seen once while that pays, as heavy_keys */
        for (size_t p = 0; p < parts; p++) {
            const size_t lo = begin[p];
            size_t size = end[p] - lo;
            const uint64_t *pk = pkeys + 2 * lo;
            if (sifting && size >= 256) {
                const size_t left = sift(pk, size, 2, bits_words, bits_at, cand, sifted);
                if (left <= size / 4) {
                    hist[1] += (uint32_t)(size - left);
                    pk = sifted;
                    size = left;
                } else {
                    sifting = 0;
                }
            }
            /* eight slots a key; or, when the last part had far fewer distinct strings than rows
             * (strings seen many times), eight slots a distinct string of it: a table that stays
             * in the first-level cache (a part with more is counted again in a full one) */
            size_t pcap = 16, d = 0, want = 8 * size;
            if (last_d && 8 * last_d < want) want = 8 * last_d;
            while (pcap < want) pcap <<= 1;
            for (int again = 0;; again = 1) {
                const size_t mask = pcap - 1, most = pcap / 2;
                size_t j = 0;
                for (; j < size; j++) {
                    const uint64_t w0 = pk[2 * j], w1 = pk[2 * j + 1];
                    size_t s = (size_t)vk_hash(w0, w1) & mask;
                    while (table[s].count != 0 && (table[s].w0 != w0 || table[s].w1 != w1)) s = (s + 1) & mask;
                    if (table[s].count == 0) {
                        if (d == most && !again) break;
                        table[s].w0 = w0;
                        table[s].w1 = w1;
                        fresh[d++] = (uint32_t)s;
                    }
                    table[s].count++;
                }
                if (j == size) break;
                for (size_t i = 0; i < d; i++) table[fresh[i]].count = 0;
                d = 0;
                pcap = 16;
                while (pcap < 8 * size) pcap <<= 1;
            }
            last_d = d;
            for (size_t i = 0; i < d; i++) { /* tally, and leave the table empty for the next part */
                views_slot *t = &table[fresh[i]];
                const uint32_t c = t->count;
                t->count = 0;
                if (c > 1) {
                    hkeys[2 * m] = t->w0;
                    hkeys[2 * m + 1] = t->w1;
                    hcounts[m++] = c;
                }
                tally_multiplicity(c, hist, big, &nb);
            }
        }
        kth = kth_largest(hist, big, nb, k);
        size_t kept = 0; /* the strings counted more than kth times, written over the candidates */
        for (size_t i = 0; i < m && kth; i++) {
            hkeys[2 * kept] = hkeys[2 * i];
            hkeys[2 * kept + 1] = hkeys[2 * i + 1];
            hcounts[kept] = hcounts[i];
            kept += hcounts[i] > (uint64_t)kth;
        }
        m = kth ? kept : 0;
        break;
    }
    Py_END_ALLOW_THREADS
    if (no_memory) {
        PyErr_NoMemory();
    } else if (longer) {
        result = Py_NewRef(Py_None);
    } else {
        PyObject *strings = PyList_New((Py_ssize_t)m);
        for (size_t i = 0; strings != NULL && i < m; i++) {
            uint8_t view[16];
            memcpy(view, &hkeys[2 * i], 8);
            memcpy(view + 8, &hkeys[2 * i + 1], 8);
            uint32_t len;
            memcpy(&len, view, 4);
            PyObject *str = PyUnicode_DecodeUTF8((const char *)view + 4, (Py_ssize_t)len, "strict");
            if (str == NULL) {
                Py_CLEAR(strings);
                break;
            }
            PyList_SET_ITEM(strings, (Py_ssize_t)i, str);
        }
        if (strings != NULL)
            result = Py_BuildValue("(nNy#)", kth, strings, m ? (const char *)hcounts : "", (Py_ssize_t)(m * sizeof(uint32_t)));
    }
    if (block != NULL) scratch_give(block, slot);
done:
    for (Py_ssize_t i = 0; i < got; i++) PyBuffer_Release(&bufs[i]);
    PyMem_RawFree(bufs);
    PyMem_RawFree(begin);
    Py_DECREF(seq);
    return result;
}

static PyMethodDef hashcount_methods[] = {
    {"view_chunks", py_view_chunks, METH_O,
     "view_chunks(stream) -> [(views, data, owner), ...] or None: the chunks of an Arrow C stream (a PyCapsule "
     "from __arrow_c_stream__) of a string-view (or binary-view) column without nulls, as memoryviews of their "
     "16-byte views and of their data buffers, valid while `owner` lives; None for another type."},
    {"heavy_views", py_heavy_views, METH_VARARGS,
     "heavy_views(chunks, k) -> (kth, strings, counts) or None: the k-th largest count of the strings of a "
     "string-view column (its chunks' views, no nulls) whose strings are all inline (at most 12 bytes), and the "
     "strings counted more than kth times with their counts (uint32 bytes); None when one is longer."},
    {"count_views", py_count_views, METH_VARARGS,
     "count_views(views, data, limit) -> (first_rows, counts) or None: exact counts of string views."},
    {"string_stats", py_string_stats, METH_VARARGS,
     "string_stats(views, data) -> (min_row, max_row, hist, longer): the rows of the first smallest and first "
     "largest string (byte order) of a string-view column without nulls, the number of strings of each length "
     "in characters below 4096 (uint64 bytes, indexed by length, up to the longest), and the lengths of the "
     "longer ones (uint32 bytes)."},
    {"dense_counts", py_dense_counts, METH_VARARGS,
     "dense_counts(values, limit) -> (lo, counts) or None: counts (uint64 bytes) of lo, lo+1, ... of an integer "
     "array spanning at most limit values; None when it spans more (or is empty)."},
    {"heavy_rows", py_heavy_rows, METH_VARARGS,
     "heavy_rows(hashes, k, floor) -> (kth, floor, rows): the k-th largest hash multiplicity, and the rows "
     "whose hash occurs more than floor times (floor FLOOR_KTH: kth; another negative floor: max(kth - 1, 1))."},
    {"heavy_keys", py_heavy_keys, METH_VARARGS,
     "heavy_keys(keys, k) -> (kth, keys, counts): the k-th largest key multiplicity (0 when there are fewer than "
     "k distinct keys), and the distinct keys occurring more than kth times (uint64 bytes) with their "
     "multiplicities (uint32 bytes), in no particular order."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef hashcount_module = {
    PyModuleDef_HEAD_INIT, "truthound_sketch._hashcount",
    "Multiplicities of 64-bit hashes: the prefilter of the frequent-values summary.", -1, hashcount_methods,
    NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__hashcount(void) {
    for (int i = 0; i < SCRATCH_SLOTS; i++)
        if (scratch[i].lock == NULL && (scratch[i].lock = PyThread_allocate_lock()) == NULL) return PyErr_NoMemory();
    PyObject *m = PyModule_Create(&hashcount_module);
    if (m != NULL && PyModule_AddIntConstant(m, "FLOOR_KTH", FLOOR_KTH) < 0) Py_CLEAR(m);
    return m;
}
