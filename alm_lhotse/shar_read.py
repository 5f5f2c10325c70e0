"""Reading an export's shards back with Lhotse, from a directory or from object storage.

``CutSet.from_shar(in_dir=...)`` globs a local directory only. Its ``fields`` argument
takes each field's shards one by one, and Lhotse opens each with ``open_best``: a plain
path, a ``pipe:COMMAND`` whose output is read as the file, or (only where the optional
``smart_open`` package is installed) a URL. ``shar_fields`` lists the shards of an export
and, for a bucket, names each as a command that streams the object through this
package's storage layer (``python -m alm_lhotse.shar_read URL``), so reading needs
nothing beyond what the export needed:

    from lhotse import CutSet
    from alm_lhotse.shar_read import shar_fields

    cuts = CutSet.from_shar(fields=shar_fields("s3://bucket/out/shar-1c0ffee12345"),
                            split_for_dataloading=True, shuffle_shards=True)

The commands run in the reading processes (dataloader workers), with the backends'
standard credential chains (``AWS_*``, ``AWS_ENDPOINT_URL``, ``GOOGLE_APPLICATION_CREDENTIALS``,
...); a cuts shard is streamed gunzipped, since Lhotse does not decompress a pipe.
"""

from __future__ import annotations

import gzip
import os
import shlex
import sys
from typing import BinaryIO, Optional, Union

from alm_lhotse import objects
from alm_lhotse.fs import READ_BLOCK, StorageError, is_url, join, location, open_url

CUTS_FIELD = "cuts"
BROKEN_PIPE_STATUS = 141  # what Lhotse's Pipe takes for a reader that stopped early


def shar_fields(shar_dir: Union[str, os.PathLike]) -> dict[str, list[str]]:
    """The ``fields`` of ``CutSet.from_shar`` for every shard in ``shar_dir`` (a directory
    or a URL): for each field (``cuts``, ``recording``), its shards in order."""
    fields: dict[str, list[str]] = {}
    for name in objects.children(shar_dir):
        field = name.split(".")[0]
        if field == CUTS_FIELD and ".jsonl" not in name:
            continue
        fields.setdefault(field, []).append(_source(str(join(location(shar_dir), name))))
    if CUTS_FIELD not in fields:
        raise StorageError(str(shar_dir), "holds no Shar cuts shards (cuts.NNNNNN.jsonl.gz)")
    return fields


def _source(shard: str) -> str:
    if not is_url(shard):
        return shard
    return f"pipe:{shlex.quote(sys.executable)} -m alm_lhotse.shar_read {shlex.quote(shard)}"


def stream(url: str, out: BinaryIO) -> None:
    """Copy the object at ``url`` to ``out`` in bounded blocks, gunzipped when its name ends in ``.gz``."""
    with open_url(url) as source:
        reader = gzip.GzipFile(fileobj=source, mode="rb") if url.endswith(".gz") else source
        while block := reader.read(READ_BLOCK):
            out.write(block)


def main(argv: Optional[list[str]] = None) -> int:
    """``python -m alm_lhotse.shar_read URL``: the object on stdout, for a ``pipe:`` source."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m alm_lhotse.shar_read URL", file=sys.stderr)
        return 2
    try:
        stream(args[0], sys.stdout.buffer)
        sys.stdout.buffer.flush()
    except BrokenPipeError:
        os._exit(BROKEN_PIPE_STATUS)  # the reader has what it needs; no flush into a closed pipe
    except StorageError as exc:
        print(f"Error: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"Error: {args[0]}: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
