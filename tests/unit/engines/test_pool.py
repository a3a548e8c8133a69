"""The engine pool: the setting's validation and slot allocation across threads and processes."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from envkit.engines.engine import Endpoint
from envkit.engines.pool import EnginePool, pool_endpoints
from envkit.errors import EngineError, SettingsError
from envkit.spec.settings import load_settings

A = Endpoint("unix:///var/run/docker.sock", "test")
B = Endpoint("tcp://10.99.3.2:2375", "test")


def test_the_pool_setting_keeps_its_endpoints_in_order_without_repeats() -> None:
    settings = load_settings(
        env_file=None,
        environ={
            "ENVKIT_ENGINES__POOL": f" {A.url} ,{B.url},{A.url}",
            "ENVKIT_ENGINES__PER_ENGINE": "2",
        },
    )
    assert settings.engines.pool_list() == [A.url, B.url]
    assert settings.engines.per_engine == 2


@pytest.mark.parametrize(
    ("bad", "why"),
    [
        ("10.99.3.2:2375", "does not start with unix://, tcp://, ssh://"),
        ("tcp://10.99.3.2", "names no port"),
        ("tcp://:2375", "names no host"),
        ("tcp://host:99999", "has a port that is not a number from 1 to 65535"),
        ("unix://relative.sock", "names no absolute socket path"),
    ],
)
def test_a_bad_endpoint_in_the_pool_is_named_with_the_setting(bad: str, why: str) -> None:
    with pytest.raises(SettingsError) as caught:
        load_settings(env_file=None, environ={"ENVKIT_ENGINES__POOL": f"{A.url},{bad}"})
    text = str(caught.value)
    assert "ENVKIT_ENGINES__POOL" in text
    assert f"{bad!r} {why}" in text
    assert "as DOCKER_HOST takes them" in text


def test_per_engine_must_be_at_least_one() -> None:
    with pytest.raises(SettingsError, match="ENVKIT_ENGINES__PER_ENGINE"):
        load_settings(env_file=None, environ={"ENVKIT_ENGINES__PER_ENGINE": "0"})


def test_a_bad_engine_flag_names_the_flag() -> None:
    with pytest.raises(EngineError, match=r"--engine: 'docker\.example' does not start with"):
        pool_endpoints([], "docker.example")


def test_pool_without_a_pool_setting_says_what_to_set() -> None:
    with pytest.raises(EngineError, match="ENVKIT_ENGINES__POOL, which is empty"):
        pool_endpoints([], spread=True)


def test_the_flag_wins_over_the_pool_and_the_pool_over_the_current_engine() -> None:
    assert [e.url for e in pool_endpoints([A.url, B.url], B.url)] == [B.url]
    assert [(e.url, e.origin) for e in pool_endpoints([A.url, B.url])] == [
        (A.url, "ENVKIT_ENGINES__POOL"),
        (B.url, "ENVKIT_ENGINES__POOL"),
    ]


def test_slots_spread_over_the_engines_and_never_exceed_k(tmp_path: Path) -> None:
    pool = EnginePool([A, B], per_engine=2, lock_dir=tmp_path)
    held = [pool.try_slot() for _ in range(4)]
    assert all(h is not None for h in held)
    slots = [h[0] for h in held if h is not None]
    # Each engine gets a first run before either gets a second one.
    assert {s.endpoint.url for s in slots[:2]} == {A.url, B.url}
    assert sorted((s.endpoint.url, s.index) for s in slots) == sorted(
        (e.url, i) for e in (A, B) for i in (0, 1)
    )
    assert pool.try_slot() is None  # 2 engines x K=2: full
    assert pool.busy() == {A.url: 2, B.url: 2}
    _, lock = held[0]  # type: ignore[misc]
    lock.release()
    again = pool.try_slot()
    assert again is not None
    assert again[0] == slots[0]
    assert pool.busy() == {A.url: 2, B.url: 2}


def _holder(tmp_path: Path) -> subprocess.Popen[str]:
    code = textwrap.dedent(
        f"""
        import sys, time
        from pathlib import Path
        from envkit.engines.engine import Endpoint
        from envkit.engines.pool import EnginePool
        pool = EnginePool([Endpoint({A.url!r}, "test")], 1, Path({str(tmp_path)!r}))
        found = pool.try_slot()
        print("HELD" if found else "NONE", flush=True)
        time.sleep(600)
        """
    )
    return subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)


def test_a_slot_held_by_another_process_is_freed_when_that_process_is_killed(
    tmp_path: Path,
) -> None:
    pool = EnginePool([A], per_engine=1, lock_dir=tmp_path)
    child = _holder(tmp_path)
    try:
        assert child.stdout is not None
        assert child.stdout.readline().strip() == "HELD"
        assert pool.try_slot() is None  # K=1 and the other process has it
        assert pool.busy() == {A.url: 1}
    finally:
        child.kill()  # SIGKILL: no cleanup of its own; the kernel drops its lock
        child.wait(timeout=30)
    found = pool.try_slot()
    assert found is not None
    assert found[0].endpoint == A
