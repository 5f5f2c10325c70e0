/*
 * Lhotse supervisions as JSON text, without building their dicts.
 *
 * Building a dict per supervision and serialising it cost about twice what serialising
 * its values does. Here the values of all supervisions of an entry (times, texts,
 * speakers, words, passthrough fields) go into one list, orjson serialises that list
 * once, and the text of each value is cut out of orjson's output and placed between
 * the keys of alm_lhotse.outputs.lhotse_manifests.supervision_dict (the specification),
 * in that dict's key order. Every
 * number and string is therefore formatted by orjson itself, and the result equals
 * orjson.dumps of the dicts byte for byte.
 *
 * A segment's supervision in the recording and in the windows that hold it differ
 * only in their start and word starts (and in the recording frame's word_ends), so a
 * segment's other values are collected once per call ("records") and each further
 * occurrence adds only its shifted times.
 */
#include "kernel.h"

#include <string.h>

/* A record: where one segment's supervision values start in the list (start, duration,
 * text, then what the fields below say it holds, in write_sup's order). */
typedef struct {
    Py_ssize_t index; /* segment index */
    Py_ssize_t leaf;  /* its first value in the list */
    Py_ssize_t words; /* alignment items */
    Py_ssize_t fields; /* custom fields copied from the segment */
    char speaker;     /* 1: "speaker" of the supervision, 2: of custom, 0: none */
    char text_null;   /* custom "text": null */
    char word_ends;   /* custom "word_ends" (start + duration misses a word's end) */
    char words_value; /* custom "words": the segment's empty words value */
    PyObject *word_list; /* the segment's words (borrowed), for further occurrences */
} Sup;

/* One supervision written: a record, with the record's own times or shifted ones. */
typedef struct {
    Py_ssize_t record;
    Py_ssize_t start;       /* its start value; -1: the record's own */
    Py_ssize_t word_starts; /* its first word start value (one per word); -1: the record's own */
} Occurrence;

int reserve(Buffer *b, Py_ssize_t capacity) {
    if (capacity < 1) capacity = 1; /* a new bytes of size 0 would be the shared empty one */
    if (!b->bytes) {
        b->bytes = PyBytes_FromStringAndSize(NULL, capacity);
    } else if (_PyBytes_Resize(&b->bytes, capacity) < 0) {
        return -1;
    }
    if (!b->bytes) return -1;
    b->capacity = capacity;
    return 0;
}

int put(Buffer *b, const char *text, Py_ssize_t n) {
    if (b->size + n > b->capacity && reserve(b, 2 * (b->size + n)) < 0) return -1;
    memcpy(PyBytes_AS_STRING(b->bytes) + b->size, text, n);
    b->size += n;
    return 0;
}

int put_index(Buffer *b, Py_ssize_t value, int width) {
    char digits[24];
    int n = 0;
    do {
        digits[sizeof(digits) - 1 - n++] = (char)('0' + value % 10);
        value /= 10;
    } while (value);
    while (n < width) digits[sizeof(digits) - 1 - n++] = '0';
    return put(b, digits + sizeof(digits) - n, n);
}

int put_value(Buffer *b, const Values *v, Py_ssize_t k) {
    return put(b, v->text + v->at[k], v->len[k]);
}

/* Where the value at text[k] ends: strings are skipped with memchr (most of the bytes
 * are texts), scalars end at the next separator, containers are scanned. */
static Py_ssize_t value_end(const char *text, Py_ssize_t size, Py_ssize_t k) {
    char c = text[k];
    if (c == '"') return json_string_end(text, size, k);
    if (c == '{' || c == '[') return json_element_end(text, size, k);
    while (k < size && text[k] != ',') k++;
    return k;
}

int split_values(Values *v, const char *text, Py_ssize_t size, Py_ssize_t count) {
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

/* The field names of the Python rule, given by the caller: a segment's fields that a
 * supervision holds itself (not in custom), and those it adds to custom. */
typedef struct {
    PyObject *core, *added;
} Fields;

/* Append the values of segment `seg` (its `start` and `end` given) to `values` and
 * describe it in `sup`; -1 on error. */
static int collect(PyObject *values, Sup *sup, PyObject *seg, PyObject *start, PyObject *end, Py_ssize_t index,
                   PyObject *shift, int unshifted, const Fields *fields) {
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
        sup->word_list = words;
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
        int core = PySet_Contains(fields->core, key);
        if (core < 0) return -1;
        if (core) continue;
        /* the dict would keep such a key's first place, this writer would not */
        int added = PySet_Contains(fields->added, key);
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

/* Append the shifted times of a further occurrence of `sup`'s segment `seg`. */
static int collect_times(PyObject *values, Occurrence *occ, const Sup *sup, PyObject *start, PyObject *shift) {
    occ->start = PyList_GET_SIZE(values);
    occ->word_starts = occ->start + 1;
    if (append_new(values, PyNumber_Subtract(start, shift)) < 0) return -1;
    for (Py_ssize_t w = 0; w < sup->words; w++) {
        PyObject *ws = require_item(PyList_GET_ITEM(sup->word_list, w), KEY_START);
        if (!ws || append_new(values, PyNumber_Subtract(ws, shift)) < 0) return -1;
    }
    return 0;
}

/* The JSON object of one supervision, from its values; -1 on error. */
static int write_sup(Buffer *b, const Sup *sup, const Occurrence *occ, const Values *v) {
    Py_ssize_t k = sup->leaf, own = occ->start < 0;
    Py_ssize_t start = own ? k : occ->start;
    k++;
    /* value 0 is the recording id; the supervision id is it with "-%05d" inside its quotes */
    if (PUT_LITERAL(b, "{\"id\":") < 0 || put(b, v->text + v->at[0], v->len[0] - 1) < 0 || PUT_LITERAL(b, "-") < 0 ||
        put_index(b, sup->index, 5) < 0 || PUT_LITERAL(b, "\"") < 0 || PUT_LITERAL(b, ",\"recording_id\":") < 0 || put_value(b, v, 0) < 0 ||
        PUT_LITERAL(b, ",\"start\":") < 0 || put_value(b, v, start) < 0 || PUT_LITERAL(b, ",\"duration\":") < 0 ||
        put_value(b, v, k++) < 0 || PUT_LITERAL(b, ",\"channel\":0,\"text\":") < 0 || put_value(b, v, k++) < 0)
        return -1;
    if (sup->speaker == 1 && (PUT_LITERAL(b, ",\"speaker\":") < 0 || put_value(b, v, k++) < 0)) return -1;
    if (sup->words) {
        if (PUT_LITERAL(b, ",\"alignment\":{\"word\":[") < 0) return -1;
        for (Py_ssize_t w = 0; w < sup->words; w++, k += 3) {
            Py_ssize_t word_start = own ? k + 1 : occ->word_starts + w;
            if ((w && PUT_LITERAL(b, ",") < 0) || PUT_LITERAL(b, "[") < 0 || put_value(b, v, k) < 0 ||
                PUT_LITERAL(b, ",") < 0 || put_value(b, v, word_start) < 0 || PUT_LITERAL(b, ",") < 0 ||
                put_value(b, v, k + 2) < 0 || PUT_LITERAL(b, ",null]") < 0)
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
        /* only the recording frame has them; a shifted occurrence skips their values */
        if (own) {
            if (PUT_LITERAL(b, ",\"word_ends\":[") < 0) return -1;
            for (Py_ssize_t w = 0; w < sup->words; w++) {
                if ((w && PUT_LITERAL(b, ",") < 0) || put_value(b, v, k + w) < 0) return -1;
            }
            if (PUT_LITERAL(b, "]") < 0) return -1;
        }
        k += sup->words;
    }
    if (sup->words_value && (PUT_LITERAL(b, ",\"words\":") < 0 || put_value(b, v, k++) < 0)) return -1;
    return PUT_LITERAL(b, "}}");
}

/* A growable array of fixed-size items. */
typedef struct {
    char *items;
    Py_ssize_t count, capacity, size;
} Array;

static void *array_add(Array *a) {
    if (a->count == a->capacity) {
        Py_ssize_t capacity = a->capacity ? 2 * a->capacity : 64;
        char *items = PyMem_Realloc(a->items, capacity * a->size);
        if (!items) {
            PyErr_NoMemory();
            return NULL;
        }
        a->items = items;
        a->capacity = capacity;
    }
    void *item = a->items + a->count * a->size;
    a->count++;
    memset(item, 0, a->size);
    return item;
}

/* One request: frame[:at] + sep.join(its supervisions) + frame[at:]. */
typedef struct {
    PyObject *frame, *sep;
    Py_ssize_t at, first_occurrence, occurrences;
} Request;

/* Collect the values of one request's supervisions; -1 on error. */
static int collect_request(PyObject *values, Array *records, Array *occurrences, Py_ssize_t *record_of,
                           PyObject *segments, PyObject *request, Request *req, const Fields *fields) {
    if (!PyTuple_Check(request) || PyTuple_GET_SIZE(request) != 7) {
        PyErr_SetString(PyExc_TypeError, "a request is (shift, first, stop, part, frame, at, sep)");
        return -1;
    }
    PyObject *shift = PyTuple_GET_ITEM(request, 0), *part = PyTuple_GET_ITEM(request, 3);
    req->frame = PyTuple_GET_ITEM(request, 4);
    req->sep = PyTuple_GET_ITEM(request, 6);
    Py_ssize_t first = PyLong_AsSsize_t(PyTuple_GET_ITEM(request, 1));
    Py_ssize_t stop = PyLong_AsSsize_t(PyTuple_GET_ITEM(request, 2));
    req->at = PyLong_AsSsize_t(PyTuple_GET_ITEM(request, 5));
    if (PyErr_Occurred()) return -1;
    if (!PyBytes_Check(req->frame) || !PyBytes_Check(req->sep) || first < 0 || stop > PyList_GET_SIZE(segments) ||
        req->at < 0 || req->at > PyBytes_GET_SIZE(req->frame)) {
        PyErr_SetString(PyExc_ValueError, "a request's frame, separator or segment range is out of place");
        return -1;
    }
    int unshifted = PyObject_RichCompareBool(shift, ZERO, Py_EQ);
    if (unshifted < 0) return -1;
    req->first_occurrence = occurrences->count;
    for (Py_ssize_t k = first; k <= stop; k++) {
        PyObject *seg = k < stop ? PyList_GET_ITEM(segments, k) : part;
        if (seg == Py_None) break;
        PyObject *start = require_item(seg, KEY_START);
        PyObject *end = start ? require_item(seg, KEY_END) : NULL;
        if (!end) return -1;
        int positive = PyObject_RichCompareBool(end, start, Py_GT);
        if (positive < 0) return -1;
        if (!positive) continue;
        Occurrence *occ = array_add(occurrences);
        if (!occ) return -1;
        Py_ssize_t known = k < stop ? record_of[k] : -1;
        if (known >= 0 && !unshifted) {
            occ->record = known;
            if (collect_times(values, occ, (Sup *)records->items + known, start, shift) < 0) return -1;
            continue;
        }
        Sup *sup = array_add(records);
        if (!sup) return -1;
        occ->record = records->count - 1;
        occ->start = occ->word_starts = -1;
        if (k < stop && known < 0) record_of[k] = occ->record;
        if (collect(values, sup, seg, start, end, k, shift, unshifted, fields) < 0) return -1;
    }
    req->occurrences = occurrences->count - req->first_occurrence;
    return 0;
}

const char supervisions_json_doc[] =
    "supervisions_json(segments, rec_id, requests, dumps, core_fields, added_fields)\n"
    "--\n\n"
    "For each request (shift, first, stop, part, frame, at, sep): frame[:at] +\n"
    "sep.join(dumps(supervision_dict(seg, rec_id, k, shift)) for the segments k in\n"
    "first..stop-1 with a positive duration, then `part` as segment `stop` when it is not\n"
    "None and has one) + frame[at:], where `dumps` is orjson.dumps and supervision_dict is\n"
    "alm_lhotse.outputs.lhotse_manifests.supervision_dict, whose field sets\n"
    "(SEGMENT_CORE_FIELDS, ADDED_CUSTOM_FIELDS) are the last two arguments.\n"
    "None where the dicts' serialisation might differ or fail: the caller then serialises\n"
    "the dicts, which raises the precise error.";

PyObject *supervisions_json(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 6 || !PyList_Check(args[0]) || !PyUnicode_Check(args[1]) || !PyList_Check(args[2]) ||
        !PyAnySet_Check(args[4]) || !PyAnySet_Check(args[5]))
        return usage_error(
            "supervisions_json(segments: list, rec_id: str, requests: list, dumps, core_fields: set, added_fields: set)");
    PyObject *segments = args[0], *requests = args[2], *dumps = args[3];
    const Fields fields = {args[4], args[5]};
    Py_ssize_t n_segments = PyList_GET_SIZE(segments), n_requests = PyList_GET_SIZE(requests);
    Array records = {NULL, 0, 0, sizeof(Sup)}, occurrences = {NULL, 0, 0, sizeof(Occurrence)};
    Py_ssize_t *record_of = PyMem_Malloc((n_segments ? n_segments : 1) * sizeof(Py_ssize_t));
    Request *reqs = PyMem_Calloc(n_requests ? n_requests : 1, sizeof(Request));
    PyObject *values = PyList_New(0), *text = NULL, *out = NULL;
    Values v = {NULL, NULL, NULL};
    if (!record_of || !reqs) {
        PyErr_NoMemory();
        goto done;
    }
    if (!values || PyList_Append(values, args[1]) < 0) goto done;
    for (Py_ssize_t k = 0; k < n_segments; k++) record_of[k] = -1;
    for (Py_ssize_t r = 0; r < n_requests; r++) {
        PyObject *request = PyList_GET_ITEM(requests, r);
        if (collect_request(values, &records, &occurrences, record_of, segments, request, &reqs[r], &fields) < 0)
            goto done;
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
    /* a supervision's size is about its record's share of the values plus its keys */
    Py_ssize_t per_sup = PyBytes_GET_SIZE(text) / (records.count ? records.count : 1) + 2 * v.len[0] + 256;
    out = PyList_New(n_requests);
    if (!out) goto done;
    for (Py_ssize_t r = 0; r < n_requests; r++) {
        Request *req = &reqs[r];
        Buffer b = {NULL, 0, 0};
        const char *frame = PyBytes_AS_STRING(req->frame);
        if (reserve(&b, PyBytes_GET_SIZE(req->frame) + req->occurrences * (per_sup + PyBytes_GET_SIZE(req->sep))) < 0 ||
            put(&b, frame, req->at) < 0)
            goto fail_request;
        for (Py_ssize_t k = 0; k < req->occurrences; k++) {
            const Occurrence *occ = (Occurrence *)occurrences.items + req->first_occurrence + k;
            if (k && put(&b, PyBytes_AS_STRING(req->sep), PyBytes_GET_SIZE(req->sep)) < 0) goto fail_request;
            if (write_sup(&b, (Sup *)records.items + occ->record, occ, &v) < 0) goto fail_request;
        }
        if (put(&b, frame + req->at, PyBytes_GET_SIZE(req->frame) - req->at) < 0 || _PyBytes_Resize(&b.bytes, b.size) < 0)
            goto fail_request;
        PyList_SET_ITEM(out, r, b.bytes);
        continue;
    fail_request:
        Py_XDECREF(b.bytes);
        Py_CLEAR(out);
        goto done;
    }
done:
    PyMem_Free(record_of);
    PyMem_Free(reqs);
    PyMem_Free(records.items);
    PyMem_Free(occurrences.items);
    PyMem_Free(v.at);
    PyMem_Free(v.len);
    Py_XDECREF(values);
    Py_XDECREF(text);
    return out ? out : hand_back();
}
