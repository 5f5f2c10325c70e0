"""The parameters every ALM task shares (builder, overlap, error policy, transcript view), made from
their declarations in ``alm_lhotse.config``, and their validation on luigi's command line.

A bad value, whether luigi could parse it or not, on the command line or in a luigi cfg,
stops a command-line run before any work with one ``ERROR:`` line naming the parameter
and what is allowed, and the scheduling-error exit code (35); in Python it is a
``ValueError``. An explicitly empty value (``--drop-fields=``, ``drop_fields =``) means
empty, not "use the default".
"""

from __future__ import annotations

import sys
import warnings
from configparser import NoOptionError, NoSectionError
from contextlib import contextmanager
from typing import Any, Iterator, Optional

import luigi
import luigi.configuration
from luigi.cmdline_parser import CmdlineParser
from luigi.parameter import UnconsumedParameterWarning, _no_value
from luigi.task_register import Register, TaskClassException

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
from alm_lhotse.params import BOOL, INTEGER, Param, ParamError
from alm_lhotse.storage import key_of

FORMAT_VERSION = 2
# argparse hands our parameters this for an explicitly empty value (NUL cannot be in argv),
# because luigi drops empty strings from the command line as if the flag were absent.
_EMPTY = "\0"
_TASK_MODULE = __name__.split(".")[0]

# Unknown keys in our cfg sections are errors (below), not luigi's easily missed warning.
warnings.filterwarnings("ignore", message=r"(?s).*not consumed by the task 'Alm", category=UnconsumedParameterWarning)


PARTITION_BYTES = Param(
    INTEGER, 0, "Target input bytes per partition task (0: automatic); does not change outputs.",
    low=0, name="partition_bytes",
)  # fmt: skip


def _mark_empty(text: str) -> str:
    return text or _EMPTY


def fail(message: str, exc: Exception) -> None:
    """On luigi's command line: one ERROR line and the scheduling-error exit code, no
    traceback (luigi would report any exception as a crash, exit 4); in Python, raise."""
    if CmdlineParser.get_instance() is None:
        raise ValueError(message) from exc
    print(f"ERROR: {message}", file=sys.stderr, flush=True)
    raise SystemExit(luigi.configuration.get_config().getint("retcode", "scheduling_error", 35))


@contextmanager
def reported(where: Optional[str] = None) -> Iterator[None]:
    """Parameter errors inside, reported by ``fail`` with the parameter named as ``where``."""
    try:
        yield
    except ParamError as exc:
        fail(exc.explain(where or exc.name), exc)
    except ValueError as exc:
        fail(str(exc), exc)


class DeclaredParameter(luigi.Parameter):
    """A luigi parameter made from a declaration: its default, help, parsing and checks."""

    def __init__(self, spec: Param, **kwargs: Any) -> None:
        """``kwargs``: luigi's other options (``significant=False``, ...)."""
        default = spec.text(spec.default) or "(empty)"
        description = f"{spec.help} [{spec.allowed}; default {default}]"
        super().__init__(default=spec.typed(spec.default), description=description, **kwargs)
        self.spec = spec

    def parse(self, x: Any) -> Any:
        with reported(f"{self.spec.name} ({self.spec.flag})"):
            return self.spec.typed(self.spec.parse("" if x == _EMPTY else x))

    def normalize(self, x: Any) -> Any:
        with reported():
            return self.spec.typed(self.spec.check(x))

    def serialize(self, x: Any) -> str:
        return self.spec.text(x)

    def _parser_kwargs(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
        parser_kwargs = super()._parser_kwargs(*args, **kwargs)
        parser_kwargs["type"] = _mark_empty
        if self.spec.kind == BOOL:  # `--sort-segments` alone means true; `--truncation false` too
            parser_kwargs.update(nargs="?", const="true")
        return parser_kwargs

    def _get_value_from_config(self, section: str, name: str) -> Any:
        try:
            text = luigi.configuration.get_config().get(section, name)
        except (NoSectionError, NoOptionError, KeyError):
            return _no_value
        with reported(f"{name} in [{section}] of the luigi config"):
            return self.spec.typed(self.spec.parse(text))


def check_config_sections() -> None:
    """A key in a cfg section of one of our tasks that the task does not have is an error:
    a misspelt parameter must not silently leave the default in place."""
    conf = luigi.configuration.get_config()
    for section in conf.sections():
        try:
            task = Register.get_task_cls(section)
        except TaskClassException:
            continue
        if task.__module__.split(".")[0] != _TASK_MODULE:
            continue
        known = task.get_param_names(include_significant=True)
        for key in conf[section]:
            if key.replace("-", "_") not in known:
                message = f"unknown key {key!r} in [{section}] of the luigi config; known keys: {', '.join(known)}"
                fail(message, KeyError(key))


def _with_declared_parameters(cls: type) -> type:
    for spec in PARAMETERS:
        parameter = DeclaredParameter(spec)
        parameter.__set_name__(cls, spec.name)  # as the class body would have done
        setattr(cls, spec.name, parameter)
    return cls


@_with_declared_parameters
class AlmParameters:
    """Builder, overlap, error-policy and transcript-view parameters: everything that changes the output.
    One luigi parameter per declaration in ``alm_lhotse.config``."""

    WINDOW_NAMES = tuple(p.name for p in WINDOW_PARAMS)
    OVERLAP_NAMES = tuple(p.name for p in OVERLAP_PARAMS)
    TRANSCRIPT_NAMES = tuple(p.name for p in TRANSCRIPT_PARAMS)
    PARAMETER_NAMES = (*WINDOW_NAMES, *OVERLAP_NAMES, ON_ERROR.name, *TRANSCRIPT_NAMES)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        """Checks what one value alone cannot (min_speakers <= max_speakers) and the cfg
        sections, before the task is scheduled."""
        super().__init__(*args, **kwargs)
        with reported():
            self.window_config()
            self.overlap_config()
            self.transcript_config()
        check_config_sections()

    def window_config(self) -> WindowConfig:
        return WindowConfig(**{name: getattr(self, name) for name in self.WINDOW_NAMES})

    def overlap_config(self) -> OverlapConfig:
        return OverlapConfig(**{name: getattr(self, name) for name in self.OVERLAP_NAMES})

    def transcript_config(self) -> TranscriptConfig:
        return TranscriptConfig(**{name: getattr(self, name) for name in self.TRANSCRIPT_NAMES})

    def processing_params(self) -> dict[str, Any]:
        """The values to hand to downstream tasks explicitly (else they use defaults)."""
        return {name: getattr(self, name) for name in self.PARAMETER_NAMES}

    def parameters_record(self) -> dict[str, Any]:
        """The parameters in summary.json and the marker; the transcript view's only when
        it is written (as ``results_digest``)."""
        record = {
            "window": self.window_config().to_dict(),
            "overlap": self.overlap_config().to_dict(),
            "on_error": self.on_error,
        }
        transcript = self.transcript_config().to_dict()
        if transcript:
            record["transcript"] = transcript
        return record

    def results_digest(self) -> str:
        """Hash of every parameter that changes results (validates them on the way). The
        transcript view counts only when it is written, so every job without it keeps
        its key."""
        parts: list[Any] = [FORMAT_VERSION, params_digest(self.window_config(), self.overlap_config()), self.on_error]
        transcript = self.transcript_config().to_dict()
        if transcript:
            parts.append(transcript)
        return key_of(parts)
