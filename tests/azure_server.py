"""A local Azure Blob Storage emulator for the object-storage tests: Azurite's blob
service (npm package ``azurite``, which ``.ci/run`` installs) on 127.0.0.1 at a free
port, in memory, found by adlfs through ``AZURE_STORAGE_CONNECTION_STRING``."""

from __future__ import annotations

import os
import shutil
import uuid
from typing import Iterator

import pytest

from tests.s3_server import emulator, free_port, port_open

# Azurite's documented development account (public, the same in every installation).
ACCOUNT = "devstoreaccount1"
ACCOUNT_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="


def connection_string(endpoint: str, key: str = ACCOUNT_KEY) -> str:
    return (f"DefaultEndpointsProtocol=http;AccountName={ACCOUNT};AccountKey={key};"
            f"BlobEndpoint={endpoint}/{ACCOUNT};")


class AzureServer:
    """The running emulator: the environment that points adlfs at it, and fresh containers."""

    scheme = "az"

    def __init__(self, port: int) -> None:
        self.endpoint = f"http://127.0.0.1:{port}"
        self.env = {"AZURE_STORAGE_CONNECTION_STRING": connection_string(self.endpoint)}
        self.unreachable_env = {"AZURE_STORAGE_CONNECTION_STRING": connection_string(f"http://127.0.0.1:{free_port()}")}
        self.wrong_key_env = {"AZURE_STORAGE_CONNECTION_STRING": connection_string(self.endpoint, "d3Jvbmc=")}

    def filesystem(self):  # noqa: ANN201 - an adlfs filesystem
        from adlfs import AzureBlobFileSystem

        return AzureBlobFileSystem(connection_string=self.env["AZURE_STORAGE_CONNECTION_STRING"], skip_instance_cache=True)

    def bucket(self) -> str:
        """A new empty container's name, so tests never see each other's blobs."""
        name = f"alm-{uuid.uuid4().hex[:12]}"
        self.filesystem().mkdir(name)
        return name


def _command(port: int) -> list[str]:
    script = shutil.which("azurite-blob")
    assert script is not None
    return [script, "--blobHost", "127.0.0.1", "--blobPort", str(port), "--inMemoryPersistence", "--silent",
            "--skipApiVersionCheck", "--disableTelemetry"]


@pytest.fixture(scope="session")
def azure_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AzureServer]:
    """Azurite for the session, stopped at the end; skipped where it or adlfs is not
    installed, except on CI (``.ci/run`` installs Azurite, the test extra adlfs)."""
    missing = None if shutil.which("azurite-blob") else "no azurite-blob on PATH (npm install -g azurite)"
    try:
        import adlfs  # noqa: F401
    except ImportError as exc:
        missing = str(exc)
    if missing is not None:
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI=true but the Azure test dependencies are missing: {missing}")
        pytest.skip(f"Azure tests need adlfs and Azurite ({missing})")
    port = free_port()
    workspace = tmp_path_factory.mktemp("azurite")
    with emulator("Azurite", _command(port), lambda: port_open(port), workspace / "azurite.log", cwd=workspace):
        yield AzureServer(port)
