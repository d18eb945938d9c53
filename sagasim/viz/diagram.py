"""The intermediate form of every diagram, and the extractors of a saga's two own views.

As in python-statemachine, drawing is extract → intermediate → renderer. The extractors read
the graphs of :mod:`sagasim.viz.graph` (what is drawn is the compiled machine) and build a
neutral :class:`Diagram` of nodes, edges, clusters and columns, each with a :class:`Look` that
both renderers (:mod:`sagasim.viz.renderers`) understand. The views:

* ``saga``: a box per step and per compensation. The forward path runs left to right; each
  compensation sits under its step, on a dashed orange return path running right to left to
  ``compensated``. The pivot has a double border, read-only steps are grey and rounded,
  parallel groups are boxed, retries are self-loops (``retry ×3``), failure edges are red and
  say ``reject``, ``fail`` or ``timeout``; consistent end states are green, the others red.
  What in-flight actions do after a failure elsewhere is left to the machine view.
* ``machine``: every state and transition of the compiled machine.

Examples
--------
>>> from sagasim.model import Compensation, Saga, Step
>>> d = saga_view(Saga(name="pay", steps=(
...     Step(name="reserve", compensation=Compensation(name="release")),
...     Step(name="charge", kind_declared="pivot", reject=0.1),
... )))
>>> [node.id for node in d.nodes][:4]
['__start__', 'reserve', 'charge', 'release']
"""

from __future__ import annotations

from dataclasses import dataclass, field

import networkx as nx

from ..machine.orchestration import compile_saga
from ..model.saga import Parallel, Saga
from .graph import step_graph, structure_graph

VIEWS = ("saga", "machine", "collaboration", "service:NAME")  # the last two: choreography
MAX_STATES_DRAWN = 2000
START = "__start__"


# --- the intermediate form -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Node:
    """A box to draw: ``title`` (lines split on newlines), a small ``subtitle``, a look."""

    id: str
    title: str
    subtitle: str = ""
    look: str = "step"
    cluster: str | None = None


@dataclass(frozen=True, slots=True)
class Edge:
    """An arrow from ``source`` to ``target`` drawn in ``look``.

    A self-loop goes on compass ``side``; ``label_at_source`` puts the label by the source,
    out of the layout's way.
    """

    source: str
    target: str
    label: str = ""
    look: str = "forward"
    side: str = ""
    label_at_source: bool = False


@dataclass(slots=True)
class Diagram:
    """What any renderer needs: nodes, edges, labelled clusters and rank columns.

    ``columns`` lists node ids that share a rank, top to bottom; an edge from a later column
    to an earlier one is drawn against the flow (compensations run right to left).
    """

    name: str
    view: str
    title: str
    subtitle: str = ""
    nodes: list[Node] = field(default_factory=list)
    edges: list[Edge] = field(default_factory=list)
    clusters: dict[str, str] = field(default_factory=dict)
    columns: list[list[str]] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class Look:
    """How a kind of node is drawn, in terms both renderers understand."""

    shape: str  # box, rounded, stadium, ellipse, point
    fill: str
    border: str
    text: str = "#1b2631"
    penwidth: float = 1.2
    dashed: bool = False
    double: bool = False


NODE_LOOKS: dict[str, Look] = {
    "start": Look("point", "#1b2631", "#1b2631"),
    "step": Look("box", "#ffffff", "#1b2631"),
    "pivot": Look("box", "#fef5e7", "#1b2631", penwidth=2.4, double=True),
    "retriable": Look("box", "#eaf2f8", "#1f618d", penwidth=1.6),
    "read_only": Look("rounded", "#eceff1", "#7b8a8b", text="#4d5656"),
    "uncompensatable": Look("box", "#fdedec", "#a93226", penwidth=1.6),
    "compensation": Look("stadium", "#fdf2e9", "#ba4a00", text="#6e2c00", dashed=True),
    "end_ok": Look("ellipse", "#d5f5e3", "#1e8449", text="#145a32", penwidth=1.6, double=True),
    "end_bad": Look("ellipse", "#fadbd8", "#c0392b", text="#78281f", penwidth=1.6, double=True),
    "forward": Look("rounded", "#ffffff", "#1b2631"),
    "halting": Look("rounded", "#fef9e7", "#b7950b"),
    "compensating": Look("rounded", "#fdf2e9", "#ba4a00", text="#6e2c00"),
    "stuck_wait": Look("rounded", "#fdedec", "#a93226", text="#78281f"),
    "state": Look("ellipse", "#ffffff", "#566573"),
}

#: Edge looks: colour, line style, pen width, and the weight that keeps the forward path straight.
EDGE_LOOKS: dict[str, tuple[str, str, float, int]] = {
    "forward": ("#1b2631", "", 1.4, 8),
    "failure": ("#c0392b", "", 1.1, 1),
    "compensation": ("#ba4a00", "dashed", 1.4, 4),
    "retry": ("#1f618d", "", 1.0, 1),
    "event_failure": ("#c0392b", "dashed", 1.1, 1),
    "event_failure_loose": ("#c0392b", "dashed", 1.1, 0),
    "event_cascade": ("#ba4a00", "dotted", 1.5, 1),
}

CLUSTER_STYLE = dict(style="rounded,dashed", color="#7b8a8b", fontcolor="#566573", fontsize="10")
KIND_WORDS = {"read_only": "read-only", "uncompensatable": "no compensation"}


# --- the saga's views -------------------------------------------------------------------------


def step_columns(saga: Saga) -> dict[str, int]:
    """Rank column of every step: entries left to right, a group's branches side by side."""
    columns: dict[str, int] = {}
    column = 1
    for entry in saga.steps:
        branches = entry.branches if isinstance(entry, Parallel) else ((entry,),)
        columns.update({s.name: column + k for b in branches for k, s in enumerate(b)})
        column += max(len(branch) for branch in branches)
    return columns


def saga_view(saga: Saga) -> Diagram:
    S = step_graph(compile_saga(saga), saga)
    pivot = f"pivot: {S.graph['pivot']}" if S.graph["pivot"] else "no pivot"
    count = sum(1 for _ in saga.all_steps())
    subtitle = f"{count} steps · {saga.compensation_order} compensation · {pivot}"
    d = Diagram(saga.name, "saga", saga.name, subtitle, nodes=[Node(START, "", look="start")])
    step_column = step_columns(saga)
    last = max(step_column.values()) + 1
    column_of: dict[str, int] = {START: 0}
    for name, data in S.nodes(data=True):
        role = data["role"]
        if role == "end":
            column_of[name] = last if _ends_right(S, name) else 0
            look = "end_ok" if data["consistent"] else "end_bad"
            d.nodes.append(Node(name, data["label"], look=look))
            continue
        column_of[name] = step_column[data["compensates"] or name]
        kind = data["kind"]
        look = kind if kind in NODE_LOOKS else "step"
        subtitle = f"{KIND_WORDS.get(kind, kind)} · {data['service']}"
        cluster = None
        if role == "step" and data["group"] is not None:
            cluster = f"cluster_group_{data['group']}"
            d.clusters[cluster] = "parallel"
        d.nodes.append(Node(name, data["label"], subtitle, look, cluster))
    d.columns = [[] for _ in range(last + 1)]
    d.columns[0].append(START)
    for role in ("step", "compensation", "end"):
        for name, data in S.nodes(data=True):
            if data["role"] == role:
                d.columns[column_of[name]].append(name)
    d.edges.extend(Edge(START, first) for first in S.graph["initial"])
    for u, v, data in S.edges(data=True):
        if data["draining"]:
            continue
        if data["retry"]:
            # Loops above steps and below compensations keep clear of the other row.
            side = "n" if S.nodes[u]["role"] == "step" else "s"
            d.edges.append(Edge(u, v, data["label"], "retry", side=side))
            continue
        failures = [k for k in data["kinds"] if k != "ok"]
        if failures:
            d.edges.append(Edge(u, v, " / ".join(failures), "failure", label_at_source=True))
        elif "compensation" in (S.nodes[u]["role"], S.nodes[v]["role"]):
            d.edges.append(Edge(u, v, look="compensation"))
        else:
            d.edges.append(Edge(u, v))
    return d


def _ends_right(S: nx.DiGraph, end: str) -> bool:
    """``committed`` ends the forward row; ``stuck`` joins it when a forward step leads there."""
    if end != "stuck":
        return end == "committed"
    edges = S.in_edges(end, data="draining")
    return any(S.nodes[u]["role"] == "step" and not draining for u, _, draining in edges)


def machine_view(saga: Saga) -> Diagram:
    G = structure_graph(compile_saga(saga), saga)
    subtitle = f"{G.number_of_nodes()} states · {G.number_of_edges()} transitions"
    d = Diagram(saga.name, "machine", f"{saga.name}: compiled machine", subtitle)
    d.nodes.append(Node(START, "", look="start"))
    d.edges.append(Edge(START, G.graph["initial"]))
    for sid, data in G.nodes(data=True):
        if data["outcome"] is not None:
            look = "end_ok" if data["consistent"] else "end_bad"
            d.nodes.append(Node(sid, data["outcome"], look=look))
            continue
        subtitle = data["phase"].replace("stuck_wait", "stuck, waiting")
        cluster = None
        if data["phase"] == "forward" and data["group"] is not None:
            cluster = f"cluster_group_{data['group']}"
            d.clusters[cluster] = f"parallel: steps[{data['group']}]"
            done = _done_in_group(saga, data["running"], data["group"])
            if done:
                subtitle += f" · done: {', '.join(done)}"
        d.nodes.append(Node(sid, "\n".join(data["running"]), subtitle, data["phase"], cluster))
    merged: dict[tuple[str, str, str], list[str]] = {}
    for u, v, data in G.edges(data=True):
        if data["retry"]:
            look = "retry"
        elif data["kind"] != "ok":
            look = "failure"
        elif data["flow"] == "compensation" or G.nodes[u]["phase"] == "compensating":
            look = "compensation"
        else:
            look = "forward"
        guard = f" [{data['guard']}]" if data["guard"] else ""
        merged.setdefault((u, v, look), []).append(data["event"] + guard)
    for (u, v, look), labels in merged.items():
        d.edges.append(Edge(u, v, "\n".join(labels), look))
    return d


def _done_in_group(saga: Saga, running: tuple[str, ...], group: int) -> list[str]:
    """Steps of parallel group ``group`` completed in a forward state running ``running``."""
    entry = saga.steps[group]
    assert isinstance(entry, Parallel)
    done: list[str] = []
    for branch in entry.branches:
        names = [s.name for s in branch]
        current = next((k for k, n in enumerate(names) if n in running), len(names))
        done.extend(names[:current])
    return done
