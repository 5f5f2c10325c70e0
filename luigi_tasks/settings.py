"""Package defaults for luigi's configuration, applied at import time.

Each default is only set when neither a ``luigi.cfg`` nor ``LUIGI_CONFIG_PATH`` file set
it, so users keep the last word. Luigi exits 0 on a failed task unless ``[retcode]`` is
configured; a data pipeline must not look successful when it failed. ``check_command_line``
catches first-run mistakes luigi is silent or slow about (a missing config file, no
scheduler) when the package is loaded by the ``luigi`` command.
"""

from __future__ import annotations

import os
import socket
import sys
from typing import NoReturn, Optional

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


QUIET_LOG_LEVEL = "WARNING"
LOOPBACK_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})
SCHEDULER_TIMEOUT_S = 1.0


def _run_as_luigi_command() -> bool:
    """True in the ``luigi`` command (console script or ``python -m luigi``), never when
    Python code or tests merely import the package."""
    argv0 = os.path.normpath(sys.argv[0]) if sys.argv and sys.argv[0] else ""
    return os.path.basename(argv0) == "luigi" or argv0.endswith(os.path.join("luigi", "__main__.py"))


def _flag(args: list[str], *names: str) -> Optional[str]:
    """The value of ``--name VALUE`` or ``--name=VALUE`` on the command line."""
    for i, arg in enumerate(args):
        for name in names:
            if arg == name and i + 1 < len(args):
                return args[i + 1]
            if arg.startswith(name + "="):
                return arg.split("=", 1)[1]
    return None


def _core(*options: str) -> Optional[str]:
    cfg = luigi.configuration.get_config()
    for option in options:
        value = cfg.get("core", option, None)
        if value not in (None, ""):
            return str(value)
    return None


def _fail(message: str) -> NoReturn:
    """One line and the scheduling-error exit code, before luigi starts any work."""
    print(f"ERROR: {message}", file=sys.stderr, flush=True)
    code = luigi.configuration.get_config().get("retcode", "scheduling_error", "35")
    raise SystemExit(int(code))


def _check_config_path() -> None:
    """Luigi only warns (often invisibly) about a missing config file and runs without it."""
    path = os.environ.get("LUIGI_CONFIG_PATH", "")
    if path and not os.path.isfile(path):
        _fail(f"LUIGI_CONFIG_PATH names {path}, which is not an existing file")


def _check_scheduler(args: list[str]) -> None:
    """Without a local scheduler luigi retries a missing luigid for about a minute; a
    scheduler on this machine answers within a second, so say it at once. A URL or a
    remote host may legitimately be slow: luigi's own behaviour stays for those."""
    if {"--local-scheduler", "--core-local-scheduler", "--help", "--help-all"} & set(args):
        return
    if (_core("local_scheduler", "local-scheduler") or "").lower() == "true":
        return
    if _flag(args, "--scheduler-url", "--core-scheduler-url") or _core(
        "scheduler_url", "scheduler-url", "default-scheduler-url", "default_scheduler_url"
    ):
        return
    host = _flag(args, "--scheduler-host", "--core-scheduler-host") or _core(
        "scheduler_host", "scheduler-host", "default-scheduler-host", "default_scheduler_host"
    ) or "localhost"
    port = _flag(args, "--scheduler-port", "--core-scheduler-port") or _core(
        "scheduler_port", "scheduler-port", "default-scheduler-port", "default_scheduler_port"
    ) or "8082"
    if host not in LOOPBACK_HOSTS or not port.isdigit():
        return
    try:
        socket.create_connection((host, int(port)), timeout=SCHEDULER_TIMEOUT_S).close()
    except OSError:
        _fail(f"no luigi scheduler at {host}:{port}: add --local-scheduler, or start luigid (see docs/pipeline.md)")


def _quiet_local_runs(args: list[str]) -> None:
    """Luigi logs each scheduling step (about 40 lines for one small job); in a local run
    the progress bar, the errors and the end-of-run block say what matters. A log level
    given on the command line or in ``[core]`` (``--log-level INFO``) brings them back."""
    local = "--local-scheduler" in args or (_core("local_scheduler", "local-scheduler") or "").lower() == "true"
    if not local or _flag(args, "--log-level", "--core-log-level") or _core("log_level", "log-level", "logging_conf_file"):
        return
    luigi.configuration.get_config().set("core", "log_level", QUIET_LOG_LEVEL)


def check_command_line() -> None:
    """First-run mistakes said in one line before any work, only in the ``luigi`` command."""
    if not _run_as_luigi_command():
        return
    _check_config_path()
    _check_scheduler(sys.argv[1:])
    _quiet_local_runs(sys.argv[1:])
