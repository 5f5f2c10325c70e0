/*
 * The NeMo Curator-compatible output's window arrays (alm_lhotse.compat), assembled from
 * one serialisation of the entry's segments.
 */
#include "kernel.h"

const char element_offsets_doc[] =
    "element_offsets(array_json)\n"
    "--\n\n"
    "For a compact JSON array of objects (orjson output), where each element starts,\n"
    "relative to the text inside the brackets, plus that text's length + 1: element k\n"
    "is inner[offsets[k] : offsets[k + 1] - 1].";

PyObject *element_offsets(PyObject *self, PyObject *arg) {
    if (!PyBytes_Check(arg)) return usage_error("element_offsets expects bytes");
    const char *buf = PyBytes_AS_STRING(arg);
    Py_ssize_t size = PyBytes_GET_SIZE(arg);
    if (size < 2 || buf[0] != '[' || buf[size - 1] != ']') {
        PyErr_SetString(PyExc_ValueError, "element_offsets expects a JSON array");
        return NULL;
    }
    PyObject *offsets = PyList_New(0);
    Py_ssize_t inner = size - 2;
    if (!offsets) return NULL;
    for (Py_ssize_t k = 0; k < inner; k = json_element_end(buf + 1, inner, k) + 1) {
        if (append_new(offsets, PyLong_FromSsize_t(k)) < 0) goto fail;
    }
    if (append_new(offsets, PyLong_FromSsize_t(inner + 1)) < 0) goto fail;
    return offsets;
fail:
    Py_DECREF(offsets);
    return NULL;
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

const char strip_all_doc[] =
    "strip_all(segments, drop)\n"
    "--\n\n"
    "alm_lhotse.compat.strip_fields of every segment: the segment itself when it has none\n"
    "of the fields in `drop`, else a copy without them. None unless every segment is a dict.";

PyObject *strip_all(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 2 || !PyList_Check(args[0]) || !PyAnySet_Check(args[1]))
        return usage_error("strip_all(segments: list, drop: set)");
    Py_ssize_t n = PyList_GET_SIZE(args[0]);
    PyObject *out = PyList_New(n);
    if (!out) return NULL;
    for (Py_ssize_t k = 0; k < n; k++) {
        PyObject *seg = PyList_GET_ITEM(args[0], k);
        PyObject *stripped = PyDict_CheckExact(seg) ? strip_fields(seg, args[1]) : NULL;
        if (!stripped) {
            Py_DECREF(out);
            if (PyErr_Occurred()) return NULL;
            Py_RETURN_NONE;
        }
        PyList_SET_ITEM(out, k, stripped);
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

const char render_windows_doc[] =
    "render_windows(array, offsets, windows, kept, drop, dumps)\n"
    "--\n\n"
    "The JSON arrays of all windows and of the kept ones, as two bytes objects. `array` is\n"
    "the entry's segments serialised as one JSON array, `offsets` its element_offsets;\n"
    "each window is its run of whole segments, its truncated part\n"
    "(fields in `drop` removed) and its speaker durations, serialised with `dumps`.";

PyObject *render_windows(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 6 || !PyBytes_Check(args[0]) || !PyList_Check(args[1]) || !PyList_Check(args[2]) ||
        !PyList_Check(args[3]) || !PyAnySet_Check(args[4]))
        return usage_error("render_windows(array: bytes, offsets: list, windows: list, kept: list, drop: set, dumps)");
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
        PyObject *first_o = PyObject_GetAttr(w, ATTR_FIRST);
        PyObject *stop_o = PyObject_GetAttr(w, ATTR_STOP);
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
        PyObject *part = PyObject_GetAttr(w, ATTR_PART);
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
        PyObject *durations = PyObject_GetAttr(w, ATTR_SPEAKER_DURATIONS);
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
