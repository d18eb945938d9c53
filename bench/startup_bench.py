"""How long ``sagasim simulate`` takes to start: import time, and time to its first event.

Every measurement is a fresh process (``python -m sagasim simulate MODEL --runs 1``, run from
the repository root), ``REPEATS`` times; the medians are printed. Three figures:

- **start to exit**: the whole command, from the parent's clock before spawning the process to
  its exit: interpreter start, imports, loading the model, one instance and the report. With
  one instance to simulate, this is the start-up a user waits through.
- **to the first event**: the same command with SimPy's ``Environment.step`` wrapped (in the
  child, before ``sagasim`` is imported) to print the wall clock (``time.time()``) and its own
  CPU time (``time.process_time()``) when the first simulated event is processed; the parent
  subtracts the clock it read just before spawning.
  Importing SimPy first moves its import earlier, not out: the sum is what ``simulate`` pays
  before its first event. If no SimPy event happens (an engine without SimPy), only wall counts.
- **imports**: ``-X importtime``'s total over every module the command imports (the sum of
  their self times, as the interpreter reports them; the option itself slows imports a
  little), and the packages that cost the most, each its own modules' self times.

Each is measured with compiled bytecode cached and reused (written to a temporary
``PYTHONPYCACHEPREFIX``, out of the source tree), as an installed package has it; and, where
``PYTHONDONTWRITEBYTECODE`` is set, also as this environment runs (every process compiles
sagasim's sources again, which costs about a quarter of a second).

Both are given in wall seconds and in the child's CPU seconds (user and system): on a loaded
machine the wall clock waits for a core, the CPU time hardly moves. The issue's target is under
0.3 s before the first event. Seconds depend on the machine and on what else runs on it (the
README's figures come from a shared machine with two cores); compare them within one run.

Run: ``.venv/bin/python bench/startup_bench.py [--model FILE] [--repeats N]``.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
REPEATS = 7
TARGET_S = 0.3
#: Run in the child before sagasim: print the wall clock at SimPy's first event, then run the CLI.
FIRST_EVENT = """
import sys, time
import simpy.core

step, seen = simpy.core.Environment.step, []

def first(self):
    if not seen:
        seen.append(True)
        print(f"FIRST_EVENT {time.time()!r} {time.process_time()!r}", file=sys.stderr, flush=True)
    return step(self)

simpy.core.Environment.step = first
from sagasim.cli import main
raise SystemExit(main(sys.argv[1:]))
"""


def command(model: str) -> list[str]:
    return ["simulate", model, "--runs", "1", "--seed", "1"]


def environment(cached: bool, prefix: str) -> dict[str, str]:
    """The child's environment: with ``cached``, compiled bytecode is written and reused (in
    ``prefix``, out of the source tree), as for an installed package; else as this process has
    it (``PYTHONDONTWRITEBYTECODE=1`` makes every run compile sagasim's sources again)."""
    env = dict(os.environ)
    if cached:
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        env["PYTHONPYCACHEPREFIX"] = prefix
    return env


def wall(model: str, env: dict[str, str]) -> tuple[float, float]:
    """(wall seconds, CPU seconds) of the whole command."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "sagasim", *command(model)], cwd=ROOT, check=True,
                   env=env, stdout=subprocess.DEVNULL)  # fmt: skip
    elapsed = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return elapsed, after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime


def first_event(model: str, env: dict[str, str]) -> tuple[float, float] | None:
    """(wall seconds, CPU seconds of the child) until its first SimPy event, or None."""
    start = time.time()
    done = subprocess.run([sys.executable, "-c", FIRST_EVENT, *command(model)], cwd=ROOT,
                          env=env, check=True, capture_output=True, text=True)  # fmt: skip
    stamps = [line.split()[1:] for line in done.stderr.splitlines() if line.startswith("FIRST_")]
    return (float(stamps[0][0]) - start, float(stamps[0][1])) if stamps else None


def imports(model: str, env: dict[str, str]) -> tuple[float, dict[str, float], set[str]]:
    """Total import seconds, the seconds spent in each top-level package's own modules (their
    self times, so that nothing counts twice), and every module loaded."""
    done = subprocess.run([sys.executable, "-X", "importtime", "-m", "sagasim", *command(model)],
                          cwd=ROOT, env=env, check=True, capture_output=True,
                          text=True)  # fmt: skip
    per_package: dict[str, float] = defaultdict(float)
    loaded = set()
    for line in done.stderr.splitlines():
        if not line.startswith("import time:"):
            continue
        own, _, name = line.removeprefix("import time:").split("|")
        if not own.strip().isdigit():  # the header
            continue
        loaded.add(name.strip())
        per_package[name.strip().split(".")[0]] += int(own) / 1e6
    return sum(per_package.values()), dict(per_package), loaded


def seconds(pairs: list[tuple[float, float]]) -> str:
    """The medians of (wall, CPU) pairs, as two columns."""
    return "  ".join(f"{statistics.median(p[i] for p in pairs):6.3f}" for i in (0, 1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="models/order_fulfillment.yaml")
    parser.add_argument("--repeats", type=int, default=REPEATS)
    args = parser.parse_args()
    print(f"sagasim simulate {args.model} --runs 1, {args.repeats} fresh processes, median,"
          f" load {os.getloadavg()[0]:.1f}, {os.cpu_count()} CPUs")  # fmt: skip
    with tempfile.TemporaryDirectory() as prefix:
        modes = [("bytecode cached", environment(True, prefix))]
        if os.environ.get("PYTHONDONTWRITEBYTECODE"):
            modes.append(("as here, PYTHONDONTWRITEBYTECODE=1", environment(False, prefix)))
        for mode, env in modes:
            wall(args.model, env)  # warm: file system cache, and the bytecode where cached
            walls = [wall(args.model, env) for _ in range(args.repeats)]
            firsts = [first_event(args.model, env) for _ in range(args.repeats)]
            print(f"  {mode}:  wall s  CPU s")
            print(f"    start to exit:          {seconds(walls)}")
            if all(f is not None for f in firsts):
                found = [f for f in firsts if f is not None]
                verdict = "ok" if statistics.median(f[0] for f in found) < TARGET_S else "ABOVE"
                print(f"    to the first event:     {seconds(found)}"
                      f"  (target < {TARGET_S} s wall: {verdict})")  # fmt: skip
            else:
                print("    to the first event:     no SimPy event happened")
        runs = [imports(args.model, modes[0][1]) for _ in range(args.repeats)]
    total = statistics.median(r[0] for r in runs)
    packages = runs[0][1].keys()
    heaviest = sorted(packages, key=lambda p: -statistics.median(r[1].get(p, 0) for r in runs))
    print(f"  imports (-X importtime, bytecode cached): {total:.3f} s, of which")
    for package in heaviest[:8]:
        spent = statistics.median(r[1].get(package, 0) for r in runs)
        print(f"    {package:<22}  {spent:.3f} s")
    heavy = ("scipy", "matplotlib", "pandas", "networkx", "statemachine", "numpy", "simpy")
    loaded = {m.split(".")[0] for m in runs[0][2]}
    print(f"  loaded: {', '.join(h for h in heavy if h in loaded) or 'none of the heavy ones'};"
          f" not loaded: {', '.join(h for h in heavy if h not in loaded) or 'none'}")  # fmt: skip


if __name__ == "__main__":
    main()
