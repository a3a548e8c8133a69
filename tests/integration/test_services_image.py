"""The services image against a real engine: every service starts and a hand-driven Tier A + B.

The stack here is wired by hand with docker-py (the composer is not used), with
the environments `compose/tier-b.toml` resolves from the settings.
"""

from __future__ import annotations

import os
import tomllib
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import docker
import httpx
import pytest

from envkit.engines.engine import engine_host
from envkit.engines.images import ImageResult
from envkit.services.common.health import health_body
from envkit.spec.settings import EnvkitSettings
from envkit.spec.stack import load_stack, resolve_stack

STACK = Path(__file__).resolve().parents[2] / "compose" / "tier-b.toml"
ORDER = ["postgres", "backend", "mock-eventsub", "mock-jwt", "mock-helix", "synthetic-desktop"]
VIEWER = "4145994"


@pytest.fixture(scope="module")
def stack(
    settings: EnvkitSettings,
    images: dict[str, ImageResult],
    engine: docker.DockerClient,
    wait_for_http: Callable[..., None],
) -> Iterator[dict[str, str]]:
    """All six MGM containers on a private network; yields each service's host URL."""
    spec = tomllib.loads(STACK.read_text())["services"]
    resolved = resolve_stack(load_stack(STACK), settings)
    run = uuid.uuid4().hex[:8]
    labels = {"envkit.run": f"pytest-{run}", "envkit.owner_pid": str(os.getpid())}
    network = engine.networks.create(f"envkit-test-{run}", labels=labels)
    containers: list[Any] = []
    urls: dict[str, str] = {}
    try:
        for name in ORDER:
            service = spec[name]
            container = engine.containers.run(
                images[service["image"]].ref,
                service.get("command"),
                name=f"envkit-test-{run}-{name}",
                environment=resolved[name].env,
                labels=labels,
                network=network.name,
                ports={f"{service['port']}/tcp": ("127.0.0.1", None)},
                tmpfs=service.get("tmpfs", {}),
                detach=True,
            )
            network.disconnect(container)
            network.connect(container, aliases=[name])
            containers.append(container)
            container.reload()
            port = container.ports[f"{service['port']}/tcp"][0]["HostPort"]
            urls[name] = f"http://{engine_host()}:{port}"
            if name == "backend":
                wait_for_http(urls[name] + "/health/ready", container)
            elif name != "postgres":
                wait_for_http(urls[name] + "/health", container)
        yield urls
    finally:
        for container in reversed(containers):
            container.remove(force=True)
        network.remove()


@pytest.mark.parametrize("name", ORDER[1:])
def test_each_service_answers_health_from_the_image(stack: dict[str, str], name: str) -> None:
    answer = httpx.get(stack[name] + "/health", timeout=5)
    assert answer.status_code == 200
    assert answer.json() == health_body(name)  # the MGM mocks' exact bodies


def test_hand_driven_tier_a_and_tier_b(stack: dict[str, str], settings: EnvkitSettings) -> None:
    backend, helix, desktop = stack["backend"], stack["mock-helix"], stack["synthetic-desktop"]
    api_key = {"X-MGM-ApiKey": settings.mgm.api_key.get_secret_value()}
    for mock in ("mock-eventsub", "mock-jwt", "mock-helix", "synthetic-desktop"):
        assert httpx.post(stack[mock] + "/reset", timeout=5).status_code == 200

    # Tier A: the viewer enrolls from chat, and the pool shows it through their extension JWT.
    emitted = httpx.post(
        stack["mock-eventsub"] + "/emit",
        json={"text": "!twgold Arthas", "chatterUserId": VIEWER, "chatterName": "viewer32"},
        timeout=10,
    ).json()
    assert emitted["delivered"] is True, emitted
    token = httpx.get(
        stack["mock-jwt"] + "/token", params={"userId": VIEWER, "role": "viewer"}, timeout=5
    ).json()["access_token"]
    bearer = {"Authorization": f"Bearer {token}"}
    me = httpx.get(backend + "/api/pool/me", headers=bearer, timeout=5).json()
    assert me == {"isEnrolled": True, "characterName": "Arthas"}

    # Tier B: harness payout, desktop choreography, exactly one chat announcement via Helix.
    prepared = httpx.post(
        backend + "/api/e2e/prepare-pending-payout",
        json={"twitchUserId": VIEWER},
        headers=api_key,
        timeout=5,
    )
    assert prepared.status_code == 200, prepared.text
    payout = prepared.json()
    assert payout["characterName"] == "Arthas"
    run = httpx.post(
        desktop + "/run-sequence",
        json={"payoutId": payout["payoutId"], "characterName": "Arthas"},
        timeout=30,
    ).json()
    assert run["ok"] is True, run
    assert [s["statusCode"] for s in run["steps"]] == [200, 200, 200]

    requests = httpx.get(helix + "/requests", timeout=5).json()
    chats = [r for r in requests if r["path"] == "/helix/chat/messages"]
    assert len(chats) == 1, requests
    chat = chats[0]
    assert chat["authorized"] is True
    assert chat["credentialsMatch"] is True
    assert chat["clientId"] == settings.twitch.helix_client_id
    assert chat["body"]["broadcaster_id"] == settings.twitch.broadcaster_user_id
    assert chat["body"]["sender_id"] == settings.twitch.broadcaster_user_id
    assert "Arthas" in chat["body"]["message"]

    assert httpx.get(desktop + "/last-run", timeout=5).json()["ok"] is True
    after = httpx.get(backend + "/api/pool/me", headers=bearer, timeout=5).json()
    assert after["isEnrolled"] is False


def test_the_image_loads_its_code_from_bytecode_that_matches(
    images: dict[str, ImageResult], engine: docker.DockerClient
) -> None:
    """No module is compiled at start: the image cannot write bytecode, so a .pyc that is
    missing or stale for its source would be recompiled by every start of every service."""
    modules = [f"services.{package}.{module}" for package, module in (
        ("backend", "app"), ("backend", "models"), ("mock_eventsub", "app"),
        ("mock_eventsub", "models"), ("mock_helix", "app"), ("mock_helix", "models"),
        ("mock_jwt", "app"), ("mock_jwt", "models"), ("synthetic_desktop", "app"),
        ("synthetic_desktop", "models"),
    )]  # fmt: skip
    script = (
        "import importlib, httpx, uvicorn, uvicorn.protocols.http.h11_impl, services.__main__\n"
        f"for name in {modules!r}: importlib.import_module(name)\n"
    )
    verbose = engine.containers.run(
        images["services"].ref,
        ["-v", "-c", script],
        entrypoint="python3",
        labels={"envkit.owner_pid": str(os.getpid())},
        remove=True,
        stdout=False,
        stderr=True,
    ).decode(errors="replace")
    loaded = [line for line in verbose.splitlines() if line.startswith("# code object from ")]
    from_source = [line for line in loaded if not line.endswith(".pyc'")]
    assert from_source == [], "compiled at start:\n" + "\n".join(from_source[:20])
    assert any("/app/services/backend/__pycache__/models." in line for line in loaded)
    assert len(loaded) > 300  # the stdlib's, the venv's and the services' modules all counted
