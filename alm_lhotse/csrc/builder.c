/*
 * The window builder's fast path: the loop of alm_lhotse.windows.build_windows for
 * entries whose segments are sorted and cannot exceed the speaker limit, with the
 * per-window speaker-duration fold (the reference's float sums, in its order).
 */
#include "kernel.h"

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
static int next_is_no_speaker(PyObject *seg, PyObject *no_speaker) {
    if (!PyDict_Check(seg)) {
        PyErr_SetString(PyExc_TypeError, "a segment must be a dict");
        return -1;
    }
    PyObject *spk = PyDict_GetItemWithError(seg, KEY_SPEAKER);
    if (!spk) return PyErr_Occurred() ? -1 : 1;
    return PyObject_RichCompareBool(spk, no_speaker, Py_EQ);
}

const char build_entry_doc[] =
    "build_entry(segments, min_bw, max_d, min_d, max_spk, min_spk, truncation, keep_speaker,\n"
    "            stored_bw_bad, truncate, window_type, lost_type, no_speaker, sum)\n"
    "--\n\n"
    "The builder's fast path for one entry's (ordered) segments. Returns None where it does\n"
    "not apply (unsorted, crowded, non-float times, or anything the pure-Python builder\n"
    "would raise on: it then runs and raises), else (windows, lost, events, (lost_bw,\n"
    "lost_win, lost_spk, lost_no_spkr, lost_next), (dur_bw, dur_win, dur_spk, dur_no_spkr,\n"
    "dur_next), total_dur).";

PyObject *build_entry(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 14 || !PyList_Check(args[0]))
        return usage_error("build_entry takes 14 arguments, segments first (a list)");
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
                PyObject *cand = truncate_segment(PyList_GET_ITEM(segments, j), limit_obj, truncate);
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
            w_end_obj = require_item(part, KEY_END);
            if (!w_end_obj) goto done;
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
            int nospk = next_is_no_speaker(PyList_GET_ITEM(segments, next_index), no_speaker);
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
            if (append_new(lost, lw) < 0) goto done;
            Py_CLEAR(part);
            continue;
        }
        Py_ssize_t n_speakers = 0;
        PyObject *top = NULL;
        if (keep_speaker) {
            double part_dur = 0.0;
            Py_ssize_t part_code = -1;
            if (part && e.truthy[j]) {
                PyObject *ps = require_item(part, KEY_START);
                if (!ps) goto done;
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
        if (append_new(windows, w) < 0) goto done;
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
