/*
 * Compiled per-window loops: the window builder's fast path (the loop of
 * alm_lhotse.windows.build_windows for entries whose segments are sorted and cannot
 * exceed the speaker limit) and the overlap filter (alm_lhotse.overlap).
 *
 * Why: per window, the pure-Python code spends most of its time in the interpreter
 * (the per-window speaker-duration fold above all). Here the same float operations
 * run in the same order on the same doubles, so results are bit-identical; objects of
 * the entry (starts, ends, truncated parts, spans) are reused, never re-created.
 *
 * Only Python floats are taken (int arithmetic differs from float arithmetic): for
 * anything else both functions return None and the caller runs the pure-Python code.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <math.h>

#define MIN_SEGMENTS_PER_WINDOW 2
#define SPEAKER_SLOTS 5

typedef struct {
    Py_ssize_t n;
    double *start, *end, *dur;
    char *bw_ok, *truthy, *no_speaker;
    Py_ssize_t *code, *bw_stop, *nospk_stop;
    /* fold scratch, one slot per distinct speaker */
    Py_ssize_t n_codes;
    double *acc;
    char *present;
    Py_ssize_t *order;
} Entry;

static void entry_free(Entry *e) {
    PyMem_Free(e->start);
    PyMem_Free(e->bw_ok);
    PyMem_Free(e->code);
    PyMem_Free(e->acc);
    PyMem_Free(e->order);
    PyMem_Free(e->present);
}

static int float_list(PyObject *list, Py_ssize_t n, double *out) {
    /* 1: all floats; 0: some value is not a float (caller falls back). */
    for (Py_ssize_t k = 0; k < n; k++) {
        PyObject *v = PyList_GET_ITEM(list, k);
        if (!PyFloat_CheckExact(v)) return 0;
        out[k] = PyFloat_AS_DOUBLE(v);
    }
    return 1;
}

/* Fills `e`; returns 1 ready, 0 not eligible, -1 error (exception set). */
static int entry_init(Entry *e, PyObject *starts, PyObject *ends, PyObject *durs,
                      PyObject *bw_ok, PyObject *speakers, PyObject *no_speaker) {
    Py_ssize_t n = PyList_GET_SIZE(starts);
    memset(e, 0, sizeof(*e));
    e->n = n;
    if (PyList_GET_SIZE(ends) != n || PyList_GET_SIZE(durs) != n ||
        PyList_GET_SIZE(bw_ok) != n || PyList_GET_SIZE(speakers) != n) {
        PyErr_SetString(PyExc_ValueError, "segment lists differ in length");
        return -1;
    }
    Py_ssize_t m = n ? n : 1;
    e->start = PyMem_New(double, 3 * m);
    e->bw_ok = PyMem_New(char, 3 * m);
    e->code = PyMem_New(Py_ssize_t, 3 * m + 1);
    if (!e->start || !e->bw_ok || !e->code) {
        PyErr_NoMemory();
        return -1;
    }
    e->end = e->start + m;
    e->dur = e->start + 2 * m;
    e->truthy = e->bw_ok + m;
    e->no_speaker = e->bw_ok + 2 * m;
    e->bw_stop = e->code + m;
    e->nospk_stop = e->code + 2 * m;
    if (!float_list(starts, n, e->start) || !float_list(ends, n, e->end) || !float_list(durs, n, e->dur))
        return 0;

    PyObject *codes = PyDict_New();
    if (!codes) return -1;
    for (Py_ssize_t k = 0; k < n; k++) {
        PyObject *spk = PyList_GET_ITEM(speakers, k);
        int ok = PyObject_IsTrue(PyList_GET_ITEM(bw_ok, k));
        int truthy = PyObject_IsTrue(spk);
        int nospk = PyObject_RichCompareBool(spk, no_speaker, Py_EQ);
        if (ok < 0 || truthy < 0 || nospk < 0) goto fail;
        e->bw_ok[k] = (char)ok;
        e->truthy[k] = (char)truthy;
        e->no_speaker[k] = (char)nospk;
        e->code[k] = -1;
        if (truthy) {
            PyObject *found = PyDict_GetItemWithError(codes, spk);
            if (found) {
                e->code[k] = PyLong_AsSsize_t(found);
            } else {
                if (PyErr_Occurred()) goto fail;
                PyObject *c = PyLong_FromSsize_t(e->n_codes);
                if (!c || PyDict_SetItem(codes, spk, c) < 0) {
                    Py_XDECREF(c);
                    goto fail;
                }
                Py_DECREF(c);
                e->code[k] = e->n_codes++;
            }
        }
    }
    Py_DECREF(codes);
    Py_ssize_t bw_next = n, nospk_next = n;
    for (Py_ssize_t k = n - 1; k >= 0; k--) {
        if (!e->bw_ok[k]) bw_next = k;
        if (e->no_speaker[k]) nospk_next = k;
        e->bw_stop[k] = bw_next;
        e->nospk_stop[k] = nospk_next;
    }
    Py_ssize_t slots = e->n_codes ? e->n_codes : 1;
    e->acc = PyMem_New(double, slots);
    e->order = PyMem_New(Py_ssize_t, slots);
    e->present = PyMem_Malloc(slots);
    if (!e->acc || !e->order || !e->present) {
        PyErr_NoMemory();
        return -1;
    }
    return 1;
fail:
    Py_DECREF(codes);
    return -1;
}

/* The reference's speaker durations, largest first, padded or cut to five slots:
 * sums run in segment order from the window's first segment, exactly as the Python
 * fold; ties keep first-seen order (sorted(..., reverse=True) semantics). */
static PyObject *speaker_durations(Entry *e, Py_ssize_t first, Py_ssize_t stop, Py_ssize_t part_code,
                                   double part_dur, Py_ssize_t *n_speakers) {
    Py_ssize_t used = 0;
    memset(e->present, 0, e->n_codes ? e->n_codes : 1);
    for (Py_ssize_t k = first; k <= stop; k++) {
        Py_ssize_t c;
        double d;
        if (k < stop) {
            if (!e->truthy[k]) continue;
            c = e->code[k];
            d = e->dur[k];
        } else {
            if (part_code < 0) break;
            c = part_code;
            d = part_dur;
        }
        if (!e->present[c]) {
            e->present[c] = 1;
            e->order[used++] = c;
            e->acc[c] = 0.0 + d;
        } else {
            e->acc[c] = e->acc[c] + d;
        }
    }
    *n_speakers = used;
    PyObject *top = PyList_New(used);
    if (!top) return NULL;
    for (Py_ssize_t i = 0; i < used; i++) {
        PyObject *v = PyFloat_FromDouble(e->acc[e->order[i]]);
        if (!v) {
            Py_DECREF(top);
            return NULL;
        }
        PyList_SET_ITEM(top, i, v);
    }
    if (PyList_Reverse(top) < 0 || PyList_Sort(top) < 0 || PyList_Reverse(top) < 0) {
        Py_DECREF(top);
        return NULL;
    }
    if (used > SPEAKER_SLOTS) {
        if (PyList_SetSlice(top, SPEAKER_SLOTS, used, NULL) < 0) {
            Py_DECREF(top);
            return NULL;
        }
    }
    for (Py_ssize_t i = used; i < SPEAKER_SLOTS; i++) {
        PyObject *zero = PyFloat_FromDouble(0.0);
        if (!zero || PyList_Append(top, zero) < 0) {
            Py_XDECREF(zero);
            Py_DECREF(top);
            return NULL;
        }
        Py_DECREF(zero);
    }
    return top;
}

static PyObject *make_window(PyObject *window_type, Py_ssize_t first, Py_ssize_t stop, PyObject *part,
                             PyObject *w_start, PyObject *w_end, PyObject *top) {
    PyObject *f = PyLong_FromSsize_t(first), *s = PyLong_FromSsize_t(stop);
    PyObject *w = NULL;
    if (f && s) {
        PyObject *args[6] = {f, s, part ? part : Py_None, w_start, w_end, top};
        w = PyObject_Vectorcall(window_type, args, top ? 6 : 5, NULL);
    }
    Py_XDECREF(f);
    Py_XDECREF(s);
    return w;
}

static PyObject *make_lost(PyObject *lost_type, PyObject *window, Py_ssize_t next_index, Py_ssize_t prev_index) {
    PyObject *nx = PyLong_FromSsize_t(next_index), *pv = PyLong_FromSsize_t(prev_index);
    PyObject *lw = NULL;
    if (nx && pv) {
        PyObject *args[3] = {window, nx, pv};
        lw = PyObject_Vectorcall(lost_type, args, 3, NULL);
    }
    Py_XDECREF(nx);
    Py_XDECREF(pv);
    return lw;
}

/* 1: next segment counts as "no speaker" for lost-window statistics (a missing
 * speaker key does); 0: it does not; -1: error. */
static int next_is_no_speaker(PyObject *seg, PyObject *speaker_key, PyObject *no_speaker) {
    if (!PyDict_Check(seg)) {
        PyErr_SetString(PyExc_TypeError, "segments must be dicts");
        return -1;
    }
    PyObject *spk = PyDict_GetItemWithError(seg, speaker_key);
    if (!spk) return PyErr_Occurred() ? -1 : 1;
    return PyObject_RichCompareBool(spk, no_speaker, Py_EQ);
}

PyDoc_STRVAR(build_fast_doc,
    "build_fast(segments, starts, ends, durs, bw_ok, speakers, max_d, min_d, max_spk, min_spk,\n"
    "           truncation, keep_speaker, stored_bw_bad, truncate, window_type, lost_type, no_speaker)\n"
    "--\n\n"
    "The fast-path window loop. Returns None when the entry holds non-float times, else\n"
    "(windows, lost, events, (lost_bw, lost_win, lost_spk, lost_no_spkr, lost_next),\n"
    "(dur_bw, dur_win, dur_spk, dur_no_spkr, dur_next)).");

static PyObject *build_fast(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 17) {
        PyErr_SetString(PyExc_TypeError, "build_fast takes 17 arguments");
        return NULL;
    }
    PyObject *segments = args[0], *starts = args[1], *ends = args[2], *durs = args[3];
    PyObject *bw_list = args[4], *speakers = args[5];
    for (int i = 0; i < 6; i++) {
        if (!PyList_Check(args[i])) {
            PyErr_SetString(PyExc_TypeError, "build_fast expects lists");
            return NULL;
        }
    }
    double max_d = PyFloat_AsDouble(args[6]), min_d = PyFloat_AsDouble(args[7]);
    Py_ssize_t max_spk = PyLong_AsSsize_t(args[8]), min_spk = PyLong_AsSsize_t(args[9]);
    if (PyErr_Occurred()) return NULL;
    int truncation = PyObject_IsTrue(args[10]), keep_speaker = PyObject_IsTrue(args[11]);
    int stored_bw_bad = PyObject_IsTrue(args[12]);
    if (truncation < 0 || keep_speaker < 0 || stored_bw_bad < 0) return NULL;
    PyObject *truncate = args[13], *window_type = args[14], *lost_type = args[15], *no_speaker = args[16];

    if (PyList_GET_SIZE(segments) != PyList_GET_SIZE(starts)) {
        PyErr_SetString(PyExc_ValueError, "segment lists differ in length");
        return NULL;
    }
    Entry e;
    int ready = entry_init(&e, starts, ends, durs, bw_list, speakers, no_speaker);
    if (ready <= 0) {
        entry_free(&e);
        if (ready < 0) return NULL;
        Py_RETURN_NONE;
    }
    PyObject *windows = PyList_New(0), *lost = PyList_New(0);
    PyObject *end_key = PyUnicode_FromString("end"), *start_key = PyUnicode_FromString("start");
    PyObject *speaker_key = PyUnicode_FromString("speaker");
    PyObject *result = NULL, *part = NULL;
    int not_float = 0;
    if (!windows || !lost || !end_key || !start_key || !speaker_key) goto done;

    Py_ssize_t n = e.n, dur_stop = 0, events = 0;
    Py_ssize_t lost_bw = 0, lost_win = 0, lost_spk = 0, lost_no_spkr = 0, lost_next = 0;
    double dur_bw = 0.0, dur_win = 0.0, dur_spk = 0.0, dur_no_spkr = 0.0, dur_next = 0.0;

    for (Py_ssize_t first = 0; first < n; first++) {
        if (!e.bw_ok[first]) {
            lost_bw++;
            dur_bw += e.dur[first];
            continue;
        }
        double w_start = e.start[first];
        if (dur_stop < first) dur_stop = first;
        while (dur_stop < n && e.end[dur_stop] - w_start <= max_d) dur_stop++;
        Py_ssize_t j = e.bw_stop[first];
        if (e.nospk_stop[first] < j) j = e.nospk_stop[first];
        if (dur_stop < j) j = dur_stop;
        int grow_to_part = j < n && j == dur_stop && j < e.bw_stop[first];

        part = NULL;
        double part_end = 0.0;
        if (grow_to_part && truncation) {
            double limit = w_start + max_d;
            if (e.start[j] < limit) {
                events++;
                PyObject *limit_obj = PyFloat_FromDouble(limit);
                if (!limit_obj) goto done;
                PyObject *targs[2] = {PyList_GET_ITEM(segments, j), limit_obj};
                PyObject *cand = PyObject_Vectorcall(truncate, targs, 2, NULL);
                Py_DECREF(limit_obj);
                if (!cand) goto done;
                int keep = PyObject_RichCompareBool(PyList_GET_ITEM(speakers, j), no_speaker, Py_NE);
                if (keep < 0) {
                    Py_DECREF(cand);
                    goto done;
                }
                if (keep) {
                    part = cand;
                } else {
                    Py_DECREF(cand);
                }
            }
        }
        PyObject *w_start_obj = PyList_GET_ITEM(starts, first);
        PyObject *w_end_obj;
        double w_end;
        if (part) {
            w_end_obj = PyDict_GetItemWithError(part, end_key);
            if (!w_end_obj) {
                if (!PyErr_Occurred()) PyErr_SetObject(PyExc_KeyError, end_key);
                goto done;
            }
            if (!PyFloat_CheckExact(w_end_obj)) {
                not_float = 1;
                goto done;
            }
            part_end = w_end = PyFloat_AS_DOUBLE(w_end_obj);
        } else {
            Py_ssize_t k = j > first ? j - 1 : first;
            w_end_obj = PyList_GET_ITEM(ends, k);
            w_end = e.end[k];
        }
        Py_ssize_t count = j - first + (part != NULL);
        double w_dur = w_end - w_start;
        if (!(min_d <= w_dur && w_dur <= max_d) || count < MIN_SEGMENTS_PER_WINDOW || stored_bw_bad) {
            Py_ssize_t next_index = j < n - 1 ? j : n - 1;
            lost_win++;
            dur_win += e.dur[first];
            int nospk = next_is_no_speaker(PyList_GET_ITEM(segments, next_index), speaker_key, no_speaker);
            if (nospk < 0) goto done;
            if (nospk) {
                lost_no_spkr++;
                dur_no_spkr += e.dur[first];
            } else if (!e.bw_ok[next_index]) {
                lost_next++;
                dur_next += e.dur[first];
            }
            PyObject *w = make_window(window_type, first, j, part, w_start_obj, w_end_obj, NULL);
            if (!w) goto done;
            PyObject *lw = make_lost(lost_type, w, next_index, first > 0 ? first - 1 : 0);
            Py_DECREF(w);
            if (!lw || PyList_Append(lost, lw) < 0) {
                Py_XDECREF(lw);
                goto done;
            }
            Py_DECREF(lw);
            Py_CLEAR(part);
            continue;
        }
        Py_ssize_t n_speakers = 0;
        PyObject *top = NULL;
        if (keep_speaker) {
            double part_dur = 0.0;
            Py_ssize_t part_code = -1;
            if (part && e.truthy[j]) {
                PyObject *ps = PyDict_GetItemWithError(part, start_key);
                if (!ps) {
                    if (!PyErr_Occurred()) PyErr_SetObject(PyExc_KeyError, start_key);
                    goto done;
                }
                if (!PyFloat_CheckExact(ps)) {
                    not_float = 1;
                    goto done;
                }
                part_code = e.code[j];
                part_dur = part_end - PyFloat_AS_DOUBLE(ps);
            }
            top = speaker_durations(&e, first, j, part_code, part_dur, &n_speakers);
            if (!top) goto done;
        }
        if (!(min_spk <= n_speakers && n_speakers <= max_spk)) {
            lost_spk++;
            dur_spk += e.dur[first];
            Py_XDECREF(top);
            Py_CLEAR(part);
            continue;
        }
        PyObject *w = make_window(window_type, first, j, part, w_start_obj, w_end_obj, top);
        Py_DECREF(top);
        Py_CLEAR(part);
        if (!w || PyList_Append(windows, w) < 0) {
            Py_XDECREF(w);
            goto done;
        }
        Py_DECREF(w);
    }
    result = Py_BuildValue("(OOn(nnnnn)(ddddd))", windows, lost, events, lost_bw, lost_win, lost_spk,
                           lost_no_spkr, lost_next, dur_bw, dur_win, dur_spk, dur_no_spkr, dur_next);
done:
    Py_XDECREF(part);
    Py_XDECREF(windows);
    Py_XDECREF(lost);
    Py_XDECREF(end_key);
    Py_XDECREF(start_key);
    Py_XDECREF(speaker_key);
    entry_free(&e);
    if (not_float && !PyErr_Occurred()) Py_RETURN_NONE;
    return result;
}

typedef struct {
    double start, end;
    Py_ssize_t index;
} Span;

/* (start, end) order, ties by position: a stable sort, as Python's sorted(). */
static int span_order(const void *pa, const void *pb) {
    const Span *a = pa, *b = pb;
    if (a->start != b->start) return a->start < b->start ? -1 : 1;
    if (a->end != b->end) return a->end < b->end ? -1 : 1;
    return a->index < b->index ? -1 : (a->index > b->index);
}

PyDoc_STRVAR(overlap_filter_doc,
    "overlap_filter(spans, threshold, target_duration)\n"
    "--\n\n"
    "The overlap filter on (end, start) float pairs. Returns None when a value is not a\n"
    "finite float, else (kept spans in (start, end) order, mask in window order). A mask\n"
    "value of None marks a window that is not kept exactly but lies within rounding\n"
    "distance of a kept one: the caller decides it with the reference's round().");

static PyObject *overlap_filter(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 3 || !PyList_Check(args[0])) {
        PyErr_SetString(PyExc_TypeError, "overlap_filter(spans: list, threshold, target_duration)");
        return NULL;
    }
    PyObject *spans = args[0];
    double threshold = PyFloat_AsDouble(args[1]), target = PyFloat_AsDouble(args[2]);
    if (PyErr_Occurred()) return NULL;
    Py_ssize_t n = PyList_GET_SIZE(spans);
    Span *order = PyMem_New(Span, n ? n : 1);
    double *dur = PyMem_New(double, n ? n : 1);
    char *removed = PyMem_Calloc(n ? n : 1, 1);
    PyObject *kept = NULL, *mask = NULL, *result = NULL;
    if (!order || !dur || !removed) {
        PyErr_NoMemory();
        goto done;
    }
    for (Py_ssize_t k = 0; k < n; k++) {
        PyObject *span = PyList_GET_ITEM(spans, k);
        if (!PyTuple_CheckExact(span) || PyTuple_GET_SIZE(span) != 2) goto not_eligible;
        PyObject *e = PyTuple_GET_ITEM(span, 0), *s = PyTuple_GET_ITEM(span, 1);
        if (!PyFloat_CheckExact(e) || !PyFloat_CheckExact(s)) goto not_eligible;
        order[k].end = PyFloat_AS_DOUBLE(e);
        order[k].start = PyFloat_AS_DOUBLE(s);
        if (!isfinite(order[k].end) || !isfinite(order[k].start)) goto not_eligible;
        order[k].index = k;
    }
    qsort(order, n, sizeof(Span), span_order);
    for (Py_ssize_t k = 0; k < n; k++) dur[k] = order[k].end - order[k].start;
    for (Py_ssize_t i = 0; i < n; i++) {
        if (removed[i]) continue;
        double start_i = order[i].start, end_i = order[i].end, dur_i = dur[i];
        double diff_i = fabs(dur_i - target);
        for (Py_ssize_t j = i + 1; j < n; j++) {
            double start_j = order[j].start;
            if (start_j >= end_i) break;
            if (removed[j]) continue;
            double end_j = order[j].end, dur_j = dur[j];
            double overlap = (end_j < end_i ? end_j : end_i) - (start_j > start_i ? start_j : start_i);
            if (overlap <= 0) overlap = 0.0;
            double shorter = dur_j < dur_i ? dur_j : dur_i;
            if ((shorter != 0 ? overlap / shorter : 0.0) < threshold) continue;
            double diff_j = fabs(dur_j - target);
            if (diff_i < diff_j || (diff_i == diff_j && dur_i >= dur_j)) {
                removed[j] = 1;
            } else {
                removed[i] = 1;
                break;
            }
        }
    }
    kept = PyList_New(0);
    mask = PyList_New(n);
    if (!kept || !mask) goto done;
    Py_ssize_t n_kept = 0;
    for (Py_ssize_t k = 0; k < n; k++) {
        if (removed[k]) continue;
        if (PyList_Append(kept, PyList_GET_ITEM(spans, order[k].index)) < 0) goto done;
        order[n_kept++] = order[k]; /* kept spans, still in (start, end) order */
    }
    for (Py_ssize_t k = 0; k < n; k++) {
        PyObject *span = PyList_GET_ITEM(spans, k);
        double end = PyFloat_AS_DOUBLE(PyTuple_GET_ITEM(span, 0));
        double start = PyFloat_AS_DOUBLE(PyTuple_GET_ITEM(span, 1));
        double near = 2e-6 + fabs(start) * 1e-12;
        /* first kept span whose start is at least start - near */
        Py_ssize_t lo = 0, hi = n_kept;
        while (lo < hi) {
            Py_ssize_t mid = (lo + hi) / 2;
            if (order[mid].start < start - near) lo = mid + 1;
            else hi = mid;
        }
        PyObject *verdict = Py_False;
        for (Py_ssize_t q = lo; q < n_kept && order[q].start <= start + near; q++) {
            if (order[q].start == start && order[q].end == end) {
                verdict = Py_True;
                break;
            }
            verdict = Py_None;
        }
        Py_INCREF(verdict);
        PyList_SET_ITEM(mask, k, verdict);
    }
    result = PyTuple_Pack(2, kept, mask);
    goto done;
not_eligible:
    result = Py_None;
    Py_INCREF(result);
done:
    Py_XDECREF(kept);
    Py_XDECREF(mask);
    PyMem_Free(order);
    PyMem_Free(dur);
    PyMem_Free(removed);
    return result;
}

static PyMethodDef methods[] = {
    {"build_fast", (PyCFunction)(void (*)(void))build_fast, METH_FASTCALL, build_fast_doc},
    {"overlap_filter", (PyCFunction)(void (*)(void))overlap_filter, METH_FASTCALL, overlap_filter_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "alm_lhotse._kernel",
    "Compiled fast path of the window builder (optional; pure Python is the fallback).", -1, methods,
};

PyMODINIT_FUNC PyInit__kernel(void) { return PyModule_Create(&module); }
