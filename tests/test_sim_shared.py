"""simulate with shared resources, semantic locks and a coordinator that crashes
(docs/concurrency.md; :mod:`sagasim.sim.shared`).

The seat booking saga of the doc: ``count_seats`` reads the seat count, ``book_seat`` writes it
(compensated by ``release_seat``), ``charge_card`` is the pivot and declines one card in five;
every call takes 50 ms and bookings arrive at 20 a second, so they overlap.
"""

from __future__ import annotations

import contextlib
import io
import json
from dataclasses import replace

import numpy as np
import pytest
from scipy import stats

from sagasim.analysis.crashes import crash_effects
from sagasim.cli import main
from sagasim.model import (
    Arrivals,
    Branch,
    Choice,
    Compensation,
    Constant,
    Coordinator,
    Parallel,
    Resource,
    Retry,
    Saga,
    Step,
    Write,
)
from sagasim.sim import orchestration, shared, simulate, simulate_instance
from sagasim.sim.results import COLUMNS
from sagasim.sim.traces import chrome_trace

LATENCY = Constant(value_ms=50)
INITIAL = 1_000
RUNS = 3_000


def seats(
    isolation: str = "none", mode: str = "set", on_locked: str = "wait", rate: float | None = 20
) -> Saga:
    resource = Resource(name="seats", initial=INITIAL, isolation=isolation, on_locked=on_locked)
    return Saga(
        name="seat_booking",
        resources=(resource,),
        arrivals=None if rate is None else Arrivals(rate_per_s=rate),
        steps=(
            Step(name="count_seats", effects=False, reads=("seats",), latency=LATENCY),
            Step(
                name="book_seat",
                writes=(Write(resource="seats", mode=mode, by=-1),),  # type: ignore[arg-type]
                latency=LATENCY,
                retry=Retry(attempts=3),
                compensation=Compensation(name="release_seat", latency=LATENCY),
            ),
            Step(name="charge_card", kind_declared="pivot", reject=0.2, latency=LATENCY),
        ),
    )


def concurrency(saga: Saga, runs: int = RUNS, seed: int = 3) -> dict:
    return simulate(saga, runs=runs, seed=seed).to_dict()


def anomalies(data: dict) -> dict[str, int]:
    keys = ("lost_updates", "dirty_reads", "stale_compensations")
    return {key: data["anomalies"][key] for key in keys}


def wilson(k: int, n: int) -> tuple[float, float]:
    ci = stats.binomtest(k, n).proportion_ci(0.999, "wilson")
    return ci.low, ci.high


# --- resources under arrivals -------------------------------------------------------------------


def test_without_isolation_overlapping_bookings_lose_updates_read_dirty_and_compensate_stale():
    data = concurrency(seats("none"))
    found = anomalies(data)
    assert all(found[key] > 0 for key in found), found
    rates = data["anomalies_per_1000"]
    assert rates["lost_updates"] == round(1000 * found["lost_updates"] / RUNS, 3)
    assert "locks" not in data  # no semantic lock in the model


def test_version_removes_lost_updates_and_stale_compensations_but_not_dirty_reads():
    found = anomalies(concurrency(seats("version")))
    assert found["lost_updates"] == found["stale_compensations"] == 0
    assert found["dirty_reads"] > 0  # a count still sees a booking whose card is declined


def test_reread_removes_lost_updates_only():
    found = anomalies(concurrency(seats("reread")))
    assert found["lost_updates"] == 0
    assert found["stale_compensations"] > 0  # compensations are not refused


def test_refused_writes_are_transient_failures_that_are_retried():
    plain, refused = simulate(seats("none"), RUNS, 3), simulate(seats("version"), RUNS, 3)
    assert plain.retries.sum() == 0  # book_seat never fails by itself
    assert refused.retries.sum() > 0
    # a booking whose three attempts are all refused compensates although no card was declined
    assert refused.count("compensated") > plain.count("compensated")


def test_semantic_lock_removes_every_anomaly_and_makes_bookings_wait():
    data = concurrency(seats("semantic_lock"))
    assert anomalies(data) == {"lost_updates": 0, "dirty_reads": 0, "stale_compensations": 0}
    locks = data["locks"]
    assert locks["waits"] > 0
    assert 0 < locks["wait_ms"]["mean"] <= locks["wait_ms"]["p95"]
    assert data["outcomes"]["stuck"] == 0


def test_on_locked_fail_fails_at_once_instead_of_waiting():
    waiting = simulate(seats("semantic_lock"), RUNS, 3)
    failing = simulate(seats("semantic_lock", on_locked="fail"), RUNS, 3)
    data = failing.to_dict()
    assert data["locks"]["waits"] == 0
    assert anomalies(data) == {"lost_updates": 0, "dirty_reads": 0, "stale_compensations": 0}
    assert failing.count("compensated") > waiting.count("compensated")  # failed, not waited
    assert failing.latency()["mean"] < waiting.latency()["mean"]


def test_add_writes_lose_nothing():
    found = anomalies(concurrency(seats("none", mode="add")))
    assert found["lost_updates"] == found["stale_compensations"] == 0
    assert found["dirty_reads"] > 0  # under add a read can still be dirty


@pytest.mark.parametrize(
    ("isolation", "mode"), [("semantic_lock", "set"), ("none", "add"), ("version", "set")]
)
def test_the_final_seat_count_is_what_the_committed_bookings_took(isolation: str, mode: str):
    data = concurrency(seats(isolation, mode))
    # every committed booking took one seat; every compensated one gave its seat back
    assert data["resources"]["seats"]["final"] == INITIAL - data["outcomes"]["committed"]


def test_without_isolation_the_final_seat_count_is_wrong():
    data = concurrency(seats("none"))
    assert data["resources"]["seats"]["final"] != INITIAL - data["outcomes"]["committed"]


def test_without_arrivals_instances_never_overlap():
    for isolation in ("none", "semantic_lock", "version"):
        data = concurrency(seats(isolation, rate=None))
        assert anomalies(data) == {"lost_updates": 0, "dirty_reads": 0, "stale_compensations": 0}
        assert data.get("locks", {"waits": 0})["waits"] == 0
        assert "resources" not in data  # instances in chunks: no single run to take a value of
        assert data["retries_per_instance"]["max"] == 0  # no write refused


def test_opposite_lock_orders_deadlock_and_end_stuck():
    def touching(name: str, resource: str) -> Step:
        return Step(name=name, effects=False, reads=(resource,), latency=LATENCY)

    saga = Saga(
        name="crossed",
        resources=tuple(Resource(name=r, isolation="semantic_lock") for r in ("x", "y")),
        arrivals=Arrivals(rate_per_s=2),
        steps=(
            Choice(
                name="order",
                branches=(
                    Branch(when="x first", probability=0.5,
                           steps=(touching("x1", "x"), touching("y1", "y"))),
                    Branch(when="y first", default=True,
                           steps=(touching("y2", "y"), touching("x2", "x"))),
                ),
            ),
        ),
    )  # fmt: skip
    results = simulate(saga, runs=200, seed=1)
    assert results.count("stuck") > 0
    assert results.count("committed") > 0


def test_an_instance_never_waits_for_a_lock_it_holds():
    # parallel branches of one booking: the one that ends first takes the lock, and the
    # other's call, waiting behind other bookings, goes on at once
    resource = Resource(name="seats", initial=INITIAL, isolation="semantic_lock")
    count = Step(name="count", effects=False, reads=("seats",), latency=LATENCY)
    book = Step(
        name="book", writes=(Write(resource="seats", by=-1),), latency=Constant(value_ms=70)
    )
    saga = Saga(
        name="branches",
        resources=(resource,),
        arrivals=Arrivals(rate_per_s=20),
        steps=(Parallel(branches=((count,), (book,))),),
    )
    data = concurrency(saga, runs=300)
    assert data["outcomes"] == {"committed": 300, "compensated": 0, "leaked": 0, "stuck": 0}
    assert data["locks"]["waits"] > 0
    assert data["resources"]["seats"]["final"] == INITIAL - 300


# --- the engine for models without these keys --------------------------------------------------


def both_chunks(saga: Saga, n: int = 2_000) -> tuple:
    plan = orchestration.plan(saga)
    plain = orchestration.Chunk(plan, np.random.default_rng(5), n, 0, 0).run(5)
    seq = np.random.SeedSequence(9)
    rng = np.random.default_rng(shared.coordinator_seed(seq))
    other = shared.SharedChunk(plan, np.random.default_rng(5), n, 0, 0, rng).run(5)
    return plain, other


@pytest.mark.parametrize(
    "saga",
    [
        seats("none", rate=None),  # resources, but instances never overlap
        replace(seats("none", rate=None), coordinator=Coordinator(crash=0.0)),
        replace(
            seats("none", rate=10),
            resources=(),
            steps=tuple(replace(s, reads=(), writes=()) for s in seats().steps),
        ),
    ],
    ids=["resources", "coordinator_never_crashing", "arrivals_only"],
)
def test_the_shared_engine_takes_the_plain_engines_draws_when_nothing_interferes(saga: Saga):
    plain, other = both_chunks(saga)
    for name in COLUMNS:
        assert np.array_equal(getattr(plain, name), getattr(other, name), equal_nan=True), name
    assert other.concurrency is not None and plain.concurrency is None


def test_models_without_the_new_keys_keep_their_json():
    saga = replace(seats(rate=None), resources=(), steps=tuple(
        replace(s, reads=(), writes=()) for s in seats().steps))  # fmt: skip
    assert not shared.needed(saga)
    data = simulate(saga, runs=500, seed=1).to_dict()
    assert set(data["anomalies"]) == {"duplicate_effects", "hanging", "late_leaks",
                                      "empty_compensations"}  # fmt: skip
    assert not {"locks", "crashes", "resources"} & set(data)


# --- coordinator crashes: closed forms ----------------------------------------------------------

CRASH, FAILURE = 0.2, 0.3
FAST = Constant(value_ms=10)
RESTART = Constant(value_ms=100)


def one_step(recovery: str, idempotent: bool = False) -> Saga:
    return Saga(
        name="one",
        steps=(Step(name="a", failure=FAILURE, latency=FAST, idempotent=idempotent),),
        coordinator=Coordinator(crash=CRASH, restart=RESTART, recovery=recovery),  # type: ignore[arg-type]
    )


def within(k: int, n: int, p: float) -> bool:
    low, high = wilson(k, n)
    return low <= p <= high


@pytest.mark.statistical
def test_forward_recovery_duplicates_a_landed_call_whose_re_run_succeeds():
    results = simulate(one_step("forward"), runs=40_000, seed=21)
    c, f, n = CRASH, FAILURE, results.runs
    # a crash at a's start record (the outcome record's crash comes after it: one budget),
    # the call landed, the re-run ok
    assert within(results.count("duplicate_effect"), n, c * (1 - f) * (1 - f))
    # the call landed, the re-run failed and a has no attempt left: the effect stays
    assert within(results.count("late_leak"), n, c * (1 - f) * f)
    crashes = results.to_dict()["crashes"]
    # at the start record, or after the outcome record when not at the start
    assert within(crashes["sagas"], n, c + (1 - c) * c)
    assert within(crashes["in_doubt"], n, c)
    assert crashes["recovery_ms"] == {"mean": 100.0, "p95": 100.0}


@pytest.mark.statistical
def test_an_idempotent_participant_answers_the_re_run_of_a_landed_call():
    results = simulate(one_step("forward", idempotent=True), runs=40_000, seed=22)
    assert results.count("duplicate_effect") == results.count("late_leak") == 0
    # landed, so the re-run is ok: only a call that did not land can still fail
    c, f, n = CRASH, FAILURE, results.runs
    assert within(results.count("committed"), n, (1 - c) * (1 - f) + c * ((1 - f) + f * (1 - f)))


@pytest.mark.statistical
def test_backward_recovery_compensates_after_a_crash_at_a_start_record():
    undo = Compensation(name="undo_a", latency=FAST)
    saga = Saga(
        name="two",
        steps=(
            Step(name="a", latency=FAST, compensation=undo),
            Step(name="b", failure=FAILURE, latency=FAST,
                 compensation=Compensation(name="undo_b", latency=FAST)),
        ),
        coordinator=Coordinator(crash=CRASH, restart=RESTART, recovery="backward"),
    )  # fmt: skip
    results = simulate(saga, runs=40_000, seed=23)
    c, f, n = CRASH, FAILURE, results.runs
    # committed: no crash at a's start, then either a crash after a's outcome record (the
    # budget is spent) or none there nor at b's start; and b ok
    committed = (1 - c) * (1 - f) * (c + (1 - c) ** 2)
    assert within(results.count("compensated"), n, 1 - committed)
    # nothing to undo: after a crash at b's start record, the call did not land; or no crash
    # until b failed, then one at undo_a's start record, and undo_a's call landed and is re-run
    empty = (1 - c) ** 2 * c * f + (1 - c) ** 4 * f * c
    assert within(results.count("empty_compensation"), n, empty)


@pytest.mark.statistical
def test_simulated_crash_effects_agree_with_analyze():
    saga = Saga(
        name="chain",
        steps=(Step(name="a", failure=0.1, latency=FAST), Step(name="b", failure=0.2)),
        coordinator=Coordinator(crash=0.1, restart=RESTART, recovery="forward"),
    )
    exact = crash_effects(saga)
    results = simulate(saga, runs=40_000, seed=24)
    assert exact.duplicate_effect is not None and exact.late_leak is not None
    assert within(results.count("duplicate_effect"), results.runs, exact.duplicate_effect)
    assert within(results.count("late_leak"), results.runs, exact.late_leak)
    assert within(results.to_dict()["crashes"]["sagas"], results.runs, exact.crash)


def test_a_crash_costs_its_restart_in_latency():
    saga = replace(one_step("forward"), steps=(Step(name="a", latency=FAST),))
    results = simulate(saga, runs=2_000, seed=2)
    crashed = results.concurrency.crashes > 0  # type: ignore[union-attr]
    assert crashed.any() and (~crashed).any()
    assert set(results.latency_ms[~crashed].tolist()) == {10.0}
    # after the start record: the restart, then the re-run; after the outcome record: the
    # restart before the saga's end
    assert set(results.latency_ms[crashed].tolist()) == {110.0}


def test_the_same_seed_gives_the_same_results_on_any_number_of_workers():
    saga = replace(seats("semantic_lock", rate=None), coordinator=Coordinator(
        crash=0.05, restart=RESTART, recovery="forward"))  # fmt: skip
    one = simulate(saga, runs=3_000, seed=4, workers=1, chunk_size=700).to_dict()
    two = simulate(saga, runs=3_000, seed=4, workers=2, chunk_size=700).to_dict()
    assert one == two
    assert one["crashes"]["count"] > 0


def test_crashes_with_arrivals_and_locks_run_to_the_end():
    saga = replace(seats("semantic_lock", rate=5), coordinator=Coordinator(
        crash=0.05, restart=RESTART, recovery="backward"))  # fmt: skip
    data = concurrency(saga, runs=1_000)
    assert data["crashes"]["count"] > 0 and data["outcomes"]["stuck"] == 0
    assert anomalies(data)["lost_updates"] == 0


# --- traces and the command line ----------------------------------------------------------------


def test_traces_show_crashes_restarts_and_lock_waits():
    saga = replace(seats("semantic_lock", rate=50), coordinator=Coordinator(
        crash=0.3, restart=RESTART, recovery="forward"))  # fmt: skip
    results = simulate(saga, runs=300, seed=5, trace_limit=300)
    events = [e.event for t in results.traces for e in t.events]
    assert "book_seat.crash" in events or "count_seats.crash" in events
    assert any(e.endswith(".restart") for e in events)
    assert any(e.endswith(".crash_after") for e in events)
    document = chrome_trace(results.saga, results.traces)
    categories = {e.get("cat") for e in document["traceEvents"]}
    assert {"lock", "coordinator", "step"} <= categories
    instants = {e["name"] for e in document["traceEvents"] if e["ph"] == "i"}
    assert any(name.endswith(".crash") for name in instants)


def test_one_traced_instance_with_a_crash_reads_in_order():
    traces = (simulate_instance(one_step("forward"), seed) for seed in range(50))
    trace = next(t for t in traces if any(e.event == "a.crash" for e in t.events))
    timeline = trace.timeline
    assert timeline[0] == (0.0, "a.crash")
    assert (100.0, "a.restart") in timeline
    assert [t for t, _ in timeline] == sorted(t for t, _ in timeline)


def run_cli(args: list[str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(args)
    return code, out.getvalue(), err.getvalue()


def test_the_fast_engine_refuses_a_crashing_coordinator_in_one_line():
    code, out, err = run_cli(
        ["simulate", "models/seat_booking_crash.yaml", "--engine", "fast", "--runs", "100"]
    )
    assert code == 2 and out == ""
    assert len(err.strip().splitlines()) == 1 and "coordinator" in err


def test_simulate_json_and_text_report_resources_locks_and_crashes():
    code, out, _ = run_cli(
        ["simulate", "models/seat_booking_semantic_lock.yaml", "--runs", "500", "--json"]
    )
    data = json.loads(out)
    assert code == 0 and data["locks"]["waits"] > 0
    assert data["resources"]["seats"]["final"] == 100 - data["outcomes"]["committed"]
    code, text, _ = run_cli(["simulate", "models/seat_booking_crash.yaml", "--runs", "500"])
    assert code == 0 and "crashes" in text
