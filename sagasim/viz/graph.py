"""The compiled machine as networkx graphs: every state, or projected onto the saga's actions.

:func:`structure_graph` is the machine itself, one node per state and one edge per transition;
:func:`step_graph` projects it onto actions, which is what a saga diagram draws. Both are read
off :class:`~sagasim.machine.Machine`, never rebuilt from the model's semantics: the saga is
consulted only for names, kinds and services.

Node attributes of :func:`structure_graph` (key: state id)

``phase``
    ``forward``, ``halting``, ``compensating``, ``stuck_wait`` or ``terminal``.
``running``
    tuple of the actions in flight (steps or compensations).
``outcome``
    None, or for an end state ``committed``, ``compensated``, ``leaked`` or ``stuck``.
``consistent``
    for an end state, whether its outcome is consistent (committed or compensated); else None.
``kind``
    for a state running exactly one action, that step's kind (``compensatable``, ``pivot``,
    ``retriable``, ``read_only``, ``uncompensatable``) or ``compensation``; else None.
``service``
    the service of that single action; else None.
``group``
    for a forward or halting state inside a parallel group, the group's index in
    ``saga.steps``; else None.
``label``
    short text: the outcome, or the running actions joined by `` + `` (with ``halting:`` or
    ``stuck, waiting:`` in front in those phases).

Edge attributes of :func:`structure_graph` (a MultiDiGraph keyed by ``event``)

``event`` (``"reserve_inventory.ok"``), ``action``, ``kind`` (``ok``, ``fail``, ``reject``,
``timeout``), ``guard`` (``"retry_left"``, ``"!retry_left"`` or None), ``retry`` (True for a
retry loop) and ``flow``: ``terminal`` into an end state, ``forward`` into a forward state,
``compensation`` into recovery (halting, compensating or stuck-waiting).

Examples
--------
>>> from sagasim.machine import compile_saga
>>> from sagasim.model import Compensation, Saga, Step
>>> saga = Saga(name="pay", steps=(
...     Step(name="reserve", service="inventory", compensation=Compensation(name="release")),
...     Step(name="charge", kind_declared="pivot", reject=0.1),
... ))
>>> G = structure_graph(compile_saga(saga), saga)
>>> G.nodes["reserve"]["kind"], G.nodes["release"]["service"], G.nodes["compensated"]["consistent"]
('compensatable', 'inventory', True)
>>> [(u, v, d["kind"], d["flow"]) for u, v, d in G.out_edges("charge", data=True)]
[('charge', 'committed', 'ok', 'terminal'), ('charge', 'release', 'reject', 'compensation')]
>>> S = step_graph(compile_saga(saga), saga)
>>> sorted(S.edges)
[('charge', 'committed'), ('charge', 'release'), ('release', 'compensated'), ('reserve', 'charge')]
>>> S.nodes["release"]["compensates"], S.edges["charge", "release"]["label"]
('reserve', 'reject')
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import networkx as nx

from ..machine.orchestration import (
    CONSISTENT,
    EVENT_KINDS,
    OUTCOMES,
    Machine,
    StateInfo,
    Transition,
)
from ..model.saga import Action, Parallel, Saga, Step

__all__ = ["step_graph", "structure_graph", "to_node_link"]


@dataclass(frozen=True, slots=True)
class _Place:
    """Where an action sits in the saga: its entry, branch and position in the branch."""

    entry: int
    group: int | None
    branch: int | None
    position: int
    step: Step


def _places(saga: Saga) -> dict[str, _Place]:
    """Every step and compensation by name, with the step it belongs to."""
    places: dict[str, _Place] = {}
    for entry, item in enumerate(saga.steps):
        branches = item.branches if isinstance(item, Parallel) else ((item,),)
        group = entry if isinstance(item, Parallel) else None
        for b, branch in enumerate(branches):
            for k, step in enumerate(branch):
                place = _Place(entry, group, None if group is None else b, k, step)
                places[step.name] = place
                if step.compensation is not None:
                    places[step.compensation.name] = place
    return places


def _state_label(info: StateInfo) -> str:
    if info.outcome is not None:
        return info.outcome
    prefix = {"halting": "halting: ", "stuck_wait": "stuck, waiting: "}.get(info.phase, "")
    return prefix + " + ".join(info.running)


def _flow(target: StateInfo) -> str:
    if target.phase == "terminal":
        return "terminal"
    return "forward" if target.phase == "forward" else "compensation"


def structure_graph(machine: Machine, saga: Saga) -> nx.MultiDiGraph:
    """The compiled machine as a MultiDiGraph: a node per state, an edge per transition.

    Attribute keys are listed in the module docstring. Edges are keyed by their event, so
    ``G.edges[source, target, "charge.reject"]`` finds one transition.
    """
    places = _places(saga)
    G = nx.MultiDiGraph(name=saga.name, initial=machine.initial)
    for sid, info in machine.states.items():
        single = info.running[0] if len(info.running) == 1 else None
        kind: str | None = None
        service: str | None = None
        if single is not None:
            step = places[single].step
            is_step = step.name == single
            kind = step.kind if is_step else "compensation"
            service = saga.service_of(step if is_step else saga.action(single))
        inside = info.phase in ("forward", "halting")
        groups = {places[a].group for a in info.running} if inside else set()
        G.add_node(
            sid,
            phase=info.phase,
            running=info.running,
            outcome=info.outcome,
            consistent=None if info.outcome is None else info.outcome in CONSISTENT,
            kind=kind,
            service=service,
            group=groups.pop() if len(groups) == 1 else None,
            label=_state_label(info),
        )
    for t in machine.transitions:
        G.add_edge(
            t.source,
            t.target,
            key=t.event,
            event=t.event,
            action=t.action,
            kind=t.kind,
            guard=t.guard,
            retry=t.is_retry,
            flow=_flow(machine.states[t.target]),
        )
    return G


def step_graph(machine: Machine, saga: Saga) -> nx.DiGraph:
    """The machine projected onto actions: what the saga diagram draws.

    A node per step and per compensation that runs in some state, and per reachable end
    state. An edge ``a -> b`` for every machine transition that finishes action ``a`` and
    starts ``b`` (or ends the saga in ``b``), merged over all states; a self-loop per action
    with a retry loop.

    Node attributes: ``role`` (``step``, ``compensation`` or ``end``), ``kind`` (the step kind,
    ``compensation``, or the outcome), ``service``, ``entry`` (index in ``saga.steps``),
    ``group`` (that index when the step, or the compensation's step, is in a parallel
    group; else None), ``branch`` and
    ``position`` (in the group's branch), ``compensates`` (a compensation's step),
    ``after_pivot``, ``attempts`` (None: unbounded), ``outcome`` and ``consistent`` (ends),
    ``label``. Entries and positions of end states are None.

    Edge attributes: ``kinds`` and ``events`` (tuples: which outcomes of ``a`` take this
    edge), ``flow`` (``forward`` into a step, ``compensation`` into a compensation,
    ``terminal`` into an end), ``retry`` (a retry self-loop), ``attempts`` (of a retry loop's
    action; None: unbounded), ``draining`` (True when every transition behind the edge leaves a
    halting or stuck-waiting state: in-flight work finishing after a failure elsewhere) and
    ``label`` (the kinds joined by `` / ``, or ``retry ×3`` / ``retry ∞``).

    Graph attributes: ``name``, ``initial`` (the actions running at the start), ``pivot``
    (the pivot's name or None) and ``compensation_order``.
    """
    places = _places(saga)
    running = {a for info in machine.states.values() for a in info.running}
    pivot_index = saga.pivot_index
    steps = list(saga.all_steps())
    G = nx.DiGraph(
        name=saga.name,
        initial=machine.states[machine.initial].running,
        pivot=next((s.name for s in steps if s.kind == "pivot"), None),
        compensation_order=saga.compensation_order,
    )
    actions: list[Action] = [s for s in steps if s.name in running]
    actions += [s.compensation for s in steps if s.compensation and s.compensation.name in running]
    for action in actions:
        place = places[action.name]
        is_step = action is place.step
        G.add_node(
            action.name,
            role="step" if is_step else "compensation",
            kind=place.step.kind if is_step else "compensation",
            service=saga.service_of(action),
            entry=place.entry,
            group=place.group,
            branch=place.branch,
            position=place.position,
            compensates=None if is_step else place.step.name,
            after_pivot=pivot_index is not None and place.entry > pivot_index,
            attempts=action.retry.attempts,
            outcome=None,
            consistent=None,
            label=action.name,
        )
    reachable = set(machine.terminals.values())
    for outcome in (o for o in OUTCOMES if o in reachable):
        G.add_node(
            outcome,
            **dict.fromkeys(("service", "entry", "group", "branch", "position"), None),
            role="end",
            kind=outcome,
            compensates=None,
            after_pivot=False,
            attempts=None,
            outcome=outcome,
            consistent=outcome in CONSISTENT,
            label=outcome,
        )
    for t in machine.transitions:
        source, target = machine.states[t.source], machine.states[t.target]
        if t.is_retry:
            heads: tuple[str, ...] = (t.action,)
        elif target.outcome is not None:
            heads = (target.outcome,)
        else:
            heads = tuple(a for a in target.running if a not in source.running)
        for head in heads:
            _merge(G, t, head, draining=source.phase in ("halting", "stuck_wait"))
    for _, _, data in G.edges(data=True):
        data["kinds"] = tuple(k for k in EVENT_KINDS if k in data["kinds"])
        data["events"] = tuple(sorted(data["events"]))
        if data["retry"]:
            attempts = data["attempts"]
            data["label"] = "retry ∞" if attempts is None else f"retry ×{attempts}"
        else:
            data["label"] = " / ".join(data["kinds"])
    return G


def _merge(G: nx.DiGraph, t: Transition, head: str, *, draining: bool) -> None:
    """Add transition ``t`` to the projected edge ``t.action -> head``."""
    if G.has_edge(t.action, head):
        data = G.edges[t.action, head]
        data["kinds"].add(t.kind)
        data["events"].add(t.event)
        data["draining"] = data["draining"] and draining
        return
    role = G.nodes[head]["role"]
    flow = {"step": "forward", "compensation": "compensation", "end": "terminal"}[role]
    G.add_edge(
        t.action,
        head,
        kinds={t.kind},
        events={t.event},
        flow=flow,
        retry=t.is_retry,
        attempts=G.nodes[t.action]["attempts"] if t.is_retry else None,
        draining=draining,
        label="",
    )


def _plain(value: Any) -> Any:
    """``value`` with tuples, sets and frozensets turned into (sorted, for sets) lists."""
    if isinstance(value, (set, frozenset)):
        return sorted(_plain(v) for v in value)
    if isinstance(value, (tuple, list)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def to_node_link(G: nx.Graph) -> dict[str, Any]:
    """``G`` as networkx node-link data that :func:`json.dumps` accepts.

    Examples
    --------
    >>> import json
    >>> G = nx.DiGraph(name="g")
    >>> G.add_node("a", running=("a",), completed=frozenset({"x"}))
    >>> G.add_edge("a", "b", kinds=("ok",))
    >>> data = to_node_link(G)
    >>> data["nodes"][0]["running"], data["nodes"][0]["completed"], data["links"][0]["kinds"]
    (['a'], ['x'], ['ok'])
    >>> json.loads(json.dumps(data))["graph"]
    {'name': 'g'}
    """
    data: dict[str, Any] = _plain(nx.node_link_data(G, edges="links"))
    return data
