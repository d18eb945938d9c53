"""Read and write saga models: YAML text, then checked plain data, then a frozen :class:`Saga`.

:func:`parse_yaml` composes the YAML node tree into plain data plus a map from each model path
(``steps[2].retry.attempts``) to its line; :func:`from_dict` checks every key and type, builds the
model and ends in :func:`sagasim.model.validate`. Every problem is a :class:`SagaDefinitionError`
reading ``FILE:LINE: PATH: expected ..., got ...``. One table per object pairs each YAML key with
its dataclass field, a reader and a writer, so :func:`from_dict` and :func:`to_dict` agree.
YAML is read by :mod:`sagasim.io.yaml`: YAML 1.2 scalars (``yes`` and ``on`` stay strings), no
duplicate keys, no tags beyond the plain ones, no alias bombs.

Examples
--------
>>> saga = loads("saga: pay\\nsteps: [{name: charge, latency: {dist: exponential, mean: 0.02s}}]")
>>> saga.steps[0].latency
Exponential(mean_ms=20.0)
>>> try:
...     loads("saga: pay\\nsteps: [{name: charge, failure: 1.5}]", file="pay.yaml")
... except SagaDefinitionError as err:
...     print(err)
pay.yaml:2: steps[0].failure: expected a probability in [0, 1], got 1.5
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import math
import os
import re
from collections.abc import Callable, Mapping, Sequence
from decimal import Decimal
from importlib import resources
from typing import Any

from ..exceptions import SagaDefinitionError
from ..model import validate as validate_model
from ..model.latency import Constant, Empirical, Exponential, Latency, LogNormal, Normal, Uniform
from ..model.saga import (
    Arrivals,
    Broker,
    Compensation,
    Entry,
    Outage,
    Parallel,
    Retry,
    Saga,
    Service,
    Step,
)
from . import yaml as _yaml
from .yaml import join as _join

__all__ = ["dumps", "from_dict", "json_schema", "load", "loads"]
__all__ += ["parse_duration", "parse_yaml", "to_dict"]

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


#: Plain data and a map from model path to line, from YAML text: loading's first stage.
parse_yaml = _yaml.parse


# --- Readers of plain values: (value, path) -> checked value --------------------------------------

Reader = Callable[[Any, str], Any]


def _show(value: object) -> str:
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
    return SagaDefinitionError(f"expected {what}, got {_show(value)}", path=path)


def _typed(what: str, accept: Callable[[Any], bool], convert: Callable[[Any], Any] = str) -> Reader:
    """A reader of values that ``accept`` approves, described as ``what`` when it does not."""

    def read(value: object, path: str) -> Any:
        if not accept(value):
            raise expected(what, value, path)
        return convert(value)

    return read


def _is_number(value: object) -> bool:
    """A finite int or float: ``.inf``, ``.nan`` and integers beyond a float's range are not."""
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return False
    try:
        return math.isfinite(value)
    except OverflowError:  # an int too large for a float
        return False


_text = _typed("a text", lambda value: isinstance(value, str))
read_label = _typed("a non-empty name", lambda value: isinstance(value, str) and value != "")
# Only the type: validate() checks identifiers, keywords, reserved and repeated names.
_identifier = _typed("an identifier", lambda value: isinstance(value, str))
_flag = _typed("true or false", lambda value: isinstance(value, bool), bool)
_number = _typed("a number", _is_number, float)


def _is_count(value: object) -> bool:
    """A positive integer; ``2.0`` is one, as in JSON Schema."""
    if isinstance(value, float):
        return value >= 1 and value.is_integer()
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


_count = _typed("a positive integer", _is_count, int)
_attempts = _typed(
    "a positive integer or 'unbounded'",
    lambda value: value == "unbounded" or _is_count(value),
    lambda value: None if value == "unbounded" else int(value),
)


def _at_least(low: float, what: str) -> Reader:
    return _typed(what, lambda value: _is_number(value) and value >= low, float)


def _choice(*options: str) -> Reader:
    """A reader accepting one of ``options``, with a did-you-mean hint for near misses."""
    shown = ", ".join(repr(option) for option in options)
    what = " or ".join(shown.rsplit(", ", 1)) if len(options) == 2 else f"one of {shown}"

    def read(value: object, path: str) -> str:
        if isinstance(value, str) and value in options:
            return value
        hint = did_you_mean(value, options)
        message = f"expected {what}, got {_show(value)}" + f" ({hint})" * bool(hint)
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


_per_second = _typed("a rate such as 50/s, 3000/min or a number per second", _is_number, float)


def read_rate(value: object, path: str) -> float:
    """Arrivals per second from ``"50/s"``, ``"3000/min"`` or a plain number per second."""
    match = _RATE.fullmatch(value) if isinstance(value, str) else None
    if match is None:
        return _per_second(value, path)
    rate = float(Decimal(match[1]) * 1000 / _UNITS[match[2]])
    if not math.isfinite(rate):
        raise expected("a rate a float can hold", value, path)
    return rate


def _plain(number: float) -> str:
    """The shortest decimal that reads back as ``number``, never in exponent notation."""
    if not math.isfinite(number):
        return repr(number)
    text = format(Decimal(repr(number + 0.0)), "f")
    return text.rstrip("0").rstrip(".") if "." in text else text


def _format_duration(ms: float) -> str:
    """``ms`` in the largest unit that reads back exactly: 120000.0 -> '2min', 1500.0 -> '1.5s'."""
    for unit, factor in (("min", 60000), ("s", 1000)):
        text = f"{_plain(ms / factor)}{unit}"
        if ms >= factor and (unit == "s" or "." not in text) and parse_duration(text) == ms:
            return text
    return f"{_plain(ms)}ms"


# --- The tables: (YAML key, dataclass field, reader, writer) per object ---------------------------

Field = tuple[str, str, Reader, Callable[[Any], Any]]
_D: tuple[Reader, Callable[[float], str]] = (parse_duration, _format_duration)  # a duration field


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


def _reader(cls: type, table: Sequence[Field], what: str, /, **required: str) -> Reader:
    """A reader of the mapping form of ``cls``."""
    return lambda value, path: cls(**read_fields(value, path, table, what, **required))


def _each(read: Reader, what: str, least: int = 0) -> Reader:
    """A reader of lists of at least ``least`` items, each read with ``read``."""

    def read_all(value: object, path: str) -> tuple[Any, ...]:
        if not isinstance(value, list) or len(value) < least:
            raise expected(what, value, path)
        return tuple(read(item, f"{path}[{i}]") for i, item in enumerate(value))

    return read_all


def _write(obj: Any, table: Sequence[Field]) -> dict[str, Any]:
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


_SIGMA: Field = ("sigma", "sigma", _at_least(0.0, "a non-negative number"), float)
_samples = _each(parse_duration, "a non-empty list of durations", least=1)
#: Each distribution's class and parameters; lognormal's p99 is read (``from_p99``), not written.
DISTRIBUTIONS: dict[str, tuple[type, list[Field]]] = {
    "constant": (Constant, [("value", "value_ms", *_D)]),
    "uniform": (Uniform, [("low", "low_ms", *_D), ("high", "high_ms", *_D)]),
    "exponential": (Exponential, [("mean", "mean_ms", *_D)]),
    "normal": (Normal, [("mean", "mu_ms", *_D), ("sd", "sd_ms", *_D)]),
    "lognormal": (LogNormal, [("median", "median_ms", *_D), ("p99", "p99_ms", *_D), _SIGMA]),
    "empirical": (Empirical, [("samples", "samples_ms", _samples, lambda s: [*map(_D[1], s)])]),
}


def read_latency(value: object, path: str) -> Latency:
    if not isinstance(value, dict):
        raise expected("a distribution such as {dist: constant, value: 5ms}", value, path)
    if "dist" not in value:
        raise SagaDefinitionError(f"expected a distribution, got {MISSING}", path=f"{path}.dist")
    dist = _choice(*DISTRIBUTIONS)(value["dist"], f"{path}.dist")
    cls, table = DISTRIBUTIONS[dist]
    needed = {key: "a duration" for key, *_ in table if key not in ("p99", "sigma", "samples")}
    needed |= {"samples": "a non-empty list of durations"} if dist == "empirical" else {}
    m = read_fields(value, path, [("dist", "dist", _text, str), *table], "a distribution", **needed)
    del m["dist"]
    positive = {"exponential": "mean", "lognormal": "median"}.get(dist)
    if positive is not None and not m[f"{positive}_ms"] > 0:
        raise expected("a positive duration", value[positive], f"{path}.{positive}")
    if dist == "uniform" and m["high_ms"] < m["low_ms"]:
        raise expected(
            f"a duration of at least low ({value['low']})", value["high"], f"{path}.high"
        )
    if dist == "lognormal" and ("p99" in value) == ("sigma" in value):
        got = "both" if "p99" in value else "neither"
        raise SagaDefinitionError(f"expected either 'p99' or 'sigma', got {got}", path=path)
    if "p99_ms" in m and not m["p99_ms"] > m["median_ms"]:
        median = value["median"]
        raise expected(f"a duration above the median ({median})", value["p99"], f"{path}.p99")
    latency: Latency = LogNormal.from_p99(**m) if "p99_ms" in m else cls(**m)
    return latency


def _latency_dict(latency: Latency) -> dict[str, Any]:
    table = DISTRIBUTIONS[latency.dist][1]
    params = {key: write(getattr(latency, f)) for key, f, _, write in table if hasattr(latency, f)}
    return {"dist": latency.dist, **params}


RETRY: list[Field] = [
    ("attempts", "attempts", _attempts, lambda attempts: attempts or "unbounded"),
    ("backoff", "backoff", _choice("fixed", "exponential"), str),
    ("delay", "delay_ms", *_D),
    ("max_delay", "max_delay_ms", *_D),
    ("multiplier", "multiplier", _at_least(1.0, "a number >= 1"), float),
    ("jitter", "jitter", _flag, bool),
]
read_retry = _reader(Retry, RETRY, "a retry policy such as {attempts: 3, delay: 50ms}")
ACTION: list[Field] = [
    ("latency", "latency", read_latency, _latency_dict),
    ("failure", "failure", _number, float),
    ("reject", "reject", _number, float),
    ("timeout", "timeout_ms", *_D),
    ("retry", "retry", read_retry, lambda retry: _write(retry, RETRY)),
    ("idempotent", "idempotent", _flag, bool),
    ("rejects_late", "rejects_late", _flag, bool),
]
_NAMES: list[Field] = [("name", "name", _identifier, str), ("service", "service", read_label, str)]
COMPENSATION: list[Field] = _NAMES + ACTION


def _compensation(value: object, path: str) -> Compensation:
    if isinstance(value, str):
        return Compensation(name=value)
    what = "a compensation name or a mapping with a 'name' key"
    return Compensation(**read_fields(value, path, COMPENSATION, what, name="an identifier"))


def _compensation_dict(compensation: Compensation) -> str | dict[str, Any]:
    if compensation == Compensation(name=compensation.name):
        return compensation.name
    return _write(compensation, COMPENSATION)


STEP: list[Field] = [
    *_NAMES,
    ("kind", "kind_declared", _choice("pivot", "retriable"), str),
    ("effects", "effects", _flag, bool),
    ("compensation", "compensation", _compensation, _compensation_dict),
    *ACTION,
]


def _step(value: object, path: str, what: str = "a step (a mapping with a 'name' key)") -> Step:
    if isinstance(value, dict) and "parallel" in value:
        raise SagaDefinitionError("expected a step, got a nested parallel group", path=path)
    return Step(**read_fields(value, path, STEP, what, name="an identifier"))


_branches = _each(_each(_step, "a list of steps"), "a list of branches (lists of steps)")


def _entry(value: object, path: str) -> Entry:
    if not (isinstance(value, dict) and "parallel" in value):
        return _step(value, path, "a step (a mapping with a 'name' key) or a parallel group")
    if len(value) > 1:
        raise UnknownKey(next(key for key in value if key != "parallel"), ["parallel"], path=path)
    return Parallel(branches=_branches(value["parallel"], f"{path}.parallel"))


def _entry_dict(entry: Entry) -> dict[str, Any]:
    if isinstance(entry, Step):
        return _write(entry, STEP)
    return {"parallel": [[_write(step, STEP) for step in branch] for branch in entry.branches]}


OUTAGE: list[Field] = [("start", "start_ms", *_D), ("end", "end_ms", *_D)]
_WINDOW = "a window such as {start: 60s, end: 90s}"
_outage = _reader(Outage, OUTAGE, _WINDOW, start="a duration", end="a duration")
_outages = _each(_outage, "a list of {start, end} windows")
SERVICE: list[Field] = [
    ("capacity", "capacity", _count, int),
    ("outages", "outages", _outages, lambda outages: [_write(o, OUTAGE) for o in outages]),
]


def _services(value: object, path: str) -> tuple[Service, ...]:
    if not isinstance(value, dict):
        raise expected("a mapping from service name to its settings", value, path)
    what = "a mapping with capacity and/or outages"
    return tuple(
        Service(
            name=read_label(name, f"{path}.{name}"),
            **read_fields(spec, f"{path}.{name}", SERVICE, what),
        )
        for name, spec in value.items()
    )


ARRIVALS: list[Field] = [("rate", "rate_per_s", read_rate, lambda rate: f"{_plain(rate)}/s")]
_arrivals = _reader(Arrivals, ARRIVALS, "a mapping such as {rate: 50/s}", rate="a rate")
BROKER: list[Field] = [
    ("latency", "latency", read_latency, _latency_dict),
    *((key, key, _number, float) for key in ("loss", "duplicate", "reorder")),
    ("redelivery", "redelivery", read_retry, lambda retry: _write(retry, RETRY)),
]
_broker = _reader(Broker, BROKER, "a mapping such as {latency: {dist: constant, value: 2ms}}")
SAGA: list[Field] = [
    ("saga", "name", read_label, str),
    ("description", "description", _text, str),
    ("coordination", "coordination", _choice("orchestration", "choreography"), str),
    ("compensation_order", "compensation_order", _choice("reverse", "parallel"), str),
    ("services", "services", _services, lambda ss: {s.name: _write(s, SERVICE) for s in ss}),
    ("steps", "steps", _each(_entry, "a list of steps"), lambda es: [*map(_entry_dict, es)]),
    ("arrivals", "arrivals", _arrivals, lambda arrivals: _write(arrivals, ARRIVALS)),
    ("broker", "broker", _broker, lambda broker: _write(broker, BROKER)),
]


# --- Public entry points ------------------------------------------------------------------------


def build(data: object) -> Saga:
    what = "a mapping with keys 'saga' and 'steps'"
    saga = Saga(**read_fields(data, "", SAGA, what, saga="a saga name", steps="a list of steps"))
    validate_model(saga)
    return saga


def from_dict(
    data: object, *, file: str | None = None, lines: Mapping[str, int] | None = None
) -> Saga:
    """Check plain data in the YAML format and build the :class:`Saga` it describes.

    ``file`` and ``lines`` (model path -> line, as :func:`parse_yaml` returns) serve the errors.

    Examples
    --------
    >>> from_dict({"saga": "s", "steps": [{"name": "a", "timeout": "1.5s"}]}).steps[0].timeout_ms
    1500.0
    >>> from_dict({"saga": "s", "steps": [{"name": "a", "failur": 0.1}]})
    Traceback (most recent call last):
    ...
    sagasim.exceptions.SagaDefinitionError: steps[0]: unknown key 'failur' (...'failure'?)
    """
    try:
        return build(data)
    except SagaDefinitionError as err:
        at = _join(err.path, err.key) if isinstance(err, UnknownKey) else err.path
        line = None if lines is None else _yaml.line_of(lines, at)
        raise SagaDefinitionError(err.message, path=err.path, file=file, line=line) from None


def loads(text: str, *, file: str = "<string>") -> Saga:
    """Build a :class:`Saga` from YAML text; ``file`` names it in error messages.

    Examples
    --------
    >>> loads("saga: s\\ndescription: yes\\nsteps: [{name: a}]\\n").description
    'yes'
    """
    data, lines = parse_yaml(text, file=file)
    if data is None:
        message = "expected a mapping with keys 'saga' and 'steps', got an empty document"
        raise SagaDefinitionError(message, file=file, line=1)
    return from_dict(data, file=file, lines=lines)


def load(path: str | os.PathLike[str]) -> Saga:
    """Build a :class:`Saga` from a YAML file (UTF-8, at most 1 MB).

    Examples
    --------
    >>> load("no/such/model.yaml")
    Traceback (most recent call last):
    ...
    sagasim.exceptions.SagaDefinitionError: no/such/model.yaml: expected a readable file, got ...
    """
    return loads(_yaml.read_text(path), file=os.fsdecode(path))


def to_dict(saga: Saga) -> dict[str, Any]:
    """The saga as plain data in the YAML format, defaults left out; :func:`from_dict` reads it.

    Examples
    --------
    >>> to_dict(loads("saga: s\\narrivals: {rate: 3000/min}\\nsteps: [{name: a, timeout: 1500ms}]"))
    {'saga': 's', 'steps': [{'name': 'a', 'timeout': '1.5s'}], 'arrivals': {'rate': '50/s'}}
    """
    return _write(saga, SAGA)


def dumps(saga: Saga) -> str:
    """The saga as YAML text that :func:`loads` reads back to an equal saga.

    Examples
    --------
    >>> print(dumps(loads("saga: s\\nsteps: [{name: 'on', retry: {attempts: unbounded}}]")), end="")
    saga: s
    steps:
    - name: 'on'
      retry: {attempts: unbounded}
    """
    return _yaml.dump(to_dict(saga))


def json_schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of the model format, for editors and other tools.

    >>> json_schema()["required"]
    ['saga', 'steps']
    """
    text = resources.files(__package__).joinpath("schema.json").read_text(encoding="utf-8")
    schema: dict[str, Any] = json.loads(text)
    return schema
