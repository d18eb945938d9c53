"""Latency distributions: means, CDFs and partial means agree with their own samples."""

from __future__ import annotations

import math

import numpy as np
import pytest

from sagasim.model import Constant, Empirical, Exponential, LogNormal, Normal, Uniform

DISTRIBUTIONS = [
    Constant(value_ms=5.0),
    Uniform(low_ms=1.0, high_ms=9.0),
    Exponential(mean_ms=10.0),
    Normal(mu_ms=5.0, sd_ms=5.0),
    LogNormal.from_p99(median_ms=15.0, p99_ms=80.0),
    Empirical(samples_ms=(1.0, 2.0, 10.0)),
]


@pytest.mark.statistical
@pytest.mark.parametrize("dist", DISTRIBUTIONS, ids=lambda d: d.dist)
def test_moments_match_samples(dist: object) -> None:
    rng = np.random.default_rng(12345)
    x = dist.sample(rng, 400_000)  # type: ignore[attr-defined]
    assert (x >= 0).all()
    # 99.9 % bounds for a sample mean and a sample proportion with n = 400,000
    sd = float(np.std(x)) or 1e-12
    assert abs(x.mean() - dist.mean_ms) < 3.3 * sd / math.sqrt(len(x))  # type: ignore[attr-defined]
    for t in (2.0, 8.0, 20.0):
        p = dist.cdf(t)  # type: ignore[attr-defined]
        assert abs((x <= t).mean() - p) < 3.3 * math.sqrt(p * (1 - p) / len(x)) + 1e-12
        clipped = np.minimum(x, t)
        bound = 3.3 * (float(np.std(clipped)) or 1e-12) / math.sqrt(len(x))
        assert abs(clipped.mean() - dist.mean_until(t)) < bound  # type: ignore[attr-defined]


@pytest.mark.parametrize("dist", DISTRIBUTIONS, ids=lambda d: d.dist)
def test_mean_until_no_timeout_is_the_mean(dist: object) -> None:
    assert dist.mean_until(None) == pytest.approx(dist.mean_ms)  # type: ignore[attr-defined]
    assert dist.partial_mean(math.inf) == pytest.approx(dist.mean_ms)  # type: ignore[attr-defined]


def test_lognormal_from_p99_puts_the_p99_where_asked() -> None:
    d = LogNormal.from_p99(median_ms=15.0, p99_ms=80.0)
    assert d.cdf(80.0) == pytest.approx(0.99)
    assert d.cdf(15.0) == pytest.approx(0.5)


def test_normal_mean_is_the_truncated_mean() -> None:
    d = Normal(mu_ms=0.0, sd_ms=1.0)
    assert d.mean_ms == pytest.approx(math.sqrt(2 / math.pi))  # half-normal mean
