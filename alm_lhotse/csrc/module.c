/*
 * The extension module alm_lhotse._kernel: its functions, and the interned keys and
 * constants the loops share.
 */
#include "kernel.h"

PyObject *KEY_START, *KEY_END, *KEY_SPEAKER, *KEY_METRICS, *KEY_BANDWIDTH, *KEY_TEXT, *KEY_WORDS, *KEY_WORD;
PyObject *EMPTY_STR, *ZERO;
PyObject *ATTR_FIRST, *ATTR_STOP, *ATTR_PART, *ATTR_SPEAKER_DURATIONS, *FLOAT_ZERO;
PyObject *BUILTIN_SUM;

/* Unset until configure() gives them: -1, NULL. */
Py_ssize_t SPEAKER_SLOTS = -1, MIN_SEGMENTS_PER_WINDOW = -1;
PyObject *NO_SPEAKER, *WINDOW_TYPE, *LOST_WINDOW_TYPE, *TRUNCATE_SEGMENT, *MAX_TIME;
long long EXACT_INT_LIMIT = -1;
double MATCH_SLACK = -1, MATCH_RELATIVE_SLACK = -1;

PyObject *not_configured(const char *what) {
    PyErr_Format(PyExc_RuntimeError, "alm_lhotse._kernel: %s not configured (alm_lhotse.native.configure)", what);
    return NULL;
}

static int set_count(Py_ssize_t *slot, PyObject *value) {
    Py_ssize_t n = PyLong_AsSsize_t(value);
    if (n == -1 && PyErr_Occurred()) return -1;
    if (n < 0) {
        PyErr_SetString(PyExc_ValueError, "configure: a count must not be negative");
        return -1;
    }
    *slot = n;
    return 0;
}

static int set_double(double *slot, PyObject *value) {
    double x = PyFloat_AsDouble(value);
    if (x == -1.0 && PyErr_Occurred()) return -1;
    *slot = x;
    return 0;
}

static int set_object(PyObject **slot, PyObject *value) {
    Py_INCREF(value);
    Py_XSETREF(*slot, value);
    return 0;
}

static int set_constant(const char *name, PyObject *value) {
    if (!strcmp(name, "speaker_slots")) return set_count(&SPEAKER_SLOTS, value);
    if (!strcmp(name, "min_segments")) return set_count(&MIN_SEGMENTS_PER_WINDOW, value);
    if (!strcmp(name, "no_speaker")) return set_object(&NO_SPEAKER, value);
    if (!strcmp(name, "window")) return set_object(&WINDOW_TYPE, value);
    if (!strcmp(name, "lost_window")) return set_object(&LOST_WINDOW_TYPE, value);
    if (!strcmp(name, "truncate")) return set_object(&TRUNCATE_SEGMENT, value);
    if (!strcmp(name, "max_time")) return set_object(&MAX_TIME, value);
    if (!strcmp(name, "match_slack")) return set_double(&MATCH_SLACK, value);
    if (!strcmp(name, "match_relative_slack")) return set_double(&MATCH_RELATIVE_SLACK, value);
    if (!strcmp(name, "exact_int_limit")) {
        long long limit = PyLong_AsLongLong(value);
        if (limit == -1 && PyErr_Occurred()) return -1;
        EXACT_INT_LIMIT = limit;
        return 0;
    }
    PyErr_Format(PyExc_TypeError, "configure: unknown constant '%s'", name);
    return -1;
}

const char configure_doc[] =
    "configure(**constants)\n"
    "--\n\n"
    "Sets the rules' constants (speaker_slots, min_segments, no_speaker, window,\n"
    "lost_window, truncate, match_slack, match_relative_slack, exact_int_limit, max_time): the\n"
    "compiled loops define none of their own.";

PyObject *configure(PyObject *self, PyObject *args, PyObject *kwargs) {
    if (PyTuple_GET_SIZE(args) != 0) return usage_error("configure(**constants) takes keyword arguments only");
    PyObject *key, *value;
    Py_ssize_t pos = 0;
    while (kwargs && PyDict_Next(kwargs, &pos, &key, &value)) {
        const char *name = PyUnicode_AsUTF8(key);
        if (!name || set_constant(name, value) < 0) return NULL;
    }
    Py_RETURN_NONE;
}

/* After an ordinary exception, None: the pure-Python builder reruns the entry and raises
 * the same error, at the same point, with its own message. Memory errors propagate. */
PyObject *hand_back(void) {
    if (PyErr_Occurred() && PyErr_ExceptionMatches(PyExc_Exception) && !PyErr_ExceptionMatches(PyExc_MemoryError)) {
        PyErr_Clear();
        Py_RETURN_NONE;
    }
    return NULL;
}

PyObject *usage_error(const char *usage) {
    PyErr_SetString(PyExc_TypeError, usage);
    return NULL;
}

int append_new(PyObject *list, PyObject *obj) {
    if (!obj) return -1;
    int r = PyList_Append(list, obj);
    Py_DECREF(obj);
    return r;
}

PyObject *require_item(PyObject *seg, PyObject *key) {
    if (!PyDict_Check(seg)) {
        PyErr_SetString(PyExc_TypeError, "a segment must be a dict");
        return NULL;
    }
    PyObject *value = PyDict_GetItemWithError(seg, key);
    if (!value && !PyErr_Occurred()) PyErr_SetObject(PyExc_KeyError, key);
    return value;
}

static PyMethodDef methods[] = {
    {"configure", (PyCFunction)(void (*)(void))configure, METH_VARARGS | METH_KEYWORDS, configure_doc},
    {"build_entry", (PyCFunction)(void (*)(void))build_entry, METH_FASTCALL, build_entry_doc},
    {"overlap_filter", (PyCFunction)(void (*)(void))overlap_filter, METH_FASTCALL, overlap_filter_doc},
    {"element_offsets", element_offsets, METH_O, element_offsets_doc},
    {"first_doubtful_segment", (PyCFunction)(void (*)(void))first_doubtful_segment, METH_FASTCALL,
     first_doubtful_segment_doc},
    {"segment_order", segment_order, METH_O, segment_order_doc},
    {"count_newlines", count_newlines, METH_O, count_newlines_doc},
    {"json_depth", json_depth, METH_O, json_depth_doc},
    {"supervisions_json", (PyCFunction)(void (*)(void))supervisions_json, METH_FASTCALL, supervisions_json_doc},
    {"nemo_lines", (PyCFunction)(void (*)(void))nemo_lines, METH_FASTCALL, nemo_lines_doc},
    {"render_windows", (PyCFunction)(void (*)(void))render_windows, METH_FASTCALL, render_windows_doc},
    {"strip_all", (PyCFunction)(void (*)(void))strip_all, METH_FASTCALL, strip_all_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "alm_lhotse._kernel",
    "Compiled per-window and per-segment loops (optional: pure Python gives the same results).", -1, methods,
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
    EMPTY_STR = PyUnicode_InternFromString("");
    ATTR_FIRST = PyUnicode_InternFromString("first");
    ATTR_STOP = PyUnicode_InternFromString("stop");
    ATTR_PART = PyUnicode_InternFromString("part");
    ATTR_SPEAKER_DURATIONS = PyUnicode_InternFromString("speaker_durations");
    ZERO = PyLong_FromLong(0);
    FLOAT_ZERO = PyFloat_FromDouble(0.0);
    PyObject *builtins = PyImport_ImportModule("builtins");
    BUILTIN_SUM = builtins ? PyObject_GetAttrString(builtins, "sum") : NULL;
    Py_XDECREF(builtins);
    if (!KEY_START || !KEY_END || !KEY_SPEAKER || !KEY_METRICS || !KEY_BANDWIDTH || !KEY_TEXT || !KEY_WORDS ||
        !KEY_WORD || !EMPTY_STR || !ZERO || !ATTR_FIRST || !ATTR_STOP || !ATTR_PART || !ATTR_SPEAKER_DURATIONS || !FLOAT_ZERO ||
        !BUILTIN_SUM)
        return NULL;
    return PyModule_Create(&module);
}

