/*
 * Vectorized HyperLogLog register updates, bit-compatible with Apache
 * DataSketches' HLL sketch (HLL_8 register layout).
 *
 * Every datum is hashed with MurmurHash3_x64_128 (seed 9001), exactly as
 * DataSketches does:
 *   - 64-bit integers: their 8 little-endian bytes;
 *   - doubles: their 8 bytes after canonicalisation (-0.0 -> 0.0, every NaN
 *     -> 0x7ff8000000000000);
 *   - strings / binary: their bytes (Arrow offset or view layouts); empty values
 *     are ignored.
 * The coupon of a hash (h1, h2) has address h1 & (2^26 - 1) and value
 * min(clz64(h2), 62) + 1.  With 2^lg_k registers the slot is the low lg_k bits
 * of the address and the register keeps the maximum value.
 *
 * The functions take objects exposing the buffer protocol (numpy arrays,
 * bytearray, memoryview, pyarrow buffers) and update a writable uint8
 * register buffer of length 2^lg_k (4 <= lg_k <= 21) in place.  The GIL is
 * released while hashing.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <stdint.h>
#include <string.h>

#define HLL_SEED 9001ULL
#define HLL_MIN_LG_K 4
#define HLL_MAX_LG_K 21

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

/* MurmurHash3_x64_128 of an arbitrary byte string, 64-bit seed in both lanes. */
static inline void murmur3_128(const uint8_t *data, size_t len, uint64_t *out1, uint64_t *out2) {
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
    switch (len & 15) {
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

static inline void apply_hash(uint8_t *reg, uint32_t mask, uint64_t h1, uint64_t h2) {
    const uint32_t slot = (uint32_t)h1 & mask; /* mask < 2^26: same as low26 & mask */
    const int lz = h2 ? __builtin_clzll(h2) : 64;
    const uint8_t value = (uint8_t)((lz > 62 ? 62 : lz) + 1);
    if (value > reg[slot]) {
        reg[slot] = value;
    }
}

/* ---- argument helpers ---------------------------------------------------- */

static int get_registers(PyObject *obj, Py_buffer *view, uint32_t *mask) {
    if (PyObject_GetBuffer(obj, view, PyBUF_WRITABLE | PyBUF_C_CONTIGUOUS) < 0) {
        PyErr_SetString(PyExc_TypeError,
                        "registers must be a writable, C-contiguous uint8 buffer (e.g. numpy uint8 array)");
        return -1;
    }
    if (view->itemsize != 1) {
        PyErr_Format(PyExc_TypeError, "registers must have 1-byte items, got itemsize %zd", view->itemsize);
        PyBuffer_Release(view);
        return -1;
    }
    const Py_ssize_t n = view->len;
    int lg = -1;
    for (int i = HLL_MIN_LG_K; i <= HLL_MAX_LG_K; i++) {
        if (n == ((Py_ssize_t)1 << i)) { lg = i; break; }
    }
    if (lg < 0) {
        PyErr_Format(PyExc_ValueError,
                     "registers must hold 2^lg_k bytes with %d <= lg_k <= %d, got %zd bytes",
                     HLL_MIN_LG_K, HLL_MAX_LG_K, n);
        PyBuffer_Release(view);
        return -1;
    }
    *mask = (uint32_t)(n - 1);
    return 0;
}

/* Accepts a contiguous buffer of 8-byte items.  kind: 'i' integers, 'f' float64. */
static int get_values8(PyObject *obj, Py_buffer *view, char kind) {
    if (PyObject_GetBuffer(obj, view, PyBUF_C_CONTIGUOUS | PyBUF_FORMAT) < 0) {
        PyErr_SetString(PyExc_TypeError, "values must be a C-contiguous buffer (e.g. numpy array)");
        return -1;
    }
    const char *fmt = view->format ? view->format : "B";
    if (fmt[0] == '<' || fmt[0] == '=' || fmt[0] == '@') {
#if defined(__BYTE_ORDER__) && (__BYTE_ORDER__ == __ORDER_BIG_ENDIAN__)
        if (fmt[0] == '<') goto bad;
#endif
        fmt++;
    }
    if (view->itemsize != 8 || fmt[0] == '\0' || fmt[1] != '\0') goto bad;
    if (kind == 'i') {
        if (fmt[0] != 'q' && fmt[0] != 'Q' && fmt[0] != 'l' && fmt[0] != 'L') goto bad;
    } else {
        if (fmt[0] != 'd') goto bad;
    }
    return 0;
bad:
    PyErr_Format(PyExc_TypeError, "values must be a contiguous %s buffer, got format '%s' with itemsize %zd",
                 kind == 'i' ? "int64" : "float64", view->format ? view->format : "B", view->itemsize);
    PyBuffer_Release(view);
    return -1;
}

/* ---- public functions ---------------------------------------------------- */

PyDoc_STRVAR(update_int64_doc,
"update_int64(registers, values) -> None\n\n"
"Hash each 64-bit integer of `values` (a contiguous int64/uint64 buffer) the way\n"
"DataSketches' HLL update(int64) does and fold it into `registers` (writable uint8\n"
"buffer of 2^lg_k bytes) in place.");

static PyObject *py_update_int64(PyObject *self, PyObject *args) {
    PyObject *reg_obj, *val_obj;
    if (!PyArg_ParseTuple(args, "OO:update_int64", &reg_obj, &val_obj)) return NULL;
    Py_buffer reg, val;
    uint32_t mask;
    if (get_registers(reg_obj, &reg, &mask) < 0) return NULL;
    if (get_values8(val_obj, &val, 'i') < 0) { PyBuffer_Release(&reg); return NULL; }
    uint8_t *r = (uint8_t *)reg.buf;
    const uint8_t *v = (const uint8_t *)val.buf;
    const Py_ssize_t n = val.len / 8;
    Py_BEGIN_ALLOW_THREADS
    for (Py_ssize_t i = 0; i < n; i++) {
        uint64_t h1, h2;
        murmur3_128_u64(load_le64(v + 8 * i), &h1, &h2);
        apply_hash(r, mask, h1, h2);
    }
    Py_END_ALLOW_THREADS
    PyBuffer_Release(&val);
    PyBuffer_Release(&reg);
    Py_RETURN_NONE;
}

PyDoc_STRVAR(update_float64_doc,
"update_float64(registers, values) -> None\n\n"
"Hash each double of `values` (a contiguous float64 buffer) the way DataSketches'\n"
"HLL update(double) does (-0.0 counts as 0.0, every NaN as one canonical NaN) and\n"
"fold it into `registers` in place.");

static PyObject *py_update_float64(PyObject *self, PyObject *args) {
    PyObject *reg_obj, *val_obj;
    if (!PyArg_ParseTuple(args, "OO:update_float64", &reg_obj, &val_obj)) return NULL;
    Py_buffer reg, val;
    uint32_t mask;
    if (get_registers(reg_obj, &reg, &mask) < 0) return NULL;
    if (get_values8(val_obj, &val, 'f') < 0) { PyBuffer_Release(&reg); return NULL; }
    uint8_t *r = (uint8_t *)reg.buf;
    const uint8_t *v = (const uint8_t *)val.buf;
    const Py_ssize_t n = val.len / 8;
    Py_BEGIN_ALLOW_THREADS
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
        apply_hash(r, mask, h1, h2);
    }
    Py_END_ALLOW_THREADS
    PyBuffer_Release(&val);
    PyBuffer_Release(&reg);
    Py_RETURN_NONE;
}

PyDoc_STRVAR(update_utf8_doc,
"update_utf8(registers, offsets, data, offsets_are_int64) -> None\n\n"
"Hash the byte strings of an Arrow string/binary layout: `offsets` holds n+1\n"
"int32 (or int64 when offsets_are_int64) positions into `data`; string i is\n"
"data[offsets[i]:offsets[i+1]].  Empty strings are skipped, as DataSketches does.\n"
"Raises ValueError, without touching the registers, if the offsets are negative,\n"
"decreasing or point outside `data`.");

static PyObject *py_update_utf8(PyObject *self, PyObject *args) {
    PyObject *reg_obj, *off_obj, *data_obj;
    int wide;
    if (!PyArg_ParseTuple(args, "OOOp:update_utf8", &reg_obj, &off_obj, &data_obj, &wide)) return NULL;
    Py_buffer reg, off, data;
    uint32_t mask;
    if (get_registers(reg_obj, &reg, &mask) < 0) return NULL;
    if (PyObject_GetBuffer(off_obj, &off, PyBUF_C_CONTIGUOUS) < 0) {
        PyBuffer_Release(&reg);
        PyErr_SetString(PyExc_TypeError, "offsets must be a C-contiguous buffer");
        return NULL;
    }
    if (PyObject_GetBuffer(data_obj, &data, PyBUF_C_CONTIGUOUS) < 0) {
        PyBuffer_Release(&off);
        PyBuffer_Release(&reg);
        PyErr_SetString(PyExc_TypeError, "data must be a C-contiguous buffer");
        return NULL;
    }
    const Py_ssize_t width = wide ? 8 : 4;
    if (off.len % width != 0) {
        PyErr_Format(PyExc_ValueError, "offsets buffer length %zd is not a multiple of %zd", off.len, width);
        goto fail;
    }
    const Py_ssize_t count = off.len / width;
    if (count == 0) {
        /* no strings at all */
        goto done;
    }
    {
        uint8_t *r = (uint8_t *)reg.buf;
        const uint8_t *o = (const uint8_t *)off.buf;
        const uint8_t *d = (const uint8_t *)data.buf;
        const int64_t dlen = (int64_t)data.len;
        Py_ssize_t bad = -1;
        Py_BEGIN_ALLOW_THREADS
        /* validate every offset first, so a bad layout leaves the registers untouched */
        int64_t prev = -1;
        for (Py_ssize_t i = 0; i < count; i++) {
            int64_t cur;
            if (wide) { int64_t t; memcpy(&t, o + 8 * i, 8); cur = t; }
            else { int32_t t; memcpy(&t, o + 4 * i, 4); cur = t; }
            if (cur < 0 || cur < prev || cur > dlen) { bad = i; break; }
            prev = cur;
        }
        if (bad < 0) {
            if (wide) {
                const int64_t *w = (const int64_t *)o;
                for (Py_ssize_t i = 1; i < count; i++) {
                    int64_t t0, t1;
                    memcpy(&t0, w + i - 1, 8);
                    memcpy(&t1, w + i, 8);
                    if (t1 > t0) {
                        uint64_t h1, h2;
                        murmur3_128(d + t0, (size_t)(t1 - t0), &h1, &h2);
                        apply_hash(r, mask, h1, h2);
                    }
                }
            } else {
                const int32_t *w = (const int32_t *)o;
                for (Py_ssize_t i = 1; i < count; i++) {
                    int32_t t0, t1;
                    memcpy(&t0, w + i - 1, 4);
                    memcpy(&t1, w + i, 4);
                    if (t1 > t0) {
                        uint64_t h1, h2;
                        murmur3_128(d + t0, (size_t)(t1 - t0), &h1, &h2);
                        apply_hash(r, mask, h1, h2);
                    }
                }
            }
        }
        Py_END_ALLOW_THREADS
        if (bad >= 0) {
            PyErr_Format(PyExc_ValueError,
                         "invalid string offsets: entry %zd is decreasing or outside the %zd-byte data buffer",
                         bad, data.len);
            goto fail;
        }
    }
done:
    PyBuffer_Release(&data);
    PyBuffer_Release(&off);
    PyBuffer_Release(&reg);
    Py_RETURN_NONE;
fail:
    PyBuffer_Release(&data);
    PyBuffer_Release(&off);
    PyBuffer_Release(&reg);
    return NULL;
}

PyDoc_STRVAR(update_utf8_view_doc,
"update_utf8_view(registers, views, data_buffers) -> None\n\n"
"Hash the byte strings of an Arrow string_view/binary_view layout: `views` holds\n"
"16-byte views (int32 length; up to 12 bytes inline, else prefix, int32 buffer\n"
"index and int32 offset into data_buffers[index]).  Empty strings are skipped.\n"
"Raises ValueError, without touching the registers, if a view points outside its buffer.");

static PyObject *py_update_utf8_view(PyObject *self, PyObject *args) {
    PyObject *reg_obj, *views_obj, *bufs_obj;
    if (!PyArg_ParseTuple(args, "OOO:update_utf8_view", &reg_obj, &views_obj, &bufs_obj)) return NULL;
    PyObject *seq = PySequence_Fast(bufs_obj, "data_buffers must be a sequence of buffers");
    if (seq == NULL) return NULL;
    const Py_ssize_t nbuf = PySequence_Fast_GET_SIZE(seq);
    if (nbuf > INT32_MAX) {
        Py_DECREF(seq);
        PyErr_SetString(PyExc_ValueError, "too many data buffers");
        return NULL;
    }
    Py_buffer reg, views;
    uint32_t mask;
    if (get_registers(reg_obj, &reg, &mask) < 0) { Py_DECREF(seq); return NULL; }
    if (PyObject_GetBuffer(views_obj, &views, PyBUF_C_CONTIGUOUS) < 0) {
        PyBuffer_Release(&reg);
        Py_DECREF(seq);
        PyErr_SetString(PyExc_TypeError, "views must be a C-contiguous buffer");
        return NULL;
    }
    Py_buffer *bufs = PyMem_Calloc(nbuf > 0 ? (size_t)nbuf : 1, sizeof(Py_buffer));
    const uint8_t **bptr = PyMem_Calloc(nbuf > 0 ? (size_t)nbuf : 1, sizeof(uint8_t *));
    int64_t *blen = PyMem_Calloc(nbuf > 0 ? (size_t)nbuf : 1, sizeof(int64_t));
    Py_ssize_t got = 0;
    PyObject *result = NULL;
    if (bufs == NULL || bptr == NULL || blen == NULL) {
        PyErr_NoMemory();
        goto out;
    }
    for (; got < nbuf; got++) {
        if (PyObject_GetBuffer(PySequence_Fast_GET_ITEM(seq, got), &bufs[got], PyBUF_C_CONTIGUOUS) < 0) {
            PyErr_Format(PyExc_TypeError, "data_buffers[%zd] must be a C-contiguous buffer", got);
            goto out;
        }
        bptr[got] = (const uint8_t *)bufs[got].buf;
        blen[got] = (int64_t)bufs[got].len;
    }
    if (views.len % 16 != 0) {
        PyErr_Format(PyExc_ValueError, "views buffer length %zd is not a multiple of 16", views.len);
        goto out;
    }
    {
        const uint8_t *v = (const uint8_t *)views.buf;
        const Py_ssize_t n = views.len / 16;
        uint8_t *r = (uint8_t *)reg.buf;
        Py_ssize_t bad = -1;
        Py_BEGIN_ALLOW_THREADS
        for (Py_ssize_t i = 0; i < n; i++) {
            int32_t len, idx, off;
            memcpy(&len, v + 16 * i, 4);
            if (len < 0) { bad = i; break; }
            if (len <= 12) continue;
            memcpy(&idx, v + 16 * i + 8, 4);
            memcpy(&off, v + 16 * i + 12, 4);
            if (idx < 0 || idx >= nbuf || off < 0 || (int64_t)off + len > blen[idx]) { bad = i; break; }
        }
        if (bad < 0) {
            for (Py_ssize_t i = 0; i < n; i++) {
                int32_t len;
                memcpy(&len, v + 16 * i, 4);
                if (len == 0) continue;
                const uint8_t *p;
                if (len <= 12) {
                    p = v + 16 * i + 4;
                } else {
                    int32_t idx, off;
                    memcpy(&idx, v + 16 * i + 8, 4);
                    memcpy(&off, v + 16 * i + 12, 4);
                    p = bptr[idx] + off;
                }
                uint64_t h1, h2;
                murmur3_128(p, (size_t)len, &h1, &h2);
                apply_hash(r, mask, h1, h2);
            }
        }
        Py_END_ALLOW_THREADS
        if (bad >= 0) {
            PyErr_Format(PyExc_ValueError,
                         "invalid string view %zd: negative length or outside its data buffer", bad);
            goto out;
        }
    }
    result = Py_None;
    Py_INCREF(result);
out:
    for (Py_ssize_t i = 0; i < got; i++) PyBuffer_Release(&bufs[i]);
    PyMem_Free(bufs);
    PyMem_Free((void *)bptr);
    PyMem_Free(blen);
    PyBuffer_Release(&views);
    PyBuffer_Release(&reg);
    Py_DECREF(seq);
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
    {"update_float64", py_update_float64, METH_VARARGS, update_float64_doc},
    {"update_utf8", py_update_utf8, METH_VARARGS, update_utf8_doc},
    {"update_utf8_view", py_update_utf8_view, METH_VARARGS, update_utf8_view_doc},
    {"hash128", py_hash128, METH_VARARGS, hash128_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef hll_module = {
    PyModuleDef_HEAD_INIT,
    "truthound_sketch._hll",
    "Vectorized HyperLogLog register updates compatible with Apache DataSketches HLL.",
    -1,
    hll_methods,
    NULL,
    NULL,
    NULL,
    NULL,
};

PyMODINIT_FUNC PyInit__hll(void) {
    PyObject *m = PyModule_Create(&hll_module);
    if (m == NULL) return NULL;
    if (PyModule_AddIntConstant(m, "SEED", (long)HLL_SEED) < 0 ||
        PyModule_AddIntConstant(m, "MIN_LG_K", HLL_MIN_LG_K) < 0 ||
        PyModule_AddIntConstant(m, "MAX_LG_K", HLL_MAX_LG_K) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
