"""What a finished merge removes: checkpoints of other jobs, and temps of dead processes.

Checkpoints of other inputs or parameters are never reused (their keys differ); only the
current job's conversions, windows and staging stay, so a re-run finds them complete and
the next window-parameter change reuses the conversions.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import Iterable

from alm_lhotse.storage import remove_tree, temp_owner
from luigi_tasks.layout import MARKER, final_files


def pid_alive(pid: int) -> bool:
    """Whether a process still runs; a zombie (killed, not yet reaped, which happens when
    an init process does not reap orphans) counts as dead."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rsplit(")", 1)[-1].split()[0] != "Z"


def dead_temp(path: Path) -> bool:
    """A temp name of a process of this host that no longer runs."""
    owner = temp_owner(path)
    return owner is not None and owner[0] == socket.gethostname() and not pid_alive(owner[1])


def remove_dead_temps(directory: Path) -> None:
    if directory.is_dir():
        for entry in directory.glob(".*"):
            if dead_temp(entry):
                remove_tree(entry)


def keep_only(directory: Path, keep: Iterable[str]) -> None:
    """Remove every checkpoint in ``directory`` but ``keep``, and temps of dead processes."""
    if not directory.is_dir():
        return
    kept = set(keep)
    for entry in directory.iterdir():
        if entry.name.startswith("."):
            if dead_temp(entry):
                remove_tree(entry)
        elif entry.name not in kept:
            remove_tree(entry)


def remove_stale_final_temps(final_dir: Path) -> None:
    """Temp files of final outputs left by a killed merge (only merges hold the lock)."""
    for directory in {final_dir, *(f.parent for f in final_files(final_dir))}:
        if directory.is_dir():
            for tmp in directory.glob(".*.tmp-*"):
                tmp.unlink(missing_ok=True)


def remove_final_outputs(final_dir: Path) -> None:
    for path in [*final_files(final_dir), final_dir / MARKER]:
        path.unlink(missing_ok=True)
    remove_stale_final_temps(final_dir)

