"""How fast ``analyze`` solves a long saga: 50 sequential steps with retries and compensations.

Every step fails transiently with probability 0.05 (3 attempts, exponential backoff) and times
out now and then (exponential latency, 60 ms timeout); every compensation fails with 0.02 and
retries without bound (exponential backoff capped at 1 s); the pivot is step 40, after which
steps retry forever. Timed separately: the first call (compiling the machine class, once per
saga shape), the analysis without and with the sensitivity ranking, each best of 5.

Two references measured in the same run keep the ratios meaningful on a noisy machine:
``explore`` alone on the same saga (the analysis cannot be faster than walking the graph it
solves), and ``scipy.sparse.linalg.spsolve`` on a random sparse system of the same size and
density as ``I - Q``.

Run: ``.venv/bin/python bench/analyze_bench.py``.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np
from scipy import sparse
from scipy.sparse.linalg import spsolve

from sagasim.analysis import analyze
from sagasim.model import Compensation, Exponential, Retry, Saga, Step
from sagasim.verify import explore

STEPS = 50
PIVOT = 40
TARGET_S = 1.0
REPEATS = 5


def long_saga(steps: int = STEPS, pivot: int = PIVOT) -> Saga:
    """``steps`` sequential steps; compensatable before ``pivot``, retried forever after it."""
    entries = []
    for i in range(steps):
        common = {
            "name": f"step{i}",
            "latency": Exponential(mean_ms=20.0),
            "timeout_ms": 60.0,
            "rejects_late": True,
        }
        if i < pivot:
            retry = Retry(attempts=3, backoff="exponential", delay_ms=10.0)
            undo_retry = Retry(
                attempts=None, backoff="exponential", delay_ms=100.0, max_delay_ms=1000.0
            )
            undo = Compensation(name=f"undo{i}", failure=0.02, retry=undo_retry)
            entries.append(Step(**common, failure=0.05, retry=retry, compensation=undo))
        elif i == pivot:
            entries.append(Step(**common, kind_declared="pivot", reject=0.05))
        else:
            retry = Retry(attempts=None, backoff="exponential", delay_ms=50.0, max_delay_ms=2000.0)
            entries.append(Step(**common, kind_declared="retriable", failure=0.05, retry=retry))
    return Saga(name=f"bench_{steps}_steps", steps=tuple(entries))


def best_of(run: Callable[[], object], repeats: int = REPEATS) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    saga = long_saga()
    start = time.perf_counter()
    result = analyze(saga, sensitivity=False)
    first_s = time.perf_counter() - start
    plain_s = best_of(lambda: analyze(saga, sensitivity=False))
    full_s = best_of(lambda: analyze(saga, sensitivity=True))
    explore_s = best_of(lambda: explore(saga, participants=False, timed=True))

    transient = result.states - sum(1 for v in result.outcomes.values() if v > 0)
    density = result.transitions / transient**2
    rng = np.random.default_rng(0)
    random = sparse.random(transient, transient, density=density, random_state=rng, format="csc")
    system = (sparse.identity(transient, format="csc") * (random.sum(axis=1).max() + 1)) - random
    rhs = rng.random(transient)
    spsolve_s = best_of(lambda: spsolve(system.tocsc(), rhs))

    full = analyze(saga)
    print(
        f"analyze on {STEPS} sequential steps (pivot at {PIVOT}): {result.states:,} states, "
        f"{result.transitions:,} transitions, {len(full.sensitivity)} sensitivity parameters"
    )
    print(
        f"  P(committed) {result.outcomes['committed']:.6f}, E[T] "
        f"{result.expected_latency_ms['all']:.1f} ms, exact: {result.exact}"
    )
    print(f"  first call (compiles the machine class)  {first_s:8.4f} s")
    print(f"  analyze, no sensitivity (best of {REPEATS})     {plain_s:8.4f} s")
    print(f"  analyze with sensitivity (best of {REPEATS})    {full_s:8.4f} s")
    print(f"  reference: explore alone                 {explore_s:8.4f} s")
    print(f"  reference: spsolve, random {transient}x{transient} system {spsolve_s:8.5f} s")
    print(
        f"  analyze / explore = {plain_s / explore_s:.2f}; "
        f"with sensitivity / explore = {full_s / explore_s:.1f}"
    )
    print(f"  analyze / spsolve = {plain_s / spsolve_s:.1f}")
    for label, seconds in (("analyze", plain_s), ("analyze with sensitivity", full_s)):
        verdict = "met" if seconds < TARGET_S else "MISSED"
        print(f"  target {label} < {TARGET_S} s: {verdict}")


if __name__ == "__main__":
    main()
