"""A local S3-compatible server for the object-storage tests: moto's standalone server
on 127.0.0.1 at a free port, found by boto3/s3fs through ``AWS_ENDPOINT_URL``."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Callable, Iterator, Optional

import pytest

CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_open(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
    except OSError:
        return False
    return True


@contextlib.contextmanager
def emulator(
    name: str, command: list[str], ready: Callable[[], bool], log_path: Path, cwd: Optional[Path] = None
) -> Iterator[None]:
    """A local storage emulator (moto, fake-gcs-server, Azurite): started in a session of
    its own with its output in ``log_path``, waited for until ``ready()`` (60 s at
    most), stopped at the end."""
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(command, cwd=cwd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            deadline = time.monotonic() + 60
            while not ready():
                if proc.poll() is not None or time.monotonic() > deadline:
                    log.flush()
                    pytest.fail(f"{name} did not start: {log_path.read_text()[-2000:]}")
                time.sleep(0.1)
            yield
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=30)


def _server_command(port: int) -> list[str]:
    script = shutil.which("moto_server")
    if script is None:
        return [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)]
    return [script, "-H", "127.0.0.1", "-p", str(port)]


class S3Server:
    """The running server: its environment (endpoint and dummy keys) and fresh buckets."""

    def __init__(self, port: int) -> None:
        self.endpoint = f"http://127.0.0.1:{port}"
        self.env = {**CREDENTIALS, "AWS_ENDPOINT_URL": self.endpoint}

    def filesystem(self):  # noqa: ANN201 - an s3fs filesystem
        import s3fs

        return s3fs.S3FileSystem(client_kwargs={"endpoint_url": self.endpoint}, skip_instance_cache=True)

    def bucket(self) -> str:
        """A new empty bucket's name, so tests never see each other's objects."""
        name = f"alm-{uuid.uuid4().hex[:12]}"
        self.filesystem().mkdir(name)
        return name


@pytest.fixture(scope="session")
def s3_server() -> Iterator[S3Server]:
    """moto_server for the session, stopped at the end; skipped where moto is not
    installed, except on CI (the test extra installs it)."""
    try:
        import moto.server  # noqa: F401
        import s3fs  # noqa: F401
    except ImportError as exc:
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI=true but the object-storage test dependencies are missing: {exc}")
        pytest.skip(f"object-storage tests need moto[server] and s3fs ({exc})")
    port = free_port()
    log = Path(os.environ.get("TMPDIR", "/tmp")) / f"moto-{port}.log"
    with emulator("moto_server", _server_command(port), lambda: port_open(port), log):
        yield S3Server(port)
    log.unlink(missing_ok=True)
