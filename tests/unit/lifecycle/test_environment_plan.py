"""Start-order rules of the composer that need no engine."""

from __future__ import annotations

from pathlib import Path

import pytest

from envkit.engines.engine import current_endpoint
from envkit.errors import SettingsError
from envkit.lifecycle.environment import _chained, _head_start, new_run_id, reached_directly
from envkit.spec.settings import load_settings
from envkit.spec.stack import load_stack, resolve_stack

ROOT = Path(__file__).resolve().parents[3]


def test_services_others_wait_on_get_a_head_start_and_cpu_weight() -> None:
    stack = load_stack(ROOT / "compose" / "tier-b.toml")
    services = resolve_stack(stack, load_settings(env_file=None, environ={}, stack=stack.source))
    assert _head_start(services) == ["postgres"]
    assert _chained(services) == {"postgres", "backend"}


def test_a_stack_without_dependencies_has_no_head_start(tmp_path: Path) -> None:
    stack_file = tmp_path / "flat.toml"
    stack_file.write_text(
        '[stack]\nname = "flat"\n\n'
        '[services.a]\nimage = "redis:7"\nlog = "a.log"\n\n'
        '[services.b]\nimage = "redis:7"\nlog = "b.log"\n'
    )
    services = resolve_stack(load_stack(stack_file), load_settings(env_file=None, environ={}))
    assert _head_start(services) == []
    assert _chained(services) == set()


def test_run_ids_are_unique_and_name_the_stack() -> None:
    ids = {new_run_id("mgm") for _ in range(50)}
    assert len(ids) == 50
    assert all(i.startswith("mgm-") for i in ids)


@pytest.mark.parametrize(
    ("mode", "publish_ports", "environ", "direct"),
    [
        ("isolated", "auto", {}, True),
        ("isolated", "always", {}, False),  # the setting forces publishing
        ("up", "auto", {}, False),  # fixed ports are `up`'s contract
        ("keep", "auto", {}, False),  # a kept stack is reached later, from anywhere
        ("isolated", "auto", {"DOCKER_HOST": "tcp://10.99.0.2:2375"}, False),  # remote engine
    ],
)  # fmt: skip
def test_only_an_isolated_run_on_a_reachable_engine_skips_publishing(
    mode: str, publish_ports: str, environ: dict[str, str], direct: bool
) -> None:
    endpoint = current_endpoint({"DOCKER_CONTEXT": "default", **environ})
    # 127.0.0.1 stands for a bridge gateway on this machine (binding to it succeeds)
    assert reached_directly(mode, publish_ports, endpoint, "127.0.0.1") is direct  # type: ignore[arg-type]


def test_publishing_is_automatic_unless_the_setting_says_always() -> None:
    assert load_settings(env_file=None, environ={}).engines.publish_ports == "auto"
    forced = load_settings(env_file=None, environ={"ENVKIT_ENGINES__PUBLISH_PORTS": "always"})
    assert forced.engines.publish_ports == "always"
    with pytest.raises(SettingsError) as info:
        load_settings(env_file=None, environ={"ENVKIT_ENGINES__PUBLISH_PORTS": "never"})
    assert "ENVKIT_ENGINES__PUBLISH_PORTS" in str(info.value)
    assert "'auto' or 'always'" in str(info.value)
