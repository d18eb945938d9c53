"""Read AWS Step Functions definitions (Amazon States Language, ASL) as sagas.

:func:`from_asl` reads the usual shape of a saga in Step Functions:

* the success path runs from ``StartAt`` through ``Task`` and ``Parallel`` states to a ``Succeed``
  state (or ``End: true``); each ``Task`` is a step named after its state in snake_case
  (``ReserveFlight`` -> ``reserve_flight``), each ``Parallel`` a parallel group; ``Pass`` states
  are skipped;
* a step's ``Catch`` leads to the compensation of the step completed *before* it, which ``Next``\\ s
  to the one before that, and so on to a ``Fail`` state; the first step's ``Catch`` goes straight
  to ``Fail``. Where step k+1's chain is one state longer than step k's, that state undoes step k.
  Branches read the same way; what undoes a whole group is a ``Parallel`` state with one branch
  per branch (a ``Pass`` state where a branch has nothing to undo);
* one ``Retry`` rule is the retry policy: attempts are ``MaxAttempts + 1`` (it counts retries;
  its maximum, 99999999, reads as unbounded: one retry a second outlasts the year an execution
  may run), ``IntervalSeconds`` the delay, ``BackoffRate`` the multiplier of exponential backoff
  (1.0: fixed), ``MaxDelaySeconds`` the cap, ``JitterStrategy: FULL`` jitter; ``TimeoutSeconds``
  is the timeout. On a compensation they are the compensation's;
* ASL has no place for a step's kind: a ``Comment`` saying ``pivot``, ``retriable`` or
  ``read-only`` declares it. After the pivot no ``Catch`` leads into compensation.

Anything else is refused with an error naming the state, never dropped: ``Choice``, ``Map`` and
``Wait`` states, catchers that lead to different places, a compensation whose ``Catch`` goes on
recovering, a failure that undoes nothing although earlier steps have compensations, states
nothing leads to. ``ErrorEquals``, ``Parameters`` and paths are not read. Latencies and failure
rates are not in the file: actions get the model's defaults. One difference remains: when a
branch fails, Step Functions stops the other branches and runs none of their compensations,
whereas sagasim lets them finish and undoes what they completed.

Examples
--------
>>> states = {"Reserve": {"Type": "Task", "Next": "Pay", "Catch": [{"Next": "Failed"}]},
...     "Pay": {"Type": "Task", "Comment": "pivot", "End": True, "Catch": [{"Next": "Release"}]},
...     "Release": {"Type": "Task", "Next": "Failed", "Retry": [{"MaxAttempts": 2}]},
...     "Failed": {"Type": "Fail"}}
>>> saga = from_asl({"StartAt": "Reserve", "States": states}, name="shop")
>>> [(step.name, step.kind) for step in saga.steps]
[('reserve', 'compensatable'), ('pay', 'pivot')]
>>> saga.steps[0].compensation.name, saga.steps[0].compensation.retry
('release', Retry(attempts=3, backoff='exponential', delay_ms=1000.0, multiplier=2.0,
                  max_delay_ms=None, jitter=False))
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from ..exceptions import SagaDefinitionError
from ..io.values import MISSING
from ..model.saga import Compensation, Entry, Parallel, Saga, Step
from .common import (
    ABSENT,
    Names,
    bad,
    check_valid,
    comment_flags,
    describe,
    located,
    milliseconds,
    read_number,
    read_retry,
)

__all__ = ["from_asl"]

_READ = ("Task", "Parallel", "Pass", "Succeed", "Fail")
_REFUSED = {
    "Choice": "branching on data cannot be expressed in a saga model",
    "Map": "a step run once per item of the input cannot be expressed in a saga model",
    "Wait": "a pause calls no participant, and a saga model has no place for it",
}


# --- Reading -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Scope:
    """One ``States`` object: the top level, or a branch of a ``Parallel`` state."""

    states: dict[str, dict[str, Any]]
    start: str
    prefix: str  # "" or "States.Group.Branches[0]."

    def path(self, name: str) -> str:
        return f"{self.prefix}States.{name}"


def _scope(data: object, prefix: str) -> _Scope:
    """The checked scope at ``prefix``; every state type in it, and in its branches, is read."""
    if not isinstance(data, dict):
        raise bad("a mapping with StartAt and States", data, prefix.rstrip("."))
    states = data.get("States", ABSENT)
    if not isinstance(states, dict) or not states:
        raise bad("a mapping from state names to states", states, f"{prefix}States")
    for name, state in states.items():
        path = f"{prefix}States.{name}"
        if not isinstance(state, dict) or not isinstance(state.get("Type"), str):
            raise bad("a state with a Type", state, path)
        kind = state["Type"]
        if kind not in _READ:
            why = _REFUSED.get(kind, "not a state type of the Amazon States Language")
            message = f"expected Task, Parallel, Pass, Succeed or Fail states, got a {kind} state"
            raise SagaDefinitionError(f"{message} ({why})", path=path)
        if kind == "Parallel":
            branches = state.get("Branches", ABSENT)
            if not isinstance(branches, list) or not branches:
                raise bad("a non-empty list of branches", branches, f"{path}.Branches")
            for i, branch in enumerate(branches):
                _scope(branch, f"{path}.Branches[{i}].")
    start = data.get("StartAt", ABSENT)
    if not isinstance(start, str) or start not in states:
        raise bad(f"the name of a state in {prefix}States", start, f"{prefix}StartAt")
    return _Scope(states, start, prefix)


def _next(state: Mapping[str, Any], path: str) -> str | None:
    """Where a state goes on: its ``Next``, or None for ``End: true``."""
    if state.get("End") is True:
        return None
    if "Next" not in state:
        raise SagaDefinitionError(f"expected Next or End: true, got {MISSING}", path=path)
    following = state["Next"]
    if not isinstance(following, str):
        raise bad("the name of a state", following, f"{path}.Next")
    return following


Undo = tuple[_Scope, str] | None  # the scope and name of a compensation's Task state
Chain = tuple[str, ...]  # the compensations a failure runs, in order
Tails = tuple[str, list[tuple[_Scope, Chain]]] | None  # a group's compensation: path, chains
_NOT_DEFINING = ("Next", "End", "Comment")  # two copies of one compensation differ only here


class _Reader:
    """Reads one definition; remembers every state it reached and the names it gave."""

    def __init__(self) -> None:
        self.reached: set[str] = set()
        self.names = Names()
        self.places: dict[str, str] = {}
        self.undo_groups: dict[str, list[tuple[_Scope, Chain]]] = {}

    def follow(self, scope: _Scope, name: object, at: str) -> str | None:
        """The first state from ``name`` that is not a ``Pass`` (None: a ``Pass`` ended)."""
        passed: list[str] = []
        while isinstance(name, str) and name in scope.states and name not in passed:
            self.reached.add(scope.path(name))
            if scope.states[name]["Type"] != "Pass":
                return name
            passed.append(name)
            at, name = f"{scope.path(name)}.Next", _next(scope.states[name], scope.path(name))
            if name is None:
                return None
        if name in passed:
            raise SagaDefinitionError("expected a path without loops, got one", path=at)
        raise bad(f"the name of a state in {scope.prefix}States", name, at)

    def success_path(self, scope: _Scope) -> list[str]:
        """The ``Task`` and ``Parallel`` states from ``StartAt`` to the end, in order."""
        names: list[str] = []
        name = self.follow(scope, scope.start, f"{scope.prefix}StartAt")
        while name is not None:
            state, path = scope.states[name], scope.path(name)
            if state["Type"] == "Succeed":
                break
            if state["Type"] == "Fail" or name in names:
                got = "a loop" if name in names else "this Fail state"
                message = f"expected a success path ending in Succeed or End: true, got {got}"
                raise SagaDefinitionError(message, path=path)
            names.append(name)
            following = _next(state, path)
            name = None if following is None else self.follow(scope, following, f"{path}.Next")
        if not names:
            message = "expected a Task or Parallel state on the path from StartAt, got none"
            raise SagaDefinitionError(message, path=f"{scope.prefix}StartAt")
        return names

    def chain(self, scope: _Scope, start: object, at: str, steps: Collection[str]) -> Chain:
        """The compensations run from ``start`` on, up to a ``Fail`` or ``Succeed`` state."""
        units: list[str] = []
        name = self.follow(scope, start, at)
        while name is not None:
            state, path = scope.states[name], scope.path(name)
            if state["Type"] in ("Fail", "Succeed"):
                break
            if name in steps or name in units:
                got = f"the step {name} (a loop)" if name in steps else f"{name} again (a loop)"
                raise SagaDefinitionError(f"expected a compensation, got {got}", path=at)
            if state["Type"] == "Task":
                self.compensation_catch(scope, name)
            else:
                self.undo_group(scope, name)
            units.append(name)
            following = _next(state, path)
            at = f"{path}.Next"
            name = None if following is None else self.follow(scope, following, at)
        return tuple(units)

    def catch_chain(self, scope: _Scope, name: str, steps: Collection[str]) -> Chain | None:
        """The compensations a failure of the state ``name`` runs; None if it has no ``Catch``."""
        state, path = scope.states[name], scope.path(name)
        if "Catch" not in state:
            return None
        catchers = state["Catch"]
        if not isinstance(catchers, list) or not all(isinstance(c, dict) for c in catchers):
            raise bad("a list of catchers such as {Next: StateName}", catchers, f"{path}.Catch")
        chains = [
            self.chain(scope, c.get("Next", ABSENT), f"{path}.Catch[{i}].Next", steps)
            for i, c in enumerate(catchers)
        ]
        for i, chain in enumerate(chains[1:], 1):
            if chain != chains[0]:
                message = f"expected the compensations of Catch[0] ({describe(chains[0])}), got"
                message += f" {describe(chain)} (branching on the error cannot be expressed)"
                raise SagaDefinitionError(message, path=f"{path}.Catch[{i}].Next")
        return chains[0] if chains else None

    def compensation_catch(self, scope: _Scope, name: str) -> None:
        """A compensation's ``Catch`` may only end recovery: sagasim stops where one gives up."""
        path = scope.path(name)
        for i, catcher in enumerate(scope.states[name].get("Catch") or []):
            at = f"{path}.Catch[{i}].Next"
            target = self.follow(scope, catcher.get("Next", ABSENT), at)
            if target is None or scope.states[target]["Type"] != "Fail":
                message = "expected a Fail state (sagasim stops recovery where a compensation"
                message += f" gives up), got {target or 'a Pass state that ends'}"
                raise SagaDefinitionError(message, path=at)

    def undo_group(self, scope: _Scope, name: str) -> None:
        """Read a ``Parallel`` state in a compensation chain: one chain of Tasks per branch."""
        path = scope.path(name)
        if path in self.undo_groups:
            return
        state = scope.states[name]
        if "Retry" in state:
            raise SagaDefinitionError("expected no Retry on a Parallel state", path=f"{path}.Retry")
        chains = []
        for i, branch in enumerate(state["Branches"]):
            sub = _scope(branch, f"{path}.Branches[{i}].")
            chain = self.chain(sub, sub.start, f"{sub.prefix}StartAt", ())
            for unit in chain:
                if sub.states[unit]["Type"] != "Task":
                    message = "expected Task states undoing the branch, got a Parallel state"
                    raise SagaDefinitionError(message, path=sub.path(unit))
            chains.append((sub, chain))
        self.undo_groups[path] = chains

    def undoers(
        self, scope: _Scope, names: list[str], steps: Collection[str], last: int
    ) -> tuple[list[str | None], tuple[str, ...]]:
        """The state undoing each entry (from its successor's ``Catch``) and the last chain.

        Entries after ``last`` (the pivot) must not lead into compensation.
        """
        undo: list[str | None] = [None] * len(names)
        before: tuple[str, ...] = ()
        for k, name in enumerate(names):
            path = scope.path(name)
            found = self.catch_chain(scope, name, steps)
            chain = found or ()
            if k > last and chain:
                message = f"expected no compensation after the pivot {names[last]} (the saga only"
                message += f" moves forward there), got a Catch running {describe(chain)}"
                raise SagaDefinitionError(message, path=f"{path}.Catch")
            if k <= last and found is None and before:
                message = f"expected a Catch running the compensations of the steps before {name}"
                message += f" ({describe(before)}), got none: its failure would leave them undone"
                message += " (if that is meant, mark the step before it as the pivot in a Comment)"
                raise SagaDefinitionError(message, path=path)
            if k == 0 and chain:
                message = "expected the first step's Catch to lead straight to a Fail state (a"
                message += " Catch undoes the steps completed before the failing one, and there are"
                raise SagaDefinitionError(f"{message} none), got {describe(chain)}", path=path)
            if k > last:
                continue
            if len(chain) == len(before) + 1 and chain[1:] == before:
                undo[k - 1] = chain[0]
            elif chain != before:
                message = f"expected the compensation of {names[k - 1]} (one state or none), then"
                message += f" {describe(before)}, got {describe(chain)}"
                raise SagaDefinitionError(message, path=f"{path}.Catch")
            before = chain
        return undo, before

    def pivot(self, scope: _Scope, names: list[str]) -> int | None:
        found = None
        for k, name in enumerate(names):
            state, path = scope.states[name], scope.path(name)
            if "pivot" not in comment_flags(state, path):
                continue
            if state["Type"] != "Task":
                message = "expected the pivot on a Task state, got a Parallel state"
                raise SagaDefinitionError(message, path=f"{path}.Comment")
            if found is not None:
                message = f"expected at most one pivot, got a second one (first: {names[found]})"
                raise SagaDefinitionError(message, path=f"{path}.Comment")
            found = k
        return found

    def entries(self, scope: _Scope) -> list[Entry]:
        names = self.success_path(scope)
        pivot = self.pivot(scope, names)
        undo, _ = self.undoers(scope, names, names, len(names) - 1 if pivot is None else pivot)
        entries: list[Entry] = []
        for k, name in enumerate(names):
            if scope.states[name]["Type"] == "Task":
                undone_by = None if undo[k] is None else (scope, str(undo[k]))
                entries.append(self.step(scope, name, undone_by, f"steps[{k}]", pivot == k))
                continue
            tails = None
            if undo[k] is not None:
                undo_path = scope.path(str(undo[k]))
                if undo_path not in self.undo_groups:
                    message = f"expected a Parallel state undoing {name}'s branches, got a Task"
                    raise SagaDefinitionError(message, path=undo_path)
                tails = (undo_path, self.undo_groups[undo_path])
            after = pivot is not None and k > pivot
            entries.append(self.group(scope, name, tails, f"steps[{k}]", after))
        return entries

    def group(self, scope: _Scope, name: str, tails: Tails, place: str, after: bool) -> Parallel:
        path, state = scope.path(name), scope.states[name]
        self.places[place] = path
        if "Retry" in state:
            message = "expected no Retry on a Parallel state (put it on the Task states inside)"
            raise SagaDefinitionError(message, path=f"{path}.Retry")
        branches = state["Branches"]
        if tails is not None and len(tails[1]) != len(branches):
            message = f"expected one branch per branch of {name} ({len(branches)}), got"
            message += f" {len(tails[1])} (a Pass state stands for a branch with nothing to undo)"
            raise SagaDefinitionError(message, path=f"{tails[0]}.Branches")
        result = []
        for b, branch in enumerate(branches):
            sub = _scope(branch, f"{path}.Branches[{b}].")
            names = self.success_path(sub)
            for n in names:
                if sub.states[n]["Type"] != "Task":
                    message = "expected Task states in a branch, got a Parallel state (no nesting)"
                    raise SagaDefinitionError(message, path=sub.path(n))
                if "pivot" in comment_flags(sub.states[n], sub.path(n)):
                    message = "expected the pivot outside Parallel states, got it inside one"
                    raise SagaDefinitionError(message, path=f"{sub.path(n)}.Comment")
            undo, chain = self.undoers(sub, names, names, -1 if after else len(names) - 1)
            undone_by: list[Undo] = [None if u is None else (sub, u) for u in undo]
            if tails is not None:
                undone_by[-1] = self.tail(sub, chain, *tails[1][b], names[-1])
            result.append(
                tuple(
                    self.step(sub, n, undone_by[k], f"{place}.parallel[{b}][{k}]", False)
                    for k, n in enumerate(names)
                )
            )
        return Parallel(branches=tuple(result))

    def tail(
        self, scope: _Scope, chain: tuple[str, ...], undo: _Scope, tail: tuple[str, ...], last: str
    ) -> tuple[_Scope, str] | None:
        """What undoes a branch's last step: the state the group's compensation runs before the
        branch's own chain (states compared by definition: they live in different scopes)."""

        def defined(where: _Scope, name: str) -> dict[str, Any]:
            return {
                k: v for k, v in where.states[name].items() if k not in ("Next", "End", "Comment")
            }

        mine, theirs = [defined(scope, n) for n in chain], [defined(undo, n) for n in tail]
        if theirs == mine or (len(theirs) == len(mine) + 1 and theirs[1:] == mine):
            return (undo, tail[0]) if theirs != mine else None
        message = f"expected the compensation of {last} (one state or none), then states like the"
        message += f" branch's own ({describe(chain)}), got {describe(tail)}"
        raise SagaDefinitionError(message, path=f"{undo.prefix}StartAt")

    def step(self, scope: _Scope, name: str, undone_by: Undo, place: str, pivot: bool) -> Step:
        state, path = scope.states[name], scope.path(name)
        self.places[place] = path
        flags = comment_flags(state, path)
        step_name = self.names.take(name, path)
        compensation = None
        if undone_by is not None:
            where, undo = undone_by
            undo_path = where.path(undo)
            if where.states[undo]["Type"] != "Task":
                message = f"expected a Task state undoing {name}, got a Parallel state"
                raise SagaDefinitionError(message, path=undo_path)
            self.places[f"{place}.compensation"] = undo_path
            compensation = Compensation(
                name=self.names.take(undo, undo_path), **_action(where.states[undo], undo_path)
            )
        kind: Literal["pivot", "retriable"] | None = "pivot" if pivot else None
        if not pivot and "retriable" in flags:
            kind = "retriable"
        return Step(
            name=step_name,
            kind_declared=kind,
            effects="read_only" not in flags,
            compensation=compensation,
            **_action(state, path),
        )

    def unreached(self, scope: _Scope) -> None:
        for name, state in scope.states.items():
            path = scope.path(name)
            if path not in self.reached:
                message = "expected a state reachable from StartAt, got one nothing leads to"
                raise SagaDefinitionError(message, path=path)
            for b, branch in enumerate(state.get("Branches") or []):
                self.unreached(_scope(branch, f"{path}.Branches[{b}]."))


def _action(state: Mapping[str, Any], path: str) -> dict[str, Any]:
    """The timeout and retry of a ``Task`` state, as model fields."""
    fields: dict[str, Any] = {}
    if "TimeoutSeconds" in state:
        seconds = read_number(state["TimeoutSeconds"], f"{path}.TimeoutSeconds", 0, "a number")
        fields["timeout_ms"] = milliseconds(seconds)
    if "Retry" in state:
        fields["retry"] = read_retry(
            state["Retry"], f"{path}.Retry", retries=3, interval_s=1, rate=2.0, asl=True
        )
    return fields


def from_asl(
    data: object,
    *,
    name: str | None = None,
    file: str | None = None,
    lines: Mapping[str, int] | None = None,
) -> Saga:
    """The saga a Step Functions definition describes (see the module's docstring).

    A definition does not carry its state machine's name: ``name`` gives it (default: the file's
    name up to its first dot, else ``imported``). ``file`` and ``lines`` (path -> line, as
    :func:`sagasim.io.parse_yaml` gives) serve the errors.

    Examples
    --------
    >>> from_asl({"StartAt": "Check", "States": {"Check": {"Type": "Choice"}}}, file="x.json")
    Traceback (most recent call last):
    ...
    sagasim.exceptions.SagaDefinitionError: x.json: States.Check: expected Task, Parallel, Pass, ...
    """
    try:
        top = _scope(data, "")
        assert isinstance(data, dict)
        reader = _Reader()
        entries = reader.entries(top)
        reader.unreached(top)
        comment = data.get("Comment", "")
        if not isinstance(comment, str):
            raise bad("a text", comment, "Comment")
        default = (file or "imported").replace("\\", "/").rsplit("/", 1)[-1].split(".")[0]
        saga = Saga(name=name or default or "imported", description=comment, steps=tuple(entries))
        return check_valid(saga, reader.places)
    except SagaDefinitionError as err:
        raise located(err, file, lines) from None
