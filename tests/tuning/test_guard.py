"""The waterline guard with real numbers: published baselines pass, nonsense is refused with a
reason, app's pydantic Waterlines can be passed, tuning imports nothing from app."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from app.drivers.models import Waterlines
from tuning.guard import GuardError, Refusal, Waterline, check_waterlines, validate_or_raise
from tuning.headroom import compute_headroom

MB32 = 32 * 1024 * 1024
H100 = compute_headroom(100, 40, 9100)  # xoff 92160, xon 18432, size 110592


def fields(refusals: list[Refusal]) -> list[str]:
    return [r.field for r in refusals]


def test_published_baselines_pass() -> None:
    # HPCC / Alibaba production at 100G: Kmin 100 KB x 4, Kmax 400 KB x 4, Pmax 20 %.
    hpcc = Waterline(kmin_bytes=400_000, kmax_bytes=1_600_000, pmax=0.2,
                     xoff_bytes=H100.xoff_bytes, xon_bytes=H100.xon_bytes,
                     headroom_bytes=H100.size_bytes, alpha=1 / 8)
    assert check_waterlines(hpcc, speed_gbps=100, buffer_bytes=MB32, cable_m=40) == []
    # SONiC's default lossless WRED profile: 1 MiB / 2 MiB / 5 %.
    sonic = Waterline(kmin_bytes=1_048_576, kmax_bytes=2_097_152, pmax=0.05)
    assert check_waterlines(sonic, speed_gbps=100, buffer_bytes=MB32, cable_m=5) == []
    # DCQCN paper at 40G: 5 KB / 200 KB / 1 %.
    dcqcn = Waterline(kmin_bytes=5_000, kmax_bytes=200_000, pmax=0.01)
    assert check_waterlines(dcqcn, speed_gbps=40, buffer_bytes=12 * 1024 * 1024, cable_m=5) == []
    # The Broadcom-style profile's headroom (177,632 + 2,288 B) covers the formula's size.
    brcm = Waterline(kmin_bytes=7_000, kmax_bytes=500_000, pmax=0.3, xoff_bytes=177_632,
                     xon_bytes=2_288)
    assert check_waterlines(brcm, speed_gbps=100, buffer_bytes=MB32, cable_m=40) == []


def test_app_waterlines_are_accepted() -> None:
    w = Waterlines(kmin_bytes=400_000, kmax_bytes=1_600_000, pmax=0.2, xoff_bytes=92_160,
                   xon_bytes=18_432, headroom_bytes=110_592, alpha=0.125)
    assert check_waterlines(w, speed_gbps=100, buffer_bytes=MB32, cable_m=40) == []
    validate_or_raise(w, speed_gbps=100, buffer_bytes=MB32, cable_m=40)


@pytest.mark.parametrize(
    ("update", "field", "reason"),
    [
        ({"kmin_bytes": 1_600_000}, "kmin_bytes", "below Kmax"),
        ({"kmin_bytes": 2_000_000}, "kmin_bytes", "below Kmax"),
        ({"kmin_bytes": 0}, "kmin_bytes", "positive"),
        ({"kmin_bytes": -5}, "kmin_bytes", "positive"),
        ({"kmin_bytes": 1000.5}, "kmin_bytes", "whole number"),
        ({"kmax_bytes": 5_000_000}, "kmax_bytes", "buffer share"),
        ({"kmax_bytes": 10**10}, "kmax_bytes", "larger than the switch buffer"),
        ({"pmax": 0.0}, "pmax", "(0, 1]"),
        ({"pmax": 1.01}, "pmax", "(0, 1]"),
        ({"pmax": float("nan")}, "pmax", "(0, 1]"),
        ({"xon_bytes": 92_160}, "xon_bytes", "below xoff"),
        ({"xoff_bytes": 50_000, "headroom_bytes": 68_432}, "headroom_bytes", "headroom formula"),
        ({"xoff_bytes": 50_000, "headroom_bytes": 200_000}, "xoff_bytes", "formula's xoff"),
        ({"headroom_bytes": None, "xon_bytes": None}, "headroom_bytes", "required"),
        # the reviewer's 10 MB xoff under a 218 KB headroom
        ({"xoff_bytes": 10_000_000, "headroom_bytes": 218_112}, "headroom_bytes",
         "below xoff + xon (10018432 B)"),
        ({"xoff_bytes": 100_000, "headroom_bytes": 110_592}, "headroom_bytes",
         "below xoff + xon (118432 B)"),
        ({"alpha": 0.3}, "alpha", "power of two"),
        ({"alpha": 16.0}, "alpha", "1/128..8"),
        ({"alpha": 2.0**-8}, "alpha", "1/128..8"),
        ({"alpha": -1.0}, "alpha", "positive"),
    ],
)
def test_refusals(update: dict[str, object], field: str, reason: str) -> None:
    base = {"kmin_bytes": 400_000, "kmax_bytes": 1_600_000, "pmax": 0.2, "xoff_bytes": 92_160,
            "xon_bytes": 18_432, "headroom_bytes": 110_592, "alpha": 0.125}
    w = Waterline(**{**base, **update})  # type: ignore[arg-type]
    refusals = check_waterlines(w, speed_gbps=100, buffer_bytes=MB32, cable_m=40)
    assert field in fields(refusals), refusals
    assert any(reason in r.reason for r in refusals if r.field == field), refusals
    with pytest.raises(GuardError) as exc:
        validate_or_raise(w, speed_gbps=100, buffer_bytes=MB32, cable_m=40)
    assert exc.value.refusals == refusals
    assert field in str(exc.value)


def test_headroom_depends_on_cable_and_speed() -> None:
    w = Waterline(kmin_bytes=400_000, kmax_bytes=1_600_000, pmax=0.2, xoff_bytes=92_160,
                  xon_bytes=18_432, headroom_bytes=110_592)
    assert check_waterlines(w, speed_gbps=100, buffer_bytes=MB32, cable_m=40) == []
    long_cable = check_waterlines(w, speed_gbps=100, buffer_bytes=MB32, cable_m=300)
    assert "headroom_bytes" in fields(long_cable) and "xoff_bytes" in fields(long_cable)
    faster = check_waterlines(w, speed_gbps=400, buffer_bytes=MB32, cable_m=40)
    assert "headroom_bytes" in fields(faster)
    bad_speed = check_waterlines(w, speed_gbps=33, buffer_bytes=MB32, cable_m=40)
    assert "unsupported port speed" in bad_speed[0].reason


def test_share_and_buffer_parameters() -> None:
    w = Waterline(kmin_bytes=400_000, kmax_bytes=6_400_000, pmax=0.2)
    # HPCC's 400G Kmax (6.4 MB) needs a 64 MB buffer at the default 1/8 share.
    assert check_waterlines(w, speed_gbps=400, buffer_bytes=MB32, cable_m=5) != []
    assert check_waterlines(w, speed_gbps=400, buffer_bytes=64 * 1024 * 1024, cable_m=5) == []
    assert check_waterlines(w, speed_gbps=400, buffer_bytes=MB32, cable_m=5,
                            kmax_share=0.25) == []
    assert fields(check_waterlines(w, speed_gbps=400, buffer_bytes=0, cable_m=5)) == [
        "buffer_bytes"]
    assert fields(check_waterlines(w, speed_gbps=400, buffer_bytes=MB32, cable_m=5,
                                   kmax_share=2)) == ["kmax_share"]


def test_tuning_imports_nothing_from_app() -> None:
    root = Path(__file__).resolve().parents[2] / "tuning"
    for path in root.glob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            assert not any(n == "app" or n.startswith("app.") for n in names), path
