"""Readers of plain values, each ``(value, path) -> checked value`` raising a one-line
:class:`~sagasim.exceptions.SagaDefinitionError` at ``path``: texts, names, flags, numbers,
counts, durations with units, rates; and the tables that pair a YAML key with a dataclass
field, its reader and its writer, so that reading and writing a model agree.

>>> parse_duration("1.5s"), format_duration(120000.0)
(1500.0, '2min')
>>> read_count(0, "retry.attempts")
Traceback (most recent call last):
...
sagasim.exceptions.SagaDefinitionError: retry.attempts: expected a positive integer, got 0
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import re
from collections.abc import Callable, Sequence
from decimal import Decimal
from typing import Any

from ..exceptions import SagaDefinitionError
from .yaml import join as _join

_UNITS = {"ms": Decimal(1), "s": Decimal(1000), "min": Decimal(60000)}
_DURATION = re.compile(r"(-?)([0-9]+(?:\.[0-9]+)?)(ms|s|min)")
_RATE = re.compile(r"([0-9]+(?:\.[0-9]+)?)/(s|min)")
MISSING = "nothing (the key is missing)"


class UnknownKey(SagaDefinitionError):
    """A key the format does not have; its line is the key's own, not that of ``path``."""

    def __init__(self, key: object, allowed: Sequence[str], *, path: str) -> None:
        self.key, self.hint = key, did_you_mean(key, allowed)
        self.expected = f"expected one of: {', '.join(sorted(allowed))}"
        more = f"; {self.hint}" if self.hint else ""
        super().__init__(f"unknown key {key!r} ({self.expected}{more})", path=path)


# --- Readers of plain values: (value, path) -> checked value --------------------------------------

Reader = Callable[[Any, str], Any]


def show(value: object) -> str:
    """How a value appears after "got" in an error message."""
    if value is None or isinstance(value, bool):
        return {None: "null", True: "true", False: "false"}[value]
    if isinstance(value, (dict, list)):
        kind = "a mapping" if isinstance(value, dict) else "a list"
        return kind if value else kind.replace("a ", "an empty ")
    if isinstance(value, str) and len(value) > 60:
        return repr(value[:57] + "...")
    shown = repr(value)
    return shown if len(shown) <= 60 else shown[:57] + "..."  # a huge integer


def did_you_mean(word: object, choices: Sequence[str]) -> str:
    close = difflib.get_close_matches(str(word), list(choices), n=1)
    return f"did you mean {close[0]!r}?" if close else ""


def expected(what: str, value: object, path: str) -> SagaDefinitionError:
    return SagaDefinitionError(f"expected {what}, got {show(value)}", path=path)


def typed(what: str, accept: Callable[[Any], bool], convert: Callable[[Any], Any] = str) -> Reader:
    """A reader of values that ``accept`` approves, described as ``what`` when it does not."""

    def read(value: object, path: str) -> Any:
        if not accept(value):
            raise expected(what, value, path)
        return convert(value)

    return read


def is_number(value: object) -> bool:
    """A finite int or float: ``.inf``, ``.nan`` and integers beyond a float's range are not."""
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return False
    try:
        return math.isfinite(value)
    except OverflowError:  # an int too large for a float
        return False


read_text = typed("a text", lambda value: isinstance(value, str))
read_label = typed("a non-empty name", lambda value: isinstance(value, str) and value != "")
# Only the type: validate() checks identifiers, keywords, reserved and repeated names.
read_identifier = typed("an identifier", lambda value: isinstance(value, str))
read_flag = typed("true or false", lambda value: isinstance(value, bool), bool)
read_number = typed("a number", is_number, float)


def is_count(value: object) -> bool:
    """A positive integer; ``2.0`` is one, as in JSON Schema."""
    if isinstance(value, float):
        return value >= 1 and value.is_integer()
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


read_count = typed("a positive integer", is_count, int)
read_attempts = typed(
    "a positive integer or 'unbounded'",
    lambda value: value == "unbounded" or is_count(value),
    lambda value: None if value == "unbounded" else int(value),
)


def at_least(low: float, what: str) -> Reader:
    return typed(what, lambda value: is_number(value) and value >= low, float)


def one_of(*options: str) -> Reader:
    """A reader accepting one of ``options``, with a did-you-mean hint for near misses."""
    shown = ", ".join(repr(option) for option in options)
    what = " or ".join(shown.rsplit(", ", 1)) if len(options) == 2 else f"one of {shown}"

    def read(value: object, path: str) -> str:
        if isinstance(value, str) and value in options:
            return value
        hint = did_you_mean(value, options)
        message = f"expected {what}, got {show(value)}" + f" ({hint})" * bool(hint)
        raise SagaDefinitionError(message, path=path)

    return read


def parse_duration(value: object, path: str = "") -> float:
    """A duration such as ``"15ms"``, ``"1.5s"`` or ``"2min"``, in milliseconds.

    Examples
    --------
    >>> parse_duration("1.5s"), parse_duration("2min"), parse_duration("0.25ms")
    (1500.0, 120000.0, 0.25)
    >>> parse_duration(15, "timeout")
    Traceback (most recent call last):
    ...
    sagasim.exceptions.SagaDefinitionError: timeout: expected a duration with a unit ..., got 15
    """
    match = _DURATION.fullmatch(value) if isinstance(value, str) else None
    if match is None:
        raise expected("a duration with a unit (ms, s, min)", value, path)
    if match[1]:
        raise expected("a non-negative duration", value, path)
    ms = float(Decimal(match[2]) * _UNITS[match[3]])
    if not math.isfinite(ms):
        raise expected("a duration a float can hold", value, path)
    return ms


_per_second = typed("a rate such as 50/s, 3000/min or a number per second", is_number, float)


def read_rate(value: object, path: str) -> float:
    """Arrivals per second from ``"50/s"``, ``"3000/min"`` or a plain number per second."""
    match = _RATE.fullmatch(value) if isinstance(value, str) else None
    if match is None:
        return _per_second(value, path)
    rate = float(Decimal(match[1]) * 1000 / _UNITS[match[2]])
    if not math.isfinite(rate):
        raise expected("a rate a float can hold", value, path)
    return rate


def plain_number(number: float) -> str:
    """The shortest decimal that reads back as ``number``, never in exponent notation."""
    if not math.isfinite(number):
        return repr(number)
    text = format(Decimal(repr(number + 0.0)), "f")
    return text.rstrip("0").rstrip(".") if "." in text else text


def format_duration(ms: float) -> str:
    """``ms`` in the largest unit that reads back exactly: 120000.0 -> '2min', 1500.0 -> '1.5s'."""
    for unit, factor in (("min", 60000), ("s", 1000)):
        text = f"{plain_number(ms / factor)}{unit}"
        if ms >= factor and (unit == "s" or "." not in text) and parse_duration(text) == ms:
            return text
    return f"{plain_number(ms)}ms"


# --- The tables: (YAML key, dataclass field, reader, writer) per object ---------------------------

Field = tuple[str, str, Reader, Callable[[Any], Any]]
DURATION: tuple[Reader, Callable[[float], str]] = (
    parse_duration,
    format_duration,
)  # a duration field


def read_fields(
    value: object, path: str, table: Sequence[Field], what: str, /, **required: str
) -> Any:
    """The constructor arguments the mapping ``value`` gives, checked against ``table``."""
    if not isinstance(value, dict):
        raise expected(what, value, path)
    keys = [key for key, *_ in table]
    for key in value:
        if key not in keys:
            raise UnknownKey(key, keys, path=path)
    for key, description in required.items():
        if key not in value:
            message = f"expected {description}, got {MISSING}"
            raise SagaDefinitionError(message, path=_join(path, key))
    return {
        field: read(value[key], _join(path, key)) for key, field, read, _ in table if key in value
    }


def reader(cls: type, table: Sequence[Field], what: str, /, **required: str) -> Reader:
    """A reader of the mapping form of ``cls``."""
    return lambda value, path: cls(**read_fields(value, path, table, what, **required))


def named(cls: type, table: Sequence[Field], noun: str, what: str, *, bare: bool = False) -> Reader:
    """A reader of ``{NAME: settings}`` mappings (services, resources): a tuple of ``cls``, each
    with its ``name`` and the fields ``table`` reads; ``bare``: a name may have no settings."""

    def read_all(value: object, path: str) -> tuple[Any, ...]:
        if not isinstance(value, dict):
            raise expected(f"a mapping from {noun} name to its settings", value, path)
        return tuple(
            cls(
                name=read_label(name, f"{path}.{name}"),
                **read_fields({} if bare and spec is None else spec, f"{path}.{name}", table, what),
            )
            for name, spec in value.items()
        )

    return read_all


def each(read: Reader, what: str, least: int = 0) -> Reader:
    """A reader of lists of at least ``least`` items, each read with ``read``."""

    def read_all(value: object, path: str) -> tuple[Any, ...]:
        if not isinstance(value, list) or len(value) < least:
            raise expected(what, value, path)
        return tuple(read(item, f"{path}[{i}]") for i, item in enumerate(value))

    return read_all


def write_fields(obj: Any, table: Sequence[Field]) -> dict[str, Any]:
    """The mapping for ``obj``, leaving out fields equal to their default (and write-less keys)."""
    fields = dataclasses.fields(obj)
    missing = dataclasses.MISSING
    defaults = {
        f.name: f.default if f.default_factory is missing else f.default_factory() for f in fields
    }
    return {
        key: write(getattr(obj, field))
        for key, field, _, write in table
        if hasattr(obj, field) and getattr(obj, field) != defaults[field]
    }
