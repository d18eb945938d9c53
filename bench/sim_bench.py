"""How fast ``simulate`` runs: instances per second against a bare SimPy model of the same saga.

The sagas are ``models/order_fulfillment.yaml`` (independent instances) and
``models/order_fulfillment_under_load.yaml`` (Poisson arrivals, ``payments`` capped at 20 calls
and down from 60 s to 90 s); if a file is missing, the same saga is built here from DESIGN.md's
example. The reference is written plainly in this file: one SimPy process per instance,
``yield from`` a helper per call with its retries, a sub-process per branch of the parallel
group, the compensations in reverse order, a ``simpy.Resource`` for services with a capacity,
outages, and the same batched numpy draws as the simulator. It keeps no participants'
bookkeeping, no trace and no per-instance record beyond outcome counts, so the ratio is what the
compiled machine, the participants and the records cost.

The second reference, ``bench/handwritten.py``, is what a user would write without sagasim:
``random`` (no numpy), one generator per saga instance, the saga's numbers typed in. The ratio
against it is the one a user sees. Before timing anything, the bench asserts that sagasim and
the hand-written model agree: the committed and compensated rates and the mean latency, each
within a 99.9 % interval of their difference (instances taken as independent).

All three run in this process in ``PAIRS`` adjacent rounds; each ratio is the median of the
rounds' ratios, which load drifting on a shared machine hardly moves (the rates shown are the
best of each).

Also reported: the speed-up of ``workers=2`` over ``workers=1`` on independent instances (with
arrivals a run is one chunk), and peak memory for 1,000,000 instances, measured in a fresh
process as its maximum resident set size (interpreter, numpy, scipy and SimPy included), next to
the bytes the per-instance arrays of the results take.

Run: ``.venv/bin/python bench/sim_bench.py [--runs N] [--workers-runs N] [--memory-runs N]``
(200,000 runs, the default, take about five minutes on two cores).
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Generator
from dataclasses import replace
from pathlib import Path
from typing import Any

import handwritten  # bench/handwritten.py: this script's folder is on sys.path
import numpy as np
import simpy

from sagasim.model import (
    Action,
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
    Uniform,
)
from sagasim.sim import simulate
from sagasim.sim.results import COLUMNS

#: A SimPy process body that returns a value (``yield from`` gives it to the caller).
Process = Generator[simpy.Event, Any, Any]
MODELS = Path(__file__).resolve().parent.parent / "models"
TARGET_RATIO = 0.8
REPEATS = 3
PAIRS = 7
BLOCK = 2048
Z999 = 3.2905  # two-sided 99.9 % normal quantile


def design_example() -> Saga:
    """DESIGN.md's order_fulfillment example with a latency on every step, no load."""
    ms = LogNormal.from_p99
    return Saga(
        name="order_fulfillment",
        steps=(
            Step(name="validate_order", service="orders", effects=False,
                 latency=ms(median_ms=15, p99_ms=80), reject=0.02),
            Step(name="recommend_upsell", service="recommender", failure=0.05, timeout_ms=300,
                 latency=ms(median_ms=60, p99_ms=400), rejects_late=True,
                 retry=Retry(attempts=3, backoff="exponential", delay_ms=50, jitter=True),
                 compensation=Compensation(name="cancel_recommendation_tracking",
                                           latency=Uniform(low_ms=5, high_ms=25))),
            Step(name="reserve_inventory", service="inventory",
                 latency=ms(median_ms=40, p99_ms=250),
                 compensation=Compensation(name="release_inventory", failure=0.01,
                                           latency=ms(median_ms=30, p99_ms=200),
                                           retry=Retry(attempts=None, delay_ms=100))),
            Parallel(branches=(
                (Step(name="fraud_check", service="risk", effects=False, reject=0.01,
                      latency=Exponential(mean_ms=120)),),
                (Step(name="hold_loyalty_points", service="loyalty",
                      latency=Exponential(mean_ms=35),
                      compensation=Compensation(name="restore_points",
                                                latency=Exponential(mean_ms=25))),),
            )),
            Step(name="process_payment", service="payments", kind_declared="pivot",
                 reject=0.05, latency=ms(median_ms=250, p99_ms=1200)),
            Step(name="trigger_delivery", service="shipping", kind_declared="retriable",
                 failure=0.03, latency=Constant(value_ms=50),
                 retry=Retry(attempts=None, delay_ms=1000)),
        ),
    )  # fmt: skip


def benchmark_sagas() -> dict[str, Saga]:
    """The two cases, from the model files when they exist."""
    cases = {}
    for label, stem in (("independent", "order_fulfillment"),
                        ("under load", "order_fulfillment_under_load")):  # fmt: skip
        path = MODELS / f"{stem}.yaml"
        if path.exists():
            from sagasim import io

            cases[label] = io.load(path)
        elif label == "independent":
            cases[label] = design_example()
        else:
            payments = Service(
                name="payments", capacity=20, outages=(Outage(start_ms=60e3, end_ms=90e3),)
            )
            cases[label] = replace(
                design_example(), services=(payments,), arrivals=Arrivals(rate_per_s=50)
            )
    return cases


class Bare:
    """The saga written plainly as SimPy processes: what a hand-made model would do."""

    def __init__(self, saga: Saga, rng: np.random.Generator) -> None:
        self.saga, self.rng = saga, rng
        self.env = simpy.Environment()
        self.resources = {
            s.name: simpy.Resource(self.env, s.capacity)
            for s in saga.services
            if s.capacity is not None and saga.arrivals is not None
        }
        self.draws: dict[str, list[tuple[float, int]]] = {}
        self.uniforms: list[float] = []
        services = {saga.service_of(a) for a in saga.actions()}
        self.outages = {
            name: [(o.start_ms, o.end_ms) for o in saga.service(name).outages] for name in services
        }
        self.outcomes = {"committed": 0, "compensated": 0, "leaked": 0, "stuck": 0}

    def draw(self, action: Action) -> tuple[float, int]:
        buf = self.draws.get(action.name)
        if not buf:
            u = self.rng.random(BLOCK)
            r, f = action.reject, action.failure
            code = np.where(u < r, 2, np.where(u < r + (1 - r) * f, 1, 0))
            latency = action.latency.sample(self.rng, BLOCK)
            buf = self.draws[action.name] = list(zip(latency.tolist(), code.tolist()))
        return buf.pop()

    def uniform(self) -> float:
        if not self.uniforms:
            self.uniforms = self.rng.random(BLOCK).tolist()
        return self.uniforms.pop()

    def call(self, action: Action, service: str) -> Process:
        """One action with its retries; returns whether it succeeded."""
        env, retry = self.env, action.retry
        outages = self.outages[service]
        timeout = math.inf if action.timeout_ms is None else action.timeout_ms
        resource = self.resources.get(service)
        attempt = 0
        while True:
            attempt += 1
            latency, code = self.draw(action)
            if resource is not None:
                with resource.request() as request:
                    yield request
                    if outages and any(start <= env.now < end for start, end in outages):
                        code = 1
                    yield env.timeout(latency)
            else:
                if outages and any(start <= env.now < end for start, end in outages):
                    code = 1
                if latency > timeout:
                    yield env.timeout(timeout)
                    code = 1
                else:
                    yield env.timeout(latency)
            if code == 0:
                return True
            if code == 2 or (retry.attempts is not None and attempt >= retry.attempts):
                return False
            delay = retry.nominal_delay_ms(attempt)
            if retry.jitter:
                delay *= self.uniform()
            if delay > 0:
                yield env.timeout(delay)

    def branch(self, steps: tuple[Step, ...], failed: list[bool], done: list[Step]) -> Process:
        for step in steps:
            if failed[0]:
                return
            ok = yield from self.call(step, step.service_name)
            if not ok:
                failed[0] = True
                return
            done.append(step)

    def chain(self, steps: list[Step], stuck: list[bool]) -> Process:
        for step in steps:
            assert step.compensation is not None
            ok = yield from self.call(step.compensation, self.saga.service_of(step.compensation))
            if not ok:
                stuck[0] = True
                return

    def instance(self) -> Process:
        done: list[list[list[Step]]] = []
        pivot = self.saga.pivot_index
        for index, entry in enumerate(self.saga.steps):
            if isinstance(entry, Step):
                if (yield from self.call(entry, entry.service_name)):
                    done.append([[entry]])
                    continue
                done.append([[]])
            else:
                failed = [False]
                branches: list[list[Step]] = [[] for _ in entry.branches]
                yield self.env.all_of(
                    [
                        self.env.process(self.branch(steps, failed, branches[b]))
                        for b, steps in enumerate(entry.branches)
                    ]
                )
                done.append(branches)
                if not failed[0]:
                    continue
            if pivot is not None and index > pivot:
                self.outcomes["stuck"] += 1
                return
            leaked, stuck = False, [False]
            for group in reversed(done):
                chains = []
                for steps in group:
                    chain = [s for s in reversed(steps) if s.compensation is not None]
                    leaked |= any(s.effects and s.compensation is None for s in steps)
                    if chain:
                        chains.append(chain)
                if len(chains) == 1:
                    yield from self.chain(chains[0], stuck)
                elif chains:
                    yield self.env.all_of([self.env.process(self.chain(c, stuck)) for c in chains])
                if stuck[0]:
                    self.outcomes["stuck"] += 1
                    return
            self.outcomes["leaked" if leaked else "compensated"] += 1
            return
        self.outcomes["committed"] += 1

    def run(self, runs: int) -> dict[str, int]:
        env = self.env
        arrivals = self.saga.arrivals

        def source() -> Process:
            if arrivals is None:
                for _ in range(runs):
                    yield env.process(self.instance())
                return
            for gap in self.rng.exponential(1000.0 / arrivals.rate_per_s, runs).tolist():
                yield env.timeout(gap)
                env.process(self.instance())

        env.process(source())
        env.run()
        return self.outcomes


def best_rate(run: Callable[[int], object], runs: int) -> float:
    best = math.inf
    for _ in range(REPEATS):
        start = time.perf_counter()
        run(runs)
        best = min(best, time.perf_counter() - start)
    return runs / best


def speed(saga: Saga, label: str, runs: int) -> dict[str, float]:
    """Best instances/s of each (bare SimPy, simulate, hand-written) and the median ratios of
    simulate to each reference over ``PAIRS`` adjacent rounds."""
    under_load = label == "under load"
    bare, sim, hand = [], [], []
    for _ in range(PAIRS):
        start = time.perf_counter()
        Bare(saga, np.random.default_rng(1)).run(runs)
        bare.append(runs / (time.perf_counter() - start))
        start = time.perf_counter()
        simulate(saga, runs=runs, seed=1)
        sim.append(runs / (time.perf_counter() - start))
        start = time.perf_counter()
        handwritten.run(runs, under_load=under_load, seed=1)
        hand.append(runs / (time.perf_counter() - start))
    return {
        "bare": max(bare),
        "sim": max(sim),
        "hand": max(hand),
        "vs bare": statistics.median(s / b for s, b in zip(sim, bare)),
        "vs hand": statistics.median(s / h for s, h in zip(sim, hand)),
    }


def agreement(saga: Saga, label: str, runs: int) -> list[str]:
    """Compare sagasim's statistics with the hand-written model's on ``runs`` instances each:
    one line per figure, and an AssertionError if one lies outside its 99.9 % interval."""
    ours = simulate(saga, runs=runs, seed=2)
    theirs = handwritten.run(runs, under_load=label == "under load", seed=2)
    lines, outside = [], []
    for outcome in ("committed", "compensated"):
        p, q = ours.outcomes[outcome] / runs, theirs.outcomes[outcome] / runs
        pooled = (p + q) / 2
        half = Z999 * math.sqrt(2 * pooled * (1 - pooled) / runs)
        lines.append(f"{outcome} {p:.4f} vs {q:.4f} (|diff| {abs(p - q):.4f} <= {half:.4f})")
        if abs(p - q) > half:
            outside.append(outcome)
    ms = np.asarray(theirs.latencies)
    a, b = float(ours.latency_ms.mean()), float(ms.mean())
    half = Z999 * math.sqrt((ours.latency_ms.var(ddof=1) + ms.var(ddof=1)) / runs)
    lines.append(f"mean latency {a:.1f} vs {b:.1f} ms (|diff| {abs(a - b):.1f} <= {half:.1f})")
    if abs(a - b) > half:
        outside.append("mean latency")
    disagree = f"{saga.name} ({label}): sagasim and the hand-written model disagree on"
    assert not outside, f"{disagree} {', '.join(outside)}: " + "; ".join(lines)
    return lines


def peak_memory_mb(label: str, runs: int) -> float:
    """Maximum resident set size of a fresh process simulating ``runs`` instances."""
    code = "\n".join(
        [
            "import resource, sys",
            f"sys.path.insert(0, {str(Path(__file__).parent)!r})",
            "from sim_bench import benchmark_sagas",
            "from sagasim.sim import simulate",
            f"simulate(benchmark_sagas()[{label!r}], runs={runs}, seed=1)",
            "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)",
        ]
    )
    out = subprocess.run(
        [sys.executable, "-c", code], check=True, capture_output=True, text=True
    ).stdout
    return int(out.split()[-1]) / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=200_000)
    parser.add_argument("--workers-runs", type=int, default=80_000)
    parser.add_argument("--memory-runs", type=int, default=1_000_000)
    args = parser.parse_args()
    cases = benchmark_sagas()
    print(f"{args.runs:,} instances a measurement, {PAIRS} rounds, load {os.getloadavg()[0]:.1f}")
    for label, saga in cases.items():
        lines = agreement(saga, label, args.runs)
        print(f"  {saga.name} ({label}), sagasim vs hand-written: " + "; ".join(lines))
    for label, saga in cases.items():
        r = speed(saga, label, args.runs)
        verdict = "ok" if r["vs bare"] >= TARGET_RATIO else "BELOW TARGET"
        print(
            f"  {saga.name} ({label}): bare SimPy {r['bare']:,.0f}/s, simulate {r['sim']:,.0f}/s,"
            f" median ratio {r['vs bare']:.2f} (target >= {TARGET_RATIO}: {verdict})"
        )
        print(
            f"    hand-written SimPy (bench/handwritten.py) {r['hand']:,.0f}/s:"
            f" simulate / hand-written, median ratio {r['vs hand']:.2f}"
        )
    independent = cases["independent"]
    runs = args.workers_runs
    simulate(independent, runs=20_000, workers=2)  # warm-up: fork, imports, compile
    one = best_rate(lambda n: simulate(independent, runs=n, seed=1, workers=1), runs)
    two = best_rate(lambda n: simulate(independent, runs=n, seed=1, workers=2), runs)
    print(
        f"  workers=2 vs 1 on {runs:,} independent instances ({os.cpu_count()} CPUs):"
        f" {one:,.0f}/s -> {two:,.0f}/s, speed-up {two / one:.2f}x"
    )
    sample = simulate(independent, runs=10_000, seed=1)
    per_instance = sum(getattr(sample, a).nbytes for a in COLUMNS) / sample.runs
    print(
        f"  results arrays: {per_instance:.0f} bytes an instance,"
        f" {per_instance * args.memory_runs / 2**20:,.0f} MiB for {args.memory_runs:,}"
    )
    for label in cases:
        mb = peak_memory_mb(label, args.memory_runs)
        print(f"  peak RSS simulating {args.memory_runs:,} instances ({label}): {mb:,.0f} MiB")


if __name__ == "__main__":
    main()
