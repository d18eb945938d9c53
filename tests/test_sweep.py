"""Sweeps: the grid, the seeds, the exact values, the outputs and parse_vary's messages."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import numpy as np
import pytest

from sagasim import io
from sagasim.exceptions import SagaDefinitionError, SagaSimError, UsageError
from sagasim.experiments import SweepResult, parse_vary, sweep
from sagasim.experiments.grid import EXACT_CURVE_POINTS
from sagasim.model import Compensation, Parallel, Saga, Step, Uniform
from sagasim.sim import simulate

MODELS = Path(__file__).resolve().parent.parent / "models"
RUNS = 2_000


@pytest.fixture(scope="module")
def order() -> Saga:
    return io.load(MODELS / "order_fulfillment.yaml")


@pytest.fixture(scope="module")
def rejects(order: Saga) -> SweepResult:
    return sweep(order, [parse_vary("process_payment.reject=0:0.2:3")], runs=RUNS, seed=11)


def test_each_point_is_a_separate_simulate_run_on_its_seed(
    order: Saga, rejects: SweepResult, tmp_path: Path
) -> None:
    rejects.to_csv(tmp_path / "sweep.csv")
    with open(tmp_path / "sweep.csv", newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert [float(row["process_payment.reject"]) for row in rows] == [0.0, 0.1, 0.2]
    for row in rows:
        value = row["process_payment.reject"]
        saga = io.apply_overrides(order, [f"process_payment.reject={value}"])
        alone = simulate(saga, runs=RUNS, seed=int(row["seed"]))
        assert {k: int(row[k]) for k in alone.outcomes} == alone.outcomes
        assert int(row["runs"]) == RUNS
        rate = alone.compensation_rate
        assert float(row["compensation_rate"]) == round(rate.value, 6)
        assert (float(row["ci_low"]), float(row["ci_high"])) == (
            round(rate.low, 6),
            round(rate.high, 6),
        )
        assert float(row["latency_p95_ms"]) == round(alone.latency()["p95"], 3)


def test_point_seeds_come_from_a_seed_sequence(rejects: SweepResult) -> None:
    children = np.random.SeedSequence(11).spawn(3)
    assert rejects.point_seeds == tuple(int(c.generate_state(1)[0]) for c in children)
    assert [p.results.seed for p in rejects.points] == list(rejects.point_seeds)
    assert len(set(rejects.point_seeds)) == 3


def test_exact_values_where_analyze_works(rejects: SweepResult) -> None:
    exact = [p.exact_compensation_probability for p in rejects.points]
    assert all(value is not None for value in exact)
    assert exact == sorted(exact) and exact[0] < exact[-1]  # more rejections, more undoing
    assert [p.exact_stuck for p in rejects.points] == [0.0, 0.0, 0.0]
    curve = rejects.exact_curve
    assert curve is not None
    assert len(curve.x) == EXACT_CURVE_POINTS  # 0, 0.1 and 0.2 are on the fine grid
    for point in rejects.points:
        (at,) = np.flatnonzero(np.isclose(curve.x, point.values[0]))
        assert curve.compensation_probability[at] == point.exact_compensation_probability
    assert np.all(np.diff(curve.compensation_probability) > 0)


@pytest.mark.statistical
def test_simulated_intervals_hold_the_exact_values(rejects: SweepResult) -> None:
    for point in rejects.points:  # 99.9% intervals: a miss means a bug, not bad luck
        rate = point.results.rate("compensation", confidence=0.999)
        assert point.exact_compensation_probability is not None
        assert rate.low <= point.exact_compensation_probability <= rate.high


def test_two_parameter_sweep_is_a_row_major_grid(order: Saga) -> None:
    result = sweep(
        order,
        {"process_payment.reject": [0.0, 0.3], "recommend_upsell.retry.attempts": [1, 2, 3]},
        runs=300,
        seed=2,
    )
    assert result.shape == (2, 3)
    assert [p.values for p in result.points] == [
        (0.0, 1),
        (0.0, 2),
        (0.0, 3),
        (0.3, 1),
        (0.3, 2),
        (0.3, 3),
    ]
    assert result.points[4].overrides == (
        "process_payment.reject=0.3",
        "recommend_upsell.retry.attempts=2",
    )
    grid = result.grid("committed")
    assert grid.shape == (2, 3)
    assert grid[1, 2] == result.points[5].results.outcomes["committed"]
    frame = result.to_pandas()
    assert frame.shape[0] == 6
    assert list(frame.columns[:4]) == [
        "process_payment.reject",
        "recommend_upsell.retry.attempts",
        "runs",
        "seed",
    ]
    assert frame["recommend_upsell.retry.attempts"].tolist() == [1, 2, 3, 1, 2, 3]
    assert result.exact_curve is None  # curves are for one-parameter sweeps


def test_workers_do_not_change_the_numbers(order: Saga) -> None:
    vary = {"process_payment.reject": [0.05, 0.25]}
    one = sweep(order, vary, runs=500, seed=4)
    two = sweep(order, vary, runs=500, seed=4, workers=2)  # a point a worker
    three = sweep(order, vary, runs=500, seed=4, workers=3)  # the points' chunks share them
    assert one.rows() == two.rows() == three.rows()


def test_durations_take_ms_and_whole_number_paths_take_ints(order: Saga) -> None:
    result = sweep(order, [parse_vary("process_payment.timeout=500ms:1s:2")], runs=50)
    assert result.points[1].overrides == ("process_payment.timeout=1000ms",)
    assert result.values == ((500.0, 1000.0),)
    result = sweep(order, {"reserve_inventory.retry.attempts": [1.0, 3]}, runs=50)
    assert result.values == ((1, 3),)
    assert result.points[1].overrides == ("reserve_inventory.retry.attempts=3",)


def test_no_exact_values_for_what_analyze_does_not_model() -> None:
    under_load = io.load(MODELS / "order_fulfillment_under_load.yaml")
    result = sweep(under_load, {"services.payments.capacity": [10, 20]}, runs=200)
    assert all(p.analysis is None for p in result.points)
    assert result.exact_curve is None
    assert result.notes == (
        "no exact values at 2 of 2 points (services.payments.capacity=10: analyze does not "
        "model outages)",
    )
    assert result.rows()[0]["exact_compensation_probability"] is None


def racing_saga() -> Saga:
    """A parallel group whose finishing order changes P(stuck): the analysis is approximate."""
    uniform = Uniform(low_ms=0.0, high_ms=20.0)
    undo, fragile = Compensation(name="unhold"), Compensation(name="unhold2", failure=0.5)
    return Saga(
        name="race",
        steps=(
            Parallel(
                branches=(
                    (Step(name="check", effects=False, reject=0.3, latency=uniform),),
                    (
                        Step(name="hold", latency=uniform, compensation=undo),
                        Step(name="hold2", latency=uniform, compensation=fragile),
                    ),
                )
            ),
        ),
    )


def test_approximate_analysis_gives_no_exact_values(tmp_path: Path) -> None:
    result = sweep(racing_saga(), {"check.reject": [0.1, 0.3]}, runs=200)
    assert [p.analysis for p in result.points] == [None, None]
    assert result.exact_curve is None
    (note,) = result.notes
    assert note.startswith("no exact values at 2 of 2 points (check.reject=0.1: probabilities ")
    result.to_csv(tmp_path / "race.csv")
    with open(tmp_path / "race.csv", newline="", encoding="utf-8") as f:
        row = next(csv.DictReader(f))
    assert row["exact_compensation_probability"] == row["exact_stuck"] == ""
    assert math.isnan(result.to_pandas()["exact_stuck"][0])
    assert json.loads(json.dumps(result.to_dict()))["points"][0]["exact"] is None


def test_to_dict_is_stable_json(rejects: SweepResult) -> None:
    data = rejects.to_dict()
    assert list(data) == ["saga", "runs", "seed", "parameters", "points", "notes"]
    assert data["parameters"] == [{"path": "process_payment.reject", "values": [0.0, 0.1, 0.2]}]
    point = data["points"][1]
    assert list(point) == [
        "values",
        "seed",
        "outcomes",
        "compensation_rate",
        "stuck_rate",
        "latency_ms",
        "exact",
    ]
    results = rejects.points[1].results
    assert point["outcomes"] == results.outcomes
    assert point["compensation_rate"]["value"] == round(results.compensation_rate.value, 6)
    exact = rejects.points[1].exact_compensation_probability
    assert exact is not None
    assert point["exact"]["compensation_probability"] == float(f"{exact:.12g}")
    assert json.loads(json.dumps(data, allow_nan=False)) == data


def test_to_text_has_a_line_per_point(rejects: SweepResult) -> None:
    lines = rejects.to_text().splitlines()
    assert lines[0] == f"sweep order_fulfillment: {RUNS:,} runs a point (seed 11)"
    assert "compensation rate [95% CI]" in lines[1] and "exact comp." in lines[1]
    assert len(lines) == 2 + 3
    assert lines[3].split()[0] == "0.1"


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("process_payment.reject=0:0.2:5", (0.0, 0.05, 0.1, 0.15, 0.2)),
        ("process_payment.reject=0.3:0.1:3", (0.3, 0.2, 0.1)),
        ("process_payment.reject = 0.1:0.1:1", (0.1,)),
        ("reserve_inventory.retry.attempts=1:5:5", (1, 2, 3, 4, 5)),
        ("services.payments.capacity=5:20:4", (5, 10, 15, 20)),
        ("process_payment.timeout=100ms:1.5s:3", (100.0, 800.0, 1500.0)),
        ("arrivals.rate=10:50:3", (10.0, 30.0, 50.0)),
        ("services.payments.outages[0].end=60s:2min:2", (60_000.0, 120_000.0)),
    ],
)
def test_parse_vary_good_specs(spec: str, expected: tuple[float, ...]) -> None:
    path, values = parse_vary(spec)
    assert path == spec.split("=")[0].strip()
    assert values == expected
    assert all(isinstance(v, int) for v in values) == path.endswith(("attempts", "capacity"))


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("process_payment.reject=0:0.2", "expected PATH=START:STOP:COUNT, got '0:0.2'"),
        ("process_payment.reject=0:0.2:", "expected PATH=START:STOP:COUNT, got '0:0.2:'"),
        ("process_payment.reject", "expected PATH=START:STOP:COUNT, got no '='"),
        ("=0:1:3", "expected PATH=START:STOP:COUNT, got no PATH"),
        ("a.reject=0:1:2:3", "expected PATH=START:STOP:COUNT, got '0:1:2:3'"),
        (
            "a.reject=low:1:3",
            "expected START to be a number or a duration such as 100ms, got 'low'",
        ),
        (
            "a.reject=0:nan:3",
            "expected STOP to be a number or a duration such as 100ms, got 'nan'",
        ),
        ("a.reject=0:1:0", "expected COUNT to be a whole number from 1 to 1,000, got '0'"),
        ("a.reject=0:1:2.5", "expected COUNT to be a whole number from 1 to 1,000, got '2.5'"),
        ("a.reject=0:1:1001", "expected COUNT to be a whole number from 1 to 1,000, got '1001'"),
        (
            "a.retry.attempts=1:3:5",
            "expected COUNT different whole numbers, got 1, 2, 2, 3, 3",
        ),
    ],
)
def test_parse_vary_bad_specs(spec: str, message: str) -> None:
    with pytest.raises(UsageError) as caught:
        parse_vary(spec)
    assert str(caught.value) == f"--vary {spec}: {message}"


def test_bad_values_name_the_point_before_anything_runs(order: Saga) -> None:
    with pytest.raises(SagaDefinitionError) as caught:
        sweep(order, {"process_payment.reject": [0.1, 1.5]}, runs=10**9)
    assert str(caught.value) == (
        "--vary process_payment.reject=1.5: expected a probability in [0, 1], got 1.5"
    )
    with pytest.raises(SagaDefinitionError, match=r"^--vary process_paymnt\.reject=0\.1: unknown"):
        sweep(order, {"process_paymnt.reject": [0.1]}, runs=10)


@pytest.mark.parametrize(
    ("vary", "message"),
    [
        ({}, "--vary: expected one or two different parameters, got 0"),
        (
            {"a.reject": [0.1], "a.failure": [0.1], "b.reject": [0.1]},
            "--vary: expected one or two different parameters, got 3",
        ),
        (
            [("a.reject", [0.1]), ("a.reject", [0.2])],
            "--vary: expected one or two different parameters, got one of them twice",
        ),
        ({"a.reject": []}, "--vary a.reject: expected at least one value, got none"),
        ({"a.reject": ["0.1"]}, "--vary a.reject: expected numbers, got '0.1'"),
        ({"a.retry.attempts": [1.5]}, "--vary a.retry.attempts: expected whole numbers, got 1.5"),
    ],
)
def test_bad_grids(vary: object, message: str) -> None:
    saga = Saga(name="s", steps=(Step(name="a"),))
    with pytest.raises(UsageError) as caught:
        sweep(saga, vary, runs=10)  # type: ignore[arg-type]
    assert str(caught.value) == message


def test_a_point_that_cannot_be_simulated_is_named(order: Saga) -> None:
    with pytest.raises(SagaSimError, match=r"^--vary release_inventory\.failure=1: "):
        sweep(order, {"release_inventory.failure": [0.5, 1.0]}, runs=10)


SEATS = MODELS / "seat_booking.yaml"


def test_a_sweep_of_shared_data_shows_the_anomalies_between_instances() -> None:
    result = sweep(io.load(SEATS), {"arrivals.rate": [1.0, 5.0]}, runs=2000, seed=3)
    rows = result.rows()
    for row, point in zip(rows, result.points):
        lost = point.results.concurrency.counts()["lost_updates"]  # type: ignore[union-attr]
        assert row["lost_updates_per_1000"] == pytest.approx(1000 * lost / 2000)
    assert 0 < rows[0]["lost_updates_per_1000"] < rows[1]["lost_updates_per_1000"]  # overlap
    assert "lock_wait_mean_ms" not in rows[0] and "crashes_per_1000" not in rows[0]
    assert result.to_dict()["points"][1]["shared"]["dirty_reads_per_1000"] > 0
    assert "lost/1k" in result.to_text().splitlines()[1]


def test_a_sweep_of_the_crash_rate_counts_crashes_and_duplicates() -> None:
    crash = io.load(SEATS.with_name("seat_booking_crash.yaml"))
    result = sweep(
        crash, {"coordinator.crash": [0.0, 0.05], "coordinator.max_crashes": [1]}, runs=2000, seed=4
    )
    quiet, crashing = result.rows()
    assert quiet["crashes_per_1000"] == quiet["duplicate_effects_per_1000"] == 0
    assert crashing["crashes_per_1000"] > 0 and crashing["duplicate_effects_per_1000"] > 0
    assert crashing["coordinator.max_crashes"] == 1


def test_a_sweep_without_shared_data_has_none_of_its_columns(order: Saga) -> None:
    result = sweep(order, {"process_payment.reject": [0.1]}, runs=200, seed=1)
    assert not any(key in result.rows()[0] for key in ("lost_updates_per_1000", "crashes_per_1000"))
    assert "shared" not in result.to_dict()["points"][0]
