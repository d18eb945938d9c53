"""Sagas from the engines that run them, and back: the front door of import and export.

:func:`load_any` reads a sagasim model, an AWS Step Functions definition (read by
:mod:`sagasim.asl`) or a Seata saga state machine (read by :mod:`sagasim.seata`), telling them apart
by their content (:func:`detect_format`) unless told. Neither engine's file holds latencies or
failure rates, so an imported saga has the defaults, and :func:`to_yaml_with_comments` writes it as
a model that says where the measured figures go.

:func:`to_asl` writes a saga as a Step Functions definition in the shape :func:`from_asl` reads;
:func:`structural` is what that definition carries, so ``from_asl(to_asl(saga))`` equals
``structural(saga)`` whenever :func:`to_asl` can write the saga.

Examples
--------
>>> from sagasim.dsl import saga, step
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
import math
import os
import re
from dataclasses import replace
from decimal import Decimal
from typing import Any, Literal, TypeVar

from . import _yaml, io
from .asl import MAX_ATTEMPTS, from_asl, snake_case
from .exceptions import SagaDefinitionError, UsageError
from .io import _fail
from .latency import Constant
from .model import Action, Compensation, Entry, Parallel, Retry, Saga, Step
from .seata import from_seata

__all__ = ["FORMATS", "detect_format", "from_asl", "from_seata", "load_any", "structural"]
__all__ += ["to_asl", "to_yaml_with_comments"]

Format = Literal["sagasim", "asl", "seata"]
#: What :func:`load_any` reads: a sagasim model, a Step Functions definition, a Seata saga.
FORMATS: tuple[Format, ...] = ("sagasim", "asl", "seata")
#: What exported ``Task`` states invoke: the Lambda function named after the action.
LAMBDA_INVOKE = "arn:aws:states:::lambda:invoke"
#: State types only Seata has (it shares Choice, Succeed and Fail with Step Functions).
SEATA_TYPES = frozenset(
    {"ServiceTask", "ScriptTask", "CompensationTrigger", "SubStateMachine", "CompensateSubMachine"}
)
_KINDS = (
    "a sagasim model (with 'saga' and 'steps'), a Step Functions definition (with 'StartAt' and"
    " 'States') or a Seata state machine (with 'StartState' and 'States')"
)
A = TypeVar("A", bound=Action)


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


def load_any(path: str | os.PathLike[str], format: str | None = None) -> Saga:
    """The saga in a sagasim model, a Step Functions definition or a Seata saga state machine.

    ``.json`` files are read as JSON, others as YAML (which also reads JSON, and definitions
    kept in YAML). ``format`` (one of :data:`FORMATS`) skips :func:`detect_format`. A Step
    Functions definition has no name: the saga takes the file's, up to its first dot.

    Examples
    --------
    >>> load_any("models/travel_booking.yaml").name
    'travel_booking'
    >>> load_any("models/travel_booking.yaml", format="asl")
    Traceback (most recent call last):
    ...
    sagasim.exceptions.SagaDefinitionError: models/travel_booking.yaml:1: States: expected a ...
    """
    file = os.fsdecode(path)
    if format is not None and format not in FORMATS:
        raise UsageError(f"unknown format {format!r} (expected one of: {', '.join(FORMATS)})")
    data, lines = _parse(_yaml.read_text(path), file)
    found = format or detect_format(data)
    if found is None and not file.endswith(".json"):
        found = "sagasim"  # a YAML file that is no other engine's: the model format's own errors
    if found == "sagasim":
        return io.from_dict(data, file=file, lines=lines)
    if found == "asl":
        return from_asl(data, file=file, lines=lines)
    if found == "seata":
        return from_seata(data, file=file, lines=lines)
    message = _fail(_KINDS, data, "").message
    if data is None:
        message = f"expected {_KINDS}, got an empty document"
    elif isinstance(data, dict):
        keys = ", ".join(repr(str(key)) for key in list(data)[:5])
        message = f"expected {_KINDS}, got a mapping with keys {keys}"
    raise SagaDefinitionError(message, file=file, line=1)


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


# --- Writing Step Functions definitions ----------------------------------------------------------


def pascal_case(name: str) -> str:
    """The state name :func:`to_asl` gives an action: one :func:`~sagasim.asl.snake_case` turns
    back into the action's name.

    >>> pascal_case("reserve_flight"), pascal_case("step_2")
    ('ReserveFlight', 'step_2')
    """
    pascal = "".join(word[:1].upper() + word[1:] for word in name.split("_"))
    return pascal if snake_case(pascal) == name else name


def _seconds(ms: float) -> int:
    """Milliseconds as the whole seconds ASL takes, rounded up, at least 1."""
    return max(1, math.ceil(Decimal(repr(ms)) / 1000))


def _retrier(retry: Retry) -> dict[str, Any]:
    retries = MAX_ATTEMPTS if retry.attempts is None else min(retry.attempts - 1, MAX_ATTEMPTS)
    rule: dict[str, Any] = {
        "ErrorEquals": ["States.ALL"],
        "MaxAttempts": retries,
        "IntervalSeconds": _seconds(retry.delay_ms),
        "BackoffRate": retry.multiplier if retry.backoff == "exponential" else 1.0,
    }
    if retry.max_delay_ms is not None:
        rule["MaxDelaySeconds"] = _seconds(retry.max_delay_ms)
    if retry.jitter:
        rule["JitterStrategy"] = "FULL"
    return rule


def _catchers(target: str) -> list[dict[str, Any]]:
    return [{"ErrorEquals": ["States.ALL"], "ResultPath": "$.error", "Next": target}]


def _task(action: Action, *, comment: str, catch: str | None, then: str | None) -> dict[str, Any]:
    state: dict[str, Any] = {"Type": "Task"}
    if comment:
        state["Comment"] = comment
    state["Resource"] = LAMBDA_INVOKE
    state["Parameters"] = {"FunctionName": action.name, "Payload.$": "$"}
    state["ResultPath"] = f"$.{action.name}"
    if action.timeout_ms is not None:
        state["TimeoutSeconds"] = _seconds(action.timeout_ms)
    if action.retry.attempts != 1:
        state["Retry"] = [_retrier(action.retry)]
    if catch is not None:
        state["Catch"] = _catchers(catch)
    return state | ({"Next": then} if then is not None else {"End": True})


def _comment(step: Step, dropped: bool) -> str:
    words = []
    if step.kind_declared == "pivot":
        words.append("pivot: the go/no-go point, after it the saga only moves forward")
    if step.kind_declared == "retriable":
        words.append("retriable: retried until it succeeds")
    if not step.effects:
        words.append("read-only: nothing to undo")
    if dropped and step.compensation is not None:
        words.append(
            f"its compensation {step.compensation.name} is left out: no failure leads to it"
        )
    return "; ".join(words)


class _Writer:
    def __init__(self, saga: Saga) -> None:
        self.taken: set[str] = set()
        self.state = {a.name: self.unique(pascal_case(a.name)) for a in saga.actions()}
        self.states: dict[str, Any] = {}

    def unique(self, name: str) -> str:
        taken, count = name, 1
        while taken in self.taken:
            count += 1
            taken = f"{name}{count}"
        self.taken.add(taken)
        return taken

    def step(self, step: Step, catch: str | None, then: str | None, keep: bool) -> dict[str, Any]:
        comment = _comment(step, dropped=not keep)
        return _task(step, comment=comment, catch=catch, then=then)

    def group(
        self, group: Parallel, name: str, head: str, *, catch: str | None, then: str, keep: bool
    ) -> str:
        """Write a group's Parallel state (and what undoes it); return the new head of the chain.

        ``keep``: a later failure undoes the group, so the compensation of each branch's last
        step has a place (the others have theirs in the branch's own chain, after the pivot none).
        """
        branches: list[dict[str, Any]] = []
        undo: list[list[tuple[Compensation, str, str]]] = []  # per branch: what, whose, state
        for b, branch in enumerate(group.branches):
            states: dict[str, Any] = {}
            inner: str | None = None  # the head of the branch's own chain
            undo.append([])
            for k, step in enumerate(branch):
                last = k == len(branch) - 1
                kept = catch is not None and (keep or not last)
                following = None if last else self.state[branch[k + 1].name]
                states[self.state[step.name]] = self.step(step, inner, following, kept)
                comp = step.compensation
                if comp is None or not kept:
                    continue
                plain = self.state[comp.name]
                undo[b].append(
                    (comp, step.name, plain if last else self.unique(f"{plain}After{name}"))
                )
                if not last:
                    fail = self.unique(f"{name}Branch{b + 1}Failed") if inner is None else None
                    if fail is not None:
                        states[fail] = {"Type": "Fail", "Error": "BranchCompensated"}
                    comment = f"undoes {step.name}"
                    states[plain] = _task(comp, comment=comment, catch=None, then=inner or fail)
                    inner = plain
            branches.append({"StartAt": self.state[branch[0].name], "States": states})
        state: dict[str, Any] = {
            "Type": "Parallel",
            "Branches": branches,
            "ResultPath": f"$.{name}",
        }
        if catch is not None:
            state["Catch"] = _catchers(catch)
        self.states[name] = state | {"Next": then}
        if not keep or not any(undo):
            return head
        undo_name, undo_branches = self.unique(f"Undo{name}"), []
        for b, chain in enumerate(undo):
            chain = chain[::-1]
            states = {}
            for j, (comp, undoes, state_name) in enumerate(chain):
                following = chain[j + 1][2] if j + 1 < len(chain) else None
                comment = f"undoes {undoes}"
                states[state_name] = _task(comp, comment=comment, catch=None, then=following)
            if not chain:
                states[self.unique(f"{undo_name}Branch{b + 1}Nothing")] = {
                    "Type": "Pass",
                    "End": True,
                }
            undo_branches.append({"StartAt": next(iter(states)), "States": states})
        self.states[undo_name] = {
            "Type": "Parallel",
            "Comment": f"undoes {name}",
            "Branches": undo_branches,
            "ResultPath": None,
            "Next": head,
        }
        return undo_name


def to_asl(saga: Saga) -> dict[str, Any]:
    """The saga as a Step Functions definition, in the shape :func:`from_asl` reads.

    Each action is a ``Task`` invoking the Lambda function of its name (``FunctionName``);
    compensations chain through ``Catch`` and ``Next`` to a ``Fail`` state; retry policies and
    timeouts become ``Retry`` (on ``States.ALL``: narrow ``ErrorEquals`` so that rejections are
    not retried) and ``TimeoutSeconds``, in whole seconds rounded up; parallel groups become
    ``Parallel`` states; kinds go in ``Comment``. A compensation no failure can reach (that of a
    step after the pivot, or of the last step) has no place in the chain: its step's ``Comment``
    says it was left out. Latencies, rates, services, ``idempotent`` and ``rejects_late`` have
    no place in ASL. Choreography and ``compensation_order: parallel`` cannot be written.

    Examples
    --------
    >>> from sagasim.dsl import saga, step
    >>> definition = to_asl(saga("s", step("hold", compensation="release"), step("pay")))
    >>> definition["States"]["Pay"]["Catch"][0]["Next"], definition["States"]["Release"]["Next"]
    ('Release', 'Compensated')
    """
    if saga.coordination != "orchestration":
        message = "expected orchestration, got choreography (Step Functions is an orchestrator)"
        raise SagaDefinitionError(message, path="coordination")
    if saga.compensation_order != "reverse":
        message = "expected reverse, got parallel (a Catch chain undoes one step after another)"
        raise SagaDefinitionError(message, path="compensation_order")
    writer = _Writer(saga)
    fail, succeed = writer.unique("Compensated"), writer.unique("Committed")
    pivot = saga.pivot_index
    last = len(saga.steps) - 1 if pivot is None else pivot
    names = [
        writer.state[e.name] if isinstance(e, Step) else writer.unique(f"Parallel{i + 1}")
        for i, e in enumerate(saga.steps)
    ]
    head = fail
    for index, entry in enumerate(saga.steps):
        then = names[index + 1] if index + 1 < len(names) else succeed
        catch = head if index <= last else None
        keep = index < last
        if isinstance(entry, Parallel):
            head = writer.group(entry, names[index], head, catch=catch, then=then, keep=keep)
            continue
        writer.states[names[index]] = writer.step(entry, catch, then, keep)
        comp = entry.compensation
        if comp is not None and keep:
            comment = f"undoes {entry.name}"
            writer.states[writer.state[comp.name]] = _task(
                comp, comment=comment, catch=None, then=head
            )
            head = writer.state[comp.name]
    writer.states[fail] = {"Type": "Fail", "Error": "SagaCompensated"}
    writer.states[succeed] = {"Type": "Succeed"}
    description = {"Comment": saga.description} if saga.description else {}
    return {**description, "StartAt": names[0], "States": writer.states}


def _carried(action: A) -> A:
    retry = action.retry
    if retry.attempts == 1:
        retry = Retry()
    else:
        exponential = retry.backoff == "exponential" and retry.multiplier != 1
        retry = Retry(
            attempts=None
            if retry.attempts is None or retry.attempts > MAX_ATTEMPTS
            else retry.attempts,
            backoff="exponential" if exponential else "fixed",
            multiplier=retry.multiplier if exponential else 2.0,
            delay_ms=1000.0 * _seconds(retry.delay_ms),
            max_delay_ms=None
            if retry.max_delay_ms is None
            else 1000.0 * _seconds(retry.max_delay_ms),
            jitter=retry.jitter,
        )
    timeout = None if action.timeout_ms is None else 1000.0 * _seconds(action.timeout_ms)
    return replace(
        action,
        service=None,
        latency=Constant(),
        failure=0.0,
        reject=0.0,
        timeout_ms=timeout,
        retry=retry,
        idempotent=False,
        rejects_late=False,
    )


def structural(saga: Saga) -> Saga:
    """What of ``saga`` a Step Functions definition carries: ``from_asl(to_asl(saga))``.

    Compared, so kept: the name and description, the steps in order with their kinds (pivot,
    retriable, read-only), parallel groups and their branches, which compensation undoes which
    step, and every retry policy and timeout. Reset to the defaults, having no place in ASL:
    latencies, ``failure``, ``reject``, ``service``, ``idempotent``, ``rejects_late``, the
    services and the arrivals. Rounded up to whole seconds (at least 1), as ASL counts them:
    timeouts, retry delays and ``max_delay``. Dropped, as no failure leads to them in a ``Catch``
    chain: the compensation of a step with no entry after it up to the pivot (those of the pivot,
    of the steps after it, and of the last entry of a saga without one), unless the step is in a
    parallel group before the pivot and a later step of its branch can fail.

    Examples
    --------
    >>> from sagasim.dsl import saga, step, retry
    >>> s = structural(saga("s", step("a", failure=0.1, retry=retry(3, delay="200ms")), step("b")))
    >>> s.steps[0].failure, s.steps[0].retry.delay_ms
    (0.0, 1000.0)
    """
    pivot = saga.pivot_index
    last = len(saga.steps) - 1 if pivot is None else pivot

    def carried(step: Step, keep: bool) -> Step:
        comp = step.compensation if keep and step.compensation is not None else None
        return replace(_carried(step), compensation=comp and _carried(comp))

    entries: list[Entry] = []
    for index, entry in enumerate(saga.steps):
        if isinstance(entry, Step):
            entries.append(carried(entry, index < last))
            continue
        branches = tuple(
            tuple(
                carried(step, index <= last and (k < len(branch) - 1 or index < last))
                for k, step in enumerate(branch)
            )
            for branch in entry.branches
        )
        entries.append(Parallel(branches=branches))
    return replace(saga, steps=tuple(entries), services=(), arrivals=None)
