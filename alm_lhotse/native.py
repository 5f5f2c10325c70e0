"""The optional compiled loops (``alm_lhotse._kernel``) and when they may be used.

The C extension is built by ``pip install``; where it could not be compiled, or with
``ALM_LHOTSE_PURE_PYTHON=1`` in the environment (read once at import), every caller
runs its pure-Python code, which gives identical results.
"""

from __future__ import annotations

import os
from types import ModuleType
from typing import Any, Optional

try:
    from alm_lhotse import _kernel
except ImportError:  # pragma: no cover - the extension is optional
    _kernel = None

_PURE_PYTHON = os.environ.get("ALM_LHOTSE_PURE_PYTHON", "") not in ("", "0")
_EXACT_INT_LIMIT = 2**53


def kernel() -> Optional[ModuleType]:
    """The compiled module, or None where it is not built or is turned off."""
    return None if _PURE_PYTHON else _kernel


def kernel_enabled() -> bool:
    """Whether the compiled loops are used."""
    return kernel() is not None


def as_float(value: Any) -> Optional[float]:
    """``value`` as the float that Python's mixed int/float arithmetic and comparisons
    would use, or None where a conversion could round (ints of 2**53 and beyond)."""
    if type(value) is float:
        return value
    if type(value) is int and abs(value) < _EXACT_INT_LIMIT:
        return float(value)
    return None


def small_int(value: Any) -> bool:
    """Whether ``value`` is an int the compiled code holds exactly."""
    return type(value) is int and abs(value) < _EXACT_INT_LIMIT
