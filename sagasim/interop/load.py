"""Sagas from the engines that run them: the front door of import.

:func:`load_any` reads a sagasim model, an AWS Step Functions definition (read by
:mod:`sagasim.interop.asl`) or a Seata saga state machine (read by
:mod:`sagasim.interop.seata`), telling them apart by their content (:func:`detect_format`)
unless told. Neither engine's file holds latencies or
failure rates, so an imported saga has the defaults, and :func:`to_yaml_with_comments` writes it as
a model that says where the measured figures go.

Examples
--------
>>> from sagasim.interop import from_asl, structural, to_asl
>>> from sagasim.io.dsl import saga, step
>>> trip = saga("trip", step("book_flight", compensation="cancel_flight"),
...             step("pay", kind="pivot"))
>>> definition = to_asl(trip)
>>> detect_format(definition)
'asl'
>>> definition["States"]["Pay"]["Catch"][0]["Next"], definition["States"]["CancelFlight"]["Next"]
('CancelFlight', 'Compensated')
>>> from_asl(definition, name="trip") == structural(trip) == trip
True
>>> print(to_yaml_with_comments(trip, "trip.asl.json"), end="")  # doctest: +ELLIPSIS
# sagasim model imported from trip.asl.json.
...
steps:
# book_flight: measured latency/failure go here (latency, failure, reject; also for cancel_flight)
- {name: book_flight, compensation: cancel_flight}
# pay: measured latency/failure go here (latency, failure, reject)
- {name: pay, kind: pivot}
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Sequence
from typing import Any, Literal

from ..exceptions import SagaDefinitionError, UsageError
from ..io import format as io
from ..io import yaml as _yaml
from ..io.values import expected
from ..model.saga import Saga, SubSaga
from .asl import from_asl
from .common import snake_case
from .designer import is_designer, to_engine
from .seata import from_seata

__all__ = ["FORMATS", "detect_format", "load_any", "to_yaml_with_comments"]

Format = Literal["sagasim", "asl", "seata"]
#: What :func:`load_any` reads: a sagasim model, a Step Functions definition, a Seata saga.
FORMATS: tuple[Format, ...] = ("sagasim", "asl", "seata")
#: State types only Seata has (it shares Choice, Succeed and Fail with Step Functions).
SEATA_TYPES = frozenset(
    {"ServiceTask", "ScriptTask", "CompensationTrigger", "SubStateMachine", "CompensateSubMachine"}
)
_KINDS = (
    "a sagasim model (with 'saga' and 'steps'), a Step Functions definition (with 'StartAt' and"
    " 'States') or a Seata state machine (with 'StartState' and 'States')"
)


# --- Reading -------------------------------------------------------------------------------------


def detect_format(data: object) -> Format | None:
    """Which format plain data is in, from its keys and state types; None if none.

    Examples
    --------
    >>> detect_format({"saga": "s", "steps": []})
    'sagasim'
    >>> detect_format({"StartState": "Pay", "States": {"Pay": {"Type": "ServiceTask"}}})
    'seata'
    >>> detect_format({"StartAt": "Pay", "States": {"Pay": {"Type": "Task", "End": True}}})
    'asl'
    >>> detect_format({"steps": []}) is None
    True
    """
    if not isinstance(data, dict):
        return None
    if "saga" in data:
        return "sagasim"
    if is_designer(data):
        return "seata"
    states = data.get("States")
    if not isinstance(states, dict):
        return None
    types = {state.get("Type") for state in states.values() if isinstance(state, dict)}
    if "StartState" in data or types & SEATA_TYPES:
        return "seata"
    return "asl" if "StartAt" in data else None


def _parse(text: str, file: str) -> tuple[Any, dict[str, int] | None]:
    """Plain data and the line of each path: JSON for ``.json`` files, YAML otherwise."""
    if not file.lower().endswith(".json"):
        return _yaml.parse(text, file)
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        message = f"expected JSON, got a syntax error at column {err.colno}: {err.msg}"
        raise SagaDefinitionError(message, file=file, line=err.lineno) from None
    try:  # JSON is YAML (tabs aside), and the YAML reader knows the line of every path
        return data, _yaml.parse(text.replace("\t", " "), file)[1]
    except SagaDefinitionError:
        return data, None


def load_any(
    path: str | os.PathLike[str],
    format: str | None = None,
    *,
    lookup: Sequence[str | os.PathLike[str]] = (),
    assumed: list[str] | None = None,
) -> Saga:
    """The saga in a sagasim model, a Step Functions definition or a Seata saga state machine
    (engine or designer JSON).

    ``.json`` files are read as JSON, others as YAML (which also reads JSON, and definitions
    kept in YAML). ``format`` (one of :data:`FORMATS`) skips :func:`detect_format`. A Step
    Functions definition has no name: the saga takes the file's, up to its first dot. Sub-machines
    are found by name in the file's folder, then in the ``lookup`` folders; what an import had to
    assume is appended to ``assumed``.

    Examples
    --------
    >>> load_any("models/travel_booking.yaml").name
    'travel_booking'
    >>> load_any("models/travel_booking.yaml", format="asl")
    Traceback (most recent call last):
    ...
    sagasim.exceptions.SagaDefinitionError: models/travel_booking.yaml:1: States: expected a ...
    """
    if format is not None and format not in FORMATS:
        raise UsageError(f"unknown format {format!r} (expected one of: {', '.join(FORMATS)})")
    file = os.fsdecode(path)
    folders = [os.path.dirname(file) or ".", *map(os.fsdecode, lookup)]
    return _Machines(folders, [] if assumed is None else assumed).load(file, format, ())


class _Machines:
    """Reads definitions, and finds the sub-machines they call by name in ``folders``."""

    def __init__(self, folders: list[str], assumed: list[str]) -> None:
        self.folders = folders
        self.assumed = assumed
        self.index: dict[str, list[tuple[int, tuple[int, ...], str]]] | None = None

    def load(self, file: str, format: str | None, calling: tuple[str, ...]) -> Saga:
        data, lines = _parse(_yaml.read_text(file), file)
        found = format or detect_format(data)
        if found is None and not file.endswith(".json"):
            found = "sagasim"  # a YAML file that is no other engine's: the model format's errors
        if found == "sagasim":
            return io.from_dict(data, file=file, lines=lines)
        if found in ("asl", "seata"):
            if found == "seata" and is_designer(data):
                data, lines = to_engine(data, file=file), None

            def lookup(name: str, at: str) -> SubSaga:
                try:
                    return self.sub_saga(name, at, (*calling, file))
                except SagaDefinitionError as err:
                    if err.file is not None:
                        raise
                    raise SagaDefinitionError(err.message, path=at) from None

            read = from_asl if found == "asl" else from_seata
            self.assumed.append(
                f"{os.path.basename(file)}: no latencies or failure rates in the file: every "
                "action fails 0 and takes 0ms (set with --set NAME.failure=P, NAME.latency=..., "
                "or --rates FILE)"
            )
            return read(data, file=file, lines=lines, lookup=lookup, assumed=self.assumed)
        message = expected(_KINDS, data, "").message
        if data is None:
            message = f"expected {_KINDS}, got an empty document"
        elif isinstance(data, dict):
            keys = ", ".join(repr(str(key)) for key in list(data)[:5])
            message = f"expected {_KINDS}, got a mapping with keys {keys}"
        raise SagaDefinitionError(message, file=file, line=1)

    def sub_saga(self, name: str, at: str, calling: tuple[str, ...]) -> SubSaga:
        found = self.machines().get(snake_case(name), [])
        where = " or ".join(dict.fromkeys(self.folders))
        if not found:
            raise SagaDefinitionError(
                f"expected a state machine named {name!r} in {where}, got none (give its "
                "folder with --lookup DIR)"
            )
        # the nearest folder first; in it, the latest Version (as Seata's repository takes it)
        nearest = min(folder for folder, _, _ in found)
        mine = sorted((v, f) for folder, v, f in found if folder == nearest)
        latest = [f for v, f in mine if v == mine[-1][0]]
        if len(latest) > 1:
            raise SagaDefinitionError(
                f"expected one state machine named {name!r}, got {len(latest)}: "
                f"{', '.join(latest)} (keep one, give them different Versions, or pick the "
                "folder with --lookup DIR)"
            )
        file = latest[0]
        real = [os.path.realpath(f) for f in calling]
        if os.path.realpath(file) in real:
            cycle = " → ".join([*calling[real.index(os.path.realpath(file)) :], file])
            raise SagaDefinitionError(
                f"expected a sub-machine that does not call itself, got the cycle {cycle}"
            )
        child = self.load(file, None, calling)
        return SubSaga(name=snake_case(name), model=f"{child.name}.yaml", saga=child)

    def machines(self) -> dict[str, list[tuple[int, tuple[int, ...], str]]]:
        """Every definition in the folders, by the name a caller gives it in snake_case (a
        Seata machine's ``Name``, a Step Functions file's name up to its first dot), with the
        folder's place and the ``Version``."""
        if self.index is None:
            self.index = {}
            seen: set[str] = set()
            for place, folder in enumerate(dict.fromkeys(self.folders)):
                for entry in sorted(os.listdir(folder)) if os.path.isdir(folder) else []:
                    file = os.path.join(folder, entry)
                    if not entry.endswith(".json") or os.path.realpath(file) in seen:
                        continue
                    seen.add(os.path.realpath(file))
                    for name, version in _names_of(file):
                        self.index.setdefault(snake_case(name), []).append((place, version, file))
        return self.index


def _names_of(file: str) -> list[tuple[str, tuple[int, ...]]]:
    """The name (and Version) a file's machine is called by; none for other files."""
    try:
        with open(file, encoding="utf-8") as f:
            data = json.load(f)
    except (OSError, ValueError):
        return []
    if not isinstance(data, dict):
        return []
    if is_designer(data):
        nodes = [n for n in data.get("nodes", []) if isinstance(n, dict)]
        start = [n for n in nodes if n.get("stateType") == "Start"]
        props = start[0].get("stateProps") if start else None
        data = props.get("StateMachine") if isinstance(props, dict) else None
        if not isinstance(data, dict):
            return []
    else:
        found = detect_format(data)
        if found == "asl":
            return [(os.path.basename(file).split(".")[0], ())]
        if found != "seata":
            return []
    title, version = data.get("Name"), str(data.get("Version", ""))
    numbers = tuple(int(n) for n in re.findall(r"\d+", version))
    return [(title, numbers)] if isinstance(title, str) else []


def to_yaml_with_comments(saga: Saga, source: str) -> str:
    """The saga as model YAML (:func:`sagasim.io.dumps`) with a header naming ``source`` (where
    it came from, e.g. the file imported) and, above each step, a comment saying that measured
    latency and failure rates go there: an imported saga has only the defaults.

    :func:`sagasim.io.loads` reads the text back to ``saga``.
    """
    undo = {s.name: s.compensation.name for s in saga.all_steps() if s.compensation is not None}
    lines = [
        f"# sagasim model imported from {source}.",
        "# The steps, compensations, retries and timeouts come from there; latencies and failure",
        "# rates do not, so every action has the defaults (latency constant 0ms, failure 0,",
        "# reject 0). Put measured figures where each step says, e.g. latency: {dist: lognormal,",
        "# median: 40ms, p99: 250ms}, failure: 0.01; or try some with --set STEP.failure=0.01.",
    ]
    in_steps = False
    for line in io.dumps(saga).splitlines():
        in_steps = line == "steps:" or (in_steps and line[:1] in (" ", "-"))
        match = _STEP_LINE.match(line) if in_steps else None
        if match:
            name = match["name"]
            also = f"; also for {undo[name]}" if name in undo else ""
            what = f"measured latency/failure go here (latency, failure, reject{also})"
            lines.append(f"{match['indent']}# {name}: {what}")
        lines.append(line)
    return "\n".join(lines) + "\n"


#: The first line of a step in :func:`sagasim.io.dumps`: ``- name: x``, ``- - {name: x, ...}``.
_STEP_LINE = re.compile(r"(?P<indent> *)(?:- )+\{?name: '?(?P<name>\w+)")
