"""The structure graph is the compiled machine, attribute for attribute; the step graph is its
projection onto actions; node-link data survives JSON."""

from __future__ import annotations

import json
from pathlib import Path

import networkx as nx
import pytest
from hypothesis import given, settings

from sagasim.machine import compile_saga
from sagasim.model import Compensation, Constant, LogNormal, Parallel, Retry, Saga, Step
from sagasim.viz.graph import step_graph, structure_graph, to_node_link

from .strategies import sagas

MODELS = sorted(Path(__file__).parent.parent.joinpath("models").rglob("*.yaml"))


def order_fulfillment(*, parallel: bool) -> Saga:
    """models/order_fulfillment.yaml in dataclasses; ``parallel=False`` runs the group in line."""
    fraud = Step(name="fraud_check", service="risk", effects=False, reject=0.01)
    loyalty = Step(
        name="hold_loyalty_points",
        service="loyalty",
        compensation=Compensation(name="restore_points"),
    )
    middle: tuple[Step | Parallel, ...] = (
        (Parallel(branches=((fraud,), (loyalty,))),) if parallel else (fraud, loyalty)
    )
    return Saga(
        name="order_fulfillment",
        steps=(
            Step(name="validate_order", service="orders", effects=False, reject=0.02),
            Step(
                name="recommend_upsell",
                service="recommender",
                compensation=Compensation(name="cancel_recommendation_tracking"),
                failure=0.05,
                latency=LogNormal.from_p99(median_ms=60.0, p99_ms=400.0),
                timeout_ms=300.0,
                retry=Retry(attempts=3, backoff="exponential", delay_ms=50.0),
                rejects_late=True,
            ),
            Step(
                name="reserve_inventory",
                service="inventory",
                compensation=Compensation(
                    name="release_inventory", failure=0.01, retry=Retry(attempts=None)
                ),
            ),
            *middle,
            Step(name="process_payment", service="payments", kind_declared="pivot", reject=0.05),
            Step(
                name="trigger_delivery",
                service="shipping",
                kind_declared="retriable",
                failure=0.03,
                latency=Constant(value_ms=50.0),
                retry=Retry(attempts=None, delay_ms=1000.0),
            ),
        ),
    )


SEQUENTIAL = order_fulfillment(parallel=False)
PARALLEL = order_fulfillment(parallel=True)


# --- structure_graph -----------------------------------------------------------------------------


@pytest.mark.parametrize("saga", [SEQUENTIAL, PARALLEL], ids=["sequential", "parallel"])
def test_structure_graph_is_the_machine(saga: Saga) -> None:
    machine = compile_saga(saga)
    G = structure_graph(machine, saga)
    assert isinstance(G, nx.MultiDiGraph)
    assert set(G.nodes) == set(machine.states)
    assert G.number_of_edges() == len(machine.transitions)
    assert G.graph == {"name": "order_fulfillment", "initial": "validate_order"}
    for sid, info in machine.states.items():
        node = G.nodes[sid]
        assert (node["phase"], node["running"], node["outcome"]) == (
            info.phase,
            info.running,
            info.outcome,
        )
    for t in machine.transitions:
        edge = G.edges[t.source, t.target, t.event]
        assert edge["event"] == t.event
        assert (edge["action"], edge["kind"]) == tuple(t.event.rsplit(".", 1))
        assert edge["guard"] == t.guard
        assert edge["retry"] == (t.guard == "retry_left")


def test_structure_graph_nodes_of_a_sequential_saga() -> None:
    G = structure_graph(compile_saga(SEQUENTIAL), SEQUENTIAL)
    expected = {
        "validate_order": ("read_only", "orders"),
        "recommend_upsell": ("compensatable", "recommender"),
        "reserve_inventory": ("compensatable", "inventory"),
        "fraud_check": ("read_only", "risk"),
        "hold_loyalty_points": ("compensatable", "loyalty"),
        "process_payment": ("pivot", "payments"),
        "trigger_delivery": ("retriable", "shipping"),
        "restore_points": ("compensation", "loyalty"),
        "release_inventory": ("compensation", "inventory"),
        "cancel_recommendation_tracking": ("compensation", "recommender"),
    }
    for sid, (kind, service) in expected.items():
        node = G.nodes[sid]
        assert (node["kind"], node["service"], node["label"]) == (kind, service, sid)
        assert node["group"] is None and node["consistent"] is None
    assert G.nodes["restore_points"]["phase"] == "compensating"
    assert G.nodes["trigger_delivery"]["phase"] == "forward"
    ends = {sid: (G.nodes[sid]["outcome"], G.nodes[sid]["consistent"]) for sid in G}
    assert {sid: v for sid, v in ends.items() if v[0]} == {
        "committed": ("committed", True),
        "compensated": ("compensated", True),
    }
    assert G.nodes["committed"]["kind"] is None and G.nodes["committed"]["label"] == "committed"


def test_structure_graph_edges_of_a_sequential_saga() -> None:
    G = structure_graph(compile_saga(SEQUENTIAL), SEQUENTIAL)
    retry = G.edges["recommend_upsell", "recommend_upsell", "recommend_upsell.timeout"]
    assert (retry["kind"], retry["guard"], retry["retry"], retry["flow"]) == (
        "timeout",
        "retry_left",
        True,
        "forward",
    )
    exhausted = G.edges["recommend_upsell", "compensated", "recommend_upsell.fail"]
    assert (exhausted["guard"], exhausted["retry"], exhausted["flow"]) == (
        "!retry_left",
        False,
        "terminal",
    )
    reject = G.edges["process_payment", "restore_points", "process_payment.reject"]
    assert (reject["action"], reject["kind"], reject["guard"], reject["flow"]) == (
        "process_payment",
        "reject",
        None,
        "compensation",
    )
    undo = G.edges["restore_points", "release_inventory", "restore_points.ok"]
    assert undo["flow"] == "compensation"
    loop = G.edges["release_inventory", "release_inventory", "release_inventory.fail"]
    assert loop["retry"] and loop["flow"] == "compensation"
    assert G.edges["trigger_delivery", "committed", "trigger_delivery.ok"]["flow"] == "terminal"
    assert G.edges["fraud_check", "hold_loyalty_points", "fraud_check.ok"]["flow"] == "forward"
    # Unbounded retries have no exhausted edge; rejects are never retried.
    assert not G.has_edge("trigger_delivery", "stuck")
    assert not any(d["retry"] for _, _, d in G.edges(data=True) if d["kind"] == "reject")


def test_structure_graph_of_a_parallel_group() -> None:
    G = structure_graph(compile_saga(PARALLEL), PARALLEL)
    both = G.nodes["fraud_check__hold_loyalty_points"]
    assert both["running"] == ("fraud_check", "hold_loyalty_points")
    assert (both["group"], both["kind"], both["service"]) == (3, None, None)
    assert both["label"] == "fraud_check + hold_loyalty_points"
    hold_only = [sid for sid in G if G.nodes[sid]["running"] == ("hold_loyalty_points",)]
    phases = sorted(G.nodes[sid]["phase"] for sid in hold_only)
    assert phases == ["forward", "halting"]
    for sid in hold_only:
        node = G.nodes[sid]
        assert (node["group"], node["kind"], node["service"]) == (3, "compensatable", "loyalty")
    halting = next(sid for sid in hold_only if G.nodes[sid]["phase"] == "halting")
    assert G.nodes[halting]["label"] == "halting: hold_loyalty_points"
    assert G.edges[halting, "restore_points", "hold_loyalty_points.ok"]["flow"] == "compensation"
    for sid in ("reserve_inventory", "process_payment", "restore_points", "committed"):
        assert G.nodes[sid]["group"] is None
    # The group's compensation runs outside the group's forward states.
    assert G.nodes["restore_points"]["phase"] == "compensating"


# --- step_graph ----------------------------------------------------------------------------------


def test_step_graph_of_a_sequential_saga() -> None:
    S = step_graph(compile_saga(SEQUENTIAL), SEQUENTIAL)
    assert list(S.nodes) == [
        "validate_order",
        "recommend_upsell",
        "reserve_inventory",
        "fraud_check",
        "hold_loyalty_points",
        "process_payment",
        "trigger_delivery",
        "cancel_recommendation_tracking",
        "release_inventory",
        "restore_points",
        "committed",
        "compensated",
    ]
    labels = {(u, v): d["label"] for u, v, d in S.edges(data=True)}
    assert labels == {
        ("validate_order", "recommend_upsell"): "ok",
        ("validate_order", "compensated"): "reject",
        ("recommend_upsell", "recommend_upsell"): "retry ×3",
        ("recommend_upsell", "reserve_inventory"): "ok",
        ("recommend_upsell", "compensated"): "fail / timeout",
        ("reserve_inventory", "fraud_check"): "ok",
        ("fraud_check", "hold_loyalty_points"): "ok",
        ("fraud_check", "release_inventory"): "reject",
        ("hold_loyalty_points", "process_payment"): "ok",
        ("process_payment", "trigger_delivery"): "ok",
        ("process_payment", "restore_points"): "reject",
        ("trigger_delivery", "trigger_delivery"): "retry ∞",
        ("trigger_delivery", "committed"): "ok",
        ("restore_points", "release_inventory"): "ok",
        ("release_inventory", "release_inventory"): "retry ∞",
        ("release_inventory", "cancel_recommendation_tracking"): "ok",
        ("cancel_recommendation_tracking", "compensated"): "ok",
    }
    assert S.graph == {
        "name": "order_fulfillment",
        "initial": ("validate_order",),
        "pivot": "process_payment",
        "compensation_order": "reverse",
    }
    edge = S.edges["recommend_upsell", "compensated"]
    assert edge["kinds"] == ("fail", "timeout") and edge["flow"] == "terminal"
    assert edge["events"] == ("recommend_upsell.fail", "recommend_upsell.timeout")
    loop = S.edges["recommend_upsell", "recommend_upsell"]
    assert (loop["retry"], loop["attempts"], loop["flow"]) == (True, 3, "forward")
    assert S.edges["restore_points", "release_inventory"]["flow"] == "compensation"
    assert S.edges["release_inventory", "release_inventory"]["flow"] == "compensation"
    assert not any(d["draining"] for _, _, d in S.edges(data=True))


def test_step_graph_node_attributes() -> None:
    S = step_graph(compile_saga(PARALLEL), PARALLEL)
    pay = S.nodes["process_payment"]
    assert (pay["role"], pay["kind"], pay["service"], pay["entry"], pay["group"]) == (
        "step",
        "pivot",
        "payments",
        4,
        None,
    )
    ship = S.nodes["trigger_delivery"]
    assert (ship["after_pivot"], ship["attempts"], ship["kind"]) == (True, None, "retriable")
    hold = S.nodes["hold_loyalty_points"]
    assert (hold["group"], hold["branch"], hold["position"], hold["entry"]) == (3, 1, 0, 3)
    assert (S.nodes["fraud_check"]["group"], S.nodes["fraud_check"]["branch"]) == (3, 0)
    restore = S.nodes["restore_points"]
    assert (restore["role"], restore["kind"], restore["compensates"], restore["service"]) == (
        "compensation",
        "compensation",
        "hold_loyalty_points",
        "loyalty",
    )
    assert (restore["group"], restore["branch"]) == (3, 1)
    assert S.nodes["recommend_upsell"]["attempts"] == 3
    end = S.nodes["compensated"]
    assert (end["role"], end["outcome"], end["consistent"], end["entry"]) == (
        "end",
        "compensated",
        True,
        None,
    )


def test_step_graph_of_a_parallel_group() -> None:
    S = step_graph(compile_saga(PARALLEL), PARALLEL)
    assert set(S.successors("reserve_inventory")) == {"fraud_check", "hold_loyalty_points"}
    assert set(S.predecessors("process_payment")) == {"fraud_check", "hold_loyalty_points"}
    reject = S.edges["fraud_check", "restore_points"]
    assert (reject["kinds"], reject["flow"], reject["draining"]) == (
        ("reject",),
        "compensation",
        False,
    )
    # A branch still running when the other fails finishes, then recovery starts: that edge
    # exists only while the group drains.
    drained = S.edges["hold_loyalty_points", "restore_points"]
    assert (drained["kinds"], drained["draining"]) == (("ok",), True)
    assert not S.has_edge("hold_loyalty_points", "fraud_check")


def test_step_graph_leaves_out_compensations_that_never_run() -> None:
    saga = Saga(
        name="late",
        steps=(
            Step(name="charge", kind_declared="pivot", reject=0.5),
            Step(name="ship", compensation=Compensation(name="unship"), reject=0.1),
        ),
    )
    S = step_graph(compile_saga(saga), saga)
    assert "unship" not in S
    assert S.edges["ship", "stuck"]["kinds"] == ("reject",)
    assert S.nodes["stuck"]["consistent"] is False
    assert set(S.nodes) == {"charge", "ship", "committed", "compensated", "stuck"}


@settings(max_examples=60, deadline=None)
@given(sagas())
def test_step_graph_projects_every_transition(saga: Saga) -> None:
    machine = compile_saga(saga)
    S = step_graph(machine, saga)
    running = {a for info in machine.states.values() for a in info.running}
    assert {n for n, d in S.nodes(data=True) if d["role"] != "end"} == running
    assert {n for n, d in S.nodes(data=True) if d["role"] == "end"} == set(
        machine.terminals.values()
    )
    for t in machine.transitions:
        target = machine.states[t.target]
        if t.guard == "retry_left":
            assert t.event in S.edges[t.action, t.action]["events"]
        elif target.outcome is not None:
            assert t.event in S.edges[t.action, target.outcome]["events"]
    for u, _, data in S.edges(data=True):
        assert data["kinds"] and data["label"]
        assert all(e.rsplit(".", 1)[0] == u for e in data["events"])


# --- node-link -----------------------------------------------------------------------------------


def test_node_link_round_trips_through_json() -> None:
    G = structure_graph(compile_saga(PARALLEL), PARALLEL)
    data = json.loads(json.dumps(to_node_link(G)))
    nodes = {node["id"]: node for node in data["nodes"]}
    assert nodes["fraud_check__hold_loyalty_points"]["running"] == [
        "fraud_check",
        "hold_loyalty_points",
    ]
    assert nodes["committed"]["consistent"] is True
    back = nx.node_link_graph(data, edges="links")
    assert back.number_of_nodes() == G.number_of_nodes()
    assert back.number_of_edges() == G.number_of_edges()
    S = step_graph(compile_saga(PARALLEL), PARALLEL)
    links = json.loads(json.dumps(to_node_link(S)))["links"]
    kinds = {(link["source"], link["target"]): link["kinds"] for link in links}
    assert kinds["process_payment", "restore_points"] == ["reject"]


@pytest.mark.parametrize("path", MODELS, ids=lambda p: p.stem)
def test_every_model_projects_onto_its_actions(path: Path) -> None:
    from sagasim.io import load

    saga = load(path)
    S = step_graph(compile_saga(saga), saga)
    for step in saga.all_steps():
        assert S.nodes[step.name]["kind"] == step.kind
        assert S.nodes[step.name]["service"] == step.service_name
    assert "committed" in S
    json.dumps(to_node_link(structure_graph(compile_saga(saga), saga)))
