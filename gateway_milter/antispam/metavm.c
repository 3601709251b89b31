/* MetaProgram: the rule set's meta rules as one small program, run in C (docs/decisions/0066-meta-program.md).
 *
 * A meta rule is an expression over other rules' values (``__A && !__B``, ``(A + B + C) > 1``).
 * The engine generates Python for them (engine.py, ``lazy_meta_source``): every operand a call of
 * the memo's ``get``, every sub-meta (``__NAME``) a Python function called through the engine's
 * ``value``. Here the same expressions, in the same order and with the same short cuts, are
 * instructions over a stack of doubles; an operand is read from the memo dict directly, a
 * sub-meta that is not yet known is run here too, and any other rule that is not yet known is
 * computed by calling its function exactly as ``value`` does, its result stored in the memo.
 *
 * Values: rule values are small integers (hit counts), exact in a double; a meta's value is its
 * expression's (engine.py, META_VALUE: 1 or 0 for a truth value, else the number, which another
 * meta reads); Python's ``and``/``or`` give back an operand's value, ``not`` and the comparisons
 * 0 or 1 (True/False count as 1/0 in a sum), ``/`` is true division: the same numbers as the
 * generated Python (an integral value stored as an int, as the generated code's sums are). The parser lets only a non-zero number divide; a division by zero anyway
 * makes that meta 0, as the generated sub-meta functions do.
 *
 * Instructions (int32): NUM k | LOAD i | NOT | NEG | ADD | SUB | MUL | DIV | GT | GE | LT | LE |
 * EQ | NE | JF t | JT t | ATLEAST need n i1..in | END. JF (JT) jumps to t keeping the value when
 * it is false (true), else drops it: ``a and b`` is ``a JF end b end:``. Each meta's segment is
 * checked when the program is made (operands in range, jumps forward to an instruction of the
 * same segment with the same stack depth, END with one value), so a running program cannot
 * read or write outside its arrays.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

enum {
    OP_NUM, OP_LOAD, OP_NOT, OP_NEG, OP_ADD, OP_SUB, OP_MUL, OP_DIV,
    OP_GT, OP_GE, OP_LT, OP_LE, OP_EQ, OP_NE, OP_JF, OP_JT, OP_ATLEAST, OP_END, OP_COUNT
};

#define STACK_ON_C 32 /* deeper programs take their stack from the heap */

typedef struct {
    PyObject_HEAD
    Py_ssize_t nnames;
    PyObject **names;  /* str, one per rule the metas read */
    PyObject **lazy;   /* per name: the meta's Python function (run here while fns holds it), or NULL */
    int32_t *entry;    /* per name: its segment's first instruction, or -1 */
    int32_t *depth;    /* per name: its segment's stack depth */
    int32_t *code;
    Py_ssize_t ncode;
    double *consts;
    Py_ssize_t nconsts;
    int32_t *scored;   /* the scored metas' names, in the order they run */
    Py_ssize_t nscored;
    PyObject *zero, *one;
} MetaProgram;

typedef struct {
    PyObject *memo, *fns;
    PyObject *args[4]; /* texts, message, extras, v: a rule function's arguments */
} Ctx;

static int eval_meta(MetaProgram *p, Ctx *c, int32_t idx, double *out);

/* memo[name] = a meta's value: 0 and 1 the program's own objects, another integral value an int,
 * else a float (META_VALUE). */
static int store_value(MetaProgram *p, PyObject *memo, PyObject *name, double d) {
    if (d == 0.0 || d != d) /* (NaN cannot arise: only a non-zero number divides) */
        return PyDict_SetItem(memo, name, p->zero);
    if (d == 1.0)
        return PyDict_SetItem(memo, name, p->one);
    PyObject *v = (d > -9.0e15 && d < 9.0e15 && d == (double)(long long)d)
        ? PyLong_FromLongLong((long long)d) : PyFloat_FromDouble(d);
    if (v == NULL)
        return -1;
    int rc = PyDict_SetItem(memo, name, v);
    Py_DECREF(v);
    return rc;
}

static inline int as_double(PyObject *o, double *out) {
    if (PyFloat_CheckExact(o)) {
        *out = PyFloat_AS_DOUBLE(o);
        return 0;
    }
    double d = PyLong_Check(o) ? PyLong_AsDouble(o) : PyFloat_AsDouble(o);
    if (d == -1.0 && PyErr_Occurred())
        return -1;
    *out = d;
    return 0;
}

/* A rule's value as the generated code reads it: the memo's, else computed (and memoised) as the
 * engine's ``value`` computes it. */
static int load(MetaProgram *p, Ctx *c, int32_t i, double *out) {
    PyObject *name = p->names[i];
    PyObject *got = PyDict_GetItemWithError(c->memo, name);
    if (got != NULL && got != Py_None)
        return as_double(got, out);
    if (got == NULL && PyErr_Occurred())
        return -1;
    PyObject *fn = PyDict_GetItemWithError(c->fns, name);
    if (fn == NULL) {
        if (PyErr_Occurred())
            return -1;
        *out = 0.0; /* not run: reads as 0 */
        return PyDict_SetItem(c->memo, name, p->zero);
    }
    if (fn == p->lazy[i] && p->entry[i] >= 0) { /* a sub-meta: run here */
        double d;
        Py_INCREF(fn); /* (the fns dict may change while the meta's operands are computed) */
        int rc = eval_meta(p, c, i, &d);
        Py_DECREF(fn);
        if (rc < 0)
            return -1;
        *out = d;
        return store_value(p, c->memo, name, d);
    }
    Py_INCREF(fn);
    PyObject *r = PyObject_Vectorcall(fn, c->args, 4, NULL);
    Py_DECREF(fn);
    if (r == NULL)
        return -1;
    int rc = PyDict_SetItem(c->memo, name, r);
    if (rc == 0)
        rc = as_double(r, out);
    Py_DECREF(r);
    return rc;
}

static int eval_meta(MetaProgram *p, Ctx *c, int32_t idx, double *out) {
    double small[STACK_ON_C];
    double *st = small;
    if (p->depth[idx] > STACK_ON_C) {
        st = PyMem_Malloc(sizeof(double) * (size_t)p->depth[idx]);
        if (st == NULL) {
            PyErr_NoMemory();
            return -1;
        }
    }
    if (Py_EnterRecursiveCall(" in a meta rule")) {
        if (st != small)
            PyMem_Free(st);
        return -1;
    }
    const int32_t *code = p->code;
    int32_t pc = p->entry[idx];
    int sp = 0, rc = 0, zerodiv = 0;
    for (;;) {
        int32_t op = code[pc++];
        switch (op) {
        case OP_NUM:
            st[sp++] = p->consts[code[pc++]];
            break;
        case OP_LOAD:
            if (load(p, c, code[pc++], &st[sp]) < 0)
                goto error;
            sp++;
            break;
        case OP_NOT:
            st[sp - 1] = st[sp - 1] == 0.0 ? 1.0 : 0.0;
            break;
        case OP_NEG:
            st[sp - 1] = -st[sp - 1];
            break;
        case OP_ADD: sp--; st[sp - 1] = st[sp - 1] + st[sp]; break;
        case OP_SUB: sp--; st[sp - 1] = st[sp - 1] - st[sp]; break;
        case OP_MUL: sp--; st[sp - 1] = st[sp - 1] * st[sp]; break;
        case OP_DIV:
            sp--;
            if (st[sp] == 0.0) {
                zerodiv = 1;
                st[sp - 1] = 0.0;
            } else {
                st[sp - 1] = st[sp - 1] / st[sp];
            }
            break;
        case OP_GT: sp--; st[sp - 1] = st[sp - 1] > st[sp]; break;
        case OP_GE: sp--; st[sp - 1] = st[sp - 1] >= st[sp]; break;
        case OP_LT: sp--; st[sp - 1] = st[sp - 1] < st[sp]; break;
        case OP_LE: sp--; st[sp - 1] = st[sp - 1] <= st[sp]; break;
        case OP_EQ: sp--; st[sp - 1] = st[sp - 1] == st[sp]; break;
        case OP_NE: sp--; st[sp - 1] = st[sp - 1] != st[sp]; break;
        case OP_JF:
            if (st[sp - 1] == 0.0) {
                pc = code[pc];
            } else {
                pc++;
                sp--;
            }
            break;
        case OP_JT:
            if (st[sp - 1] != 0.0) {
                pc = code[pc];
            } else {
                pc++;
                sp--;
            }
            break;
        case OP_ATLEAST: { /* engine._atleast: stop once the count is reached or cannot be */
            int32_t need = code[pc], n = code[pc + 1];
            const int32_t *items = code + pc + 2;
            int32_t got = 0, left = n, k;
            double verdict = -1.0;
            for (k = 0; k < n; k++) {
                if (got >= need) {
                    verdict = 1.0;
                    break;
                }
                if (got + left < need) {
                    verdict = 0.0;
                    break;
                }
                double x;
                if (load(p, c, items[k], &x) < 0)
                    goto error;
                got += x != 0.0;
                left--;
            }
            st[sp++] = verdict >= 0.0 ? verdict : (got >= need ? 1.0 : 0.0);
            pc += 2 + n;
            break;
        }
        default: /* OP_END (the checks leave nothing else) */
            *out = zerodiv ? 0.0 : st[sp - 1];
            goto done;
        }
    }
error:
    rc = -1;
done:
    Py_LeaveRecursiveCall();
    if (st != small)
        PyMem_Free(st);
    return rc;
}

PyDoc_STRVAR(run_doc,
"run(memo, v, fns, texts, message, extras): each scored meta's value into memo, in\n"
"order, as the engine's generated all-metas function does.");

static PyObject *mp_run(MetaProgram *p, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 6) {
        PyErr_SetString(PyExc_TypeError, "run takes memo, v, fns, texts, message, extras");
        return NULL;
    }
    if (!PyDict_Check(args[0]) || !PyDict_Check(args[2])) {
        PyErr_SetString(PyExc_TypeError, "run: memo and fns must be dicts");
        return NULL;
    }
    Ctx c = {.memo = args[0], .fns = args[2], .args = {args[3], args[4], args[5], args[1]}};
    for (Py_ssize_t k = 0; k < p->nscored; k++) {
        int32_t i = p->scored[k];
        double d;
        if (eval_meta(p, &c, i, &d) < 0)
            return NULL;
        if (store_value(p, c.memo, p->names[i], d) < 0)
            return NULL;
    }
    Py_RETURN_NONE;
}

/* -- making a program: every segment checked ------------------------------------------------ */

static int bad(const char *what, Py_ssize_t at) {
    PyErr_Format(PyExc_ValueError, "meta program: %s at instruction %zd", what, at);
    return -1;
}

/* Walks one segment from its entry to its END: operands in range, the stack never below what an
 * instruction pops, every jump forward to an instruction of the segment reached with the same
 * depth, one value at END. ``mark`` (ncode, all -1 on entry and on return) holds the depths
 * jumps expect. The segment's depth goes to *depth. */
static int check_segment(MetaProgram *p, int32_t start, int32_t *mark, int32_t *depth) {
    static const signed char pops[OP_COUNT] = {
        [OP_NUM] = 0, [OP_LOAD] = 0, [OP_NOT] = 1, [OP_NEG] = 1, [OP_ADD] = 2, [OP_SUB] = 2,
        [OP_MUL] = 2, [OP_DIV] = 2, [OP_GT] = 2, [OP_GE] = 2, [OP_LT] = 2, [OP_LE] = 2,
        [OP_EQ] = 2, [OP_NE] = 2, [OP_JF] = 1, [OP_JT] = 1, [OP_ATLEAST] = 0, [OP_END] = 1};
    int32_t pc = start, sp = 0, maxsp = 0, pending = 0, rc = 0;
    for (;;) { /* (no jump is unconditional: every instruction is also reached by falling through) */
        if (pc < 0 || pc >= p->ncode) {
            rc = bad("runs past the code", pc);
            break;
        }
        if (mark[pc] >= 0) { /* a jump lands here */
            if (mark[pc] != sp) {
                rc = bad("stack depths differ where a jump lands", pc);
                break;
            }
            mark[pc] = -1;
            pending--;
        }
        int32_t op = p->code[pc];
        if (op < 0 || op >= OP_COUNT) {
            rc = bad("unknown instruction", pc);
            break;
        }
        if (sp < pops[op]) {
            rc = bad("stack underflow", pc);
            break;
        }
        int32_t at = pc++;
        if (op == OP_END) {
            if (sp != 1)
                rc = bad("END without exactly one value", at);
            else if (pending)
                rc = bad("a jump past END", at);
            break;
        }
        if (op == OP_NUM || op == OP_LOAD || op == OP_JF || op == OP_JT) {
            if (pc >= p->ncode) {
                rc = bad("operand past the code", at);
                break;
            }
            int32_t x = p->code[pc++];
            if (op == OP_NUM && (x < 0 || x >= p->nconsts)) {
                rc = bad("constant out of range", at);
                break;
            }
            if (op == OP_LOAD && (x < 0 || x >= p->nnames)) {
                rc = bad("name out of range", at);
                break;
            }
            if (op == OP_JF || op == OP_JT) {
                if (x <= at || x >= p->ncode) {
                    rc = bad("jump not forward within the code", at);
                    break;
                }
                if (mark[x] >= 0 && mark[x] != sp) {
                    rc = bad("jumps with different depths to one place", at);
                    break;
                }
                if (mark[x] < 0)
                    pending++;
                mark[x] = sp; /* the value is kept where it jumps */
                sp--;
            } else {
                sp++;
            }
        } else if (op == OP_ATLEAST) {
            if (pc + 2 > p->ncode) {
                rc = bad("operand past the code", at);
                break;
            }
            int32_t need = p->code[pc], n = p->code[pc + 1];
            if (n < 0 || need < 0 || pc + 2 + (Py_ssize_t)n > p->ncode) {
                rc = bad("bad ATLEAST", at);
                break;
            }
            for (int32_t k = 0; k < n; k++) {
                int32_t x = p->code[pc + 2 + k];
                if (x < 0 || x >= p->nnames) {
                    rc = bad("name out of range", at);
                    break;
                }
            }
            if (rc < 0)
                break;
            pc += 2 + n;
            sp++;
        } else {
            sp -= pops[op] - 1; /* unary: same depth; binary: one less */
        }
        if (sp > maxsp)
            maxsp = sp;
    }
    if (rc < 0) { /* leave mark clean for the next segment */
        for (Py_ssize_t k = 0; k < p->ncode; k++)
            mark[k] = -1;
        return -1;
    }
    *depth = maxsp > 0 ? maxsp : 1;
    return 0;
}

static int32_t *int32s(PyObject *buf, Py_ssize_t *n, const char *what) {
    Py_buffer view;
    if (PyObject_GetBuffer(buf, &view, PyBUF_SIMPLE) < 0)
        return NULL;
    if (view.len % (Py_ssize_t)sizeof(int32_t)) {
        PyBuffer_Release(&view);
        PyErr_Format(PyExc_ValueError, "meta program: %s is not a whole number of int32", what);
        return NULL;
    }
    *n = view.len / (Py_ssize_t)sizeof(int32_t);
    int32_t *out = PyMem_Malloc(view.len ? (size_t)view.len : 1);
    if (out == NULL) {
        PyBuffer_Release(&view);
        PyErr_NoMemory();
        return NULL;
    }
    memcpy(out, view.buf, (size_t)view.len);
    PyBuffer_Release(&view);
    return out;
}

static void mp_free_arrays(MetaProgram *p) {
    if (p->names) {
        for (Py_ssize_t i = 0; i < p->nnames; i++)
            Py_XDECREF(p->names[i]);
        PyMem_Free(p->names);
        p->names = NULL;
    }
    if (p->lazy) {
        for (Py_ssize_t i = 0; i < p->nnames; i++)
            Py_XDECREF(p->lazy[i]);
        PyMem_Free(p->lazy);
        p->lazy = NULL;
    }
    PyMem_Free(p->entry);
    PyMem_Free(p->depth);
    PyMem_Free(p->code);
    PyMem_Free(p->consts);
    PyMem_Free(p->scored);
    p->entry = p->depth = p->code = p->scored = NULL;
    p->consts = NULL;
    p->nnames = 0;
}

/* MetaProgram(names, lazy, entries, code, consts, scored):
 *   names: tuple of str; lazy: tuple, per name the meta's Python function or None;
 *   entries: int32 buffer, per name its segment's start or -1; code: int32 buffer;
 *   consts: tuple of float; scored: int32 buffer of name indices (each with a segment). */
static PyObject *mp_new(PyTypeObject *type, PyObject *args, PyObject *kwds) {
    PyObject *names, *lazy, *entries, *code, *consts, *scored;
    static char *kw[] = {"names", "lazy", "entries", "code", "consts", "scored", NULL};
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "O!O!OOO!O:MetaProgram", kw, &PyTuple_Type, &names,
                                     &PyTuple_Type, &lazy, &entries, &code, &PyTuple_Type, &consts, &scored))
        return NULL;
    Py_ssize_t n = PyTuple_GET_SIZE(names);
    if (PyTuple_GET_SIZE(lazy) != n) {
        PyErr_SetString(PyExc_ValueError, "meta program: one lazy entry per name");
        return NULL;
    }
    MetaProgram *p = (MetaProgram *)type->tp_alloc(type, 0);
    if (p == NULL)
        return NULL;
    int32_t *mark = NULL;
    Py_ssize_t nentries = 0;
    p->zero = PyLong_FromLong(0);
    p->one = PyLong_FromLong(1);
    p->names = PyMem_Calloc(n ? (size_t)n : 1, sizeof(PyObject *));
    p->lazy = PyMem_Calloc(n ? (size_t)n : 1, sizeof(PyObject *));
    p->depth = PyMem_Calloc(n ? (size_t)n : 1, sizeof(int32_t));
    if (p->zero == NULL || p->one == NULL || p->names == NULL || p->lazy == NULL || p->depth == NULL) {
        PyErr_NoMemory();
        goto fail;
    }
    p->nnames = n;
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *s = PyTuple_GET_ITEM(names, i), *f = PyTuple_GET_ITEM(lazy, i);
        if (!PyUnicode_CheckExact(s)) {
            PyErr_SetString(PyExc_TypeError, "meta program: names must be str");
            goto fail;
        }
        Py_INCREF(s);
        p->names[i] = s;
        if (f != Py_None) {
            Py_INCREF(f);
            p->lazy[i] = f;
        }
    }
    if ((p->entry = int32s(entries, &nentries, "entries")) == NULL)
        goto fail;
    if (nentries != n) {
        PyErr_SetString(PyExc_ValueError, "meta program: one entry per name");
        goto fail;
    }
    if ((p->code = int32s(code, &p->ncode, "code")) == NULL)
        goto fail;
    if ((p->scored = int32s(scored, &p->nscored, "scored")) == NULL)
        goto fail;
    p->nconsts = PyTuple_GET_SIZE(consts);
    p->consts = PyMem_Malloc(sizeof(double) * (size_t)(p->nconsts ? p->nconsts : 1));
    if (p->consts == NULL) {
        PyErr_NoMemory();
        goto fail;
    }
    for (Py_ssize_t k = 0; k < p->nconsts; k++) {
        p->consts[k] = PyFloat_AsDouble(PyTuple_GET_ITEM(consts, k));
        if (p->consts[k] == -1.0 && PyErr_Occurred())
            goto fail;
    }
    mark = PyMem_Malloc(sizeof(int32_t) * (size_t)(p->ncode ? p->ncode : 1));
    if (mark == NULL) {
        PyErr_NoMemory();
        goto fail;
    }
    for (Py_ssize_t k = 0; k < p->ncode; k++)
        mark[k] = -1;
    for (Py_ssize_t i = 0; i < n; i++) {
        if (p->entry[i] < -1 || p->entry[i] >= p->ncode) {
            PyErr_SetString(PyExc_ValueError, "meta program: entry out of range");
            goto fail;
        }
        if (p->entry[i] >= 0 && check_segment(p, p->entry[i], mark, &p->depth[i]) < 0)
            goto fail;
    }
    for (Py_ssize_t k = 0; k < p->nscored; k++) {
        if (p->scored[k] < 0 || p->scored[k] >= n || p->entry[p->scored[k]] < 0) {
            PyErr_SetString(PyExc_ValueError, "meta program: a scored meta without a segment");
            goto fail;
        }
    }
    PyMem_Free(mark);
    return (PyObject *)p;
fail:
    PyMem_Free(mark);
    Py_DECREF(p);
    return NULL;
}

static int mp_traverse(MetaProgram *p, visitproc visit, void *arg) {
    for (Py_ssize_t i = 0; p->lazy && i < p->nnames; i++)
        Py_VISIT(p->lazy[i]);
    return 0;
}

static int mp_clear(MetaProgram *p) {
    for (Py_ssize_t i = 0; p->lazy && i < p->nnames; i++)
        Py_CLEAR(p->lazy[i]);
    return 0;
}

static void mp_dealloc(MetaProgram *p) {
    PyObject_GC_UnTrack(p);
    mp_free_arrays(p);
    Py_CLEAR(p->zero);
    Py_CLEAR(p->one);
    Py_TYPE(p)->tp_free((PyObject *)p);
}

static PyObject *mp_size(MetaProgram *p, PyObject *unused) {
    int32_t most = 0;
    for (Py_ssize_t i = 0; i < p->nnames; i++)
        if (p->entry[i] >= 0 && p->depth[i] > most)
            most = p->depth[i];
    return Py_BuildValue("(nni)", p->ncode, p->nscored, (int)most);
}

static PyMethodDef mp_methods[] = {
    {"run", (PyCFunction)(void (*)(void))mp_run, METH_FASTCALL, run_doc},
    {"size", (PyCFunction)mp_size, METH_NOARGS,
     PyDoc_STR("size(): (instructions, scored metas, deepest stack)")},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject MetaProgramType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "gateway_milter.antispam._metavm.MetaProgram",
    .tp_doc = PyDoc_STR("A rule set's meta rules as checked instructions, run in C."),
    .tp_basicsize = sizeof(MetaProgram),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_new = mp_new,
    .tp_dealloc = (destructor)mp_dealloc,
    .tp_traverse = (traverseproc)mp_traverse,
    .tp_clear = (inquiry)mp_clear,
    .tp_methods = mp_methods,
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "gateway_milter.antispam._metavm",
    "MetaProgram in C (gateway_milter/antispam/metavm.py builds its instructions).", -1, NULL,
};

PyMODINIT_FUNC PyInit__metavm(void) {
    if (PyType_Ready(&MetaProgramType) < 0)
        return NULL;
    PyObject *m = PyModule_Create(&module);
    if (m == NULL)
        return NULL;
    Py_INCREF(&MetaProgramType);
    if (PyModule_AddObject(m, "MetaProgram", (PyObject *)&MetaProgramType) < 0) {
        Py_DECREF(&MetaProgramType);
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
