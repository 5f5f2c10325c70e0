/*
 * Lhotse supervision dicts (alm_lhotse.manifests.supervision_dict).
 */
#include "kernel.h"

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
        PyObject *ws = require_item(w, KEY_START);
        PyObject *we = ws ? require_item(w, KEY_END) : NULL;
        if (!we) goto fail;
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
    PyObject *start = require_item(seg, KEY_START);
    PyObject *end = start ? require_item(seg, KEY_END) : NULL;
    if (!end) return NULL;
    PyObject *custom = PyDict_New(), *sup = PyDict_New();
    if (!custom || !sup) goto fail;
    PyObject *key, *value;
    Py_ssize_t pos = 0;
    while (PyDict_Next(seg, &pos, &key, &value)) {
        int core = PyUnicode_CheckExact(key) ? PySet_Contains(CORE_KEYS, key) : 0;
        if (core < 0) goto fail;
        if (core) continue;
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

const char supervisions_doc[] =
    "supervisions(segments, rec_id, shift, first, stop, part)\n"
    "--\n\n"
    "Supervision dicts (alm_lhotse.manifests.supervision_dict) of segments first..stop-1\n"
    "that have a positive duration, then of `part` (as segment `stop`) when it is not None\n"
    "and has one; times relative to `shift`. None where building one fails: the pure-Python\n"
    "builder then raises the precise error.";

PyObject *supervisions(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 6 || !PyList_Check(args[0]) || !PyUnicode_Check(args[1]))
        return usage_error("supervisions(segments: list, rec_id: str, shift, first, stop, part)");
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
        PyObject *start = require_item(seg, KEY_START);
        PyObject *end = start ? require_item(seg, KEY_END) : NULL;
        if (!end) goto fail;
        int positive = PyObject_RichCompareBool(end, start, Py_GT);
        if (positive < 0) goto fail;
        if (!positive) continue;
        if (append_new(out, supervision(seg, rec_id, k, shift, unshifted)) < 0) goto fail;
    }
    return out;
fail:
    Py_DECREF(out);
    return hand_back();
}
