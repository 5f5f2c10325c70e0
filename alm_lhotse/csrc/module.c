/*
 * The extension module alm_lhotse._kernel: its functions, and the interned keys and
 * constants the loops share.
 */
#include "kernel.h"

PyObject *KEY_START, *KEY_END, *KEY_SPEAKER, *KEY_METRICS, *KEY_BANDWIDTH, *KEY_TEXT, *KEY_WORDS, *KEY_WORD;
PyObject *KEY_ID, *KEY_RECORDING_ID, *KEY_DURATION, *KEY_CHANNEL, *KEY_CUSTOM, *KEY_ALIGNMENT;
PyObject *KEY_SOURCE_START, *KEY_SOURCE_END, *KEY_SEGMENT_INDEX, *KEY_WORD_ENDS, *EMPTY_STR, *ZERO;
PyObject *ATTR_FIRST, *ATTR_STOP, *ATTR_PART, *ATTR_SPEAKER_DURATIONS, *FLOAT_ZERO;
PyObject *CORE_KEYS, *ADDED_KEYS;

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
    {"build_entry", (PyCFunction)(void (*)(void))build_entry, METH_FASTCALL, build_entry_doc},
    {"overlap_filter", (PyCFunction)(void (*)(void))overlap_filter, METH_FASTCALL, overlap_filter_doc},
    {"element_offsets", element_offsets, METH_O, element_offsets_doc},
    {"first_doubtful_segment", (PyCFunction)(void (*)(void))first_doubtful_segment, METH_FASTCALL,
     first_doubtful_segment_doc},
    {"segment_order", segment_order, METH_O, segment_order_doc},
    {"count_newlines", count_newlines, METH_O, count_newlines_doc},
    {"supervisions", (PyCFunction)(void (*)(void))supervisions, METH_FASTCALL, supervisions_doc},
    {"supervisions_json", (PyCFunction)(void (*)(void))supervisions_json, METH_FASTCALL, supervisions_json_doc},
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
    ATTR_FIRST = PyUnicode_InternFromString("first");
    ATTR_STOP = PyUnicode_InternFromString("stop");
    ATTR_PART = PyUnicode_InternFromString("part");
    ATTR_SPEAKER_DURATIONS = PyUnicode_InternFromString("speaker_durations");
    ZERO = PyLong_FromLong(0);
    FLOAT_ZERO = PyFloat_FromDouble(0.0);
    PyObject *core = Py_BuildValue("(OOOOO)", KEY_START, KEY_END, KEY_SPEAKER, KEY_TEXT, KEY_WORDS);
    CORE_KEYS = core ? PyFrozenSet_New(core) : NULL;
    Py_XDECREF(core);
    PyObject *added = Py_BuildValue("(OOOO)", KEY_SOURCE_START, KEY_SOURCE_END, KEY_SEGMENT_INDEX, KEY_WORD_ENDS);
    ADDED_KEYS = added ? PyFrozenSet_New(added) : NULL;
    Py_XDECREF(added);
    if (!CORE_KEYS || !ADDED_KEYS || !KEY_START || !KEY_END || !KEY_SPEAKER || !KEY_METRICS || !KEY_BANDWIDTH || !KEY_TEXT || !KEY_WORDS ||
        !KEY_WORD || !KEY_ID || !KEY_RECORDING_ID || !KEY_DURATION || !KEY_CHANNEL || !KEY_CUSTOM ||
        !KEY_ALIGNMENT || !KEY_SOURCE_START || !KEY_SOURCE_END || !KEY_SEGMENT_INDEX || !KEY_WORD_ENDS ||
        !EMPTY_STR || !ZERO || !ATTR_FIRST || !ATTR_STOP || !ATTR_PART || !ATTR_SPEAKER_DURATIONS || !FLOAT_ZERO)
        return NULL;
    return PyModule_Create(&module);
}

