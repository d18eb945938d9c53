"""The three answers agree on the graph model: check allows everything simulate and analyze
produce, simulated rates and mean latencies lie in 99.9 % intervals around analyze's exact
values, on random graph sagas and on every model of ``models/graph``, and analyze meets the
closed forms of DESIGN.md's constructs to 1e-9."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from scipy import stats

from sagasim import io
from sagasim.analysis import analyze
from sagasim.model import (
    Branch,
    Choice,
    Compensation,
    Constant,
    Fail,
    Goto,
    Map,
    Retry,
    Saga,
    Step,
    SubSaga,
)
from sagasim.sim import simulate, simulate_instance
from sagasim.verify import check

from .graph_strategies import graph_sagas
from .test_cross_oracle import assert_around_exact_values

GRAPH_MODELS = sorted((Path(__file__).resolve().parent.parent / "models" / "graph").glob("*.yaml"))
SETTINGS = settings(deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])


def possible(counts: dict[str, int]) -> set[str]:
    return {name for name, n in counts.items() if n > 0}


@settings(SETTINGS, max_examples=80)
@given(graph_sagas())
def test_check_allows_everything_simulate_and_analyze_produce(saga: Saga) -> None:
    report = check(saga)
    results = simulate(saga, runs=300, seed=4)
    assert possible(results.outcomes) <= possible(report.end_states)
    assert possible(results.anomalies) <= possible(report.anomalies)
    exact = analyze(saga, sensitivity=False)
    assert sum(exact.outcomes.values()) == pytest.approx(1.0, abs=1e-9)
    assert {name for name, p in exact.outcomes.items() if p > 0} == possible(report.end_states)
    for name, by_outcome in results.fails.items():
        if sum(by_outcome.values()):
            assert report.fails[name] > 0 and sum(exact.fails[name].values()) > 0


@settings(SETTINGS, max_examples=40)
@given(graph_sagas())
def test_the_table_and_the_live_class_take_the_same_edges(saga: Saga) -> None:
    for seed in range(5):
        table = simulate_instance(saga, seed=seed)
        live = simulate_instance(saga, seed=seed, driver="library")
        assert table == live


@pytest.mark.statistical
@settings(SETTINGS, max_examples=40)
@given(graph_sagas(max_entries=2))
def test_simulated_rates_lie_in_999_intervals_around_exact_values(saga: Saga) -> None:
    exact = analyze(saga, sensitivity=False)
    if not exact.exact:
        return  # a race whose order matters: analyze says its numbers are approximate
    assert_around_exact_values(simulate(saga, runs=3_000, seed=21), exact)


@pytest.mark.statistical
@pytest.mark.parametrize("path", GRAPH_MODELS, ids=[p.stem for p in GRAPH_MODELS])
def test_every_graph_model_agrees_with_analyze(path: Path) -> None:
    saga = io.load(path)
    exact = analyze(saga, sensitivity=False)
    assert exact.exact
    results = simulate(saga, runs=20_000, seed=3)
    assert_around_exact_values(results, exact)
    for name, by_outcome in exact.fails.items():
        hits = sum(results.fails[name].values())
        ci = stats.binomtest(hits, results.runs).proportion_ci(0.999, method="wilson")
        assert ci.low <= sum(by_outcome.values()) <= ci.high, name
    mean, sd = float(results.latency_ms.mean()), float(results.latency_ms.std(ddof=1))
    half = stats.norm.ppf(0.9995) * sd / math.sqrt(results.runs)
    assert abs(mean - exact.expected_latency_ms["all"]) <= half  # type: ignore[operator]
    report = check(saga)
    assert possible(results.outcomes) <= possible(report.end_states)


# --- closed forms --------------------------------------------------------------------------


def constant(ms: float) -> Constant:
    return Constant(value_ms=ms)


def test_a_choice_weighs_its_branches() -> None:
    p, ra, rb = 0.3, 0.2, 0.6
    saga = Saga(
        name="c",
        steps=(
            Step(name="look", effects=False),
            Choice(
                name="route",
                branches=(
                    Branch(when="a", probability=p, steps=(Step(name="via_a", reject=ra),)),
                    Branch(when="b", default=True, steps=(Step(name="via_b", reject=rb),)),
                ),
            ),
        ),
    )
    committed = analyze(saga, sensitivity=False).outcomes["committed"]
    assert committed == pytest.approx(p * (1 - ra) + (1 - p) * (1 - rb), abs=1e-9)


@pytest.mark.parametrize("concurrency", [None, 1, 2])
def test_a_map_of_n_items_commits_with_q_to_the_n(concurrency: int | None) -> None:
    q, n = 0.9, 4
    body = (Step(name="pack", reject=1 - q, compensation=Compensation(name="unpack")),)
    saga = Saga(name="m", steps=(Map(name="items", items=n, concurrency=concurrency, steps=body),))
    committed = analyze(saga, sensitivity=False).outcomes["committed"]
    assert committed == pytest.approx(q**n, abs=1e-9)


def test_a_drawn_item_count_averages_q_to_the_n() -> None:
    q, samples = 0.8, (1, 2, 2, 4)
    body = (Step(name="pack", reject=1 - q),)
    saga = Saga(name="m", steps=(Map(name="items", items=samples, steps=body),))
    expected = np.mean([q**n for n in samples])
    assert analyze(saga, sensitivity=False).outcomes["committed"] == pytest.approx(
        expected, abs=1e-9
    )


def test_a_polling_loop_takes_t_poll_over_d_plus_t_wait_times_one_minus_d_over_d() -> None:
    d, t_poll, t_wait = 0.35, 20.0, 1000.0
    saga = Saga(
        name="poll",
        steps=(
            Step(name="poll", effects=False, latency=constant(t_poll)),
            Choice(
                name="ready",
                branches=(
                    Branch(when="done", probability=d),
                    Branch(
                        when="pending",
                        default=True,
                        steps=(
                            Step(name="wait", effects=False, latency=constant(t_wait)),
                            Goto(target="poll"),
                        ),
                    ),
                ),
            ),
        ),
    )
    latency = analyze(saga, sensitivity=False).expected_latency_ms["all"]
    assert latency == pytest.approx(t_poll / d + t_wait * (1 - d) / d, abs=1e-9)


@pytest.mark.parametrize("visits", [1, 2, 3])
def test_a_bounded_loop_fails_with_max_visits_with_the_chance_of_going_round_n_times(
    visits: int,
) -> None:
    again = 0.4
    saga = Saga(
        name="loop",
        steps=(
            Step(name="book", compensation=Compensation(name="unbook"), max_visits=visits),
            Choice(
                name="retry_booking",
                branches=(
                    Branch(when="again", probability=again, steps=(Goto(target="book"),)),
                    Branch(when="done", default=True),
                ),
            ),
        ),
    )
    exact = analyze(saga, sensitivity=False)
    assert exact.fails["max_visits"]["compensated"] == pytest.approx(again**visits, abs=1e-9)
    assert exact.outcomes["committed"] == pytest.approx(1 - again**visits, abs=1e-9)


def test_self_compensation_counts_as_compensation() -> None:
    reject = 0.25
    saga = Saga(
        name="s",
        steps=(
            Step(
                name="charge",
                reject=reject,
                compensation=Compensation(name="refund"),
                compensate_on_failure=True,
            ),
        ),
    )
    exact = analyze(saga, sensitivity=False)
    assert exact.compensation_probability == pytest.approx(reject, abs=1e-9)
    plain = analyze(Saga(name="s", steps=(Step(name="charge", reject=reject),)), sensitivity=False)
    assert plain.compensation_probability == 0


def test_a_whole_child_compensation_replaces_the_childs_own() -> None:
    child = Saga(
        name="hotel",
        steps=(
            Step(name="room", compensation=Compensation(name="unroom", latency=constant(30))),
            Step(name="confirm", effects=False, latency=constant(10)),
        ),
    )
    whole = Compensation(name="cancel_hotel", latency=constant(7))
    parent = Saga(
        name="trip",
        steps=(
            SubSaga(name="hotel", model="hotel.yaml", saga=child, compensation=whole),
            Step(name="pay", reject=0.5, latency=constant(5)),
        ),
    )
    exact = analyze(parent, sensitivity=False)
    assert exact.expected_latency_ms["compensated"] == pytest.approx(0 + 10 + 5 + 7, abs=1e-9)
    inline = Saga(name="trip", steps=(*child.steps, parent.steps[1]))
    undo_each = analyze(inline, sensitivity=False)
    assert undo_each.expected_latency_ms["compensated"] == pytest.approx(10 + 5 + 30, abs=1e-9)
    assert exact.outcomes == undo_each.outcomes


def test_a_fail_in_a_choice_is_counted_by_its_name() -> None:
    saga = Saga(
        name="s",
        steps=(
            Step(name="hold", compensation=Compensation(name="release"), retry=Retry(attempts=1)),
            Choice(
                name="stock",
                branches=(
                    Branch(when="yes", probability=0.8),
                    Branch(when="no", default=True, steps=(Fail(name="out_of_stock"),)),
                ),
            ),
        ),
    )
    exact = analyze(saga, sensitivity=False)
    assert exact.fails == {
        "out_of_stock": {"committed": 0.0, "compensated": 0.2, "leaked": 0.0, "stuck": 0.0}
    }
    assert exact.to_dict()["fails"] == exact.fails


def test_branch_probabilities_are_ranked_by_their_set_path() -> None:
    path = (
        Path(__file__).resolve().parent.parent / "models" / "graph" / "order_with_stock_check.yaml"
    )
    saga = io.load(path)
    ranking = {r.parameter: r for r in analyze(saga).sensitivity}
    step = 1e-4
    low, high = (
        analyze(io.apply_overrides(saga, [f"stock_level.branch_0={p}"]), sensitivity=False)
        for p in (0.9 - step, 0.9 + step)
    )
    slope = (high.compensation_probability - low.compensation_probability) / (2 * step)
    assert ranking["stock_level.branch_0"].d_compensation_probability == pytest.approx(
        slope, rel=1e-6
    )
