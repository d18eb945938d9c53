"""A definition's states as a flow graph, and the step list it means.

Both engines write a saga as named states that say where to go next: ``Next``, a ``Choice``'s
rules, a ``Catch``. The readers (:mod:`~sagasim.interop.asl`, :mod:`~sagasim.interop.seata`)
turn a definition into a :class:`Flow` of :class:`Node` s;
:func:`~sagasim.interop.structure.entries` turns a flow into the model's nested step list:

* a ``Choice`` becomes a ``choice`` whose branches rejoin where every way on from it that does not
  fail meets again (its immediate post-dominator, which networkx finds); a branch that reaches a
  state placed before is a ``goto`` (a backward jump, a loop), one that reaches a ``Fail`` state a
  ``fail``;
* a ``Catch`` either *recovers* (its chain of states ends in ``Fail``, ``Succeed``, the end, or a
  Seata ``CompensationTrigger``) or *leads on* into the saga's own states (error-driven
  branching), read as a choice right after the state: ``succeeded`` or ``caught ...``;
* a recovering chain runs compensations: the states in it become the ``compensation`` of the
  steps they undo (:class:`Recovery`), and a chain that starts with the failing step's own undo
  sets ``compensate_on_failure`` on it. States after the last compensation (a notification, an
  error handler) are not steps of the saga: each is listed as an assumption.

What a definition cannot carry (probabilities, item counts, loop bounds) is assumed, and each
assumption is appended to :attr:`Flow.assumed` in words that say how to change it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from ..model.saga import SubSaga
from .common import ABSENT, Names, bad

__all__ = ["END", "Catcher", "Flow", "Node", "Rule", "Unit", "read_catchers"]

Kind = Literal["call", "choice", "fail", "succeed", "parallel", "map", "saga", "trigger"]
#: Where a flow ends well (``End: true``, a Seata state without ``Next``).
END = "\0end"
#: How many times an effectful loop may come back to its head, where the definition says nothing.
LOOP_BOUND = 3
#: How many items a map runs, where the definition says nothing.
ITEMS = 3


@dataclass
class Rule:
    """One way out of a choice: the condition as written, where it goes, its path."""

    when: str
    target: str
    path: str
    probability: float | None = None


@dataclass
class Catcher:
    """One ``Catch`` entry: the errors it catches (as written) and where it goes."""

    errors: str
    target: str
    path: str


@dataclass
class Node:
    """One state, in the terms every engine shares. ``fields`` are the model's ``Action`` fields
    (service, latency, retry, timeout); ``undo`` names the state undoing it (Seata's
    ``CompensateState``); ``ends`` is the fail or succeed name a terminal state gives."""

    name: str
    path: str
    kind: Kind
    next: str | None = None
    catchers: list[Catcher] = field(default_factory=list)
    rules: list[Rule] = field(default_factory=list)
    default: str | None = None
    default_probability: float | None = None
    default_when: str = "otherwise"
    fields: dict[str, Any] = field(default_factory=dict)
    effects: bool = True
    kind_declared: Literal["pivot", "retriable"] | None = None
    undo: str | None = None
    branches: list[Flow] = field(default_factory=list)
    body: Flow | None = None
    items: int | tuple[int, ...] | None = None
    concurrency: int | None = None
    child: SubSaga | None = None
    #: the model name a ``Comment`` saying ``undoes NAME`` gives (sagasim's own export)
    undoes: str | None = None
    #: a ``Comment`` saying ``max_visits N``
    max_visits: int | None = None
    #: what the state does, as written (its fields less where it goes): two copies of one
    #: compensation, in different branches, have the same
    definition: str = ""


@dataclass
class Flow:
    """The states of one scope (a whole definition, a ``Parallel`` branch, a ``Map`` body):
    ``prefix`` starts their paths; ``fenced`` scopes (branches, bodies) cannot end the saga."""

    prefix: str
    start: str
    states: dict[str, Node]
    fenced: bool = False
    assumed: list[str] = field(default_factory=list)
    names: Names = field(default_factory=Names)
    #: model path -> definition path, for errors the model's rules find
    places: dict[str, str] = field(default_factory=dict)
    #: Seata: a failure compensates whatever catches it (CompensationTrigger is the norm)
    explicit_undo: bool = False


Chain = tuple[Node, ...]  # the states a recovering Catch runs, in order


@dataclass
class Unit:
    """A placed state that can complete and be undone: a step, group, map or sub-saga."""

    node: Node
    flow: Flow  # the scope it is in
    name: str  # its model name
    before: list[str]  # the keys (paths) of the units completed before it, in order
    chain: Chain | None  # what its failure runs (None: no recovering Catch)

    @property
    def undoable(self) -> bool:
        """A compensation can undo it: a call with effects, or a group."""
        return self.node.kind == "parallel" or (self.node.kind == "call" and self.node.effects)


def read_catchers(state: Mapping[str, Any], path: str, errors: str, caught: str) -> list[Catcher]:
    """A state's ``Catch`` list: each entry's ``Next`` and the ``errors`` key's list (``caught``
    where it is missing), the way both engines write it.

    >>> read_catchers({"Catch": [{"Exceptions": ["Boom"], "Next": "Undo"}]}, "States.A",
    ...               "Exceptions", "java.lang.Throwable")
    [Catcher(errors='Boom', target='Undo', path='States.A.Catch[0]')]
    """
    found = state.get("Catch", [])
    if not isinstance(found, list) or not all(isinstance(c, dict) for c in found):
        what = f"a list of catchers such as {{{errors}: [...], Next: State}}"
        raise bad(what, found, f"{path}.Catch")
    out = []
    for i, catcher in enumerate(found):
        target = catcher.get("Next", ABSENT)
        if not isinstance(target, str):
            raise bad("the name of a state", target, f"{path}.Catch[{i}].Next")
        names = catcher.get(errors) or [caught]
        out.append(Catcher(", ".join(map(str, names)), target, f"{path}.Catch[{i}]"))
    return out
