"""The compiled machine and ``check`` on the graph model: choices, ends, jumps, bounded loops,
self-compensation, sub-sagas and maps, each against what DESIGN.md says it means."""

from __future__ import annotations

import pytest

from sagasim.exceptions import SagaSimError, StateSpaceLimitError
from sagasim.machine import compile_choreography, compile_saga, core, decision_events, ends
from sagasim.model import (
    Branch,
    Choice,
    Compensation,
    Constant,
    Exponential,
    Fail,
    Goto,
    Map,
    Parallel,
    Retry,
    Saga,
    Step,
    SubSaga,
    Succeed,
)
from sagasim.testing import replay
from sagasim.verify import check, explore, lint


def comp(name: str) -> Compensation:
    return Compensation(name=name)


ORDER = Saga(
    name="order",
    steps=(
        Step(name="check_stock", effects=False),
        Choice(
            name="stock_level",
            branches=(
                Branch(
                    when="in_stock",
                    probability=0.9,
                    steps=(Step(name="reserve", compensation=comp("release")),),
                ),
                Branch(when="otherwise", default=True, steps=(Fail(name="out_of_stock"),)),
            ),
        ),
        Step(name="charge", compensation=comp("refund"), compensate_on_failure=True, reject=0.1),
        Step(name="ship", kind_declared="pivot", reject=0.05),
    ),
)
POLL = Saga(
    name="poll",
    steps=(
        Step(name="submit", compensation=comp("cancel")),
        Step(name="poll_status", effects=False),
        Choice(
            name="ready",
            branches=(
                Branch(when="done", probability=0.6),
                Branch(
                    when="pending",
                    default=True,
                    steps=(Step(name="wait_a_bit", effects=False), Goto(target="poll_status")),
                ),
            ),
        ),
        Succeed(name="finished"),
        Step(name="never"),
    ),
)
HOTEL = Saga(
    name="hotel",
    steps=(
        Step(name="reserve_room", compensation=comp("release_room")),
        Step(name="confirm_room", reject=0.1),
    ),
)
TRIP = Saga(
    name="trip",
    steps=(
        Step(name="book_flight", compensation=comp("cancel_flight")),
        SubSaga(
            name="book_hotel", model="hotel.yaml", saga=HOTEL, compensation=comp("cancel_hotel")
        ),
        Step(name="pay", reject=0.2),
    ),
)


def transitions(saga: Saga) -> dict[tuple[str, str], str]:
    machine = compile_saga(saga)
    return {(t.source, t.event): t.target for t in machine.transitions if t.guard is None}


def test_a_choice_is_an_urgent_state_with_one_edge_per_possible_branch() -> None:
    machine = compile_saga(ORDER)
    deciding = machine.states["deciding_stock_level"]
    assert deciding.decision == "stock_level" and deciding.running == ()
    out = {t.event: t.target for t in machine.transitions_from("deciding_stock_level")}
    assert out == {
        "stock_level.in_stock": "reserve",
        "stock_level.otherwise": "compensated__out_of_stock",
    }
    assert decision_events(ORDER)["stock_level.otherwise"] == ("stock_level", 1, pytest.approx(0.1))


def test_a_branch_of_probability_zero_has_no_edge_and_is_linted() -> None:
    never = Choice(
        name="c", branches=(Branch(when="a", probability=1.0), Branch(when="b", probability=0.0))
    )
    saga = Saga(name="s", steps=(Step(name="x", effects=False), never))
    machine = compile_saga(saga)
    assert [t.event for t in machine.transitions if t.action == "c"] == ["c.a"]
    assert [w.code for w in lint(saga)] == ["dead-branch"]


def test_self_compensation_runs_first_then_the_rest() -> None:
    edges = transitions(ORDER)
    assert edges[("charge", "charge.reject")] == "refund"  # charge undoes itself first
    assert edges[("refund", "refund.ok")] == "release"
    assert edges[("ship", "ship.reject")] == "refund"  # the pivot's failure: the usual order
    report = check(ORDER)
    assert report.consistent
    assert report.anomalies["empty_compensation"] >= 1  # a rejected charge never landed


def test_a_fail_entry_recovers_and_names_the_end() -> None:
    machine = compile_saga(ORDER)
    end = machine.states["compensated__out_of_stock"]
    assert (end.outcome, end.fail) == ("compensated", "out_of_stock")
    report = check(ORDER)
    assert report.fails == {"out_of_stock": 1}
    assert report.to_dict()["fails"] == {"out_of_stock": 1}
    assert ends(ORDER) == ("out_of_stock",)


def test_a_read_only_loop_needs_no_bound_and_succeed_ends_committed() -> None:
    edges = transitions(POLL)
    assert edges[("wait_a_bit", "wait_a_bit.ok")] == "poll_status"  # the goto goes back
    assert edges[("deciding_ready", "ready.done")] == "committed"  # succeed: nothing after it
    assert "never" not in {a for info in compile_saga(POLL).states.values() for a in info.running}
    assert "unreachable-step" in [w.code for w in lint(POLL)]
    assert check(POLL).end_states == {"committed": 1, "compensated": 0, "leaked": 0, "stuck": 0}


def bounded_loop(visits: int, **extra: object) -> Saga:
    return Saga(
        name="loop",
        steps=(
            Step(name="try_it", compensation=comp("untry"), max_visits=visits, **extra),  # type: ignore[arg-type]
            Choice(
                name="again",
                branches=(
                    Branch(when="yes", probability=0.5, steps=(Goto(target="try_it"),)),
                    Branch(when="no", default=True),
                ),
            ),
        ),
    )


@pytest.mark.parametrize("visits", [1, 2, 3])
def test_a_bounded_loop_fails_with_max_visits_and_undoes_every_visit(visits: int) -> None:
    saga = bounded_loop(visits)
    trace = ["try_it.ok", "again.yes"] * visits
    last = replay(saga, trace + ["untry.ok"] * visits)
    assert last == "compensated__max_visits"
    report = check(saga)
    assert report.consistent, report.violations  # a second visit is no duplicate
    assert report.fails == {"max_visits": 1}
    decided = [t for t in compile_saga(saga).transitions if t.event == "again.no"]
    assert len(decided) == visits  # one way to stop after each visit


def test_a_bounded_loop_still_sees_a_real_duplicate() -> None:
    saga = bounded_loop(
        2,
        latency=Exponential(mean_ms=10.0),
        timeout_ms=20.0,
        retry=Retry(attempts=2),
    )
    report = check(saga)
    assert "duplicate_effect" in {v.outcome for v in report.violations}
    assert "ambiguous-timeout" in {w.code for w in report.warnings}


def test_a_sub_saga_is_undone_by_its_whole_compensation_once_it_committed() -> None:
    edges = transitions(TRIP)
    assert edges[("confirm_room", "confirm_room.reject")] == "release_room"  # child first
    assert edges[("release_room", "release_room.ok")] == "cancel_flight"  # then the parent
    assert edges[("pay", "pay.reject")] == "cancel_hotel"  # the child as one action
    assert edges[("cancel_hotel", "cancel_hotel.ok")] == "cancel_flight"
    report = check(TRIP)
    assert report.consistent and report.warnings == []  # confirm_room is covered


def test_a_sub_saga_without_a_compensation_undoes_its_steps_in_reverse() -> None:
    trip = Saga(
        name="trip",
        steps=(
            Step(name="book_flight", compensation=comp("cancel_flight")),
            SubSaga(name="book_hotel", model="hotel.yaml", saga=HOTEL),
            Step(name="pay", reject=0.2),
        ),
    )
    machine = compile_saga(trip)
    undo = transitions(trip)[("pay", "pay.reject")]
    assert machine.states[undo].running == ("release_room",)
    assert machine.states[transitions(trip)[(undo, "release_room.ok")]].running == (
        "cancel_flight",
    )
    assert check(trip).end_states["leaked"] == 1  # confirm_room's effect stays


def test_succeed_in_a_sub_saga_ends_the_child_only() -> None:
    child = Saga(
        name="c", steps=(Step(name="a", effects=False), Succeed(name="early"), Step(name="b"))
    )
    parent = Saga(
        name="p", steps=(SubSaga(name="child", model="c.yaml", saga=child), Step(name="after"))
    )
    assert transitions(parent)[("a", "a.ok")] == "after"


@pytest.mark.parametrize(("items", "concurrency"), [(3, 1), (3, 2), (4, None)])
def test_a_map_runs_at_most_concurrency_items_and_undoes_each_completed_one(
    items: int, concurrency: int | None
) -> None:
    saga = Saga(
        name="bulk",
        steps=(
            Map(
                name="pack_items",
                items=items,
                concurrency=concurrency,
                steps=(Step(name="pack", compensation=comp("unpack"), failure=0.1),),
            ),
            Step(name="ship", reject=0.1),
        ),
    )
    assert [s.name for s in core(saga).all_steps()] == [
        *(f"pack_{k}" for k in range(1, items + 1)),
        "ship",
    ]
    machine = compile_saga(saga)
    widest = max(len(info.running) for info in machine.states.values() if info.phase == "forward")
    assert widest == (concurrency or items)
    assert transitions(saga)[("ship", "ship.reject")] == "__".join(
        f"unpack_{k}" for k in range(1, items + 1)
    )
    report = check(saga)
    assert report.consistent and report.end_states["compensated"] >= 2


def test_a_drawn_item_count_is_a_choice_between_groups() -> None:
    saga = Saga(
        name="bulk",
        steps=(Map(name="pack_items", items=(1, 2, 2), steps=(Step(name="pack"),)),),
    )
    events = decision_events(core(saga))
    assert {e: round(p, 12) for e, (_, _, p) in events.items()} == {
        "pack_items.items_1": round(1 / 3, 12),
        "pack_items.items_2": round(2 / 3, 12),
    }
    assert compile_saga(saga).states[compile_saga(saga).initial].decision == "pack_items"


def test_a_decision_inside_a_parallel_branch_keeps_the_other_branch_in_flight() -> None:
    saga = Saga(
        name="s",
        steps=(
            Parallel(
                branches=(
                    (Step(name="a", effects=False), Choice(name="c", branches=(
                        Branch(when="x", probability=0.5, steps=(Step(name="ax"),)),
                        Branch(when="y", default=True, steps=(Step(name="ay"),)),
                    ))),
                    (Step(name="b", latency=Constant(value_ms=5.0)),),
                ),
            ),
        ),
    )  # fmt: skip
    machine = compile_saga(saga)
    deciding = [info for info in machine.states.values() if info.decision]
    assert {info.running for info in deciding} == {("b",), ()}
    for info in deciding:
        assert {t.action for t in machine.transitions_from(info.id)} == {"c"}
    assert replay(saga, ["a.ok", "c.y", "b.ok", "ay.ok"]) == "committed"


def test_a_fail_in_a_parallel_branch_halts_the_others_and_names_the_end() -> None:
    saga = Saga(
        name="s",
        steps=(
            Parallel(
                branches=(
                    (Step(name="a", effects=False), Fail(name="nope")),
                    (Step(name="b", compensation=comp("undo_b")),),
                ),
            ),
        ),
    )
    edges = transitions(saga)
    assert edges[("a__b", "a.ok")] == "halting__b"
    assert edges[("halting__b", "b.ok")] == "undo_b"
    assert edges[("undo_b", "undo_b.ok")] == "compensated__nope"


def test_after_the_pivot_a_fail_entry_is_stuck() -> None:
    saga = Saga(name="s", steps=(Step(name="p", kind_declared="pivot"), Fail(name="too_late")))
    assert transitions(saga)[("p", "p.ok")] == "stuck__too_late"


def test_choreography_runs_choices_and_refuses_jumps_and_sub_sagas_in_one_line() -> None:
    assert compile_choreography(ORDER).role("stock_level").kind == "choice"
    with pytest.raises(SagaSimError, match=r"^poll: steps\[\d\] is a goto \(\w+\), which a ch"):
        compile_choreography(POLL)
    with pytest.raises(SagaSimError, match=r"^trip: steps\[\d\] is a sub-saga \(\w+\), which"):
        compile_choreography(TRIP)


def test_every_graph_state_can_still_end() -> None:
    for saga in (ORDER, POLL, TRIP, bounded_loop(2)):
        space = explore(saga)
        graph = space.to_networkx()
        ends_ = set(space.ends)
        import networkx as nx

        stuck_forever = [n for n in graph if not (nx.descendants(graph, n) | {n}) & ends_]
        assert stuck_forever == [], saga.name


def test_lints_name_a_wide_map_and_a_self_compensation_without_compensation() -> None:
    wide = Saga(
        name="s",
        steps=(Map(name="all_at_once", items=6, steps=(Step(name="pack"),)),),
    )
    assert [w.code for w in lint(wide)] == ["wide-map"]
    narrow = Saga(
        name="s",
        steps=(Map(name="two_at_a_time", items=6, concurrency=2, steps=(Step(name="pack"),)),),
    )
    assert lint(narrow) == []
    lone = Saga(name="s", steps=(Step(name="charge", compensate_on_failure=True),))
    assert [w.code for w in lint(lone)] == ["self-compensation-without-compensation"]


def test_a_map_too_wide_for_the_orchestrator_is_one_line() -> None:
    saga = Saga(
        name="s",
        steps=(Map(name="huge", items=14, steps=(Step(name="pack", failure=0.1),)),),
    )
    with pytest.raises(StateSpaceLimitError, match=r"a map of n items is a group of n branches"):
        compile_saga(saga)
    assert [w.code for w in lint(saga)] == ["wide-map"]  # and no crash reading reachability
