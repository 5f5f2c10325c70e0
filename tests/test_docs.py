"""The Python examples in docs/ run as written."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parents[1] / "docs"
BLOCK = re.compile(r"```python\n(.*?)```", re.S)


@pytest.mark.parametrize("page", ["python_api.md"])
def test_python_examples_run(page: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:
    blocks = BLOCK.findall((DOCS / page).read_text())
    assert blocks, f"{page} has no python example"
    monkeypatch.chdir(tmp_path)
    for code in blocks:
        exec(compile(code, f"{page}", "exec"), {"__name__": "__docs__"})
    assert capsys.readouterr().out
    assert os.path.exists("out/alm_output.jsonl")
