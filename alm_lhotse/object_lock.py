"""A lock object: what a directory lock is for a local merge, for an object-storage one.

The lock is created with a conditional put (``If-None-Match: *``), so only one creator
succeeds. It names its holder: a lock left by a killed process of this host is stale at
once, any lock older than its lease is stale for everyone. A stale lock is taken over
by a put conditional on its ETag (``If-Match``), so when several runs find it stale at
the same moment, exactly one proceeds; it is released by a delete conditional on the
holder's own ETag, so a run that outlived its lease never removes its successor's
lock. Stores without conditional writes on existing objects (GCS and Azure through
fsspec) remove a stale lock and create it anew: two runs breaking it at the same
moment could both proceed there.
"""

from __future__ import annotations

import contextlib
import os
import socket
import time
from typing import Callable, Iterator, Optional

import orjson

from alm_lhotse.objects import create_once, read_bytes, remove, s3_conditional, s3_object

LOCK_LEASE_S = 3600.0
LOCK_POLL_S = 0.5


def _holder() -> bytes:
    return orjson.dumps({"host": socket.gethostname(), "pid": os.getpid(), "time": time.time()})


def _stale(lock: bytes, alive: Callable[[int], bool]) -> bool:
    """A lock of a dead process of this host, or one held past its lease."""
    try:
        holder = orjson.loads(lock)
    except orjson.JSONDecodeError:
        return True
    if holder.get("host") == socket.gethostname() and not alive(int(holder.get("pid", 0))):
        return True
    return time.time() - float(holder.get("time", 0)) > LOCK_LEASE_S


@contextlib.contextmanager
def object_lock(
    lock: str, alive: Callable[[int], bool], on_wait: Optional[Callable[[str], None]] = None
) -> Iterator[None]:
    """Hold the lock object ``lock``, waiting while someone else holds it; ``alive``
    tells whether a pid of this host still runs."""
    waited = False
    mine = _holder()
    while not create_once(lock, mine):
        try:
            held, tag = read_tagged(lock)
        except FileNotFoundError:
            continue
        if _stale(held, alive):
            if replace_unchanged(lock, tag, mine):
                break
            continue
        if not waited and on_wait is not None:
            on_wait(lock)
        waited = True
        time.sleep(LOCK_POLL_S)
    try:
        yield
    finally:
        _release(lock, mine)


def read_tagged(loc: str) -> tuple[bytes, Optional[str]]:
    """An object's bytes and its ETag (None where writes conditional on it are not
    used). The tag is read first: a put conditional on it succeeds only if the object
    has not changed since, and then the bytes read are that tag's."""
    if s3_object(loc) is None:
        return read_bytes(loc), None
    head = s3_conditional(loc, "head_object")
    if head is None:
        raise FileNotFoundError(loc)
    return read_bytes(loc), head["ETag"]


def replace_unchanged(loc: str, tag: Optional[str], data: bytes) -> bool:
    """Replace the object if it still has the ETag ``tag``; whether this call did."""
    if tag is None:
        remove(loc)
        return create_once(loc, data)
    return s3_conditional(loc, "put_object", Body=data, IfMatch=tag) is not None


def _release(lock: str, mine: bytes) -> None:
    """Remove the lock if it is still this holder's (a run that outlived its lease may
    have lost it to another)."""
    try:
        held, tag = read_tagged(lock)
    except FileNotFoundError:
        return
    if held != mine:
        return
    if tag is None:
        remove(lock)
    else:
        s3_conditional(lock, "delete_object", IfMatch=tag)
