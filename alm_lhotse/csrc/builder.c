/*
 * The compiled window builder: alm_lhotse.core.windows (the specification) for entries
 * whose segments are sorted and cannot exceed the speaker limit. Sorted segments let
 * three pointers find where each window stops (low bandwidth, no-speaker, too long)
 * instead of growing it segment by segment; the speaker-duration fold sums the
 * reference's floats in its order. Its constants come from Python (configure()).
 */
#include "kernel.h"

#include <math.h>

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

/* Reads the entry's segments into `e`, and decides whether the fast path applies:
 * every segment a dict with float start and end, starts and ends sorted, and no more
 * distinct speakers than the limit (counted as one when speakers are dropped).
 * Returns 1 ready, 0 not eligible (the caller runs the pure-Python builder, which
 * also raises whatever error the entry deserves), -1 error (exception set). */
static int entry_init(Entry *e, PyObject *segments, PyObject *min_bw, int keep_speaker, Py_ssize_t max_spk) {
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
        int nospk = PyObject_RichCompareBool(spk, NO_SPEAKER, Py_EQ);
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
static PyObject *total_duration(Entry *e) {
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
    PyObject *total = PyObject_Vectorcall(BUILTIN_SUM, &durs, 1, NULL);
    Py_DECREF(durs);
    return total;
}

/* The reference's speaker durations, largest first, padded or cut to five slots:
 * sums run in segment order from the window's first segment, exactly as the Python
 * fold; ties keep first-seen order (sorted(..., reverse=True) semantics, here a stable
 * insertion sort of the few sums; with a NaN, whose order only Python's sort defines,
 * the list is sorted by Python). */
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
    int has_nan = 0;
    for (Py_ssize_t i = 0; i < used; i++) has_nan |= isnan(e->acc[e->order[i]]);
    if (!has_nan) {
        for (Py_ssize_t i = 1; i < used; i++) {
            Py_ssize_t c = e->order[i], j = i;
            for (; j > 0 && e->acc[e->order[j - 1]] < e->acc[c]; j--) e->order[j] = e->order[j - 1];
            e->order[j] = c;
        }
    }
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
    if (has_nan && (PyList_Reverse(top) < 0 || PyList_Sort(top) < 0 || PyList_Reverse(top) < 0)) {
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
        if (PyList_Append(top, FLOAT_ZERO) < 0) {
            Py_DECREF(top);
            return NULL;
        }
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

/* Words of `words` ending by `limit` (a new list of the same word dicts: nothing
 * mutates them, so copies, which the reference makes, would only cost), and the end of
 * the last of them in *end (borrowed; unchanged when none). NULL without an error set
 * when a word is not a plain dict with an "end". */
static PyObject *kept_words(PyObject *words, PyObject *limit, PyObject **end) {
    PyObject *kept = PyList_New(0);
    if (!kept) return NULL;
    for (Py_ssize_t k = 0; k < PyList_GET_SIZE(words); k++) {
        PyObject *w = PyList_GET_ITEM(words, k);
        PyObject *we = PyDict_CheckExact(w) ? PyDict_GetItemWithError(w, KEY_END) : NULL;
        int fits = we ? PyObject_RichCompareBool(we, limit, Py_LE) : -1;
        if (fits < 0 || (fits && PyList_Append(kept, w) < 0)) {
            Py_DECREF(kept);
            return NULL;
        }
        if (fits) *end = we;
    }
    return kept;
}

/* The kept words' tokens joined by spaces, skipping empty or missing ones; NULL without
 * an error set when a token is not a str. */
static PyObject *words_text(PyObject *kept) {
    PyObject *tokens = PyList_New(0), *text = NULL;
    if (!tokens) return NULL;
    for (Py_ssize_t k = 0; k < PyList_GET_SIZE(kept); k++) {
        PyObject *token = PyDict_GetItemWithError(PyList_GET_ITEM(kept, k), KEY_WORD);
        if (!token && PyErr_Occurred()) goto done;
        int truthy = token ? PyObject_IsTrue(token) : 0;
        if (truthy < 0) goto done;
        if (!truthy) continue;
        if (!PyUnicode_CheckExact(token) || PyList_Append(tokens, token) < 0) goto done;
    }
    PyObject *space = PyUnicode_FromString(" ");
    if (space) {
        text = PyUnicode_Join(space, tokens);
        Py_DECREF(space);
    }
done:
    Py_DECREF(tokens);
    return text;
}

/* alm_lhotse.windows.truncate_segment: a copy of `seg` ending at its last word that ends
 * by `limit`, its text rebuilt from the kept words. Segments this does not take (words
 * not a list of plain dicts with ends, tokens not str) go to `fallback`, the Python
 * function, which also raises whatever error they deserve. */
static PyObject *truncate_segment(PyObject *seg, PyObject *limit, PyObject *fallback) {
    PyObject *start = PyDict_CheckExact(seg) ? PyDict_GetItemWithError(seg, KEY_START) : NULL;
    PyObject *words = start ? PyDict_GetItemWithError(seg, KEY_WORDS) : NULL;
    if (PyErr_Occurred()) return NULL;
    int has_words = words ? PyObject_IsTrue(words) : 0;
    if (!start || has_words < 0 || (has_words && !PyList_CheckExact(words))) {
        PyErr_Clear();
        PyObject *args[2] = {seg, limit};
        return PyObject_Vectorcall(fallback, args, 2, NULL);
    }
    PyObject *end = start, *kept = NULL, *text = NULL, *out = NULL;
    if (has_words) {
        kept = kept_words(words, limit, &end);
        text = kept ? words_text(kept) : NULL;
    } else {
        kept = PyList_New(0);
        text = PyUnicode_FromString("");
    }
    if (kept && text) {
        out = PyDict_Copy(seg);
        if (out && (PyDict_SetItem(out, KEY_WORDS, kept) < 0 || PyDict_SetItem(out, KEY_TEXT, text) < 0 ||
                    PyDict_SetItem(out, KEY_END, end) < 0))
            Py_CLEAR(out);
    }
    Py_XDECREF(kept);
    Py_XDECREF(text);
    if (!out && !PyErr_ExceptionMatches(PyExc_MemoryError)) {
        PyErr_Clear();
        PyObject *args[2] = {seg, limit};
        return PyObject_Vectorcall(fallback, args, 2, NULL);
    }
    return out;
}

/* 1: next segment counts as "no speaker" for lost-window statistics (a missing
 * speaker key does); 0: it does not; -1: error. */
static int next_is_no_speaker(PyObject *seg) {
    if (!PyDict_Check(seg)) {
        PyErr_SetString(PyExc_TypeError, "a segment must be a dict");
        return -1;
    }
    PyObject *spk = PyDict_GetItemWithError(seg, KEY_SPEAKER);
    if (!spk) return PyErr_Occurred() ? -1 : 1;
    return PyObject_RichCompareBool(spk, NO_SPEAKER, Py_EQ);
}

/* The window parameters, read from the WindowConfig's attributes. */
typedef struct {
    PyObject *min_bw;
    double max_d, min_d;
    Py_ssize_t max_spk, min_spk;
    int truncation, keep_speaker, stored_bw_bad;
} Rules;

/* An int or float `value` as the double Python's mixed comparisons use: 1 done, 0 when
 * there is none exactly (another type, an int beyond EXACT_INT_LIMIT), -1 error. */
static int exact_double(PyObject *value, double *out) {
    if (PyFloat_CheckExact(value)) {
        *out = PyFloat_AS_DOUBLE(value);
        return 1;
    }
    if (!PyLong_CheckExact(value)) return 0;
    int overflow;
    long long x = PyLong_AsLongLongAndOverflow(value, &overflow);
    if (x == -1 && PyErr_Occurred()) return -1;
    if (overflow || x >= EXACT_INT_LIMIT || x <= -EXACT_INT_LIMIT) return 0;
    *out = (double)x;
    return 1;
}

/* An int `value` below EXACT_INT_LIMIT: 1 done, 0 not such an int, -1 error. */
static int exact_count(PyObject *value, Py_ssize_t *out) {
    double x;
    int r = PyLong_CheckExact(value) ? exact_double(value, &x) : 0;
    if (r > 0) *out = (Py_ssize_t)x;
    return r;
}

/* Reads cfg (a WindowConfig) into r: 1 ready, 0 parameters the compiled builder does not
 * take exactly (the Python builder runs), -1 error. r->min_bw is owned when ready. */
static int rules_init(Rules *r, PyObject *cfg) {
    static const char *names[] = {"min_bandwidth", "max_duration", "min_duration", "max_speakers",
                                  "min_speakers",  "truncation",   "drop_set"};
    static PyObject *interned[7]; /* the names as str objects, made once */
    PyObject *v[7] = {NULL};
    int ready = -1;
    memset(r, 0, sizeof(*r));
    for (int k = 0; k < 7; k++) {
        if (!interned[k] && !(interned[k] = PyUnicode_InternFromString(names[k]))) goto done;
        if (!(v[k] = PyObject_GetAttr(cfg, interned[k]))) goto done;
    }
    if ((ready = exact_double(v[1], &r->max_d)) <= 0 || (ready = exact_double(v[2], &r->min_d)) <= 0 ||
        (ready = exact_count(v[3], &r->max_spk)) <= 0 || (ready = exact_count(v[4], &r->min_spk)) <= 0)
        goto done;
    ready = -1;
    int drop_speaker = PySequence_Contains(v[6], KEY_SPEAKER);
    int drop_metrics = PySequence_Contains(v[6], KEY_METRICS);
    r->truncation = PyObject_IsTrue(v[5]);
    if (drop_speaker < 0 || drop_metrics < 0 || r->truncation < 0) goto done;
    r->keep_speaker = !drop_speaker;
    /* stored segments without metrics have bandwidth 0 */
    r->stored_bw_bad = drop_metrics ? PyObject_RichCompareBool(ZERO, v[0], Py_LT) : 0;
    if (r->stored_bw_bad < 0) goto done;
    r->min_bw = v[0];
    v[0] = NULL;
    ready = 1;
done:
    for (int k = 0; k < 7; k++) Py_XDECREF(v[k]);
    return ready;
}

/* The loss counters, in the order of alm_lhotse.core.windows.LOSS_REASONS. */
enum { LOST_BW, LOST_WIN, LOST_SPK, LOST_NO_SPKR, LOST_NEXT, N_REASONS };

typedef struct {
    Py_ssize_t events, count[N_REASONS];
    double dur[N_REASONS];
    Py_ssize_t dur_stop; /* first segment ending past the current window's maximum */
    int not_float;       /* a truncated part's times are not floats: hand the entry back */
} Tally;

static void lose(Tally *t, int reason, double dur) {
    t->count[reason]++;
    t->dur[reason] += dur;
}

/* Where the window from `first` stops growing (*stop) and, when it ends inside segment
 * *stop, the truncated part (a new reference in *part, else NULL). 0, or -1 on error. */
static int grow(Entry *e, const Rules *r, PyObject *segments, Py_ssize_t first, Tally *t, Py_ssize_t *stop,
                PyObject **part) {
    Py_ssize_t n = e->n;
    double w_start = e->start[first];
    *part = NULL;
    if (t->dur_stop < first) t->dur_stop = first;
    while (t->dur_stop < n && e->end[t->dur_stop] - w_start <= r->max_d) t->dur_stop++;
    Py_ssize_t j = e->bw_stop[first];
    if (e->nospk_stop[first] < j) j = e->nospk_stop[first];
    if (t->dur_stop < j) j = t->dur_stop;
    *stop = j;
    int too_long = j < n && j == t->dur_stop && j < e->bw_stop[first];
    double limit = w_start + r->max_d;
    if (!too_long || !r->truncation || !(e->start[j] < limit)) return 0;
    t->events++;
    PyObject *limit_obj = PyFloat_FromDouble(limit);
    if (!limit_obj) return -1;
    PyObject *cand = truncate_segment(PyList_GET_ITEM(segments, j), limit_obj, TRUNCATE_SEGMENT);
    Py_DECREF(limit_obj);
    if (!cand) return -1;
    int keep = PyObject_RichCompareBool(PyList_GET_ITEM(e->speakers, j), NO_SPEAKER, Py_NE);
    if (keep > 0) *part = cand;
    else Py_DECREF(cand);
    return keep < 0 ? -1 : 0;
}

/* A part's `key` time as a double: 1 done, 0 not a float (t->not_float set), -1 error. */
static int part_time(PyObject *part, PyObject *key, Tally *t, PyObject **obj, double *out) {
    *obj = require_item(part, key);
    if (!*obj) return -1;
    if (!PyFloat_CheckExact(*obj)) {
        t->not_float = 1;
        return 0;
    }
    *out = PyFloat_AS_DOUBLE(*obj);
    return 1;
}

/* Counts the rejected window first..stop(-part) and records it in `lost`. */
static int lose_window(Entry *e, PyObject *segments, Tally *t, PyObject *lost, PyObject *window, Py_ssize_t first,
                       Py_ssize_t stop) {
    Py_ssize_t next_index = stop < e->n - 1 ? stop : e->n - 1;
    lose(t, LOST_WIN, e->dur[first]);
    int nospk = next_is_no_speaker(PyList_GET_ITEM(segments, next_index));
    if (nospk < 0) return -1;
    if (nospk) lose(t, LOST_NO_SPKR, e->dur[first]);
    else if (!e->bw_ok[next_index]) lose(t, LOST_NEXT, e->dur[first]);
    return append_new(lost, make_lost(LOST_WINDOW_TYPE, window, next_index, first > 0 ? first - 1 : 0));
}

/* The window starting at segment `first` (whose bandwidth is enough): appended to
 * `windows`, or counted as lost. 0, or -1 on error or hand-back (t->not_float). */
static int one_window(Entry *e, const Rules *r, PyObject *segments, Py_ssize_t first, Tally *t, PyObject *windows,
                      PyObject *lost) {
    Py_ssize_t j;
    PyObject *part, *w_end_obj, *top = NULL;
    double w_end, part_end = 0.0, part_start = 0.0;
    if (grow(e, r, segments, first, t, &j, &part) < 0) return -1;
    PyObject *w_start_obj = PyDict_GetItem(PyList_GET_ITEM(segments, first), KEY_START);
    int status = -1;
    if (part) {
        if (part_time(part, KEY_END, t, &w_end_obj, &w_end) <= 0) goto done;
        part_end = w_end;
    } else {
        Py_ssize_t k = j > first ? j - 1 : first;
        w_end_obj = PyDict_GetItem(PyList_GET_ITEM(segments, k), KEY_END);
        w_end = e->end[k];
    }
    Py_ssize_t count = j - first + (part != NULL);
    double w_dur = w_end - e->start[first];
    if (!(r->min_d <= w_dur && w_dur <= r->max_d) || count < MIN_SEGMENTS_PER_WINDOW || r->stored_bw_bad) {
        PyObject *w = make_window(WINDOW_TYPE, first, j, part, w_start_obj, w_end_obj, NULL);
        status = w ? lose_window(e, segments, t, lost, w, first, j) : -1;
        Py_XDECREF(w);
        goto done;
    }
    Py_ssize_t n_speakers = 0, part_code = -1;
    if (r->keep_speaker && part && e->truthy[j]) {
        PyObject *ps;
        if (part_time(part, KEY_START, t, &ps, &part_start) <= 0) goto done;
        part_code = e->code[j];
    }
    /* dropped speakers: no stored segment names one (an empty range) */
    top = r->keep_speaker ? speaker_durations(e, first, j, part_code, part_end - part_start, &n_speakers)
                          : speaker_durations(e, j, j, -1, 0.0, &n_speakers);
    if (!top) goto done;
    if (!(r->min_spk <= n_speakers && n_speakers <= r->max_spk)) {
        lose(t, LOST_SPK, e->dur[first]);
        status = 0;
        goto done;
    }
    status = append_new(windows, make_window(WINDOW_TYPE, first, j, part, w_start_obj, w_end_obj, top));
done:
    Py_XDECREF(top);
    Py_XDECREF(part);
    return status;
}

const char build_entry_doc[] =
    "build_entry(segments, cfg)\n"
    "--\n\n"
    "alm_lhotse.core.windows' builder for one entry's (ordered) segments and its\n"
    "WindowConfig. Returns None where it does not apply (unsorted, crowded, non-float\n"
    "times, parameters it cannot hold exactly, or anything the Python builder would raise\n"
    "on: it then runs and raises), else (windows, lost, events, (lost_bw, lost_win,\n"
    "lost_spk, lost_no_spkr, lost_next_seg_bm), (their durations), total_dur).";

PyObject *build_entry(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 2) return usage_error("build_entry(segments, cfg)");
    if (!NO_SPEAKER || !WINDOW_TYPE || !LOST_WINDOW_TYPE || !TRUNCATE_SEGMENT || SPEAKER_SLOTS < 0 ||
        MIN_SEGMENTS_PER_WINDOW < 0 || EXACT_INT_LIMIT < 0)
        return not_configured("the window builder's constants");
    PyObject *segments = args[0];
    if (!PyList_CheckExact(segments)) Py_RETURN_NONE;
    Rules r;
    int ready = rules_init(&r, args[1]);
    if (ready <= 0) {
        if (ready < 0) return NULL;
        Py_RETURN_NONE;
    }
    Entry e;
    ready = entry_init(&e, segments, r.min_bw, r.keep_speaker, r.max_spk);
    if (ready <= 0) {
        entry_free(&e);
        Py_DECREF(r.min_bw);
        if (ready < 0) return hand_back();
        Py_RETURN_NONE;
    }
    Tally t;
    memset(&t, 0, sizeof(t));
    PyObject *windows = PyList_New(0), *lost = PyList_New(0), *total = NULL, *result = NULL;
    if (!windows || !lost) goto done;
    for (Py_ssize_t first = 0; first < e.n; first++) {
        if (!e.bw_ok[first]) lose(&t, LOST_BW, e.dur[first]);
        else if (one_window(&e, &r, segments, first, &t, windows, lost) < 0) goto done;
    }
    total = total_duration(&e);
    if (!total) goto done;
    result = Py_BuildValue("(OOn(nnnnn)(ddddd)O)", windows, lost, t.events, t.count[LOST_BW], t.count[LOST_WIN],
                           t.count[LOST_SPK], t.count[LOST_NO_SPKR], t.count[LOST_NEXT], t.dur[LOST_BW],
                           t.dur[LOST_WIN], t.dur[LOST_SPK], t.dur[LOST_NO_SPKR], t.dur[LOST_NEXT], total);
done:
    Py_XDECREF(windows);
    Py_XDECREF(lost);
    Py_XDECREF(total);
    Py_DECREF(r.min_bw);
    entry_free(&e);
    if (t.not_float && !PyErr_Occurred()) Py_RETURN_NONE;
    return result ? result : hand_back();
}
