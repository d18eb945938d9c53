"""Simulate many saga instances: seeded chunks, run here or on worker processes, merged.

Without ``saga.arrivals`` each instance runs on an idle system with its own clock, in chunks of
``chunk_size`` seeded from ``SeedSequence(seed).spawn(n)``: the same seed gives the same results
whatever the number of workers. With arrivals, instances share the services in one chunk. The
chunks themselves run in :mod:`sagasim.sim.orchestration` or :mod:`sagasim.sim.choreography`,
or, for independent orchestrated instances, on the vectorised fast path of
:mod:`sagasim.sim.fast` (``engine="fast"``; ``"auto"`` takes it from ``FAST_MIN_RUNS`` runs on
when the saga allows it and no trace is asked for, so smaller runs keep SimPy's numbers).

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
from . import choreography, choreography_shared, fast, orchestration, shared
from .results import Results, merge
from .traces import InstanceTrace

__all__ = ["DEFAULT_CHUNK_SIZE", "ENGINES", "FAST_CHUNK_SIZE", "FAST_MIN_RUNS", "choose_engine"]
__all__ += ["simulate", "simulate_instance"]

DEFAULT_CHUNK_SIZE = 10_000
#: The fast path's chunks: larger, since its cost per chunk is a number of numpy calls.
FAST_CHUNK_SIZE = 100_000
#: From how many runs on ``engine="auto"`` takes the fast path (where the saga allows it):
#: below, runs stay on SimPy and keep its numbers for a seed.
FAST_MIN_RUNS = 10_000
ENGINES = ("auto", "simpy", "fast")
Engine = Literal["auto", "simpy", "fast"]


def choose_engine(saga: Saga, runs: int, engine: str = "auto", trace_limit: int = 0) -> str:
    """The engine ``simulate`` runs: ``"simpy"`` or ``"fast"``; refuse ``"fast"`` where it
    cannot run, with the reason.

    >>> from sagasim.model import Saga, Step
    >>> saga = Saga(name="s", steps=(Step(name="a"),))
    >>> choose_engine(saga, 1_000), choose_engine(saga, 50_000), choose_engine(saga, 10, "fast")
    ('simpy', 'fast', 'fast')
    """
    if engine not in ENGINES:
        raise ValueError(f"expected engine 'auto', 'simpy' or 'fast', got {engine!r}")
    if engine == "simpy":
        return "simpy"
    reason = fast.fast_supported(saga)
    if reason is None and trace_limit > 0:
        reason = "traces are recorded by SimPy only"
    if engine == "fast":
        if reason is not None:
            raise SagaSimError(f"{saga.name}: engine fast: {reason}")
        return "fast"
    return "fast" if reason is None and runs >= FAST_MIN_RUNS else "simpy"


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
    """One chunk of either coordination, self-contained so that it can run in another process
    (sagas sharing resources or with a coordinator on :mod:`sagasim.sim.shared`, or
    :mod:`sagasim.sim.choreography_shared` when choreographed)."""
    if saga.coordination == "choreography":
        backend = choreography_shared if choreography_shared.needed(saga) else choreography
    else:
        backend = shared if shared.needed(saga) else orchestration
    return backend.run_chunk(saga, seed, seed_seq, first, n, trace_limit)


def _run_fast_chunk(
    saga: Saga, seed: int, seed_seq: np.random.SeedSequence, first: int, n: int, trace_limit: int
) -> Results:
    """One chunk on the fast path (``trace_limit`` is always 0 there)."""
    return fast.run_chunk(saga, seed, seed_seq, first, n)


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
    engine: Engine = "auto",
) -> Results:
    """Simulate ``runs`` instances of ``saga``; the first ``trace_limit`` are traced.

    Chunks of ``chunk_size`` instances (default 10,000 on SimPy, 100,000 on the fast path; one
    chunk with arrivals) run on ``executor`` if given, else on ``workers`` processes; results
    do not depend on either. ``progress`` shows a counter on stderr if tqdm is installed
    (``sagasim[progress]``). ``engine``: ``"simpy"`` (the reference), ``"fast"`` (independent
    orchestrated instances in numpy batches; refused with the reason where it cannot run) or
    ``"auto"``: fast from :data:`FAST_MIN_RUNS` runs on where it can run and nothing is
    traced. :attr:`Results.engine` says which ran.

    >>> from sagasim.model import Saga, Step
    >>> saga = Saga(name="s", steps=(Step(name="a", reject=0.25),))
    >>> simulate(saga, runs=1_000, seed=1).rate("committed").value
    0.749
    """
    ran = choose_engine(saga, runs, engine, trace_limit)
    default_size = FAST_CHUNK_SIZE if ran == "fast" else DEFAULT_CHUNK_SIZE
    size = default_size if chunk_size is None else chunk_size
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
        run = _run_fast_chunk if ran == "fast" else _run_chunk
        for part in (map if pool is None else pool.map)(run, *zip(*jobs)):
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
    if saga.coordination == "choreography" and choreography_shared.needed(saga):
        root = np.random.SeedSequence(seed)
        rng, crash_rng = (np.random.default_rng(s) for s in (root, shared.coordinator_seed(root)))
        chunk = choreography_shared.SharedChunk(saga, rng, 1, 0, 1, crash_rng)
    elif saga.coordination == "choreography":
        chunk = choreography.Chunk(saga, np.random.default_rng(seed), 1, 0, 1)
    elif shared.needed(saga):
        root = np.random.SeedSequence(seed)
        rng, crash_rng = (np.random.default_rng(s) for s in (root, shared.coordinator_seed(root)))
        chunk = shared.SharedChunk(orchestration.plan(saga), rng, 1, 0, 1, crash_rng)
    else:
        chunk = orchestration.Chunk(orchestration.plan(saga), np.random.default_rng(seed), 1, 0, 1)
    chunk.library = driver == "library"
    return chunk.run(seed).traces[0]
