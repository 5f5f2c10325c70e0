"""Only the compiled builder kernel lives here; all other metadata is in setup.cfg.

The extension is optional: where it cannot be compiled, the package installs and runs
its pure-Python builder, which gives identical results.
"""

from setuptools import Extension, setup

setup(ext_modules=[Extension("alm_lhotse._kernel", ["alm_lhotse/_kernel.c"], optional=True)])
