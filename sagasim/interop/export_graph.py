"""The graph model written as a Step Functions definition: choices, ends, jumps, maps, sub-sagas
and self-compensation, in the shape :func:`sagasim.interop.asl.from_asl` reads.

:func:`~sagasim.interop.export.to_asl` hands a saga here when :attr:`Saga.is_graph
<sagasim.model.Saga.is_graph>`; straight lines keep their own writer (and output). The
conventions:

* a ``choice`` is a ``Choice`` state (``QueryLanguage: JSONata``) named after it: one rule per
  branch but the default, ``Condition: "{% when %}"``, ``Comment: "probability P"``; the default
  branch is ``Default``. A branch's states go on to the state after the choice (its join);
* ``fail`` is a ``Fail`` state named after it (``Error``: the name), one per name;
  ``succeed`` a ``Succeed`` state; ``goto`` the ``Next`` of the state before it;
  ``max_visits: N`` says ``max_visits N`` in the step's ``Comment``;
* recovery is a ``Catch`` chain per scope (the whole saga, a parallel branch, a map body): a
  unit's ``Catch`` leads to the compensations of the units before it on its way, latest first,
  ending in the scope's ``Fail`` (``Compensated`` for the saga); a step with
  ``compensate_on_failure`` catches into its own compensation first (the AWS saga pattern). A
  choice branch's units are on the way of what comes after the choice when the other branches
  all end (``fail``, ``goto``, ``succeed``); where several ways meet again, only what came
  before the choice is. A compensation no ``Catch`` leads to is left out, and its step's
  ``Comment`` says so. Inside a branch or body, a unit with nothing to undo yet has no
  ``Catch`` (its failure is the group's or map's); what a group's branches or a map's items
  did is undone by an ``Undo...`` ``Parallel`` or ``Map`` state in the chain around it, each
  compensation already written inside as a copy named ``...After<group>``;
* a ``map`` is an inline ``Map`` state: ``Comment: "items N"`` (or ``items 1,2,5``),
  ``MaxConcurrency`` when bounded; a sub-saga a ``startExecution.sync:2`` task on the child's
  machine, named after the child saga (:func:`~sagasim.interop.export.to_asl_files` writes
  the children too).

Examples
--------
>>> from sagasim.io.dsl import branch, choice, fail, saga, step
>>> s = saga("s", step("check", effects=False), choice("stock",
...     branch("stock > 0", step("reserve", compensation="release"), probability=0.9),
...     branch("otherwise", fail("out_of_stock"), default=True)), step("pay", kind="pivot"))
>>> states = graph_asl(s)["States"]
>>> states["Stock"]["Choices"]
[{'Condition': '{% stock > 0 %}', 'Next': 'Reserve', 'Comment': 'probability 0.9'}]
>>> states["Stock"]["Default"], states["OutOfStock"], states["Pay"]["Catch"][0]["Next"]
('OutOfStock', {'Type': 'Fail', 'Error': 'out_of_stock'}, 'Release')
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..exceptions import SagaDefinitionError
from ..model.saga import (
    Choice,
    Compensation,
    Entry,
    Fail,
    Goto,
    Map,
    Parallel,
    Saga,
    Step,
    SubSaga,
    Succeed,
    walk,
)
from .tasks import catchers, pascal_case, step_comment, task, unique

__all__ = ["NESTED", "Graph", "closed", "graph_asl"]

#: What a sub-saga's task runs: the child's state machine, waiting for it to end.
NESTED = "arn:aws:states:::states:startExecution.sync:2"
#: The machine a sub-saga's task starts (the child saga's name goes last).
MACHINE = "arn:aws:states:REGION:ACCOUNT:stateMachine:"
Undo = tuple[Compensation, str]  # a compensation and the entry it undoes


@dataclass(eq=False)
class _Link:
    """A compensation (or an ``Undo...`` state) waiting in a chain: written as ``state`` once
    a ``Catch`` leads to it, going on to ``prev``; ``undoes`` names the entries it undoes."""

    state: str
    prev: _Link | None
    make: Callable[[str], dict[str, Any]]  # where it goes next -> the state
    undoes: tuple[str, ...]
    comp: Compensation | None = None  # what it runs, when it is one compensation
    written: bool = False


@dataclass
class _Scope:
    """One ``States`` mapping being written: the whole saga, a parallel branch or a map body.

    ``head`` is what a caught failure here runs first: the latest unit's undo on the way to
    this point (None: nothing yet, the chain's ``Fail``); ``catch`` says whether units here are
    caught at all (not after the pivot).
    """

    states: dict[str, Any]
    catch: bool
    fenced: bool = False
    root: str | None = None  # the Fail ending the chain (None: not written yet)
    root_name: str = ""
    root_error: str = ""
    head: _Link | None = None
    placed: set[str] = field(default_factory=set)  # compensations written in this scope
    done: str | None = None  # a Succeed a branch ending here goes to (fenced scopes)


class Graph:
    """Writes one definition; ``kept`` and ``own`` record which compensations (by the name of
    the entry they undo) have a place, and which steps catch into their own first."""

    def __init__(self, saga: Saga) -> None:
        self.saga = saga
        self.taken: set[str] = set()
        self.name: dict[int, str] = {}  # id(entry or action) -> state name
        self.by_name: dict[str, str] = {}  # model name -> state name (goto targets)
        self.kept: set[str] = set()
        self.own: set[str] = set()
        self.targets: dict[int, list[str]] = {}  # id(choice) -> each branch's first state
        self.fails: dict[str, tuple[str, int]] = {}  # fail name -> state name, scope
        self.succeeds: dict[str, str] = {}  # succeed name -> state name
        self.tasks: list[tuple[dict[str, Any], str, Step, str | None, str | None]] = []
        self.pivot = _pivot_entry(saga)
        self.allocate()

    # -- names --

    def claim(self, key: object, name: str, path: str) -> None:
        wanted = pascal_case(name)
        got = unique(self.taken, wanted)
        if got != wanted:
            raise SagaDefinitionError(
                f"expected names whose state names differ, got {name!r}, whose state {wanted} "
                "another entry already has (Step Functions state names are unique)",
                path=path,
            )
        self.name[id(key)] = got
        self.by_name[name] = got

    def allocate(self) -> None:
        entries = list(_definition_walk(self.saga.steps, "steps"))
        self.entries = {id(e): p for e, p in entries}
        for entry, path in entries:  # actions first, as the straight-line writer names them
            if isinstance(entry, Step):
                self.claim(entry, entry.name, f"{path}.name")
            if isinstance(entry, (Step, SubSaga)) and entry.compensation is not None:
                self.claim(entry.compensation, entry.compensation.name, f"{path}.compensation")
        for name in ("Compensated", "Committed"):
            if name in self.taken:
                raise SagaDefinitionError(
                    f"expected no entry whose state is named {name}, got one (export ends the "
                    f"saga's chains there)",
                    path="steps",
                )
            self.taken.add(name)
        for entry, path in entries:
            if isinstance(entry, (Choice, Map)):
                self.claim(entry, entry.name, f"{path}.name")
            elif isinstance(entry, SubSaga):
                self.claim(entry, entry.name, f"{path}.saga.name")
            elif isinstance(entry, Succeed):  # one state per name, as for fails
                if entry.name in self.succeeds:
                    self.name[id(entry)] = self.succeeds[entry.name]
                    continue
                self.claim(entry, entry.name, f"{path}.succeed.name")
                self.succeeds[entry.name] = self.name[id(entry)]
            elif isinstance(entry, Fail) and f"fail {entry.name}" not in self.by_name:
                self.claim(entry, entry.name, f"{path}.fail.name")  # one state per name
                self.by_name[f"fail {entry.name}"] = self.by_name.pop(entry.name)
            elif isinstance(entry, Parallel):
                self.name[id(entry)] = unique(self.taken, f"Parallel{_index(path) + 1}")

    # -- reading the model --

    def first(self, entries: tuple[Entry, ...], then: str | None, scope: _Scope) -> str | None:
        """The state that runs ``entries``: their first one's, or ``then`` when empty."""
        if not entries:
            return then if then is not None or not scope.fenced else self.done(scope)
        entry = entries[0]
        if isinstance(entry, Goto):
            return self.by_name[entry.target]
        if isinstance(entry, Fail):
            return self.fail_state(entry, scope)
        return self.name[id(entry)]

    def done(self, scope: _Scope) -> str:
        """A ``Succeed`` ending a fenced scope, for a choice's branch that ends it."""
        if scope.done is None:
            scope.done = unique(self.taken, f"{scope.root_name.removesuffix('Failed')}Done")
            scope.states[scope.done] = {"Type": "Succeed"}
        return scope.done

    def fail_state(self, fail: Fail, scope: _Scope) -> str:
        if fail.name in self.fails:
            name, owner = self.fails[fail.name]
            if owner != id(scope.states):
                raise SagaDefinitionError(
                    f"expected fail {fail.name} in one scope, got it in a parallel branch or map "
                    "body and outside it (a Fail state serves the states beside it)",
                    path="steps",
                )
            return name
        name = self.by_name[f"fail {fail.name}"]
        self.fails[fail.name] = (name, id(scope.states))
        scope.states[name] = {"Type": "Fail", "Error": fail.name}
        return name

    # -- the chain --

    def target(self, link: _Link | None, scope: _Scope) -> str:
        """The state a ``Catch`` into ``link`` goes to, written (with what follows it) now."""
        if link is None:
            if scope.root is None:
                scope.root = unique(self.taken, scope.root_name)
                scope.states[scope.root] = {"Type": "Fail", "Error": scope.root_error}
            return scope.root
        if not link.written:
            link.written = True
            scope.states[link.state] = link.make(self.target(link.prev, scope))
            scope.placed.add(link.state)
            self.kept.update(link.undoes)
        return link.state

    def catcher(self, scope: _Scope) -> str | None:
        """Where a unit here catches to: nothing when it is not caught, or when a branch or
        body has nothing to undo yet (its failure is the group's or map's)."""
        if not scope.catch or (scope.fenced and scope.head is None):
            return None
        return self.target(scope.head, scope)

    def waiting(self, comp: Compensation, undoes: str, scope: _Scope) -> _Link:
        """``comp`` as the new head of the chain, its place kept right here."""
        name = self.name[id(comp)]
        scope.states[name] = None  # a place, filled if a Catch comes to it

        def make(then: str) -> dict[str, Any]:
            return task(comp, comment=f"undoes {undoes}", catch=None, then=then)

        scope.head = _Link(name, scope.head, make, (undoes,), comp)
        return scope.head

    # -- writing --

    def block(self, entries: tuple[Entry, ...], then: str | None, scope: _Scope, path: str) -> None:
        for i, entry in enumerate(entries):
            at = f"{path}[{i}]"
            if isinstance(entry, (Fail, Succeed, Goto)) and i + 1 < len(entries):
                word = type(entry).__name__.lower()
                raise SagaDefinitionError(
                    f"expected nothing after a {word}, got {len(entries) - i - 1} more entries "
                    "(nothing leads to them)",
                    path=f"{path}[{i + 1}]",
                )
            following = self.first(entries[i + 1 :], then, scope) if entries[i + 1 :] else then
            self.entry(entry, following, scope, at)

    def entry(self, entry: Entry, then: str | None, scope: _Scope, path: str) -> None:
        if isinstance(entry, Step):
            self.step(entry, then, scope)
        elif isinstance(entry, Choice):
            self.choice(entry, then, scope, path)
        elif isinstance(entry, Fail):
            self.fail_state(entry, scope)
        elif isinstance(entry, Succeed):
            scope.states[self.name[id(entry)]] = {"Type": "Succeed"}
        elif isinstance(entry, SubSaga):
            self.sub_saga(entry, then, scope)
        elif isinstance(entry, (Map, Parallel)):
            self.fenced(entry, then, scope, path)

    def step(self, step: Step, then: str | None, scope: _Scope) -> None:
        name, comp = self.name[id(step)], step.compensation
        scope.states[name] = None  # its place, before its compensation's
        catch = self.catcher(scope)
        if scope.catch and comp is not None:
            link = self.waiting(comp, step.name, scope)
            if step.compensate_on_failure:  # the AWS saga pattern: its own cancel first
                catch = self.target(link, scope)
                self.own.add(step.name)
        self.tasks.append((scope.states, name, step, catch, then))

    def sub_saga(self, sub: SubSaga, then: str | None, scope: _Scope) -> None:
        name = self.name[id(sub)]
        arn = {"StateMachineArn": MACHINE + sub.saga.name, "Input.$": "$"}
        state: dict[str, Any] = {"Type": "Task", "Resource": NESTED, "Parameters": arn}
        catch = self.catcher(scope)
        if catch is not None:
            state["Catch"] = catchers(catch)
        scope.states[name] = state | _on(then)
        if scope.catch and sub.compensation is not None:
            self.waiting(sub.compensation, sub.name, scope)

    def choice(self, choice: Choice, then: str | None, scope: _Scope, path: str) -> None:
        """The ``Choice`` state, then each branch's states, each undoing what its own way did:
        after the choice, the chain goes on from the one branch that does not end (the others
        fail, jump or end), or from before the choice when several meet again."""
        name = self.name[id(choice)]
        scope.states[name] = None
        rules, default, targets = [], None, []
        for way in choice.branches:
            start = self.first(way.steps, then, scope)
            assert start is not None  # a fenced scope's branch ends at its Succeed
            targets.append(start)
            if way.default:
                default = start
            else:
                rule = {"Condition": f"{{% {way.when} %}}", "Next": start}
                rules.append(rule | {"Comment": f"probability {way.probability!r}"})
        if not rules:
            raise SagaDefinitionError(
                f"expected a branch of {choice.name} besides the default, got none (a Choice "
                "state needs a rule)",
                path=f"{path}.choice.branches",
            )
        self.targets[id(choice)] = targets
        state: dict[str, Any] = {"Type": "Choice", "QueryLanguage": "JSONata", "Choices": rules}
        scope.states[name] = state | ({"Default": default} if default is not None else {})
        before, ends = scope.head, []
        for b, way in enumerate(choice.branches):
            scope.head = before
            self.block(way.steps, then, scope, f"{path}.choice.branches[{b}].steps")
            if not closed(way.steps):
                ends.append(scope.head)
        scope.head = ends[0] if len(ends) == 1 else before

    def fenced(self, entry: Map | Parallel, then: str | None, scope: _Scope, path: str) -> None:
        """A parallel group or a map: its scopes, its state, and what undoes it."""
        name = self.name[id(entry)]
        scope.states[name] = None
        group = isinstance(entry, Parallel)
        blocks = entry.branches if isinstance(entry, Parallel) else (entry.steps,)
        inner: list[_Scope] = []
        for b, block in enumerate(blocks):
            sub = _Scope({}, scope.catch, fenced=True)
            sub.root_name = f"{name}Branch{b + 1}Failed" if group else f"{name}ItemFailed"
            sub.root_error = "BranchCompensated" if group else "ItemCompensated"
            self.block(block, None, sub, f"{path}.parallel[{b}]" if group else f"{path}.map.steps")
            inner.append(sub)
        bodies = [
            {"StartAt": self.first(block, None, sub), "States": sub.states}
            for block, sub in zip(blocks, inner, strict=True)
        ]
        state: dict[str, Any]
        if isinstance(entry, Parallel):
            state = {"Type": "Parallel", "Branches": bodies, "ResultPath": f"$.{name}"}
        else:
            processor = {"ProcessorConfig": {"Mode": "INLINE"}} | bodies[0]
            state = {"Type": "Map", "ItemProcessor": processor, "Comment": _items(entry)}
            if entry.concurrency is not None:
                state["MaxConcurrency"] = entry.concurrency
            state["ResultPath"] = f"$.{entry.name}"
        catch = self.catcher(scope)
        if catch is not None:
            state["Catch"] = catchers(catch)
        scope.states[name] = state | _on(then)
        chains = [_chain(sub.head) for sub in inner]  # what each way to its end did
        if scope.catch and any(chains):
            undo_name = unique(self.taken, f"Undo{name}")
            scope.states[undo_name] = None

            def make(following: str) -> dict[str, Any]:
                return self.undo_state(entry, name, undo_name, chains, inner) | {
                    "ResultPath": None,
                    "Next": following,
                }

            owners = tuple(undoes for chain in chains for _, undoes in chain)
            scope.head = _Link(undo_name, scope.head, make, owners)

    def undo_state(
        self,
        entry: Map | Parallel,
        name: str,
        undo_name: str,
        chains: list[list[Undo]],
        inner: list[_Scope],
    ) -> dict[str, Any]:
        """The ``Undo...`` state undoing each branch's (or item's) completed units, latest
        first: a compensation already written inside takes a copy named ``...After<name>``."""
        bodies = []
        for b, (chain, sub) in enumerate(zip(chains, inner, strict=True)):
            states: dict[str, Any] = {}
            names = [
                self.name[id(comp)]
                if self.name[id(comp)] not in sub.placed
                else unique(self.taken, f"{self.name[id(comp)]}After{name}")
                for comp, _ in chain
            ]
            for j, (comp, undoes) in enumerate(chain):
                following = names[j + 1] if j + 1 < len(names) else None
                states[names[j]] = task(
                    comp, comment=f"undoes {undoes}", catch=None, then=following
                )
            if not chain:
                states[unique(self.taken, f"{undo_name}Branch{b + 1}Nothing")] = {
                    "Type": "Pass",
                    "End": True,
                }
            bodies.append({"StartAt": next(iter(states)), "States": states})
        if isinstance(entry, Parallel):
            return {"Type": "Parallel", "Comment": f"undoes {name}", "Branches": bodies}
        processor = {"ProcessorConfig": {"Mode": "INLINE"}} | bodies[0]
        return {"Type": "Map", "Comment": f"undoes {entry.name}", "ItemProcessor": processor}

    def write(self) -> dict[str, Any]:
        steps = self.saga.steps
        last = len(steps) - 1 if self.pivot is None else self.pivot
        top = _Scope({}, True, root="Compensated")
        for i, entry in enumerate(steps):
            top.catch = i <= last  # after the pivot, only forward
            following = self.first(steps[i + 1 :], "Committed", top) if steps[i + 1 :] else None
            self.entry(entry, following or "Committed", top, f"steps[{i}]")
        for states, name, step, catch, then in self.tasks:  # now that it is known what is kept
            comment = step_comment(step, dropped=step.name not in self.kept)
            if step.max_visits is not None:
                comment = "; ".join(filter(None, [comment, f"max_visits {step.max_visits}"]))
            states[name] = task(step, comment=comment, catch=catch, then=then)
        _drop_places(top.states)
        start = self.first(steps, "Committed", top)
        used = _targets(top.states) | {start}
        if "Compensated" in used:
            top.states["Compensated"] = {"Type": "Fail", "Error": "SagaCompensated"}
        if "Committed" in used:
            top.states["Committed"] = {"Type": "Succeed"}
        where = {self.name[key]: path for key, path in self.entries.items() if key in self.name}
        _reached(start, top.states, where)
        description = {"Comment": self.saga.description} if self.saga.description else {}
        return {**description, "StartAt": start, "States": top.states}


def graph_asl(saga: Saga) -> dict[str, Any]:
    """The definition of a graph saga (see the module's docstring); refuses, in one line, what
    it cannot write."""
    return Graph(saga).write()


def _on(then: str | None) -> dict[str, Any]:
    return {"Next": then} if then is not None else {"End": True}


def _items(m: Map) -> str:
    counts = (m.items,) if isinstance(m.items, int) else m.items
    return "items " + ",".join(map(str, counts))


def closed(steps: tuple[Entry, ...]) -> bool:
    """Whether a branch's steps never reach its end: they end in ``fail``, ``goto`` or
    ``succeed``, or in a choice none of whose branches reaches its end."""
    if not steps:
        return False
    last = steps[-1]
    if isinstance(last, Choice):
        return all(closed(way.steps) for way in last.branches)
    return isinstance(last, (Fail, Goto, Succeed))


def _drop_places(states: dict[str, Any]) -> None:
    """Remove the places kept for compensations no ``Catch`` came to, in every scope."""
    for name in [n for n, state in states.items() if state is None]:
        del states[name]
    for state in states.values():
        for body in [*state.get("Branches", []), state.get("ItemProcessor")]:
            if body is not None:
                _drop_places(body["States"])


def _index(path: str) -> int:
    return int(path.rsplit("[", 1)[1].rstrip("]"))


def _scope_walk(entries: tuple[Entry, ...], path: str) -> Any:
    """The entries of one scope in document order, with their paths: into choice branches, not
    into groups, map bodies or sub-sagas (the entry itself is listed)."""
    for i, entry in enumerate(entries):
        at = f"{path}[{i}]"
        yield entry, at
        if isinstance(entry, Choice):
            for b, way in enumerate(entry.branches):
                yield from _scope_walk(way.steps, f"{at}.choice.branches[{b}].steps")


def _definition_walk(entries: tuple[Entry, ...], path: str) -> Any:
    """Every entry one definition writes, with its path: not into sub-sagas (their own)."""
    for entry, at in _scope_walk(entries, path):
        yield entry, at
        if isinstance(entry, Parallel):
            for b, branch in enumerate(entry.branches):
                yield from _definition_walk(branch, f"{at}.parallel[{b}]")
        elif isinstance(entry, Map):
            yield from _definition_walk(entry.steps, f"{at}.map.steps")


def _chain(link: _Link | None) -> list[Undo]:
    """The compensations a chain runs from ``link`` on, latest first, with what each undoes."""
    found = []
    while link is not None:
        if link.comp is not None:
            found.append((link.comp, link.undoes[0]))
        link = link.prev
    return found


def _targets(states: dict[str, Any]) -> set[str]:
    found: set[str] = set()
    for state in states.values():
        found |= {state[k] for k in ("Next", "Default") if k in state}
        found |= {r["Next"] for r in state.get("Choices", []) + state.get("Catch", [])}
    return found


def _reached(start: str | None, states: dict[str, Any], paths: dict[str, str]) -> None:
    """Refuse an entry no way from the start reaches (after a choice all of whose branches
    end): Step Functions refuses a state nothing leads to."""
    seen, todo = set(), [start]
    while todo:
        name = todo.pop()
        if name in seen or name not in states:
            continue
        seen.add(name)
        todo.extend(_targets({name: states[name]}))
    for name, state in states.items():
        if name not in seen:
            raise SagaDefinitionError(
                f"expected a way into {name}, got none (every way before it ends in fail, "
                "succeed or goto): Step Functions refuses a state nothing leads to",
                path=paths.get(name, "steps"),
            )
        for body in [*state.get("Branches", []), state.get("ItemProcessor")]:
            if body is not None:
                _reached(body["StartAt"], body["States"], paths)


def _pivot_entry(saga: Saga) -> int | None:
    """The index of the top-level entry holding the pivot (a step or a sub-saga); a pivot in a
    choice is refused: whether a later step is past it depends on the branch."""
    for index, entry in enumerate(saga.steps):
        inside = [e for e in walk((entry,)) if isinstance(e, Step) and e.kind == "pivot"]
        if not inside:
            continue
        if isinstance(entry, Choice):
            raise SagaDefinitionError(
                f"expected the pivot outside choices, got {inside[0].name} in {entry.name} "
                "(whether a later step is past the pivot would depend on the branch)",
                path=f"steps[{index}]",
            )
        return index
    return None
