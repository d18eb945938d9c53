"""Latency distributions of an attempt, in milliseconds.

Each distribution is a frozen value object that knows its mean, its CDF, its partial mean
``E[L; L <= t]`` (what a timeout cuts off) and how to draw samples from a numpy ``Generator``.
The analysis uses the first three, the simulator the last: both read the same object.

Examples
--------
>>> d = Exponential(mean_ms=100.0)
>>> round(d.cdf(100.0), 4)
0.6321
>>> round(d.mean_until(100.0), 3)   # E[min(L, 100 ms)]
63.212
>>> LogNormal.from_p99(median_ms=15.0, p99_ms=80.0).median_ms
15.0
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

if TYPE_CHECKING:
    import numpy as np

#: z such that P(Z <= z) = 0.99 for a standard normal Z (scipy's norm.ppf(0.99)).
Z99 = 2.3263478740408408


def _phi(z: float) -> float:
    """Standard normal CDF (math.erf: importing scipy.stats costs seconds at start-up)."""
    return 0.5 * math.erfc(-z / math.sqrt(2.0))


def _pdf(z: float) -> float:
    return math.exp(-0.5 * z * z) / math.sqrt(2.0 * math.pi)


class _Distribution:
    """What every latency distribution offers on top of its own mean, CDF and sampler."""

    __slots__ = ()

    def mean_until(self, t_ms: float | None) -> float:
        """E[min(L, t)]: the orchestrator's expected wait for one attempt with timeout ``t``."""
        if t_ms is None:
            return self.partial_mean(math.inf)  # type: ignore[attr-defined]
        below = self.partial_mean(t_ms)  # type: ignore[attr-defined]
        return float(below + t_ms * (1.0 - self.cdf(t_ms)))  # type: ignore[attr-defined]


@dataclass(frozen=True, slots=True, kw_only=True)
class Constant(_Distribution):
    """Every attempt takes exactly ``value_ms``."""

    dist: ClassVar[str] = "constant"
    value_ms: float = 0.0
    exponential: ClassVar[bool] = False

    @property
    def mean_ms(self) -> float:
        return self.value_ms

    def cdf(self, t_ms: float) -> float:
        return 1.0 if t_ms >= self.value_ms else 0.0

    def partial_mean(self, t_ms: float) -> float:
        return self.value_ms if t_ms >= self.value_ms else 0.0

    def sample(self, rng: np.random.Generator, size: int) -> np.ndarray:
        import numpy as np  # only simulations sample: loading a model needs no numpy

        return np.full(size, self.value_ms)


@dataclass(frozen=True, slots=True, kw_only=True)
class Uniform(_Distribution):
    """Uniform between ``low_ms`` and ``high_ms``."""

    dist: ClassVar[str] = "uniform"
    low_ms: float
    high_ms: float
    exponential: ClassVar[bool] = False

    @property
    def mean_ms(self) -> float:
        return (self.low_ms + self.high_ms) / 2

    def cdf(self, t_ms: float) -> float:
        if self.high_ms == self.low_ms:
            return 1.0 if t_ms >= self.low_ms else 0.0
        return min(1.0, max(0.0, (t_ms - self.low_ms) / (self.high_ms - self.low_ms)))

    def partial_mean(self, t_ms: float) -> float:
        upper = min(max(t_ms, self.low_ms), self.high_ms)
        if self.high_ms == self.low_ms:
            return self.low_ms if t_ms >= self.low_ms else 0.0
        return (upper**2 - self.low_ms**2) / (2 * (self.high_ms - self.low_ms))

    def sample(self, rng: np.random.Generator, size: int) -> np.ndarray:
        return rng.uniform(self.low_ms, self.high_ms, size)


@dataclass(frozen=True, slots=True, kw_only=True)
class Exponential(_Distribution):
    """Exponential with mean ``mean_ms``: memoryless, so races between them are exact."""

    dist: ClassVar[str] = "exponential"
    mean_ms: float
    exponential: ClassVar[bool] = True

    def cdf(self, t_ms: float) -> float:
        if self.mean_ms == 0:
            return 1.0 if t_ms >= 0 else 0.0
        return -math.expm1(-max(t_ms, 0.0) / self.mean_ms)

    def partial_mean(self, t_ms: float) -> float:
        if self.mean_ms == 0 or t_ms <= 0:
            return 0.0
        m = self.mean_ms
        if math.isinf(t_ms):
            return m
        return m - math.exp(-t_ms / m) * (t_ms + m)

    def sample(self, rng: np.random.Generator, size: int) -> np.ndarray:
        return rng.exponential(self.mean_ms, size)


@dataclass(frozen=True, slots=True, kw_only=True)
class Normal(_Distribution):
    """Normal(``mu_ms``, ``sd_ms``) truncated at 0: negative draws are redrawn, so ``mean_ms``
    is the truncated mean."""

    dist: ClassVar[str] = "normal"
    mu_ms: float
    sd_ms: float
    exponential: ClassVar[bool] = False

    def _mass_above_zero(self) -> float:
        return _phi(self.mu_ms / self.sd_ms) if self.sd_ms else 1.0

    def cdf(self, t_ms: float) -> float:
        if self.sd_ms == 0:
            return 1.0 if t_ms >= self.mu_ms else 0.0
        if t_ms <= 0:
            return 0.0
        below = _phi((t_ms - self.mu_ms) / self.sd_ms) - _phi(-self.mu_ms / self.sd_ms)
        return below / self._mass_above_zero()

    def partial_mean(self, t_ms: float) -> float:
        mu, sd = self.mu_ms, self.sd_ms
        if sd == 0:
            return mu if t_ms >= mu else 0.0
        if t_ms <= 0:
            return 0.0
        a, b = (0.0 - mu) / sd, (t_ms - mu) / sd
        inside = mu * (_phi(b) - _phi(a)) - sd * (_pdf(b) - _pdf(a))
        return inside / self._mass_above_zero()

    @property
    def mean_ms(self) -> float:
        return self.partial_mean(math.inf)

    def sample(self, rng: np.random.Generator, size: int) -> np.ndarray:
        out = rng.normal(self.mu_ms, self.sd_ms, size)
        bad = out < 0
        while bad.any():
            out[bad] = rng.normal(self.mu_ms, self.sd_ms, int(bad.sum()))
            bad = out < 0
        return out


@dataclass(frozen=True, slots=True, kw_only=True)
class LogNormal(_Distribution):
    """Log-normal by its median and shape ``sigma`` (``from_p99`` converts a p99)."""

    dist: ClassVar[str] = "lognormal"
    median_ms: float
    sigma: float
    exponential: ClassVar[bool] = False

    @classmethod
    def from_p99(cls, *, median_ms: float, p99_ms: float) -> LogNormal:
        """The log-normal whose median and 99th percentile are the ones given."""
        return cls(median_ms=median_ms, sigma=math.log(p99_ms / median_ms) / Z99)

    @property
    def mean_ms(self) -> float:
        try:
            return self.median_ms * math.exp(self.sigma**2 / 2)
        except OverflowError:  # sigma above ~37.7: the mean is beyond a float
            return math.inf

    def cdf(self, t_ms: float) -> float:
        if t_ms <= 0:
            return 0.0
        if self.sigma == 0:
            return 1.0 if t_ms >= self.median_ms else 0.0
        return _phi((math.log(t_ms) - math.log(self.median_ms)) / self.sigma)

    def partial_mean(self, t_ms: float) -> float:
        if t_ms <= 0:
            return 0.0
        if self.sigma == 0:
            return self.median_ms if t_ms >= self.median_ms else 0.0
        if math.isinf(t_ms):
            return self.mean_ms
        mu, s = math.log(self.median_ms), self.sigma
        a = math.log(t_ms) - mu
        below = _phi(a / s - s)
        if below > 1e-290 and self.mean_ms < math.inf:  # not subnormal
            return self.mean_ms * below
        # mean * phi(z) far in the tail, where the mean overflows: Mills' ratio, in which
        # exp(mu + s^2 / 2) cancels (z = a / s - s < -37)
        z = a / s - s
        return (
            t_ms
            * math.exp(-a * a / (2 * s * s))
            / (-z * math.sqrt(2 * math.pi))
            * (1 - 1 / (z * z))
        )

    def sample(self, rng: np.random.Generator, size: int) -> np.ndarray:
        return rng.lognormal(math.log(self.median_ms), self.sigma, size)


@dataclass(frozen=True, slots=True, kw_only=True)
class Empirical(_Distribution):
    """Measured samples, drawn uniformly."""

    dist: ClassVar[str] = "empirical"
    samples_ms: tuple[float, ...]
    exponential: ClassVar[bool] = False

    @property
    def mean_ms(self) -> float:
        return sum(self.samples_ms) / len(self.samples_ms)

    def cdf(self, t_ms: float) -> float:
        return sum(1 for s in self.samples_ms if s <= t_ms) / len(self.samples_ms)

    def partial_mean(self, t_ms: float) -> float:
        return sum(s for s in self.samples_ms if s <= t_ms) / len(self.samples_ms)

    def sample(self, rng: np.random.Generator, size: int) -> np.ndarray:
        import numpy as np

        return rng.choice(np.asarray(self.samples_ms, dtype=float), size)


Latency = Constant | Uniform | Exponential | Normal | LogNormal | Empirical
