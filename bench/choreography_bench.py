"""How fast ``simulate`` runs a choreographed saga: instances per second against orchestration.

The sagas are ``models/order_fulfillment.yaml`` (independent instances) and
``models/order_fulfillment_under_load.yaml`` (Poisson arrivals at 50/s, ``payments`` capped at 20
calls and down from 60 s to 90 s), each in its orchestrated form and choreographed
(``coordination="choreography"``) over a perfect broker with a ``BROKER_MEAN_MS`` exponential
latency. The reference is the orchestrated form of the same saga, measured in the same process:
both run ``simulate`` on the same workload and seed, so the ratio is what the choreography costs
on top of orchestration (a message per subscriber, each an event of its own, and the
per-service machines' moves) rather than the machine's speed. A small run of each form first
compiles the machine and the choreography, which are cached. Then both forms run in ``PAIRS``
adjacent pairs; the ratio is the median of the pairs' ratios of time per instance
(choreography / orchestration: above 1, choreography is slower), which load drifting on a
shared machine hardly moves (the rates shown are the best of each). Independent instances are
measured twice: against orchestration as ``simulate`` runs it (its vectorised fast path, from
``FAST_MIN_RUNS`` runs) and against orchestration on SimPy (``engine="simpy"``), the like for like
comparison.

Run: ``.venv/bin/python bench/choreography_bench.py [--runs N]``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from dataclasses import replace
from pathlib import Path

from sagasim import io
from sagasim.model import Broker, Exponential, Saga
from sagasim.sim import simulate
from sagasim.sim.run import Engine

MODELS = Path(__file__).resolve().parent.parent / "models"
#: (label, model, the engine orchestration runs on)
CASES = (
    ("independent", "order_fulfillment", "auto"),
    ("independent, orchestration on SimPy", "order_fulfillment", "simpy"),
    ("under load", "order_fulfillment_under_load", "auto"),
)
BROKER_MEAN_MS = 3.0
PAIRS = 7
WARM_UP_RUNS = 500


def forms(saga: Saga) -> tuple[Saga, Saga]:
    """The orchestrated form of ``saga`` and its choreographed form over a perfect broker."""
    broker = Broker(latency=Exponential(mean_ms=BROKER_MEAN_MS))
    return (
        replace(saga, coordination="orchestration"),
        replace(saga, coordination="choreography", broker=broker),
    )


def seconds(saga: Saga, runs: int, engine: Engine = "auto") -> float:
    start = time.perf_counter()
    simulate(saga, runs=runs, seed=1, engine=engine)
    return time.perf_counter() - start


def speed(
    orchestrated: Saga, choreographed: Saga, runs: int, engine: Engine = "auto"
) -> tuple[float, float, float]:
    """(best orchestration instances/s, best choreography instances/s, median ratio of the
    pairs' times per instance, choreography over orchestration on ``engine``)."""
    simulate(orchestrated, runs=WARM_UP_RUNS, seed=1, engine=engine)
    simulate(choreographed, runs=WARM_UP_RUNS, seed=1)
    orchestration, choreography = [], []
    for _ in range(PAIRS):
        orchestration.append(seconds(orchestrated, runs, engine))
        choreography.append(seconds(choreographed, runs))
    ratio = statistics.median(c / o for c, o in zip(choreography, orchestration))
    return runs / min(orchestration), runs / min(choreography), ratio


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20_000)
    args = parser.parse_args()
    print(
        f"{args.runs:,} instances a measurement, {PAIRS} pairs, broker latency"
        f" exponential({BROKER_MEAN_MS:g} ms), load {os.getloadavg()[0]:.1f}"
    )
    for label, stem, engine in CASES:
        orchestrated, choreographed = forms(io.load(MODELS / f"{stem}.yaml"))
        orchestration, choreography, ratio = speed(orchestrated, choreographed, args.runs, engine)
        print(
            f"  {stem} ({label}): orchestration {orchestration:,.0f}/s,"
            f" choreography {choreography:,.0f}/s,"
            f" time per instance choreography / orchestration: median ratio {ratio:.2f}"
        )


if __name__ == "__main__":
    main()
