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

import json
import os
from collections.abc import Mapping
from contextvars import ContextVar
from importlib import resources
from typing import Any

from ..exceptions import SagaDefinitionError
from ..model import validate as validate_model
from ..model.data import Coordinator
from ..model.latency import Constant, Empirical, Exponential, Latency, LogNormal, Normal, Uniform
from ..model.saga import (
    Arrivals,
    Branch,
    Broker,
    Choice,
    Compensation,
    Entry,
    Fail,
    Goto,
    Map,
    Outage,
    Parallel,
    Retry,
    Saga,
    Service,
    Step,
    SubSaga,
    Succeed,
)
from . import yaml as _yaml
from .shared import (
    read_isolation,
    read_reads,
    read_resources,
    read_writes,
    with_isolation,
    write_resources,
    write_writes,
)
from .values import (
    DURATION,
    MISSING,
    Field,
    UnknownKey,
    at_least,
    each,
    expected,
    is_count,
    named,
    one_of,
    parse_duration,
    plain_number,
    read_attempts,
    read_count,
    read_fields,
    read_flag,
    read_identifier,
    read_label,
    read_number,
    read_rate,
    read_text,
    reader,
    typed,
    write_fields,
)
from .yaml import join as _join

__all__ = ["dumps", "from_dict", "json_schema", "load", "loads"]
__all__ += ["parse_duration", "parse_yaml", "to_dict"]

#: Plain data and a map from model path to line, from YAML text: loading's first stage.
parse_yaml = _yaml.parse


_SIGMA: Field = ("sigma", "sigma", at_least(0.0, "a non-negative number"), float)
_samples = each(parse_duration, "a non-empty list of durations", least=1)
#: Each distribution's class and parameters; lognormal's p99 is read (``from_p99``), not written.
DISTRIBUTIONS: dict[str, tuple[type, list[Field]]] = {
    "constant": (Constant, [("value", "value_ms", *DURATION)]),
    "uniform": (Uniform, [("low", "low_ms", *DURATION), ("high", "high_ms", *DURATION)]),
    "exponential": (Exponential, [("mean", "mean_ms", *DURATION)]),
    "normal": (Normal, [("mean", "mu_ms", *DURATION), ("sd", "sd_ms", *DURATION)]),
    "lognormal": (
        LogNormal,
        [("median", "median_ms", *DURATION), ("p99", "p99_ms", *DURATION), _SIGMA],
    ),
    "empirical": (
        Empirical,
        [("samples", "samples_ms", _samples, lambda s: [*map(DURATION[1], s)])],
    ),
}


def read_latency(value: object, path: str) -> Latency:
    if not isinstance(value, dict):
        raise expected("a distribution such as {dist: constant, value: 5ms}", value, path)
    if "dist" not in value:
        raise SagaDefinitionError(f"expected a distribution, got {MISSING}", path=f"{path}.dist")
    dist = one_of(*DISTRIBUTIONS)(value["dist"], f"{path}.dist")
    cls, table = DISTRIBUTIONS[dist]
    needed = {key: "a duration" for key, *_ in table if key not in ("p99", "sigma", "samples")}
    needed |= {"samples": "a non-empty list of durations"} if dist == "empirical" else {}
    m = read_fields(
        value, path, [("dist", "dist", read_text, str), *table], "a distribution", **needed
    )
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


def latency_dict(latency: Latency) -> dict[str, Any]:
    table = DISTRIBUTIONS[latency.dist][1]
    params = {key: write(getattr(latency, f)) for key, f, _, write in table if hasattr(latency, f)}
    return {"dist": latency.dist, **params}


RETRY: list[Field] = [
    ("attempts", "attempts", read_attempts, lambda attempts: attempts or "unbounded"),
    ("backoff", "backoff", one_of("fixed", "exponential"), str),
    ("delay", "delay_ms", *DURATION),
    ("max_delay", "max_delay_ms", *DURATION),
    ("multiplier", "multiplier", at_least(1.0, "a number >= 1"), float),
    ("jitter", "jitter", read_flag, bool),
]
read_retry = reader(Retry, RETRY, "a retry policy such as {attempts: 3, delay: 50ms}")
ACTION: list[Field] = [
    ("latency", "latency", read_latency, latency_dict),
    ("failure", "failure", read_number, float),
    ("reject", "reject", read_number, float),
    ("timeout", "timeout_ms", *DURATION),
    ("retry", "retry", read_retry, lambda retry: write_fields(retry, RETRY)),
    ("idempotent", "idempotent", read_flag, bool),
    ("rejects_late", "rejects_late", read_flag, bool),
    ("writes", "writes", read_writes, write_writes),
]
_NAMES: list[Field] = [
    ("name", "name", read_identifier, str),
    ("service", "service", read_label, str),
]
COMPENSATION: list[Field] = _NAMES + ACTION


def _compensation(value: object, path: str) -> Compensation:
    if isinstance(value, str):
        return Compensation(name=value)
    what = "a compensation name or a mapping with a 'name' key"
    return Compensation(**read_fields(value, path, COMPENSATION, what, name="an identifier"))


def _compensation_dict(compensation: Compensation) -> str | dict[str, Any]:
    if compensation == Compensation(name=compensation.name):
        return compensation.name
    return write_fields(compensation, COMPENSATION)


STEP: list[Field] = [
    *_NAMES,
    ("kind", "kind_declared", one_of("pivot", "retriable"), str),
    ("effects", "effects", read_flag, bool),
    ("compensation", "compensation", _compensation, _compensation_dict),
    *ACTION,
    ("compensate_on_failure", "compensate_on_failure", read_flag, bool),
    ("max_visits", "max_visits", read_count, int),
    ("reads", "reads", read_reads, list),
]


def _step(value: object, path: str, what: str = "a step (a mapping with a 'name' key)") -> Step:
    return Step(**read_fields(value, path, STEP, what, name="an identifier"))


#: The entries other than a step, by their one key: what each reads and writes.
_ENTRY_WORDS = ("parallel", "choice", "fail", "succeed", "goto", "map", "saga")
_ENTRY_WHAT = (
    "a step (a mapping with a 'name' key) or another entry (" + ", ".join(_ENTRY_WORDS) + ")"
)


def _entry(value: object, path: str) -> Entry:
    if not isinstance(value, dict) or not any(word in value for word in _ENTRY_WORDS):
        return _step(value, path, _ENTRY_WHAT)
    word = next(w for w in _ENTRY_WORDS if w in value)
    if len(value) > 1:
        raise UnknownKey(next(key for key in value if key != word), [word], path=path)
    inner, at = value[word], f"{path}.{word}"
    if word == "parallel":
        return Parallel(branches=_branches(inner, at))
    if word == "goto":
        return Goto(target=read_identifier(inner, at))
    if word in ("fail", "succeed"):
        cls = Fail if word == "fail" else Succeed
        return cls(**read_fields(inner, at, END, "a mapping such as {name: x}", name="a name"))
    if word == "choice":
        what = "a mapping with 'name' and 'branches'"
        fields = read_fields(inner, at, CHOICE, what, name="a name", branches="a list of branches")
        return Choice(**fields)
    if word == "map":
        what = "a mapping with 'name', 'items' and 'steps'"
        needed = {"name": "a name", "items": "a count", "steps": "a list of steps"}
        return Map(**read_fields(inner, at, MAP, what, **needed))
    return _sub_saga(inner, at)


def _entry_dict(entry: Entry) -> dict[str, Any]:
    if isinstance(entry, Step):
        return write_fields(entry, STEP)
    if isinstance(entry, Parallel):
        return {"parallel": [[*map(_entry_dict, branch)] for branch in entry.branches]}
    if isinstance(entry, Goto):
        return {"goto": entry.target}
    if isinstance(entry, (Fail, Succeed)):
        return {type(entry).__name__.lower(): {"name": entry.name}}
    if isinstance(entry, Choice):
        return {"choice": write_fields(entry, CHOICE)}
    if isinstance(entry, Map):
        return {"map": write_fields(entry, MAP)}
    return {"saga": write_fields(entry, SUB_SAGA)}


_entries = each(_entry, "a list of steps")
_branches = each(each(_entry, "a list of steps"), "a list of branches (lists of steps)")
END: list[Field] = [("name", "name", read_identifier, str)]
BRANCH: list[Field] = [
    ("when", "when", read_text, str),
    ("probability", "probability", read_number, float),
    ("default", "default", read_flag, bool),
    ("steps", "steps", _entries, lambda entries: [*map(_entry_dict, entries)]),
]
_branch = reader(
    Branch, BRANCH, "a branch such as {when: ok, probability: 0.9, steps: []}", when="a text"
)
CHOICE: list[Field] = [
    ("name", "name", read_identifier, str),
    (
        "branches",
        "branches",
        each(_branch, "a list of branches", least=1),
        lambda branches: [write_fields(b, BRANCH) for b in branches],
    ),
]


def _items(value: object, path: str) -> int | tuple[int, ...]:
    """A map's item count, or an empirical distribution of counts."""
    if not isinstance(value, dict):
        return int(read_count(value, path))
    fields = read_fields(
        value,
        path,
        ITEMS,
        "a count or {dist: empirical, samples: [...]}",
        dist="'empirical'",
        samples="a list of counts",
    )
    if fields["dist"] != "empirical":
        raise expected("'empirical'", fields["dist"], f"{path}.dist")
    return tuple(fields["samples"])


def _items_dict(items: int | tuple[int, ...]) -> Any:
    return items if isinstance(items, int) else {"dist": "empirical", "samples": list(items)}


_samples_of_counts = each(
    typed("a non-negative integer", lambda v: is_count(v) or v == 0, int),
    "a non-empty list of counts",
    least=1,
)
ITEMS: list[Field] = [
    ("dist", "dist", read_text, str),
    ("samples", "samples", _samples_of_counts, list),
]
MAP: list[Field] = [
    ("name", "name", read_identifier, str),
    ("items", "items", _items, _items_dict),
    ("concurrency", "concurrency", read_count, int),
    ("steps", "steps", _entries, lambda entries: [*map(_entry_dict, entries)]),
]
SUB_SAGA: list[Field] = [
    ("name", "name", read_identifier, str),
    ("model", "model", read_label, str),
    ("compensation", "compensation", _compensation, _compensation_dict),
]


OUTAGE: list[Field] = [("start", "start_ms", *DURATION), ("end", "end_ms", *DURATION)]
_WINDOW = "a window such as {start: 60s, end: 90s}"
_outage = reader(Outage, OUTAGE, _WINDOW, start="a duration", end="a duration")
_outages = each(_outage, "a list of {start, end} windows")
SERVICE: list[Field] = [
    ("capacity", "capacity", read_count, int),
    ("outages", "outages", _outages, lambda outages: [write_fields(o, OUTAGE) for o in outages]),
]


_services = named(Service, SERVICE, "service", "a mapping with capacity and/or outages")


ARRIVALS: list[Field] = [("rate", "rate_per_s", read_rate, lambda rate: f"{plain_number(rate)}/s")]
_arrivals = reader(Arrivals, ARRIVALS, "a mapping such as {rate: 50/s}", rate="a rate")
BROKER: list[Field] = [
    ("latency", "latency", read_latency, latency_dict),
    *((key, key, read_number, float) for key in ("loss", "duplicate", "reorder")),
    ("redelivery", "redelivery", read_retry, lambda retry: write_fields(retry, RETRY)),
]
_broker = reader(Broker, BROKER, "a mapping such as {latency: {dist: constant, value: 2ms}}")


def _read_restart(value: object, path: str) -> Latency:
    """A duration (``5s``) or a distribution mapping."""
    if isinstance(value, dict):
        return read_latency(value, path)
    return Constant(value_ms=parse_duration(value, path))


def _restart_dict(latency: Latency) -> Any:
    return DURATION[1](latency.value_ms) if isinstance(latency, Constant) else latency_dict(latency)


COORDINATOR: list[Field] = [
    ("crash", "crash", read_number, float),
    ("restart", "restart", _read_restart, _restart_dict),
    ("recovery", "recovery", one_of("forward", "backward"), str),
    ("max_crashes", "max_crashes", read_count, int),
]
_coordinator = reader(Coordinator, COORDINATOR, "a mapping such as {crash: 0.001, restart: 5s}")

SAGA: list[Field] = [
    ("saga", "name", read_label, str),
    ("description", "description", read_text, str),
    ("coordination", "coordination", one_of("orchestration", "choreography"), str),
    ("compensation_order", "compensation_order", one_of("reverse", "parallel"), str),
    ("services", "services", _services, lambda ss: {s.name: write_fields(s, SERVICE) for s in ss}),
    ("steps", "steps", each(_entry, "a list of steps"), lambda es: [*map(_entry_dict, es)]),
    ("arrivals", "arrivals", _arrivals, lambda arrivals: write_fields(arrivals, ARRIVALS)),
    ("broker", "broker", _broker, lambda broker: write_fields(broker, BROKER)),
    ("resources", "resources", read_resources, write_resources),
    ("isolation", "isolation_by_name", read_isolation, dict),  # read into resources
    ("instances", "instances", read_count, int),
    ("coordinator", "coordinator", _coordinator, lambda c: write_fields(c, COORDINATOR)),
]


#: While a file is read: the folder its sub-sagas are relative to, and the files being read
#: (real path and as written), outermost first, to catch a sub-saga that includes itself.
_READING: ContextVar[tuple[str, tuple[tuple[str, str], ...]]] = ContextVar(
    "sagasim_reading", default=(".", ())
)


#: Sub-sagas already read, by name, that a rebuild takes instead of their files.
_KNOWN: ContextVar[dict[str, Saga]] = ContextVar("sagasim_known", default={})  # noqa: B039


def _sub_saga(value: object, path: str) -> SubSaga:
    what = "a mapping with 'name' and 'model'"
    fields = read_fields(value, path, SUB_SAGA, what, name="a name", model="a file name")
    known = _KNOWN.get().get(fields["name"])
    if known is not None:
        return SubSaga(saga=known, **fields)
    base, chain = _READING.get()
    child = os.path.normpath(os.path.join(base, fields["model"]))
    real = os.path.realpath(child)
    reals = [r for r, _ in chain]
    if real in reals:
        cycle = " → ".join([shown for _, shown in chain[reals.index(real) :]] + [child])
        message = f"expected a sub-saga that does not include itself, got the cycle {cycle}"
        raise SagaDefinitionError(message, path=f"{path}.model")
    if not os.path.isfile(child):
        raise SagaDefinitionError(
            f"expected a readable sub-saga file, got {child} (no such file)", path=f"{path}.model"
        )
    return SubSaga(saga=load(child), **fields)


# --- Public entry points ------------------------------------------------------------------------


def build(data: object, *, children: Mapping[str, Saga] | None = None) -> Saga:
    """The saga ``data`` describes, validated; its sub-sagas are read from their files, or
    taken from ``children`` by name (overrides rebuild a saga without reading files again)."""
    what = "a mapping with keys 'saga' and 'steps'"
    token = _KNOWN.set(dict(children or {}))
    try:
        fields = read_fields(data, "", SAGA, what, saga="a saga name", steps="a list of steps")
    finally:
        _KNOWN.reset(token)
    isolation = fields.pop("isolation_by_name", None)
    if isolation is not None:
        fields["resources"] = with_isolation(fields.get("resources", ()), isolation)
    saga = Saga(**fields)
    validate_model(saga)
    return saga


def from_dict(
    data: object,
    *,
    file: str | None = None,
    lines: Mapping[str, int] | None = None,
    base: str | os.PathLike[str] | None = None,
) -> Saga:
    """Check plain data in the YAML format and build the :class:`Saga` it describes.

    ``file`` and ``lines`` (model path -> line, as :func:`parse_yaml` returns) serve the errors;
    a sub-saga's ``model`` is read relative to ``base`` (default: the folder of ``file`` if it
    is a real file, else the current folder).

    Examples
    --------
    >>> from_dict({"saga": "s", "steps": [{"name": "a", "timeout": "1.5s"}]}).steps[0].timeout_ms
    1500.0
    >>> from_dict({"saga": "s", "steps": [{"name": "a", "failur": 0.1}]})
    Traceback (most recent call last):
    ...
    sagasim.exceptions.SagaDefinitionError: steps[0]: unknown key 'failur' (...'failure'?)
    """
    _outer, chain = _READING.get()
    if base is None:
        base = os.path.dirname(file) or "." if file is not None and os.path.isfile(file) else "."
    if file is not None and os.path.isfile(file):
        chain = (*chain, (os.path.realpath(file), file))
    token = _READING.set((os.fspath(base), chain))
    try:
        return build(data)
    except SagaDefinitionError as err:
        if err.file is not None:  # raised while reading a sub-saga's own file: it says where
            raise
        at = _join(err.path, err.key) if isinstance(err, UnknownKey) else err.path
        line = None if lines is None else _yaml.line_of(lines, at)
        raise SagaDefinitionError(err.message, path=err.path, file=file, line=line) from None
    finally:
        _READING.reset(token)


def loads(text: str, *, file: str = "<string>", base: str | os.PathLike[str] | None = None) -> Saga:
    """Build a :class:`Saga` from YAML text; ``file`` names it in error messages, and sub-saga
    files are read relative to ``base`` (default: the folder of ``file``, or the current one).

    Examples
    --------
    >>> loads("saga: s\\ndescription: yes\\nsteps: [{name: a}]\\n").description
    'yes'
    """
    data, lines = parse_yaml(text, file=file)
    if data is None:
        message = "expected a mapping with keys 'saga' and 'steps', got an empty document"
        raise SagaDefinitionError(message, file=file, line=1)
    return from_dict(data, file=file, lines=lines, base=base)


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
    return write_fields(saga, SAGA)


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
