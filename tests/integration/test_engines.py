"""envkit on engines other than the local socket: a second dockerd over tcp, and Podman.

The second engine is a dockerd in a network namespace of the session's own (see
`engines.SecondEngine`): it is remote as far as envkit can tell, since its published
ports are only reachable at the namespace's address, never at this machine's 127.0.0.1.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import docker
import pytest

from envkit.engines.engine import ensure_engine
from envkit.errors import EngineError
from envkit.lifecycle.containers import RUN
from envkit.lifecycle.environment import Environment
from envkit.scenario.runner import run_isolated
from envkit.spec.settings import EnvkitSettings
from tests.integration.conftest import ExtraEngine, sandbox_settings
from tests.integration.engines import SecondEngine, engine_processes_left, pointed_at


def _leftovers(client: docker.DockerClient, run_id: str) -> list[str]:
    label = {"label": f"{RUN}={run_id}"}
    return [c.name for c in client.containers.list(all=True, filters=label)] + [
        n.name for n in client.networks.list(filters=label)
    ]


def _green_run_on(
    extra: ExtraEngine, settings: EnvkitSettings, local: docker.DockerClient
) -> tuple[dict[str, Any], list[tuple[str, str]]]:
    """Run tier-b with DOCKER_HOST at `extra`; return the services' rows and port bindings."""
    seen: dict[str, Any] = {}
    bindings: list[tuple[str, str]] = []

    def look(env: Environment) -> None:
        seen.update(env.endpoints())
        for run in env.runs.values():
            assert run.container is not None
            attrs = extra.client.api.inspect_container(run.container.wrapped.id)
            ports = attrs["NetworkSettings"]["Ports"]
            bindings.extend((b["HostIp"], b["HostPort"]) for v in ports.values() for b in v or [])

    with pointed_at(extra.url):
        outcome, where = run_isolated(settings, after_start=look)
    assert outcome.verdict == "passed", outcome.failure
    run_id = where.name
    assert (where / "report.md").read_text().startswith("# tier-b mgm: PASSED")
    assert _leftovers(extra.client, run_id) == []
    assert _leftovers(local, run_id) == []  # nothing of it ever ran on the session's engine
    return seen, bindings


def test_tier_b_is_green_on_a_second_engine_reached_over_tcp(
    second_engine: tuple[SecondEngine, ExtraEngine],
    engine: docker.DockerClient,
    tmp_path: Path,
) -> None:
    netns, extra = second_engine
    rows, bindings = _green_run_on(extra, sandbox_settings(tmp_path), engine)
    # A tcp engine is remote: its containers' addresses are not reached from here, so every
    # URL the scenario and the probes used is at the engine's host address, and every
    # port is published on that address only: not 127.0.0.1, never 0.0.0.0.
    urls = [row["host_url"] for row in rows.values()]
    assert len(urls) == 6
    assert all(f"//{netns.address}:" in url for url in urls), urls
    assert len(bindings) == len(rows)
    assert {ip for ip, _ in bindings} == {netns.address}
    assert set(extra.images) == {"postgres", "services", "reaper"}
    print(
        f"\nsecond engine: started in {extra.start_seconds:.1f} s, "
        f"images produced in {extra.image_seconds:.1f} s"
    )


@pytest.mark.parametrize("port", [2376, 2377])
def test_an_engine_address_with_nothing_listening_is_one_clear_error(
    second_engine: tuple[SecondEngine, ExtraEngine], port: int
) -> None:
    netns, _ = second_engine
    url = f"tcp://{netns.address}:{port}"
    started = time.monotonic()
    with pointed_at(url), pytest.raises(EngineError) as info:
        ensure_engine(timeout=120)
    elapsed = time.monotonic() - started
    message = str(info.value)
    assert message.startswith(f"No Docker engine answers at {url} (from DOCKER_HOST): "), message
    assert "connection refused: nothing listens there" in message
    assert f"`docker -H {url} version` must answer" in message
    assert "point DOCKER_HOST at a reachable engine, or unset it to use the local one" in message
    print(f"\n{url}: refused after {elapsed:.2f} s")


def test_an_address_where_no_host_answers_is_one_clear_error(
    second_engine: tuple[SecondEngine, ExtraEngine],
) -> None:
    netns, _ = second_engine
    # .3 is on the namespace's link but no interface has it: nothing ever answers.
    url = f"tcp://{netns.address.rsplit('.', 1)[0]}.3:2375"
    with pointed_at(url), pytest.raises(EngineError) as info:
        ensure_engine(timeout=120)
    message = str(info.value)
    assert message.startswith(f"No Docker engine answers at {url} (from DOCKER_HOST): "), message
    assert ("no answer within 3 s" in message) or ("no route to that host" in message), message


def test_a_stopped_second_engine_leaves_nothing_behind(settings: EnvkitSettings) -> None:
    engine = SecondEngine()
    try:
        engine.start(settings.timeouts.engine_start_seconds)
        assert engine_processes_left(engine) != []  # it was there
    finally:
        engine.stop()
    assert engine_processes_left(engine) == []


def test_tier_b_on_podman(podman: ExtraEngine, engine: docker.DockerClient, tmp_path: Path) -> None:
    rows, bindings = _green_run_on(podman, sandbox_settings(tmp_path), engine)
    # netavark creates a network's bridge only with its first container: when envkit decides,
    # the gateway is no address here yet, so the run publishes (on loopback only)
    assert all("//127.0.0.1:" in row["host_url"] for row in rows.values())
    assert {ip for ip, _ in bindings} == {"127.0.0.1"}
