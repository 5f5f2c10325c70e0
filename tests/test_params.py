"""Parameters declared once: every interface agrees with the declarations, and invalid or
empty values behave the same on the luigi command line, in luigi.cfg, in lhotse-alm and in
Python."""

from __future__ import annotations

import configparser
import gzip
import json
import os
import re
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from itertools import islice
from pathlib import Path
from typing import Any, Optional

import luigi
import pytest
from click.testing import CliRunner

from alm_lhotse.cli import alm as alm_command
from alm_lhotse.cli import cli
from alm_lhotse.config import (
    ON_ERROR,
    OVERLAP_PARAMS,
    PARAMETERS,
    TRANSCRIPT_PARAMS,
    WINDOW_PARAMS,
    OverlapConfig,
    TranscriptConfig,
    WindowConfig,
    params_digest,
)
from alm_lhotse.params import BOOL, markdown_table
from alm_lhotse.recipe import configs_from_options, prepare_alm
from luigi_tasks import AlmWindows
from luigi_tasks.parameters import AlmParameters, DeclaredParameter
from tests.conftest import ORACLE, ROOT, oracle_expected, require_shared

RECIPES = ROOT / "recipes"
TIMEOUT_S = 300

# (flags, the parameter the error must name)
INVALID = [
    (["--tolerance", "-1"], "tolerance"),
    (["--target-window-duration", "0"], "target-window-duration"),
    (["--overlap-target-duration", "-5"], "overlap-target-duration"),
    (["--min-speakers", "4", "--max-speakers", "2"], "min_speakers"),
    (["--min-speakers", "0"], "min-speakers"),
    (["--min-sample-rate", "-1"], "min-sample-rate"),
    (["--min-bandwidth", "-8000"], "min-bandwidth"),
    (["--overlap-percentage", "150"], "overlap-percentage"),
    (["--min-sample-rate", "abc"], "min-sample-rate"),
    (["--tolerance", "nan"], "tolerance"),
    (["--drop-fields", "words,start"], "drop-fields"),
]
LUIGI_ONLY_INVALID = [
    (["--truncation", "maybe"], "truncation"),
    (["--sort-segments=perhaps"], "sort-segments"),
    (["--on-error", "ignore"], "on-error"),
    (["--tolerance="], "tolerance"),
]


def luigi_run(*args: str, cwd: Path, env: Optional[dict[str, str]] = None) -> subprocess.CompletedProcess:
    full = {k: v for k, v in os.environ.items() if k != "LUIGI_CONFIG_PATH"}
    full.update(env or {})
    command = [sys.executable, "-m", "luigi", "--module", "luigi_tasks", "AlmWindows", "--local-scheduler", *args]
    return subprocess.run(command, cwd=cwd, env=full, capture_output=True, text=True, timeout=TIMEOUT_S)


def assert_one_error_line(stderr: str, prefix: str, *names: str) -> str:
    lines = [line for line in stderr.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith(prefix)]
    assert len(errors) == 1, stderr
    assert "Traceback" not in stderr, stderr
    for name in names:
        assert name in errors[0], errors[0]
    return errors[0]


# --- every interface derives from the declarations ---------------------------------------


def test_configs_declare_every_init_field() -> None:
    import dataclasses

    for cls, params in ((WindowConfig, WINDOW_PARAMS), (OverlapConfig, OVERLAP_PARAMS)):
        assert [f.name for f in dataclasses.fields(cls) if f.init] == [p.name for p in params]
        instance = cls()
        for p in params:
            assert getattr(instance, p.name) == p.default
    assert PARAMETERS == (*WINDOW_PARAMS, *OVERLAP_PARAMS, ON_ERROR, *TRANSCRIPT_PARAMS)


def test_luigi_parameters_are_the_declarations() -> None:
    assert AlmParameters.PARAMETER_NAMES == tuple(p.name for p in PARAMETERS)
    assert AlmParameters.WINDOW_NAMES == tuple(p.name for p in WINDOW_PARAMS)
    task_params = dict(AlmWindows.get_params())
    for p in PARAMETERS:
        parameter = task_params[p.name]
        assert isinstance(parameter, DeclaredParameter) and parameter.spec == p
        assert parameter._default == p.typed(p.default)
        assert p.help in parameter.description and p.allowed in parameter.description
    task = AlmWindows()
    assert task.window_config() == WindowConfig() and task.overlap_config() == OverlapConfig()


def test_click_options_are_the_declarations() -> None:
    options = {o.name: o for o in alm_command.params}
    for p in PARAMETERS:
        option = options[p.name]
        assert p.flag in option.opts
        assert [f"--{a.replace('_', '-')}" for a in p.aliases] == option.opts[1:]
        if p.kind == BOOL:
            assert option.secondary_opts == [f"--no-{p.flag[2:]}"] and option.default is p.default
        else:
            assert option.type.convert(option.default, option, None) == p.typed(p.default)
        assert p.help in (option.help or "")


def test_recipe_python_options_are_the_declarations() -> None:
    wcfg, ocfg = configs_from_options({p.name: p.default for p in (*WINDOW_PARAMS, *OVERLAP_PARAMS)})
    assert (wcfg, ocfg) == (WindowConfig(), OverlapConfig())


def test_default_recipe_spells_out_every_parameter_at_its_default() -> None:
    cfg = configparser.ConfigParser()
    cfg.read(RECIPES / "default.cfg")
    assert list(cfg["AlmWindows"]) == [p.name for p in PARAMETERS]
    for p in PARAMETERS:
        assert p.parse(cfg["AlmWindows"][p.name]) == p.default, p.name


@pytest.mark.parametrize("recipe", sorted(p.name for p in RECIPES.glob("*.cfg")))
def test_recipes_use_declared_keys_and_valid_values(recipe: str) -> None:
    cfg = configparser.ConfigParser()
    cfg.read(RECIPES / recipe)
    assert cfg.sections() == ["AlmWindows"]
    declared = {p.name: p for p in PARAMETERS}
    values = {key: declared[key].parse(text) for key, text in cfg["AlmWindows"].items()}
    transcript = {p.name for p in TRANSCRIPT_PARAMS}
    configs_from_options({k: v for k, v in values.items() if k != "on_error" and k not in transcript})
    TranscriptConfig(**{k: v for k, v in values.items() if k in transcript})


def test_docs_table_is_generated_from_the_declarations() -> None:
    text = (ROOT / "docs/parameters.md").read_text()
    table = re.search(r"<!-- parameters:begin[^\n]*-->\n(.*?)<!-- parameters:end -->", text, re.DOTALL)
    assert table, "docs/parameters.md lost its generated table markers"
    assert table.group(1) == markdown_table(PARAMETERS), "regenerate the table (see the end of docs/parameters.md)"


def test_checkpoint_hashes_are_unchanged_by_the_declarations() -> None:
    """Values computed by the code before parameters were declared once: same parameters,
    same keys, so earlier checkpoints stay valid."""
    assert params_digest(WindowConfig(), OverlapConfig()) == "8769914a9d"
    changed = WindowConfig(target_window_duration=60.0, tolerance=0.15, drop_fields="", truncation=False, sort_segments=True)
    assert params_digest(changed, OverlapConfig(0.0, 60.0)) == "226694651e"
    assert OverlapConfig().to_dict() == {"overlap_percentage": 50, "target_duration": 120.0}


# --- one name per parameter; the old one still accepted ----------------------------------


def test_old_overlap_target_name_is_an_alias() -> None:
    assert OverlapConfig(target_duration=60.0) == OverlapConfig(overlap_target_duration=60.0)
    assert OverlapConfig(overlap_target_duration=60.0).target_duration == 60.0
    with pytest.raises(TypeError, match="old name"):
        OverlapConfig(target_duration=60.0, overlap_target_duration=60.0)
    assert configs_from_options({"target_duration": 70.0})[1].overlap_target_duration == 70.0
    options = {o.name: o for o in alm_command.params}["overlap_target_duration"].opts
    assert options == ["--overlap-target-duration", "--target-duration"]


# --- Python: ValueError naming the parameter and what is allowed -------------------------


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"tolerance": -0.1}, "tolerance must be a number >= 0"),
        ({"target_window_duration": 0}, "target_window_duration must be a number > 0"),
        ({"min_speakers": 0}, "min_speakers must be an integer from 1"),
        ({"min_speakers": 4, "max_speakers": 2}, r"min_speakers must be an integer from 1 to max_speakers \(max_speakers is 2\)"),
        ({"min_speakers": 2.5}, "min_speakers must be an integer"),
        ({"min_sample_rate": -1}, "min_sample_rate must be an integer >= 0"),
        ({"min_bandwidth": "8000"}, "min_bandwidth must be an integer >= 0"),
        ({"truncation": "no"}, "truncation must be true or false"),
        ({"sort_segments": 1}, "sort_segments must be true or false"),
        ({"drop_fields": "start"}, "drop_fields must be comma-separated field names.*not end or start"),
        ({"drop_fields": 3}, "drop_fields must be comma-separated"),
        ({"tolerance": float("inf")}, "tolerance must be a number"),
    ],
)
def test_python_window_config_errors(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        WindowConfig(**kwargs)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"overlap_percentage": 100.5}, "overlap_percentage must be a number from 0 to 100"),
        ({"overlap_percentage": -1}, "overlap_percentage must be a number from 0 to 100"),
        ({"overlap_target_duration": 0}, "overlap_target_duration must be a number > 0"),
        ({"target_duration": -1}, "overlap_target_duration must be a number > 0"),
    ],
)
def test_python_overlap_config_errors(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        OverlapConfig(**kwargs)


def test_python_prepare_alm_and_luigi_tasks_refuse_before_any_work(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="on_error must be one of fail, skip"):
        prepare_alm(tmp_path / "missing.jsonl", tmp_path / "out", on_error="ignore", progress=False)
    with pytest.raises(ValueError, match="max_speakers must be an integer >= 1"):
        prepare_alm(tmp_path / "missing.jsonl", tmp_path / "out", max_speakers=0, progress=False)
    assert not (tmp_path / "out").exists()
    with pytest.raises(ValueError, match="tolerance must be a number >= 0"):
        AlmWindows(tolerance=-1.0)
    with pytest.raises(ValueError, match="min_speakers must be an integer from 1 to max_speakers"):
        AlmWindows(min_speakers=3, max_speakers=2)


# --- lhotse-alm prepare alm: one Error: line, exit 2 -------------------------------------


@pytest.mark.parametrize("flags, name", INVALID + [(["--on-error", "ignore"], "on-error")])
def test_recipe_cli_errors(flags: list[str], name: str, tmp_path: Path) -> None:
    manifest = tmp_path / "m.jsonl"
    manifest.write_text("")
    result = CliRunner().invoke(cli, ["prepare", "alm", str(manifest), str(tmp_path / "out"), "--no-progress", *flags])
    assert result.exit_code == 2, result.output
    assert_one_error_line(result.output, "Error:", name)
    assert not (tmp_path / "out").exists()


# --- luigi command line and luigi.cfg: one ERROR: line, exit 35, nothing written ---------


CFG_INVALID = [
    ("min_sample_rate = abc", "min_sample_rate in [AlmWindows] of the luigi config must be an integer >= 0, got 'abc'"),
    ("truncation = maybe", "truncation in [AlmWindows] of the luigi config must be true or false"),
    ("min_speakers = 4\nmax_speakers = 3", "min_speakers must be an integer from 1 to max_speakers"),
    ("tolerence = 0.2", "unknown key 'tolerence' in [AlmWindows]"),
]


@pytest.fixture(scope="module")
def luigi_errors(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, subprocess.CompletedProcess]]:
    """Every invalid-value run of the luigi command line, started a few at a time (each is
    a fresh process that stops before any work), keyed by test id."""
    runs: dict[str, tuple[Path, tuple[str, ...], Optional[dict[str, str]]]] = {}
    for flags, _ in INVALID + LUIGI_ONLY_INVALID:
        runs[" ".join(flags)] = (tmp_path_factory.mktemp("flags"), ("--output-dir", "out", *flags), None)
    for section, _ in CFG_INVALID:
        for where in ("cwd", "LUIGI_CONFIG_PATH"):
            cwd = tmp_path_factory.mktemp("cfg")
            cfg = cwd / ("luigi.cfg" if where == "cwd" else "recipe.cfg")
            cfg.write_text(f"[AlmWindows]\n{section}\n")
            runs[f"{where}:{section}"] = (cwd, ("--output-dir", "out"), {"LUIGI_CONFIG_PATH": str(cfg)} if where != "cwd" else None)
    with ThreadPoolExecutor(4) as pool:
        procs = {key: pool.submit(luigi_run, *args, cwd=cwd, env=env) for key, (cwd, args, env) in runs.items()}
        return {key: (runs[key][0], proc.result()) for key, proc in procs.items()}


@pytest.mark.parametrize("flags, name", INVALID + LUIGI_ONLY_INVALID)
def test_luigi_command_line_errors(flags: list[str], name: str, luigi_errors: dict) -> None:
    cwd, proc = luigi_errors[" ".join(flags)]
    assert proc.returncode == 35, proc.stderr
    line = assert_one_error_line(proc.stderr, "ERROR:", name)
    assert "must be" in line
    assert not (cwd / "out").exists()


@pytest.mark.parametrize("section, message", CFG_INVALID)
@pytest.mark.parametrize("where", ["cwd", "LUIGI_CONFIG_PATH"])
def test_luigi_cfg_errors(section: str, message: str, where: str, luigi_errors: dict) -> None:
    cwd, proc = luigi_errors[f"{where}:{section}"]
    assert proc.returncode == 35, proc.stderr
    assert message in assert_one_error_line(proc.stderr, "ERROR:")
    assert not (cwd / "out").exists()


def test_unknown_key_in_another_of_our_sections(tmp_path: Path) -> None:
    (tmp_path / "luigi.cfg").write_text("[AlmShar]\nshard_sise = 10\n")
    proc = luigi_run("--output-dir", "out", cwd=tmp_path)
    assert proc.returncode == 35
    assert "unknown key 'shard_sise' in [AlmShar]" in assert_one_error_line(proc.stderr, "ERROR:")


def test_luigi_bool_and_empty_forms_parse() -> None:
    from luigi.cmdline_parser import CmdlineParser

    argv = ["AlmWindows", "--sort-segments", "--truncation", "false", "--drop-fields=", "--drop-fields-top-level", ""]
    with CmdlineParser.global_instance(argv) as parser:
        task = parser.get_task_obj()
    assert task.sort_segments is True and task.truncation is False
    assert task.drop_fields == "" and task.drop_fields_top_level == ""
    with CmdlineParser.global_instance(["AlmWindows", "--sort-segments=false", "--truncation"]) as parser:
        task = parser.get_task_obj()
    assert task.sort_segments is False and task.truncation is True


# --- an explicitly empty --drop-fields means "drop nothing", as in the reference --------


def _expected(case: dict[str, Any]) -> list[dict[str, Any]]:
    path = oracle_expected(case)
    with gzip.open(path, "rt") if path.name.endswith(".gz") else open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def _head50_case(tmp_path: Path) -> tuple[dict[str, Any], Path]:
    require_shared()
    cases = json.loads((ORACLE / "cases.json").read_text())["cases"]
    case = next(c for c in cases if c["name"] == "seed1_head50_notrunc_ov100")
    assert case["params"]["drop_fields"] == ""
    with gzip.open(ORACLE / case["input"], "rt") as f:
        head = "".join(islice((x for x in f if x.strip()), case["input_first_n"]))
    (tmp_path / "head50.jsonl").write_text(head)
    return case, tmp_path / "head50.jsonl"


def _outputs(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


@pytest.mark.parametrize("how", ["flag", "cfg"])
def test_empty_drop_fields_gives_the_reference_output_in_luigi(how: str, tmp_path: Path) -> None:
    case, manifest = _head50_case(tmp_path)
    flags = [f"--{k.replace('_', '-')}={str(v).lower() if isinstance(v, bool) else v}" for k, v in case["params"].items()]
    if how == "cfg":
        flags = [f for f in flags if not f.startswith("--drop-fields=")]
        (tmp_path / "luigi.cfg").write_text("[AlmWindows]\ndrop_fields =\n")
    proc = luigi_run("--manifest-path", str(manifest), "--output-dir", "out", *flags, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert _outputs(tmp_path / "out/alm_output.jsonl") == _expected(case)
    summary = json.loads((tmp_path / "out/summary.json").read_text())
    assert summary["parameters"]["window"]["drop_fields"] == ""


def test_empty_drop_fields_gives_the_reference_output_in_lhotse_alm(tmp_path: Path) -> None:
    case, manifest = _head50_case(tmp_path)
    flags = ["--no-truncation", "--overlap-percentage", "100", "--drop-fields=", "--drop-fields-top-level", "words"]
    result = CliRunner().invoke(cli, ["prepare", "alm", str(manifest), str(tmp_path / "out"), "--no-progress", *flags])
    assert result.exit_code == 0, result.output
    assert _outputs(tmp_path / "out/alm_output.jsonl") == _expected(case)


def test_luigi_task_in_python_reports_a_bad_cfg_value(tmp_path: Path) -> None:
    cfg = luigi.configuration.get_config()
    added = not cfg.has_section("AlmWindows")
    if added:
        cfg.add_section("AlmWindows")
    cfg.set("AlmWindows", "tolerance", "-3")
    try:
        with pytest.raises(ValueError) as caught:
            AlmWindows(output_dir=str(tmp_path / "out"))
    finally:
        cfg.remove_option("AlmWindows", "tolerance")
        if added:
            cfg.remove_section("AlmWindows")
    chain = [caught.value, caught.value.__cause__]
    assert any("tolerance in [AlmWindows] of the luigi config must be a number >= 0" in str(e) for e in chain)
