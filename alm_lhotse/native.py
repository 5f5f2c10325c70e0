"""The one place that picks compiled or pure-Python rules.

The compiled loops (``alm_lhotse._kernel``, built by ``pip install``) are optional: where
the extension could not be compiled, or with ``ALM_LHOTSE_PURE_PYTHON=1`` in the
environment (read once at import), every rule runs its pure-Python specification,
which gives identical results. Rule modules ask ``kernel()`` at call time and hand the
constants their compiled part needs to ``configure()`` at import, so each constant is
defined once, in Python.
"""

from __future__ import annotations

import os
import warnings
from types import ModuleType
from typing import Any, Optional

# What this code calls in the compiled module (its method table in csrc/module.c).
KERNEL_FUNCTIONS = (
    "configure", "build_entry", "overlap_filter", "element_offsets", "first_doubtful_segment", "segment_order",
    "count_newlines", "json_depth", "supervisions_json", "nemo_lines", "render_windows", "strip_all",
)

try:
    from alm_lhotse import _kernel
except ImportError:  # pragma: no cover - the extension is optional
    _kernel = None

if _kernel is not None and not all(hasattr(_kernel, name) for name in KERNEL_FUNCTIONS):
    # An extension built from older sources (code updated, not reinstalled): the pure
    # rules give the same results, only slower, where a missing function would crash.
    warnings.warn(
        "alm_lhotse's compiled kernel is older than its Python code; running pure Python "
        "(reinstall with `pip install -e .` to rebuild it)",
        RuntimeWarning,
        stacklevel=1,
    )
    _kernel = None

_PURE_PYTHON = os.environ.get("ALM_LHOTSE_PURE_PYTHON", "") not in ("", "0")
# Ints below this convert to a double exactly, so C may compare them as doubles.
EXACT_INT_LIMIT = 2**53


def kernel() -> Optional[ModuleType]:
    """The compiled module, or None where it is not built or is turned off."""
    return None if _PURE_PYTHON else _kernel


def kernel_enabled() -> bool:
    """Whether the compiled loops are used."""
    return kernel() is not None


def configure(**constants: Any) -> None:
    """Give the compiled module the constants of a rule (it defines none of its own);
    configured whenever it is built, so turning it on later finds it ready."""
    if _kernel is not None:
        _kernel.configure(**constants)


def as_float(value: Any) -> Optional[float]:
    """``value`` as the float that Python's mixed int/float arithmetic and comparisons
    would use, or None where a conversion could round (ints of 2**53 and beyond)."""
    if type(value) is float:
        return value
    if type(value) is int and abs(value) < EXACT_INT_LIMIT:
        return float(value)
    return None


configure(exact_int_limit=EXACT_INT_LIMIT)
