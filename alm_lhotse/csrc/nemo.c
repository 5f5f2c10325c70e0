/*
 * The NeMo manifest of an entry's kept windows as JSON lines, without building a dict
 * per window and per turn.
 *
 * The specification is alm_lhotse.outputs.nemo_manifest.window_nemo_dict serialised by
 * orjson. Here the values of every line (offset, duration, transcript, each turn's
 * shifted times, speaker and text) go into one list that orjson serialises once, and
 * each value's text is cut out of that output and placed between the dict's keys, in
 * its key order, so every number and string is formatted by orjson itself.
 */
#include "kernel.h"

static PyObject *ATTR_START, *ATTR_END, *SPACE, *METHOD_STRIP;

static int names_ready(void) {
    if (SPACE) return 0;
    ATTR_START = PyUnicode_InternFromString("start");
    ATTR_END = PyUnicode_InternFromString("end");
    METHOD_STRIP = PyUnicode_InternFromString("strip");
    SPACE = PyUnicode_InternFromString(" ");
    return (ATTR_START && ATTR_END && METHOD_STRIP && SPACE) ? 0 : -1;
}

/* A window's line: its first segment (the id) and where its values start in the list. */
typedef struct {
    Py_ssize_t first, value, turns;
} Line;

/* Per window: its turns' transcript pieces and the speaker of its last non-empty turn. */
typedef struct {
    PyObject *words;    /* list of str, joined by spaces into the transcript */
    PyObject *previous; /* borrowed */
    PyObject *tag;      /* callable speaker -> str, or NULL for plain text */
} Transcript;

/* transcript_text's rule for one turn: its stripped text (empty or not a str: none). */
static int add_words(Transcript *t, PyObject *speaker, PyObject *text) {
    if (!text || !PyUnicode_Check(text) || PyUnicode_GET_LENGTH(text) == 0) return 0;
    Py_ssize_t n = PyUnicode_GET_LENGTH(text);
    PyObject *stripped;
    if (Py_UNICODE_ISSPACE(PyUnicode_READ_CHAR(text, 0)) || Py_UNICODE_ISSPACE(PyUnicode_READ_CHAR(text, n - 1))) {
        stripped = PyObject_CallMethodNoArgs(text, METHOD_STRIP);
        if (!stripped) return -1;
        if (PyUnicode_GET_LENGTH(stripped) == 0) {
            Py_DECREF(stripped);
            return 0;
        }
    } else {
        Py_INCREF(text);
        stripped = text;
    }
    if (t->tag) {
        /* `speaker and speaker != previous`, as Python evaluates it */
        int changed = PyObject_IsTrue(speaker);
        if (changed > 0) {
            PyObject *ne = PyObject_RichCompare(speaker, t->previous, Py_NE);
            changed = ne ? PyObject_IsTrue(ne) : -1;
            Py_XDECREF(ne);
        }
        if (changed < 0 || (changed && append_new(t->words, PyObject_CallOneArg(t->tag, speaker)) < 0)) {
            Py_DECREF(stripped);
            return -1;
        }
    }
    t->previous = speaker;
    return append_new(t->words, stripped);
}

/* One turn (a segment with a positive length) into the values; 1 if added, 0 if not. */
static int add_turn(PyObject *values, Transcript *t, PyObject *seg, PyObject *shift) {
    if (!PyDict_CheckExact(seg)) {
        PyErr_SetString(PyExc_TypeError, "a segment must be a dict");
        return -1;
    }
    PyObject *start = require_item(seg, KEY_START);
    PyObject *end = start ? require_item(seg, KEY_END) : NULL;
    if (!end) return -1;
    int positive = PyObject_RichCompareBool(end, start, Py_GT);
    if (positive <= 0) return positive;
    PyObject *speaker = PyDict_GetItemWithError(seg, KEY_SPEAKER);
    if (!speaker && PyErr_Occurred()) return -1;
    PyObject *text = PyDict_GetItemWithError(seg, KEY_TEXT);
    if (!text && PyErr_Occurred()) return -1;
    speaker = speaker ? speaker : Py_None;
    if (append_new(values, PyNumber_Subtract(start, shift)) < 0 || append_new(values, PyNumber_Subtract(end, shift)) < 0 ||
        PyList_Append(values, speaker) < 0 || PyList_Append(values, text ? text : Py_None) < 0 ||
        add_words(t, speaker, text) < 0)
        return -1;
    return 1;
}

/* A window's values (offset, duration, transcript, then its turns) appended; -1 on error. */
static int add_window(PyObject *values, Line *line, PyObject *w, PyObject *segments, PyObject *tag) {
    PyObject *first_o = PyObject_GetAttr(w, ATTR_FIRST);
    PyObject *stop_o = first_o ? PyObject_GetAttr(w, ATTR_STOP) : NULL;
    Py_ssize_t first = stop_o ? PyLong_AsSsize_t(first_o) : -1;
    Py_ssize_t stop = stop_o ? PyLong_AsSsize_t(stop_o) : -1;
    Py_XDECREF(first_o);
    Py_XDECREF(stop_o);
    if (PyErr_Occurred()) return -1;
    if (first < 0 || stop < first || stop > PyList_GET_SIZE(segments)) {
        PyErr_SetString(PyExc_ValueError, "a window's segment range is out of bounds");
        return -1;
    }
    PyObject *start = PyObject_GetAttr(w, ATTR_START);
    PyObject *end = start ? PyObject_GetAttr(w, ATTR_END) : NULL;
    PyObject *part = end ? PyObject_GetAttr(w, ATTR_PART) : NULL;
    Transcript t = {PyList_New(0), Py_None, tag};
    int ok = part && t.words && PyList_Append(values, start) == 0 && append_new(values, PyNumber_Subtract(end, start)) == 0 &&
             PyList_Append(values, Py_None) == 0;
    line->first = first;
    line->value = PyList_GET_SIZE(values) - 3;
    line->turns = 0;
    for (Py_ssize_t i = first; ok && i < stop; i++) {
        int added = add_turn(values, &t, PyList_GET_ITEM(segments, i), start);
        ok = added >= 0;
        line->turns += added > 0;
    }
    if (ok && part != Py_None) {
        int added = add_turn(values, &t, part, start);
        ok = added >= 0;
        line->turns += added > 0;
    }
    PyObject *transcript = ok ? PyUnicode_Join(SPACE, t.words) : NULL;
    ok = transcript && PyList_SetItem(values, line->value + 2, transcript) == 0;
    Py_XDECREF(t.words);
    Py_XDECREF(start);
    Py_XDECREF(end);
    Py_XDECREF(part);
    return ok ? 0 : -1;
}

/* The lines, from the serialised values; value 0 is the audio path, 1 the recording id. */
static PyObject *write_lines(const Line *lines, Py_ssize_t n, const Values *v, Py_ssize_t size) {
    Buffer b = {NULL, 0, 0};
    if (reserve(&b, size + n * (96 + v->len[0] + v->len[1])) < 0) return NULL;
    for (Py_ssize_t k = 0; k < n; k++) {
        Py_ssize_t at = lines[k].value;
        if (PUT_LITERAL(&b, "{\"audio_filepath\":") < 0 || put_value(&b, v, 0) < 0 || PUT_LITERAL(&b, ",\"offset\":") < 0 ||
            put_value(&b, v, at) < 0 || PUT_LITERAL(&b, ",\"duration\":") < 0 || put_value(&b, v, at + 1) < 0 ||
            PUT_LITERAL(&b, ",\"text\":") < 0 || put_value(&b, v, at + 2) < 0 || PUT_LITERAL(&b, ",\"segments\":[") < 0)
            goto fail;
        for (Py_ssize_t j = 0; j < lines[k].turns; j++) {
            Py_ssize_t leaf = at + 3 + 4 * j;
            if ((j > 0 && PUT_LITERAL(&b, ",") < 0) || PUT_LITERAL(&b, "{\"start\":") < 0 || put_value(&b, v, leaf) < 0 ||
                PUT_LITERAL(&b, ",\"end\":") < 0 || put_value(&b, v, leaf + 1) < 0 || PUT_LITERAL(&b, ",\"speaker\":") < 0 ||
                put_value(&b, v, leaf + 2) < 0 || PUT_LITERAL(&b, ",\"text\":") < 0 || put_value(&b, v, leaf + 3) < 0 ||
                PUT_LITERAL(&b, "}") < 0)
                goto fail;
        }
        /* The id is the recording id's string with "-win" and the zero-padded index added. */
        if (PUT_LITERAL(&b, "],\"id\":") < 0 || put(&b, v->text + v->at[1], v->len[1] - 1) < 0 || PUT_LITERAL(&b, "-win") < 0 ||
            put_index(&b, lines[k].first, 5) < 0 || PUT_LITERAL(&b, "\"}\n") < 0)
            goto fail;
    }
    if (_PyBytes_Resize(&b.bytes, b.size) < 0) return NULL;
    return b.bytes;
fail:
    Py_XDECREF(b.bytes);
    return NULL;
}

const char nemo_lines_doc[] =
    "nemo_lines(segments, windows, rec_id, audio_filepath, tag, dumps)\n"
    "--\n\n"
    "The NeMo manifest lines of `windows` (alm_lhotse.outputs.nemo_manifest.window_nemo_dict,\n"
    "serialised with `dumps` and a newline each) as one bytes object; `tag` is a callable\n"
    "giving a speaker's tag, or None. None where the Python rule must decide.";

PyObject *nemo_lines(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 6 || !PyList_Check(args[0]) || !PyList_Check(args[1]))
        return usage_error("nemo_lines(segments: list, windows: list, rec_id, audio_filepath, tag, dumps)");
    if (names_ready() < 0) return NULL;
    PyObject *segments = args[0], *windows = args[1], *tag = args[4] == Py_None ? NULL : args[4];
    if (!PyUnicode_CheckExact(args[2])) Py_RETURN_NONE;
    Py_ssize_t n = PyList_GET_SIZE(windows);
    if (n == 0) return PyBytes_FromStringAndSize("", 0);
    Line *lines = PyMem_New(Line, n);
    PyObject *values = PyList_New(0), *text = NULL, *out = NULL;
    Values v = {NULL, NULL, NULL};
    if (!lines || !values) {
        PyErr_NoMemory();
        goto done;
    }
    if (PyList_Append(values, args[3]) < 0 || PyList_Append(values, args[2]) < 0) goto done;
    for (Py_ssize_t k = 0; k < n; k++) {
        if (add_window(values, &lines[k], PyList_GET_ITEM(windows, k), segments, tag) < 0) goto done;
    }
    text = PyObject_CallOneArg(args[5], values);
    if (!text) goto done;
    if (!PyBytes_Check(text)) {
        PyErr_SetString(PyExc_TypeError, "dumps must return bytes");
        goto done;
    }
    Py_ssize_t count = PyList_GET_SIZE(values);
    v.at = PyMem_New(Py_ssize_t, count);
    v.len = PyMem_New(Py_ssize_t, count);
    if (!v.at || !v.len) {
        PyErr_NoMemory();
        goto done;
    }
    if (split_values(&v, PyBytes_AS_STRING(text), PyBytes_GET_SIZE(text), count) < 0) goto done;
    out = write_lines(lines, n, &v, PyBytes_GET_SIZE(text));
done:
    PyMem_Free(lines);
    PyMem_Free(v.at);
    PyMem_Free(v.len);
    Py_XDECREF(values);
    Py_XDECREF(text);
    return out ? out : hand_back();
}
