"""Read Seata saga state machines (Seata's JSON state language) as sagas.

Seata's saga engine runs a state machine written in JSON, in a language modelled on Step
Functions'. :func:`from_seata` reads its usual shape:

* the ``ServiceTask`` states on the path from ``StartState`` are the steps, named after their
  states in snake_case; ``ServiceName`` is the step's service;
* ``CompensateState`` names the ``ServiceTask`` that undoes the step (its ``ServiceName`` is the
  compensation's service where it differs from the step's);
* one ``Retry`` rule is the retry policy, as Seata documents it: attempts are ``MaxAttempts + 1``
  (it counts retries), ``IntervalSeconds`` the delay, ``BackoffRate`` the multiplier of
  exponential backoff (1, or none: fixed). ``Exceptions`` is not read;
* ``IsForUpdate: false`` declares a read-only step. Seata also takes a step with neither
  ``IsForUpdate`` nor a compensation as read-only; sagasim does not guess, and keeps its effects,
  so that ``check`` reports a step nothing would undo;
* a ``Catch`` leads to a ``CompensationTrigger`` (which undoes the completed steps in reverse
  order, as sagasim does) or to a ``Fail`` state. A failure without one ends the same way:
  Seata's coordinator compensates a failed saga when it rolls the global transaction back;
* a ``Choice`` state whose branches all go to a ``Fail`` or ``CompensationTrigger`` state but one
  is a guard on the result of the step before it: the saga goes on by that one branch, and the
  saga's description says that the others are that step's rejection;
* a ``Comment`` saying ``pivot``, ``retriable`` or ``read-only`` declares the step's kind, as in
  :mod:`sagasim.interop.asl`: Seata has no pivot of its own. After the pivot no ``Catch`` may
  lead to a ``CompensationTrigger``.

Refused, with an error naming the state: ``SubStateMachine``, ``CompensateSubMachine`` and
``ScriptTask`` states, a ``Loop``, a ``Choice`` that branches, a ``Catch`` that leads anywhere
else, states nothing leads to. A compensation retries as its ``Retry`` says: that Seata's
coordinator also retries a failed rollback later is not counted.

Examples
--------
>>> states = {
...     "Reduce": {"Type": "ServiceTask", "ServiceName": "inventory", "Next": "Pay",
...                "CompensateState": "Restore"},
...     "Restore": {"Type": "ServiceTask", "ServiceName": "inventory",
...                 "Retry": [{"MaxAttempts": 3, "IntervalSeconds": 0.5}]},
...     "Pay": {"Type": "ServiceTask", "ServiceName": "payments", "Next": "Done",
...             "Catch": [{"Exceptions": ["java.lang.Throwable"], "Next": "Undo"}]},
...     "Undo": {"Type": "CompensationTrigger", "Next": "Failed"},
...     "Done": {"Type": "Succeed"}, "Failed": {"Type": "Fail"}}
>>> saga = from_seata({"Name": "order", "StartState": "Reduce", "States": states})
>>> [(step.name, step.service, step.kind) for step in saga.steps]
[('reduce', 'inventory', 'compensatable'), ('pay', 'payments', 'uncompensatable')]
>>> saga.steps[0].compensation.retry
Retry(attempts=4, backoff='fixed', delay_ms=500.0, multiplier=2.0, max_delay_ms=None, jitter=False)
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from ..exceptions import SagaDefinitionError
from ..model.saga import Compensation, Saga, Step
from .common import ABSENT, Names, bad, check_valid, comment_flags, located, read_retry, snake_case

__all__ = ["from_seata"]

_READ = ("ServiceTask", "Choice", "CompensationTrigger", "Succeed", "Fail")
_REFUSED = {
    "SubStateMachine": "a nested state machine cannot be expressed in a saga model: import it"
    " on its own",
    "CompensateSubMachine": "it undoes a nested state machine, which a saga model cannot express",
    "ScriptTask": "a script runs inside the engine and calls no participant",
}
_FAILING = ("Fail", "CompensationTrigger")


class _Reader:
    """Reads one state machine; remembers every state it reached and the names it gave."""

    def __init__(self, states: dict[str, dict[str, Any]]) -> None:
        self.states = states
        self.reached: set[str] = set()
        self.names = Names()
        self.places: dict[str, str] = {}
        self.undoes: dict[str, str] = {}
        self.notes: list[str] = []
        self.guards: list[tuple[str, str | None, list[str]]] = []  # choice, step before, ends

    def state(self, name: object, at: str) -> str:
        """``name``, checked to name a state, which counts as reached."""
        if not isinstance(name, str) or name not in self.states:
            raise bad("the name of a state in States", name, at)
        self.reached.add(name)
        return name

    def success_path(self, start: object) -> list[str]:
        """The ``ServiceTask`` states from the start to the end, guards passed by."""
        names: list[str] = []
        seen: set[str] = set()
        name, previous = self.state(start, "StartState"), None
        while True:
            state, path = self.states[name], f"States.{name}"
            if state["Type"] == "Succeed":
                return names
            if state["Type"] in _FAILING or name in seen:
                got = "a loop" if name in seen else f"this {state['Type']} state"
                message = f"expected a success path ending in a Succeed state, got {got}"
                raise SagaDefinitionError(message, path=path)
            seen.add(name)
            if state["Type"] == "Choice":
                name = self.guard(name, previous)
                continue
            names.append(name)
            previous = name
            if state.get("Next") is None:
                return names
            name = self.state(state["Next"], f"{path}.Next")

    def guard(self, name: str, previous: str | None) -> str:
        """The one branch of a guarding ``Choice`` state that goes on."""
        state, path = self.states[name], f"States.{name}"
        choices = state.get("Choices", ABSENT)
        if not isinstance(choices, list) or not all(isinstance(c, dict) for c in choices):
            what = "a list of choices such as {Expression: ..., Next: ...}"
            raise bad(what, choices, f"{path}.Choices")
        targets = [
            self.state(c.get("Next", ABSENT), f"{path}.Choices[{i}].Next")
            for i, c in enumerate(choices)
        ]
        if "Default" in state:
            targets.append(self.state(state["Default"], f"{path}.Default"))
        going = sorted({t for t in targets if self.states[t]["Type"] not in _FAILING})
        failing = sorted({t for t in targets if self.states[t]["Type"] in _FAILING})
        if len(going) != 1:
            message = "expected a guard, whose branches all go to a Fail or CompensationTrigger"
            message += f" state but one, got {len(going)} that go on ({', '.join(going)}):"
            raise SagaDefinitionError(f"{message} branching on data cannot be expressed", path=path)
        self.guards.append((name, previous, failing))
        # The failing branches are the previous step's rejection, whose rate the user measures:
        # the saga model goes on by the one branch left, and the description says so.
        ends = " and ".join(failing)
        note = f"The Choice state {name} is read as a guard: its branches to {ends}"
        if previous is None:
            self.notes.append(f"{note} fail the saga before any step runs (not modelled).")
        else:
            self.notes.append(f"{note} are a rejection of {snake_case(previous)}: set its reject.")
        return going[0]

    def failure_end(self, name: str, at: str, *, after_pivot: str | None = None) -> None:
        """Check where a failure leads: a ``Fail``, or a ``CompensationTrigger`` that ends."""
        kind = self.states[name]["Type"]
        if kind not in _FAILING:
            message = f"expected a CompensationTrigger or Fail state, got the {kind} state {name}"
            raise SagaDefinitionError(f"{message} (a way on after a failure is a branch)", path=at)
        if kind == "CompensationTrigger" and after_pivot:
            message = f"expected no compensation after the pivot {after_pivot} (the saga only"
            raise SagaDefinitionError(f"{message} moves forward there), got {name}", path=at)
        following = self.states[name].get("Next")
        if kind == "CompensationTrigger" and following is not None:
            end = self.state(following, f"States.{name}.Next")
            if self.states[end]["Type"] not in ("Fail", "Succeed"):
                message = "expected a Fail or Succeed state after compensation, got the"
                message += f" {self.states[end]['Type']} state {end}"
                raise SagaDefinitionError(message, path=f"States.{name}.Next")

    def step(self, name: str, index: int, path_names: list[str], pivot: str | None) -> Step:
        state, path = self.states[name], f"States.{name}"
        self.places[f"steps[{index}]"] = path
        if "Loop" in state:
            message = "expected no Loop, got one (a step run once per item of a collection"
            raise SagaDefinitionError(f"{message} cannot be expressed in a saga model)", path=path)
        catchers = state.get("Catch", [])
        if not isinstance(catchers, list) or not all(isinstance(c, dict) for c in catchers):
            raise bad("a list of catchers such as {Next: StateName}", catchers, f"{path}.Catch")
        after = pivot if pivot is not None and path_names.index(pivot) < index else None
        for i, catcher in enumerate(catchers):
            at = f"{path}.Catch[{i}].Next"
            self.failure_end(self.state(catcher.get("Next", ABSENT), at), at, after_pivot=after)
        flags = comment_flags(state, path)
        step_name = self.names.take(name, path)
        compensation = None
        if "CompensateState" in state:
            compensation = self.compensation(name, state, path_names)
            self.places[f"steps[{index}].compensation"] = f"States.{state['CompensateState']}"
        for_update = state.get("IsForUpdate", True)
        if not isinstance(for_update, bool):
            raise bad("true or false", for_update, f"{path}.IsForUpdate")
        kind: Literal["pivot", "retriable"] | None = "pivot" if name == pivot else None
        if kind is None and "retriable" in flags:
            kind = "retriable"
        return Step(
            name=step_name,
            kind_declared=kind,
            effects=for_update and "read_only" not in flags,
            compensation=compensation,
            **_action(state, path),
        )

    def compensation(self, step: str, state: Mapping[str, Any], steps: list[str]) -> Compensation:
        at = f"States.{step}.CompensateState"
        name = self.state(state["CompensateState"], at)
        undo, path = self.states[name], f"States.{name}"
        if undo["Type"] != "ServiceTask" or name in steps or name in self.undoes:
            got = f"the {undo['Type']} state {name}"
            got += f", which undoes {self.undoes[name]}" if name in self.undoes else ""
            got += ", a step of the saga" if name in steps else ""
            raise SagaDefinitionError(f"expected a ServiceTask of its own, got {got}", path=at)
        self.undoes[name] = step
        fields = _action(undo, path)
        if fields.get("service") == state.get("ServiceName"):
            fields.pop("service", None)
        return Compensation(name=self.names.take(name, path), **fields)

    def pivot(self, names: list[str]) -> str | None:
        pivots = [n for n in names if "pivot" in comment_flags(self.states[n], f"States.{n}")]
        if len(pivots) > 1:
            message = f"expected at most one pivot, got a second one (first: {pivots[0]})"
            raise SagaDefinitionError(message, path=f"States.{pivots[1]}.Comment")
        return pivots[0] if pivots else None


def _action(state: Mapping[str, Any], path: str) -> dict[str, Any]:
    """The service and retry policy of a ``ServiceTask`` state, as model fields."""
    fields: dict[str, Any] = {}
    if "ServiceName" in state:
        service = state["ServiceName"]
        if not isinstance(service, str) or not service:
            raise bad("a non-empty name", service, f"{path}.ServiceName")
        fields["service"] = service
    if "Retry" in state:
        # Seata's docs make each interval BackoffRate times the last (read here); its engine grows
        # the interval linearly after the first retry instead. The first two delays agree.
        fields["retry"] = read_retry(
            state["Retry"], f"{path}.Retry", retries=None, interval_s=0, rate=1, asl=False
        )
    return fields


def _checked(data: object) -> tuple[dict[str, dict[str, Any]], object]:
    """The states of a state machine, each of a type that is read, and its start."""
    if not isinstance(data, dict):
        raise bad("a Seata state machine (a mapping with StartState and States)", data, "")
    states = data.get("States", ABSENT)
    if not isinstance(states, dict) or not states:
        raise bad("a mapping from state names to states", states, "States")
    for name, state in states.items():
        path = f"States.{name}"
        if not isinstance(state, dict) or not isinstance(state.get("Type"), str):
            raise bad("a state with a Type", state, path)
        kind = state["Type"]
        if kind not in _READ:
            why = _REFUSED.get(kind, "not a state type of Seata's state language")
            message = "expected ServiceTask, Choice, CompensationTrigger, Succeed or Fail states,"
            raise SagaDefinitionError(f"{message} got a {kind} state ({why})", path=path)
    return states, data.get("StartState", data.get("StartAt", ABSENT))


def from_seata(
    data: object,
    *,
    name: str | None = None,
    file: str | None = None,
    lines: Mapping[str, int] | None = None,
) -> Saga:
    """The saga a Seata state machine describes (see the module's docstring).

    The saga is named ``name``, else the state machine's ``Name``; its description is the
    ``Comment``, followed by a note for each guard read. ``file`` and ``lines`` (path -> line,
    as :func:`sagasim.io.parse_yaml` gives) serve the errors.

    Examples
    --------
    >>> states = {"Call": {"Type": "SubStateMachine", "StateMachineName": "inner"}}
    >>> from_seata({"Name": "outer", "StartState": "Call", "States": states}, file="o.json")
    Traceback (most recent call last):
    ...
    sagasim.exceptions.SagaDefinitionError: o.json: States.Call: expected ServiceTask, Choice, ...
    """
    try:
        states, start = _checked(data)
        assert isinstance(data, dict)
        reader = _Reader(states)
        names = reader.success_path(start)
        if not names:
            message = "expected a ServiceTask on the path from StartState, got none"
            raise SagaDefinitionError(message, path="StartState")
        pivot = reader.pivot(names)
        steps = tuple(reader.step(n, k, names, pivot) for k, n in enumerate(names))
        for choice, previous, ends in reader.guards:
            late = pivot is not None and previous in names[names.index(pivot) + 1 :]
            for end in ends:
                reader.failure_end(end, f"States.{choice}", after_pivot=pivot if late else None)
        for state_name in states:
            if state_name not in reader.reached:
                message = "expected a state reachable from StartState, got one nothing leads to"
                raise SagaDefinitionError(message, path=f"States.{state_name}")
        title, comment = data.get("Name", "imported"), data.get("Comment", "")
        if not isinstance(title, str) or not title:
            raise bad("a non-empty name", title, "Name")
        if not isinstance(comment, str):
            raise bad("a text", comment, "Comment")
        description = " ".join(part for part in (comment, *reader.notes) if part)
        saga = Saga(name=name or title, description=description, steps=steps)
        return check_valid(saga, reader.places)
    except SagaDefinitionError as err:
        raise located(err, file, lines) from None
