"""An fcntl lock file in the output directory, so two runs never write final outputs at once."""

from __future__ import annotations

import fcntl
import logging
import os
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

logger = logging.getLogger("luigi-interface")


@contextmanager
def dir_lock(path: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``path``; wait (and say so) while another run holds it.

    The kernel drops the lock when its holder dies, so a killed run never blocks the next.
    """
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            logger.warning("waiting for another run writing into %s (lock %s)", path.parent, path)
            fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)
