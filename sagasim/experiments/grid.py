"""Sweeps: one saga simulated, and where possible analysed, over a grid of parameter values.

A sweep varies one or two numbers of the model, named by ``--set`` paths such as
``process_payment.reject`` or ``services.payments.capacity``. Each grid point is the saga with
:func:`sagasim.io.apply_overrides` applied, simulated on its own seed (``SeedSequence(seed)
.spawn(points)``, each child made an int by ``generate_state``): a point's numbers are those of
``simulate(saga_at_point, runs, seed=point_seed)``, which ``sagasim simulate MODEL --set ...
--seed POINT_SEED`` reproduces. Where :func:`sagasim.analysis.analyze` models what is
simulated, each point also gets the exact compensation probability and P(stuck).

Examples
--------
>>> from sagasim.model import Compensation, Saga, Step
>>> saga = Saga(name="pay", steps=(Step(name="reserve", compensation=Compensation(name="undo")),
...                                Step(name="charge", kind_declared="pivot", reject=0.1)))
>>> result = sweep(saga, {"charge.reject": [0.0, 0.5]}, runs=1_000, seed=3)
>>> [(p.results.outcomes["compensated"], p.exact_compensation_probability) for p in result.points]
[(0, 0.0), (508, 0.5)]
"""

from __future__ import annotations

import csv
import math
import os
import re
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from contextlib import suppress
from dataclasses import dataclass
from functools import partial
from itertools import product
from typing import Any, Literal

import numpy as np

from ..analysis.exact import Analysis, analyze
from ..exceptions import SagaDefinitionError, SagaSimError, UsageError
from ..io import parse_duration
from ..io.overrides import apply_overrides
from ..model.saga import Saga
from ..sim.results import Results
from ..sim.run import simulate

__all__ = ["ExactCurve", "SweepPoint", "SweepResult", "parse_vary", "sweep"]

#: Last keys of paths that take whole numbers, and of paths that take durations (values in ms).
INTEGER_KEYS = frozenset({"attempts", "capacity", "instances", "max_crashes"})
DURATION_KEYS = frozenset({"timeout", "delay", "max_delay", "start", "end", "value", "low", "high"})
DURATION_KEYS |= {"restart"}
DURATION_KEYS |= {"mean", "sd", "median", "p99"}
MAX_COUNT = 1_000  # values one --vary may ask for
#: Points of the exact curve of a one-parameter sweep of a fraction, if the states are few.
EXACT_CURVE_POINTS, EXACT_CURVE_MAX_STATES = 51, 2_000
RATE_DIGITS, MS_DIGITS, EXACT_DIGITS = 6, 3, 12
_SPEC = "PATH=START:STOP:COUNT"
_COMP = ("compensation_rate", "ci_low", "ci_high")
_STUCK = ("stuck_rate", "stuck_ci_low", "stuck_ci_high")
_EXACT = ("exact_compensation_probability", "exact_stuck", "exact_latency_mean_ms")

Vary = Mapping[str, Sequence[float]] | Sequence[tuple[str, Sequence[float]]]


def parse_vary(spec: str) -> tuple[str, tuple[float, ...]]:
    """``PATH=START:STOP:COUNT`` as the path and its COUNT evenly spaced values.

    START and STOP are in the model's units (per second for ``arrivals.rate``, ms for durations,
    which also read ``100ms`` or ``1.5s``). Paths ending in ``attempts`` or ``capacity`` get
    whole numbers; COUNT 1 gives START alone.

    Examples
    --------
    >>> parse_vary("process_payment.reject=0:0.2:5")
    ('process_payment.reject', (0.0, 0.05, 0.1, 0.15, 0.2))
    >>> parse_vary("reserve_inventory.retry.attempts=1:7:4")
    ('reserve_inventory.retry.attempts', (1, 3, 5, 7))
    >>> parse_vary("process_payment.reject=0:0.2")
    Traceback (most recent call last):
    ...
    sagasim.exceptions.UsageError: --vary ...: expected PATH=START:STOP:COUNT, got '0:0.2'
    """
    path, equals, rest = (part.strip() for part in spec.partition("="))
    fields = rest.split(":")
    if not equals or not path or len(fields) != 3 or not all(f.strip() for f in fields):
        got = "no '='" if not equals else "no PATH" if not path else repr(rest)
        raise UsageError(f"--vary {spec}: expected {_SPEC}, got {got}")
    start, stop = (_number(text, what, spec) for text, what in zip(fields, ("START", "STOP")))
    count = fields[2].strip()
    if not count.isdigit() or not 1 <= int(count) <= MAX_COUNT:
        expected = f"COUNT to be a whole number from 1 to {MAX_COUNT:,}"
        raise UsageError(f"--vary {spec}: expected {expected}, got {count!r}")
    values = tuple(float(f"{v:.12g}") for v in np.linspace(start, stop, int(count)))
    if _last_key(path) not in INTEGER_KEYS:
        return path, values
    whole = tuple(math.floor(v + 0.5) for v in values)
    if len(set(whole)) < len(whole):
        got = ", ".join(map(str, whole))
        raise UsageError(f"--vary {spec}: expected COUNT different whole numbers, got {got}")
    return path, whole


def _number(text: str, what: str, spec: str) -> float:
    """START or STOP: a number or a duration (in ms)."""
    text, value = text.strip(), math.nan
    try:
        return parse_duration(text)
    except SagaDefinitionError:
        with suppress(ValueError):
            value = float(text)
    if not math.isfinite(value):
        expected = f"{what} to be a number or a duration such as 100ms"
        raise UsageError(f"--vary {spec}: expected {expected}, got {text!r}")
    return value


def _last_key(path: str) -> str:
    return re.split(r"[.\[\]]", path.strip().rstrip("]"))[-1]


def _assignment(path: str, value: float) -> str:
    """``PATH=VALUE`` for :func:`apply_overrides`; a duration gets its unit."""
    if isinstance(value, (int, np.integer)):
        return f"{path}={int(value)}"
    text = np.format_float_positional(float(value), trim="-")
    return f"{path}={text}{'ms' * (_last_key(path) in DURATION_KEYS)}"


def _parameters(vary: Vary) -> list[tuple[str, tuple[float, ...]]]:
    pairs = dict(vary)
    if not 1 <= len(pairs) == len(vary) <= 2:
        got = "one of them twice" if len(pairs) < len(vary) else len(vary)
        raise UsageError(f"--vary: expected one or two different parameters, got {got}")
    out = []
    for path, values in pairs.items():
        whole = _last_key(path) in INTEGER_KEYS
        if not values:
            raise UsageError(f"--vary {path}: expected at least one value, got none")
        for value in values:
            if isinstance(value, bool) or not isinstance(value, (int, float, np.number)):
                raise UsageError(f"--vary {path}: expected numbers, got {value!r}")
            if whole and float(value) != int(value):
                raise UsageError(f"--vary {path}: expected whole numbers, got {value!r}")
        out.append((path, tuple(int(v) if whole else float(v) for v in values)))
    return out


def _at_point(saga: Saga, assignments: Sequence[str]) -> Saga:
    """The saga at one point; an error reads ``--vary PATH=VALUE: message``."""
    try:
        return apply_overrides(saga, assignments)
    except SagaDefinitionError as err:
        raise SagaDefinitionError(err.message, path=err.path.replace("--set", "--vary")) from None


def _analysis(saga: Saga) -> tuple[Analysis | None, str | None]:
    """The exact analysis, or None and why not (outages and queueing are not in the model)."""
    if any(service.outages for service in saga.services):
        return None, "analyze does not model outages"
    if saga.arrivals is not None and any(s.capacity is not None for s in saga.services):
        return None, "analyze does not model queueing at capacity-limited services"
    if saga.coordination == "choreography" and not saga.broker.ideal:
        return None, "analyze does not model a choreography's broker"
    try:
        result = analyze(saga, sensitivity=False)
    except SagaSimError as err:
        return None, str(err)
    return (result, None) if result.exact else (None, "; ".join(result.notes) or "approximate")


@dataclass(frozen=True, slots=True)
class SweepPoint:
    """One grid point: its parameter values, its ``--set`` assignments, its seed, what the
    simulation found and the exact analysis (None where not available)."""

    values: tuple[float, ...]
    overrides: tuple[str, ...]
    seed: int
    results: Results
    analysis: Analysis | None

    @property
    def exact_compensation_probability(self) -> float | None:
        return None if self.analysis is None else self.analysis.compensation_probability

    @property
    def exact_stuck(self) -> float | None:
        return None if self.analysis is None else self.analysis.outcomes["stuck"]


@dataclass(frozen=True, slots=True)
class ExactCurve:
    """Exact compensation probability and P(stuck) of a one-parameter sweep at its grid points
    and, where cheap, in between (NaN where the analysis fails): the line under the points."""

    x: np.ndarray
    compensation_probability: np.ndarray
    stuck: np.ndarray


@dataclass(frozen=True, slots=True)
class SweepResult:
    """What :func:`sweep` found: one :class:`SweepPoint` per grid point, the first parameter
    varying slowest (``points[i * len(values[1]) + j]`` in a two-parameter sweep)."""

    saga: str
    parameters: tuple[str, ...]
    values: tuple[tuple[float, ...], ...]
    runs: int
    seed: int
    points: tuple[SweepPoint, ...]
    exact_curve: ExactCurve | None = None
    notes: tuple[str, ...] = ()

    @property
    def point_seeds(self) -> tuple[int, ...]:
        """Each point's simulation seed, in the order of :attr:`points`."""
        return tuple(point.seed for point in self.points)

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(len(values) for values in self.values)

    def grid(self, column: str) -> np.ndarray:
        """A column of :meth:`rows` as an array of :attr:`shape`, NaN where missing."""
        cells = [math.nan if row[column] is None else row[column] for row in self.rows()]
        return np.array(cells, dtype=float).reshape(self.shape)

    def rows(self, rounded: bool = False) -> list[dict[str, Any]]:
        """One dict per point with the columns of :meth:`to_pandas`, rounded as in
        :meth:`to_dict` if asked; None where a value is missing or not finite."""

        def num(value: float | None, digits: int = 0) -> float | None:
            if value is None or not math.isfinite(value):
                return None
            if not rounded:
                return float(value)
            return round(value, digits) if digits else float(f"{value:.{EXACT_DIGITS}g}")

        rows = []
        for point in self.points:
            res, exact, latency = point.results, point.analysis, point.results.latency()
            rows.append(
                {
                    **dict(zip(self.parameters, point.values)),
                    "runs": res.runs,
                    "seed": point.seed,
                    **res.outcomes,
                    **{k: num(v, RATE_DIGITS) for k, v in zip(_COMP, res.compensation_rate)},
                    **{k: num(v, RATE_DIGITS) for k, v in zip(_STUCK, res.stuck_rate)},
                    "latency_mean_ms": num(latency["mean"], MS_DIGITS),
                    "latency_p95_ms": num(latency["p95"], MS_DIGITS),
                    _EXACT[0]: num(point.exact_compensation_probability),
                    _EXACT[1]: num(point.exact_stuck),
                    _EXACT[2]: num(exact.expected_latency_ms["all"] if exact else None),
                    **_shared_columns(res, num),
                }
            )
        return rows

    def to_pandas(self) -> Any:
        """One row per point, NaN for missing exact values; needs pandas
        (``pip install 'sagasim[pandas]'``)."""
        try:
            import pandas as pd
        except ImportError as err:
            raise ImportError("to_pandas needs pandas: pip install 'sagasim[pandas]'") from err
        return pd.DataFrame(self.rows()).astype(dict.fromkeys(_EXACT, float))

    def to_csv(self, path: str | os.PathLike[str]) -> None:
        """Write :meth:`rows`, rounded as in :meth:`to_dict`; missing values are empty cells."""
        rows = self.rows(rounded=True)
        with open(path, "w", newline="", encoding="utf-8") as out:
            writer = csv.DictWriter(out, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows({k: "" if v is None else v for k, v in row.items()} for row in rows)

    def to_dict(self) -> dict[str, Any]:
        """Stable JSON: the grid, then per point its values, seed, counts, rates with 95%
        intervals, latency (ms) and the exact values (null where not available)."""
        points = []
        for point, row in zip(self.points, self.rows(rounded=True)):
            comp, stuck = ([row[key] for key in keys] for keys in (_COMP, _STUCK))
            exact = {key.removeprefix("exact_"): row[key] for key in _EXACT}
            point_dict = {"values": dict(zip(self.parameters, point.values)), "seed": point.seed}
            points.append(
                point_dict
                | {
                    "outcomes": point.results.outcomes,
                    "compensation_rate": {"value": comp[0], "ci95": comp[1:]},
                    "stuck_rate": {"value": stuck[0], "ci95": stuck[1:]},
                    "latency_ms": {"mean": row["latency_mean_ms"], "p95": row["latency_p95_ms"]},
                    "exact": None if point.analysis is None else exact,
                }
                | _shared_dict(row)
            )
        axes = [{"path": p, "values": [*v]} for p, v in zip(self.parameters, self.values)]
        head = {"saga": self.saga, "runs": self.runs, "seed": self.seed, "parameters": axes}
        return head | {"points": points, "notes": list(self.notes)}

    def to_text(self) -> str:
        """A table for people, one line per point."""
        exact = any(point.analysis is not None for point in self.points)
        heads = [*self.parameters, "compensation rate [95% CI]", "stuck", "mean ms", "p95 ms"]
        rows = self.rows()
        shared = [key for key in SHARED_COLUMNS if key in rows[0]]
        table = [
            heads + ["exact comp.", "exact stuck"] * exact + [SHARED_COLUMNS[k] for k in shared]
        ]
        for point, row in zip(self.points, rows):
            comp = "{} [{}, {}]".format(*(_pct(row[k]) for k in _COMP))
            latency = [f"{row[k]:,.1f}" for k in ("latency_mean_ms", "latency_p95_ms")]
            table.append([*(f"{v:g}" for v in point.values), comp, _pct(row["stuck_rate"])])
            table[-1] += latency + [_pct(row[k]) for k in _EXACT[:2]] * exact
            table[-1] += ["-" if row[k] is None else f"{row[k]:,.1f}" for k in shared]
        widths = [max(len(r[i]) for r in table) for i in range(len(table[0]))]
        lines = [f"sweep {self.saga}: {self.runs:,} runs a point (seed {self.seed})"]
        lines += ["  " + "  ".join(c.rjust(w) for c, w in zip(r, widths)) for r in table]
        return "\n".join([*lines, *(f"  note: {note}" for note in self.notes)])


#: The columns of many sagas at once (docs/concurrency.md), only for models with those keys,
#: and their headings in the text table.
SHARED_COLUMNS = {
    "lost_updates_per_1000": "lost/1k",
    "dirty_reads_per_1000": "dirty/1k",
    "stale_compensations_per_1000": "stale/1k",
    "duplicate_effects_per_1000": "dup/1k",
    "lock_wait_mean_ms": "lock wait ms",
    "crashes_per_1000": "crashes/1k",
}


def _shared_columns(
    res: Results, num: Callable[[float | None, int], float | None]
) -> dict[str, Any]:
    """A point's rates per 1,000 sagas of the anomalies between instances, its mean lock wait
    and its crashes, where the model has resources, locks or a coordinator; else nothing."""
    found = res.concurrency
    if found is None:
        return {}
    per_1000 = {}
    if found.resources:
        for key, count in found.counts().items():
            per_1000[f"{key}_per_1000"] = 1000 * count / res.runs
    if found.coordinator:
        duplicates = res.anomalies["duplicate_effect"]
        per_1000["duplicate_effects_per_1000"] = 1000 * duplicates / res.runs
        per_1000["crashes_per_1000"] = 1000 * found.crash_summary()["count"] / res.runs
    columns = {key: num(value, RATE_DIGITS) for key, value in per_1000.items()}
    if found.locks:
        waits = found.lock_wait_ms
        columns["lock_wait_mean_ms"] = num(float(waits.mean()) if waits.size else 0.0, MS_DIGITS)
    return columns


def _shared_dict(row: dict[str, Any]) -> dict[str, Any]:
    """The shared-data columns of a row, for a point of :meth:`SweepResult.to_dict`."""
    found = {key: row[key] for key in SHARED_COLUMNS if key in row}
    return {"shared": found} if found else {}


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3%}"


def sweep(
    saga: Saga,
    vary: Vary,
    *,
    runs: int = 10_000,
    seed: int = 0,
    workers: int = 1,
    exact: bool = True,
    engine: Literal["auto", "simpy", "fast"] = "auto",
) -> SweepResult:
    """Simulate ``saga`` at every point of the grid ``vary`` spans (one or two ``--set`` paths,
    each with its values) and, if ``exact``, analyse each point. Every point's model is checked
    before anything runs. ``workers`` processes share the simulations, points and chunks alike;
    the numbers do not depend on it. Exact values are None, and ``notes`` say why, where the
    analysis fails, is approximate or does not model the saga (outages, queueing). ``engine``
    is :func:`~sagasim.sim.simulate`'s, at every point.

    Examples
    --------
    >>> from sagasim.model import Saga, Step
    >>> saga = Saga(name="s", steps=(Step(name="a", reject=0.5),))
    >>> result = sweep(saga, {"a.reject": [0.2, 0.4]}, runs=100, seed=1)
    >>> result.shape, len(result.point_seeds), result.points[1].overrides
    ((2,), 2, ('a.reject=0.4',))
    >>> sweep(saga, {"a.reject": [0.5, 2]}, runs=100)
    Traceback (most recent call last):
    ...
    sagasim.exceptions.SagaDefinitionError: --vary a.reject=2: expected a probability in [0, 1]...
    """
    parameters = _parameters(vary)
    if runs < 1 or workers < 1:
        raise UsageError(f"expected positive runs and workers, got {runs} and {workers}")
    grid = list(product(*(values for _, values in parameters)))
    assignments = [tuple(map(_assignment, [p for p, _ in parameters], v)) for v in grid]
    sagas = [_at_point(saga, a) for a in assignments]
    seeds = [int(s.generate_state(1)[0]) for s in np.random.SeedSequence(seed).spawn(len(grid))]

    def named(index: int, result: Callable[[], Results]) -> Results:
        try:
            return result()
        except SagaSimError as err:
            raise SagaSimError(f"--vary {', '.join(assignments[index])}: {err}") from None

    notes: list[str] = []

    def analyses() -> list[Analysis | None]:
        found = [_analysis(s) if exact else (None, None) for s in sagas]
        missing = [f"{', '.join(a)}: {why}" for a, (r, why) in zip(assignments, found) if r is None]
        if exact and missing:
            notes.append(f"no exact values at {len(missing)} of {len(grid)} points ({missing[0]})")
        return [result for result, _ in found]

    if workers == 1 or len(grid) < workers:  # few points: each point's chunks share the workers
        jobs = [
            partial(simulate, s, runs, k, workers=workers, engine=engine)
            for s, k in zip(sagas, seeds)
        ]
        results = [named(i, job) for i, job in enumerate(jobs)]
        exacts = analyses()
    else:  # many points: a point a worker, analysed meanwhile
        with ProcessPoolExecutor(workers) as pool:
            futures = [
                pool.submit(simulate, s, runs, k, engine=engine) for s, k in zip(sagas, seeds)
            ]
            exacts = analyses()
            results = [named(i, future.result) for i, future in enumerate(futures)]
    one = len(parameters) == 1 and any(exacts)
    curve = _exact_curve(saga, parameters[0], exacts) if one else None
    paths, axes = (tuple(column) for column in zip(*parameters))
    points = tuple(map(SweepPoint, grid, assignments, seeds, results, exacts))
    return SweepResult(saga.name, paths, axes, runs, seed, points, curve, tuple(notes))


def _exact_curve(
    saga: Saga, parameter: tuple[str, tuple[float, ...]], analyses: Sequence[Analysis | None]
) -> ExactCurve:
    """The exact values at the grid points, and in between if the parameter is fractional and
    the state space small: a smooth line for the plot."""
    path, values = parameter
    known = dict(zip(values, analyses))
    x = sorted(known)
    states = max(a.states for a in analyses if a is not None)
    if _last_key(path) not in INTEGER_KEYS and states <= EXACT_CURVE_MAX_STATES:
        x = sorted(known.keys() | set(np.linspace(x[0], x[-1], EXACT_CURVE_POINTS).tolist()))
    for value in x:
        if value not in known:
            known[value] = _analysis(apply_overrides(saga, [_assignment(path, value)]))[0]
    found = [known[value] for value in x]
    comp = [math.nan if a is None else a.compensation_probability for a in found]
    stuck = [math.nan if a is None else a.outcomes["stuck"] for a in found]
    return ExactCurve(np.array(x, dtype=float), np.array(comp), np.array(stuck))
