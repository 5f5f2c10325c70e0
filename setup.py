"""Only the compiled loops live here; all other metadata is in setup.cfg.

The extension is optional: where it cannot be compiled, the package installs and runs
the same loops in pure Python, with identical results.
"""

from setuptools import Extension, setup

SOURCES = ["module", "builder", "overlap", "render", "segments", "supjson", "lines", "nemo"]

setup(
    ext_modules=[
        Extension(
            "alm_lhotse._kernel",
            [f"alm_lhotse/csrc/{name}.c" for name in SOURCES],
            depends=["alm_lhotse/csrc/kernel.h"],
            optional=True,
        )
    ]
)
