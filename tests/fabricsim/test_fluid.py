"""DCQCN fluid model against Zhu et al. (CoNEXT'16): the paper's validation table.

40G, Kmin/Kmax/Pmax 5 KB/200 KB/1%, R_AI 40 Mbps, g 1/256, tau 50 us, tau' 55 us, T 55 us,
B 10 MB, F 5 (the defaults of run_fluid).
"""

from __future__ import annotations

import pytest

from fabricsim.fluid import p_star, q_star_bytes, run_fluid

KMIN, KMAX, PMAX = 5_000, 200_000, 0.01


@pytest.fixture(scope="module")
def short_delay() -> dict[int, dict]:
    return {n: run_fluid(n, 40, 4.0, KMIN, KMAX, PMAX, duration_ms=100) for n in (2, 4, 8, 16)}


@pytest.mark.parametrize("n", [2, 4, 8, 16])
def test_full_utilisation_and_fixed_point(short_delay: dict[int, dict], n: int) -> None:
    out = short_delay[n]
    assert out["utilisation"] >= 0.99
    ps = p_star(n, 40)
    assert out["p_star"] == pytest.approx(ps)
    q = out["queue_mean_bytes"]
    if ps < PMAX:
        assert q == pytest.approx(q_star_bytes(ps, KMIN, KMAX, PMAX), rel=0.25)
    else:
        assert q == pytest.approx(KMAX, rel=0.1)  # pinned near Kmax


def test_queue_grows_with_flow_count(short_delay: dict[int, dict]) -> None:
    means = [short_delay[n]["queue_mean_bytes"] for n in (2, 4, 8, 16)]
    assert means == sorted(means) and means[0] < means[-1] / 4


def test_fair_share_from_unequal_start() -> None:
    out = run_fluid(4, 40, 4.0, KMIN, KMAX, PMAX, duration_ms=100,
                    initial_rate_fractions=[1.0, 0.5, 0.2, 0.05])
    assert out["jain_fairness"] > 0.999
    for rate in out["rates_gbps"]:
        assert rate == pytest.approx(10.0, rel=0.02)


def test_long_feedback_delay_oscillates() -> None:
    out = run_fluid(10, 40, 85.0, KMIN, KMAX, PMAX, duration_ms=100)
    assert out["queue_std_bytes"] > 0.3 * out["queue_mean_bytes"]
    assert out["utilisation"] < 0.99


def test_smaller_rai_and_larger_kmax_cure_the_oscillation() -> None:
    base = run_fluid(10, 40, 85.0, KMIN, KMAX, PMAX, duration_ms=100)
    cured = run_fluid(10, 40, 85.0, KMIN, 1_000_000, PMAX, rai_mbps=10, duration_ms=100)
    assert cured["queue_std_bytes"] < 0.15 * cured["queue_mean_bytes"]
    assert cured["queue_mean_bytes"] > base["queue_mean_bytes"]
    assert cured["utilisation"] >= 0.99


def test_rejects_bad_input() -> None:
    with pytest.raises(ValueError):
        run_fluid(0)
    with pytest.raises(ValueError):
        run_fluid(2, pmax=0.0)
    with pytest.raises(ValueError):
        run_fluid(2, kmin_bytes=10, kmax_bytes=5)
