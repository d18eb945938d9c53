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
  A choice is a purple diamond whose edges say each branch's ``when`` and probability (the
  default one marked), its branches stacked top to bottom; a ``fail`` is a red octagon named
  after it, from which recovery runs back; a ``succeed`` is a green end like ``committed``; a
  ``goto`` is a dashed blue edge back to its target; a sub-saga is a dashed box titled
  ``saga NAME (FILE)`` with its whole-child compensation under it; a map is a stacked box
  (two outlines) around its body, drawn once, titled with its items and concurrency; a step
  that compensates itself on failure has its failure edge straight down into its own
  compensation. What in-flight actions do after a failure elsewhere is left to the machine
  view. Shared data (:mod:`~sagasim.viz.shared`) is a teal cylinder per resource, titled with
  its isolation, with dotted edges to the steps that read it (``reads``) and from the steps and
  compensations that write it (``set -1``, ``add``, ``set back``). When the coordinator can
  crash, every call is marked with its log points, the graph's label says how the coordinator
  crashes and recovers, and a dashed grey ``crash`` edge goes from each call to where recovery
  resumes (``crash · re-run``: a loop, the call is re-run).
* ``machine``: every state and transition of the compiled machine; deciding states are
  diamonds whose edges carry the branch probabilities; ``ACTION.crash`` edges are dashed grey.

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
from typing import Any

import networkx as nx

from ..machine.orchestration import CRASH, compile_saga
from ..model.saga import Parallel, Saga, Step, walk
from .graph import FORWARD_ROLES, percent, step_graph, structure_graph
from .places import Container, layout
from .shared import LOG_NOTE, coordinator_line, data_edges, resource_nodes

VIEWS = ("saga", "machine", "collaboration", "service:NAME")  # the last two: choreography
MAX_STATES_DRAWN = 2000
START = "__start__"


# --- the intermediate form -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Node:
    """A box to draw: ``title`` (lines split on newlines), a small ``subtitle``, a look, and
    a smaller ``note`` under them (a call's log points)."""

    id: str
    title: str
    subtitle: str = ""
    look: str = "step"
    cluster: str | None = None
    note: str = ""


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
    to an earlier one is drawn against the flow (compensations run right to left). A cluster
    in ``cluster_parents`` is drawn inside its parent; ``cluster_looks`` names the clusters
    not drawn as a plain dashed box (``map``: stacked). ``notes`` are lines of legend under
    the title (the coordinator's crashes).
    """

    name: str
    view: str
    title: str
    subtitle: str = ""
    nodes: list[Node] = field(default_factory=list)
    edges: list[Edge] = field(default_factory=list)
    clusters: dict[str, str] = field(default_factory=dict)
    columns: list[list[str]] = field(default_factory=list)
    cluster_parents: dict[str, str] = field(default_factory=dict)
    cluster_looks: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class Look:
    """How a kind of node is drawn, in terms both renderers understand."""

    shape: str  # box, rounded, stadium, ellipse, point, diamond, octagon, cylinder
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
    "choice": Look("diamond", "#f4ecf7", "#7d3c98", text="#4a235a", penwidth=1.4),
    "fail": Look("octagon", "#fadbd8", "#c0392b", text="#78281f", penwidth=1.6),
    "succeed": Look("ellipse", "#d5f5e3", "#1e8449", text="#145a32", penwidth=1.4),
    "resource": Look("cylinder", "#e8f6f3", "#117864", text="#0e6251", penwidth=1.4),
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
    "goto": ("#1f618d", "dashed", 1.2, 1),
    "data": ("#117864", "dotted", 1.3, 0),
    "crash": ("#7b8a8b", "dashed", 1.0, 0),
    "crash_event": ("#7b8a8b", "dashed", 1.0, 1),  # in a state space: it leads somewhere new
}

CLUSTER_STYLE = dict(style="rounded,dashed", color="#7b8a8b", fontcolor="#566573", fontsize="10")
#: A map's box is a stack of cards: the front card, white, on a grey one a little larger.
MAP_STYLE = dict(style="rounded,filled", color="#566573", fontcolor="#566573", fontsize="10")
MAP_BACK, MAP_FRONT = "#e5e8e8", "#ffffff"
KIND_WORDS = {"read_only": "read-only", "uncompensatable": "no compensation"}


# --- the saga's views -------------------------------------------------------------------------


def step_columns(saga: Saga) -> dict[str, int]:
    """Rank column of every step: entries left to right, a group's branches side by side (and
    see :func:`~sagasim.viz.places.layout` for the graph model's entries)."""
    return {name: p.column for name, p in layout(saga).places.items() if p.role == "step"}


def saga_view(saga: Saga) -> Diagram:
    S = step_graph(compile_saga(saga), saga)
    lay = layout(saga)
    pivot = f"pivot: {S.graph['pivot']}" if S.graph["pivot"] else "no pivot"
    count = sum(1 for _ in saga.all_steps())
    subtitle = f"{count} steps · {saga.compensation_order} compensation · {pivot}"
    d = Diagram(saga.name, "saga", saga.name, subtitle, nodes=[Node(START, "", look="start")])
    crashes = _crash_note(saga, d)
    last = lay.width
    column_of: dict[str, int] = {START: 0}
    for name, data in S.nodes(data=True):
        if data["role"] == "end":
            column_of[name] = last if _ends_right(S, name) else 0
            look = "end_ok" if data["consistent"] else "end_bad"
            d.nodes.append(Node(name, data["label"], look=look))
            continue
        column_of[name] = lay.places[name].column
        cluster = None
        if data["role"] != "compensation" and data["containers"]:
            cluster = data["containers"][-1]
            _add_clusters(d, [lay.containers[c] for c in data["containers"]])
        title, subtitle, look = _saga_node(saga, data)
        note = LOG_NOTE if crashes and data["role"] in ("step", "compensation") else ""
        d.nodes.append(Node(name, title, subtitle, look, cluster, note))
    d.columns = [[] for _ in range(last + 1)]
    d.columns[0].append(START)
    for roles in (FORWARD_ROLES, ("compensation",), ("end",)):
        for name, data in S.nodes(data=True):
            if data["role"] in roles:
                d.columns[column_of[name]].append(name)
    d.edges.extend(Edge(START, first) for first in S.graph["initial"])
    for u, v, data in S.edges(data=True):
        if not data["draining"]:
            d.edges.append(_saga_edge(S, u, v, data))
    _add_crashes(d, S)
    _add_resources(d, saga, S, column_of)
    return d


def _crash_note(saga: Saga, d: Diagram) -> bool:
    """Whether ``saga``'s coordinator can crash; if so, say how in ``d``'s legend."""
    if saga.coordinator is None or saga.coordinator.crash <= 0:
        return False
    d.notes.append(coordinator_line(saga.coordinator))
    return True


def _add_crashes(d: Diagram, S: nx.DiGraph) -> None:
    """A dashed grey edge from each call to where recovery resumes after a crash left it in
    doubt: a loop (under the step, over the compensation) when the call is re-run."""
    for name, data in S.nodes(data=True):
        for head in data["crash"]:
            if head == name:
                side = "s" if data["role"] == "step" else "n"
                d.edges.append(Edge(name, head, "crash · re-run", "crash", side=side))
            else:
                d.edges.append(Edge(name, head, "crash", "crash"))


def _add_resources(d: Diagram, saga: Saga, S: nx.DiGraph, column_of: dict[str, int]) -> None:
    """A data node per resource, on top of the column of the first drawn step that uses it,
    and an edge per read and write of a drawn step or compensation."""
    resources = resource_nodes(saga)
    if not resources:
        return
    edges = [e for e in data_edges(saga) if e[0] in S or e[1] in S]
    for r in resources:
        users = [column_of[u if v == r.id else v] for u, v, _ in edges if r.id in (u, v)]
        d.nodes.append(Node(r.id, r.title, r.subtitle, "resource"))
        d.columns[min(users, default=1)].insert(0, r.id)
    d.edges.extend(Edge(u, v, label, "data") for u, v, label in edges)


def _saga_node(saga: Saga, data: dict[str, object]) -> tuple[str, str, str]:
    """Title, subtitle and look of a saga-view node that is not an end state."""
    role, kind, label = data["role"], str(data["kind"]), str(data["label"])
    if role == "choice":
        return label, "", "choice"
    if role == "fail":
        return label, "fail", "fail"
    if role == "succeed":
        # green like committed; single-bordered where it ends only a sub-saga
        return label, "succeed", "end_ok" if data["outcome"] else "succeed"
    look = kind if kind in NODE_LOOKS else "step"
    subtitle = f"{KIND_WORDS.get(kind, kind)} · {data['service']}"
    if role == "compensation" and not isinstance(_find(saga, str(data["compensates"])), Step):
        subtitle = f"compensation · all of {data['compensates']}"
    if role == "step":
        bound = saga.step(label).max_visits
        subtitle += "" if bound is None else f" · at most {bound} visits"
    return label, subtitle, look


def _find(saga: Saga, name: str) -> object:
    """The step or sub-saga of ``saga`` called ``name`` (None: neither)."""
    return next((e for e in walk(saga.steps) if getattr(e, "name", None) == name), None)


def _add_clusters(d: Diagram, chain: list[Container]) -> None:
    """Add the boxes ``chain`` (outermost first) to ``d``, each inside the one before."""
    for box in chain:
        if box.id not in d.clusters:
            d.clusters[box.id] = box.label
            if box.parent is not None:
                d.cluster_parents[box.id] = box.parent
            if box.kind == "map":
                d.cluster_looks[box.id] = "map"


def _saga_edge(S: nx.DiGraph, u: str, v: str, data: dict[str, Any]) -> Edge:
    """The saga-view edge of the step graph's edge ``u -> v``."""
    tail_role = S.nodes[u]["role"]
    if data["retry"]:
        # Loops above steps and below compensations keep clear of the other row.
        side = "n" if tail_role == "step" else "s"
        return Edge(u, v, data["label"], "retry", side=side)
    if tail_role == "fail":
        return Edge(u, v, look="compensation")  # recovery starts here
    if tail_role == "choice":
        goto = " · goto" if data["goto"] else ""
        return Edge(u, v, data["label"] + goto, "goto" if data["goto"] else "forward")
    failures = [k for k in data["kinds"] if k != "ok"]
    if failures:
        own = " · undo own" if data["own"] else ""
        return Edge(u, v, " / ".join(failures) + own, "failure", label_at_source=True)
    if data["goto"]:
        return Edge(u, v, "goto", "goto")
    if "compensation" in (tail_role, S.nodes[v]["role"]):
        return Edge(u, v, look="compensation")
    return Edge(u, v)


def _ends_right(S: nx.DiGraph, end: str) -> bool:
    """``committed`` ends the forward row; ``stuck`` joins it when a forward step leads there."""
    if end != "stuck":
        return end == "committed"
    edges = S.in_edges(end, data="draining")
    return any(S.nodes[u]["role"] == "step" and not draining for u, _, draining in edges)


def machine_view(saga: Saga) -> Diagram:
    G = structure_graph(compile_saga(saga), saga)
    lay = layout(saga)
    subtitle = f"{G.number_of_nodes()} states · {G.number_of_edges()} transitions"
    d = Diagram(saga.name, "machine", f"{saga.name}: compiled machine", subtitle)
    _crash_note(saga, d)
    d.nodes.append(Node(START, "", look="start"))
    d.edges.append(Edge(START, G.graph["initial"]))
    for sid, data in G.nodes(data=True):
        fail = f"fail: {data['fail']}" if data["fail"] else ""
        if data["outcome"] is not None:
            look = "end_ok" if data["consistent"] else "end_bad"
            d.nodes.append(Node(sid, data["outcome"], fail, look=look))
            continue
        cluster = None
        if data["phase"] == "forward" and data["container"] is not None:
            box = lay.containers[data["container"]]
            cluster = box.id
            d.clusters[cluster] = _machine_cluster_label(box)
            if box.kind == "map":
                d.cluster_looks[cluster] = "map"
        if data["decision"] is not None:
            running = ", ".join(data["running"])
            subtitle = "deciding" + (f" · running: {running}" if running else "")
            d.nodes.append(Node(sid, data["decision"], subtitle, "choice", cluster))
            continue
        subtitle = data["phase"].replace("stuck_wait", "stuck, waiting")
        if cluster is not None:
            done = _done_in_group(lay.containers[cluster].entry, data["running"])
            if done:
                subtitle += f" · done: {', '.join(done)}"
        subtitle += f" · {fail}" if fail else ""
        d.nodes.append(Node(sid, "\n".join(data["running"]), subtitle, data["phase"], cluster))
    merged: dict[tuple[str, str, str], list[str]] = {}
    for u, v, data in G.edges(data=True):
        if data["retry"]:
            look = "retry"
        elif data["kind"] == CRASH:
            look = "crash"
        elif data["probability"] is not None:
            look = "forward"
        elif data["kind"] != "ok":
            look = "failure"
        elif data["flow"] == "compensation" or G.nodes[u]["phase"] == "compensating":
            look = "compensation"
        else:
            look = "forward"
        label = data["event"] + (f" [{data['guard']}]" if data["guard"] else "")
        if data["probability"] is not None:
            label += f" · {percent(data['probability'])}"
        merged.setdefault((u, v, look), []).append(label)
    for (u, v, look), labels in merged.items():
        d.edges.append(Edge(u, v, "\n".join(labels), look))
    return d


def _machine_cluster_label(box: Container) -> str:
    if box.kind == "map":
        return box.label
    return f"parallel: {box.path}"


def _done_in_group(entry: object, running: tuple[str, ...]) -> list[str]:
    """Steps of a parallel group completed in a forward state running ``running``: told only
    for a group of plain steps that starts every branch at once (a map's waiting items, or a
    branch that branches, would look done)."""
    if not isinstance(entry, Parallel) or entry.concurrency is not None:
        return []
    if not all(isinstance(s, Step) for branch in entry.branches for s in branch):
        return []
    done: list[str] = []
    for branch in entry.branches:
        names = [s.name for s in branch if isinstance(s, Step)]
        current = next((k for k, n in enumerate(names) if n in running), len(names))
        done.extend(names[:current])
    return done
