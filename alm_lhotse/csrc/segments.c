/*
 * Per-segment checks: alm_lhotse.reading.validation's segment check as a yes/no (the
 * Python check explains a no), and alm_lhotse.core.entry.segment_order (unsorted,
 * overlapping).
 */
#include "kernel.h"
#include <math.h>

/* Python's `type(v) in (int, float)`. */
static int is_number(PyObject *v) { return PyFloat_CheckExact(v) || PyLong_CheckExact(v); }

/* Python's `0 <= a <= b < MAX_TIME` for numbers: 1, 0, or -1 on error. */
static int ordered_from_zero(PyObject *a, PyObject *b) {
    if (!MAX_TIME) {
        not_configured("max_time");
        return -1;
    }
    if (PyFloat_CheckExact(a) && PyFloat_CheckExact(b)) {
        double x = PyFloat_AS_DOUBLE(a), y = PyFloat_AS_DOUBLE(b);
        return 0 <= x && x <= y && y < PyFloat_AsDouble(MAX_TIME);
    }
    static PyObject *zero = NULL;
    if (!zero && !(zero = PyLong_FromLong(0))) return -1;
    int r = PyObject_RichCompareBool(zero, a, Py_LE);
    if (r <= 0) return r;
    r = PyObject_RichCompareBool(a, b, Py_LE);
    if (r <= 0) return r;
    return PyObject_RichCompareBool(b, MAX_TIME, Py_LT);
}

static int optional_str(PyObject *dict, PyObject *key) {
    PyObject *v = PyDict_GetItemWithError(dict, key);
    if (!v) return PyErr_Occurred() ? -1 : 1;
    return v == Py_None || PyUnicode_CheckExact(v);
}

/* Whether alm_lhotse.reading.validation._check_segment passes `seg`: 1 yes, 0 no (or
 * a list subclass of words, which only the Python check takes), -1 error. */
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

const char first_doubtful_segment_doc[] =
    "first_doubtful_segment(segments, start)\n"
    "--\n\n"
    "Index of the first segment at or after `start` that alm_lhotse.reading.validation's\n"
    "segment check may reject (it then explains why), or len(segments).";

PyObject *first_doubtful_segment(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 2 || !PyList_Check(args[0]))
        return usage_error("first_doubtful_segment(segments: list, start: int)");
    Py_ssize_t k = PyLong_AsSsize_t(args[1]);
    if (k == -1 && PyErr_Occurred()) return NULL;
    for (; k < PyList_GET_SIZE(args[0]); k++) {
        int r = segment_looks_valid(PyList_GET_ITEM(args[0], k));
        if (r < 0) return NULL;
        if (!r) break;
    }
    return PyLong_FromSsize_t(k);
}

const char segment_order_doc[] =
    "segment_order(segments)\n"
    "--\n\n"
    "(unsorted, overlapping) of segments whose starts and ends are all floats and whose\n"
    "starts are sorted; None otherwise (the caller computes it in Python).";

PyObject *segment_order(PyObject *self, PyObject *segments) {
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
