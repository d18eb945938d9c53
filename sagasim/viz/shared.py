"""What many sagas at once add to a saga diagram: the data they share and the coordinator's log.

Each resource (:class:`~sagasim.model.data.Resource`) is a data node, titled with its name and
its isolation (``seats (semantic_lock)``). An edge runs from it to each step that reads it
(``reads``), and from each step and compensation that writes it: ``set`` or ``add``, with
``by`` when it is not 1 (``set -1``). A compensation undoes its step's writes whether or not it
lists them (docs/concurrency.md): after a ``set`` it writes back the value the step replaced
(``set back``), after an ``add`` it adds ``-by``.

When the coordinator can crash, every call (step or compensation attempt) is a log point: the
coordinator logs its start and its outcome, and may crash after either. :data:`LOG_NOTE` marks
the calls, :func:`coordinator_line` says how the coordinator crashes and recovers.

Only the model is read here; :mod:`sagasim.viz.diagram` turns it into nodes and edges.

Examples
--------
>>> from sagasim.model import Compensation, Resource, Saga, Step, Write
>>> saga = Saga(name="book", resources=(Resource(name="seats", initial=100),), steps=(
...     Step(name="count", effects=False, reads=("seats",)),
...     Step(name="take", writes=(Write(resource="seats", by=-1),),
...          compensation=Compensation(name="give_back")),
... ))
>>> [(r.id, r.title, r.subtitle) for r in resource_nodes(saga)]
[('resource__seats', 'seats (none)', 'initial 100')]
>>> data_edges(saga)
[('resource__seats', 'count', 'reads'), ('take', 'resource__seats', 'set -1'), \
('give_back', 'resource__seats', 'set back')]
"""

from __future__ import annotations

from dataclasses import dataclass

from ..io.values import format_duration, plain_number
from ..model.data import Coordinator, Write
from ..model.latency import Constant
from ..model.saga import Saga
from .graph import percent

__all__ = [
    "LOG_NOTE",
    "ResourceNode",
    "coordinator_line",
    "data_edges",
    "resource_id",
    "resource_nodes",
    "undo_label",
    "write_label",
]

#: The mark on every call of a saga whose coordinator can crash: its two log points.
LOG_NOTE = "log: start · outcome"


@dataclass(frozen=True, slots=True)
class ResourceNode:
    """A data node: its id, title and subtitle."""

    id: str
    title: str
    subtitle: str


def resource_id(name: str) -> str:
    """The node id of resource ``name`` (apart from the steps' ids, which it may equal).

    >>> resource_id("seats")
    'resource__seats'
    """
    return f"resource__{name}"


def _by(mode: str, by: float) -> str:
    return mode if by == 1 else f"{mode} {'+' if by > 0 else ''}{plain_number(by)}"


def write_label(w: Write) -> str:
    """How a step's write reads on its edge: the mode, and ``by`` when it is not 1.

    >>> write_label(Write(resource="seats")), write_label(Write(resource="n", mode="add", by=-2))
    ('set', 'add -2')
    >>> write_label(Write(resource="n", mode="add", by=2.5))
    'add +2.5'
    """
    return _by(w.mode, w.by)


def undo_label(w: Write) -> str:
    """How a compensation's undo of the step's write ``w`` reads on its edge.

    >>> undo_label(Write(resource="seats", by=-1))
    'set back'
    >>> undo_label(Write(resource="seats", mode="add", by=-1))
    'add'
    >>> undo_label(Write(resource="n", mode="add"))
    'add -1'
    """
    return "set back" if w.mode == "set" else _by("add", -w.by)


def resource_nodes(saga: Saga) -> list[ResourceNode]:
    """A data node per resource the saga (or a sub-saga) declares, in declaration order."""
    nodes = []
    for r in saga.all_resources():
        subtitle = f"initial {plain_number(r.initial)}"
        if r.isolation == "semantic_lock" and r.on_locked == "fail":
            subtitle += " · on_locked: fail"
        nodes.append(ResourceNode(resource_id(r.name), f"{r.name} ({r.isolation})", subtitle))
    return nodes


def data_edges(saga: Saga) -> list[tuple[str, str, str]]:
    """``(source, target, label)`` of every read and write, step by step in document order:
    the step's reads, its writes, then its compensation's undo of them."""
    edges: list[tuple[str, str, str]] = []
    for step in saga.all_steps():
        edges.extend((resource_id(name), step.name, "reads") for name in step.reads)
        edges.extend((step.name, resource_id(w.resource), write_label(w)) for w in step.writes)
        if step.compensation is not None:
            undo = step.compensation.name
            edges.extend((undo, resource_id(w.resource), undo_label(w)) for w in step.writes)
    return edges


def coordinator_line(coordinator: Coordinator) -> str:
    """The legend of a coordinator that crashes: how often, how long it is down, how it
    recovers the call in doubt.

    >>> from sagasim.model.latency import Exponential
    >>> coordinator_line(Coordinator(crash=0.001, restart=Constant(value_ms=5000))).split(" · ")
    ['coordinator: crash 0.1% after each log write', 'restart 5s', 'recovery backward', \
'at most 1 crash a saga']
    >>> coordinator_line(Coordinator(crash=0.02, restart=Exponential(mean_ms=2000),
    ...                              recovery="forward", max_crashes=3)).split(" · ")[1:]
    ['restart exponential, mean 2s', 'recovery forward', 'at most 3 crashes a saga']
    """
    restart = coordinator.restart
    down = (
        format_duration(restart.value_ms)
        if isinstance(restart, Constant)
        else f"{restart.dist}, mean {format_duration(round(restart.mean_ms))}"
    )
    crashes = f"{coordinator.max_crashes} crash{'es' if coordinator.max_crashes != 1 else ''}"
    return (
        f"coordinator: crash {percent(coordinator.crash)} after each log write · "
        f"restart {down} · recovery {coordinator.recovery} · at most {crashes} a saga"
    )
