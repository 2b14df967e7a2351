"""Credentials references resolve only to allowed places, and never to a line break."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from app.config import get_settings
from app.credentials import resolve_secret
from app.drivers.errors import AuthFailed


@pytest.fixture(autouse=True)
def secrets_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    root = tmp_path / "secrets"
    root.mkdir()
    monkeypatch.setenv("WATERLINE_SECRETS_DIR", str(root))
    get_settings.cache_clear()
    yield root
    get_settings.cache_clear()


def test_env_reference(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SWITCH_PASSWORD", "s3cret")
    assert resolve_secret("env:SWITCH_PASSWORD") == "s3cret"


@pytest.mark.parametrize("name", ["WATERLINE_DATABASE_URL", "HOME", "PATH", "AWS_SECRET"])
def test_env_outside_the_allowed_prefixes_is_refused(name: str) -> None:
    with pytest.raises(AuthFailed, match="not allowed"):
        resolve_secret(f"env:{name}")


def test_file_reference_inside_the_secrets_dir(secrets_dir: Path) -> None:
    (secrets_dir / "tor.pass").write_text("pw123\n")
    assert resolve_secret(f"file:{secrets_dir}/tor.pass") == "pw123"


@pytest.mark.parametrize("where", ["/etc/passwd", "/proc/self/environ", "{root}/../x",
                                   "{root}/../../etc/shadow"])
def test_file_outside_the_secrets_dir_is_refused(secrets_dir: Path, where: str) -> None:
    with pytest.raises(AuthFailed, match="not allowed"):
        resolve_secret("file:" + where.format(root=secrets_dir))


def test_big_binary_or_special_files_are_refused(secrets_dir: Path) -> None:
    (secrets_dir / "big").write_bytes(b"x" * 10_000)
    (secrets_dir / "bin").write_bytes(b"\xff\xfe\x00")
    (secrets_dir / "dir").mkdir()
    with pytest.raises(AuthFailed, match="small regular file"):
        resolve_secret(f"file:{secrets_dir}/big")
    with pytest.raises(AuthFailed, match="UTF-8"):
        resolve_secret(f"file:{secrets_dir}/bin")
    with pytest.raises(AuthFailed, match="small regular file"):
        resolve_secret(f"file:{secrets_dir}/dir")


def test_a_secret_with_a_line_break_is_refused(monkeypatch: pytest.MonkeyPatch,
                                                secrets_dir: Path) -> None:
    monkeypatch.setenv("SWITCH_PASSWORD", "pw\nreboot")
    with pytest.raises(AuthFailed, match="control characters") as err:
        resolve_secret("env:SWITCH_PASSWORD")
    assert "reboot" not in str(err.value)  # the error never carries the secret
    (secrets_dir / "p").write_text("a\x1bb")
    with pytest.raises(AuthFailed, match="control characters"):
        resolve_secret(f"file:{secrets_dir}/p")
