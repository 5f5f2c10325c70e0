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
    PyObject *speakers; /* each segment's speaker (None when absent) */
} Entry;

static void entry_free(Entry *e) {
    PyMem_Free(e->start);
    PyMem_Free(e->bw_ok);
    PyMem_Free(e->code);
    PyMem_Free(e->acc);
    PyMem_Free(e->order);
    PyMem_Free(e->present);
    Py_XDECREF(e->speakers);
}

/* Interned keys, made once at import. */
static PyObject *KEY_START, *KEY_END, *KEY_SPEAKER, *KEY_METRICS, *KEY_BANDWIDTH;

/* Reads the entry's segments into `e`, and decides whether the fast path applies:
 * every segment a dict with float start and end, starts and ends sorted, and no more
 * distinct speakers than the limit (counted as one when speakers are dropped).
 * Returns 1 ready, 0 not eligible (the caller runs the pure-Python builder, which
 * also raises whatever error the entry deserves), -1 error (exception set). */
static int entry_init(Entry *e, PyObject *segments, PyObject *min_bw, PyObject *no_speaker,
                      int keep_speaker, Py_ssize_t max_spk) {
    Py_ssize_t n = PyList_GET_SIZE(segments);
    memset(e, 0, sizeof(*e));
    e->n = n;
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
    e->speakers = PyList_New(n);
    PyObject *codes = PyDict_New();
    if (!e->speakers || !codes) goto fail;
    for (Py_ssize_t k = 0; k < n; k++) {
        PyObject *seg = PyList_GET_ITEM(segments, k);
        if (!PyDict_Check(seg)) goto not_eligible;
        PyObject *start = PyDict_GetItemWithError(seg, KEY_START);
        PyObject *end = start ? PyDict_GetItemWithError(seg, KEY_END) : NULL;
        if (!end) {
            if (PyErr_Occurred()) goto fail;
            goto not_eligible;
        }
        if (!PyFloat_CheckExact(start) || !PyFloat_CheckExact(end)) goto not_eligible;
        e->start[k] = PyFloat_AS_DOUBLE(start);
        e->end[k] = PyFloat_AS_DOUBLE(end);
        e->dur[k] = e->end[k] - e->start[k];
        if (k > 0 && !(e->start[k - 1] <= e->start[k] && e->end[k - 1] <= e->end[k])) goto not_eligible;

        /* bandwidth: metrics.bandwidth, 0 without metrics (as the reference) */
        PyObject *metrics = PyDict_GetItemWithError(seg, KEY_METRICS);
        PyObject *bw = NULL;
        if (metrics && metrics != Py_None) {
            if (!PyDict_Check(metrics)) goto not_eligible;
            bw = PyDict_GetItemWithError(metrics, KEY_BANDWIDTH);
        }
        if (PyErr_Occurred()) goto fail;
        PyObject *zero = NULL;
        if (!bw) bw = zero = PyLong_FromLong(0);
        if (!bw) goto fail;
        int ok = PyObject_RichCompareBool(bw, min_bw, Py_GE);
        Py_XDECREF(zero);
        if (ok < 0) goto fail;

        PyObject *spk = PyDict_GetItemWithError(seg, KEY_SPEAKER);
        if (!spk) {
            if (PyErr_Occurred()) goto fail;
            spk = Py_None;
        }
        Py_INCREF(spk);
        PyList_SET_ITEM(e->speakers, k, spk);
        int truthy = PyObject_IsTrue(spk);
        int nospk = PyObject_RichCompareBool(spk, no_speaker, Py_EQ);
        if (truthy < 0 || nospk < 0) goto fail;
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
    Py_CLEAR(codes);
    if ((keep_speaker ? e->n_codes : (e->n_codes ? 1 : 0)) > max_spk) return 0;
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
not_eligible:
    Py_XDECREF(codes);
    return 0;
fail:
    Py_XDECREF(codes);
    return -1;
}

/* Python's own sum() of the segment durations, so the total is whatever the running
 * Python computes (plain or compensated summation). */
static PyObject *total_duration(Entry *e, PyObject *sum) {
    PyObject *durs = PyList_New(e->n);
    if (!durs) return NULL;
    for (Py_ssize_t k = 0; k < e->n; k++) {
        PyObject *d = PyFloat_FromDouble(e->dur[k]);
        if (!d) {
            Py_DECREF(durs);
            return NULL;
        }
        PyList_SET_ITEM(durs, k, d);
    }
    PyObject *total = PyObject_Vectorcall(sum, &durs, 1, NULL);
    Py_DECREF(durs);
    return total;
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

/* After an ordinary exception, None: the pure-Python builder reruns the entry and raises
 * the same error, at the same point, with its own message. Memory errors propagate. */
static PyObject *hand_back(void) {
    if (PyErr_Occurred() && PyErr_ExceptionMatches(PyExc_Exception) && !PyErr_ExceptionMatches(PyExc_MemoryError)) {
        PyErr_Clear();
        Py_RETURN_NONE;
    }
    return NULL;
}

PyDoc_STRVAR(build_entry_doc,
    "build_entry(segments, min_bw, max_d, min_d, max_spk, min_spk, truncation, keep_speaker,\n"
    "            stored_bw_bad, truncate, window_type, lost_type, no_speaker, sum)\n"
    "--\n\n"
    "The builder's fast path for one entry's (ordered) segments. Returns None where it does\n"
    "not apply (unsorted, crowded, non-float times, or anything the pure-Python builder\n"
    "would raise on: it then runs and raises), else (windows, lost, events, (lost_bw,\n"
    "lost_win, lost_spk, lost_no_spkr, lost_next), (dur_bw, dur_win, dur_spk, dur_no_spkr,\n"
    "dur_next), total_dur).");

static PyObject *build_entry(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 14 || !PyList_Check(args[0])) {
        PyErr_SetString(PyExc_TypeError, "build_entry takes 14 arguments, segments first (a list)");
        return NULL;
    }
    PyObject *segments = args[0], *min_bw = args[1];
    double max_d = PyFloat_AsDouble(args[2]), min_d = PyFloat_AsDouble(args[3]);
    Py_ssize_t max_spk = PyLong_AsSsize_t(args[4]), min_spk = PyLong_AsSsize_t(args[5]);
    if (PyErr_Occurred()) return NULL;
    int truncation = PyObject_IsTrue(args[6]), keep_speaker = PyObject_IsTrue(args[7]);
    int stored_bw_bad = PyObject_IsTrue(args[8]);
    if (truncation < 0 || keep_speaker < 0 || stored_bw_bad < 0) return NULL;
    PyObject *truncate = args[9], *window_type = args[10], *lost_type = args[11], *no_speaker = args[12];
    PyObject *sum = args[13];

    Entry e;
    int ready = entry_init(&e, segments, min_bw, no_speaker, keep_speaker, max_spk);
    if (ready <= 0) {
        entry_free(&e);
        if (ready < 0) return hand_back();
        Py_RETURN_NONE;
    }
    PyObject *speakers = e.speakers;
    PyObject *total = NULL;
    PyObject *windows = PyList_New(0), *lost = PyList_New(0);
    PyObject *end_key = KEY_END, *start_key = KEY_START, *speaker_key = KEY_SPEAKER;
    PyObject *result = NULL, *part = NULL;
    int not_float = 0;
    if (!windows || !lost) goto done;

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
        PyObject *w_start_obj = PyDict_GetItem(PyList_GET_ITEM(segments, first), KEY_START);
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
            w_end_obj = PyDict_GetItem(PyList_GET_ITEM(segments, k), KEY_END);
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
    total = total_duration(&e, sum);
    if (!total) goto done;
    result = Py_BuildValue("(OOn(nnnnn)(ddddd)O)", windows, lost, events, lost_bw, lost_win, lost_spk,
                           lost_no_spkr, lost_next, dur_bw, dur_win, dur_spk, dur_no_spkr, dur_next, total);
done:
    Py_XDECREF(part);
    Py_XDECREF(windows);
    Py_XDECREF(lost);
    Py_XDECREF(total);
    entry_free(&e);
    if (not_float && !PyErr_Occurred()) Py_RETURN_NONE;
    return result ? result : hand_back();
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

PyDoc_STRVAR(element_offsets_doc,
    "element_offsets(array_json)\n"
    "--\n\n"
    "For a compact JSON array of objects (orjson output), where each element starts,\n"
    "relative to the text inside the brackets, plus that text's length + 1: element k\n"
    "is inner[offsets[k] : offsets[k + 1] - 1].");

static PyObject *element_offsets(PyObject *self, PyObject *arg) {
    if (!PyBytes_Check(arg)) {
        PyErr_SetString(PyExc_TypeError, "element_offsets expects bytes");
        return NULL;
    }
    const char *buf = PyBytes_AS_STRING(arg);
    Py_ssize_t size = PyBytes_GET_SIZE(arg);
    if (size < 2 || buf[0] != '[' || buf[size - 1] != ']') {
        PyErr_SetString(PyExc_ValueError, "element_offsets expects a JSON array");
        return NULL;
    }
    PyObject *offsets = PyList_New(0);
    if (!offsets) return NULL;
    Py_ssize_t depth = 0, inner = size - 2;
    int in_string = 0;
    if (inner > 0) {
        PyObject *zero = PyLong_FromLong(0);
        if (!zero || PyList_Append(offsets, zero) < 0) {
            Py_XDECREF(zero);
            Py_DECREF(offsets);
            return NULL;
        }
        Py_DECREF(zero);
    }
    for (Py_ssize_t k = 0; k < inner; k++) {
        char c = buf[k + 1];
        if (in_string) {
            if (c == '\\') k++;
            else if (c == '"') in_string = 0;
            continue;
        }
        if (c == '"') in_string = 1;
        else if (c == '{' || c == '[') depth++;
        else if (c == '}' || c == ']') depth--;
        else if (c == ',' && depth == 0) {
            PyObject *at = PyLong_FromSsize_t(k + 1);
            if (!at || PyList_Append(offsets, at) < 0) {
                Py_XDECREF(at);
                Py_DECREF(offsets);
                return NULL;
            }
            Py_DECREF(at);
        }
    }
    PyObject *end = PyLong_FromSsize_t(inner + 1);
    if (!end || PyList_Append(offsets, end) < 0) {
        Py_XDECREF(end);
        Py_DECREF(offsets);
        return NULL;
    }
    Py_DECREF(end);
    return offsets;
}

/* A dict without the keys in `drop` (the dict itself when it has none of them). */
static PyObject *strip_fields(PyObject *obj, PyObject *drop) {
    if (!PyDict_Check(obj)) {
        PyErr_SetString(PyExc_TypeError, "a truncated segment must be a dict");
        return NULL;
    }
    PyObject *key, *value;
    Py_ssize_t pos = 0;
    int any = 0;
    while (PyDict_Next(obj, &pos, &key, &value)) {
        int found = PySet_Contains(drop, key);
        if (found < 0) return NULL;
        if (found) {
            any = 1;
            break;
        }
    }
    if (!any) {
        Py_INCREF(obj);
        return obj;
    }
    PyObject *out = PyDict_New();
    if (!out) return NULL;
    pos = 0;
    while (PyDict_Next(obj, &pos, &key, &value)) {
        int found = PySet_Contains(drop, key);
        if (found < 0 || (!found && PyDict_SetItem(out, key, value) < 0)) {
            Py_DECREF(out);
            return NULL;
        }
    }
    return out;
}

static PyObject *dump(PyObject *dumps, PyObject *value) {
    PyObject *out = PyObject_Vectorcall(dumps, &value, 1, NULL);
    if (out && !PyBytes_Check(out)) {
        Py_DECREF(out);
        PyErr_SetString(PyExc_TypeError, "dumps must return bytes");
        return NULL;
    }
    return out;
}

static const char WINDOW_HEAD[] = "{\"segments\":[";
static const char WINDOW_MID[] = "],\"speaker_durations\":";

PyDoc_STRVAR(render_windows_doc,
    "render_windows(array, offsets, windows, kept, drop, dumps)\n"
    "--\n\n"
    "The JSON arrays of all windows and of the kept ones, as two bytes objects. `array` is\n"
    "the entry's segments serialised as one JSON array, `offsets` its element_offsets;\n"
    "each window is its run of whole segments, its truncated part\n"
    "(fields in `drop` removed) and its speaker durations, serialised with `dumps`.");

static PyObject *render_windows(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 6 || !PyBytes_Check(args[0]) || !PyList_Check(args[1]) || !PyList_Check(args[2]) ||
        !PyList_Check(args[3]) || !PyAnySet_Check(args[4])) {
        PyErr_SetString(PyExc_TypeError, "render_windows(array: bytes, offsets: list, windows: list, kept: list, drop: set, dumps)");
        return NULL;
    }
    if (PyBytes_GET_SIZE(args[0]) < 2) {
        PyErr_SetString(PyExc_ValueError, "render_windows expects a JSON array");
        return NULL;
    }
    const char *inner = PyBytes_AS_STRING(args[0]) + 1;
    Py_ssize_t inner_size = PyBytes_GET_SIZE(args[0]) - 2;
    PyObject *offsets = args[1], *windows = args[2], *kept = args[3], *drop = args[4], *dumps = args[5];
    Py_ssize_t n = PyList_GET_SIZE(windows), n_offsets = PyList_GET_SIZE(offsets);
    if (PyList_GET_SIZE(kept) != n) {
        PyErr_SetString(PyExc_ValueError, "kept and windows differ in length");
        return NULL;
    }
    Py_ssize_t *run_at = PyMem_New(Py_ssize_t, 2 * (n ? n : 1));
    PyObject **pieces = PyMem_Calloc(2 * (n ? n : 1), sizeof(PyObject *));
    char *keep = PyMem_Malloc(n ? n : 1);
    PyObject *all = NULL, *selected = NULL, *result = NULL;
    if (!run_at || !pieces || !keep) {
        PyErr_NoMemory();
        goto done;
    }
    Py_ssize_t size_all = 2, size_kept = 2, n_kept = 0;
    const Py_ssize_t fixed = (Py_ssize_t)(sizeof(WINDOW_HEAD) - 1 + sizeof(WINDOW_MID) - 1 + 1);
    for (Py_ssize_t k = 0; k < n; k++) {
        PyObject *w = PyList_GET_ITEM(windows, k);
        PyObject *first_o = PyObject_GetAttrString(w, "first");
        PyObject *stop_o = PyObject_GetAttrString(w, "stop");
        Py_ssize_t first = first_o ? PyLong_AsSsize_t(first_o) : -1;
        Py_ssize_t stop = stop_o ? PyLong_AsSsize_t(stop_o) : -1;
        Py_XDECREF(first_o);
        Py_XDECREF(stop_o);
        if (PyErr_Occurred()) goto done;
        if (first < 0 || stop <= first || stop >= n_offsets) {
            PyErr_SetString(PyExc_ValueError, "a window's segment range is out of bounds");
            goto done;
        }
        Py_ssize_t begin = PyLong_AsSsize_t(PyList_GET_ITEM(offsets, first));
        Py_ssize_t end = PyLong_AsSsize_t(PyList_GET_ITEM(offsets, stop)) - 1;
        if (PyErr_Occurred()) goto done;
        if (begin < 0 || end < begin || end > inner_size) {
            PyErr_SetString(PyExc_ValueError, "segment offsets out of bounds");
            goto done;
        }
        run_at[2 * k] = begin;
        run_at[2 * k + 1] = end;
        PyObject *part = PyObject_GetAttrString(w, "part");
        if (!part) goto done;
        if (part != Py_None) {
            PyObject *stripped = strip_fields(part, drop);
            Py_DECREF(part);
            if (!stripped) goto done;
            pieces[2 * k] = dump(dumps, stripped);
            Py_DECREF(stripped);
            if (!pieces[2 * k]) goto done;
        } else {
            Py_DECREF(part);
        }
        PyObject *durations = PyObject_GetAttrString(w, "speaker_durations");
        if (!durations) goto done;
        pieces[2 * k + 1] = dump(dumps, durations);
        Py_DECREF(durations);
        if (!pieces[2 * k + 1]) goto done;
        int is_kept = PyObject_IsTrue(PyList_GET_ITEM(kept, k));
        if (is_kept < 0) goto done;
        keep[k] = (char)is_kept;
        Py_ssize_t size = fixed + (end - begin) + PyBytes_GET_SIZE(pieces[2 * k + 1]);
        if (pieces[2 * k]) size += 1 + PyBytes_GET_SIZE(pieces[2 * k]);
        size_all += size + (k > 0);
        if (is_kept) size_kept += size + (n_kept++ > 0);
    }
    all = PyBytes_FromStringAndSize(NULL, size_all);
    selected = PyBytes_FromStringAndSize(NULL, size_kept);
    if (!all || !selected) goto done;
    char *out_all = PyBytes_AS_STRING(all), *out_kept = PyBytes_AS_STRING(selected);
    *out_all++ = '[';
    *out_kept++ = '[';
    Py_ssize_t written_kept = 0;
    for (Py_ssize_t k = 0; k < n; k++) {
        if (k > 0) *out_all++ = ',';
        char *element = out_all;
        memcpy(out_all, WINDOW_HEAD, sizeof(WINDOW_HEAD) - 1);
        out_all += sizeof(WINDOW_HEAD) - 1;
        memcpy(out_all, inner + run_at[2 * k], run_at[2 * k + 1] - run_at[2 * k]);
        out_all += run_at[2 * k + 1] - run_at[2 * k];
        if (pieces[2 * k]) {
            *out_all++ = ',';
            memcpy(out_all, PyBytes_AS_STRING(pieces[2 * k]), PyBytes_GET_SIZE(pieces[2 * k]));
            out_all += PyBytes_GET_SIZE(pieces[2 * k]);
        }
        memcpy(out_all, WINDOW_MID, sizeof(WINDOW_MID) - 1);
        out_all += sizeof(WINDOW_MID) - 1;
        memcpy(out_all, PyBytes_AS_STRING(pieces[2 * k + 1]), PyBytes_GET_SIZE(pieces[2 * k + 1]));
        out_all += PyBytes_GET_SIZE(pieces[2 * k + 1]);
        *out_all++ = '}';
        if (keep[k]) {
            if (written_kept++ > 0) *out_kept++ = ',';
            memcpy(out_kept, element, out_all - element);
            out_kept += out_all - element;
        }
    }
    *out_all = ']';
    *out_kept = ']';
    result = PyTuple_Pack(2, all, selected);
done:
    if (pieces) {
        for (Py_ssize_t k = 0; k < 2 * n; k++) Py_XDECREF(pieces[k]);
    }
    Py_XDECREF(all);
    Py_XDECREF(selected);
    PyMem_Free(pieces);
    PyMem_Free(run_at);
    PyMem_Free(keep);
    return result;
}

static PyObject *KEY_TEXT, *KEY_WORDS, *KEY_WORD;

/* Python's `type(v) in (int, float)`. */
static int is_number(PyObject *v) { return PyFloat_CheckExact(v) || PyLong_CheckExact(v); }

/* Python's `0 <= a <= b` for numbers: 1, 0, or -1 on error. */
static int ordered_from_zero(PyObject *a, PyObject *b) {
    if (PyFloat_CheckExact(a) && PyFloat_CheckExact(b)) {
        double x = PyFloat_AS_DOUBLE(a), y = PyFloat_AS_DOUBLE(b);
        return 0 <= x && x <= y;
    }
    static PyObject *zero = NULL;
    if (!zero && !(zero = PyLong_FromLong(0))) return -1;
    int r = PyObject_RichCompareBool(zero, a, Py_LE);
    if (r <= 0) return r;
    return PyObject_RichCompareBool(a, b, Py_LE);
}

static int optional_str(PyObject *dict, PyObject *key) {
    PyObject *v = PyDict_GetItemWithError(dict, key);
    if (!v) return PyErr_Occurred() ? -1 : 1;
    return v == Py_None || PyUnicode_CheckExact(v);
}

/* alm_lhotse.validation._segment_looks_valid: 1 yes, 0 no, -1 error. */
static int segment_looks_valid(PyObject *seg) {
    if (!PyDict_CheckExact(seg)) return 0;
    PyObject *start = PyDict_GetItemWithError(seg, KEY_START);
    PyObject *end = start ? PyDict_GetItemWithError(seg, KEY_END) : NULL;
    if (!end) return PyErr_Occurred() ? -1 : 0;
    if (!is_number(start) || !is_number(end)) return 0;
    int r = ordered_from_zero(start, end);
    if (r <= 0) return r;
    if ((r = optional_str(seg, KEY_SPEAKER)) <= 0) return r;
    if ((r = optional_str(seg, KEY_TEXT)) <= 0) return r;
    PyObject *metrics = PyDict_GetItemWithError(seg, KEY_METRICS);
    if (!metrics && PyErr_Occurred()) return -1;
    if (metrics == Py_None) return 0;
    if (metrics) {
        if (!PyDict_CheckExact(metrics)) return 0;
        PyObject *bw = PyDict_GetItemWithError(metrics, KEY_BANDWIDTH);
        if (bw) {
            if (!is_number(bw)) return 0;
            if (PyFloat_CheckExact(bw) && isnan(PyFloat_AS_DOUBLE(bw))) return 0;
        } else if (PyErr_Occurred()) {
            return -1;
        }
    }
    PyObject *words = PyDict_GetItemWithError(seg, KEY_WORDS);
    if (!words) return PyErr_Occurred() ? -1 : 1;
    if (!PyList_CheckExact(words)) return 0;
    for (Py_ssize_t k = 0; k < PyList_GET_SIZE(words); k++) {
        PyObject *w = PyList_GET_ITEM(words, k);
        if (!PyDict_CheckExact(w)) return 0;
        PyObject *ws = PyDict_GetItemWithError(w, KEY_START);
        PyObject *we = ws ? PyDict_GetItemWithError(w, KEY_END) : NULL;
        if (!we) return PyErr_Occurred() ? -1 : 0;
        if (!is_number(ws) || !is_number(we)) return 0;
        if ((r = ordered_from_zero(ws, we)) <= 0) return r;
        if ((r = optional_str(w, KEY_WORD)) <= 0) return r;
    }
    return 1;
}

PyDoc_STRVAR(first_doubtful_segment_doc,
    "first_doubtful_segment(segments, start)\n"
    "--\n\n"
    "Index of the first segment at or after `start` that the cheap validity check does not\n"
    "pass (alm_lhotse.validation._segment_looks_valid), or len(segments).");

static PyObject *first_doubtful_segment(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 2 || !PyList_Check(args[0])) {
        PyErr_SetString(PyExc_TypeError, "first_doubtful_segment(segments: list, start: int)");
        return NULL;
    }
    Py_ssize_t k = PyLong_AsSsize_t(args[1]);
    if (k == -1 && PyErr_Occurred()) return NULL;
    for (; k < PyList_GET_SIZE(args[0]); k++) {
        int r = segment_looks_valid(PyList_GET_ITEM(args[0], k));
        if (r < 0) return NULL;
        if (!r) break;
    }
    return PyLong_FromSsize_t(k);
}

PyDoc_STRVAR(segment_order_doc,
    "segment_order(segments)\n"
    "--\n\n"
    "(unsorted, overlapping) of segments whose starts and ends are all floats and whose\n"
    "starts are sorted; None otherwise (the caller computes it in Python).");

static PyObject *segment_order(PyObject *self, PyObject *segments) {
    if (!PyList_Check(segments)) Py_RETURN_NONE;
    int overlapping = 0;
    double prev_start = 0, prev_end = 0;
    for (Py_ssize_t k = 0; k < PyList_GET_SIZE(segments); k++) {
        PyObject *seg = PyList_GET_ITEM(segments, k);
        if (!PyDict_Check(seg)) Py_RETURN_NONE;
        PyObject *start = PyDict_GetItemWithError(seg, KEY_START);
        PyObject *end = start ? PyDict_GetItemWithError(seg, KEY_END) : NULL;
        if (!end) {
            if (PyErr_Occurred()) return NULL;
            Py_RETURN_NONE;
        }
        if (!PyFloat_CheckExact(start) || !PyFloat_CheckExact(end)) Py_RETURN_NONE;
        double s = PyFloat_AS_DOUBLE(start), e = PyFloat_AS_DOUBLE(end);
        if (k > 0) {
            if (!(prev_start <= s)) Py_RETURN_NONE;
            if (s < prev_end) overlapping = 1;
        }
        prev_start = s;
        prev_end = e;
    }
    return Py_BuildValue("(OO)", Py_False, overlapping ? Py_True : Py_False);
}

/* ---- Lhotse supervision dicts (alm_lhotse.manifests.supervision_dict) ---- */

static PyObject *KEY_ID, *KEY_RECORDING_ID, *KEY_DURATION, *KEY_CHANNEL, *KEY_CUSTOM, *KEY_ALIGNMENT;
static PyObject *KEY_SOURCE_START, *KEY_SOURCE_END, *KEY_SEGMENT_INDEX, *KEY_WORD_ENDS, *EMPTY_STR, *ZERO;

static int set_steal(PyObject *dict, PyObject *key, PyObject *value) {
    if (!value) return -1;
    int r = PyDict_SetItem(dict, key, value);
    Py_DECREF(value);
    return r;
}

/* The alignment items of `words` shifted by `shift`, and (recording frame only) the
 * exact word ends when start + duration would not give them back; *ends stays NULL
 * otherwise. Returns the items list or NULL on error. */
static PyObject *word_items(PyObject *words, PyObject *shift, int unshifted, PyObject **ends) {
    Py_ssize_t n = PyList_GET_SIZE(words);
    PyObject *items = PyList_New(n);
    int lossy = 0;
    *ends = NULL;
    if (!items) return NULL;
    for (Py_ssize_t k = 0; k < n; k++) {
        PyObject *w = PyList_GET_ITEM(words, k);
        if (!PyDict_Check(w)) {
            PyErr_SetString(PyExc_TypeError, "a word must be a dict");
            goto fail;
        }
        PyObject *token = PyDict_GetItemWithError(w, KEY_WORD);
        if (!token && PyErr_Occurred()) goto fail;
        int truthy = token ? PyObject_IsTrue(token) : 0;
        if (truthy < 0) goto fail;
        PyObject *ws = PyDict_GetItemWithError(w, KEY_START);
        PyObject *we = ws ? PyDict_GetItemWithError(w, KEY_END) : NULL;
        if (!we) {
            if (!PyErr_Occurred()) PyErr_SetObject(PyExc_KeyError, ws ? KEY_END : KEY_START);
            goto fail;
        }
        PyObject *item = PyList_New(4);
        if (!item) goto fail;
        PyList_SET_ITEM(items, k, item);
        PyObject *word = truthy ? token : EMPTY_STR;
        Py_INCREF(word);
        PyList_SET_ITEM(item, 0, word);
        PyObject *start = PyNumber_Subtract(ws, shift);
        if (!start) goto fail;
        PyList_SET_ITEM(item, 1, start);
        PyObject *duration = PyNumber_Subtract(we, ws);
        if (!duration) goto fail;
        PyList_SET_ITEM(item, 2, duration);
        Py_INCREF(Py_None);
        PyList_SET_ITEM(item, 3, Py_None);
        if (unshifted && !lossy) {
            PyObject *back = PyNumber_Add(start, duration);
            if (!back) goto fail;
            int differs = PyObject_RichCompareBool(back, we, Py_NE);
            Py_DECREF(back);
            if (differs < 0) goto fail;
            lossy = differs;
        }
    }
    if (lossy) {
        *ends = PyList_New(n);
        if (!*ends) goto fail;
        for (Py_ssize_t k = 0; k < n; k++) {
            PyObject *we = PyDict_GetItem(PyList_GET_ITEM(words, k), KEY_END);
            Py_INCREF(we);
            PyList_SET_ITEM(*ends, k, we);
        }
    }
    return items;
fail:
    Py_DECREF(items);
    return NULL;
}

static PyObject *supervision(PyObject *seg, PyObject *rec_id, Py_ssize_t index, PyObject *shift, int unshifted) {
    if (!PyDict_Check(seg)) {
        PyErr_SetString(PyExc_TypeError, "a segment must be a dict");
        return NULL;
    }
    PyObject *start = PyDict_GetItemWithError(seg, KEY_START);
    PyObject *end = start ? PyDict_GetItemWithError(seg, KEY_END) : NULL;
    if (!end) {
        if (!PyErr_Occurred()) PyErr_SetObject(PyExc_KeyError, start ? KEY_END : KEY_START);
        return NULL;
    }
    PyObject *custom = PyDict_New(), *sup = PyDict_New();
    if (!custom || !sup) goto fail;
    PyObject *key, *value;
    Py_ssize_t pos = 0;
    while (PyDict_Next(seg, &pos, &key, &value)) {
        if (PyUnicode_CheckExact(key) &&
            (PyUnicode_Compare(key, KEY_START) == 0 || PyUnicode_Compare(key, KEY_END) == 0 ||
             PyUnicode_Compare(key, KEY_SPEAKER) == 0 || PyUnicode_Compare(key, KEY_TEXT) == 0 ||
             PyUnicode_Compare(key, KEY_WORDS) == 0))
            continue;
        if (PyDict_SetItem(custom, key, value) < 0) goto fail;
    }
    if (PyDict_SetItem(custom, KEY_SOURCE_START, start) < 0 || PyDict_SetItem(custom, KEY_SOURCE_END, end) < 0 ||
        set_steal(custom, KEY_SEGMENT_INDEX, PyLong_FromSsize_t(index)) < 0)
        goto fail;
    char digits[32];
    snprintf(digits, sizeof(digits), "%05zd", index);
    if (set_steal(sup, KEY_ID, PyUnicode_FromFormat("%U-%s", rec_id, digits)) < 0 ||
        PyDict_SetItem(sup, KEY_RECORDING_ID, rec_id) < 0 ||
        set_steal(sup, KEY_START, PyNumber_Subtract(start, shift)) < 0 ||
        set_steal(sup, KEY_DURATION, PyNumber_Subtract(end, start)) < 0 ||
        PyDict_SetItem(sup, KEY_CHANNEL, ZERO) < 0)
        goto fail;
    PyObject *text = PyDict_GetItemWithError(seg, KEY_TEXT);
    if (!text && PyErr_Occurred()) goto fail;
    if (PyDict_SetItem(sup, KEY_TEXT, text ? text : Py_None) < 0) goto fail;
    PyObject *speaker = PyDict_GetItemWithError(seg, KEY_SPEAKER);
    if (!speaker && PyErr_Occurred()) goto fail;
    int truthy = speaker ? PyObject_IsTrue(speaker) : 0;
    if (truthy < 0) goto fail;
    if (truthy) {
        if (PyDict_SetItem(sup, KEY_SPEAKER, speaker) < 0) goto fail;
    } else if (speaker && PyDict_SetItem(custom, KEY_SPEAKER, speaker) < 0) {
        goto fail;
    }
    if (text == Py_None && PyDict_SetItem(custom, KEY_TEXT, Py_None) < 0) goto fail;
    PyObject *words = PyDict_GetItemWithError(seg, KEY_WORDS);
    if (!words && PyErr_Occurred()) goto fail;
    int has_words = words ? PyObject_IsTrue(words) : 0;
    if (has_words < 0) goto fail;
    if (has_words) {
        if (!PyList_Check(words)) {
            PyErr_SetString(PyExc_TypeError, "words must be a list");
            goto fail;
        }
        PyObject *ends = NULL;
        PyObject *items = word_items(words, shift, unshifted, &ends);
        if (!items) goto fail;
        PyObject *alignment = Py_BuildValue("{sN}", "word", items);
        if (set_steal(sup, KEY_ALIGNMENT, alignment) < 0) {
            Py_XDECREF(ends);
            goto fail;
        }
        if (ends && set_steal(custom, KEY_WORD_ENDS, ends) < 0) goto fail;
    } else if (words && PyDict_SetItem(custom, KEY_WORDS, words) < 0) {
        goto fail;
    }
    if (PyDict_SetItem(sup, KEY_CUSTOM, custom) < 0) goto fail;
    Py_DECREF(custom);
    return sup;
fail:
    Py_XDECREF(custom);
    Py_XDECREF(sup);
    return NULL;
}

PyDoc_STRVAR(supervisions_doc,
    "supervisions(segments, rec_id, shift, first, stop, part)\n"
    "--\n\n"
    "Supervision dicts (alm_lhotse.manifests.supervision_dict) of segments first..stop-1\n"
    "that have a positive duration, then of `part` (as segment `stop`) when it is not None\n"
    "and has one; times relative to `shift`. None where building one fails: the pure-Python\n"
    "builder then raises the precise error.");

static PyObject *supervisions(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 6 || !PyList_Check(args[0]) || !PyUnicode_Check(args[1])) {
        PyErr_SetString(PyExc_TypeError, "supervisions(segments: list, rec_id: str, shift, first, stop, part)");
        return NULL;
    }
    PyObject *segments = args[0], *rec_id = args[1], *shift = args[2], *part = args[5];
    Py_ssize_t first = PyLong_AsSsize_t(args[3]), stop = PyLong_AsSsize_t(args[4]);
    if (PyErr_Occurred()) return NULL;
    if (first < 0 || stop > PyList_GET_SIZE(segments)) {
        PyErr_SetString(PyExc_IndexError, "segment range out of bounds");
        return NULL;
    }
    int unshifted = PyObject_RichCompareBool(shift, ZERO, Py_EQ);
    if (unshifted < 0) return NULL;
    PyObject *out = PyList_New(0);
    if (!out) return NULL;
    for (Py_ssize_t k = first; k <= stop; k++) {
        PyObject *seg = k < stop ? PyList_GET_ITEM(segments, k) : part;
        if (seg == Py_None) break;
        if (!PyDict_Check(seg)) {
            PyErr_SetString(PyExc_TypeError, "a segment must be a dict");
            goto fail;
        }
        PyObject *start = PyDict_GetItemWithError(seg, KEY_START);
        PyObject *end = start ? PyDict_GetItemWithError(seg, KEY_END) : NULL;
        if (!end) {
            if (!PyErr_Occurred()) PyErr_SetObject(PyExc_KeyError, start ? KEY_END : KEY_START);
            goto fail;
        }
        int positive = PyObject_RichCompareBool(end, start, Py_GT);
        if (positive < 0) goto fail;
        if (!positive) continue;
        PyObject *sup = supervision(seg, rec_id, k, shift, unshifted);
        if (!sup || PyList_Append(out, sup) < 0) {
            Py_XDECREF(sup);
            goto fail;
        }
        Py_DECREF(sup);
    }
    return out;
fail:
    Py_DECREF(out);
    return hand_back();
}

PyDoc_STRVAR(array_to_lines_doc,
    "array_to_lines(array_json)\n"
    "--\n\n"
    "JSON lines from a compact JSON array (orjson output): each element on its own line,\n"
    "newline-terminated; b'' for an empty array.");

static PyObject *array_to_lines(PyObject *self, PyObject *arg) {
    if (!PyBytes_Check(arg) || PyBytes_GET_SIZE(arg) < 2) {
        PyErr_SetString(PyExc_TypeError, "array_to_lines expects the bytes of a JSON array");
        return NULL;
    }
    const char *buf = PyBytes_AS_STRING(arg) + 1;
    Py_ssize_t size = PyBytes_GET_SIZE(arg) - 2;
    if (size == 0) return PyBytes_FromStringAndSize(NULL, 0);
    PyObject *out = PyBytes_FromStringAndSize(buf, size + 1);
    if (!out) return NULL;
    char *o = PyBytes_AS_STRING(out);
    Py_ssize_t depth = 0;
    int in_string = 0;
    for (Py_ssize_t k = 0; k < size; k++) {
        char c = o[k];
        if (in_string) {
            if (c == '\\') k++;
            else if (c == '"') in_string = 0;
            continue;
        }
        if (c == '"') in_string = 1;
        else if (c == '{' || c == '[') depth++;
        else if (c == '}' || c == ']') depth--;
        else if (c == ',' && depth == 0) o[k] = '\n';
    }
    o[size] = '\n';
    return out;
}

static PyMethodDef methods[] = {
    {"build_entry", (PyCFunction)(void (*)(void))build_entry, METH_FASTCALL, build_entry_doc},
    {"overlap_filter", (PyCFunction)(void (*)(void))overlap_filter, METH_FASTCALL, overlap_filter_doc},
    {"element_offsets", element_offsets, METH_O, element_offsets_doc},
    {"first_doubtful_segment", (PyCFunction)(void (*)(void))first_doubtful_segment, METH_FASTCALL,
     first_doubtful_segment_doc},
    {"segment_order", segment_order, METH_O, segment_order_doc},
    {"supervisions", (PyCFunction)(void (*)(void))supervisions, METH_FASTCALL, supervisions_doc},
    {"array_to_lines", array_to_lines, METH_O, array_to_lines_doc},
    {"render_windows", (PyCFunction)(void (*)(void))render_windows, METH_FASTCALL, render_windows_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "alm_lhotse._kernel",
    "Compiled fast path of the window builder (optional; pure Python is the fallback).", -1, methods,
};

PyMODINIT_FUNC PyInit__kernel(void) {
    KEY_START = PyUnicode_InternFromString("start");
    KEY_END = PyUnicode_InternFromString("end");
    KEY_SPEAKER = PyUnicode_InternFromString("speaker");
    KEY_METRICS = PyUnicode_InternFromString("metrics");
    KEY_BANDWIDTH = PyUnicode_InternFromString("bandwidth");
    KEY_TEXT = PyUnicode_InternFromString("text");
    KEY_WORDS = PyUnicode_InternFromString("words");
    KEY_WORD = PyUnicode_InternFromString("word");
    KEY_ID = PyUnicode_InternFromString("id");
    KEY_RECORDING_ID = PyUnicode_InternFromString("recording_id");
    KEY_DURATION = PyUnicode_InternFromString("duration");
    KEY_CHANNEL = PyUnicode_InternFromString("channel");
    KEY_CUSTOM = PyUnicode_InternFromString("custom");
    KEY_ALIGNMENT = PyUnicode_InternFromString("alignment");
    KEY_SOURCE_START = PyUnicode_InternFromString("source_start");
    KEY_SOURCE_END = PyUnicode_InternFromString("source_end");
    KEY_SEGMENT_INDEX = PyUnicode_InternFromString("segment_index");
    KEY_WORD_ENDS = PyUnicode_InternFromString("word_ends");
    EMPTY_STR = PyUnicode_InternFromString("");
    ZERO = PyLong_FromLong(0);
    if (!KEY_START || !KEY_END || !KEY_SPEAKER || !KEY_METRICS || !KEY_BANDWIDTH || !KEY_TEXT || !KEY_WORDS ||
        !KEY_WORD || !KEY_ID || !KEY_RECORDING_ID || !KEY_DURATION || !KEY_CHANNEL || !KEY_CUSTOM ||
        !KEY_ALIGNMENT || !KEY_SOURCE_START || !KEY_SOURCE_END || !KEY_SEGMENT_INDEX || !KEY_WORD_ENDS ||
        !EMPTY_STR || !ZERO)
        return NULL;
    return PyModule_Create(&module);
}
