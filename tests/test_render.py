"""Diagrams: what the saga and machine views contain, that every format writes a real file,
the Mermaid text, and the errors for bad requests."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from dataclasses import replace
from pathlib import Path

import networkx as nx
import pytest

from sagasim.exceptions import UsageError
from sagasim.machine import compile_saga
from sagasim.model import Compensation, Saga, Step
from sagasim.viz import diagram, draw, repr_svg, states_diagram, write
from sagasim.viz.graph import step_graph
from sagasim.viz.places import layout
from sagasim.viz.render import extract, to_mermaid

from .test_graph import MODELS, PARALLEL, SEQUENTIAL

SAGAS = pytest.mark.parametrize("saga", [SEQUENTIAL, PARALLEL], ids=["sequential", "parallel"])


def action_names(saga: Saga) -> list[str]:
    return [action.name for action in saga.actions()]


def svg_texts(svg: str) -> list[str]:
    """Every text element of an SVG document, as the reader sees it."""
    root = ET.fromstring(svg)
    texts = root.iter("{http://www.w3.org/2000/svg}text")
    return ["".join(el.itertext()).strip() for el in texts]


# --- the saga view -------------------------------------------------------------------------------


@SAGAS
def test_svg_shows_every_step_and_compensation(saga: Saga) -> None:
    texts = svg_texts(repr_svg(saga))
    for name in action_names(saga):
        assert name in texts
    for text in (
        "order_fulfillment",
        "read-only · orders",
        "compensatable · inventory",
        "pivot · payments",
        "retriable · shipping",
        "compensation · loyalty",
        "retry ×3",
        "retry ∞",
        "committed",
        "compensated",
    ):
        assert text in texts
    failure_labels = set(texts) & {"reject", "fail / timeout"}
    assert failure_labels == {"reject", "fail / timeout"}
    assert ("parallel" in texts) == (saga is PARALLEL)


@SAGAS
def test_saga_view_marks_kinds_and_ends(saga: Saga) -> None:
    d = extract(saga)
    looks = {node.id: node.look for node in d.nodes}
    assert looks == {
        "__start__": "start",
        "validate_order": "read_only",
        "recommend_upsell": "step",
        "reserve_inventory": "step",
        "fraud_check": "read_only",
        "hold_loyalty_points": "step",
        "process_payment": "pivot",
        "trigger_delivery": "retriable",
        "cancel_recommendation_tracking": "compensation",
        "release_inventory": "compensation",
        "restore_points": "compensation",
        "committed": "end_ok",
        "compensated": "end_ok",
    }
    subtitles = {node.id: node.subtitle for node in d.nodes}
    assert subtitles["process_payment"] == "pivot · payments"
    assert subtitles["release_inventory"] == "compensation · inventory"
    source = diagram(saga).source
    pivot_line = next(line for line in source.splitlines() if "\tprocess_payment [" in line)
    assert "peripheries=2" in pivot_line and "penwidth=2.4" in pivot_line
    assert "rankdir=LR" in source


@SAGAS
def test_compensations_run_back_below_their_steps(saga: Saga) -> None:
    d = extract(saga)
    column = {node_id: i for i, ids in enumerate(d.columns) for node_id in ids}
    for step in saga.all_steps():
        if step.compensation is not None and step.kind != "pivot":
            comp = step.compensation.name
            assert column[comp] == column[step.name]
            ids = d.columns[column[comp]]
            assert ids.index(comp) > ids.index(step.name)  # below it
    assert column["compensated"] == 0 and column["committed"] == len(d.columns) - 1
    looks = {(e.source, e.target): e.look for e in d.edges}
    assert looks["restore_points", "release_inventory"] == "compensation"
    assert looks["release_inventory", "cancel_recommendation_tracking"] == "compensation"
    assert looks["cancel_recommendation_tracking", "compensated"] == "compensation"
    assert looks["process_payment", "restore_points"] == "failure"
    assert looks["reserve_inventory", "fraud_check"] == "forward"
    source = diagram(saga).source
    # Drawn right to left: laid out forwards, arrowhead at the tail.
    assert re.search(r"\trelease_inventory -> restore_points \[[^\]]*dir=back", source)
    assert re.search(
        r"\tcompensated -> cancel_recommendation_tracking \[[^\]]*style=dashed", source
    )
    assert re.search(r"reserve_inventory -> release_inventory \[style=invis\]", source)


def test_saga_view_labels_retries_and_failures() -> None:
    d = extract(SEQUENTIAL)
    labels = {(e.source, e.target): (e.label, e.look) for e in d.edges}
    assert labels["recommend_upsell", "recommend_upsell"] == ("retry ×3", "retry")
    assert labels["trigger_delivery", "trigger_delivery"] == ("retry ∞", "retry")
    assert labels["release_inventory", "release_inventory"] == ("retry ∞", "retry")
    assert labels["validate_order", "compensated"] == ("reject", "failure")
    assert labels["recommend_upsell", "compensated"] == ("fail / timeout", "failure")
    assert labels["process_payment", "trigger_delivery"] == ("", "forward")
    sides = {e.source: e.side for e in d.edges if e.source == e.target}
    assert sides == {"recommend_upsell": "n", "trigger_delivery": "n", "release_inventory": "s"}


def test_parallel_group_is_a_labelled_cluster() -> None:
    d = extract(PARALLEL)
    assert d.clusters == {"cluster_group_3": "parallel"}
    members = {node.id for node in d.nodes if node.cluster == "cluster_group_3"}
    assert members == {"fraud_check", "hold_loyalty_points"}
    source = diagram(PARALLEL).source
    assert "subgraph cluster_group_3 {" in source
    cluster = source[source.index("subgraph cluster_group_3 {") :].split("\t}")[0]
    assert "label=parallel" in cluster and "\t\tfraud_check [" in cluster
    assert "restore_points [" not in cluster
    # The in-flight branch finishing after the other failed is left to the machine view.
    edges = {(e.source, e.target) for e in d.edges}
    assert ("fraud_check", "restore_points") in edges
    assert ("hold_loyalty_points", "restore_points") not in edges


def test_bad_end_states_are_red() -> None:
    saga = Saga(
        name="leaky",
        steps=(
            Step(name="send_email"),
            Step(name="reserve", compensation=Compensation(name="release", failure=0.1)),
            Step(name="charge", kind_declared="pivot", reject=0.2),
        ),
    )
    looks = {node.id: node.look for node in extract(saga).nodes}
    assert looks["leaked"] == "end_bad" and looks["stuck"] == "end_bad"
    assert looks["send_email"] == "uncompensatable"
    texts = svg_texts(repr_svg(saga))
    assert "no compensation · send_email" in texts
    assert "leaked" in texts and "stuck" in texts


# --- the machine view ----------------------------------------------------------------------------


def test_machine_view_draws_every_state_and_transition() -> None:
    machine = compile_saga(PARALLEL)
    d = extract(PARALLEL, view="machine")
    assert {node.id for node in d.nodes} == set(machine.states) | {"__start__"}
    labels = "\n".join(edge.label for edge in d.edges)
    for t in machine.transitions:
        guard = f" [{t.guard}]" if t.guard else ""
        assert t.event + guard in labels
    assert d.clusters == {"cluster_group_3": "parallel: steps[3]"}
    subtitles = {node.id: node.subtitle for node in d.nodes}
    assert subtitles["fraud_check__hold_loyalty_points"] == "forward"
    assert "forward · done: fraud_check" in subtitles.values()
    assert subtitles["restore_points"] == "compensating"
    texts = svg_texts(diagram(PARALLEL, view="machine").pipe(format="svg").decode())
    assert "halting" in texts and "process_payment.reject" in " ".join(texts)


# --- formats -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("suffix", "magic"),
    [
        (".pdf", b"%PDF"),
        (".png", b"\x89PNG"),
        (".svg", b"<svg"),
        (".dot", b"digraph"),
        (".mmd", b"flowchart"),
    ],
)
@pytest.mark.parametrize("view", ["saga", "machine"])
def test_every_format_writes_a_real_file(
    tmp_path: Path, suffix: str, magic: bytes, view: str
) -> None:
    out = draw(PARALLEL, tmp_path / f"diagram{suffix}", view=view)
    assert out == tmp_path / f"diagram{suffix}"
    data = out.read_bytes()
    assert len(data) > 200
    if suffix == ".svg":
        assert magic in data[:400]
        ET.fromstring(data)
    else:
        assert data.startswith(magic)


def test_unknown_suffix_is_a_usage_error(tmp_path: Path) -> None:
    with pytest.raises(UsageError) as err:
        draw(SEQUENTIAL, tmp_path / "diagram.xyz")
    assert str(err.value) == (
        "unknown diagram format '.xyz' (expected one of .svg, .png, .pdf, .dot, .mmd)"
    )
    assert not (tmp_path / "diagram.xyz").exists()


def test_other_bad_requests_are_usage_errors(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="unknown view 'states'"):
        draw(SEQUENTIAL, tmp_path / "d.svg", view="states")
    with pytest.raises(UsageError, match="Mermaid"):
        write(diagram(SEQUENTIAL), tmp_path / "d.mmd")
    with pytest.raises(UsageError, match="cannot write"):
        draw(SEQUENTIAL, tmp_path / "missing" / "d.dot")


def test_suffix_case_does_not_matter(tmp_path: Path) -> None:
    assert draw(SEQUENTIAL, tmp_path / "d.SVG").read_bytes().find(b"<svg") >= 0


# --- Mermaid -------------------------------------------------------------------------------------

NODE = re.compile(r'^\s+(\w+)(\[\[|\(\(\(|\(\(|\(\[|\[|\(|\{\{|\{)"')


@SAGAS
def test_mermaid_has_one_node_per_action(saga: Saga) -> None:
    text = to_mermaid(extract(saga))
    assert text.startswith("flowchart LR\n")
    declared = [m.group(1) for line in text.splitlines() if (m := NODE.match(line))]
    actions = action_names(saga)
    for name in actions:
        assert declared.count(name) == 1
    assert sorted(declared) == sorted([*actions, "__start__", "committed", "compensated"])
    shapes = {m.group(1): m.group(2) for line in text.splitlines() if (m := NODE.match(line))}
    assert shapes["process_payment"] == "[["  # the pivot, double-bordered
    assert shapes["restore_points"] == "(["
    assert shapes["committed"] == "((("
    assert '    process_payment -->|"reject"| restore_points' in text.splitlines()
    assert "    restore_points -.-> release_inventory" in text.splitlines()
    assert ('subgraph cluster_group_3 ["parallel"]' in text) == (saga is PARALLEL)
    links = [line for line in text.splitlines() if re.match(r"\s+\w+ (-->|-\.->)", line)]
    styles = [line for line in text.splitlines() if line.strip().startswith("linkStyle")]
    assert len(links) == len(styles)


def test_mermaid_ids_avoid_its_keywords() -> None:
    saga = Saga(
        name="keywords",
        steps=(Step(name="end", compensation=Compensation(name="graph")), Step(name="x", reject=1)),
    )
    text = to_mermaid(extract(saga))
    assert '    n_end["end<br/><small>compensatable · end</small>"]' in text.splitlines()
    assert "    n_graph -.-> compensated" in text.splitlines()
    assert not re.search(r"^\s+end\[", text, re.MULTILINE)


# --- the state space -----------------------------------------------------------------------------


def test_states_diagram_paints_bad_ends_red() -> None:
    G = nx.DiGraph()
    G.add_node(0, label="reserve (1,)", outcome=None, bad=False)
    G.add_node(1, label="release (1,)", outcome=None, bad=False)
    G.add_node(2, label="compensated", outcome="compensated", bad=False)
    G.add_node(3, label="stuck", outcome="stuck", bad=True)
    G.add_edge(0, 1, event="reserve.reject")
    G.add_edge(1, 2, event="release.ok")
    G.add_edge(1, 3, event="release.fail")
    source = states_diagram(G).source
    lines = {line.split(" [")[0].strip(): line for line in source.splitlines() if " [" in line}
    assert 'fillcolor="#fadbd8"' in lines["3"] and 'fillcolor="#d5f5e3"' in lines["2"]
    assert 'color="#c0392b"' in lines["1 -> 3"] and "release.fail" in lines["1 -> 3"]
    texts = svg_texts(states_diagram(G).pipe(format="svg").decode())
    assert {"reserve (1,)", "stuck", "release.ok"} <= set(texts)
    explicit = states_diagram(G, bad={2}).source
    assert 'fillcolor="#fadbd8"' in next(
        line for line in explicit.splitlines() if line.strip().startswith("2 [")
    )


def test_states_diagram_refuses_huge_graphs() -> None:
    G = nx.path_graph(2001, create_using=nx.DiGraph)
    with pytest.raises(UsageError) as err:
        states_diagram(G)
    assert str(err.value).startswith(
        "the state space has 2001 states; --view states draws at most 2000: "
    )
    G.remove_node(2000)
    assert states_diagram(G).source.startswith("digraph")


# --- the example models --------------------------------------------------------------------------


@pytest.mark.parametrize("path", MODELS, ids=lambda p: p.stem)
def test_every_model_draws_every_action(path: Path) -> None:
    from sagasim.io import load

    saga = load(path)
    texts = svg_texts(repr_svg(saga))  # a choreography's own drawing: its collaboration
    machine = compile_saga(saga)
    aliases = layout(saga).aliases  # a map's item copies are drawn as its body
    running = {aliases.get(a, a) for info in machine.states.values() for a in info.running}
    for name in action_names(saga):
        assert (name in texts) == (name in running)
    saga = replace(saga, coordination="orchestration")  # the saga view, in either coordination
    lines = to_mermaid(extract(saga)).splitlines()
    declared = [m.group(1) for line in lines if (m := NODE.match(line))]
    assert len(declared) == len(set(declared))
    S = step_graph(machine, saga)
    assert set(declared) == {"__start__", *S.nodes}
    ends = set(machine.terminals.values())
    assert running | (ends - {"committed"}) <= set(declared)
    # a commit is drawn as committed, or as the succeed it goes through
    assert ("committed" in ends) == any(S.nodes[n]["outcome"] == "committed" for n in S)
