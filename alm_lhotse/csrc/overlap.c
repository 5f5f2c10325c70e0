/*
 * The overlap filter (alm_lhotse.core.overlap.filter_spans and kept_mask) on float spans.
 */
#include "kernel.h"
#include <math.h>

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

const char overlap_filter_doc[] =
    "overlap_filter(spans, threshold, target_duration)\n"
    "--\n\n"
    "The overlap filter on (end, start) float pairs. Returns None when a value is not a\n"
    "finite float, else (kept spans in (start, end) order, mask in window order). A mask\n"
    "value of None marks a window that is not kept exactly but lies within rounding\n"
    "distance of a kept one: the caller decides it with the reference's round().";

PyObject *overlap_filter(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 3 || !PyList_Check(args[0]))
        return usage_error("overlap_filter(spans: list, threshold, target_duration)");
    if (MATCH_SLACK < 0 || MATCH_RELATIVE_SLACK < 0) return not_configured("the overlap filter's match slack");
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
        double near = MATCH_SLACK + fabs(start) * MATCH_RELATIVE_SLACK;
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
