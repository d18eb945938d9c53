"""How fast the fast path runs independent instances: instances per second against SimPy.

The saga is ``models/order_fulfillment.yaml`` (independent instances, no arrivals). Three
engines run the same number of instances, adjacent in each round: sagasim's fast path
(``simulate(..., engine="fast")``, numpy batches through the compiled transition table),
sagasim's SimPy engine (``engine="simpy"``, the reference) and, where ``bench/handwritten.py``
exists, the plain SimPy model a user would write by hand (``random``, one generator per saga).
Each ratio is the median of the rounds' ratios, which load drifting on a shared machine hardly
moves; the rates shown are the best of each. Before timing, the bench asserts that the fast path
and SimPy agree: the committed and compensated rates and the mean latency, each within a 99.9 %
interval of their difference.

Run: ``.venv/bin/python bench/fast_bench.py [--runs N] [--rounds R]`` (200,000 runs and two
rounds, the default, take about a minute on two cores).
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sagasim.io import load
from sagasim.sim import Results, simulate

HERE = Path(__file__).parent
MODEL = HERE.parent / "models" / "order_fulfillment.yaml"
Z999 = 3.2905267314919255  # two-sided 99.9 %


def timed(job: Callable[[], Any]) -> tuple[float, Any]:
    start = time.perf_counter()
    result = job()
    return time.perf_counter() - start, result


def agree(a: Results, b: Results) -> None:
    """Assert that two runs of the same saga agree on their headline numbers."""
    for outcome in ("committed", "compensated"):
        pa, pb = a.count(outcome) / a.runs, b.count(outcome) / b.runs
        se = math.sqrt(pa * (1 - pa) / a.runs + pb * (1 - pb) / b.runs)
        assert abs(pa - pb) <= Z999 * se + 1e-12, (outcome, pa, pb)
    xa, xb = a.latency_ms, b.latency_ms
    se = math.sqrt(xa.var() / len(xa) + xb.var() / len(xb))
    assert abs(xa.mean() - xb.mean()) <= Z999 * se, (xa.mean(), xb.mean())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=200_000)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    saga = load(MODEL)
    sys.path.insert(0, str(HERE))
    try:
        import handwritten  # type: ignore[import-not-found]
    except ImportError:
        handwritten = None
    simulate(saga, runs=2_000, engine="fast")  # compile and warm up, outside the timings
    simulate(saga, runs=2_000, engine="simpy")
    jobs: dict[str, Callable[[], Any]] = {
        "fast": lambda: simulate(saga, runs=args.runs, seed=1, engine="fast"),
        "simpy": lambda: simulate(saga, runs=args.runs, seed=2, engine="simpy"),
    }
    if handwritten is not None:
        jobs["hand"] = lambda: handwritten.run(args.runs, under_load=False, seed=3)
    rates: dict[str, list[float]] = {name: [] for name in jobs}
    outputs: dict[str, Any] = {}
    for _ in range(args.rounds):
        for name, job in jobs.items():
            elapsed, outputs[name] = timed(job)
            rates[name].append(args.runs / elapsed)
    agree(outputs["simpy"], outputs["fast"])
    print(f"fast path on {MODEL.name}, {args.runs:,} independent instances, {args.rounds} rounds")
    print(f"  fast path (engine=fast)          {max(rates['fast']):>10,.0f}/s")
    print(f"  sagasim SimPy (engine=simpy)     {max(rates['simpy']):>10,.0f}/s")
    speedup = statistics.median(f / s for f, s in zip(rates["fast"], rates["simpy"]))
    if handwritten is not None:
        print(f"  hand-written SimPy (handwritten) {max(rates['hand']):>10,.0f}/s")
    print(f"  fast / sagasim SimPy             {speedup:>10.2f}x")
    if handwritten is not None:
        ratio = statistics.median(f / h for f, h in zip(rates["fast"], rates["hand"]))
        print(f"  fast / hand-written SimPy        {ratio:>10.2f}x  (target >= 5x)")


if __name__ == "__main__":
    main()
