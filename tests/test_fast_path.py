"""The fast path (:mod:`sagasim.sim.fast`) held to SimPy, the reference engine.

Statistical tests run both engines on the same saga with fixed seeds and ask that every figure
agrees within 99.9 % intervals: each outcome's rate, the compensation rate and the anomaly rates
(Newcombe's interval for the difference, built from the two Wilson intervals), the mean latency
(a normal interval on the difference) and the p95 (the shares of each sample at or below the
pooled p95, as two proportions). They run on
every shipped model the fast path takes and on random sagas of the test strategies. Exact tests
check closed forms; the rest checks that what the fast path cannot do falls back to SimPy, and
that ``--engine fast`` refuses it in one line.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from scipy import stats

from sagasim.cli import main
from sagasim.exceptions import EndlessRetryError, SagaSimError
from sagasim.io import load
from sagasim.machine import OUTCOMES
from sagasim.machine import orchestration as machine
from sagasim.model import (
    Arrivals,
    Compensation,
    Constant,
    Exponential,
    LogNormal,
    Outage,
    Parallel,
    Retry,
    Saga,
    Service,
    Step,
)
from sagasim.sim import Results, shared, simulate
from sagasim.sim.fast import fast_supported
from sagasim.sim.run import FAST_MIN_RUNS, choose_engine
from tests.graph_strategies import graph_sagas
from tests.strategies import sagas

ROOT = Path(__file__).parent.parent
MODELS = sorted((ROOT / "models").rglob("*.yaml"))
CONFIDENCE = 0.999
Z = float(stats.norm.ppf(0.5 + CONFIDENCE / 2))


def _stem(path: Path) -> str:
    return "_".join(path.relative_to(ROOT / "models").with_suffix("").parts)


def _wilson(k: int, n: int) -> tuple[float, float]:
    ci = stats.binomtest(k, n).proportion_ci(CONFIDENCE, method="wilson")
    return float(ci.low), float(ci.high)


def disagreements(a: Results, b: Results) -> list[str]:
    """What differs between two runs beyond 99.9 % intervals (empty: they agree)."""
    found = []
    counts = {name: (a.count(name), b.count(name)) for name in (*OUTCOMES, "compensation")}
    for bit in range(4):
        counts[f"anomaly bit {bit}"] = tuple(  # type: ignore[assignment]
            int(np.count_nonzero(r.anomaly_flags & (1 << bit))) for r in (a, b)
        )
    for name, (ka, kb) in counts.items():
        # Newcombe's hybrid score interval for a difference of proportions, from the two
        # Wilson intervals: it holds 0 unless the rates differ
        pa, pb = ka / a.runs, kb / b.runs
        (la, ha), (lb, hb) = _wilson(ka, a.runs), _wilson(kb, b.runs)
        below = math.hypot(pa - la, hb - pb)
        above = math.hypot(ha - pa, pb - lb)
        if not -above - 1e-12 <= pa - pb <= below + 1e-12:
            found.append(f"{name}: {ka}/{a.runs} vs {kb}/{b.runs}")
    xa, xb = a.latency_ms, b.latency_ms
    spread = math.sqrt(xa.var(ddof=1) / len(xa) + xb.var(ddof=1) / len(xb))
    if abs(xa.mean() - xb.mean()) > Z * spread + 1e-9:
        found.append(f"mean latency: {xa.mean():.3f} vs {xb.mean():.3f} (± {Z * spread:.3f})")
    cut = float(np.percentile(np.concatenate([xa, xb]), 95))
    ka, kb = int(np.count_nonzero(xa <= cut)), int(np.count_nonzero(xb <= cut))
    pooled = (ka + kb) / (len(xa) + len(xb))
    se = math.sqrt(pooled * (1 - pooled) * (1 / len(xa) + 1 / len(xb)))
    if abs(ka / len(xa) - kb / len(xb)) > Z * se + 1e-9:
        found.append(f"p95: {ka}/{len(xa)} vs {kb}/{len(xb)} at or below {cut:.3f} ms")
    return found


def both(saga: Saga, runs: int, seed: int) -> tuple[Results, Results]:
    reference = simulate(saga, runs=runs, seed=seed, engine="simpy")
    fast = simulate(saga, runs=runs, seed=seed + 1, engine="fast")
    assert (reference.engine, fast.engine) == ("simpy", "fast")
    return reference, fast


# --- the fast path against SimPy ---------------------------------------------------------------


@pytest.mark.statistical
@pytest.mark.parametrize("path", MODELS, ids=_stem)
def test_the_fast_path_agrees_with_simpy_on_every_model(path: Path) -> None:
    saga = load(path)
    reason = fast_supported(saga)
    if reason is not None:
        refused = saga.coordination == "choreography" or saga.arrivals is not None
        assert refused or shared.needed(saga), reason
        pytest.skip(f"SimPy only: {reason}")
    reference, fast = both(saga, 20_000, 11)
    assert disagreements(reference, fast) == []
    assert reference.fail_names == fast.fail_names
    fails_a, fails_b = reference.fails, fast.fails
    for name in reference.fail_names:
        ka, kb = sum(fails_a[name].values()), sum(fails_b[name].values())
        (la, ha), (lb, hb) = _wilson(ka, reference.runs), _wilson(kb, fast.runs)
        assert la <= hb and lb <= ha, (name, ka, kb)
    assert set(reference.services) == set(fast.services)


#: Random sagas, the same examples on every run.
RANDOM = settings(
    max_examples=25,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)


def ends(saga: Saga) -> bool:
    """No action retries forever at a service that can never answer ok."""
    return all(a.attempt_outcomes["ok"] > 0 or not a.retry.unbounded for a in saga.actions())


@pytest.mark.statistical
@RANDOM
@given(saga=sagas())
def test_the_fast_path_agrees_with_simpy_on_random_sagas(saga: Saga) -> None:
    assume(ends(saga))
    reference, fast = both(saga, 4_000, 3)
    assert disagreements(reference, fast) == []


@pytest.mark.statistical
@RANDOM
@given(saga=graph_sagas())
def test_the_fast_path_agrees_with_simpy_on_random_graph_sagas(saga: Saga) -> None:
    assume(ends(saga))
    reference, fast = both(saga, 4_000, 5)
    assert disagreements(reference, fast) == []


@pytest.mark.statistical
def test_late_landings_agree_with_simpy() -> None:
    # a timed-out attempt of a non-idempotent step lands late: duplicates, hanging, late leaks
    saga = Saga(
        name="late",
        steps=(
            Step(
                name="a", compensation=Compensation(name="undo_a"), latency=Exponential(mean_ms=5)
            ),
            Step(
                name="b",
                latency=LogNormal(median_ms=50, sigma=1.0),
                timeout_ms=80,
                failure=0.1,
                retry=Retry(attempts=3, delay_ms=10),
                compensation=Compensation(name="undo_b", latency=Exponential(mean_ms=20)),
            ),
            Step(name="c", kind_declared="pivot", reject=0.2, latency=Exponential(mean_ms=30)),
        ),
    )
    reference, fast = both(saga, 30_000, 17)
    assert fast.anomalies["duplicate_effect"] > 100 and fast.anomalies["hanging"] > 10
    assert disagreements(reference, fast) == []


# --- closed forms ------------------------------------------------------------------------------


def test_three_attempts_fail_with_probability_f_cubed() -> None:
    f = 0.4
    saga = Saga(
        name="s",
        steps=(
            Step(name="a", compensation=Compensation(name="undo")),
            Step(name="b", failure=f, retry=Retry(attempts=3), latency=Constant(value_ms=10)),
        ),
    )
    r = simulate(saga, runs=50_000, seed=2, engine="fast")
    low, high = _wilson(r.count("compensated"), r.runs)
    assert low <= f**3 <= high
    # each attempt takes 10 ms: the latency is 10 ms per attempt made, and nothing else
    attempts = np.round(r.latency_ms / 10).astype(int)
    assert set(np.unique(r.latency_ms).tolist()) == {10.0, 20.0, 30.0}
    assert np.array_equal(r.retries, attempts - 1)
    assert r.services["b"].attempts == int(attempts.sum())


def test_a_parallel_group_takes_its_slowest_branch() -> None:
    saga = Saga(
        name="s",
        steps=(
            Parallel(
                branches=(
                    (Step(name="a", latency=Constant(value_ms=10)),),
                    (
                        Step(name="b", latency=Constant(value_ms=15)),
                        Step(name="c", latency=Constant(value_ms=20)),
                    ),
                )
            ),
            Step(name="d", latency=Constant(value_ms=1)),
        ),
    )
    r = simulate(saga, runs=100, engine="fast")
    assert r.outcomes["committed"] == 100 and set(r.latency_ms.tolist()) == {36.0}


def test_a_failed_branch_halts_its_sibling_and_undoes_what_completed() -> None:
    undo = Compensation(name="undo_b", latency=Constant(value_ms=7))
    saga = Saga(
        name="s",
        steps=(
            Parallel(
                branches=(
                    (Step(name="a", reject=1.0, latency=Constant(value_ms=10)),),
                    (
                        Step(name="b", latency=Constant(value_ms=15), compensation=undo),
                        Step(name="c", latency=Constant(value_ms=20)),
                    ),
                )
            ),
        ),
    )
    fast = simulate(saga, runs=50, engine="fast")
    reference = simulate(saga, runs=50, engine="simpy")
    # a fails at 10 ms; b is awaited (15 ms), c never starts; undo_b runs: 22 ms
    assert set(fast.latency_ms.tolist()) == set(reference.latency_ms.tolist()) == {22.0}
    assert fast.outcomes == reference.outcomes == {"committed": 0, "compensated": 50,
                                                   "leaked": 0, "stuck": 0}  # fmt: skip
    assert fast.services["c"].attempts == reference.services["c"].attempts == 0


def test_a_timeout_is_seen_at_the_deadline_with_the_latency_cdf_as_its_chance() -> None:
    latency = LogNormal(median_ms=100, sigma=0.5)
    saga = Saga(
        name="s",
        steps=(
            Step(name="a", compensation=Compensation(name="undo")),
            Step(name="b", latency=latency, timeout_ms=150, rejects_late=True),
        ),
    )
    r = simulate(saga, runs=50_000, seed=4, engine="fast")
    low, high = _wilson(r.count("compensated"), r.runs)
    assert low <= 1 - latency.cdf(150) <= high
    assert np.all(r.latency_ms[r.outcome == OUTCOMES.index("compensated")] == 150.0)


def test_jittered_backoff_waits_half_the_delay_on_average() -> None:
    saga = Saga(
        name="s",
        steps=(Step(name="a", failure=0.5, retry=Retry(attempts=2, delay_ms=100, jitter=True)),),
    )
    r = simulate(saga, runs=40_000, seed=6, engine="fast")
    retried = r.latency_ms[r.retries == 1]
    assert np.all((retried >= 0) & (retried < 100))
    assert abs(retried.mean() - 50) < Z * 100 / math.sqrt(12 * len(retried))
    assert np.all(r.latency_ms[r.retries == 0] == 0)


def test_endless_retries_are_refused_as_simpy_refuses_them(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(machine, "MAX_ATTEMPTS", 1_000)
    saga = Saga(
        name="loop",
        services=(Service(name="pay", outages=(Outage(start_ms=0, end_ms=1_000),)),),
        steps=(
            Step(name="a", compensation=Compensation(name="u")),
            Step(name="b", service="pay", retry=Retry(attempts=None)),
        ),
    )
    messages = []
    for engine in ("simpy", "fast"):
        with pytest.raises(EndlessRetryError) as refused:
            simulate(saga, runs=3, engine=engine)  # type: ignore[arg-type]
        messages.append(str(refused.value))
    assert messages[0] == messages[1] and "b made 1,000 attempts in instance 0" in messages[0]


def test_outages_count_from_each_instance_start() -> None:
    # every attempt started in [0, 25) ms fails: the first three (at 0, 10, 20 ms) of four
    saga = Saga(
        name="s",
        services=(Service(name="pay", outages=(Outage(start_ms=0, end_ms=25),)),),
        steps=(
            Step(name="b", service="pay", latency=Constant(value_ms=10), retry=Retry(attempts=4)),
        ),
    )
    for engine in ("simpy", "fast"):
        r = simulate(saga, runs=20, engine=engine)  # type: ignore[arg-type]
        assert set(r.latency_ms.tolist()) == {40.0} and r.outcomes["committed"] == 20, engine


def test_the_same_seed_gives_the_same_numbers_whatever_the_workers() -> None:
    saga = load(ROOT / "models" / "order_fulfillment.yaml")
    one = simulate(saga, runs=3_000, seed=9, engine="fast", chunk_size=1_000)
    two = simulate(saga, runs=3_000, seed=9, engine="fast", chunk_size=1_000, workers=2)
    assert np.array_equal(one.latency_ms, two.latency_ms)
    assert np.array_equal(one.outcome, two.outcome)


# --- choosing the engine, and falling back -----------------------------------------------------

UNDER_LOAD = ROOT / "models" / "order_fulfillment_under_load.yaml"
CHOREOGRAPHY = ROOT / "models" / "order_fulfillment_choreography.yaml"
ORDER = ROOT / "models" / "order_fulfillment.yaml"


def test_auto_takes_the_fast_path_only_where_it_can_and_from_enough_runs() -> None:
    saga = load(ORDER)
    assert choose_engine(saga, FAST_MIN_RUNS) == "fast"
    assert choose_engine(saga, FAST_MIN_RUNS - 1) == "simpy"  # smaller runs keep their numbers
    assert choose_engine(saga, FAST_MIN_RUNS, trace_limit=5) == "simpy"
    assert choose_engine(saga, 10, "fast") == "fast"
    assert choose_engine(saga, 10**6, "simpy") == "simpy"
    for path in (UNDER_LOAD, CHOREOGRAPHY):
        other = load(path)
        assert fast_supported(other) is not None
        assert choose_engine(other, 10**6) == "simpy"
        assert simulate(other, runs=FAST_MIN_RUNS, engine="auto").engine == "simpy"
    assert "arrivals" in (fast_supported(replace(saga, arrivals=Arrivals(rate_per_s=10))) or "")


def test_the_fast_engine_refuses_what_it_cannot_run() -> None:
    with pytest.raises(SagaSimError, match="engine fast: instances arrive"):
        simulate(load(UNDER_LOAD), runs=10, engine="fast")
    with pytest.raises(SagaSimError, match="engine fast: traces are recorded by SimPy only"):
        simulate(load(ORDER), runs=10, engine="fast", trace_limit=1)
    with pytest.raises(ValueError, match="expected engine"):
        simulate(load(ORDER), runs=10, engine="numba")  # type: ignore[arg-type]


def run(*args: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(list(args))
    return code, out.getvalue(), err.getvalue()


@pytest.mark.parametrize("path", [UNDER_LOAD, CHOREOGRAPHY], ids=lambda p: p.stem)
def test_engine_fast_on_an_unsupported_model_is_one_line_and_exit_2(path: Path) -> None:
    code, out, err = run("simulate", str(path), "--engine", "fast", "--runs", "100", "--quiet")
    assert (code, out) == (2, "")
    assert err.count("\n") == 1 and "engine fast: " in err and "Traceback" not in err


def test_json_says_which_engine_ran() -> None:
    model = str(ORDER)
    for engine in ("fast", "simpy"):
        code, out, _ = run("simulate", model, "--runs", "500", "--engine", engine, "--json")
        assert code == 0 and json.loads(out)["engine"] == engine
    code, out, _ = run("simulate", model, "--runs", str(FAST_MIN_RUNS), "--json", "--quiet")
    data = json.loads(out)
    assert data["engine"] == "fast" and data["runs"] == FAST_MIN_RUNS
    code, out, _ = run("simulate", model, "--runs", "500", "--json", "--quiet")
    assert "engine" not in json.loads(out)  # SimPy's output stays byte for byte what it was
    code, out, _ = run("simulate", str(UNDER_LOAD), "--runs", "300", "--engine", "auto", "--json")
    assert code == 0 and json.loads(out)["engine"] == "simpy"


@pytest.mark.statistical
def test_a_saga_whose_late_landings_make_many_ledgers_runs_and_agrees() -> None:
    # late landings intern ledgers too: the fast path's ledger table must grow for them
    saga = load(Path(__file__).parent / "data" / "fast_many_ledgers.yaml")
    reference, fast = both(saga, 4_000, 5)
    assert disagreements(reference, fast) == []
