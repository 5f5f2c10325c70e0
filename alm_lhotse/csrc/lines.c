/*
 * Counting lines of raw input (partition planning and progress totals): memchr skips
 * from newline to newline over a mapped file, 10 ms for 60 MB of manifest where
 * reading it and bytes.count took 30-40 ms.
 */
#include "kernel.h"

const char count_newlines_doc[] =
    "count_newlines(buffer)\n"
    "--\n\n"
    "The number of b'\\n' bytes in a bytes-like object (an mmap's memoryview: no copy).";

PyObject *count_newlines(PyObject *self, PyObject *arg) {
    Py_buffer view;
    if (PyObject_GetBuffer(arg, &view, PyBUF_SIMPLE) < 0) return NULL;
    const char *at = view.buf, *end = at + view.len;
    Py_ssize_t count = 0;
    while (at < end && (at = memchr(at, '\n', end - at)) != NULL) {
        count++;
        at++;
    }
    PyBuffer_Release(&view);
    return PyLong_FromSsize_t(count);
}
