"""Simulate many saga instances: seeded chunks, run here or on worker processes, merged.

Without ``saga.arrivals`` each instance runs on an idle system with its own clock, in chunks of
``chunk_size`` seeded from ``SeedSequence(seed).spawn(n)``: the same seed gives the same results
whatever the number of workers. With arrivals, instances share the services in one chunk. The
chunks themselves run in :mod:`sagasim.sim.orchestration` or :mod:`sagasim.sim.choreography`.

Examples
--------
>>> from sagasim.model import Compensation, Retry, Saga, Step
>>> from sagasim.model import Constant
>>> saga = Saga(name="pay", steps=(
...     Step(name="reserve", latency=Constant(value_ms=20),
...          compensation=Compensation(name="release", latency=Constant(value_ms=5))),
...     Step(name="charge", kind_declared="pivot", latency=Constant(value_ms=50), failure=0.3,
...          retry=Retry(attempts=2, delay_ms=100)),
... ))
>>> results = simulate(saga, runs=1_000, seed=7)
>>> results.outcomes
{'committed': 909, 'compensated': 91, 'leaked': 0, 'stuck': 0}
>>> simulate_instance(saga, seed=5).timeline
[(20.0, 'reserve.ok'), (70.0, 'charge.fail'), (220.0, 'charge.ok')]
"""

from __future__ import annotations

import contextlib
from concurrent.futures import Executor, ProcessPoolExecutor
from typing import Literal

import numpy as np

from ..exceptions import SagaSimError
from ..machine.choreography import compile_choreography
from ..model.saga import Saga
from . import choreography, orchestration
from .results import Results, merge
from .traces import InstanceTrace

__all__ = ["DEFAULT_CHUNK_SIZE", "simulate", "simulate_instance"]

DEFAULT_CHUNK_SIZE = 10_000


def _simulable(saga: Saga) -> None:
    """Refuse a saga whose instances could never end; compile what the simulation runs."""
    for a in saga.actions():
        if a.retry.unbounded and a.attempt_outcomes["ok"] == 0:
            raise SagaSimError(
                f"{saga.name}: {a.name} is retried without limit but no attempt can "
                "succeed, so a simulated instance would never end"
            )
    if saga.coordination == "choreography":
        compile_choreography(saga)
    else:
        orchestration.plan(saga)


def _run_chunk(
    saga: Saga, seed: int, seed_seq: np.random.SeedSequence, first: int, n: int, trace_limit: int
) -> Results:
    """One chunk of either coordination, self-contained so that it can run in another process."""
    backend = choreography if saga.coordination == "choreography" else orchestration
    return backend.run_chunk(saga, seed, seed_seq, first, n, trace_limit)


def simulate(
    saga: Saga,
    runs: int = 10_000,
    seed: int = 0,
    *,
    workers: int = 1,
    executor: Executor | None = None,
    chunk_size: int | None = None,
    trace_limit: int = 0,
    progress: bool = False,
) -> Results:
    """Simulate ``runs`` instances of ``saga``; the first ``trace_limit`` are traced.

    Chunks of ``chunk_size`` instances (default 10,000; one chunk with arrivals) run on
    ``executor`` if given, else on ``workers`` processes; results do not depend on either.
    ``progress`` shows a counter on stderr if tqdm is installed (``sagasim[progress]``).

    >>> from sagasim.model import Saga, Step
    >>> saga = Saga(name="s", steps=(Step(name="a", reject=0.25),))
    >>> simulate(saga, runs=1_000, seed=1).rate("committed").value
    0.749
    """
    size = DEFAULT_CHUNK_SIZE if chunk_size is None else chunk_size
    checks = (("number of runs", runs), ("number of workers", workers), ("chunk size", size))
    for what, value in checks:
        if value < 1:
            raise ValueError(f"expected a positive {what}, got {value!r}")
    _simulable(saga)  # fail early, in the caller's process, on a saga that cannot be simulated
    size = runs if saga.arrivals is not None else size
    counts = [min(size, runs - first) for first in range(0, runs, size)]
    seeds = np.random.SeedSequence(seed).spawn(len(counts))
    jobs = [(saga, seed, seeds[i], i * size, n, trace_limit) for i, n in enumerate(counts)]
    bar = None
    if progress:
        with contextlib.suppress(ImportError):  # progress is a courtesy, not a requirement
            from tqdm import tqdm

            bar = tqdm(total=runs, unit="inst", unit_scale=True, leave=False)
    pool = executor
    if pool is None and workers > 1 and len(jobs) > 1:
        pool = ProcessPoolExecutor(max_workers=workers)
    parts: list[Results] = []
    try:
        for part in (map if pool is None else pool.map)(_run_chunk, *zip(*jobs)):
            parts.append(part)
            if bar is not None:
                bar.update(part.runs)
    finally:
        if bar is not None:
            bar.close()
        if pool is not None and executor is None:
            pool.shutdown()
    return merge(parts)


def simulate_instance(
    saga: Saga, seed: int = 0, driver: Literal["table", "library"] = "table"
) -> InstanceTrace:
    """Run one instance with the transition table or with the live python-statemachine
    instance (``driver="library"``), on the random numbers of ``seed``.

    Both drivers draw the same numbers in the same order, so equal traces mean the fast table
    and the library take the same edges.

    >>> from sagasim.model import Saga, Step
    >>> saga = Saga(name="s", steps=(Step(name="a", reject=0.5),))
    >>> t = simulate_instance(saga, seed=0, driver="library")
    >>> t.timeline, t.outcome
    ([(0.0, 'a.reject')], 'compensated')
    """
    if driver not in ("table", "library"):
        raise ValueError(f"expected driver 'table' or 'library', got {driver!r}")
    _simulable(saga)
    chunk: orchestration.Chunk | choreography.Chunk
    if saga.coordination == "choreography":
        chunk = choreography.Chunk(saga, np.random.default_rng(seed), 1, 0, 1)
    else:
        chunk = orchestration.Chunk(orchestration.plan(saga), np.random.default_rng(seed), 1, 0, 1)
    chunk.library = driver == "library"
    return chunk.run(seed).traces[0]
