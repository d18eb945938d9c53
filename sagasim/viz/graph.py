"""The compiled machine as networkx graphs: every state, or projected onto the saga's actions.

:func:`structure_graph` is the machine itself, one node per state and one edge per transition;
:func:`step_graph` projects it onto actions, which is what a saga diagram draws. Both are read
off :class:`~sagasim.machine.Machine`, never rebuilt from the model's semantics: the saga is
consulted only for names, kinds, services and where things are written
(:mod:`~sagasim.viz.places`). The machine runs :func:`~sagasim.machine.core` of the saga: the
structure graph keeps its names (a map's item copies ``pack_1``, ``pack_2``), the step graph
names the model's nodes (the map's body step ``pack``).

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
    for a forward or halting state inside a top-level parallel group (a top-level map is one
    in the core saga), the group's index in ``saga.steps``; else None.
``container``
    for a forward or halting state inside a parallel group or a map anywhere, that box's id
    (:attr:`~sagasim.viz.places.Layout.containers`); else None.
``decision``
    for a deciding state (urgent: only its choice's branch events leave it), the choice's
    name; else None.
``fail``
    the ``fail`` entry (or ``max_visits``) that started recovery, on recovering states and
    end states; else None.
``label``
    short text: the outcome, the running actions joined by `` + `` (with ``halting:`` or
    ``stuck, waiting:`` in front in those phases), or ``deciding CHOICE``.

Edge attributes of :func:`structure_graph` (a MultiDiGraph keyed by ``event``)

``event`` (``"reserve_inventory.ok"``), ``action``, ``kind`` (``ok``, ``fail``, ``reject``,
``timeout``, or a branch label), ``guard`` (``"retry_left"``, ``"!retry_left"`` or None),
``retry`` (True for a retry loop), ``flow`` (``terminal`` into an end state, ``forward`` into
a forward state, ``compensation`` into recovery: halting, compensating or stuck-waiting) and
``probability`` (a decision's branch probability; None for an attempt's event).

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

from typing import Any

import networkx as nx

from ..machine import branch_labels, core, decision_events
from ..machine.orchestration import (
    CONSISTENT,
    CRASH,
    EVENT_KINDS,
    OUTCOMES,
    Machine,
    StateInfo,
    Transition,
)
from ..model.saga import Action, Choice, Parallel, Saga, Step, SubSaga, walk
from .places import Layout, fail_node, layout

__all__ = ["percent", "step_graph", "structure_graph", "to_node_link"]

#: The roles of the nodes on the forward path, in the order a column stacks them.
FORWARD_ROLES = ("step", "choice", "fail", "succeed")
_FLOW_INTO = {
    "step": "forward",
    "choice": "forward",
    "fail": "forward",
    "succeed": "terminal",
    "compensation": "compensation",
    "end": "terminal",
}


def percent(p: float) -> str:
    """A probability as a short percentage.

    >>> percent(0.9), percent(1 - 0.9), percent(1 / 3), percent(0.0005)
    ('90%', '10%', '33.3%', '0.05%')
    """
    return f"{p * 100:.3g}%"


def _owners(saga: Saga) -> dict[str, Step | None]:
    """Each action of a core saga and its step (None: a whole-child compensation)."""
    owners: dict[str, Step | None] = {}
    for e in walk(saga.steps):
        if isinstance(e, Step):
            owners[e.name] = e
            if e.compensation is not None:
                owners[e.compensation.name] = e
        elif isinstance(e, SubSaga) and e.compensation is not None:
            owners[e.compensation.name] = None
    return owners


def _groups(saga: Saga) -> dict[str, int]:
    """The steps inside each top-level parallel group of a core saga, by the group's index."""
    return {
        s.name: i
        for i, e in enumerate(saga.steps)
        if isinstance(e, Parallel)
        for s in walk(tuple(x for b in e.branches for x in b))
        if isinstance(s, Step)
    }


def _state_label(info: StateInfo) -> str:
    if info.outcome is not None:
        return info.outcome
    if info.decision is not None:
        running = f" ({' + '.join(info.running)} running)" if info.running else ""
        return f"deciding {info.decision}{running}"
    prefix = {"halting": "halting: ", "stuck_wait": "stuck, waiting: "}.get(info.phase, "")
    return prefix + " + ".join(info.running)


def _flow(target: StateInfo) -> str:
    if target.phase == "terminal":
        return "terminal"
    return "forward" if target.phase == "forward" else "compensation"


def _container(lay: Layout, names: list[str]) -> str | None:
    """The innermost parallel group or map that holds all of ``names``, if one does."""
    found = set()
    for name in names:
        place = lay.places.get(lay.aliases.get(name, name))
        boxes = place.containers if place is not None else ()
        found.add(next((c for c in reversed(boxes) if lay.containers[c].kind != "saga"), None))
    return found.pop() if len(found) == 1 else None


def structure_graph(machine: Machine, saga: Saga) -> nx.MultiDiGraph:
    """The compiled machine as a MultiDiGraph: a node per state, an edge per transition.

    Attribute keys are listed in the module docstring. Edges are keyed by their event, so
    ``G.edges[source, target, "charge.reject"]`` finds one transition.
    """
    ran, lay = core(saga), layout(saga)
    owners, groups = _owners(ran), _groups(ran)
    G = nx.MultiDiGraph(name=saga.name, initial=machine.initial)
    for sid, info in machine.states.items():
        single = info.running[0] if len(info.running) == 1 else None
        kind: str | None = None
        service: str | None = None
        if single is not None:
            step = owners[single]
            is_step = step is not None and step.name == single
            kind = step.kind if is_step and step is not None else "compensation"
            service = ran.service_of(ran.action(single))
        inside = info.phase in ("forward", "halting")
        in_groups = {groups.get(a) for a in info.running} if inside else set()
        G.add_node(
            sid,
            phase=info.phase,
            running=info.running,
            outcome=info.outcome,
            consistent=None if info.outcome is None else info.outcome in CONSISTENT,
            kind=kind,
            service=service,
            group=in_groups.pop() if len(in_groups) == 1 else None,
            container=_container(lay, list(info.running)) if inside else None,
            decision=info.decision,
            fail=info.fail,
            label=_state_label(info),
        )
    chances = decision_events(ran)
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
            probability=chances[t.event][2] if t.event in chances else None,
        )
    return G


def step_graph(machine: Machine, saga: Saga) -> nx.DiGraph:
    """The machine projected onto the model's nodes: what the saga diagram draws.

    A node per step and per compensation that runs in some state (a map's item copies
    ``pack_1``, ``pack_2``... are its body step ``pack``), per choice decided in some state
    (but a map's drawn item count), per ``fail`` and ``succeed`` entry reached, and per
    reachable end state. An edge ``a -> b`` for every machine transition that finishes action
    ``a`` (or decides choice ``a``) and starts ``b`` (or ends the saga in ``b``), merged over
    all states; a self-loop per action with a retry loop. A transition that reaches a ``fail``
    or a ``succeed`` is drawn through its node: ``a -> fail__NAME -> what recovery starts``.
    Item copies starting after another item's step are not edges: the map's box says it.

    Node attributes: ``role`` (``step``, ``compensation``, ``choice``, ``fail``, ``succeed`` or
    ``end``), ``kind`` (the step kind, ``compensation``, ``choice``, ``fail``, ``succeed``, or
    the outcome), ``service``, ``entry`` (index in ``saga.steps``), ``group`` (that index when
    the step, or the compensation's step, is in a top-level parallel group; else None),
    ``branch`` and ``position`` (in the group's branch, or in the node's step list),
    ``containers`` (the ids of the groups, maps and sub-sagas around it, outermost first: see
    :mod:`~sagasim.viz.places`), ``compensates`` (a compensation's step or sub-saga),
    ``after_pivot``, ``attempts`` (None: unbounded), ``outcome`` and ``consistent`` (ends, and
    a succeed that ends the saga), ``label``, and ``crash``: where the coordinator's recovery
    resumes after a crash left this call in doubt (the node itself: the call is re-run; its
    compensation, or an end state: backward recovery), from the states where the call runs
    undrained; empty when the coordinator cannot crash. Crash transitions are no edges of the
    step graph. Entries and positions of end states are None.

    Edge attributes: ``kinds`` and ``events`` (tuples: which outcomes of ``a`` take this
    edge; a choice's are its branch labels in branch order; none out of a fail or succeed
    node), ``flow`` (``forward`` into a step, choice or fail, ``compensation`` into a
    compensation, ``terminal`` into an end or succeed), ``retry`` (a retry self-loop),
    ``attempts`` (of a retry loop's action; None: unbounded), ``draining`` (True when every
    transition behind the edge leaves a halting or stuck-waiting state: in-flight work
    finishing after a failure elsewhere), ``goto`` (every transition behind it passes a
    ``goto``), ``own`` (a step's failure straight into its own compensation:
    ``compensate_on_failure``) and ``label`` (the kinds joined by `` / ``, ``retry ×3`` /
    ``retry ∞``, or for a choice each branch's ``when · probability``, the default one marked).

    Graph attributes: ``name``, ``initial`` (what runs or is decided at the start), ``pivot``
    (the pivot's name or None) and ``compensation_order``.

    >>> from sagasim.machine import compile_saga
    >>> from sagasim.model import Branch, Choice, Compensation, Fail, Saga, Step
    >>> saga = Saga(name="stock", steps=(
    ...     Step(name="reserve", compensation=Compensation(name="release")),
    ...     Choice(name="level", branches=(
    ...         Branch(when="in_stock", probability=0.9),
    ...         Branch(when="otherwise", default=True, steps=(Fail(name="out_of_stock"),)))),
    ...     Step(name="ship"),
    ... ))
    >>> S = step_graph(compile_saga(saga), saga)
    >>> for u, v, d in S.out_edges("level", data=True):
    ...     print(f"{u} -> {v}: {d['label']}")
    level -> ship: in_stock · 90%
    level -> fail__out_of_stock: otherwise · 10% (default)
    >>> list(S.successors("fail__out_of_stock")), S.nodes["level"]["role"]
    (['release'], 'choice')
    """
    return _Projection(machine, saga).graph()


class _Projection:
    """Collects the projected edges of :func:`step_graph` in the machine's order."""

    def __init__(self, machine: Machine, saga: Saga) -> None:
        self.machine, self.saga, self.lay = machine, saga, layout(saga)
        self.states = machine.states
        self.edges: dict[tuple[str, str], dict[str, Any]] = {}
        #: A call's crash heads (:meth:`crashed`), in the machine's order.
        self.crashes: dict[str, dict[str, None]] = {}
        self.choices = {c.name: c for c in walk(saga.steps) if isinstance(c, Choice)}
        self.own_compensation = {
            step.name: step.compensation.name
            for step in core(saga).all_steps()
            if step.compensation is not None
        }

    def name(self, action: str) -> str:
        return self.lay.aliases.get(action, action)

    def graph(self) -> nx.DiGraph:
        machine, states = self.machine, self.states
        for t in machine.transitions:
            source, target = states[t.source], states[t.target]
            if source.decision in self.lay.hidden:
                continue  # a map's drawn count: the edges into its decision go past it
            tail = self.name(t.action)
            draining = source.phase in ("halting", "stuck_wait")
            if t.kind == CRASH:
                if not draining:
                    self.crashed(tail, source, target, t.action)
                continue
            if t.is_retry:
                self.merge(tail, tail, t, draining=draining)
                continue
            via = self.via(t, source, target)
            heads = self.ahead(source, target, t.action)
            if via is None:
                for head in heads:
                    self.merge(tail, head, t, draining=draining)
                continue
            self.merge(tail, via, t, draining=draining)
            if via not in self.lay.ending:
                for head in heads:
                    self.merge(via, head, t, draining=draining, through=True)
        start = StateInfo("", "forward", (), False)
        initial = self.ahead(start, states[machine.initial], None)
        return self.build(tuple(dict.fromkeys(self.name(a) for a in initial)))

    def via(self, t: Transition, source: StateInfo, target: StateInfo) -> str | None:
        """The fail or succeed node transition ``t`` passes on its way, if any."""
        if target.fail is not None and target.fail != source.fail:
            return fail_node(target.fail)
        return self.lay.succeeds.get((self.name(t.action), t.kind))

    def ahead(self, source: StateInfo, target: StateInfo, finished: str | None) -> list[str]:
        """What a transition from ``source`` to ``target`` that ended ``finished`` starts: the
        actions that were not running (or ran again), a choice now being decided, or the end."""
        if target.outcome is not None:
            return [target.outcome]
        heads = [a for a in target.running if a not in source.running or a == finished]
        if target.decision is not None and target.decision != source.decision:
            if target.decision not in self.lay.hidden:
                return [*heads, target.decision]
            for t in self.machine.transitions_from(target.id):
                heads += [
                    h for h in self.ahead(target, self.states[t.target], None) if h not in heads
                ]
        return heads

    def crashed(self, tail: str, source: StateInfo, target: StateInfo, action: str) -> None:
        """Record where recovery resumes after a crash with ``action`` in doubt: the call
        re-run (``tail`` itself), what recovery starts, or the end state."""
        heads = self.crashes.setdefault(tail, {})
        heads.update(dict.fromkeys(self.name(h) for h in self.ahead(source, target, action)))

    def merge(
        self, tail: str, head: str, t: Transition, *, draining: bool, through: bool = False
    ) -> None:
        """Add transition ``t`` to the projected edge ``tail -> head`` (``head`` a machine
        name; ``through``: the edge out of a fail or succeed node ``t`` passes)."""
        item, head_item = self.lay.items.get(t.action), self.lay.items.get(head)
        own = t.kind != "ok" and self.own_compensation.get(t.action) == head
        head = self.name(head)
        role = self.role(head)
        next_item = item and head_item and item != head_item and item[0] == head_item[0]
        if next_item and role in FORWARD_ROLES:
            return  # the next item starting: the map's box says so
        data = self.edges.get((tail, head))
        if data is None:
            data = self.edges[tail, head] = {
                "kinds": set(),
                "events": set(),
                "flow": _FLOW_INTO[role],
                "retry": t.is_retry,
                "draining": draining,
                "goto": True,
                "own": False,
            }
        if not through:
            data["kinds"].add(t.kind)
            data["goto"] = data["goto"] and (tail, t.kind) in self.lay.gotos
            data["own"] = data["own"] or own
        else:
            data["goto"] = False
        data["events"].add(t.event)
        data["draining"] = data["draining"] and draining

    def role(self, node: str) -> str:
        if node in OUTCOMES:
            return "end"
        place = self.lay.places.get(node)
        return place.role if place is not None else "step"

    def build(self, initial: tuple[str, ...]) -> nx.DiGraph:
        saga, lay = self.saga, self.lay
        steps = list(saga.all_steps())
        G = nx.DiGraph(
            name=saga.name,
            initial=initial,
            pivot=next((s.name for s in steps if s.kind == "pivot"), None),
            compensation_order=saga.compensation_order,
        )
        used = {self.name(a) for info in self.states.values() for a in info.running}
        used |= {self.name(i.decision) for i in self.states.values() if i.decision}
        used |= {node for edge in self.edges for node in edge}
        used |= {head for heads in self.crashes.values() for head in heads}
        for roles in (FORWARD_ROLES, ("compensation",)):
            for name, place in lay.places.items():
                if place.role in roles and name in used:
                    G.add_node(name, **self.attributes(name))
        for outcome in (o for o in OUTCOMES if o in used):
            G.add_node(
                outcome,
                **dict.fromkeys(("service", "entry", "group", "branch", "position"), None),
                role="end",
                kind=outcome,
                containers=(),
                compensates=None,
                after_pivot=False,
                attempts=None,
                outcome=outcome,
                consistent=outcome in CONSISTENT,
                label=outcome,
                crash=(),
            )
        for (u, v), data in self.edges.items():
            G.add_edge(u, v, **self.finished(u, data), attempts=None, label="")
        for u, _, data in G.edges(data=True):
            if data["retry"]:
                attempts = data["attempts"] = G.nodes[u]["attempts"]
                data["label"] = "retry ∞" if attempts is None else f"retry ×{attempts}"
            else:
                data["label"] = self.label(u, data["kinds"])
        return G

    def attributes(self, name: str) -> dict[str, Any]:
        """The attributes of node ``name`` (not an end state), from where it sits."""
        saga, place = self.saga, self.lay.places[name]
        action: Action | None = None
        if place.role in ("step", "compensation"):
            action = saga.action(name)
        kind = place.role
        if place.role == "step":
            kind = saga.step(name).kind
        ending = name in self.lay.ending
        pivot_index = saga.pivot_index
        return {
            "role": place.role,
            "kind": kind,
            "service": None if action is None else saga.service_of(action),
            "entry": place.entry,
            "group": place.group,
            "branch": place.branch,
            "position": place.position,
            "containers": place.containers,
            "compensates": place.owner if place.role == "compensation" else None,
            "after_pivot": pivot_index is not None and place.entry > pivot_index,
            "attempts": None if action is None else action.retry.attempts,
            "outcome": "committed" if ending else None,
            "consistent": True if ending else None,
            "label": name.split("__", 1)[1] if place.role in ("fail", "succeed") else name,
            "crash": tuple(self.crashes.get(name, ())),
        }

    def finished(self, tail: str, data: dict[str, Any]) -> dict[str, Any]:
        """The collected edge ``data`` with its sets as ordered tuples."""
        choice = self.choices.get(tail)
        order = branch_labels(choice) if choice is not None else EVENT_KINDS
        kinds = tuple(k for k in order if k in data["kinds"])
        return {**data, "kinds": kinds, "events": tuple(sorted(data["events"]))}

    def label(self, tail: str, kinds: tuple[str, ...]) -> str:
        """An edge's label: its kinds, or a choice's branches with their probabilities."""
        choice = self.choices.get(tail)
        if choice is None:
            return " / ".join(kinds)
        labels = branch_labels(choice)
        texts = []
        for label in kinds:
            b = labels.index(label)
            branch = choice.branches[b]
            default = " (default)" if branch.default else ""
            texts.append(f"{branch.when} · {percent(choice.probabilities[b])}{default}")
        return " / ".join(texts)


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
