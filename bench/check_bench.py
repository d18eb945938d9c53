"""How fast ``check`` explores: states per second of :func:`sagasim.verify.explore`.

Generated sagas: one parallel group of 1 to 5 branches of 5 steps, every step and every
compensation failing with probability 0.1 and retried 0, 1 or 2 times. Each exploration stops
at ``MAX_STATES`` (the rate up to there is reported). Compiling the python-statemachine class
(once per shape, then cached) is timed apart from exploring.

The headline case, 3 branches of 5 steps with 2 retries on steps and on compensations, is
compared with a reference measured in the same run: a plain networkx BFS (``nx.bfs_edges``)
over the resulting state graph. The ratio stays meaningful on a noisy shared machine, where the
seconds do not. Times are CPU seconds of this process (``time.process_time``), best of
``REPEATS`` for the headline, so other processes on the machine disturb them less.

Run: ``.venv/bin/python bench/check_bench.py [--max-branches 5]``. Five branches are off by
default: that group has 165,702 control configurations, and building its python-statemachine
class (before any exploring) takes many minutes and gigabytes.
"""

from __future__ import annotations

import argparse
import gc
import time

import networkx as nx

from sagasim.exceptions import StateSpaceLimitError
from sagasim.machine import compile_saga
from sagasim.machine.orchestration import _build_class, _Compiler, table_from_class
from sagasim.model import Compensation, Parallel, Retry, Saga, Step
from sagasim.verify import check, explore

MAX_STATES = 400_000
STEPS_PER_BRANCH = 5
FAILURE = 0.1
REPEATS = 3
TARGET_RATE_PER_S = 100_000
TARGET_HEADLINE_S = 1.0
TARGET_CHECK_RATE_PER_S = 300_000


def parallel_saga(
    branches: int, retries: int, steps: int = STEPS_PER_BRANCH, suffix: str = ""
) -> Saga:
    """One parallel group of ``branches`` x ``steps``; steps and compensations fail with
    probability 0.1 and get ``retries`` retries each."""
    retry = Retry(attempts=retries + 1)
    group = Parallel(
        branches=tuple(
            tuple(
                Step(
                    name=f"s{b}_{k}",
                    failure=FAILURE,
                    retry=retry,
                    compensation=Compensation(name=f"u{b}_{k}", failure=FAILURE, retry=retry),
                )
                for k in range(steps)
            )
            for b in range(branches)
        )
    )
    return Saga(name=f"bench_{branches}x{steps}_r{retries}{suffix}", steps=(group,))


def measure(saga: Saga) -> tuple[int, int, float, float, bool]:
    """(states, transitions, compile s, explore s, whether it stopped at MAX_STATES)."""
    start = time.process_time()
    try:
        compile_saga(saga)
    except StateSpaceLimitError:  # the orchestrator alone is over the machine's limit
        return 0, 0, time.process_time() - start, 0.0, True
    compile_s = time.process_time() - start
    gc.collect()
    start = time.process_time()
    try:
        space = explore(saga, max_states=MAX_STATES)
    except StateSpaceLimitError:
        # The error does not carry the partial space: the limit is the count of states reached.
        return MAX_STATES, 0, compile_s, time.process_time() - start, True
    explore_s = time.process_time() - start
    return len(space.nodes), len(space.edges), compile_s, explore_s, False


def compile_split(saga: Saga) -> tuple[float, float, float]:
    """CPU seconds of a cold compile's parts: the control configurations (sagasim's
    compiler), the python-statemachine class built from them, the table read back from the
    class; with the collector off, as :func:`compile_saga` builds them."""
    gc.collect()
    gc.disable()
    try:
        start = time.process_time()
        infos, edges = _Compiler(saga).build()
        built = time.process_time()
        machine_class = _build_class(saga.name, infos, edges)
        classed = time.process_time()
        table_from_class(machine_class)
        read = time.process_time()
    finally:
        gc.enable()
    return built - start, classed - built, read - classed


def headline() -> None:
    saga = parallel_saga(3, 2)
    start = time.process_time()
    compile_saga(saga)
    compile_s = time.process_time() - start
    explore_runs, bfs_runs = [], []
    for _ in range(REPEATS):
        gc.collect()
        start = time.process_time()
        space = explore(saga, max_states=MAX_STATES)
        explore_runs.append(time.process_time() - start)
        graph = space.to_networkx()
        # The reference is the traversal alone: with the collector on, its time is dominated
        # by full collections over the graph's millions of dicts, which vary with the heap.
        gc.collect()
        gc.disable()
        start = time.process_time()
        for _edge in nx.bfs_edges(graph, 0):
            pass
        bfs_runs.append(time.process_time() - start)
        gc.enable()
        del graph
    explore_s, bfs_s = min(explore_runs), min(bfs_runs)
    states = len(space.nodes)
    print(
        f"headline: 3 branches x {STEPS_PER_BRANCH} steps, 2 retries on steps and compensations:"
        f" {states:,} states, {len(space.edges):,} transitions"
    )
    print(f"  compile {compile_s:.3f} s (once per shape)")
    print(f"  explore {explore_s:.3f} s, {states / explore_s:,.0f} states/s (best of {REPEATS})")
    print(f"  networkx BFS over the same graph {bfs_s:.3f} s (best of {REPEATS})")
    print(f"  explore / BFS = {explore_s / bfs_s:.2f}")
    met = "met" if explore_s < TARGET_HEADLINE_S else "MISSED"
    print(f"  target explore < {TARGET_HEADLINE_S} s: {met}")
    # What `sagasim check` does after loading the model: compile (a fresh name, so the cache
    # misses, as in a new process), explore, verdicts and shortest traces, lints.
    del space  # a live space makes every collection during the next compile walk it
    check_runs = []
    for k in range(REPEATS):
        fresh = parallel_saga(3, 2, suffix=f"_cold{k}")
        gc.collect()
        start = time.process_time()
        report = check(fresh, max_states=MAX_STATES)
        check_runs.append(time.process_time() - start)
        del report
    check_s = min(check_runs)
    rate = states / check_s
    print(
        f"  check (compile + explore + verdicts) {check_s:.3f} s, {rate:,.0f} states/s"
        f" (best of {REPEATS})"
    )
    met = "met" if check_s < TARGET_HEADLINE_S and rate >= TARGET_CHECK_RATE_PER_S else "MISSED"
    print(
        f"  target check < {TARGET_HEADLINE_S} s at >= {TARGET_CHECK_RATE_PER_S:,} states/s: {met}"
    )
    # Last: each split leaves one more class behind (the library keeps them).
    control_s, class_s, table_s = min(
        (compile_split(parallel_saga(3, 2, suffix=f"_split{k}")) for k in range(REPEATS)),
        key=sum,
    )
    print(
        f"  compile split: control configurations {control_s:.3f} s, python-statemachine"
        f" class {class_s:.3f} s, table read back {table_s:.3f} s (best of {REPEATS})"
    )


def table(max_branches: int) -> None:
    print(f"one parallel group, {STEPS_PER_BRANCH} steps a branch, failure {FAILURE}:")
    print(
        f"{'branches':>8} {'retries':>7} {'states':>9} {'transitions':>11} "
        f"{'compile s':>9} {'explore s':>9} {'states/s':>9}"
    )
    rates = []
    for branches in range(1, max_branches + 1):
        for retries in (0, 1, 2):
            states, transitions, compile_s, explore_s, limited = measure(
                parallel_saga(branches, retries)
            )
            if limited and not states:
                print(f"{branches:>8} {retries:>7} {'over the machine limit':>40}")
                continue
            rate = states / explore_s
            if states >= 10_000:  # small spaces measure the set-up, not the rate
                rates.append(rate)
            shown = f"{states:,}+" if limited else f"{states:,}"
            edges = "-" if limited else f"{transitions:,}"
            print(
                f"{branches:>8} {retries:>7} {shown:>9} {edges:>11} "
                f"{compile_s:>9.3f} {explore_s:>9.3f} {rate:>9,.0f}"
            )
    slowest = min(rates)
    met = "met" if slowest >= TARGET_RATE_PER_S else "MISSED"
    print(f"slowest rate on spaces of 10,000 states or more: {slowest:,.0f} states/s")
    print(f"  target >= {TARGET_RATE_PER_S:,} states/s: {met}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max-branches", type=int, default=4, choices=range(1, 6))
    args = parser.parse_args()
    # The headline first, in a fresh process: the big shapes of the table leave gigabytes of
    # compiled classes behind.
    headline()
    print()
    table(args.max_branches)


if __name__ == "__main__":
    main()
