"""Package defaults for luigi's configuration, applied at import time.

Each default is only set when neither a ``luigi.cfg`` nor ``LUIGI_CONFIG_PATH`` file set
it, so users keep the last word. Luigi exits 0 on a failed task unless ``[retcode]`` is
configured; a data pipeline must not look successful when it failed.
"""

from __future__ import annotations

import luigi.configuration

DEFAULTS: dict[str, dict[str, str]] = {
    "core": {"autoload_range": "false"},
    "worker": {"check_complete_on_run": "true"},
    # not_run and already_running stay 0: with several workers on one luigid, a worker
    # that finds every task taken by the others has done its job.
    "retcode": {
        "unhandled_exception": "4",
        "missing_data": "20",
        "task_failed": "30",
        "scheduling_error": "35",
    },
}


def apply_defaults() -> None:
    """Fill in every default the loaded configuration leaves unset."""
    cfg = luigi.configuration.get_config()
    for section, options in DEFAULTS.items():
        for option, value in options.items():
            if not cfg.has_option(section, option):
                if not cfg.has_section(section):
                    cfg.add_section(section)
                cfg.set(section, option, value)
