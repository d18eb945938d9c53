"""The order_fulfillment saga written by hand in plain SimPy, as a user would without sagasim.

This is the reference ``bench/sim_bench.py`` measures ``sagasim simulate`` against: ``random``
(no numpy), one generator function per saga instance, one ``env.timeout`` per call attempt,
retries with backoff, a timeout, the compensations in reverse order, a ``simpy.Resource`` for
the service with a capacity, its outage, and Poisson arrivals. It records only the outcome
counts and the latencies.

The numbers are those of ``models/order_fulfillment.yaml`` (independent instances: one after
another, each on an idle system) and ``models/order_fulfillment_under_load.yaml`` (50 orders a
second sharing the services; ``payments`` takes 20 calls at once and is down from 60 s to
90 s), typed in here as a user would; the bench checks that the statistics agree with
sagasim's, so the two cannot drift apart unnoticed. The semantics are DESIGN.md's: an attempt
is rejected with ``reject``, else fails with ``failure``; past its timeout the caller sees a
transient failure at the timeout (the recommender drops late requests, so nothing lands
later); an attempt that gets its server during an outage fails; the wait for a server counts
towards latency; a failed parallel branch lets the other finish; the pivot (payment) failing
undoes the rest in reverse order, and after it delivery retries until it succeeds.

Run: ``.venv/bin/python bench/handwritten.py [--runs N] [--load] [--seed N]``.
"""

from __future__ import annotations

import argparse
import math
import random
import time
from collections.abc import Generator
from typing import Any

import simpy

Z99 = 2.3263478740408408  # the standard normal's 99th percentile


def lognormal(median_ms: float, p99_ms: float) -> tuple[float, float]:
    """The (mu, sigma) of the log-normal with this median and 99th percentile."""
    return math.log(median_ms), math.log(p99_ms / median_ms) / Z99


VALIDATE = lognormal(15, 80)
RECOMMEND = lognormal(60, 400)
RESERVE = lognormal(40, 250)
RELEASE = lognormal(30, 200)
PAYMENT = lognormal(250, 1200)
OUTAGE = (60_000.0, 90_000.0)  # payments is down from 60 s to 90 s (under load only)
RATE_PER_MS = 50 / 1000.0  # arrivals under load


class Simulation:
    """One run: the environment, the random numbers and what is recorded."""

    def __init__(self, under_load: bool, seed: int) -> None:
        self.env = simpy.Environment()
        self.rng = random.Random(seed)
        self.under_load = under_load
        self.payments = simpy.Resource(self.env, capacity=20) if under_load else None
        self.outcomes = {"committed": 0, "compensated": 0}
        self.latencies: list[float] = []

    # --- one call to a service, with its retries; returns whether it succeeded
    def validate_order(self) -> Generator[simpy.Event, Any, bool]:
        yield self.env.timeout(self.rng.lognormvariate(*VALIDATE))
        return self.rng.random() >= 0.02  # rejected: definitive

    def recommend_upsell(self) -> Generator[simpy.Event, Any, bool]:
        env, rng = self.env, self.rng
        for attempt in range(1, 4):  # 3 attempts
            latency = rng.lognormvariate(*RECOMMEND)
            if latency > 300:  # timed out: a transient failure; the late request is dropped
                yield env.timeout(300)
            else:
                yield env.timeout(latency)
                if rng.random() >= 0.05:
                    return True
            if attempt < 3:  # exponential backoff from 50 ms, full jitter
                yield env.timeout(50 * 2 ** (attempt - 1) * rng.random())
        return False

    def reserve_inventory(self) -> Generator[simpy.Event, Any, bool]:
        yield self.env.timeout(self.rng.lognormvariate(*RESERVE))
        return True

    def fraud_check(self) -> Generator[simpy.Event, Any, bool]:
        yield self.env.timeout(self.rng.expovariate(1 / 120))
        return self.rng.random() >= 0.01

    def hold_loyalty_points(self) -> Generator[simpy.Event, Any, bool]:
        yield self.env.timeout(self.rng.expovariate(1 / 35))
        return True

    def process_payment(self) -> Generator[simpy.Event, Any, bool]:
        env, rng = self.env, self.rng
        if self.payments is None:
            yield env.timeout(rng.lognormvariate(*PAYMENT))
            return rng.random() >= 0.05
        with self.payments.request() as request:
            yield request
            down = OUTAGE[0] <= env.now < OUTAGE[1]
            yield env.timeout(rng.lognormvariate(*PAYMENT))
        return not down and rng.random() >= 0.05

    def trigger_delivery(self) -> Generator[simpy.Event, Any, None]:
        while True:  # retried every second until it goes through
            yield self.env.timeout(50)
            if self.rng.random() >= 0.03:
                return
            yield self.env.timeout(1000)

    # --- compensations
    def cancel_recommendation_tracking(self) -> Generator[simpy.Event, Any, None]:
        yield self.env.timeout(self.rng.uniform(5, 25))

    def release_inventory(self) -> Generator[simpy.Event, Any, None]:
        while True:  # retried every 100 ms until it goes through
            yield self.env.timeout(self.rng.lognormvariate(*RELEASE))
            if self.rng.random() >= 0.01:
                return
            yield self.env.timeout(100)

    def restore_points(self) -> Generator[simpy.Event, Any, None]:
        yield self.env.timeout(self.rng.expovariate(1 / 25))

    # --- one saga instance
    def order(self) -> Generator[simpy.Event, Any, None]:
        env = self.env
        start = env.now
        outcome = "compensated"
        if (yield from self.validate_order()) and (yield from self.recommend_upsell()):
            yield from self.reserve_inventory()
            fraud = env.process(self.fraud_check())
            loyalty = env.process(self.hold_loyalty_points())
            yield fraud & loyalty
            if fraud.value and loyalty.value and (yield from self.process_payment()):
                yield from self.trigger_delivery()
                outcome = "committed"
            else:
                if loyalty.value:
                    yield from self.restore_points()
                yield from self.release_inventory()
                yield from self.cancel_recommendation_tracking()
        self.outcomes[outcome] += 1
        self.latencies.append(env.now - start)

    def source(self, runs: int) -> Generator[simpy.Event, Any, None]:
        env = self.env
        for _ in range(runs):
            if self.under_load:
                yield env.timeout(self.rng.expovariate(RATE_PER_MS))
                env.process(self.order())
            else:
                yield env.process(self.order())

    def run(self, runs: int) -> Simulation:
        self.env.process(self.source(runs))
        self.env.run()
        return self


def run(runs: int, *, under_load: bool, seed: int = 1) -> Simulation:
    """``runs`` instances, one after another or arriving at 50 a second."""
    return Simulation(under_load, seed).run(runs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=200_000)
    parser.add_argument("--load", action="store_true", help="Poisson arrivals, shared payments")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    start = time.perf_counter()
    sim = run(args.runs, under_load=args.load, seed=args.seed)
    elapsed = time.perf_counter() - start
    mean = sum(sim.latencies) / len(sim.latencies)
    rates = ", ".join(f"{k} {v / args.runs:.4f}" for k, v in sim.outcomes.items())
    print(f"{args.runs:,} instances in {elapsed:.2f} s ({args.runs / elapsed:,.0f}/s): {rates},")
    print(f"mean latency {mean:.1f} ms")


if __name__ == "__main__":
    main()
