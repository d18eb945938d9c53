"""Diagrams of the graph model: where each construct's nodes sit (columns, boxes, map items
named back), its nodes, edges and boxes in Graphviz and Mermaid, the machine and states views
of it, SVG renders, and every random graph saga drawn."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings

from sagasim.machine import compile_saga, core, decision_events
from sagasim.model import Saga
from sagasim.verify import explore
from sagasim.viz import diagram, draw, repr_svg, states_diagram
from sagasim.viz.graph import percent
from sagasim.viz.places import layout
from sagasim.viz.render import extract, to_mermaid

from .graph_strategies import graph_sagas
from .test_graph import BULK, DRAWN_BULK, GRAPH_SAGAS, MIXED, ORDER, POLL, TRIP
from .test_render import NODE, svg_texts

EXAMPLES = pytest.mark.parametrize("saga", GRAPH_SAGAS.values(), ids=GRAPH_SAGAS.keys())


def node_line(source: str, node: str) -> str:
    """The Graphviz statement declaring ``node``."""
    return next(line for line in source.splitlines() if line.strip().startswith(f"{node} ["))


def edge_line(source: str, tail: str, head: str) -> str:
    """The Graphviz statement of the visible edge ``tail -> head``."""
    return next(
        line
        for line in source.splitlines()
        if line.strip().startswith(f"{tail} -> {head} [") and "invis" not in line
    )


def block(source: str, opening: str) -> str:
    """The text of the ``{ ... }`` block that starts at ``opening`` (nested blocks included)."""
    start = source.index(opening)
    depth = 0
    for k in range(start, len(source)):
        depth += {"{": 1, "}": -1}.get(source[k], 0)
        if depth == 0 and source[k] == "}":
            return source[start : k + 1]
    raise AssertionError(f"unclosed {opening}")


def mermaid_shapes(text: str) -> dict[str, str]:
    return {m.group(1): m.group(2) for line in text.splitlines() if (m := NODE.match(line))}


# --- where the graph model's nodes sit -----------------------------------------------------------


def test_layout_gives_each_construct_its_columns() -> None:
    columns = {name: place.column for name, place in layout(ORDER).places.items()}
    assert columns == {
        "check_stock": 1,
        "stock_level": 2,
        "reserve": 3,  # a choice's branches share the columns after its diamond
        "release": 3,
        "fail__out_of_stock": 3,
        "charge": 4,
        "refund": 4,
        "ship": 5,
    }
    assert layout(ORDER).width == 6
    poll = layout(POLL)
    assert {n: p.column for n, p in poll.places.items() if p.role != "compensation"} == {
        "submit": 1,
        "poll_status": 2,
        "ready": 3,
        "wait_a_bit": 4,  # the goto after it takes no column
        "succeed__finished": 5,
    }
    trip = layout(TRIP)
    assert [trip.places[n].column for n in ("reserve_room", "confirm_room", "pay")] == [2, 3, 4]
    whole = trip.places["cancel_hotel"]
    assert (whole.role, whole.owner, whole.column, whole.containers) == (
        "compensation",
        "book_hotel",
        2,
        (),
    )


def test_layout_boxes_nest() -> None:
    lay = layout(MIXED)
    boxes = {c.id: (c.kind, c.label, c.parent) for c in lay.containers.values()}
    assert boxes == {
        "cluster_group_1": ("parallel", "parallel", None),
        "cluster_saga_packing": ("saga", "saga packing (packing.yaml)", None),
        "cluster_map_fill": (
            "map",
            "map fill · items: [1, 2] · concurrency: all",
            "cluster_saga_packing",
        ),
    }
    assert lay.places["put"].containers == ("cluster_saga_packing", "cluster_map_fill")
    assert lay.places["cheap"].containers == ("cluster_group_1",)
    assert (lay.places["quote"].group, lay.places["quote"].branch) == (1, 1)
    assert lay.places["fail__max_visits"].column == lay.places["start_job"].column
    assert lay.hidden == {"fill"}  # its drawn count is the map's box, not a diamond
    assert layout(BULK).containers["cluster_map_pack_items"].label == (
        "map pack_items · items: 3 · concurrency: 2"
    )


def test_layout_names_map_items_back_to_the_body() -> None:
    lay = layout(BULK)
    assert lay.aliases == {
        **{f"pack_{k}": "pack" for k in (1, 2, 3)},
        **{f"unpack_{k}": "unpack" for k in (1, 2, 3)},
    }
    assert lay.items["unpack_2"] == ("pack_items", 2)
    assert layout(ORDER).aliases == {} and layout(ORDER).hidden == frozenset()


def test_layout_traces_what_flows_into_gotos_and_succeeds() -> None:
    poll = layout(POLL)
    assert poll.gotos == {("wait_a_bit", "ok")}
    assert poll.succeeds == {("ready", "done"): "succeed__finished"}
    assert poll.ending == {"succeed__finished"}
    mixed = layout(MIXED)
    assert mixed.gotos == {("ok", "retry")}
    assert mixed.succeeds == {("full", "yes"): "succeed__packed"}
    assert mixed.ending == frozenset()  # it ends the sub-saga only


# --- choice and fail -----------------------------------------------------------------------------


def test_a_choice_is_a_diamond_with_its_branches_on_its_edges() -> None:
    source = diagram(ORDER).source
    choice = node_line(source, "stock_level")
    assert "shape=diamond" in choice and 'fillcolor="#f4ecf7"' in choice
    assert "<b>stock_level</b>" in choice
    assert 'label=" in_stock · 90% "' in edge_line(source, "stock_level", "reserve")
    default = edge_line(source, "stock_level", "fail__out_of_stock")
    assert 'label=" otherwise · 10% (default) "' in default
    text = to_mermaid(extract(ORDER))
    assert mermaid_shapes(text)["stock_level"] == "{"
    assert '    stock_level{"stock_level"}' in text.splitlines()
    assert '    stock_level -->|"in_stock · 90%"| reserve' in text.splitlines()
    assert '    stock_level -->|"otherwise · 10% (default)"| fail__out_of_stock' in text


def test_a_fail_is_a_red_end_from_which_recovery_runs_back() -> None:
    source = diagram(ORDER).source
    fail = node_line(source, "fail__out_of_stock")
    assert "shape=octagon" in fail and 'fillcolor="#fadbd8"' in fail
    assert "<b>out_of_stock</b>" in fail and ">fail</font>" in fail
    # nothing was done yet: recovery is the dashed way straight back to compensated
    back = edge_line(source, "compensated", "fail__out_of_stock")
    assert "dir=back" in back and "style=dashed" in back and 'color="#ba4a00"' in back
    text = to_mermaid(extract(ORDER))
    assert mermaid_shapes(text)["fail__out_of_stock"] == "{{"
    assert '    fail__out_of_stock{{"out_of_stock<br/><small>fail</small>"}}' in text
    assert "    fail__out_of_stock -.-> compensated" in text.splitlines()
    d = extract(ORDER)
    column = {node_id: i for i, ids in enumerate(d.columns) for node_id in ids}
    assert column["fail__out_of_stock"] == column["reserve"] == column["stock_level"] + 1
    assert d.columns[column["reserve"]] == ["reserve", "fail__out_of_stock", "release"]


def test_a_step_that_compensates_itself_fails_straight_into_its_compensation() -> None:
    d = extract(ORDER)
    own = next(e for e in d.edges if (e.source, e.target) == ("charge", "refund"))
    assert (own.label, own.look) == ("reject · undo own", "failure")
    later = next(e for e in d.edges if (e.source, e.target) == ("ship", "refund"))
    assert later.label == "reject"
    column = {node_id: i for i, ids in enumerate(d.columns) for node_id in ids}
    assert column["charge"] == column["refund"]  # straight down
    assert 'taillabel=" reject · undo own "' in edge_line(diagram(ORDER).source, "charge", "refund")


# --- succeed and goto ----------------------------------------------------------------------------


def test_a_succeed_is_a_green_end_and_a_goto_a_dashed_back_edge() -> None:
    source = diagram(POLL).source
    finished = node_line(source, "succeed__finished")
    assert "shape=ellipse" in finished and "peripheries=2" in finished
    assert 'fillcolor="#d5f5e3"' in finished and ">succeed</font>" in finished
    assert "\tcommitted [" not in source
    goto = edge_line(source, "poll_status", "wait_a_bit")  # laid out forwards, drawn back
    assert 'label=" goto "' in goto and "dir=back" in goto
    assert "style=dashed" in goto and 'color="#1f618d"' in goto
    assert 'label=" pending · 40% (default) "' in edge_line(source, "ready", "wait_a_bit")
    text = to_mermaid(extract(POLL))
    assert '    wait_a_bit -.->|"goto"| poll_status' in text.splitlines()
    assert '    ready -->|"done · 60%"| succeed__finished' in text.splitlines()
    assert mermaid_shapes(text)["succeed__finished"] == "((("
    d = extract(POLL)
    column = {node_id: i for i, ids in enumerate(d.columns) for node_id in ids}
    assert column["succeed__finished"] == len(d.columns) - 2 == column["wait_a_bit"] + 1


def test_a_succeed_that_ends_a_sub_saga_only_is_single_bordered() -> None:
    source = diagram(MIXED).source
    packed = node_line(source, "succeed__packed")
    assert "peripheries=1" in packed and 'fillcolor="#d5f5e3"' in packed
    assert "peripheries=2" in node_line(source, "committed")
    assert 'label=" yes · 50% "' in edge_line(source, "full", "succeed__packed")
    assert "weight=8" in edge_line(source, "succeed__packed", "verify")  # the child goes on


# --- sub-sagas and maps --------------------------------------------------------------------------


def test_a_sub_saga_is_a_titled_box_with_its_compensation_under_it() -> None:
    source = diagram(TRIP).source
    box = block(source, "subgraph cluster_saga_book_hotel {")
    assert 'label="saga book_hotel (hotel.yaml)"' in box and 'style="rounded,dashed"' in box
    assert "\t\treserve_room [" in box and "\t\tconfirm_room [" in box
    assert "cancel_hotel [" not in box and "release_room [" not in box
    whole = node_line(source, "cancel_hotel")
    assert "compensation · all of book_hotel" in whole and 'style="filled,rounded,dashed"' in whole
    assert 'headlabel=" reject "' in edge_line(source, "cancel_hotel", "pay")
    d = extract(TRIP)
    column = {node_id: i for i, ids in enumerate(d.columns) for node_id in ids}
    assert column["cancel_hotel"] == column["reserve_room"]
    ids = d.columns[column["cancel_hotel"]]
    assert ids.index("cancel_hotel") > ids.index("release_room") > ids.index("reserve_room")
    text = to_mermaid(extract(TRIP))
    sub = text[
        text.index('    subgraph cluster_saga_book_hotel ["saga book_hotel (hotel.yaml)"]') :
    ]
    sub = sub[: sub.index("\n    end\n")]
    assert "        reserve_room[" in sub and "cancel_hotel" not in sub


def test_a_map_is_a_stacked_box_around_its_body_drawn_once() -> None:
    source = diagram(BULK).source
    outer = block(source, "subgraph cluster_map_pack_items {")
    front = block(outer, "subgraph cluster_map_pack_items_front {")
    assert 'label="map pack_items · items: 3 · concurrency: 2"' in outer
    assert 'fillcolor="#e5e8e8"' in outer and 'fillcolor="#ffffff"' in front
    assert 'label=""' in front and "\t\t\tpack [" in front  # the body, on the front card
    assert "unpack [" not in outer
    assert not re.search(r"\bpack_\d", source)  # not the machine's item copies
    assert "shape=diamond" not in diagram(DRAWN_BULK).source  # a drawn count is no choice
    assert 'label="map pack_items · items: [1, 2, 2, 5] · concurrency: 2"' in (
        diagram(DRAWN_BULK).source
    )
    text = to_mermaid(extract(BULK))
    opening = '    subgraph cluster_map_pack_items ["map pack_items · items: 3 · concurrency: 2"]'
    assert opening in text.splitlines()
    assert "    style cluster_map_pack_items fill:#e5e8e8,stroke:#566573" in text.splitlines()
    assert '    pack -->|"fail"| unpack' in text.splitlines()


def test_boxes_nest_in_both_renderers() -> None:
    source = diagram(MIXED).source
    packing = block(source, "subgraph cluster_saga_packing {")
    assert "subgraph cluster_map_fill {" in packing and "\t\t\t\tput [" in packing
    assert 'label="map fill · items: [1, 2] · concurrency: all"' in packing
    group = block(source, "subgraph cluster_group_1 {")
    assert "\t\tcheap [" in group and "\t\tfail__too_dear [" in group
    assert "shape=diamond" in node_line(source, "cheap")
    assert "at most 2 visits" in node_line(source, "start_job")
    assert "shape=octagon" in node_line(source, "fail__max_visits")
    assert 'label=" retry · 20% (default) · goto "' in edge_line(source, "start_job", "ok")
    lines = to_mermaid(extract(MIXED)).splitlines()
    outer = lines.index('    subgraph cluster_saga_packing ["saga packing (packing.yaml)"]')
    inner = lines.index(
        '        subgraph cluster_map_fill ["map fill · items: [1, 2] · concurrency: all"]'
    )
    assert outer < inner and lines[inner + 1].startswith("            put[")
    assert lines[inner + 2] == "        end"


# --- the machine and states views ----------------------------------------------------------------


def test_machine_view_draws_decisions_as_diamonds_with_probabilities() -> None:
    machine = compile_saga(ORDER)
    d = extract(ORDER, view="machine")
    assert {node.id for node in d.nodes} == set(machine.states) | {"__start__"}
    nodes = {node.id: node for node in d.nodes}
    deciding = nodes["deciding_stock_level"]
    assert (deciding.look, deciding.title, deciding.subtitle) == (
        "choice",
        "stock_level",
        "deciding",
    )
    assert nodes["compensated__out_of_stock"].subtitle == "fail: out_of_stock"
    assert nodes["compensated"].subtitle == ""
    labels = {(e.source, e.target): (e.label, e.look) for e in d.edges}
    assert labels["deciding_stock_level", "reserve"] == ("stock_level.in_stock · 90%", "forward")
    assert labels["deciding_stock_level", "compensated__out_of_stock"] == (
        "stock_level.otherwise · 10%",
        "forward",
    )
    source = diagram(ORDER, view="machine").source
    assert "shape=diamond" in node_line(source, "deciding_stock_level")
    assert mermaid_shapes(to_mermaid(d))["deciding_stock_level"] == "{"


def test_machine_view_boxes_a_map_and_says_what_still_runs_while_deciding() -> None:
    d = extract(BULK, view="machine")
    assert d.clusters == {"cluster_map_pack_items": "map pack_items · items: 3 · concurrency: 2"}
    assert d.cluster_looks == {"cluster_map_pack_items": "map"}
    inside = {node.id for node in d.nodes if node.cluster == "cluster_map_pack_items"}
    assert inside == {"pack_1__pack_2", "pack_2__pack_3", "pack_1__pack_3"} | {
        "pack_1",
        "pack_2",
        "pack_3",
    }
    subtitles = {node.id: node.subtitle for node in d.nodes}
    assert subtitles["pack_1__pack_2"] == "forward"  # waiting items are not called done
    m = extract(MIXED, view="machine")
    deciding = [n for n in m.nodes if n.look == "choice" and n.title == "cheap"]
    assert deciding and all(n.subtitle.startswith("deciding") for n in deciding)
    assert any(n.subtitle == "deciding · running: audit" for n in deciding)
    assert {n.cluster for n in deciding if "audit" in n.subtitle} == {"cluster_group_1"}


def test_states_view_draws_deciding_states_and_their_branches() -> None:
    G = explore(POLL).to_networkx()
    source = states_diagram(G).source
    deciding = [n for n, data in G.nodes(data=True) if data["label"].startswith("deciding_")]
    assert len(deciding) == 1
    assert "shape=diamond" in node_line(source, str(deciding[0]))
    for _, v, data in G.out_edges(deciding[0], data=True):
        branch = edge_line(source, str(deciding[0]), str(v))
        assert data["event"] in branch and 'color="#1b2631"' in branch
    assert "shape=diamond" not in node_line(source, "0")


# --- renders -------------------------------------------------------------------------------------


@EXAMPLES
def test_svg_shows_every_construct(saga: Saga) -> None:
    texts = svg_texts(repr_svg(saga))
    expected = {
        "order": {"stock_level", "in_stock · 90%", "out_of_stock", "reject · undo own"},
        "poll": {"ready", "goto", "finished", "succeed", "done · 60%"},
        "bulk": {"map pack_items · items: 3 · concurrency: 2", "pack", "unpack"},
        "drawn_bulk": {"map pack_items · items: [1, 2, 2, 5] · concurrency: 2"},
        "trip": {
            "saga book_hotel (hotel.yaml)",
            "cancel_hotel",
            "compensation · all of book_hotel",
        },
        "mixed": {"saga packing (packing.yaml)", "parallel", "max_visits", "too_dear", "packed"},
    }[saga.name if saga is not DRAWN_BULK else "drawn_bulk"]
    assert expected <= set(texts)
    assert "pack_1" not in texts and "put_1" not in texts  # a map's body, drawn once
    machine = compile_saga(saga)
    drawn = set(svg_texts(diagram(saga, view="machine").pipe(format="svg").decode()))
    chances = decision_events(core(saga))
    decisions = [t for t in machine.transitions if machine.states[t.source].decision]
    assert decisions or saga is BULK or saga is TRIP
    for t in decisions:
        assert f"{t.event} · {percent(chances[t.event][2])}" in drawn


@EXAMPLES
@pytest.mark.parametrize("suffix", [".png", ".dot", ".mmd"])
def test_every_format_writes_the_graph_model(saga: Saga, suffix: str, tmp_path: Path) -> None:
    out = draw(saga, tmp_path / f"d{suffix}")
    data = out.read_bytes()
    magic = {".png": b"\x89PNG", ".dot": b"digraph", ".mmd": b"flowchart LR"}[suffix]
    assert data.startswith(magic) and len(data) > 300


def mermaid_is_balanced(text: str) -> bool:
    """Every subgraph ends, every node line's brackets close the way they open."""
    lines = text.splitlines()
    opened = sum(1 for line in lines if line.strip().startswith("subgraph "))
    closed = sum(1 for line in lines if line.strip() == "end")
    pairs = {"[[": "]]", "(((": ")))", "((": "))", "([": "])", "[": "]", "(": ")"}
    pairs |= {"{{": "}}", "{": "}"}
    for line in lines:
        m = NODE.match(line)
        if m and not line.rstrip().endswith(f'"{pairs[m.group(2)]}'):
            return False
    return opened == closed


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(graph_sagas())
def test_every_graph_saga_draws(saga: Saga) -> None:
    for view in ("saga", "machine"):
        d = extract(saga, view)
        ids = [node.id for node in d.nodes]
        assert len(ids) == len(set(ids))
        assert all(e.source in ids and e.target in ids for e in d.edges)
        assert all(c in d.clusters for c in d.cluster_parents.values())
        if view == "saga":
            placed = [node_id for column in d.columns for node_id in column]
            assert sorted(placed) == sorted(ids)
        assert mermaid_is_balanced(to_mermaid(d))
    assert b"<svg" in diagram(saga).pipe(format="svg")
