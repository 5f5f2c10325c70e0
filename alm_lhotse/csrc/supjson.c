/*
 * Lhotse supervisions as JSON text, without building their dicts.
 *
 * Building a dict per supervision and serialising it cost about twice what serialising
 * its values does. Here the values of all supervisions of a call (times, texts,
 * speakers, words, passthrough fields) go into one list, orjson serialises that list
 * once, and the text of each value is cut out of orjson's output and placed between
 * the keys of alm_lhotse.manifests.supervision_dict, in that dict's key order. Every
 * number and string is therefore formatted by orjson itself, and the result equals
 * orjson.dumps of the dicts byte for byte.
 */
#include "kernel.h"

#include <string.h>

/* What one supervision writes, besides its first three values (start, duration, text). */
typedef struct {
    Py_ssize_t index; /* segment index */
    Py_ssize_t leaf;  /* its first value in the list */
    Py_ssize_t words; /* alignment items */
    Py_ssize_t fields; /* custom fields copied from the segment */
    char speaker;     /* 1: "speaker" of the supervision, 2: of custom, 0: none */
    char text_null;   /* custom "text": null */
    char word_ends;   /* custom "word_ends" (start + duration misses a word's end) */
    char words_value; /* custom "words": the segment's empty words value */
} Sup;

/* The output, written straight into a bytes object that is sized once from an upper
 * bound of the result (grown if ever needed) and cut to its length at the end. */
typedef struct {
    PyObject *bytes;
    Py_ssize_t size, capacity;
} Buffer;

static int reserve(Buffer *b, Py_ssize_t capacity) {
    if (!b->bytes) {
        b->bytes = PyBytes_FromStringAndSize(NULL, capacity);
    } else if (_PyBytes_Resize(&b->bytes, capacity) < 0) {
        return -1;
    }
    if (!b->bytes) return -1;
    b->capacity = capacity;
    return 0;
}

static int put(Buffer *b, const char *text, Py_ssize_t n) {
    if (b->size + n > b->capacity && reserve(b, 2 * (b->size + n)) < 0) return -1;
    memcpy(PyBytes_AS_STRING(b->bytes) + b->size, text, n);
    b->size += n;
    return 0;
}

/* A non-negative integer, zero-padded to `width` digits ("%0*zd"). */
static int put_index(Buffer *b, Py_ssize_t value, int width) {
    char digits[24];
    int n = 0;
    do {
        digits[sizeof(digits) - 1 - n++] = (char)('0' + value % 10);
        value /= 10;
    } while (value);
    while (n < width) digits[sizeof(digits) - 1 - n++] = '0';
    return put(b, digits + sizeof(digits) - n, n);
}

#define PUT_LITERAL(b, s) put((b), (s), (Py_ssize_t)sizeof(s) - 1)

/* Values' texts in orjson's output of the list: value k is text[at[k] .. at[k] + len[k]). */
typedef struct {
    const char *text;
    Py_ssize_t *at, *len;
} Values;

static int put_value(Buffer *b, const Values *v, Py_ssize_t k) {
    return put(b, v->text + v->at[k], v->len[k]);
}

/* Where the value at text[k] ends: strings are skipped with memchr (most of the bytes
 * are texts), scalars end at the next separator, containers are scanned. */
static Py_ssize_t value_end(const char *text, Py_ssize_t size, Py_ssize_t k) {
    char c = text[k];
    if (c == '"') {
        for (Py_ssize_t q = k + 1; q < size;) {
            const char *quote = memchr(text + q, '"', size - q);
            if (!quote) return size;
            Py_ssize_t at = quote - text, slashes = 0;
            while (text[at - 1 - slashes] == '\\') slashes++;
            if (slashes % 2 == 0) return at + 1;
            q = at + 1;
        }
        return size;
    }
    if (c == '{' || c == '[') return json_element_end(text, size, k);
    while (k < size && text[k] != ',') k++;
    return k;
}

/* Cut the serialised list into its values; -1 (ValueError) when it has not `count`. */
static int split_values(Values *v, const char *text, Py_ssize_t size, Py_ssize_t count) {
    v->text = text;
    if (size < 2 || text[0] != '[' || text[size - 1] != ']') goto malformed;
    Py_ssize_t inner = size - 1, k = 1;
    for (Py_ssize_t n = 0; n < count; n++) {
        if (k >= inner) goto malformed;
        Py_ssize_t end = value_end(text, inner, k);
        v->at[n] = k;
        v->len[n] = end - k;
        if (end < inner && text[end] != ',') goto malformed;
        k = end + 1;
    }
    if (k != size) goto malformed;
    return 0;
malformed:
    PyErr_SetString(PyExc_ValueError, "unexpected serialisation of the supervision values");
    return -1;
}

/* Append the values of segment `seg` (its `start` and `end` given) to `values` and
 * describe it in `sup`; -1 on error. */
static int collect(PyObject *values, Sup *sup, PyObject *seg, PyObject *start, PyObject *end, Py_ssize_t index,
                   PyObject *shift, int unshifted) {
    memset(sup, 0, sizeof(*sup));
    sup->index = index;
    sup->leaf = PyList_GET_SIZE(values);
    PyObject *text = PyDict_GetItemWithError(seg, KEY_TEXT);
    if (!text && PyErr_Occurred()) return -1;
    if (append_new(values, PyNumber_Subtract(start, shift)) < 0 || append_new(values, PyNumber_Subtract(end, start)) < 0 ||
        PyList_Append(values, text ? text : Py_None) < 0)
        return -1;
    sup->text_null = text == Py_None;
    PyObject *speaker = PyDict_GetItemWithError(seg, KEY_SPEAKER);
    if (!speaker && PyErr_Occurred()) return -1;
    if (speaker) {
        int truthy = PyObject_IsTrue(speaker);
        if (truthy < 0) return -1;
        sup->speaker = truthy ? 1 : 2;
        if (truthy && PyList_Append(values, speaker) < 0) return -1;
    }
    PyObject *words = PyDict_GetItemWithError(seg, KEY_WORDS);
    if (!words && PyErr_Occurred()) return -1;
    int has_words = words ? PyObject_IsTrue(words) : 0;
    if (has_words < 0) return -1;
    if (has_words) {
        if (!PyList_Check(words)) {
            PyErr_SetString(PyExc_TypeError, "words must be a list");
            return -1;
        }
        sup->words = PyList_GET_SIZE(words);
        for (Py_ssize_t k = 0; k < sup->words; k++) {
            PyObject *w = PyList_GET_ITEM(words, k);
            if (!PyDict_Check(w)) {
                PyErr_SetString(PyExc_TypeError, "a word must be a dict");
                return -1;
            }
            PyObject *token = PyDict_GetItemWithError(w, KEY_WORD);
            if (!token && PyErr_Occurred()) return -1;
            int truthy = token ? PyObject_IsTrue(token) : 0;
            if (truthy < 0) return -1;
            PyObject *ws = require_item(w, KEY_START);
            PyObject *we = ws ? require_item(w, KEY_END) : NULL;
            if (!we || PyList_Append(values, truthy ? token : EMPTY_STR) < 0) return -1;
            PyObject *word_start = PyNumber_Subtract(ws, shift);
            PyObject *duration = word_start ? PyNumber_Subtract(we, ws) : NULL;
            if (!duration) {
                Py_XDECREF(word_start);
                return -1;
            }
            if (unshifted && !sup->word_ends) {
                PyObject *back = PyNumber_Add(word_start, duration);
                int differs = back ? PyObject_RichCompareBool(back, we, Py_NE) : -1;
                Py_XDECREF(back);
                if (differs < 0) {
                    Py_DECREF(word_start);
                    Py_DECREF(duration);
                    return -1;
                }
                sup->word_ends = (char)differs;
            }
            if (append_new(values, word_start) < 0 || append_new(values, duration) < 0) return -1;
        }
    } else if (words) {
        sup->words_value = 1;
    }
    PyObject *key, *value;
    Py_ssize_t pos = 0;
    while (PyDict_Next(seg, &pos, &key, &value)) {
        if (!PyUnicode_CheckExact(key)) {
            PyErr_SetString(PyExc_TypeError, "segment keys must be str");
            return -1;
        }
        int core = PySet_Contains(CORE_KEYS, key);
        if (core < 0) return -1;
        if (core) continue;
        /* the dict would keep such a key's first place, this writer would not */
        int added = PySet_Contains(ADDED_KEYS, key);
        if (added < 0) return -1;
        if (added) {
            PyErr_SetString(PyExc_ValueError, "a segment field is named like one a supervision adds");
            return -1;
        }
        if (PyList_Append(values, key) < 0 || PyList_Append(values, value) < 0) return -1;
        sup->fields++;
    }
    if (PyList_Append(values, start) < 0 || PyList_Append(values, end) < 0) return -1;
    if (sup->speaker == 2 && PyList_Append(values, speaker) < 0) return -1;
    if (sup->word_ends) {
        for (Py_ssize_t k = 0; k < sup->words; k++) {
            if (PyList_Append(values, PyDict_GetItem(PyList_GET_ITEM(words, k), KEY_END)) < 0) return -1;
        }
    }
    if (sup->words_value && PyList_Append(values, words) < 0) return -1;
    return 0;
}

/* The JSON object of one supervision, from its values; -1 on error. */
static int write_sup(Buffer *b, const Sup *sup, const Values *v) {
    Py_ssize_t k = sup->leaf;
    /* value 0 is the recording id; the supervision id is it with "-%05d" inside its quotes */
    if (PUT_LITERAL(b, "{\"id\":") < 0 || put(b, v->text + v->at[0], v->len[0] - 1) < 0 || PUT_LITERAL(b, "-") < 0 ||
        put_index(b, sup->index, 5) < 0 || PUT_LITERAL(b, "\"") < 0 || PUT_LITERAL(b, ",\"recording_id\":") < 0 || put_value(b, v, 0) < 0 ||
        PUT_LITERAL(b, ",\"start\":") < 0 || put_value(b, v, k++) < 0 || PUT_LITERAL(b, ",\"duration\":") < 0 ||
        put_value(b, v, k++) < 0 || PUT_LITERAL(b, ",\"channel\":0,\"text\":") < 0 || put_value(b, v, k++) < 0)
        return -1;
    if (sup->speaker == 1 && (PUT_LITERAL(b, ",\"speaker\":") < 0 || put_value(b, v, k++) < 0)) return -1;
    if (sup->words) {
        if (PUT_LITERAL(b, ",\"alignment\":{\"word\":[") < 0) return -1;
        for (Py_ssize_t w = 0; w < sup->words; w++) {
            if ((w && PUT_LITERAL(b, ",") < 0) || PUT_LITERAL(b, "[") < 0 || put_value(b, v, k++) < 0 ||
                PUT_LITERAL(b, ",") < 0 || put_value(b, v, k++) < 0 || PUT_LITERAL(b, ",") < 0 ||
                put_value(b, v, k++) < 0 || PUT_LITERAL(b, ",null]") < 0)
                return -1;
        }
        if (PUT_LITERAL(b, "]}") < 0) return -1;
    }
    if (PUT_LITERAL(b, ",\"custom\":{") < 0) return -1;
    for (Py_ssize_t f = 0; f < sup->fields; f++) {
        if (put_value(b, v, k++) < 0 || PUT_LITERAL(b, ":") < 0 || put_value(b, v, k++) < 0 || PUT_LITERAL(b, ",") < 0)
            return -1;
    }
    if (PUT_LITERAL(b, "\"source_start\":") < 0 || put_value(b, v, k++) < 0 || PUT_LITERAL(b, ",\"source_end\":") < 0 ||
        put_value(b, v, k++) < 0)
        return -1;
    if (PUT_LITERAL(b, ",\"segment_index\":") < 0 || put_index(b, sup->index, 1) < 0) return -1;
    if (sup->speaker == 2 && (PUT_LITERAL(b, ",\"speaker\":") < 0 || put_value(b, v, k++) < 0)) return -1;
    if (sup->text_null && PUT_LITERAL(b, ",\"text\":null") < 0) return -1;
    if (sup->word_ends) {
        if (PUT_LITERAL(b, ",\"word_ends\":[") < 0) return -1;
        for (Py_ssize_t w = 0; w < sup->words; w++) {
            if ((w && PUT_LITERAL(b, ",") < 0) || put_value(b, v, k++) < 0) return -1;
        }
        if (PUT_LITERAL(b, "]") < 0) return -1;
    }
    if (sup->words_value && (PUT_LITERAL(b, ",\"words\":") < 0 || put_value(b, v, k++) < 0)) return -1;
    return PUT_LITERAL(b, "}}");
}

const char supervisions_json_doc[] =
    "supervisions_json(segments, rec_id, shift, first, stop, part, dumps, frame, at, sep)\n"
    "--\n\n"
    "frame[:at] + sep.join(dumps(sup) for sup in supervisions(...)) + frame[at:], where\n"
    "supervisions(...) is this module's function of the same first six arguments and\n"
    "`dumps` is orjson.dumps. None where the dicts' serialisation might differ or fail:\n"
    "the caller then serialises the dicts, which raises the precise error.";

PyObject *supervisions_json(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 10 || !PyList_Check(args[0]) || !PyUnicode_Check(args[1]) || !PyBytes_Check(args[7]) ||
        !PyBytes_Check(args[9]))
        return usage_error(
            "supervisions_json(segments: list, rec_id: str, shift, first, stop, part, dumps, frame: bytes, at, sep: bytes)");
    PyObject *segments = args[0], *part = args[5], *dumps = args[6], *frame = args[7], *sep = args[9];
    Py_ssize_t first = PyLong_AsSsize_t(args[3]), stop = PyLong_AsSsize_t(args[4]), at = PyLong_AsSsize_t(args[8]);
    if (PyErr_Occurred()) return NULL;
    if (first < 0 || stop > PyList_GET_SIZE(segments) || at < 0 || at > PyBytes_GET_SIZE(frame)) {
        PyErr_SetString(PyExc_IndexError, "segment range or frame position out of bounds");
        return NULL;
    }
    int unshifted = PyObject_RichCompareBool(args[2], ZERO, Py_EQ);
    if (unshifted < 0) return NULL;
    Py_ssize_t count = stop - first + 1;
    Sup *sups = PyMem_Calloc(count > 0 ? count : 1, sizeof(Sup));
    PyObject *values = PyList_New(0), *text = NULL;
    Values v = {NULL, NULL, NULL};
    Buffer b = {NULL, 0, 0};
    int ok = 0;
    Py_ssize_t n = 0;
    if (!sups || !values || PyList_Append(values, args[1]) < 0) goto done;
    for (Py_ssize_t k = first; k <= stop; k++) {
        PyObject *seg = k < stop ? PyList_GET_ITEM(segments, k) : part;
        if (seg == Py_None) break;
        PyObject *start = require_item(seg, KEY_START);
        PyObject *end = start ? require_item(seg, KEY_END) : NULL;
        if (!end) goto done;
        int positive = PyObject_RichCompareBool(end, start, Py_GT);
        if (positive < 0) goto done;
        if (positive && collect(values, &sups[n++], seg, start, end, k, args[2], unshifted) < 0) goto done;
    }
    text = PyObject_CallOneArg(dumps, values);
    if (!text) goto done;
    if (!PyBytes_Check(text)) {
        PyErr_SetString(PyExc_TypeError, "dumps must return bytes");
        goto done;
    }
    Py_ssize_t leaves = PyList_GET_SIZE(values);
    v.at = PyMem_Malloc(leaves * sizeof(Py_ssize_t));
    v.len = PyMem_Malloc(leaves * sizeof(Py_ssize_t));
    if (!v.at || !v.len) {
        PyErr_NoMemory();
        goto done;
    }
    if (split_values(&v, PyBytes_AS_STRING(text), PyBytes_GET_SIZE(text), leaves) < 0) goto done;
    /* every value's text is used once (the recording id twice per supervision), plus keys */
    Py_ssize_t bound = PyBytes_GET_SIZE(frame) + PyBytes_GET_SIZE(text) + leaves * 16 +
                       n * (2 * v.len[0] + PyBytes_GET_SIZE(sep) + 256);
    if (reserve(&b, bound) < 0 || put(&b, PyBytes_AS_STRING(frame), at) < 0) goto done;
    for (Py_ssize_t k = 0; k < n; k++) {
        if (k && put(&b, PyBytes_AS_STRING(sep), PyBytes_GET_SIZE(sep)) < 0) goto done;
        if (write_sup(&b, &sups[k], &v) < 0) goto done;
    }
    if (put(&b, PyBytes_AS_STRING(frame) + at, PyBytes_GET_SIZE(frame) - at) < 0) goto done;
    ok = _PyBytes_Resize(&b.bytes, b.size) == 0;
done:
    PyMem_Free(sups);
    PyMem_Free(v.at);
    PyMem_Free(v.len);
    Py_XDECREF(values);
    Py_XDECREF(text);
    if (ok) return b.bytes;
    Py_XDECREF(b.bytes);
    return hand_back();
}
