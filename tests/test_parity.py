"""Exact parity with NeMo Curator on every oracle case, entry by entry, against the
reference's outputs on the running Python's side of the 3.12 sum() change."""

from __future__ import annotations

import gzip
import json
from itertools import islice

import pytest

from alm_lhotse.config import OverlapConfig, WindowConfig
from alm_lhotse.core.entry import process_entry
from alm_lhotse.outputs.compat import render_entry
from alm_lhotse.reading.reader import iter_file_lines, parse_line
from tests.conftest import ORACLE, oracle_expected, oracle_totals, require_shared

WINDOW_KEYS = (
    "target_window_duration", "tolerance", "min_sample_rate", "min_bandwidth", "min_speakers",
    "max_speakers", "truncation", "drop_fields", "drop_fields_top_level",
)


def _cases() -> list[dict]:
    path = ORACLE / "cases.json"
    if not path.exists():
        return [{"name": "oracle-missing"}]
    data = json.loads(path.read_text())
    return [{**c, "params": {**data["defaults"], **c["params"]}} for c in data["cases"]]


def configs(params: dict) -> tuple[WindowConfig, OverlapConfig]:
    return (
        WindowConfig(**{k: params[k] for k in WINDOW_KEYS}),
        OverlapConfig(params["overlap_percentage"], params["overlap_target_duration"]),
    )


@pytest.mark.parametrize("case", _cases(), ids=lambda c: c["name"])
def test_oracle_case(case: dict, builder: str) -> None:
    require_shared()
    wcfg, ocfg = configs(case["params"])
    lines = iter_file_lines((ORACLE / case["input"]).resolve())
    lines = islice(lines, case.get("input_first_n"))
    with gzip.open(oracle_expected(case), "rt") as f:
        expected = [json.loads(x) for x in f if x.strip()]
    got = [json.loads(render_entry(process_entry(parse_line(line), wcfg, ocfg), wcfg)) for line in lines]
    assert len(got) == len(expected)
    for i, (g, e) in enumerate(zip(got, expected), 1):
        assert g == e, f"{case['name']}: entry {i} differs"
    totals = oracle_totals(case, expected)
    assert sum(len(g["windows"]) for g in got) == totals["windows"]
    assert sum(len(g["filtered_windows"]) for g in got) == totals["filtered_windows"]
    assert sum(g["filtered_dur"] for g in got) == totals["filtered_dur"]
    assert sum(g["truncation_events"] for g in got) == totals["truncation_events"]

