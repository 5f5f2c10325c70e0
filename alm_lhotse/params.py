"""How a parameter is declared: name, type, default, help text and allowed values, once.

Each parameter of the window builder and the overlap filter is a field of
``WindowConfig`` or ``OverlapConfig`` (``alm_lhotse.config``) declared with ``param()``;
the error policy is ``ON_ERROR`` there. Every interface derives from these declarations:
the configs' validation, the luigi parameters (``luigi_tasks.parameters``), the options of
``lhotse-alm prepare alm`` (``alm_lhotse.cli``), the recipes' cfg keys and the table in
docs/parameters.md (``markdown_table``, checked by the tests). So a new parameter is one
declaration, the rule that reads it, its tests and its docs.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import numbers
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Optional, Union

# Value kinds: what the value is in Python and how it is written in text (cfg, command line).
NUMBER, INTEGER, BOOL, FIELDS, CHOICE = "number", "integer", "bool", "fields", "choice"
# A text that is a str.format template whose only fields are the names in ``choices``.
FORMAT = "format"
_PARAM = "alm_param"
_TRUE_FALSE = {"true": True, "false": False}


class ParamError(ValueError):
    """A parameter value outside what its declaration allows; says which and what is allowed."""

    def __init__(self, name: str, allowed: str, value: Any) -> None:
        self.name, self.allowed, self.value = name, allowed, value
        super().__init__(self.explain(name))

    def explain(self, where: str) -> str:
        """The message with the parameter named as the user wrote it (flag, cfg key, argument)."""
        return f"{where} must be {self.allowed}, got {self.value!r}"


@dataclass(frozen=True)
class Param:
    """One parameter's declaration. ``low``/``high`` bound numbers (``high`` may name another
    parameter of the same config, checked once both are known); ``aliases`` are old names
    still accepted; ``record_name`` is its key in ``to_dict()`` (checkpoint hashes, summaries)."""

    kind: str
    default: Any
    help: str
    low: Optional[float] = None
    low_open: bool = False
    high: Union[float, str, None] = None
    choices: tuple[str, ...] = ()
    excluded: frozenset[str] = frozenset()
    aliases: tuple[str, ...] = ()
    record_name: str = ""
    name: str = ""

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")

    @property
    def record_key(self) -> str:
        return self.record_name or self.name

    @property
    def allowed(self) -> str:
        """What the value may be, in words (error messages, help, docs)."""
        if self.kind == BOOL:
            return "true or false"
        if self.kind == CHOICE:
            return "one of " + ", ".join(self.choices)
        if self.kind == FORMAT:
            return "text whose only fields are " + ", ".join(f"{{{name}}}" for name in self.choices)
        if self.kind == FIELDS:
            text = "comma-separated field names (empty: none)"
            return text + (f", not {' or '.join(sorted(self.excluded))}" if self.excluded else "")
        what = "a number" if self.kind == NUMBER else "an integer"
        if self.low is not None and self.high is not None:
            return f"{what} from {_num(self.low)} to {_num(self.high)}"
        if self.low is not None:
            return f"{what} {'>' if self.low_open else '>='} {_num(self.low)}"
        return what

    def check(self, value: Any) -> Any:
        """``value`` if it is allowed (a Python value, as the configs get it); else ParamError."""
        if self.kind == BOOL:
            ok = isinstance(value, bool)
        elif self.kind == CHOICE:
            ok = isinstance(value, str) and value in self.choices
        elif self.kind == FORMAT:
            ok = isinstance(value, str) and _format_ok(value, self.choices)
        elif self.kind == FIELDS:
            ok = _fields_ok(value) and not (parse_fields(value) & self.excluded)
        else:
            ok = self._number_ok(value)
        if not ok:
            raise ParamError(self.name, self.allowed, value)
        return value

    def _number_ok(self, value: Any) -> bool:
        kind = numbers.Real if self.kind == NUMBER else numbers.Integral
        if not isinstance(value, kind) or isinstance(value, bool) or not math.isfinite(value):
            return False
        if self.low is not None and (value <= self.low if self.low_open else value < self.low):
            return False
        return not isinstance(self.high, (int, float)) or value <= self.high

    def parse(self, text: Any) -> Any:
        """The value written as text (command line, cfg file), converted and checked."""
        if not isinstance(text, str):
            return self.check(text)
        try:
            if self.kind == NUMBER:
                value: Any = float(text)
            elif self.kind == INTEGER:
                value = int(text)
            elif self.kind == BOOL:
                value = _TRUE_FALSE[text.strip().lower()]
            else:
                value = text
            return self.check(value)
        except (ValueError, KeyError):  # ParamError included: report the text as written
            raise ParamError(self.name, self.allowed, text) from None

    def typed(self, value: Any) -> Any:
        """A checked value as the command lines give it: numbers as float, integers as int
        (the luigi parameters always gave these; checkpoint keys hash them)."""
        return float(value) if self.kind == NUMBER else int(value) if self.kind == INTEGER else value

    def text(self, value: Any) -> str:
        """``value`` written as ``parse`` reads it back."""
        if self.kind == BOOL:
            return "true" if value else "false"
        if self.kind == FIELDS:
            return value if isinstance(value, str) else ",".join(value)
        return str(value)


def param(default: Any, help: str, kind: str = "", **rules: Any) -> Any:
    """A dataclass field declaring a parameter; ``kind`` defaults to the default's type."""
    if not kind:
        kind = {bool: BOOL, int: INTEGER, float: NUMBER}.get(type(default), FIELDS)
    return dataclasses.field(default=default, metadata={_PARAM: Param(kind, default, help, **rules)})


@functools.lru_cache(maxsize=None)
def declared(config_class: type) -> tuple[Param, ...]:
    """The parameters a config class declares, in declaration order, each with its name."""
    return tuple(
        dataclasses.replace(f.metadata[_PARAM], name=f.name)
        for f in dataclasses.fields(config_class)
        if _PARAM in f.metadata
    )


def parse_fields(value: Any) -> frozenset[str]:
    """Accept the reference's comma-separated form or any iterable of names."""
    items = value.split(",") if isinstance(value, str) else value
    return frozenset(f.strip() for f in items if f and f.strip())


def _fields_ok(value: Any) -> bool:
    if isinstance(value, str):
        return True
    try:
        return all(isinstance(item, str) for item in value)
    except TypeError:
        return False


def _format_ok(template: str, names: tuple[str, ...]) -> bool:
    try:
        template.format(**dict.fromkeys(names, ""))
    except (KeyError, IndexError, ValueError, AttributeError):
        return False
    return True


def _num(value: Union[float, str]) -> str:
    return value if isinstance(value, str) else f"{value:g}"


def check_declared(config: Any) -> None:
    """Every declared field of ``config`` allowed, then the bounds naming another parameter."""
    params = declared(type(config))
    for p in params:
        p.check(getattr(config, p.name))
    for p in params:
        if isinstance(p.high, str):
            value, bound = getattr(config, p.name), getattr(config, p.high)
            if value > bound:
                raise ParamError(p.name, f"{p.allowed} ({p.high} is {bound})", value)


def declared_config(cls: type) -> type:
    """Class decorator for a frozen dataclass of ``param()`` fields: its old names (aliases)
    are accepted as keyword arguments and readable as attributes."""
    aliases = {alias: p.name for p in declared(cls) for alias in p.aliases}
    init: Callable[..., None] = cls.__init__  # type: ignore[misc]

    @functools.wraps(init)
    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        init(self, *args, **renamed(kwargs, aliases))

    cls.__init__ = __init__  # type: ignore[misc]
    for alias, name in aliases.items():
        setattr(cls, alias, property(lambda self, name=name: getattr(self, name), doc=f"Old name of {name}."))
    return cls


def renamed(options: dict[str, Any], aliases: dict[str, str]) -> dict[str, Any]:
    """``options`` with old names replaced by the current ones; both given is an error."""
    out = dict(options)
    for alias, name in aliases.items():
        if alias in out:
            if name in out:
                raise TypeError(f"{alias} is the old name of {name}: give only one of them")
            out[name] = out.pop(alias)
    return out


def aliases_of(params: Iterable[Param]) -> dict[str, str]:
    return {alias: p.name for p in params for alias in p.aliases}


def markdown_table(params: Iterable[Param]) -> str:
    """The docs' parameter table: the same flag on luigi's command line and in the recipe
    CLI, the same key in a luigi cfg section, the same keyword in Python."""
    rows = [
        "| parameter (cfg key, Python keyword) | flag | default | allowed | meaning |",
        "| --- | --- | --- | --- | --- |",
    ]
    for p in params:
        flag = f"`{p.flag}`" + "".join(f", `--{a.replace('_', '-')}` (old name, lhotse-alm)" for a in p.aliases)
        default = p.text(p.default) or "(empty)"
        rows.append(f"| `{p.name}` | {flag} | `{default}` | {p.allowed} | {p.help} |")
    return "\n".join(rows) + "\n"
