"""Workload CDFs: the shipped files, sampling by linear interpolation, Poisson arrivals."""

from __future__ import annotations

import numpy as np
import pytest

from fabricsim.workloads import load_cdf, parse_cdf, poisson_arrivals


@pytest.mark.parametrize(("name", "mean_bytes"), [
    ("websearch", 1.7e6), ("hadoop", 120e3), ("alistorage2019", 41e3)])
def test_cdf_means_match_reference(name: str, mean_bytes: float) -> None:
    cdf = load_cdf(name)
    assert cdf.cum[0] == 0 and cdf.cum[-1] == 1
    assert cdf.mean_bytes == pytest.approx(mean_bytes, rel=0.05)


def test_sampling_follows_the_cdf() -> None:
    cdf = load_cdf("alistorage2019")
    sizes = cdf.sample(np.random.default_rng(1), 200_000)
    for size, cum in [(4000, 0.2293), (8000, 0.6921), (32000, 0.9047)]:
        assert np.mean(sizes <= size) == pytest.approx(cum, abs=0.01)
    assert sizes.mean() == pytest.approx(cdf.mean_bytes, rel=0.05)


def test_poisson_arrivals_offer_the_load() -> None:
    cdf = load_cdf("hadoop")
    t, sizes = poisson_arrivals(np.random.default_rng(2), cdf, speed_gbps=100, load=0.5,
                                duration_s=0.2)
    assert np.all(np.diff(t) >= 0) and t[-1] < 0.2
    offered = sizes.sum() * 8 / 0.2 / 100e9
    assert offered == pytest.approx(0.5, rel=0.2)
    gaps = np.diff(t)
    assert gaps.std() / gaps.mean() == pytest.approx(1.0, rel=0.1)  # exponential gaps


def test_parse_cdf_rejects_garbage() -> None:
    with pytest.raises(ValueError):
        parse_cdf("0 0\n100 50\n", "half")
    with pytest.raises(ValueError):
        parse_cdf("0 0\n100 60\n50 100\n", "unsorted")
    with pytest.raises(ValueError):
        parse_cdf("0 0 0\n", "columns")
    with pytest.raises(ValueError):
        load_cdf("nope")
