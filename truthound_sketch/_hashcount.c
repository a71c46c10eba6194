/*
 * Multiplicities of 64-bit hashes: the prefilter of the frequent-values summary
 * (truthound_sketch.frequent.FrequentItems.from_batch).
 *
 *   multiplicity(hashes, out, k) -> kth
 *
 * hashes: one uint64 per row (C-contiguous buffer); out: a writable uint32
 * buffer of the same length, filled with, for every row, the number of rows
 * whose hash equals its hash; kth: the k-th largest multiplicity over the
 * distinct hashes, or 0 when there are fewer than k distinct hashes.
 *
 * Equal values have equal hashes, so a row's multiplicity is an upper bound of
 * its value's count: rows whose multiplicity is at most f belong to values seen
 * at most f times, whatever collisions there are.
 *
 * The rows are radix-partitioned by the top bits of their (mixed) hash, and each
 * partition is counted in an open-addressing table of twice its size (linear
 * probing, keyed by the full 64 bits), small enough to stay in cache.  All
 * memory is private to the call; the GIL is released while it runs.
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

static PyObject *py_multiplicity(PyObject *self, PyObject *args) {
    PyObject *h_obj, *o_obj;
    Py_ssize_t k;
    Py_buffer h, o;
    if (!PyArg_ParseTuple(args, "OOn", &h_obj, &o_obj, &k)) return NULL;
    if (k < 1) {
        PyErr_SetString(PyExc_ValueError, "k must be at least 1");
        return NULL;
    }
    if (get_buffer(h_obj, &h, 0, 8, "hashes (uint64)") < 0) return NULL;
    if (get_buffer(o_obj, &o, 1, 4, "out (uint32)") < 0) {
        PyBuffer_Release(&h);
        return NULL;
    }
    const Py_ssize_t n = h.len / 8;
    if (o.len / 4 != n || n >= (Py_ssize_t)UINT32_MAX) {
        PyErr_Format(PyExc_ValueError, "out holds %zd entries for %zd rows: give one uint32 per row (below 2^32 rows)",
                     o.len / 4, n);
        PyBuffer_Release(&o);
        PyBuffer_Release(&h);
        return NULL;
    }
    /* Radix-partition the rows by the top bits of their mixed hash, so that each partition is
     * counted in a small table that stays in cache. */
    int bits = 0;
    while (bits < 12 && ((Py_ssize_t)1 << bits) * 1024 < n) bits++;
    const size_t parts = (size_t)1 << bits;
    size_t *start = PyMem_RawCalloc(parts + 1, sizeof(size_t));
    uint64_t *pkeys = PyMem_RawMalloc((size_t)(n ? n : 1) * sizeof(uint64_t));
    uint32_t *prows = PyMem_RawMalloc((size_t)(n ? n : 1) * sizeof(uint32_t));
    uint32_t *hist = PyMem_RawCalloc((size_t)n + 1, sizeof(uint32_t));
    uint64_t *keys = NULL;
    uint32_t *counts = NULL, *slots = NULL;
    Py_ssize_t kth = 0;
    int ok = start != NULL && pkeys != NULL && prows != NULL && hist != NULL;
    if (ok) {
        const uint64_t *hs = (const uint64_t *)h.buf;
        uint32_t *out = (uint32_t *)o.buf;
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
                const uint64_t m = mix(hs[i]);
                const size_t pos = cursor[bits ? m >> shift : 0]++;
                pkeys[pos] = m;
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
                for (size_t j = 0; j < size; j++) out[prows[lo + j]] = counts[slots[j]];
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
            Py_END_ALLOW_THREADS
        }
    }
    PyMem_RawFree(start);
    PyMem_RawFree(pkeys);
    PyMem_RawFree(prows);
    PyMem_RawFree(hist);
    PyMem_RawFree(keys);
    PyMem_RawFree(counts);
    PyMem_RawFree(slots);
    PyBuffer_Release(&o);
    PyBuffer_Release(&h);
    if (!ok) return PyErr_NoMemory();
    return PyLong_FromSsize_t(kth);
}

static PyMethodDef hashcount_methods[] = {
    {"multiplicity", py_multiplicity, METH_VARARGS,
     "multiplicity(hashes, out, k) -> kth: each row's hash multiplicity into out (uint32); the k-th largest "
     "multiplicity of the distinct hashes (0 if fewer than k)."},
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
