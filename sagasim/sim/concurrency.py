"""What a simulation of sagas sharing resources, or of a coordinator that crashes, finds beyond
the per-instance columns of :class:`~sagasim.sim.results.Results`: the concurrency anomalies
per instance, lock waits, crashes with the restarts they cost, and the resources' final
values. :mod:`sagasim.sim.shared` fills it; ``Results.to_dict`` and the text table show it
only for models with these keys, so other models' output stays as it was.

Examples
--------
>>> import numpy as np
>>> found = Concurrency(lost_updates=np.array([0, 2, 1]), dirty_reads=np.zeros(3),
...     stale_compensations=np.zeros(3), crashes=np.zeros(3), in_doubt=np.zeros(3),
...     resources=True)
>>> found.counts()
{'lost_updates': 2, 'dirty_reads': 0, 'stale_compensations': 0}
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = ["ANOMALY_KEYS", "Concurrency"]

#: JSON keys of the concurrency anomalies, after the four of every model.
ANOMALY_KEYS = ("lost_updates", "dirty_reads", "stale_compensations")
MS_DIGITS = 3


def _ms(values: np.ndarray) -> dict[str, float | None]:
    """Mean and p95 of durations (ms), None where there are none."""
    if values.size == 0:
        return {"mean": None, "p95": None}
    mean, p95 = float(values.mean()), float(np.percentile(values, 95))
    return {"mean": round(mean, MS_DIGITS), "p95": round(p95, MS_DIGITS)}


@dataclass(slots=True, eq=False)
class Concurrency:
    """Per instance: how often it lost an update, read dirty, compensated stale, had its
    coordinator crash and left a call in doubt; per lock wait and per crash, their durations;
    which of these the model has keys for (``resources``, ``locks``, ``coordinator``)."""

    lost_updates: np.ndarray
    dirty_reads: np.ndarray
    stale_compensations: np.ndarray
    crashes: np.ndarray
    in_doubt: np.ndarray
    lock_wait_ms: np.ndarray = field(default_factory=lambda: np.zeros(0))
    restart_ms: np.ndarray = field(default_factory=lambda: np.zeros(0))
    #: the resources' values when a shared run (one chunk with arrivals) ended; else None
    final: dict[str, float] | None = None
    resources: bool = False
    locks: bool = False
    coordinator: bool = False

    def counts(self) -> dict[str, int]:
        """Instances with each concurrency anomaly, keyed as in the JSON."""
        arrays = (self.lost_updates, self.dirty_reads, self.stale_compensations)
        return {key: int(np.count_nonzero(a)) for key, a in zip(ANOMALY_KEYS, arrays)}

    def crash_summary(self) -> dict[str, Any]:
        """Crashes in all, sagas with one, calls left in doubt, and the restarts' durations."""
        return {
            "count": int(self.crashes.sum()),
            "sagas": int(np.count_nonzero(self.crashes)),
            "in_doubt": int(self.in_doubt.sum()),
            "recovery_ms": _ms(self.restart_ms),
        }

    def report(self, data: dict[str, Any], runs: int) -> None:
        """Add this model's keys to ``Results.to_dict``'s ``data``: the anomaly counts (in
        ``anomalies``) and their rates per 1,000 sagas (``anomalies_per_1000``), lock waits,
        crashes, final resource values."""
        anomalies = data["anomalies"]
        if self.resources:
            anomalies.update(self.counts())
        # beside the counts, not among them: tools sum the values of "anomalies"
        data["anomalies_per_1000"] = {
            key: round(1000 * count / runs, MS_DIGITS) for key, count in anomalies.items()
        }
        if self.locks:
            waits = self.lock_wait_ms
            data["locks"] = {"waits": int(waits.size), "wait_ms": _ms(waits)}
        if self.coordinator:
            data["crashes"] = self.crash_summary()
        if self.final is not None:
            data["resources"] = {name: {"final": value} for name, value in self.final.items()}

    def rows(self, runs: int) -> list[tuple[str, str]]:
        """Lines of the text table."""
        rows = []
        if self.resources:
            shown = (f"{k} {v:,} ({1000 * v / runs:.2f}/1k)" for k, v in self.counts().items())
            rows.append(("concurrency", "  ".join(shown)))
        if self.locks:
            wait = _ms(self.lock_wait_ms)
            times = ""
            if wait["mean"] is not None:
                times = f"  mean {wait['mean']:.1f}  p95 {wait['p95']:.1f} ms"
            rows.append(("lock waits", f"{self.lock_wait_ms.size:,}{times}"))
        if self.coordinator:
            c = self.crash_summary()
            line = f"{c['count']:,} in {c['sagas']:,} sagas, {c['in_doubt']:,} calls in doubt"
            if c["recovery_ms"]["mean"] is not None:
                line += f", restart mean {c['recovery_ms']['mean']:.1f} ms"
            rows.append(("crashes", line))
        for name, value in (self.final or {}).items():
            rows.append((f"resource {name}", f"final {value:g}"))
        return rows

    @staticmethod
    def merged(parts: Sequence[Concurrency]) -> Concurrency:
        """The parts of chunks of one simulation, in order (final values: one part only)."""
        first = parts[0]

        def joined(name: str) -> np.ndarray:
            return np.concatenate([getattr(p, name) for p in parts])

        return Concurrency(
            **{name: joined(name) for name in ARRAYS},
            final=first.final if len(parts) == 1 else None,
            resources=first.resources,
            locks=first.locks,
            coordinator=first.coordinator,
        )


ARRAYS: tuple[str, ...] = ("lost_updates", "dirty_reads", "stale_compensations", "crashes")
ARRAYS += ("in_doubt", "lock_wait_ms", "restart_ms")
