"""Saga diagrams: extract a neutral :class:`Diagram`, then render it with Graphviz or Mermaid.

As in python-statemachine, drawing is extract → intermediate → renderer: the extractors read
the graphs of :mod:`sagasim.graph` (what is drawn is the compiled machine) and build a
:class:`Diagram`; :func:`to_graphviz` and :func:`to_mermaid` render it. Two views of a saga:

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
>>> saga = Saga(name="pay", steps=(
...     Step(name="reserve", service="inventory", compensation=Compensation(name="release")),
...     Step(name="charge", kind_declared="pivot", reject=0.1),
... ))
>>> text = to_mermaid(extract(saga))
>>> for line in text.splitlines()[:6]:
...     print(line)
flowchart LR
    %% pay: saga view
    __start__(("start"))
    reserve["reserve<br/><small>compensatable · inventory</small>"]
    charge[["charge<br/><small>pivot · charge</small>"]]
    release(["release<br/><small>compensation · inventory</small>"])
>>> '    charge -->|"reject"| release' in text.splitlines()
True
>>> diagram(saga).source.startswith("digraph pay {")
True
"""

from __future__ import annotations

import html
import os
import re
from collections.abc import Collection, Hashable, Iterable
from dataclasses import dataclass, field
from itertools import pairwise
from pathlib import Path

import graphviz
import networkx as nx

from .exceptions import UsageError
from .graph import step_graph, structure_graph
from .machine import compile_saga
from .model import Parallel, Saga

__all__ = [
    "FORMATS",
    "Diagram",
    "diagram",
    "draw",
    "extract",
    "repr_svg",
    "states_diagram",
    "to_graphviz",
    "to_mermaid",
    "write",
]

FORMATS = (".svg", ".png", ".pdf", ".dot", ".mmd")
VIEWS = ("saga", "machine", "collaboration", "service:NAME")  # the last two: choreography
MAX_STATES_DRAWN = 2000
START = "__start__"
FONT = "Helvetica,Arial,sans-serif"


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
_KIND_WORDS = {"read_only": "read-only", "uncompensatable": "no compensation"}


# --- extractors --------------------------------------------------------------------------------


def extract(saga: Saga, view: str = "") -> Diagram:
    """The :class:`Diagram` of ``saga`` in ``view``, by default its coordination's own (VIEWS)."""
    view = view or ("collaboration" if saga.coordination == "choreography" else "saga")
    if view in ("saga", "machine"):
        return _saga_view(saga) if view == "saga" else _machine_view(saga)
    from .render_choreography import extract_choreography  # the rest, or an unknown view

    return extract_choreography(saga, view)


def _columns(saga: Saga) -> dict[str, int]:
    """Rank column of every step: entries left to right, a group's branches side by side."""
    columns: dict[str, int] = {}
    column = 1
    for entry in saga.steps:
        branches = entry.branches if isinstance(entry, Parallel) else ((entry,),)
        columns.update({s.name: column + k for b in branches for k, s in enumerate(b)})
        column += max(len(branch) for branch in branches)
    return columns


def _saga_view(saga: Saga) -> Diagram:
    S = step_graph(compile_saga(saga), saga)
    pivot = f"pivot: {S.graph['pivot']}" if S.graph["pivot"] else "no pivot"
    count = sum(1 for _ in saga.all_steps())
    subtitle = f"{count} steps · {saga.compensation_order} compensation · {pivot}"
    d = Diagram(saga.name, "saga", saga.name, subtitle, nodes=[Node(START, "", look="start")])
    step_column = _columns(saga)
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
        subtitle = f"{_KIND_WORDS.get(kind, kind)} · {data['service']}"
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


def _machine_view(saga: Saga) -> Diagram:
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


# --- Graphviz ----------------------------------------------------------------------------------


def _html_label(title: str, subtitle: str, look: Look) -> str:
    lines = "<br/>".join(f"<b>{html.escape(line)}</b>" for line in title.split("\n"))
    if subtitle:
        lines += f'<br/><font point-size="9" color="{look.text}">{html.escape(subtitle)}</font>'
    return f"<{lines}>"


def _node_attrs(node: Node) -> dict[str, str]:
    look = NODE_LOOKS[node.look]
    if look.shape == "point":
        return {"shape": "point", "width": "0.14", "color": look.border}
    styles = ["filled"]
    if look.shape in ("rounded", "stadium"):
        styles.append("rounded")
    if look.dashed:
        styles.append("dashed")
    return {
        "shape": "ellipse" if look.shape == "ellipse" else "box",
        "style": ",".join(styles),
        "fillcolor": look.fill,
        "color": look.border,
        "fontcolor": look.text,
        "penwidth": str(look.penwidth),
        "peripheries": "2" if look.double else "1",
        "label": _html_label(node.title, node.subtitle, look),
    }


def to_graphviz(d: Diagram) -> graphviz.Digraph:
    """Render ``d`` as a Graphviz digraph: left to right, clusters boxed, columns ranked."""
    g = graphviz.Digraph(name=d.name)
    title = f"<b>{html.escape(d.title)}</b>"
    if d.subtitle:
        title += f'<br/><font point-size="10" color="#566573">{html.escape(d.subtitle)}</font>'
    g.attr(rankdir="LR", nodesep="0.35", ranksep="0.55", pad="0.25", label=f"<{title}>")
    g.attr(fontname=FONT, labelloc="t", labeljust="l")
    g.attr("node", fontname=FONT, fontsize="12", margin="0.16,0.07")
    g.attr("edge", fontname=FONT, fontsize="9", arrowsize="0.7")
    cluster_of = {node.id: node.cluster for node in d.nodes}
    column_of = {node_id: index for index, column in enumerate(d.columns) for node_id in column}
    for cluster, label in d.clusters.items():
        with g.subgraph(name=cluster) as sub:
            sub.attr(label=label, **CLUSTER_STYLE)
            for node in d.nodes:
                if node.cluster == cluster:
                    sub.node(node.id, **_node_attrs(node))
            for column in d.columns:
                _stack(sub, [n for n in column if cluster_of[n] == cluster])
    for node in d.nodes:
        if node.cluster is None:
            g.node(node.id, **_node_attrs(node))
    for index, column in enumerate(d.columns):
        free = [n for n in column if cluster_of[n] is None]
        _stack(g, free)
        if len(free) < len(column):
            # A rank cannot hold nodes both inside and outside a cluster: pin the outside ones
            # (compensations of a parallel group's steps) between the neighbouring columns.
            before, after = d.columns[index - 1], d.columns[index + 1 : index + 2]
            for node_id in free:
                g.edge(before[-1], node_id, style="invis")
                for column_after in after:
                    g.edge(node_id, column_after[-1], style="invis")
    for edge in d.edges:
        tail, head, attrs = _graphviz_edge(edge, column_of)
        g.edge(tail, head, **attrs)
    return g


def _stack(graph: graphviz.Digraph, node_ids: list[str]) -> None:
    """Put ``node_ids`` in one rank, top to bottom in this order."""
    if len(node_ids) < 2:
        return
    with graph.subgraph() as rank:
        rank.attr(rank="same")
        for top, below in pairwise(node_ids):
            rank.edge(top, below, style="invis")


def _graphviz_edge(edge: Edge, column_of: dict[str, int]) -> tuple[str, str, dict[str, str]]:
    """Tail, head and attributes of ``edge`` in the Graphviz source."""
    color, style, penwidth, weight = EDGE_LOOKS[edge.look]
    attrs = {"color": color, "penwidth": str(penwidth), "fontcolor": color}
    if weight != 1:  # 0: the edge does not shape the layout (a choreography's failure events)
        attrs.update({"weight": str(weight)} if weight else {"constraint": "false"})
    if style:
        attrs["style"] = style
    if edge.side:
        attrs.update(tailport=edge.side, headport=edge.side)
    tail, head = edge.source, edge.target
    if column_of.get(tail, 0) > column_of.get(head, 0):
        # Against the flow: lay it out forwards and put the arrowhead at the tail.
        tail, head = head, tail
        attrs["dir"] = "back"
    if edge.label:
        key = "label"
        if edge.label_at_source:
            # Beside the edge, a little way out of the failing step, on its right-hand side.
            key, angle = ("headlabel", "40") if tail != edge.source else ("taillabel", "-40")
            attrs.update(labeldistance="2", labelangle=angle)
        attrs[key] = f" {edge.label} "
    return tail, head, attrs


# --- Mermaid -----------------------------------------------------------------------------------

#: Mermaid brackets by shape; a double border exists for boxes and ellipses only.
_MERMAID_SHAPES = {"box": "[]", "rounded": "()", "stadium": "([])", "ellipse": "(())"}
_MERMAID_DOUBLE = {"box": "[[]]", "ellipse": "((()))"}
_MERMAID_KEYWORDS = frozenset(
    {"end", "graph", "flowchart", "subgraph", "style", "class", "classdef", "click"}
    | {"linkstyle", "direction", "default"}
)


def _mermaid_ids(ids: Iterable[str]) -> dict[str, str]:
    """Mermaid-safe, unique node ids: identifiers, never a keyword."""
    safe: dict[str, str] = {}
    taken: set[str] = set()
    for node_id in ids:
        candidate = re.sub(r"\W", "_", node_id) or "_"
        if candidate.lower() in _MERMAID_KEYWORDS or candidate[0].isdigit():
            candidate = f"n_{candidate}"
        while candidate in taken:
            candidate += "_"
        taken.add(candidate)
        safe[node_id] = candidate
    return safe


def _mermaid_text(text: str) -> str:
    return html.escape(text, quote=False).replace('"', "#quot;").replace("\n", "<br/>")


def to_mermaid(d: Diagram) -> str:
    """Render ``d`` as Mermaid flowchart text (no Graphviz needed)."""
    ids = _mermaid_ids(node.id for node in d.nodes)
    lines = ["flowchart LR", f"    %% {d.name}: {d.view} view"]

    def declare(node: Node, indent: str) -> None:
        look = NODE_LOOKS[node.look]
        shapes = _MERMAID_DOUBLE if look.double else _MERMAID_SHAPES
        brackets = shapes.get(look.shape, "(())")
        opening, closing = brackets[: len(brackets) // 2], brackets[len(brackets) // 2 :]
        text = "start" if look.shape == "point" else _mermaid_text(node.title)
        if node.subtitle:
            text += f"<br/><small>{_mermaid_text(node.subtitle)}</small>"
        lines.append(f'{indent}{ids[node.id]}{opening}"{text}"{closing}')

    for node in d.nodes:
        if node.cluster is None:
            declare(node, "    ")
    for cluster, label in d.clusters.items():
        lines.append(f'    subgraph {cluster} ["{_mermaid_text(label)}"]')
        for node in d.nodes:
            if node.cluster == cluster:
                declare(node, "        ")
        lines.append("    end")
    link_styles: list[str] = []
    for index, edge in enumerate(d.edges):
        arrow = "-.->" if EDGE_LOOKS[edge.look][1] else "-->"
        label = f'|"{_mermaid_text(edge.label)}"|' if edge.label else ""
        lines.append(f"    {ids[edge.source]} {arrow}{label} {ids[edge.target]}")
        color = EDGE_LOOKS[edge.look][0]
        link_styles.append(f"    linkStyle {index} stroke:{color},color:{color}")
    lines.extend(link_styles)
    used = sorted({node.look for node in d.nodes})
    for name in used:
        look = NODE_LOOKS[name]
        dash = ",stroke-dasharray:5 3" if look.dashed else ""
        lines.append(
            f"    classDef {name} fill:{look.fill},stroke:{look.border},color:{look.text},"
            f"stroke-width:{look.penwidth}px{dash}"
        )
        members = ",".join(ids[node.id] for node in d.nodes if node.look == name)
        lines.append(f"    class {members} {name}")
    return "\n".join(lines) + "\n"


# --- the public entry points -------------------------------------------------------------------


def diagram(saga: Saga, view: str = "") -> graphviz.Digraph:
    """The Graphviz diagram of ``saga`` in ``view`` (see :func:`extract`).

    >>> from sagasim.model import Saga, Step
    >>> g = diagram(Saga(name="one", steps=(Step(name="only", effects=False),)))
    >>> "read-only · only" in g.source
    True
    """
    return to_graphviz(extract(saga, view))


def repr_svg(saga: Saga) -> str:
    """The saga view as SVG text, for ``Saga._repr_svg_`` in Jupyter."""
    return _pipe(diagram(saga), "svg").decode("utf-8")


def _suffix(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix not in FORMATS:
        raise UsageError(
            f"unknown diagram format '{suffix}' (expected one of {', '.join(FORMATS)})"
        )
    return suffix


def _pipe(graph: graphviz.Digraph, fmt: str) -> bytes:
    if fmt == "png":
        graph = graph.copy()
        graph.attr(dpi="150")
    try:
        data: bytes = graph.pipe(format=fmt)
    except graphviz.ExecutableNotFound as err:
        raise UsageError(
            f"drawing .{fmt} needs Graphviz's `dot` program on PATH (https://graphviz.org/"
            "download/); .dot and .mmd files need nothing"
        ) from err
    return data


def _write_bytes(path: Path, data: bytes) -> Path:
    try:
        path.write_bytes(data)
    except OSError as err:
        raise UsageError(f"cannot write {path}: {err.strerror or err}") from err
    return path


def write(graph: graphviz.Digraph, path: str | os.PathLike[str]) -> Path:
    """Write a Graphviz diagram to ``path`` as .svg, .png, .pdf or .dot (from the suffix)."""
    path = Path(path)
    suffix = _suffix(path)
    if suffix == ".mmd":
        raise UsageError("this diagram has no Mermaid (.mmd) form: write .svg, .png, .pdf or .dot")
    if suffix == ".dot":
        return _write_bytes(path, graph.source.encode("utf-8"))
    return _write_bytes(path, _pipe(graph, suffix[1:]))


def draw(saga: Saga, path: str | os.PathLike[str], view: str = "") -> Path:
    """Draw ``saga`` to ``path``; the suffix picks the format: .svg .png .pdf .dot .mmd.

    >>> import tempfile
    >>> from sagasim.model import Saga, Step
    >>> saga = Saga(name="one", steps=(Step(name="only"),))
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     out = draw(saga, Path(tmp) / "one.mmd")
    ...     out.read_text().splitlines()[0]
    'flowchart LR'
    >>> draw(saga, "one.xyz")
    Traceback (most recent call last):
    sagasim.exceptions.UsageError: unknown diagram format '.xyz' (expected one of .svg, ...)
    """
    path = Path(path)
    suffix = _suffix(path)
    d = extract(saga, view)
    if suffix == ".mmd":
        return _write_bytes(path, to_mermaid(d).encode("utf-8"))
    return write(to_graphviz(d), path)


def states_diagram(G: nx.DiGraph, bad: Collection[Hashable] | None = None) -> graphviz.Digraph:
    """A state-space graph: node attrs ``label`` and ``outcome``, edge attr ``event``.

    ``bad`` lists the end states to draw in red (default: the nodes whose ``bad`` attribute is
    true); failed attempts are red edges. Node 0 is the start. Refuses graphs of more than
    2000 states, which no one can read: the machine view, or ``sagasim check``, serves then.

    >>> G = nx.DiGraph()
    >>> G.add_node(0, label="charge", outcome=None)
    >>> G.add_node(1, label="stuck", outcome="stuck", bad=True)
    >>> G.add_edge(0, 1, event="charge.reject")
    >>> 'fillcolor="#fadbd8"' in states_diagram(G).source
    True
    """
    count = G.number_of_nodes()
    if count > MAX_STATES_DRAWN:
        raise UsageError(
            f"the state space has {count} states; --view states draws at most "
            f"{MAX_STATES_DRAWN}: draw --view machine instead, or run `sagasim check`"
        )
    if bad is None:
        bad = {n for n, data in G.nodes(data=True) if data.get("bad")}
    name = G.graph.get("name")
    title = f"{name}: state space" if name else "state space"
    subtitle = f"{count} states · {G.number_of_edges()} transitions · {len(bad)} bad"
    d = Diagram(str(name or "states"), "states", title, subtitle)
    if 0 in G:
        d.nodes.append(Node(START, "", look="start"))
        d.edges.append(Edge(START, "0"))
    for n, data in G.nodes(data=True):
        look = "end_bad" if n in bad else "state" if data.get("outcome") is None else "end_ok"
        d.nodes.append(Node(str(n), str(data.get("label", n)), look=look))
    for u, v, data in G.edges(data=True):
        event = str(data.get("event", ""))
        look = "forward" if event.endswith(".ok") or not event else "failure"
        d.edges.append(Edge(str(u), str(v), event, "retry" if u == v else look))
    return to_graphviz(d)
