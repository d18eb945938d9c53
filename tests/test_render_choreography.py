"""Choreography diagrams: the collaboration view's clusters and event edges, each service's
machine, and the command line drawing them."""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path

import pytest

from sagasim import io
from sagasim.cli import main
from sagasim.exceptions import UsageError
from sagasim.machine import compile_choreography
from sagasim.model import Saga
from sagasim.viz.choreography import collaboration_diagram, extract_choreography, service_diagram
from sagasim.viz.render import START, extract, to_mermaid

MODEL = Path("models/order_fulfillment.yaml")
SERVICES = ["orders", "recommender", "inventory", "risk", "loyalty", "payments", "shipping"]


@pytest.fixture(scope="module")
def saga() -> Saga:
    return replace(io.load(MODEL), coordination="choreography")


def dot_edges(source: str) -> list[tuple[str, str, dict[str, str]]]:
    """(tail, head, attributes) of every visible edge in a DOT source, in drawing direction."""
    edges = []
    for tail, head, attrs in re.findall(r"^\t+(\w+) -> (\w+) \[(.*)\]$", source, re.M):
        found = dict(re.findall(r'(\w+)=("[^"]*"|\S+)', attrs))
        found = {key: value.strip('"') for key, value in found.items()}
        if found.get("style") == "invis":
            continue
        if found.pop("dir", None) == "back":
            tail, head = head, tail
        edges.append((tail, head, found))
    return edges


# --- the collaboration view --------------------------------------------------------------------


def test_one_titled_cluster_per_service_holding_its_steps_and_compensations(saga: Saga) -> None:
    source = collaboration_diagram(saga).source
    clusters = re.findall(r"subgraph (cluster_\w+) \{\n\t\t.* label=(\w+) ", source)
    assert clusters == [(f"cluster_{name}", name) for name in SERVICES]
    d = extract_choreography(saga)
    cluster_of = {node.id: node.cluster for node in d.nodes}
    assert cluster_of["reserve_inventory"] == cluster_of["release_inventory"] == "cluster_inventory"
    assert cluster_of["restore_points"] == "cluster_loyalty"
    assert cluster_of[START] is None
    # Only compensations that can run are drawn: none for steps at or after the pivot.
    assert sorted(n.id for n in d.nodes if n.look == "compensation") == [
        "cancel_recommendation_tracking",
        "release_inventory",
        "restore_points",
    ]


def test_every_subscription_is_one_labelled_edge_from_its_publisher(saga: Saga) -> None:
    d = extract_choreography(saga)
    chor = compile_choreography(saga)
    labelled = [(e.source, e.label) for e in d.edges if e.label]
    expected = [
        (event.rsplit(".", 1)[0], event) for event, subs in chor.subscribers.items() for _ in subs
    ]
    assert sorted(labelled) == sorted(expected)
    edges = dot_edges(collaboration_diagram(saga).source)
    done = {(t, h) for t, h, a in edges if a.get("label", "").strip() == "reserve_inventory.done"}
    # Into the risk and loyalty clusters, starting both branches (and nothing else: the undo
    # cascade waits for undos, failures and skips, not for what is done).
    assert done == {
        ("reserve_inventory", "fraud_check"),
        ("reserve_inventory", "hold_loyalty_points"),
    }


def test_edge_styles_say_trigger_failure_or_undo_order(saga: Saga) -> None:
    styles: dict[str, set[str]] = {}
    for tail, head, attrs in dot_edges(collaboration_diagram(saga).source):
        event = attrs.get("label", "").strip()
        if event:
            styles.setdefault(attrs.get("style", "solid"), set()).add(f"{tail} {event} {head}")
    assert "reserve_inventory reserve_inventory.done fraud_check" in styles["solid"]
    assert "process_payment process_payment.done trigger_delivery" in styles["solid"]
    # Every failure is dashed: it undoes a done step or skips a waiting one.
    assert all(".failed" in edge for edge in styles["dashed"])
    assert not any(".failed" in edge for edge in styles["solid"] | styles["dotted"])
    assert {
        "process_payment process_payment.failed release_inventory",
        "hold_loyalty_points hold_loyalty_points.failed fraud_check",
    } <= styles["dashed"]
    # In reverse order an undo waits for the later undos: those edges are dotted.
    assert {
        "restore_points restore_points.done release_inventory",
        "release_inventory release_inventory.done cancel_recommendation_tracking",
    } <= styles["dotted"]


def test_parallel_compensation_order_has_no_undo_ordering_edges(saga: Saga) -> None:
    d = extract_choreography(replace(saga, compensation_order="parallel"))
    assert not [e for e in d.edges if e.look == "event_cascade"]
    assert [e for e in d.edges if e.look == "event_failure"]


def test_mermaid_has_a_subgraph_per_service(saga: Saga) -> None:
    text = to_mermaid(extract_choreography(saga))
    assert text.startswith("flowchart LR\n")
    assert re.findall(r'subgraph cluster_(\w+) \["(\w+)"\]', text) == [
        (name, name) for name in SERVICES
    ]
    assert '    reserve_inventory -->|"reserve_inventory.done"| fraud_check' in text
    assert '    process_payment -.->|"process_payment.failed"| restore_points' in text


def test_the_default_view_follows_the_coordination(saga: Saga) -> None:
    assert extract(saga).view == "collaboration"
    assert extract(replace(saga, coordination="orchestration")).view == "saga"
    assert extract(saga, "saga").view == "saga"


# --- one service's machine ---------------------------------------------------------------------


def test_service_view_draws_exactly_the_machine(saga: Saga) -> None:
    machine = compile_choreography(saga).services["payments"]
    d = extract_choreography(saga, "service:payments")
    assert {n.id for n in d.nodes} == set(machine.states) | {START}
    labels = "\n".join(e.label for e in d.edges)
    assert {t.event for t in machine.transitions} == set(re.findall(r"[\w.]+", labels))
    source = service_diagram(saga, "payments").source
    # The only final state (no way out) has a double border.
    double = re.findall(r"^\t(\w+) \[.*peripheries=2", source, re.M)
    assert double == ["process_payment_failed"]
    assert "process_payment.reject" in source


def test_retries_are_guarded_self_loops(saga: Saga) -> None:
    d = extract_choreography(saga, "service:inventory")
    loops = {e.label for e in d.edges if e.source == e.target}
    assert loops == {
        "reserve_inventory.again",
        "release_inventory.fail [retry_left]",
        "reserve_inventory.undo_again",
    }
    assert all(e.look == "retry" for e in d.edges if e.source == e.target)


def test_unknown_service_or_view_is_a_usage_error(saga: Saga) -> None:
    with pytest.raises(UsageError, match=r"has no service 'billing' \(its services: orders, "):
        extract_choreography(saga, "service:billing")
    with pytest.raises(UsageError, match="unknown view 'sequence'"):
        extract(saga, "sequence")


# --- the command line --------------------------------------------------------------------------

CHOREOGRAPHY = ["--set", "coordination=choreography"]


@pytest.mark.parametrize(
    ("suffix", "magic"), [(".svg", b"<svg"), (".png", b"\x89PNG"), (".mmd", b"flowchart LR")]
)
def test_cli_draws_a_choreography(tmp_path: Path, suffix: str, magic: bytes) -> None:
    out = tmp_path / f"chor{suffix}"
    assert main(["draw", str(MODEL), *CHOREOGRAPHY, "-o", str(out)]) == 0
    data = out.read_bytes()
    assert magic in data[:600]
    if suffix != ".png":
        assert b"cluster_loyalty" in data
        assert b"reserve_inventory.done" in data


def test_cli_draws_one_service(tmp_path: Path) -> None:
    out = tmp_path / "pay.dot"
    argv = ["draw", str(MODEL), *CHOREOGRAPHY, "--view", "service:payments", "-o", str(out)]
    assert main(argv) == 0
    assert "process_payment_running -> process_payment_done" in out.read_text()


def test_cli_unknown_service_is_one_line_and_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "x.svg"
    argv = ["draw", str(MODEL), *CHOREOGRAPHY, "--view", "service:billing", "-o", str(out)]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err == (
        "order_fulfillment has no service 'billing' (its services: " + ", ".join(SERVICES) + ")\n"
    )
    assert not out.exists()
    with pytest.raises(SystemExit) as exited:
        main(["draw", str(MODEL), "--view", "bogus", "-o", str(out)])
    assert exited.value.code == 2
    assert capsys.readouterr().err.count("\n") == 1
