"""Run the luigi pipeline and send it a signal just before its N-th storage step.

    python tests/kill_at_step.py STEP SIGNAL LOG -- [luigi arguments]

A storage step is a rename, replace, hard link or unlink made by ``alm_lhotse.storage``
(every way a checkpoint or an output reaches its place). With STEP 0 nothing is sent
and LOG receives one line per step (operation and target), so a test can pick moments
that are the same in every trial: a kill test that does not depend on timing.
"""

from __future__ import annotations

import os
import signal
import sys
from typing import Any

from luigi.cmdline import luigi_run

from alm_lhotse import storage

COUNTED = ("rename", "replace", "link", "unlink")


class _StepCounter:
    """``os`` as ``alm_lhotse.storage`` sees it, counting the steps that place files."""

    def __init__(self, step: int, sig: int, log: str) -> None:
        self._step = step
        self._sig = sig
        self._log = open(log, "a") if step == 0 else None
        self._done = 0

    def __getattr__(self, name: str) -> Any:
        real = getattr(os, name)
        if name not in COUNTED:
            return real

        def counted(*args: Any, **kwargs: Any) -> Any:
            self._done += 1
            if self._log is not None:
                self._log.write(f"{name} {args[-1]}\n")
                self._log.flush()
            elif self._done == self._step:
                os.kill(os.getpid(), self._sig)
            return real(*args, **kwargs)

        return counted


def main() -> None:
    step, sig, log = int(sys.argv[1]), signal.Signals[sys.argv[2]], sys.argv[3]
    assert sys.argv[4] == "--"
    storage.os = _StepCounter(step, sig, log)  # type: ignore[assignment]
    luigi_run(sys.argv[5:])


if __name__ == "__main__":
    main()
