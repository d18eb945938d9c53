"""Draw a saga: pick the view's extractor, render its :class:`~sagasim.viz.diagram.Diagram`
with Graphviz or Mermaid, and write the file its suffix names.

The views: ``saga`` and ``machine`` (:mod:`sagasim.viz.diagram`) for an orchestrated saga,
``collaboration`` and ``service:NAME`` (:mod:`sagasim.viz.choreography`) for a choreographed
one; ``states``, the explored state space, is drawn by :func:`states_diagram`.

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

import os
from collections.abc import Collection, Hashable
from pathlib import Path

import graphviz
import networkx as nx

from ..exceptions import UsageError
from ..machine.program import ATTEMPT_KINDS
from ..model.saga import Saga
from .choreography import extract_choreography
from .diagram import MAX_STATES_DRAWN, START, Diagram, Edge, Node, machine_view, saga_view
from .renderers import to_graphviz, to_mermaid

__all__ = [
    "FORMATS",
    "diagram",
    "draw",
    "extract",
    "repr_svg",
    "states_diagram",
    "write",
]

FORMATS = (".svg", ".png", ".pdf", ".dot", ".mmd")
#: What ``check`` says of a coordinator's crash (docs/concurrency.md), drawn dashed grey.
CRASH_EVENTS = frozenset({"crash", "landed", "lost"})


def extract(saga: Saga, view: str = "") -> Diagram:
    """The :class:`Diagram` of ``saga`` in ``view``, by default its coordination's own (VIEWS)."""
    view = view or ("collaboration" if saga.coordination == "choreography" else "saga")
    if view in ("saga", "machine"):
        return saga_view(saga) if view == "saga" else machine_view(saga)
    return extract_choreography(saga, view)


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
    true); failed attempts are red edges, a coordinator's crash and whether the call in doubt
    landed (``ACTION.crash``, ``ACTION.landed``, ``ACTION.lost``) dashed grey ones. Node 0 is
    the start. Refuses graphs of more than 2000 states, which no one can read: the machine
    view, or ``sagasim check``, serves then.

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
    deciding = {n for n in G if _deciding(G, n)}
    for n, data in G.nodes(data=True):
        look = "end_bad" if n in bad else "state" if data.get("outcome") is None else "end_ok"
        look = "choice" if n in deciding else look
        d.nodes.append(Node(str(n), str(data.get("label", n)), look=look))
    for u, v, data in G.edges(data=True):
        event = str(data.get("event", ""))
        look = "forward" if event.endswith(".ok") or not event or u in deciding else "failure"
        if event.rsplit(".", 1)[-1] in CRASH_EVENTS:
            look = "crash_event"
        d.edges.append(Edge(str(u), str(v), event, "retry" if u == v else look))
    return to_graphviz(d)


def _deciding(G: nx.DiGraph, n: Hashable) -> bool:
    """Whether state ``n`` decides a choice: the machine names it ``deciding_...`` and only
    branch events leave it (a branch label never reads like an attempt's event)."""
    if not str(G.nodes[n].get("label", "")).startswith("deciding_"):
        return False
    kinds = [
        str(data.get("event", "")).rsplit(".", 1)[-1] for _, _, data in G.out_edges(n, data=True)
    ]
    return bool(kinds) and not ATTEMPT_KINDS.intersection(kinds)
