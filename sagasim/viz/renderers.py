"""The renderers of a :class:`~sagasim.viz.diagram.Diagram`: Graphviz and Mermaid."""

from __future__ import annotations

import html
import json
import re
from collections.abc import Iterable
from itertools import pairwise

import graphviz

from .diagram import (
    CLUSTER_STYLE,
    EDGE_LOOKS,
    MAP_BACK,
    MAP_FRONT,
    MAP_STYLE,
    NODE_LOOKS,
    Diagram,
    Edge,
    Look,
    Node,
)

FONT = "Helvetica,Arial,sans-serif"
NOTE_COLOR = "#7b8a8b"
#: The shapes Graphviz draws by their own name; the others are styled boxes.
_GRAPHVIZ_SHAPES = frozenset({"ellipse", "diamond", "octagon", "cylinder"})


# --- Graphviz ----------------------------------------------------------------------------------


def _html_label(title: str, subtitle: str, look: Look, note: str = "") -> str:
    lines = "<br/>".join(f"<b>{html.escape(line)}</b>" for line in title.split("\n"))
    if subtitle:
        lines += f'<br/><font point-size="9" color="{look.text}">{html.escape(subtitle)}</font>'
    if note:
        lines += f'<br/><font point-size="8" color="{NOTE_COLOR}"><i>{html.escape(note)}</i></font>'
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
    attrs = {
        "shape": look.shape if look.shape in _GRAPHVIZ_SHAPES else "box",
        "style": ",".join(styles),
        "fillcolor": look.fill,
        "color": look.border,
        "fontcolor": look.text,
        "penwidth": str(look.penwidth),
        "peripheries": "2" if look.double else "1",
        "label": _html_label(node.title, node.subtitle, look, node.note),
    }
    if look.shape in ("diamond", "octagon"):
        attrs["margin"] = "0.04,0.02"  # these shapes grow faster than their text
    return attrs


def to_graphviz(d: Diagram) -> graphviz.Digraph:
    """Render ``d`` as a Graphviz digraph: left to right, clusters boxed, columns ranked."""
    g = graphviz.Digraph(name=d.name)
    title = f"<b>{html.escape(d.title)}</b>"
    if d.subtitle:
        title += f'<br/><font point-size="10" color="#566573">{html.escape(d.subtitle)}</font>'
    for note in d.notes:
        title += f'<br/><font point-size="10" color="{NOTE_COLOR}">{html.escape(note)}</font>'
    g.attr(rankdir="LR", nodesep="0.35", ranksep="0.55", pad="0.25", label=f"<{title}>")
    g.attr(fontname=FONT, labelloc="t", labeljust="l")
    g.attr("node", fontname=FONT, fontsize="12", margin="0.16,0.07")
    g.attr("edge", fontname=FONT, fontsize="9", arrowsize="0.7")
    cluster_of = {node.id: node.cluster for node in d.nodes}
    column_of = {node_id: index for index, column in enumerate(d.columns) for node_id in column}
    for cluster in d.clusters:
        if cluster not in d.cluster_parents:
            _cluster(g, d, cluster)
    for node in d.nodes:
        if node.cluster is None:
            g.node(node.id, **_node_attrs(node))
    for index, column in enumerate(d.columns):
        free = [n for n in column if cluster_of[n] is None]
        _stack(g, free)
        if len(free) < len(column):
            # A rank cannot hold nodes both inside and outside a cluster: pin the outside ones
            # (compensations of a parallel group's steps) between the neighbouring columns.
            before = next((c for c in reversed(d.columns[:index]) if c), None)
            after = next((c for c in d.columns[index + 1 :] if c), None)
            for node_id in free:
                if before is not None:
                    g.edge(before[-1], node_id, style="invis")
                if after is not None:
                    g.edge(node_id, after[-1], style="invis")
    for edge in d.edges:
        tail, head, attrs = _graphviz_edge(edge, column_of)
        g.edge(tail, head, **attrs)
    return g


def _cluster(graph: graphviz.Digraph, d: Diagram, cluster: str) -> None:
    """Draw ``cluster`` of ``d`` inside ``graph``: its nodes, its clusters, its columns.

    A map is two nested boxes, the outer one a little larger: a stack of cards."""
    with graph.subgraph(name=cluster) as sub:
        if d.cluster_looks.get(cluster) == "map":
            sub.attr(label=d.clusters[cluster], margin="5", fillcolor=MAP_BACK, **MAP_STYLE)
            with sub.subgraph(name=f"{cluster}_front") as front:
                front.attr(label="", margin="8", fillcolor=MAP_FRONT, **MAP_STYLE)
                _fill(front, d, cluster)
            return
        sub.attr(label=d.clusters[cluster], **CLUSTER_STYLE)
        _fill(sub, d, cluster)


def _fill(graph: graphviz.Digraph, d: Diagram, cluster: str) -> None:
    """The nodes of ``cluster``, the clusters inside it, and its nodes' rank columns."""
    for node in d.nodes:
        if node.cluster == cluster:
            graph.node(node.id, **_node_attrs(node))
    for inner, parent in d.cluster_parents.items():
        if parent == cluster:
            _cluster(graph, d, inner)
    cluster_of = {node.id: node.cluster for node in d.nodes}
    for column in d.columns:
        _stack(graph, [n for n in column if cluster_of[n] == cluster])


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
_MERMAID_SHAPES = {
    "box": "[]",
    "rounded": "()",
    "stadium": "([])",
    "ellipse": "(())",
    "diamond": "{}",
    "octagon": "{{}}",
    "cylinder": "[()]",
}
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
    if d.notes:  # a legend: the diagram's title, in Mermaid's front matter (a YAML string)
        legend = " · ".join([d.title, *d.notes])
        lines[:0] = ["---", f"title: {json.dumps(legend, ensure_ascii=False)}", "---"]

    def declare(node: Node, indent: str) -> None:
        look = NODE_LOOKS[node.look]
        shapes = _MERMAID_DOUBLE if look.double else _MERMAID_SHAPES
        brackets = shapes.get(look.shape, "(())")
        opening, closing = brackets[: len(brackets) // 2], brackets[len(brackets) // 2 :]
        text = "start" if look.shape == "point" else _mermaid_text(node.title)
        if node.subtitle:
            text += f"<br/><small>{_mermaid_text(node.subtitle)}</small>"
        if node.note:
            text += f"<br/><small><i>{_mermaid_text(node.note)}</i></small>"
        lines.append(f'{indent}{ids[node.id]}{opening}"{text}"{closing}')

    for node in d.nodes:
        if node.cluster is None:
            declare(node, "    ")

    def subgraph(cluster: str, indent: str) -> None:
        lines.append(f'{indent}subgraph {cluster} ["{_mermaid_text(d.clusters[cluster])}"]')
        for node in d.nodes:
            if node.cluster == cluster:
                declare(node, indent + "    ")
        for inner, parent in d.cluster_parents.items():
            if parent == cluster:
                subgraph(inner, indent + "    ")
        lines.append(f"{indent}end")

    for cluster in d.clusters:
        if cluster not in d.cluster_parents:
            subgraph(cluster, "    ")
    for cluster in d.clusters:
        if d.cluster_looks.get(cluster) == "map":  # the stack's grey back card, as a fill
            lines.append(f"    style {cluster} fill:{MAP_BACK},stroke:{MAP_STYLE['color']}")
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
