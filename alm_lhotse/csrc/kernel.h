/*
 * Shared by the compiled loops of alm_lhotse (the extension module alm_lhotse._kernel).
 *
 * Why compiled: per window and per segment, the pure-Python code spends most of its
 * time in the interpreter. These loops run the same operations in the same order (float
 * arithmetic on the same doubles, dict and list operations through the C API), so
 * every result and every byte of output equals the pure path's. Where a loop meets
 * something it does not take (an int time, an odd type, anything the pure path raises
 * on), it returns None and the caller runs the pure-Python code.
 */
#ifndef ALM_KERNEL_H
#define ALM_KERNEL_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <string.h>

/* Interned keys and constants, made once at import (module.c). */
extern PyObject *KEY_START, *KEY_END, *KEY_SPEAKER, *KEY_METRICS, *KEY_BANDWIDTH, *KEY_TEXT, *KEY_WORDS, *KEY_WORD;
extern PyObject *EMPTY_STR, *ZERO;
extern PyObject *ATTR_FIRST, *ATTR_STOP, *ATTR_PART, *ATTR_SPEAKER_DURATIONS; /* Window attributes */
extern PyObject *FLOAT_ZERO; /* 0.0, the speaker durations' padding */
extern PyObject *BUILTIN_SUM; /* Python's sum(), whose rounding the totals must share */

/* The rules' constants, handed over by Python at import (configure(), called from
 * alm_lhotse.native): each is defined once, in the Python rule that uses it. */
extern Py_ssize_t SPEAKER_SLOTS, MIN_SEGMENTS_PER_WINDOW; /* alm_lhotse.core.windows */
extern PyObject *NO_SPEAKER, *WINDOW_TYPE, *LOST_WINDOW_TYPE, *TRUNCATE_SEGMENT;
extern long long EXACT_INT_LIMIT;                  /* alm_lhotse.native */
extern PyObject *MAX_TIME;                         /* alm_lhotse.reading.validation */
extern double MATCH_SLACK, MATCH_RELATIVE_SLACK;   /* alm_lhotse.core.overlap */

/* RuntimeError naming `what` (a constant configure() was not given); returns NULL. */
PyObject *not_configured(const char *what);

PyObject *hand_back(void);

/* TypeError(usage) for a call with the wrong arguments; returns NULL. */
PyObject *usage_error(const char *usage);

/* list.append(obj) of a new reference (NULL: an error already set), which is released. */
int append_new(PyObject *list, PyObject *obj);

/* seg["key"] of a dict, borrowed; NULL with KeyError (or TypeError for a non-dict) set. */
PyObject *require_item(PyObject *seg, PyObject *key);

/* Where the string whose opening quote is at text[k] ends (just past its closing
 * quote), or size: memchr jumps from quote to quote, and a quote preceded by an odd
 * number of backslashes is escaped. */
static inline Py_ssize_t json_string_end(const char *text, Py_ssize_t size, Py_ssize_t k) {
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

/* Where the element at inner[k] ends in the text inside a compact JSON array's brackets
 * (orjson output): the next comma outside strings and nested values, or size. */
static inline Py_ssize_t json_element_end(const char *inner, Py_ssize_t size, Py_ssize_t k) {
    Py_ssize_t depth = 0;
    while (k < size) {
        char c = inner[k];
        if (c == '"') {
            k = json_string_end(inner, size, k);
            continue;
        }
        if (c == '{' || c == '[') depth++;
        else if (c == '}' || c == ']') depth--;
        else if (c == ',' && depth == 0) return k;
        k++;
    }
    return size;
}

/* Output written straight into a bytes object that is sized from an estimate of the
 * result, grown when needed and cut to its length at the end (supjson.c). */
typedef struct {
    PyObject *bytes;
    Py_ssize_t size, capacity;
} Buffer;
int reserve(Buffer *b, Py_ssize_t capacity);
int put(Buffer *b, const char *text, Py_ssize_t n);
/* A non-negative integer, zero-padded to `width` digits ("%0*zd"). */
int put_index(Buffer *b, Py_ssize_t value, int width);
#define PUT_LITERAL(b, s) put((b), (s), (Py_ssize_t)sizeof(s) - 1)

/* Values' texts in orjson's output of a list: value k is text[at[k] .. at[k] + len[k]). */
typedef struct {
    const char *text;
    Py_ssize_t *at, *len;
} Values;
int put_value(Buffer *b, const Values *v, Py_ssize_t k);
/* Cut the serialised list into its values; -1 (ValueError) when it has not `count`. */
int split_values(Values *v, const char *text, Py_ssize_t size, Py_ssize_t count);

#define ALM_FUNCTION(name) \
    PyObject *name(PyObject *self, PyObject *const *args, Py_ssize_t nargs); \
    extern const char name##_doc[]
#define ALM_FUNCTION_O(name) \
    PyObject *name(PyObject *self, PyObject *arg); \
    extern const char name##_doc[]

PyObject *configure(PyObject *self, PyObject *args, PyObject *kwargs); /* module.c */
extern const char configure_doc[];
ALM_FUNCTION(build_entry);            /* builder.c */
ALM_FUNCTION(overlap_filter);         /* overlap.c */
ALM_FUNCTION_O(element_offsets);      /* render.c */
ALM_FUNCTION(render_windows);         /* render.c */
ALM_FUNCTION(strip_all);              /* render.c */
ALM_FUNCTION(first_doubtful_segment); /* segments.c */
ALM_FUNCTION_O(segment_order);        /* segments.c */
ALM_FUNCTION(supervisions_json);      /* supjson.c */
ALM_FUNCTION(nemo_lines);             /* nemo.c */
ALM_FUNCTION_O(count_newlines);       /* lines.c */
ALM_FUNCTION_O(json_depth);           /* lines.c */

#endif
