"""Start-order rules of the composer that need no engine."""

from __future__ import annotations

from pathlib import Path

from envkit.lifecycle.environment import _chained, _head_start, new_run_id
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
