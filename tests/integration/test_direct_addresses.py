"""Where a run's services are reached: isolated runs on this machine's engine publish no port.

An isolated run on the local engine (whose bridge gateways are addresses of this machine) is
reached at each container's address on the run's network; `up`, kept stacks and
`ENVKIT_ENGINES__PUBLISH_PORTS=always` still publish (a remote engine too: see
test_engines.py's tcp run).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import docker
import httpx
import pytest

import envkit
from envkit.lifecycle.commands import down, running_stack, up
from envkit.lifecycle.environment import Environment
from envkit.scenario.runner import run_isolated
from envkit.spec.settings import EnvkitSettings

HERE = Path(__file__).resolve().parent
MINI = HERE / "stacks" / "mini.toml"
PLUGIN_STACK = HERE.parents[0] / "data" / "plugin-stack" / "stack.toml"


def _published(client: docker.DockerClient, container_id: str) -> dict[str, Any]:
    """What the engine says the container publishes: its bindings asked for and in force."""
    attrs = client.api.inspect_container(container_id)
    asked = attrs["HostConfig"].get("PortBindings") or {}
    bound = {k: v for k, v in (attrs["NetworkSettings"].get("Ports") or {}).items() if v}
    return {"asked": asked, "bound": bound}


def _address(client: docker.DockerClient, container_id: str) -> str:
    """The container's only network address (each run's container is on its run's network)."""
    networks = client.api.inspect_container(container_id)["NetworkSettings"]["Networks"]
    [settings] = networks.values()
    return str(settings["IPAddress"])


def test_an_isolated_tier_b_run_publishes_no_port_and_passes(
    sandbox: Callable[..., EnvkitSettings], engine: docker.DockerClient
) -> None:
    seen: dict[str, Any] = {}

    def look(env: Environment) -> None:  # while the stack runs, before the scenario
        for name, run in env.runs.items():
            assert run.container is not None
            cid = run.container.wrapped.id
            seen[name] = (_published(engine, cid), _address(engine, cid), run.container_port)

    outcome, where = run_isolated(sandbox(), after_start=look)
    assert outcome.verdict == "passed", outcome.failure
    assert len(seen) == 6
    summary = json.loads((where / "summary.json").read_text())["services"]
    for name, (published, address, port) in seen.items():
        assert published == {"asked": {}, "bound": {}}, name  # no NAT rule, no proxy process
        scheme = "postgresql" if name == "postgres" else "http"
        # what the probes, the scenario and the summary used: the address on the run's network
        assert summary[name]["host_url"] == f"{scheme}://{address}:{port}", name
        assert summary[name]["host_port"] == port
        assert not address.startswith("127."), name
    orchestrator = (where / "mgm-tier-b-orchestrator.log").read_text()
    assert f"POST {summary['backend']['host_url']}/" in orchestrator


def test_publishing_can_be_forced_and_is_then_on_loopback_only(
    sandbox: Callable[..., EnvkitSettings], engine: docker.DockerClient
) -> None:
    settings = sandbox(stack=MINI, ENVKIT_ENGINES__PUBLISH_PORTS="always")
    with running_stack(settings, MINI) as env:
        for name, run in env.runs.items():
            assert run.container is not None
            bound = _published(engine, run.container.wrapped.id)["bound"]
            [(key, [binding])] = bound.items()
            assert key == f"{run.container_port}/tcp"
            assert binding["HostIp"] == "127.0.0.1", name
            assert env.endpoints()[name]["host_port"] == int(binding["HostPort"])
            assert env.endpoints()[name]["host_url"].endswith(f"//127.0.0.1:{binding['HostPort']}")
        assert httpx.get(env.endpoints()["api"]["host_url"] + "/health", timeout=5).is_success


def test_up_still_publishes_its_fixed_ports(
    sandbox: Callable[..., EnvkitSettings], engine: docker.DockerClient
) -> None:
    settings = sandbox(ports_from=29720, stack=MINI)  # db 29720, api 29721
    state = up(settings, MINI)
    try:
        assert state.services["api"].host_url == "http://127.0.0.1:29721"
        for name, row in state.services.items():
            assert row.container is not None
            bound = _published(engine, row.container)["bound"]
            assert [(b["HostIp"], b["HostPort"]) for v in bound.values() for b in v] == [
                ("127.0.0.1", str(row.host_port))
            ], name
        assert httpx.get("http://127.0.0.1:29721/health", timeout=5).is_success
    finally:
        down(settings)


@pytest.mark.parametrize("keep", [False, True])
def test_the_python_api_publishes_only_a_stack_it_keeps(
    keep: bool, engine: docker.DockerClient, tmp_path: Path, images: dict[str, Any]
) -> None:
    ref = images["services"].ref
    environ = {
        "ENVKIT_IMAGES__OVERRIDE": f"helix={ref},eventsub={ref}",
        "ENVKIT_ARTIFACT_ROOT": str(tmp_path / "artifacts"),
        "ENVKIT_HISTORY_PATH": str(tmp_path / "history.sqlite"),
        "ENVKIT_CACHE_DIR": str(tmp_path / "cache"),
    }
    stack = envkit.open_stack(PLUGIN_STACK, environ=environ, env_file=tmp_path / "none.env")
    with stack.start(keep=keep) as running:
        try:
            row = running.endpoints["helix"]
            assert row.container is not None
            published = _published(engine, row.container)
            address = _address(engine, row.container)
            assert httpx.get(running.url("helix") + "/health", timeout=10).is_success
        finally:
            if keep:
                running.remove()
    if keep:  # reached later, from anywhere: a published port on loopback
        assert running.url("helix") == f"http://127.0.0.1:{row.host_port}"
        assert published["bound"], published
    else:
        assert running.url("helix") == f"http://{address}:8080"
        assert published == {"asked": {}, "bound": {}}
