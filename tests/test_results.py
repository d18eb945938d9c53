"""Results: counts, intervals, summaries, the JSON contract, tables, traces, merging."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from sagasim import io
from sagasim.machine import ANOMALIES
from sagasim.model import Arrivals, Compensation, Constant, Retry, Saga, Step
from sagasim.sim import Results, simulate
from sagasim.sim.results import _wilson, merge

MODELS = Path(__file__).resolve().parent.parent / "models"


def timed_saga() -> Saga:
    """Constant latencies, so every time is known: reserve 20 ms, charge 50 ms (rejected 30%),
    release 5 ms; a reject at 70 ms ends compensated at 75 ms, 55 ms after reserve landed."""
    return Saga(
        name="timed",
        steps=(
            Step(
                name="reserve",
                latency=Constant(value_ms=20.0),
                compensation=Compensation(name="release", latency=Constant(value_ms=5.0)),
            ),
            Step(name="charge", kind_declared="pivot", latency=Constant(value_ms=50.0), reject=0.3),
        ),
    )


@pytest.fixture(scope="module")
def timed() -> Results:
    return simulate(timed_saga(), runs=5_000, seed=1, trace_limit=3)


@pytest.fixture(scope="module")
def order() -> Results:
    return simulate(io.load(MODELS / "order_fulfillment.yaml"), runs=5_000, seed=2, trace_limit=5)


def test_outcomes_have_every_end_state_and_sum_to_runs(timed: Results) -> None:
    assert list(timed.outcomes) == ["committed", "compensated", "leaked", "stuck"]
    assert sum(timed.outcomes.values()) == timed.runs == 5_000
    assert timed.outcomes["leaked"] == timed.outcomes["stuck"] == 0


@pytest.mark.parametrize("confidence", [0.0, 0.5, 0.9, 0.95, 0.99, 0.999, 0.9999])
@pytest.mark.parametrize("n", [1, 2, 3, 7, 50, 1_000, 200_000, 10**7])
def test_wilson_intervals_match_scipy(n: int, confidence: float) -> None:
    # sagasim computes the interval itself, so that a simulation never loads scipy
    for k in sorted({0, 1, n // 3, n // 2, n - 1, n} & set(range(n + 1))):
        ci = stats.binomtest(k, n).proportion_ci(confidence_level=confidence, method="wilson")
        rate = _wilson(k, n, confidence)
        assert rate.value == k / n
        assert rate.low == pytest.approx(ci.low, rel=1e-12, abs=1e-15), (k, n)
        assert rate.high == pytest.approx(ci.high, rel=1e-12, abs=1e-15), (k, n)


def test_a_certain_interval_is_everything_and_a_bad_level_an_error() -> None:
    assert _wilson(3, 10, 1.0) == (0.3, 0.0, 1.0)
    with pytest.raises(ValueError, match="confidence level"):
        _wilson(3, 10, 1.5)


def test_rates_are_wilson_intervals_from_scipy(timed: Results) -> None:
    k = timed.outcomes["compensated"]
    ci = stats.binomtest(k, 5_000).proportion_ci(confidence_level=0.99, method="wilson")
    rate = timed.rate("compensated", confidence=0.99)
    assert tuple(rate) == (k / 5_000, ci.low, ci.high)
    assert rate.low < 0.3 < rate.high
    # here every compensation comes from a rejected charge
    assert timed.compensation_rate.value == rate.value
    assert timed.stuck_rate.value == timed.leaked_rate.value == 0.0
    assert timed.stuck_rate.high > 0


def test_latency_and_inconsistency_window_are_exact_with_constant_latencies(
    timed: Results,
) -> None:
    assert timed.latency("committed") == {"mean": 70.0, "p50": 70.0, "p95": 70.0, "p99": 70.0}
    assert timed.latency("compensated")["p99"] == 75.0
    window = timed.inconsistency_window()
    assert window["mean"] == window["max"] == 55.0
    assert np.isnan(timed.window_ms[timed.outcome == 0]).all()
    assert math.isnan(timed.latency("stuck")["mean"])


def test_to_dict_has_the_design_shape_and_is_valid_json(order: Results) -> None:
    data = order.to_dict()
    assert list(data)[:8] == [
        "saga",
        "runs",
        "seed",
        "outcomes",
        "compensation_rate",
        "latency_ms",
        "anomalies",
        "rates",
    ]
    assert data["saga"] == "order_fulfillment" and data["runs"] == 5_000 and data["seed"] == 2
    assert set(data["compensation_rate"]) == {"value", "ci95"}
    assert len(data["compensation_rate"]["ci95"]) == 2
    assert set(data["latency_ms"]) == {"mean", "p50", "p95", "p99"}
    assert set(data["anomalies"]) == {
        "duplicate_effects",
        "hanging",
        "late_leaks",
        "empty_compensations",
    }
    assert data["latency_by_outcome"]["stuck"] is None  # no instance ended stuck
    assert data["services"]["payments"]["utilisation"] is None  # independent instances
    text = json.dumps(data, allow_nan=False)
    assert json.loads(text) == data
    assert data["latency_ms"]["p99"] == round(data["latency_ms"]["p99"], 3)


def test_per_instance_counts(order: Results) -> None:
    retries = order.per_instance("retries")
    assert retries["max"] >= 1 and 0 < retries["mean"] < 1
    comps = order.per_instance("compensations")
    assert comps["mean"] == pytest.approx(order.compensations.mean())
    assert order.to_dict()["compensations_per_instance"]["max"] == comps["max"]
    # orchestrated, every attempt is a command and a reply
    attempts = sum(s.attempts for s in order.services.values())
    assert int(order.messages.sum()) == 2 * attempts
    assert order.to_dict()["messages_per_instance"]["mean"] == round(2 * attempts / order.runs, 3)
    with pytest.raises(ValueError, match="'retries', 'compensations' or 'messages'"):
        order.per_instance("attempts")


def test_unknown_rates_are_refused(timed: Results) -> None:
    with pytest.raises(ValueError, match="expected one of committed"):
        timed.rate("lost")


def test_text_and_html_tables_show_the_headline_figures(timed: Results) -> None:
    text = timed.to_text()
    assert text.splitlines()[0] == "simulate timed"
    assert "compensation rate" in text and "compensated" in text
    html = timed._repr_html_()
    assert html.startswith("<table>") and "compensation rate" in html
    assert "committed=" in repr(timed)


def test_to_pandas_has_one_row_per_instance(timed: Results) -> None:
    frame = timed.to_pandas()
    assert len(frame) == 5_000
    assert set(ANOMALIES) <= set(frame.columns)
    assert frame["compensated"].sum() == timed.outcomes["compensated"]
    assert (frame["outcome"] == "committed").sum() == timed.outcomes["committed"]


def test_rate_over_time_bins_instances_by_arrival() -> None:
    saga = Saga(
        name="arrivals", steps=(Step(name="a", reject=0.5),), arrivals=Arrivals(rate_per_s=100.0)
    )
    results = simulate(saga, runs=2_000, seed=3)
    starts, rates = results.rate_over_time(1_000, "committed")
    assert starts[1] - starts[0] == 1_000
    assert len(starts) == int(results.start_ms.max() // 1_000) + 1
    weights = np.bincount((results.start_ms // 1_000).astype(int))
    assert np.nansum(rates * weights) == pytest.approx(results.outcomes["committed"])
    with pytest.raises(ValueError, match="positive window"):
        results.rate_over_time(0)


def test_windows_count_every_arrival_once_and_agree_with_rate_over_time() -> None:
    saga = Saga(
        name="arrivals", steps=(Step(name="a", reject=0.5),), arrivals=Arrivals(rate_per_s=100.0)
    )
    results = simulate(saga, runs=2_000, seed=3)
    windows = results.windows(1_000, "committed")
    assert sum(w.runs for w in windows) == 2_000
    assert sum(w.hits for w in windows) == results.outcomes["committed"]
    assert [w.start_ms for w in windows] == [1_000.0 * i for i in range(len(windows))]
    expected = np.bincount((results.start_ms // 1_000).astype(int))
    assert [w.runs for w in windows] == expected.tolist()
    starts, rates = results.rate_over_time(1_000, "committed")
    assert starts.tolist() == [w.start_ms for w in windows]
    np.testing.assert_array_equal(rates, [w.rate for w in windows])
    assert all(0 <= w.hits <= w.runs for w in windows)
    # about 100 arrivals a second, about half of them committed
    assert all(60 < w.runs < 140 for w in windows[:-1])
    with pytest.raises(ValueError, match="positive window"):
        results.windows(-5)


def test_a_window_without_arrivals_has_no_rate() -> None:
    saga = Saga(name="slow", steps=(Step(name="a"),), arrivals=Arrivals(rate_per_s=0.5))
    results = simulate(saga, runs=50, seed=4)
    windows = results.windows(100)
    empty = [w for w in windows if w.runs == 0]
    assert empty and all(w.hits == 0 and math.isnan(w.rate) for w in empty)
    assert sum(w.runs for w in windows) == 50


def test_compensation_phase_is_exact_with_constant_latencies(timed: Results) -> None:
    traced = simulate(timed_saga(), runs=400, seed=1, trace_limit=400)
    phase = traced.compensation_phase()
    # release takes 5 ms and starts the moment the charge is rejected
    assert {k: v for k, v in phase.items() if k != "instances"} == dict.fromkeys(
        ("mean", "p50", "p95", "p99"), 5.0
    )
    assert phase["instances"] == int(traced.compensated.sum()) > 80
    untraced = timed.compensation_phase()  # three traced instances of 5,000
    assert untraced["instances"] == sum(t.outcome == "compensated" for t in timed.traces) <= 3


def test_compensation_phase_counts_retried_compensations() -> None:
    saga = Saga(
        name="undo_twice",
        steps=(
            Step(
                name="reserve",
                latency=Constant(value_ms=20.0),
                compensation=Compensation(
                    name="release",
                    latency=Constant(value_ms=5.0),
                    failure=0.5,
                    retry=Retry(attempts=None, delay_ms=10.0),
                ),
            ),
            Step(name="charge", latency=Constant(value_ms=50.0), reject=1.0),
        ),
    )
    results = simulate(saga, runs=300, seed=5, trace_limit=300)
    phase = results.compensation_phase()
    # each failed release adds its 5 ms and the 10 ms delay before the next attempt
    retries = np.array([sum(s.compensation for s in t.spans) - 1 for t in results.traces])
    assert phase["instances"] == 300
    assert phase["mean"] == pytest.approx(5.0 + 15.0 * retries.mean())
    assert phase["p95"] == pytest.approx(np.percentile(5.0 + 15.0 * retries, 95))
    assert retries.max() > 0
    no_traces = simulate(saga, runs=10, seed=5).compensation_phase()
    assert no_traces["instances"] == 0 and math.isnan(no_traces["mean"])


def test_jsonl_trace_lists_the_events_of_the_first_instances(
    timed: Results, tmp_path: Path
) -> None:
    path = tmp_path / "trace.jsonl"
    timed.write_trace(path)
    records = [json.loads(line) for line in path.read_text().splitlines()]
    assert {r["instance"] for r in records} == {0, 1, 2}
    assert set(records[0]) == {"instance", "t_ms", "event", "state"}
    assert records[0] == {"instance": 0, "t_ms": 20.0, "event": "reserve.ok", "state": "charge"}
    for trace in timed.traces:
        assert trace.events[-1].state == trace.outcome == timed.to_pandas().outcome[trace.instance]


def test_chrome_trace_has_a_track_per_instance_and_coloured_compensations(
    tmp_path: Path,
) -> None:
    results = simulate(timed_saga(), runs=50, seed=1, trace_limit=50)
    path = tmp_path / "trace.json"
    results.write_trace(path)
    events = json.loads(path.read_text())["traceEvents"]
    spans = [e for e in events if e["ph"] == "X"]
    assert {e["tid"] for e in spans} == set(range(50))
    steps = {e["cname"] for e in spans if e["cat"] == "step"}
    comps = {e["cname"] for e in spans if e["cat"] == "compensation"}
    assert comps and steps and comps.isdisjoint(steps)
    charge = next(e for e in spans if e["name"] == "charge")
    assert (charge["ts"], charge["dur"]) == (20_000.0, 50_000.0)  # microseconds
    names = [e for e in events if e["ph"] == "M" and e["name"] == "thread_name"]
    assert len(names) == 50
    ends = [e for e in events if e["ph"] == "i"]  # no timeouts: only the end of each instance
    assert len(ends) == 50
    assert {(e["name"], e["ts"]) for e in ends} == {("committed", 70e3), ("compensated", 75e3)}
    with pytest.raises(ValueError, match=r"jsonl or \.json"):
        results.write_trace(tmp_path / "trace.txt")


def test_merge_joins_chunks_in_order(timed: Results, order: Results) -> None:
    joined = merge([timed, timed])
    assert joined.runs == 10_000
    assert joined.outcomes["compensated"] == 2 * timed.outcomes["compensated"]
    np.testing.assert_array_equal(joined.latency_ms[5_000:], timed.latency_ms)
    assert joined.services["reserve"].attempts == 2 * timed.services["reserve"].attempts
    with pytest.raises(ValueError, match="at least one"):
        merge([])


def test_traces_and_service_counts_span_chunks() -> None:
    saga = timed_saga()
    whole = simulate(saga, runs=3_000, seed=4, chunk_size=1_000, trace_limit=1_500)
    assert [t.instance for t in whole.traces] == list(range(1_500))
    assert whole.services["charge"].attempts == 3_000


def test_retries_are_counted_per_instance() -> None:
    saga = Saga(name="r", steps=(Step(name="a", failure=0.5, retry=Retry(attempts=4)),))
    results = simulate(saga, runs=4_000, seed=5)
    # retries follow a truncated geometric: P(k retries) = 0.5^(k+1), P(3) = 0.125 + 0.0625
    counts = np.bincount(results.retries, minlength=4) / 4_000
    assert counts == pytest.approx([0.5, 0.25, 0.125, 0.125], abs=0.03)
    assert results.services["a"].attempts == int(results.retries.sum()) + 4_000
