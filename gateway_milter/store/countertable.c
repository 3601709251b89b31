/* CounterTable: a map of text fields to 64-bit counters, laid out flat (docs/decisions/0065-counter-table.md).
 *
 * A Bayes classification reads about 980 fields of hashes that hold 60,000-75,000. In a dict
 * each read follows three pointers (the index, the entry, the key object to compare), one cache
 * miss after another: 0.5-0.6 ms a message inside the content path. Here a field of up to 15
 * ASCII characters lives in its slot, with its hash and value (32 bytes, two slots a cache
 * line), so a read is one miss, and the reads of a batch do not wait for each other. Other
 * fields (longer, or not ASCII) go to a dict beside the slots. Values are signed 64-bit, as
 * Redis's HINCRBY counters are: a sum outside that range is an OverflowError, nothing changed.
 *
 * Open addressing with linear probing over Python's own string hash (randomised per process,
 * so a sender cannot choose fields that pile up in one run), at most half full; a deletion
 * shifts the run after it back (no tombstones). No method calls back into Python code while it
 * walks the slots (keys must be exact str, values int), so another thread cannot change the
 * table under it.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

#define KEY_MAX 15
#define EMPTY 0xFF
#define MIN_SIZE 8

typedef struct {
    Py_hash_t h;
    long long v;
    unsigned char n; /* the key's length, EMPTY for a free slot */
    char k[KEY_MAX];
} slot_t;

typedef struct {
    PyObject_HEAD
    slot_t *slots;
    size_t mask; /* size - 1, size a power of two */
    Py_ssize_t used;
    PyObject *other; /* dict: the fields that do not fit a slot */
} CounterTable;

static slot_t *new_slots(size_t size) {
    slot_t *s = PyMem_Malloc(size * sizeof(slot_t));
    if (s == NULL) {
        PyErr_NoMemory();
        return NULL;
    }
    for (size_t i = 0; i < size; i++)
        s[i].n = EMPTY;
    return s;
}

/* A field that fits a slot: exact str, compact ASCII, at most KEY_MAX characters. */
static inline int slot_key(PyObject *key) {
    return PyUnicode_CheckExact(key) && PyUnicode_IS_COMPACT_ASCII(key) && PyUnicode_GET_LENGTH(key) <= KEY_MAX;
}

/* 1 with the slot key's characters for a field that fits a slot, 0 for a str that goes to the
 * dict, -1 with a TypeError for a key that is not an exact str. */
static int fits(PyObject *key, const char **data, Py_ssize_t *len) {
    if (!PyUnicode_CheckExact(key)) {
        PyErr_Format(PyExc_TypeError, "field must be str, not %.100s", Py_TYPE(key)->tp_name);
        return -1;
    }
    if (!slot_key(key))
        return 0;
    *data = (const char *)PyUnicode_DATA(key);
    *len = PyUnicode_GET_LENGTH(key);
    return 1;
}

/* The slot holding the key, or the free slot where it would go (then *found is 0). */
static size_t probe(const CounterTable *t, const char *s, Py_ssize_t n, Py_hash_t h, int *found) {
    size_t i = (size_t)h & t->mask;
    for (;;) {
        const slot_t *sl = &t->slots[i];
        if (sl->n == EMPTY) {
            *found = 0;
            return i;
        }
        if (sl->h == h && sl->n == n && memcmp(sl->k, s, (size_t)n) == 0) {
            *found = 1;
            return i;
        }
        i = (i + 1) & t->mask;
    }
}

static int grow(CounterTable *t) {
    size_t size = t->mask + 1, bigger = size * 2;
    slot_t *old = t->slots, *s = new_slots(bigger);
    if (s == NULL)
        return -1;
    for (size_t i = 0; i < size; i++) {
        if (old[i].n == EMPTY)
            continue;
        size_t j = (size_t)old[i].h & (bigger - 1);
        while (s[j].n != EMPTY)
            j = (j + 1) & (bigger - 1);
        s[j] = old[i];
    }
    PyMem_Free(old);
    t->slots = s;
    t->mask = bigger - 1;
    return 0;
}

static void remove_at(CounterTable *t, size_t i) {
    size_t j = i, mask = t->mask;
    for (;;) {
        j = (j + 1) & mask;
        if (t->slots[j].n == EMPTY)
            break;
        size_t home = (size_t)t->slots[j].h & mask;
        /* the slot at j stays when its home lies cyclically in (i, j] */
        if (i <= j ? (i < home && home <= j) : (i < home || home <= j))
            continue;
        t->slots[i] = t->slots[j];
        i = j;
    }
    t->slots[i].n = EMPTY;
    t->used--;
}

/* Where a key stands: -1 on error, 0 for a key of the dict beside the slots, 1 for a slot key,
 * with its slot (or the free slot where it would go) in *at and whether it is there in *found. */
static int locate(const CounterTable *t, PyObject *key, slot_t *want, size_t *at, int *found) {
    const char *s;
    Py_ssize_t n;
    int f = fits(key, &s, &n);
    if (f <= 0)
        return f;
    want->h = PyObject_Hash(key);
    if (want->h == -1)
        return -1;
    want->n = (unsigned char)n;
    memcpy(want->k, s, (size_t)n);
    *at = probe(t, s, n, want->h, found);
    return 1;
}

/* Sets the key's value (inserting it), or removes it when ``drop``. -1 on error. */
static int put(CounterTable *t, PyObject *key, long long v, int drop) {
    slot_t want;
    size_t i;
    int found, f = locate(t, key, &want, &i, &found);
    if (f < 0)
        return -1;
    if (f == 0) {
        if (drop) {
            if (PyDict_DelItem(t->other, key) < 0) {
                if (!PyErr_ExceptionMatches(PyExc_KeyError))
                    return -1;
                PyErr_Clear();
            }
            return 0;
        }
        PyObject *val = PyLong_FromLongLong(v);
        if (val == NULL)
            return -1;
        int r = PyDict_SetItem(t->other, key, val);
        Py_DECREF(val);
        return r;
    }
    if (found) {
        if (drop)
            remove_at(t, i);
        else
            t->slots[i].v = v;
        return 0;
    }
    if (drop)
        return 0;
    if ((size_t)(t->used + 1) * 2 > t->mask + 1) {
        if (grow(t) < 0)
            return -1;
        i = probe(t, want.k, want.n, want.h, &found);
    }
    want.v = v;
    t->slots[i] = want;
    t->used++;
    return 0;
}

/* The key's value into *v: 1 when present, 0 when not, -1 on error. */
static int lookup(CounterTable *t, PyObject *key, long long *v) {
    slot_t want;
    size_t at;
    int there, where = locate(t, key, &want, &at, &there);
    if (where == 1) { /* a slot key */
        if (there)
            *v = t->slots[at].v;
        return there;
    }
    if (where < 0)
        return -1;
    PyObject *val = PyDict_GetItemWithError(t->other, key); /* borrowed */
    if (val == NULL)
        return PyErr_Occurred() ? -1 : 0;
    *v = PyLong_AsLongLong(val);
    return 1;
}

static int as_value(PyObject *o, long long *v) {
    if (!PyLong_Check(o)) {
        PyErr_Format(PyExc_TypeError, "value must be int, not %.100s", Py_TYPE(o)->tp_name);
        return -1;
    }
    int overflow;
    *v = PyLong_AsLongLongAndOverflow(o, &overflow);
    if (overflow) {
        PyErr_SetString(PyExc_OverflowError, "counter value out of the signed 64-bit range");
        return -1;
    }
    return (*v == -1 && PyErr_Occurred()) ? -1 : 0;
}

/* -- the type -------------------------------------------------------------------------------- */

static PyObject *ct_new(PyTypeObject *type, PyObject *args, PyObject *kw) {
    if (PyTuple_GET_SIZE(args) || (kw && PyDict_GET_SIZE(kw))) {
        PyErr_SetString(PyExc_TypeError, "CounterTable() takes no arguments");
        return NULL;
    }
    CounterTable *t = (CounterTable *)type->tp_alloc(type, 0);
    if (t == NULL)
        return NULL;
    t->slots = new_slots(MIN_SIZE);
    t->mask = MIN_SIZE - 1;
    t->other = PyDict_New();
    if (t->slots == NULL || t->other == NULL) {
        Py_DECREF(t);
        return NULL;
    }
    return (PyObject *)t;
}

static void ct_dealloc(CounterTable *t) {
    PyMem_Free(t->slots);
    Py_XDECREF(t->other);
    Py_TYPE(t)->tp_free((PyObject *)t);
}

static Py_ssize_t ct_len(CounterTable *t) {
    return t->used + PyDict_GET_SIZE(t->other);
}

/* get_many asks the memory for a key's slot this many keys before it reads it: the loads of a
 * batch then overlap (one key at a time, a read from a table out of the caches took ~230 ns,
 * the CPU's window too small to reach the next key's miss behind the work of this one). */
#define AHEAD 12

static inline void prefetch(const CounterTable *t, PyObject *key) {
    if (slot_key(key)) {
        Py_hash_t h = PyObject_Hash(key); /* (a str keeps it: the lookup reads it again for free) */
        if (h != -1)
            __builtin_prefetch(&t->slots[(size_t)h & t->mask]);
    }
}

PyDoc_STRVAR(get_many_doc, "get_many(fields, default=0) -> list: each field's value, ``default`` where it has none.");

static PyObject *ct_get_many(CounterTable *t, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs < 1 || nargs > 2) {
        PyErr_SetString(PyExc_TypeError, "get_many(fields, default=0)");
        return NULL;
    }
    PyObject *seq = PySequence_Fast(args[0], "fields must be a sequence");
    if (seq == NULL)
        return NULL;
    PyObject *dflt = nargs > 1 ? args[1] : NULL;
    Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
    PyObject *out = PyList_New(n);
    if (out == NULL) {
        Py_DECREF(seq);
        return NULL;
    }
    PyObject **items = PySequence_Fast_ITEMS(seq);
    for (Py_ssize_t j = 0; j < n && j < AHEAD; j++)
        prefetch(t, items[j]);
    for (Py_ssize_t j = 0; j < n; j++) {
        long long v = 0;
        if (j + AHEAD < n)
            prefetch(t, items[j + AHEAD]);
        int r = lookup(t, items[j], &v);
        PyObject *val;
        if (r < 0) {
            Py_DECREF(out);
            Py_DECREF(seq);
            return NULL;
        }
        if (r == 0 && dflt != NULL) {
            val = dflt;
            Py_INCREF(val);
        } else {
            val = PyLong_FromLongLong(r ? v : 0);
            if (val == NULL) {
                Py_DECREF(out);
                Py_DECREF(seq);
                return NULL;
            }
        }
        PyList_SET_ITEM(out, j, val);
    }
    Py_DECREF(seq);
    return out;
}

PyDoc_STRVAR(get_doc, "get(field, default=None): the field's value, or ``default``.");

static PyObject *ct_get(CounterTable *t, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs < 1 || nargs > 2) {
        PyErr_SetString(PyExc_TypeError, "get(field, default=None)");
        return NULL;
    }
    long long v;
    int r = lookup(t, args[0], &v);
    if (r < 0)
        return NULL;
    if (r)
        return PyLong_FromLongLong(v);
    PyObject *d = nargs > 1 ? args[1] : Py_None;
    Py_INCREF(d);
    return d;
}

PyDoc_STRVAR(add_many_doc,
             "add_many(deltas: dict): adds each delta to its field (0 when absent); a field that falls to 0 or below is "
             "removed. Every key and value is checked before anything changes.");

static PyObject *ct_add_many(CounterTable *t, PyObject *deltas) {
    if (!PyDict_CheckExact(deltas)) {
        PyErr_SetString(PyExc_TypeError, "add_many takes a dict");
        return NULL;
    }
    Py_ssize_t pos = 0, n = PyDict_GET_SIZE(deltas);
    PyObject *k, *d;
    long long *sums = PyMem_Malloc((size_t)(n ? n : 1) * sizeof(long long));
    if (sums == NULL)
        return PyErr_NoMemory();
    /* first every new value (nothing changes on an error), then the changes */
    Py_ssize_t j = 0;
    while (PyDict_Next(deltas, &pos, &k, &d)) {
        long long delta, cur = 0;
        if (as_value(d, &delta) < 0 || lookup(t, k, &cur) < 0)
            goto fail;
        if (__builtin_add_overflow(cur, delta, &sums[j])) {
            PyErr_SetString(PyExc_OverflowError, "counter value out of the signed 64-bit range");
            goto fail;
        }
        j++;
    }
    pos = 0;
    j = 0;
    while (PyDict_Next(deltas, &pos, &k, &d)) {
        if (put(t, k, sums[j], sums[j] <= 0) < 0)
            goto fail; /* (memory only: the keys were checked) */
        j++;
    }
    PyMem_Free(sums);
    Py_RETURN_NONE;
fail:
    PyMem_Free(sums);
    return NULL;
}

PyDoc_STRVAR(set_many_doc, "set_many(fields, values): sets each field to its value.");

static PyObject *ct_set_many(CounterTable *t, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "set_many(fields, values)");
        return NULL;
    }
    PyObject *fs = PySequence_Fast(args[0], "fields must be a sequence");
    if (fs == NULL)
        return NULL;
    PyObject *vs = PySequence_Fast(args[1], "values must be a sequence");
    if (vs == NULL) {
        Py_DECREF(fs);
        return NULL;
    }
    Py_ssize_t n = PySequence_Fast_GET_SIZE(fs);
    PyObject *res = NULL;
    if (PySequence_Fast_GET_SIZE(vs) != n) {
        PyErr_SetString(PyExc_ValueError, "set_many: as many values as fields");
        goto done;
    }
    PyObject **f = PySequence_Fast_ITEMS(fs), **v = PySequence_Fast_ITEMS(vs);
    for (Py_ssize_t j = 0; j < n; j++) { /* checked first: nothing changes on an error */
        long long x;
        const char *s;
        Py_ssize_t len;
        if (as_value(v[j], &x) < 0 || fits(f[j], &s, &len) < 0)
            goto done;
    }
    for (Py_ssize_t j = 0; j < n; j++) {
        long long x;
        if (as_value(v[j], &x) < 0 || put(t, f[j], x, 0) < 0)
            goto done;
    }
    res = Py_None;
    Py_INCREF(res);
done:
    Py_DECREF(fs);
    Py_DECREF(vs);
    return res;
}

PyDoc_STRVAR(discard_many_doc, "discard_many(fields): removes the fields that are there.");

static PyObject *ct_discard_many(CounterTable *t, PyObject *fields) {
    PyObject *fs = PySequence_Fast(fields, "fields must be a sequence");
    if (fs == NULL)
        return NULL;
    Py_ssize_t n = PySequence_Fast_GET_SIZE(fs);
    PyObject **f = PySequence_Fast_ITEMS(fs);
    for (Py_ssize_t j = 0; j < n; j++) {
        if (put(t, f[j], 0, 1) < 0) {
            Py_DECREF(fs);
            return NULL;
        }
    }
    Py_DECREF(fs);
    Py_RETURN_NONE;
}

PyDoc_STRVAR(items_doc, "items() -> list of (field, value), in no particular order.");

static PyObject *ct_items(CounterTable *t, PyObject *unused) {
    PyObject *out = PyList_New(0);
    if (out == NULL)
        return NULL;
    for (size_t i = 0; i <= t->mask; i++) {
        slot_t *sl = &t->slots[i];
        if (sl->n == EMPTY)
            continue;
        PyObject *pair = Py_BuildValue("(s#L)", sl->k, (Py_ssize_t)sl->n, sl->v);
        if (pair == NULL || PyList_Append(out, pair) < 0) {
            Py_XDECREF(pair);
            Py_DECREF(out);
            return NULL;
        }
        Py_DECREF(pair);
    }
    Py_ssize_t pos = 0;
    PyObject *k, *v;
    while (PyDict_Next(t->other, &pos, &k, &v)) {
        PyObject *pair = PyTuple_Pack(2, k, v);
        if (pair == NULL || PyList_Append(out, pair) < 0) {
            Py_XDECREF(pair);
            Py_DECREF(out);
            return NULL;
        }
        Py_DECREF(pair);
    }
    return out;
}

PyDoc_STRVAR(clear_doc, "clear(): removes every field.");

static PyObject *ct_clear(CounterTable *t, PyObject *unused) {
    slot_t *s = new_slots(MIN_SIZE);
    if (s == NULL)
        return NULL;
    PyMem_Free(t->slots);
    t->slots = s;
    t->mask = MIN_SIZE - 1;
    t->used = 0;
    PyDict_Clear(t->other);
    Py_RETURN_NONE;
}

static PyMethodDef ct_methods[] = {
    {"get_many", (PyCFunction)(void (*)(void))ct_get_many, METH_FASTCALL, get_many_doc},
    {"get", (PyCFunction)(void (*)(void))ct_get, METH_FASTCALL, get_doc},
    {"add_many", (PyCFunction)ct_add_many, METH_O, add_many_doc},
    {"set_many", (PyCFunction)(void (*)(void))ct_set_many, METH_FASTCALL, set_many_doc},
    {"discard_many", (PyCFunction)ct_discard_many, METH_O, discard_many_doc},
    {"items", (PyCFunction)ct_items, METH_NOARGS, items_doc},
    {"clear", (PyCFunction)ct_clear, METH_NOARGS, clear_doc},
    {NULL, NULL, 0, NULL},
};

static PySequenceMethods ct_as_sequence = {.sq_length = (lenfunc)ct_len};

static PyTypeObject CounterTableType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "gateway_milter.store._countertable.CounterTable",
    .tp_doc = PyDoc_STR("Text fields to signed 64-bit counters, laid out flat for batched reads."),
    .tp_basicsize = sizeof(CounterTable),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_new = ct_new,
    .tp_dealloc = (destructor)ct_dealloc,
    .tp_methods = ct_methods,
    .tp_as_sequence = &ct_as_sequence,
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "gateway_milter.store._countertable",
    "CounterTable in C (gateway_milter/store/countertable.py has the same in Python).", -1, NULL,
};

PyMODINIT_FUNC PyInit__countertable(void) {
    if (PyType_Ready(&CounterTableType) < 0)
        return NULL;
    PyObject *m = PyModule_Create(&module);
    if (m == NULL)
        return NULL;
    Py_INCREF(&CounterTableType);
    if (PyModule_AddObject(m, "CounterTable", (PyObject *)&CounterTableType) < 0) {
        Py_DECREF(&CounterTableType);
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
