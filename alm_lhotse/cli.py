"""``lhotse-alm``: Lhotse's own command line with the ALM commands added.

Lhotse has no plugin hook through which another package could add ``lhotse prepare alm``,
so this console script imports ``lhotse.bin.modes`` (which registers every stock command on
Lhotse's click group), attaches ``prepare alm`` and ``shar export-alm`` to it, and runs it.
Every stock command (``lhotse-alm shar export``, ``lhotse-alm validate-pair``, ...) works
unchanged.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, Callable, Optional, Union

import click
import lhotse.bin.modes  # noqa: F401  (registers Lhotse's commands on the group)
from lhotse.bin.modes.cli_base import cli, prepare
from lhotse.bin.modes.shar import shar

from alm_lhotse.audio import DEFAULT_THRESHOLD_DB
from alm_lhotse.config import PARAMETERS, TranscriptConfig
from alm_lhotse.errors import ManifestError, OutputError
from alm_lhotse.fs import StorageError, is_url, join, local_path, parse_options
from alm_lhotse.outputs.streams import CUTS_PART, FINAL_NAMES, TRANSCRIPTS_FINAL
from alm_lhotse.params import BOOL, CHOICE, Param, ParamError
from alm_lhotse.recipe import (
    OVERLAP_OPTIONS,
    WINDOW_OPTIONS,
    configs_from_options,
    prepare_alm,
)
from alm_lhotse.shar import SharExportError, export_shar, nothing_written_warning, reading_hint
from alm_lhotse.shar_options import SHAR_PARAMS


class _Declared(click.ParamType):
    """A declared parameter's parsing and checks, reported the click way (one Error: line)."""

    def __init__(self, spec: Param) -> None:
        self.spec = spec
        self.name = spec.kind

    def convert(self, value: Any, param: Optional[click.Parameter], ctx: Optional[click.Context]) -> Any:
        try:
            return self.spec.typed(self.spec.parse(value))
        except ParamError as exc:
            self.fail(f"must be {exc.allowed}, got {exc.value!r}", param, ctx)


def _option(spec: Param) -> Callable[[Callable], Callable]:
    flags = [spec.flag, *(f"--{alias.replace('_', '-')}" for alias in spec.aliases)]
    if spec.kind == BOOL:
        return click.option(f"{spec.flag}/--no-{spec.flag[2:]}", spec.name, default=spec.default, help=spec.help)
    if spec.kind == CHOICE:
        return click.option(*flags, spec.name, type=click.Choice(spec.choices), default=spec.default, help=spec.help)
    help_text = f"{spec.help} Allowed: {spec.allowed}."
    return click.option(*flags, spec.name, type=_Declared(spec), default=spec.text(spec.default), help=help_text)


def _declared_options_of(params: tuple[Param, ...]) -> Callable[[Callable], Callable]:
    """One click option per declared parameter, in declaration order."""

    def decorate(command: Callable) -> Callable:
        for spec in reversed(params):
            command = _option(spec)(command)
        return command

    return decorate


_declared_options = _declared_options_of(PARAMETERS)


class PathOrUrl(click.ParamType):
    """A local path (one that must exist, for inputs), or a URL (``s3://...``)."""

    name = "path_or_url"

    def __init__(self, exists: bool) -> None:
        self._local = click.Path(exists=exists, path_type=Path)

    def convert(self, value: Any, param: Optional[click.Parameter], ctx: Optional[click.Context]) -> Any:
        return value if is_url(value) else self._local.convert(local_path(value), param, ctx)


@prepare.command(context_settings=dict(show_default=True))
@click.argument("manifest_path", type=PathOrUrl(exists=True))
@click.argument("output_dir", type=PathOrUrl(exists=False))
@_declared_options
@click.option("-j", "--num-jobs", type=int, default=1, help="Worker processes.")
@click.option(
    "--read-audio-headers/--no-read-audio-headers",
    default=True,
    help="Fill a missing audio_sample_rate or duration from the audio file header.",
)
@click.option(
    "--estimate-bandwidth/--no-estimate-bandwidth",
    default=False,
    help="Estimate a missing segment metrics.bandwidth from the audio.",
)
@click.option(
    "--bandwidth-threshold-db",
    type=float,
    default=DEFAULT_THRESHOLD_DB,
    help="Bandwidth = highest frequency within this many dB of the spectrum's peak.",
)
@click.option("--progress/--no-progress", default=True, help="Show progress bars.")
@click.option("--storage-options", default="", help="fsspec options for URLs, as a JSON object.")
def alm(
    manifest_path: Union[Path, str],
    output_dir: Union[Path, str],
    transcript_view: bool,
    transcript_speaker_tag: str,
    **options: Any,
) -> None:
    """ALM training windows from diarized, transcribed conversation manifests.

    MANIFEST_PATH is a JSONL manifest (optionally gzipped) or a directory searched for them.
    Writes OUTPUT_DIR/alm_output.jsonl (NeMo Curator compatible), OUTPUT_DIR/rejects.jsonl,
    Lhotse manifests OUTPUT_DIR/lhotse/alm_{recordings,supervisions,cuts_windows}_all.jsonl.gz,
    a NeMo manifest of the windows OUTPUT_DIR/alm_windows_nemo.jsonl and OUTPUT_DIR/report.html;
    with --transcript-view also OUTPUT_DIR/lhotse/alm_cuts_transcripts_all.jsonl.gz.
    """
    try:
        configs_from_options({name: options[name] for name in (*WINDOW_OPTIONS, *OVERLAP_OPTIONS)})
    except ValueError as exc:  # what one option alone cannot check (min_speakers <= max_speakers)
        raise click.UsageError(str(exc)) from None
    try:
        options["storage_options"] = parse_options(options["storage_options"])
        prepare_alm(manifest_path, output_dir, **options)
    except (ManifestError, ValueError) as exc:
        raise click.ClickException(str(exc)) from None
    except OutputError as exc:
        raise click.ClickException(exc.strerror) from None
    except OSError as exc:  # inputs were checked up front; this is the output directory
        raise click.ClickException(f"cannot write the outputs into {output_dir}: {exc.strerror or exc}") from None
    summary = _read_summary(output_dir)
    click.echo(
        f"{summary['entries']} entries -> {summary['windows']} windows -> "
        f"{summary['filtered_windows']} kept ({summary['filtered_dur']:.1f} s) in {output_dir}"
    )
    if summary["rejected"]:
        click.echo(f"{summary['rejected']} lines rejected: see {join(output_dir, 'rejects.jsonl')}")
    if transcript_view:
        _write_transcripts(output_dir, TranscriptConfig(transcript_view, transcript_speaker_tag))
    click.echo(f"report: {_report(output_dir)}")


def _write_transcripts(output_dir: Union[Path, str], config: TranscriptConfig) -> None:
    from alm_lhotse.lhotse_io import write_transcript_view

    cuts = join(output_dir, *FINAL_NAMES[CUTS_PART].split("/"))
    written = write_transcript_view(cuts, join(output_dir, *TRANSCRIPTS_FINAL.split("/")), config.speaker_tag)
    click.echo(f"transcript view: {written}")


def _report(output_dir: Union[Path, str]) -> Union[Path, str]:
    from alm_lhotse.report.page import MissingSummary, report_into

    try:
        return report_into(output_dir)
    except (MissingSummary, OSError, StorageError) as exc:
        raise click.ClickException(str(exc)) from None


@cli.command("report")
@click.argument("output_dir", type=PathOrUrl(exists=True))
def report(output_dir: Union[Path, str]) -> None:
    """Write OUTPUT_DIR/report.html (and its charts as OUTPUT_DIR/report/*.png) from the
    run's summary: windows kept and lost by reason, durations, speakers, truncations."""
    click.echo(_report(output_dir))


def _read_summary(output_dir: Union[Path, str]) -> dict[str, Any]:
    import orjson

    from alm_lhotse.objects import read_bytes
    from alm_lhotse.recipe import RECIPE_SUMMARY

    return orjson.loads(read_bytes(join(output_dir, RECIPE_SUMMARY)))


class _FileOrUrl(click.Path):
    """An existing local file (checked as click checks paths), or a URL passed on as given."""

    def convert(self, value: Any, param: Optional[click.Parameter], ctx: Optional[click.Context]) -> Any:
        return value if is_url(value) else super().convert(value, param, ctx)


@shar.command("export-alm", context_settings=dict(show_default=True))
@click.argument("cuts", type=_FileOrUrl(exists=True, dir_okay=False, path_type=Path))
@click.argument("output_dir", type=click.Path(path_type=str))
@_declared_options_of(SHAR_PARAMS)
@click.option("-j", "--num-jobs", type=int, default=1, help="Worker processes (one shard each at a time).")
@click.option("--progress/--no-progress", default=True, help="Show a progress bar.")
@click.option("--storage-options", default="", help="fsspec options for URLs, as a JSON object.")
def export_alm(cuts: Union[Path, str], output_dir: str, storage_options: str, **options: Any) -> None:
    """Export ALM window CUTS (e.g. lhotse/alm_cuts_windows_all.jsonl.gz) with their audio as Shar.

    Each window's audio is exactly the source samples over its span. A killed export
    resumes when run again with the same arguments. CUTS and OUTPUT_DIR may be URLs
    (s3://, gs://, az://): the shards and the export's bookkeeping then go to the bucket.
    """
    try:
        summary = export_shar(cuts, output_dir, storage_options=parse_options(storage_options), **options)
    except SharExportError as exc:
        raise click.ClickException(f"{exc} (use --audio-on-error skip to leave such windows out)") from None
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    hours = f"{summary['hours']:.2f} h of audio"
    click.echo(f"{summary['written']} of {summary['windows']} windows ({hours}) in {summary['shards']} shards in {output_dir}")
    if summary["rejected"]:
        click.echo(f"{summary['rejected']} windows rejected: see {summary['rejects_path']}")
    if is_url(output_dir) and summary["written"]:
        click.echo(f"read them with {reading_hint(summary['output_dir'])}")
    warning = nothing_written_warning(summary)
    if warning:
        click.echo(warning, err=True)


def main(argv: Optional[list[str]] = None, prog_name: Optional[str] = None) -> None:
    """Console script entry point (``lhotse-alm``). Every error the user can cause, a bad
    option included, is one ``Error:`` line (click would add usage lines for some)."""
    try:
        code = cli.main(args=argv if argv is not None else sys.argv[1:], prog_name=prog_name or "lhotse-alm", standalone_mode=False)
    except click.ClickException as exc:
        click.echo(f"Error: {exc.format_message()}", err=True)
        code = exc.exit_code
    except click.Abort:
        click.echo("Aborted!", err=True)
        code = 1
    sys.exit(code if isinstance(code, int) else 0)
