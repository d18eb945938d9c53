"""Choreography diagrams: the services and the events between them, and each service's machine.

Built on :mod:`sagasim.viz`'s pipeline: these extractors read the compiled choreography
(:func:`~sagasim.machine.choreography.compile_choreography`, what ``check`` and ``simulate``
run) into a :class:`~sagasim.viz.diagram.Diagram`, which the same renderers and writers draw.
Two views:

* ``collaboration``: a dashed box per service holding its steps and their compensations. An
  arrow is an event on the broker, from the action that publishes it to what it moves at each
  subscriber: solid when it starts a step (``reserve_inventory.done``); dashed red when a
  failure skips a waiting step or has a done one undone (``process_payment.failed``); dotted
  orange when it orders the compensation cascade (``restore_points.done``: in ``reverse``
  order an undo waits for the undos, failures or skips of the later steps). A choice is a
  diamond in its deciding service's box, whose branch events (``stock_level.in_stock``)
  start each branch; a ``fail`` or ``succeed`` is an end in the box of the service reaching it.
* ``service:NAME``: one service's python-statemachine class, every state and transition. Final
  states have a double border; retries are self-loops labelled with their guard.

Examples
--------
>>> from sagasim.model import Compensation, Saga, Step
>>> saga = Saga(name="pay", coordination="choreography", steps=(
...     Step(name="reserve", service="inventory", compensation=Compensation(name="release")),
...     Step(name="charge", service="payments", kind_declared="pivot", reject=0.1),
... ))
>>> d = extract_choreography(saga)
>>> d.clusters
{'cluster_inventory': 'inventory', 'cluster_payments': 'payments'}
>>> for edge in d.edges:
...     print(edge.source, f"-- {edge.label} ->" if edge.label else "->", edge.target, edge.look)
__start__ -> reserve forward
reserve -- reserve.done -> charge forward
charge -- charge.failed -> release event_failure
>>> machine = extract_choreography(saga, "service:payments")
>>> sorted(node.title for node in machine.nodes if node.look.startswith("end"))
['failed']
>>> extract_choreography(saga, "service:shipping")
Traceback (most recent call last):
sagasim.exceptions.UsageError: pay has no service 'shipping' (its services: inventory, payments)
"""

from __future__ import annotations

import graphviz

from ..exceptions import UsageError
from ..machine.choreography import Choreography, compile_choreography
from ..machine.orchestration import RETRY_GUARD
from ..model.saga import Saga
from .diagram import (
    KIND_WORDS,
    MAX_STATES_DRAWN,
    NODE_LOOKS,
    START,
    VIEWS,
    Diagram,
    Edge,
    Node,
    step_columns,
)
from .places import fail_node, layout, succeed_node
from .renderers import to_graphviz

__all__ = ["collaboration_diagram", "extract_choreography", "service_diagram"]

COLLABORATION = "collaboration"
SERVICE_PREFIX = "service:"
#: What the three kinds of arrow mean, for the diagram's subtitle.
LEGEND = "solid: starts a step · dashed: a failure (skip or undo) · dotted: the order of undos"


def is_choreography_view(view: str) -> bool:
    """Whether ``view`` is drawn here: ``collaboration`` or ``service:NAME``."""
    return view == COLLABORATION or view.startswith(SERVICE_PREFIX)


def extract_choreography(saga: Saga, view: str = COLLABORATION) -> Diagram:
    """The :class:`~sagasim.viz.diagram.Diagram` of ``saga``'s choreography in ``view``.

    ``view`` is ``collaboration`` or ``service:NAME``; an unknown service is a
    :class:`~sagasim.exceptions.UsageError` naming the known ones.
    """
    chor = compile_choreography(saga)
    if view == COLLABORATION:
        return _collaboration_view(saga, chor)
    if not view.startswith(SERVICE_PREFIX):
        raise UsageError(f"unknown view {view!r} (expected one of {', '.join(VIEWS)})")
    name = view[len(SERVICE_PREFIX) :]
    if name not in chor.services:
        raise UsageError(
            f"{saga.name} has no service {name!r} (its services: {', '.join(chor.services)})"
        )
    return _service_view(saga, chor, name)


def collaboration_diagram(saga: Saga) -> graphviz.Digraph:
    """The collaboration view of ``saga`` as a Graphviz diagram (whatever its coordination).

    >>> from sagasim.model import Saga, Step
    >>> saga = Saga(name="two", steps=(Step(name="a", service="s"), Step(name="b", service="t")))
    >>> collaboration_diagram(saga).source.count("subgraph cluster_")
    2
    """
    return to_graphviz(extract_choreography(saga, COLLABORATION))


def service_diagram(saga: Saga, service: str) -> graphviz.Digraph:
    """The machine of ``service`` in ``saga``'s choreography as a Graphviz diagram.

    >>> from sagasim.model import Saga, Step
    >>> g = service_diagram(Saga(name="one", steps=(Step(name="only", effects=False),)), "only")
    >>> "only.start" in g.source
    True
    """
    return to_graphviz(extract_choreography(saga, SERVICE_PREFIX + service))


# --- the collaboration view ------------------------------------------------------------------


def _collaboration_view(saga: Saga, chor: Choreography) -> Diagram:
    events = sorted({e for r in chor.roles for e in r.subscriptions})
    subtitle = (
        f"{len(chor.services)} services · {len(events)} events · "
        f"{saga.compensation_order} compensation · {LEGEND}"
    )
    d = Diagram(saga.name, COLLABORATION, f"{saga.name}: choreography", subtitle)
    d.nodes.append(Node(START, "", look="start"))
    step_column = _role_columns(saga, chor)
    d.columns = [[] for _ in range(max(step_column.values()) + 1)]
    d.columns[0].append(START)
    for service, machine in chor.services.items():
        cluster = f"cluster_{service}"
        d.clusters[cluster] = service
        for role in machine.roles:
            if role.kind == "step":
                step = saga.step(role.step)
                kind = KIND_WORDS.get(step.kind, step.kind)
                node_look = step.kind if step.kind in NODE_LOOKS else "step"
                d.nodes.append(Node(role.step, role.step, kind, node_look, cluster))
            else:  # a choice its decider makes, a fail or a succeed its service reaches
                title = role.ends or role.step
                d.nodes.append(Node(role.step, title, role.kind, role.kind, cluster))
            d.columns[step_column[role.step]].append(role.step)
    for service, machine in chor.services.items():
        for role in machine.roles:
            if role.compensation is not None:
                words = (role.compensation, "compensation", "compensation", f"cluster_{service}")
                d.nodes.append(Node(role.compensation, *words))
                d.columns[step_column[role.step]].append(role.compensation)
    d.edges.extend(Edge(START, r.step, look="forward") for r in chor.roles if not r.triggers)
    for event in _publication_order(chor):
        publisher = event.rsplit(".", 1)[0]
        for subscriber in chor.subscribers[event]:
            target, look = _delivery(chor, event, subscriber)
            concurrent = _column(step_column, chor, publisher) == step_column[subscriber]
            if look == "event_failure" and concurrent:
                look = "event_failure_loose"  # between concurrent branches: keep them level
            d.edges.append(Edge(publisher, target, event, look))
    return d


def _role_columns(saga: Saga, chor: Choreography) -> dict[str, int]:
    """Rank column of every role: where the saga's layout places its step, choice, fail or
    succeed (a role renamed apart from another end of that name: after what starts it)."""
    places, steps = layout(saga).places, step_columns(saga)
    columns: dict[str, int] = {}
    for role in chor.roles:
        node = {"fail": fail_node(role.ends or ""), "succeed": succeed_node(role.step)}
        place = places.get(node.get(role.kind, role.step))
        if role.kind == "step":
            columns[role.step] = steps[role.step]
        elif place is not None:
            columns[role.step] = place.column
        else:
            before = [columns.get(e.rsplit(".", 1)[0], 0) for e in role.triggers]
            columns[role.step] = max(before, default=-1) + 1
    return columns


def _column(step_column: dict[str, int], chor: Choreography, action: str) -> int:
    return step_column[chor.role(action).step]


def _publication_order(chor: Choreography) -> list[str]:
    """The subscribed events, the ``done`` of steps first, in step order: the happy path reads
    first in the source (and in Mermaid, which lays out in declaration order)."""
    order = {name: k for k, name in enumerate([*chor.actions, *chor.role_index])}

    def key(event: str) -> tuple[bool, bool, int]:
        action, outcome = event.rsplit(".", 1)
        return action not in chor.role_index, outcome != "done", order[action]

    return sorted(chor.subscribers, key=key)


def _delivery(chor: Choreography, event: str, subscriber: str) -> tuple[str, str]:
    """Which node ``event`` moves at ``subscriber``'s service, and the look of its arrow."""
    role = chor.role(subscriber)
    if event in role.triggers:
        return role.step, "forward"
    if role.compensation is not None and event in role.failures:
        return role.compensation, "event_failure"
    if event in role.aborts:
        return role.step, "event_failure"
    assert role.compensation is not None  # what is left: the undos an undo waits for
    return role.compensation, "event_cascade"


# --- one service's machine -------------------------------------------------------------------

_PHASES = (  # the first role state found names the phase of a product state
    ("stuck", "end_bad"),
    ("failed", "end_bad"),
    ("undoing", "compensating"),
    ("self_undoing", "compensating"),
    ("undone", "compensating"),
    ("running", "forward"),
    ("skipped", "halting"),
    ("done", "forward"),
    ("deciding", "forward"),
    ("chose", "forward"),  # chose_LABEL: a decided choice
    ("succeeded", "forward"),
    ("waiting", "forward"),
)


def _service_view(saga: Saga, chor: Choreography, name: str) -> Diagram:
    machine = chor.services[name]
    count = len(machine.states)
    if count > MAX_STATES_DRAWN:
        raise UsageError(
            f"service {name} has {count} states; --view service:{name} draws at most "
            f"{MAX_STATES_DRAWN}: draw --view collaboration instead"
        )
    performs = ", ".join(role.step for role in machine.roles)
    subtitle = (
        f"performs {performs} · {count} states · {len(machine.transitions)} transitions"
        " · double border: final · self-loops: retries and duplicated events"
    )
    d = Diagram(f"{saga.name}_{name}", f"service:{name}", f"{saga.name}: service {name}", subtitle)
    sources = {t.source for t in machine.transitions}
    several = len(machine.roles) > 1
    for state_id, role_states in machine.states.items():
        phases = {"chose" if s.startswith("chose_") else s for s in role_states}
        phase = next(look for state, look in _PHASES if state in phases)
        final = state_id not in sources
        if final and phase != "end_bad":
            phase = "end_ok"
        elif not final and phase == "end_bad":
            phase = "stuck_wait"
        lines = [
            f"{role.step}: {state}" if several else state
            for role, state in zip(machine.roles, role_states)
        ]
        d.nodes.append(Node(state_id, "\n".join(lines), look=phase))
    d.nodes.insert(0, Node(START, "", look="start"))
    d.edges.append(Edge(START, next(iter(machine.states))))
    merged: dict[tuple[str, str, str], list[str]] = {}
    for t in machine.transitions:
        guard = f" [{t.guard}]" if t.guard else ""
        merged.setdefault(
            (t.source, t.target, _transition_look(chor, t.event, t.guard)), []
        ).append(t.event + guard)
    for (source, target, look), labels in merged.items():
        side = "n" if source == target else ""
        d.edges.append(Edge(source, target, "\n".join(labels), look, side=side))
    return d


def _transition_look(chor: Choreography, event: str, guard: str | None) -> str:
    action, kind = event.rsplit(".", 1)
    if guard == RETRY_GUARD or kind in ("again", "undo_again"):
        return "retry"
    if kind in ("reject", "fail", "timeout", "skip"):
        return "failure"
    if kind == "undo" or action not in chor.role_index:
        return "compensation"
    return "forward"
