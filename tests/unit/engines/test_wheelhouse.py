"""The host-side wheelhouse: named by its inputs, reused when complete, never left half-made."""

from __future__ import annotations

import platform
from pathlib import Path

import pytest

from envkit.engines import wheelhouse
from envkit.engines.wheelhouse import ensure_wheelhouse, wheelhouse_key
from envkit.errors import StepError


@pytest.fixture
def inputs(tmp_path: Path) -> tuple[Path, Path]:
    requirements = tmp_path / "requirements.txt"
    constraints = tmp_path / "constraints.txt"
    requirements.write_text("httpx\n")
    constraints.write_text("httpx==0.28.1\n")
    return requirements, constraints


def test_the_key_names_python_and_machine_and_follows_every_input(
    inputs: tuple[Path, Path],
) -> None:
    requirements, constraints = inputs
    key = wheelhouse_key(requirements, constraints, "3.11")
    assert key.startswith(f"cp311-{platform.machine()}-")
    assert key == wheelhouse_key(requirements, constraints, "3.11")
    assert key != wheelhouse_key(requirements, constraints, "3.12")
    constraints.write_text("httpx==0.28.0\n")
    assert key != wheelhouse_key(requirements, constraints, "3.11")


def test_a_complete_wheelhouse_is_reused_without_downloading(
    inputs: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    downloads: list[Path] = []

    def fake_download(requirements: Path, constraints: Path, python: str, dest: Path) -> None:
        downloads.append(dest)
        (dest / "httpx-0.28.1-py3-none-any.whl").write_bytes(b"wheel")

    monkeypatch.setattr(wheelhouse, "_download", fake_download)
    first = ensure_wheelhouse(*inputs, "3.11", tmp_path / "cache")
    assert first == tmp_path / "cache" / "wheelhouse" / wheelhouse_key(*inputs, "3.11")
    assert sorted(p.name for p in first.iterdir()) == [
        ".complete",
        "httpx-0.28.1-py3-none-any.whl",
        "requirements.txt",
    ]
    assert ensure_wheelhouse(*inputs, "3.11", tmp_path / "cache") == first
    assert len(downloads) == 1
    assert [p.name for p in first.parent.iterdir()] == [first.name]  # no staging left


def test_a_wheelhouse_without_its_completion_mark_is_made_again(
    inputs: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "cache" / "wheelhouse" / wheelhouse_key(*inputs, "3.11")
    target.mkdir(parents=True)
    (target / "half.whl").write_bytes(b"cut short")
    monkeypatch.setattr(wheelhouse, "_download", lambda *args: None)
    assert ensure_wheelhouse(*inputs, "3.11", tmp_path / "cache") == target
    assert sorted(p.name for p in target.iterdir()) == [".complete", "requirements.txt"]


def test_a_failed_download_says_what_to_check_and_leaves_nothing(
    inputs: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    requirements, constraints = inputs
    requirements.write_text("@@@ not a requirement\n")  # pip refuses it before any download
    monkeypatch.setenv("PIP_NO_INDEX", "1")  # and would never reach a package index anyway
    with pytest.raises(StepError) as info:
        ensure_wheelhouse(requirements, constraints, "3.11", tmp_path / "cache")
    message = str(info.value)
    assert message.startswith("Step 'wheelhouse' failed: ")
    assert "Invalid requirement: '@@@ not a requirement'" in message
    assert message.endswith(
        "pip could not fetch a wheel for the services image. Check that PyPI is reachable from "
        f"this machine and that every package in {requirements} ships wheels."
    )
    assert list((tmp_path / "cache" / "wheelhouse").iterdir()) == []
