"""simulate on a choreography whose services crash through their outboxes, or whose steps share
resources (docs/concurrency.md, "Choreography: each service's outbox";
:mod:`sagasim.sim.choreography_shared`).
"""

from __future__ import annotations

import contextlib
import io
import json
from dataclasses import replace

import numpy as np
import pytest
from scipy import stats

from sagasim import io as sio
from sagasim.cli import main
from sagasim.machine.choreography import compile_choreography
from sagasim.model import (
    Arrivals,
    Branch,
    Choice,
    Constant,
    Coordinator,
    Resource,
    Saga,
    Step,
)
from sagasim.sim import choreography, choreography_shared, simulate, simulate_instance
from sagasim.sim.results import COLUMNS
from sagasim.sim.shared import coordinator_seed
from sagasim.sim.traces import chrome_trace
from sagasim.verify import check

from .test_sim_shared import INITIAL
from .test_sim_shared import seats as orchestrated_seats

FAST = Constant(value_ms=10)
RESTART = Constant(value_ms=100)
LATENCY = Constant(value_ms=50)
CONCURRENCY = ("lost_updates", "dirty_reads", "stale_compensations")
#: check's name of each of simulate's concurrency anomalies
CHECKED = {"lost_updates": "lost_update", "dirty_reads": "dirty_read"}
CHECKED["stale_compensations"] = "stale_compensation"


def wilson(k: int, n: int) -> tuple[float, float]:
    ci = stats.binomtest(k, n).proportion_ci(0.999, "wilson")
    return ci.low, ci.high


def within(k: int, n: int, p: float) -> bool:
    low, high = wilson(k, n)
    return low <= p <= high


def two_steps(crash: float, idempotent: bool = False, max_crashes: int = 1) -> Saga:
    """``a`` publishes ``a.done``, which triggers ``b``; nobody listens to ``b.done``."""
    return Saga(
        name="ab",
        coordination="choreography",
        steps=(
            Step(name="a", latency=FAST),
            Step(name="b", latency=FAST, idempotent=idempotent),
        ),
        coordinator=Coordinator(crash=crash, restart=RESTART, max_crashes=max_crashes),
    )


def seats(
    isolation: str = "none",
    mode: str = "set",
    on_locked: str = "wait",
    rate: float | None = 20,
    coordinator: Coordinator | None = None,
) -> Saga:
    """tests/test_sim_shared.py's seat booking, choreographed."""
    booking = orchestrated_seats(isolation, mode, on_locked, rate)
    return replace(booking, coordination="choreography", coordinator=coordinator)


def concurrency(saga: Saga, runs: int = 2_000, seed: int = 3) -> dict:
    return simulate(saga, runs=runs, seed=seed).to_dict()


def anomalies(data: dict) -> dict[str, int]:
    return {key: data["anomalies"][key] for key in CONCURRENCY}


def choreographed(name: str) -> Saga:
    return replace(sio.load(f"models/{name}.yaml"), coordination="choreography")


# --- outbox crashes: closed forms ---------------------------------------------------------------


@pytest.mark.statistical
def test_the_outbox_duplicate_rate_is_a_crash_after_publishing_the_trigger():
    # The outbox writes, in order: a.done's row (log point 1), its mark (log point 2), then
    # b.done's row and mark. With one crash per saga, b takes a.done twice iff the first crash
    # is at a.done's mark: (1 - c) c. A saga crashes at all w.p. 1 - (1 - c)^4, and an event is
    # published again iff the first crash is at a mark: (1 - c) c + (1 - c)^3 c.
    c, runs = 0.2, 20_000
    saga = two_steps(c)
    assert compile_choreography(saga).subscribers == {"a.done": ("b",)}
    data = simulate(saga, runs=runs, seed=11).to_dict()
    duplicates = data["anomalies"]["duplicate_effects"]
    assert within(duplicates, runs, (1 - c) * c), duplicates
    crashes = data["crashes"]
    assert crashes["count"] == crashes["sagas"]  # at most one a saga
    assert within(crashes["sagas"], runs, 1 - (1 - c) ** 4), crashes
    assert within(crashes["in_doubt"], runs, (1 - c) * c + (1 - c) ** 3 * c), crashes
    assert crashes["recovery_ms"] == {"mean": 100.0, "p95": 100.0}


@pytest.mark.statistical
def test_two_crashes_a_saga_at_most_max_crashes():
    # With a budget of 2, b takes a.done twice iff a.done's mark crashes, after its row did
    # not (1 - c) or did (c, then the republished mark is a log write too: it may crash again,
    # a third copy, still a duplicate): P = (1 - c) c + c c.
    c, runs = 0.2, 20_000
    results = simulate(two_steps(c, max_crashes=2), runs=runs, seed=12)
    data = results.to_dict()
    assert within(data["anomalies"]["duplicate_effects"], runs, (1 - c) * c + c * c)
    assert results.concurrency is not None
    assert results.concurrency.crashes.max() == 2


def test_idempotent_subscribers_take_the_republished_event_once():
    data = concurrency(two_steps(0.2, idempotent=True), runs=3_000)
    assert data["crashes"]["in_doubt"] > 0  # events were published twice
    assert data["anomalies"]["duplicate_effects"] == 0


def test_a_crash_delays_the_event_by_the_restart():
    # one step, no subscriber: a crash after either log point costs exactly the restart
    saga = replace(two_steps(0.3), steps=(Step(name="a", latency=FAST),))
    results = simulate(saga, runs=2_000, seed=5)
    assert results.concurrency is not None
    crashed = results.concurrency.crashes > 0
    assert crashed.any() and not crashed.all()
    assert set(results.latency_ms[crashed].tolist()) == {110.0}
    assert set(results.latency_ms[~crashed].tolist()) == {10.0}


def test_a_republished_event_reaches_the_subscriber_twice_in_the_trace():
    traces = (simulate_instance(two_steps(0.5), seed) for seed in range(100))
    trace = next(t for t in traces if any(e == "b.again" for _, e in t.timeline))
    events = [e for _, e in trace.timeline]
    assert events.index("a.crash") < events.index("a.restart") < events.index("b.again")
    assert events.count("a.done → b") == 2
    assert [t for t, _ in trace.timeline] == sorted(t for t, _ in trace.timeline)


# --- outbox crashes and what check finds --------------------------------------------------------


@pytest.mark.parametrize("idempotent", [False, True], ids=["plain", "idempotent"])
def test_duplicates_from_outbox_crashes_only_where_check_reaches_them(idempotent: bool):
    saga = choreographed("seat_booking_crash")
    saga = replace(saga, coordinator=replace(saga.coordinator, crash=0.05))
    if idempotent:
        saga = replace(saga, steps=tuple(replace(s, idempotent=True) for s in saga.steps))
    reachable = check(saga).anomalies["duplicate_effect"] > 0
    data = concurrency(saga, runs=3_000)
    assert data["crashes"]["in_doubt"] > 0
    assert (data["anomalies"]["duplicate_effects"] > 0) == reachable
    assert reachable != idempotent


# --- resources under arrivals -------------------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    [
        "seat_booking",
        "seat_booking_reread",
        "seat_booking_version",
        "seat_booking_commutative",
        "seat_booking_semantic_lock",
    ],
)
def test_simulated_anomalies_are_those_check_reaches(name: str):
    saga = choreographed(name)
    reachable = set(check(saga).interleaving.reachable())  # type: ignore[union-attr]
    found = anomalies(concurrency(saga, runs=3_000))
    assert {CHECKED[key] for key, count in found.items() if count > 0} == reachable - {
        "deadlock"
    }, found


def test_refused_writes_are_transient_failures_that_are_retried():
    plain, refused = simulate(seats("none"), 2_000, 3), simulate(seats("version"), 2_000, 3)
    assert plain.retries.sum() == 0  # book_seat never fails by itself
    assert refused.retries.sum() > 0
    assert anomalies(refused.to_dict())["lost_updates"] == 0


@pytest.mark.parametrize(
    ("isolation", "mode"), [("semantic_lock", "set"), ("none", "add"), ("version", "set")]
)
def test_the_final_seat_count_is_what_the_committed_bookings_took(isolation: str, mode: str):
    data = concurrency(seats(isolation, mode, rate=5))
    assert data["resources"]["seats"]["final"] == INITIAL - data["outcomes"]["committed"]


def test_without_isolation_the_final_seat_count_is_wrong():
    data = concurrency(seats("none"))
    assert data["resources"]["seats"]["final"] != INITIAL - data["outcomes"]["committed"]


def test_semantic_locks_wait_and_on_locked_fail_fails_instead():
    waiting = simulate(seats("semantic_lock", rate=5), 2_000, 3)
    failing = simulate(seats("semantic_lock", on_locked="fail", rate=5), 2_000, 3)
    waits = waiting.to_dict()["locks"]
    assert waits["waits"] > 0 and 0 < waits["wait_ms"]["mean"] <= waits["wait_ms"]["p95"]
    assert failing.to_dict()["locks"]["waits"] == 0
    assert failing.count("compensated") > waiting.count("compensated")  # failed, not waited
    assert failing.latency()["mean"] < waiting.latency()["mean"]
    for results in (waiting, failing):
        assert anomalies(results.to_dict()) == dict.fromkeys(CONCURRENCY, 0)


def test_without_arrivals_instances_never_overlap():
    for isolation in ("none", "semantic_lock", "version"):
        data = concurrency(seats(isolation, rate=None))
        assert anomalies(data) == dict.fromkeys(CONCURRENCY, 0)
        assert data.get("locks", {"waits": 0})["waits"] == 0
        assert data["retries_per_instance"]["max"] == 0  # no write refused


def test_opposite_lock_orders_deadlock_and_end_stuck():
    def touching(name: str, resource: str) -> Step:
        return Step(name=name, effects=False, reads=(resource,), latency=LATENCY)

    def crossed(isolation: str) -> Saga:
        return Saga(
            name="crossed",
            coordination="choreography",
            resources=tuple(Resource(name=r, isolation=isolation) for r in ("x", "y")),  # type: ignore[arg-type]
            arrivals=Arrivals(rate_per_s=2),
            steps=(
                Step(name="start", latency=LATENCY),
                Choice(name="order", branches=(
                    Branch(when="x first", probability=0.5,
                           steps=(touching("x1", "x"), touching("y1", "y"))),
                    Branch(when="y first", default=True,
                           steps=(touching("y2", "y"), touching("x2", "x"))),
                )),
            ),
        )  # fmt: skip

    locked = simulate(crossed("semantic_lock"), runs=200, seed=1)
    assert locked.count("stuck") > 0
    assert simulate(crossed("none"), runs=200, seed=1).count("stuck") == 0


def test_crashes_with_arrivals_and_locks_run_to_the_end():
    saga = seats("semantic_lock", rate=5, coordinator=Coordinator(crash=0.05, restart=RESTART))
    data = concurrency(saga, runs=1_000)
    assert data["crashes"]["count"] > 0 and data["outcomes"]["stuck"] == 0
    assert anomalies(data) == dict.fromkeys(CONCURRENCY, 0)
    assert data["anomalies"]["duplicate_effects"] > 0  # count_seats.done taken twice


# --- seeds, workers and the plain engine --------------------------------------------------------


def test_the_same_seed_gives_the_same_results_on_any_number_of_workers():
    saga = seats("version", rate=None, coordinator=Coordinator(crash=0.05, restart=RESTART))
    one = simulate(saga, runs=3_000, seed=4, workers=1, chunk_size=700).to_dict()
    two = simulate(saga, runs=3_000, seed=4, workers=2, chunk_size=700).to_dict()
    assert one == two
    assert one["crashes"]["count"] > 0


def both_chunks(saga: Saga, n: int = 2_000) -> tuple:
    plain = choreography.Chunk(saga, np.random.default_rng(5), n, 0, 0).run(5)
    crash_rng = np.random.default_rng(coordinator_seed(np.random.SeedSequence(9)))
    chunk = choreography_shared.SharedChunk(saga, np.random.default_rng(5), n, 0, 0, crash_rng)
    return plain, chunk.run(5)


@pytest.mark.parametrize(
    "saga",
    [
        seats("none", rate=None),  # resources, but instances never overlap
        replace(seats("none", rate=None), coordinator=Coordinator(crash=0.0)),
    ],
    ids=["resources", "coordinator_never_crashing"],
)
def test_the_shared_engine_takes_the_plain_engines_draws_when_nothing_interferes(saga: Saga):
    plain, other = both_chunks(saga)
    for name in COLUMNS:
        assert np.array_equal(getattr(plain, name), getattr(other, name), equal_nan=True), name
    assert other.concurrency is not None and plain.concurrency is None


def test_choreographies_without_the_new_keys_keep_the_plain_engine_and_their_json():
    saga = sio.load("models/order_fulfillment_choreography.yaml")
    assert not choreography_shared.needed(saga)
    data = simulate(saga, runs=300, seed=1).to_dict()
    assert not {"locks", "crashes", "resources"} & set(data)
    assert "lost_updates" not in data["anomalies"]


def test_the_json_keys_are_orchestrations():
    saga = seats("semantic_lock", coordinator=Coordinator(crash=0.05, restart=RESTART))
    chor = concurrency(saga, runs=300)
    orch = concurrency(replace(saga, coordination="orchestration"), runs=300)
    assert set(chor) == set(orch)
    for key in ("anomalies", "locks", "crashes", "resources"):
        assert set(chor[key]) == set(orch[key]), key


def test_the_library_driver_takes_the_same_edges():
    saga = seats("semantic_lock", rate=None, coordinator=Coordinator(crash=0.3, restart=RESTART))
    crashed = 0
    for seed in range(30):
        table = simulate_instance(saga, seed)
        assert simulate_instance(saga, seed, driver="library").timeline == table.timeline
        crashed += any(e.endswith(".crash") for _, e in table.timeline)
    assert crashed > 0


# --- traces and the command line ----------------------------------------------------------------


def test_traces_show_service_crashes_restarts_and_lock_waits():
    saga = seats("semantic_lock", rate=50, coordinator=Coordinator(crash=0.3, restart=RESTART))
    results = simulate(saga, runs=200, seed=5, trace_limit=200)
    events = [e.event for t in results.traces for e in t.events]
    services = {saga.service_of(a) for a in saga.actions()}
    assert {e.rsplit(".", 1)[0] for e in events if e.endswith(".crash")} <= services
    assert any(e.endswith(".crash") for e in events)
    assert any(e.endswith(".restart") for e in events)
    document = chrome_trace(results.saga, results.traces)
    categories = {e.get("cat") for e in document["traceEvents"]}
    assert {"lock", "coordinator", "step"} <= categories
    instants = {e["name"] for e in document["traceEvents"] if e["ph"] == "i"}
    assert any(name.endswith(".crash") for name in instants)


def run_cli(args: list[str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(args)
    return code, out.getvalue(), err.getvalue()


def test_simulate_reports_a_choreographys_crashes_and_resources():
    args = ["simulate", "--set", "coordination=choreography", "--runs", "500", "--json"]
    code, out, _ = run_cli([*args, "models/seat_booking_crash.yaml"])
    assert code == 0 and json.loads(out)["crashes"]["count"] >= 0
    code, out, _ = run_cli([*args, "models/seat_booking_semantic_lock.yaml"])
    data = json.loads(out)
    assert code == 0 and data["locks"]["waits"] > 0
    assert data["resources"]["seats"]["final"] == 100 - data["outcomes"]["committed"]
