"""Diagrams of many sagas at once: shared resources as data nodes with their reads and writes,
the coordinator's log points and legend, and crash edges in the saga, machine and states views
(docs/concurrency.md). Models without these keys are drawn as before (the pinned goldens hold
them byte for byte; here: a coordinator that cannot crash changes nothing)."""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path

import networkx as nx
import pytest

from sagasim.io import load
from sagasim.machine import compile_saga
from sagasim.model import Coordinator
from sagasim.viz import diagram, draw, repr_svg, states_diagram
from sagasim.viz.graph import step_graph
from sagasim.viz.render import extract, to_mermaid

from .test_graph import PARALLEL, SEQUENTIAL
from .test_render import svg_texts

MODELS = Path(__file__).parent.parent / "models"
GREY, TEAL = "#7b8a8b", "#117864"
#: The seat-booking family: each file's seat isolation, and how book_seat and release_seat
#: write the count (docs/concurrency.md: a compensation writes back after set, adds -by after add).
FAMILY = {
    "seat_booking": ("none", "set -1", "set back"),
    "seat_booking_semantic_lock": ("semantic_lock", "set -1", "set back"),
    "seat_booking_reread": ("reread", "set -1", "set back"),
    "seat_booking_version": ("version", "set -1", "set back"),
    "seat_booking_commutative": ("none", "add -1", "add"),
}


def dot_statements(source: str) -> tuple[dict[str, dict[str, str]], list[tuple[str, str, dict]]]:
    """The node and visible edge statements of a Graphviz source: attributes by node, and
    ``(source, target, attributes)`` per edge as the arrow points (``dir=back`` turned round)."""
    nodes: dict[str, dict[str, str]] = {}
    edges: list[tuple[str, str, dict[str, str]]] = []
    for line in source.splitlines():
        m = re.match(r"^\t+(\w+)(?: -> (\w+))? \[(.*)\]$", line)
        if m is None:
            continue
        attrs = dict(re.findall(r'(\w+)=(<.*>(?= \w+=|$)|"[^"]*"|\S+)', m.group(3)))
        attrs = {k: v.strip('"') for k, v in attrs.items()}
        if m.group(2) is None:
            nodes[m.group(1)] = attrs
        elif attrs.get("style") != "invis":
            tail, head = m.group(1), m.group(2)
            if attrs.get("dir") == "back":
                tail, head = head, tail
            edges.append((tail, head, attrs))
    return nodes, edges


def label_of(attrs: dict[str, str]) -> str:
    return (attrs.get("label") or attrs.get("headlabel") or attrs.get("taillabel") or "").strip()


# --- shared resources ----------------------------------------------------------------------------


@pytest.mark.parametrize("name", FAMILY)
def test_each_resource_is_a_cylinder_titled_with_its_isolation(name: str) -> None:
    saga = load(MODELS / f"{name}.yaml")
    nodes, _ = dot_statements(diagram(saga).source)
    cylinders = {n for n, attrs in nodes.items() if attrs.get("shape") == "cylinder"}
    assert cylinders == {"resource__seats"}
    isolation = FAMILY[name][0]
    assert f"<b>seats ({isolation})</b>" in nodes["resource__seats"]["label"]
    assert "initial 100" in nodes["resource__seats"]["label"]
    # no step is drawn as a cylinder, and the seats are not a step
    assert nodes["book_seat"]["shape"] == "box"


@pytest.mark.parametrize("name", FAMILY)
def test_an_edge_per_read_and_write_labelled_with_its_mode(name: str) -> None:
    saga = load(MODELS / f"{name}.yaml")
    _, edges = dot_statements(diagram(saga).source)
    touching = {(u, v, label_of(a)) for u, v, a in edges if "resource__seats" in (u, v)}
    _, write, undo = FAMILY[name]
    assert touching == {
        ("resource__seats", "count_seats", "reads"),
        ("book_seat", "resource__seats", write),
        ("release_seat", "resource__seats", undo),
    }
    for u, v, attrs in edges:
        if "resource__seats" in (u, v):
            assert attrs["style"] == "dotted" and attrs["color"] == TEAL
            assert attrs.get("constraint") == "false"  # data does not bend the saga's rows
    forward = next(a for u, v, a in edges if (u, v) == ("count_seats", "book_seat"))
    assert forward["color"] != TEAL and "style" not in forward


def test_a_resource_sits_on_top_of_the_column_of_its_first_user() -> None:
    d = extract(load(MODELS / "seat_booking.yaml"))
    column = next(ids for ids in d.columns if "count_seats" in ids)
    assert column[0] == "resource__seats" and column.index("count_seats") == 1


def test_a_compensation_undoes_its_steps_writes_without_listing_them() -> None:
    saga = load(MODELS / "seat_booking.yaml")
    release = saga.step("book_seat").compensation
    assert release is not None and release.writes == ()  # the model lists none
    pairs = {(e.source, e.target, e.label) for e in extract(saga).edges if e.look == "data"}
    assert ("release_seat", "resource__seats", "set back") in pairs


def test_writes_by_other_amounts_show_them_and_an_unused_resource_stands_alone() -> None:
    saga = load(MODELS / "seat_booking_commutative.yaml")
    book = saga.step("book_seat")
    write = replace(book.writes[0], by=-3)
    saga = replace(
        saga,
        steps=tuple(replace(e, writes=(write,)) if e is book else e for e in saga.steps),
        resources=(*saga.resources, replace(saga.resources[0], name="meals", initial=2.5)),
    )
    d = extract(saga)
    labels = {(e.source, e.target): e.label for e in d.edges if e.look == "data"}
    assert labels["book_seat", "resource__seats"] == "add -3"
    assert labels["release_seat", "resource__seats"] == "add +3"
    meals = next(n for n in d.nodes if n.id == "resource__meals")
    assert (meals.title, meals.subtitle, meals.look) == ("meals (none)", "initial 2.5", "resource")
    assert not any("resource__meals" in (e.source, e.target) for e in d.edges)


def test_mermaid_draws_resources_as_cylinders_with_their_edges() -> None:
    text = to_mermaid(extract(load(MODELS / "seat_booking_semantic_lock.yaml")))
    lines = text.splitlines()
    declared = [line.strip() for line in lines if line.strip().startswith("resource__seats")]
    assert declared[0].startswith('resource__seats[("seats (semantic_lock)<br/>')
    assert declared[0].endswith('")]')  # [( ... )]: Mermaid's cylinder
    data = [
        '    resource__seats -.->|"reads"| count_seats',
        '    book_seat -.->|"set -1"| resource__seats',
        '    release_seat -.->|"set back"| resource__seats',
    ]
    for line in data:
        assert line in lines
    links = [line for line in lines if re.match(r"\s+\w+ (-->|-\.->)", line)]
    for line in data:
        index = links.index(line)
        assert f"    linkStyle {index} stroke:{TEAL},color:{TEAL}" in lines
    assert "    class resource__seats resource" in lines


def test_the_svg_shows_the_data_and_its_labels() -> None:
    texts = svg_texts(repr_svg(load(MODELS / "seat_booking_version.yaml")))
    for text in ("seats (version)", "initial 100", "reads", "set -1", "set back"):
        assert text in texts


# --- a coordinator that crashes ------------------------------------------------------------------


def crash_model(recovery: str = "forward"):
    saga = load(MODELS / "seat_booking_crash.yaml")
    assert saga.coordinator is not None
    return replace(saga, coordinator=replace(saga.coordinator, recovery=recovery))


def test_every_call_is_marked_with_its_log_points_and_the_legend_says_how_it_crashes() -> None:
    saga = crash_model()
    d = extract(saga)
    calls = {a.name for a in saga.actions()}
    marked = {n.id for n in d.nodes if n.note}
    assert marked == calls
    assert {n.note for n in d.nodes if n.note} == {"log: start · outcome"}
    (legend,) = d.notes
    for part in ("crash 0.1% after each log write", "restart 5s", "recovery forward"):
        assert part in legend
    source = diagram(saga).source
    assert "log: start · outcome" in source and legend in source.splitlines()[1]
    mermaid = to_mermaid(d)
    assert mermaid.startswith('---\ntitle: "seat_booking_crash · coordinator: crash 0.1%')
    assert "\n---\nflowchart LR\n" in mermaid
    assert "<small><i>log: start · outcome</i></small>" in mermaid


def test_forward_recovery_re_runs_each_call_as_a_dashed_grey_loop() -> None:
    saga = crash_model("forward")
    _, edges = dot_statements(diagram(saga).source)
    crashes = {(u, v): a for u, v, a in edges if "crash" in label_of(a)}
    calls = {a.name for a in saga.actions()}
    assert set(crashes) == {(c, c) for c in calls}
    for attrs in crashes.values():
        assert label_of(attrs) == "crash · re-run"
        assert attrs["style"] == "dashed" and attrs["color"] == GREY
    retries = {(u, v) for u, v, a in edges if label_of(a).startswith("retry")}
    assert ("book_seat", "book_seat") in retries  # the retry loop is still its own edge


def test_backward_recovery_undoes_the_call_in_doubt_before_the_pivot_only() -> None:
    saga = crash_model("backward")
    S = step_graph(compile_saga(saga), saga)
    # docs/concurrency.md: backward compensates what completed and the step in doubt first;
    # past the pivot and while compensating, recovery is forward (the call re-runs)
    assert S.nodes["count_seats"]["crash"] == ("compensated",)
    assert S.nodes["book_seat"]["crash"] == ("release_seat",)
    assert S.nodes["send_ticket"]["crash"] == ("send_ticket",)
    assert S.nodes["release_seat"]["crash"] == ("release_seat",)
    _, edges = dot_statements(diagram(saga).source)
    crash = {(u, v): label_of(a) for u, v, a in edges if "crash" in label_of(a)}
    assert crash["book_seat", "release_seat"] == "crash"
    assert crash["release_seat", "release_seat"] == "crash · re-run"
    fail = next(label_of(a) for u, v, a in edges if (u, v) == ("book_seat", "compensated"))
    assert fail == "fail"  # the failure edge keeps its own label: a crash is not a failure


def test_the_machine_view_draws_crash_edges_dashed_grey_and_not_as_retries() -> None:
    saga = crash_model("backward")
    machine = compile_saga(saga)
    crash_events = [t.event for t in machine.transitions if t.kind == "crash"]
    assert crash_events  # one per running call of each state
    source = diagram(saga, view="machine").source
    _, edges = dot_statements(source)
    drawn = []
    for _, _, attrs in edges:
        events = label_of(attrs).split("\n")
        if any(e.endswith(".crash") for e in events):
            assert all(e.endswith(".crash") for e in events)  # never merged with others
            assert attrs["style"] == "dashed" and attrs["color"] == GREY
            drawn.extend(events)
        else:
            assert attrs.get("color") != GREY
    assert sorted(drawn) == sorted(crash_events)
    assert "coordinator: crash 0.1%" in source.splitlines()[1]


def test_the_states_view_draws_crashes_dashed_grey() -> None:
    G = nx.DiGraph()
    G.add_node(0, label="book_seat", outcome=None)
    G.add_node(1, label="book_seat in doubt", outcome=None)
    G.add_node(2, label="committed", outcome="committed")
    G.add_edge(0, 1, event="book_seat.crash")
    G.add_edge(1, 0, event="book_seat.landed")
    G.add_edge(0, 2, event="book_seat.ok")
    _, edges = dot_statements(states_diagram(G).source)
    styles = {(u, v): (a.get("style"), a["color"]) for u, v, a in edges if u != "__start__"}
    assert styles[("0", "1")] == ("dashed", GREY)
    assert styles[("1", "0")] == ("dashed", GREY)
    assert styles[("0", "2")][1] != GREY


# --- what the old models keep --------------------------------------------------------------------


@pytest.mark.parametrize("saga", [SEQUENTIAL, PARALLEL], ids=["sequential", "parallel"])
@pytest.mark.parametrize("view", ["saga", "machine"])
def test_a_coordinator_that_cannot_crash_changes_nothing(saga, view: str, tmp_path: Path) -> None:
    quiet = replace(saga, coordinator=Coordinator(crash=0.0, recovery="forward"))
    for suffix in (".dot", ".mmd"):
        before = draw(saga, tmp_path / f"a{suffix}", view=view).read_text()
        after = draw(quiet, tmp_path / f"b{suffix}", view=view).read_text()
        assert before == after
        assert "crash" not in before and "log:" not in before and "resource__" not in before
    assert all(
        not data["crash"] for _, data in step_graph(compile_saga(saga), saga).nodes(data=True)
    )


def test_draw_states_of_a_crashing_coordinator_draws_the_space_check_explores(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from sagasim.cli import main
    from sagasim.verify.crashes import explore_crashes

    out = tmp_path / "states.dot"
    assert (
        main(["draw", str(MODELS / "seat_booking_crash.yaml"), "--view", "states", "-o", str(out)])
        == 0
    )
    capsys.readouterr()
    _, edges = dot_statements(out.read_text())
    events = [label_of(a) for u, v, a in edges if u != "__start__"]
    space = explore_crashes(load(MODELS / "seat_booking_crash.yaml"))
    assert sorted(events) == sorted(e for _, _, e in space.to_networkx().edges(data="event"))
    crashes = [a for _, _, a in edges if label_of(a).endswith((".crash", ".landed", ".lost"))]
    assert crashes and all(a["style"] == "dashed" and a["color"] == GREY for a in crashes)
    assert all(a.get("constraint") != "false" for a in crashes)  # they lead to new states
