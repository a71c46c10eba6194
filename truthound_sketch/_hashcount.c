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
 * rows: the indices (uint32 bytes, in no particular order) of the rows whose
 * hash occurs more than `floor` times; a negative floor means max(kth - 1, 1),
 * returned as the second item.
 *
 * Equal values have equal hashes, so a row's hash multiplicity is an upper
 * bound of its value's count: rows left out belong to values seen at most
 * `floor` times, whatever collisions there are.
 *
 * The rows are radix-partitioned by the top bits of their (mixed) hash, and each
 * partition is counted in an open-addressing table of twice its size (linear
 * probing, keyed by the full 64 bits), small enough to stay in cache.  All
 * memory is private to the call; the GIL is released while it runs.
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
 * (a bad buffer index, offset or length raises ValueError); the GIL is released.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <stdint.h>
#include <string.h>

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

static PyObject *py_heavy_rows(PyObject *self, PyObject *args) {
    PyObject *h_obj;
    Py_ssize_t k, floor;
    Py_buffer h;
    if (!PyArg_ParseTuple(args, "Onn", &h_obj, &k, &floor)) return NULL;
    if (k < 1) {
        PyErr_SetString(PyExc_ValueError, "k must be at least 1");
        return NULL;
    }
    if (get_buffer(h_obj, &h, 0, 8, "hashes (uint64)") < 0) return NULL;
    const Py_ssize_t n = h.len / 8;
    if (n >= (Py_ssize_t)UINT32_MAX) {
        PyErr_SetString(PyExc_ValueError, "hashes: at most 2^32 - 1 rows");
        PyBuffer_Release(&h);
        return NULL;
    }
    /* Radix-partition the rows by the top bits of their mixed hash, so that each partition is
     * counted in a small table that stays in cache. */
    int bits = 0;
    while (bits < 12 && ((Py_ssize_t)1 << bits) * 1024 < n) bits++;
    const size_t parts = (size_t)1 << bits, rows_alloc = (size_t)(n ? n : 1);
    size_t *start = PyMem_RawCalloc(parts + 1, sizeof(size_t));
    uint64_t *pkeys = PyMem_RawMalloc(rows_alloc * sizeof(uint64_t));
    uint32_t *prows = PyMem_RawMalloc(rows_alloc * sizeof(uint32_t));
    uint32_t *pcount = PyMem_RawMalloc(rows_alloc * sizeof(uint32_t)); /* multiplicity, in prows order */
    uint32_t *hist = PyMem_RawCalloc((size_t)n + 1, sizeof(uint32_t));
    uint64_t *keys = NULL;
    uint32_t *counts = NULL, *slots = NULL;
    Py_ssize_t kth = 0, m = 0;
    int ok = start != NULL && pkeys != NULL && prows != NULL && pcount != NULL && hist != NULL;
    if (ok) {
        const uint64_t *hs = (const uint64_t *)h.buf;
        const int shift = 64 - bits;
        size_t largest = 0;
        for (Py_ssize_t i = 0; i < n; i++) start[bits ? (mix(hs[i]) >> shift) + 1 : 1]++;
        for (size_t p = 0; p < parts; p++) {
            if (start[p + 1] > largest) largest = start[p + 1];
            start[p + 1] += start[p];
        }
        size_t cap = 16;
        while (cap < 2 * largest) cap <<= 1;
        keys = PyMem_RawMalloc(cap * sizeof(uint64_t));
        counts = PyMem_RawMalloc(cap * sizeof(uint32_t));
        slots = PyMem_RawMalloc((largest ? largest : 1) * sizeof(uint32_t));
        ok = keys != NULL && counts != NULL && slots != NULL;
        if (ok) {
            Py_BEGIN_ALLOW_THREADS
            size_t *cursor = start; /* scatter: start[p] moves to the end of partition p */
            for (Py_ssize_t i = 0; i < n; i++) {
                const uint64_t key = mix(hs[i]);
                const size_t pos = cursor[bits ? key >> shift : 0]++;
                pkeys[pos] = key;
                prows[pos] = (uint32_t)i;
            }
            size_t lo = 0;
            for (size_t p = 0; p < parts; p++) {
                const size_t hi = start[p], size = hi - lo; /* start[p] is now the end of p */
                size_t pcap = 16;
                while (pcap < 2 * size) pcap <<= 1;
                const size_t mask = pcap - 1;
                memset(counts, 0, pcap * sizeof(uint32_t));
                for (size_t j = 0; j < size; j++) {
                    const uint64_t key = pkeys[lo + j];
                    size_t s = (size_t)key & mask;
                    while (counts[s] != 0 && keys[s] != key) s = (s + 1) & mask;
                    keys[s] = key;
                    counts[s]++;
                    slots[j] = (uint32_t)s;
                }
                for (size_t j = 0; j < size; j++) pcount[lo + j] = counts[slots[j]];
                for (size_t s = 0; s < pcap; s++) hist[counts[s]]++;
                lo = hi;
            }
            Py_ssize_t seen = 0;
            for (Py_ssize_t c = n; c > 0; c--) {
                seen += hist[c];
                if (seen >= k) {
                    kth = c;
                    break;
                }
            }
            if (floor < 0) floor = kth > 2 ? kth - 1 : 1;
            /* the rows to keep, written over prows (m <= j at every step) */
            for (Py_ssize_t j = 0; j < n; j++) {
                prows[m] = prows[j];
                m += pcount[j] > (uint64_t)floor;
            }
            Py_END_ALLOW_THREADS
        }
    }
    PyObject *result = NULL;
    if (ok) {
        result = Py_BuildValue("(nny#)", kth, floor, (const char *)prows, (Py_ssize_t)(m * sizeof(uint32_t)));
    }
    PyMem_RawFree(start);
    PyMem_RawFree(pkeys);
    PyMem_RawFree(prows);
    PyMem_RawFree(pcount);
    PyMem_RawFree(hist);
    PyMem_RawFree(keys);
    PyMem_RawFree(counts);
    PyMem_RawFree(slots);
    PyBuffer_Release(&h);
    if (!ok && !PyErr_Occurred()) PyErr_NoMemory();
    return result;
}

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

static PyObject *py_count_views(PyObject *self, PyObject *args) {
    PyObject *v_obj, *d_obj;
    Py_ssize_t limit;
    Py_buffer v;
    if (!PyArg_ParseTuple(args, "OOn", &v_obj, &d_obj, &limit)) return NULL;
    if (limit < 1 || limit > MAX_COUNT_LIMIT) {
        PyErr_Format(PyExc_ValueError, "limit must be in [1, %d], got %zd", MAX_COUNT_LIMIT, limit);
        return NULL;
    }
    PyObject *seq = PySequence_Fast(d_obj, "data must be a list of buffers");
    if (seq == NULL) return NULL;
    const Py_ssize_t nbufs = PySequence_Fast_GET_SIZE(seq);
    Py_buffer *bufs = PyMem_Calloc(nbufs ? nbufs : 1, sizeof(Py_buffer));
    if (bufs == NULL) {
        Py_DECREF(seq);
        return PyErr_NoMemory();
    }
    Py_ssize_t got = 0;
    for (; got < nbufs; got++) {
        if (PyObject_GetBuffer(PySequence_Fast_GET_ITEM(seq, got), &bufs[got], PyBUF_SIMPLE) < 0) break;
    }
    PyObject *result = NULL;
    if (got < nbufs) goto done;
    if (get_buffer(v_obj, &v, 0, 1, "views (uint8)") < 0) goto done;
    const Py_ssize_t n = v.len / 16;
    if (v.len % 16 != 0 || n >= (Py_ssize_t)UINT32_MAX) {
        PyErr_SetString(PyExc_ValueError, "views: expected 16 bytes a row, below 2^32 rows");
        PyBuffer_Release(&v);
        goto done;
    }
    size_t cap = 64;
    while (cap < (size_t)(2 * limit) && cap < (size_t)(2 * n)) cap <<= 1;
    uint64_t *hashes = PyMem_RawMalloc(cap * sizeof(uint64_t));
    uint32_t *slot_row = PyMem_RawMalloc(cap * sizeof(uint32_t)); /* first row, +1 (0 = empty) */
    uint32_t *slot_id = PyMem_RawMalloc(cap * sizeof(uint32_t));
    uint32_t *firsts = PyMem_RawMalloc((size_t)limit * sizeof(uint32_t));
    uint64_t *counts = PyMem_RawCalloc((size_t)limit, sizeof(uint64_t));
    if (!hashes || !slot_row || !slot_id || !firsts || !counts) {
        PyErr_NoMemory();
    } else {
        memset(slot_row, 0, cap * sizeof(uint32_t));
        const uint8_t *views = (const uint8_t *)v.buf;
        const size_t mask = cap - 1;
        Py_ssize_t distinct = 0, bad = -1;
        int over = 0;
        Py_BEGIN_ALLOW_THREADS
        for (Py_ssize_t i = 0; i < n && !over && bad < 0; i++) {
            const uint8_t *vi = views + 16 * i;
            str_ref a;
            if (view_bytes(vi, bufs, nbufs, &a) < 0) {
                bad = i;
                break;
            }
            uint64_t h;
            if (a.len <= 12) {
                uint64_t w0, w1;
                memcpy(&w0, vi, 8);
                memcpy(&w1, vi + 8, 8);
                h = mix((w0 ^ mix(w1)) * 0x9E3779B97F4A7C15ULL);
            } else {
                h = bytes_hash(a.ptr, a.len);
            }
            size_t s = (size_t)h & mask;
            for (;;) {
                const uint32_t r = slot_row[s];
                if (r == 0) {
                    if (distinct == limit) {
                        over = 1;
                        break;
                    }
                    hashes[s] = h;
                    slot_row[s] = (uint32_t)i + 1;
                    slot_id[s] = (uint32_t)distinct;
                    firsts[distinct] = (uint32_t)i;
                    counts[distinct++] = 1;
                    break;
                }
                if (hashes[s] == h) {
                    const uint8_t *vr = views + 16 * (size_t)(r - 1);
                    int same;
                    if (a.len <= 12) {
                        same = memcmp(vi, vr, 16) == 0;
                    } else {
                        str_ref b;
                        view_bytes(vr, bufs, nbufs, &b); /* checked when it was first seen */
                        same = b.len == a.len && memcmp(a.ptr, b.ptr, a.len) == 0;
                    }
                    if (same) {
                        counts[slot_id[s]]++;
                        break;
                    }
                }
                s = (s + 1) & mask;
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
    }
    PyMem_RawFree(hashes);
    PyMem_RawFree(slot_row);
    PyMem_RawFree(slot_id);
    PyMem_RawFree(firsts);
    PyMem_RawFree(counts);
    PyBuffer_Release(&v);
done:
    for (Py_ssize_t j = 0; j < got; j++) PyBuffer_Release(&bufs[j]);
    PyMem_Free(bufs);
    Py_DECREF(seq);
    return result;
}

static PyMethodDef hashcount_methods[] = {
    {"count_views", py_count_views, METH_VARARGS,
     "count_views(views, data, limit) -> (first_rows, counts) or None: exact counts of string views."},
    {"heavy_rows", py_heavy_rows, METH_VARARGS,
     "heavy_rows(hashes, k, floor) -> (kth, floor, rows): the k-th largest hash multiplicity, and the rows "
     "whose hash occurs more than floor times (floor < 0: max(kth - 1, 1))."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef hashcount_module = {
    PyModuleDef_HEAD_INIT, "truthound_sketch._hashcount",
    "Multiplicities of 64-bit hashes: the prefilter of the frequent-values summary.", -1, hashcount_methods,
    NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__hashcount(void) {
    return PyModule_Create(&hashcount_module);
}
