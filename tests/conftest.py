"""Shared test fixtures: where ../shared is, and a skip that refuses to skip on CI."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("ALM_SHARED_DIR", ROOT.parent / "shared"))
ORACLE = SHARED / "oracle"
FIXTURES = SHARED / "fixtures" / "nemo_curator_alm"


# The reference sums with the built-in sum(), which rounds with compensation since Python
# 3.12: parity is with the reference run on the same Python, whose outputs the oracle
# holds for both sides of that change.
SUM_312 = sys.version_info >= (3, 12)


def oracle_expected(case: dict[str, Any]) -> Path:
    """The reference's output file for an oracle case, made on this Python's side of the
    sum() change."""
    return ORACLE / case["expected_py312" if SUM_312 else "expected"]


def oracle_totals(case: dict[str, Any], expected: list[dict[str, Any]]) -> dict[str, Any]:
    """A case's totals; from 3.12 on ``filtered_dur`` is the sum, in input order, of the
    expected entries' values, as the reference totals them on this Python."""
    totals = dict(case["totals"])
    if SUM_312:
        totals["filtered_dur"] = sum(e["filtered_dur"] for e in expected)
    return totals


def require_shared() -> Path:
    """Skip with a reason when ../shared is absent, but fail on CI where it must exist."""
    if not SHARED.is_dir():
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI=true but the shared directory {SHARED} is missing")
        pytest.skip(f"shared data not found at {SHARED} (set ALM_SHARED_DIR)")
    return SHARED


@pytest.fixture
def oracle_dir() -> Path:
    require_shared()
    return ORACLE


@pytest.fixture
def fixtures_dir() -> Path:
    require_shared()
    return FIXTURES


@pytest.fixture
def sample_manifest(fixtures_dir: Path) -> Path:
    return fixtures_dir / "sample_input.jsonl"


def require_kernel() -> None:
    """Skip where the optional compiled builder was not built, but fail on CI, whose
    install must build it."""
    from alm_lhotse import native

    if native._kernel is None:
        if os.environ.get("CI") == "true":
            pytest.fail("CI=true but the compiled builder alm_lhotse._kernel was not built")
        pytest.skip("alm_lhotse._kernel not built (pip install -e . compiles it)")


@pytest.fixture(params=["compiled", "python"])
def builder(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Runs a test once with the compiled builder fast path and once with pure Python."""
    from alm_lhotse import native

    if request.param == "compiled":
        require_kernel()
    monkeypatch.setattr(native, "_PURE_PYTHON", request.param == "python")
    return request.param
