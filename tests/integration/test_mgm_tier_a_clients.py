"""The MGM project's Tier A clients, as they behave, against envkit's services image.

The MGM workflow starts its mocks with little configuration: mock-eventsub and
mock-jwt here get nothing but `ASPNETCORE_URLS`. mock-eventsub shares the
backend container's network namespace, so its default `Backend__BaseUrl`
(`http://127.0.0.1:8080`) is the backend; the backend runs in Development with
no extension secret and the mock's documented demo EventSub secret.

The Tier A sender is emulated with the standard library, as MGM's script does:
a minimal `channel.chat.message` body, a Unix-seconds timestamp and no
`Twitch-Eventsub-Message-Type` header, posted to the relay. The gate mints a
token for `e2e-viewer-1` and reads `GET /api/pool/me`. Both are the stand-ins in
`tests/mgm_project/ci/`; `test_mgm_project_scripts.py` runs them against `up`.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import subprocess
import sys
import tomllib
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import docker
import pytest

from envkit.engines.engine import engine_host
from envkit.engines.images import ImageResult
from envkit.spec.settings import EnvkitSettings
from envkit.spec.stack import load_stack, resolve_stack

STACK = Path(__file__).resolve().parents[2] / "compose" / "tier-b.toml"
DEMO_EVENTSUB_SECRET = "demo-eventsub-secret-0001"  # mock-eventsub's documented default
VIEWER = "e2e-viewer-1"
CHARACTER = "Etoehero"
CI = Path(__file__).resolve().parents[1] / "mgm_project" / "ci"


def _http(
    method: str, url: str, body: bytes | None = None, headers: dict[str, str] | None = None
) -> tuple[int, str]:
    request = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def _published(container: Any, port: int) -> str:
    container.reload()
    host_port = container.ports[f"{port}/tcp"][0]["HostPort"]
    return f"http://{engine_host()}:{host_port}"


@pytest.fixture(scope="module")
def stack(
    settings: EnvkitSettings,
    images: dict[str, ImageResult],
    engine: docker.DockerClient,
    wait_for_http: Callable[..., None],
) -> Iterator[dict[str, Any]]:
    """PostgreSQL, the backend, and the two mocks configured by ASPNETCORE_URLS alone."""
    spec = tomllib.loads(STACK.read_text())["services"]
    resolved = resolve_stack(load_stack(STACK), settings)
    run = uuid.uuid4().hex[:8]
    labels = {"envkit.run": f"pytest-{run}", "envkit.owner_pid": str(os.getpid())}
    network = engine.networks.create(f"envkit-test-{run}", labels=labels)
    containers: list[Any] = []

    def start(name: str, image: str, command: list[str], **options: Any) -> Any:
        container = engine.containers.run(
            images[image].ref,
            command,
            name=f"envkit-test-{run}-{name}",
            labels=labels,
            detach=True,
            **options,
        )
        containers.append(container)
        return container

    try:
        postgres = start(
            "postgres",
            "postgres",
            spec["postgres"].get("command"),
            environment=resolved["postgres"].env,
            network=network.name,
            tmpfs=spec["postgres"].get("tmpfs", {}),
        )
        network.disconnect(postgres)
        network.connect(postgres, aliases=["postgres"])
        backend_env = {
            **resolved["backend"].env,
            "ASPNETCORE_ENVIRONMENT": "Development",
            "Twitch__EventSubSecret": DEMO_EVENTSUB_SECRET,
            "Twitch__ExtensionSecret": "",
            "Twitch__ExtensionClientId": "",
            "Twitch__BroadcasterUserId": "e2e-ci-broadcaster",
        }
        backend = start(
            "backend",
            "services",
            ["backend"],
            environment=backend_env,
            network=network.name,
            # mock-eventsub listens on 9051 inside the backend's network namespace.
            ports={"8080/tcp": ("127.0.0.1", None), "9051/tcp": ("127.0.0.1", None)},
        )
        eventsub = start(
            "mock-eventsub",
            "services",
            ["mock-eventsub"],
            environment={"ASPNETCORE_URLS": "http://+:9051"},
            network_mode=f"container:{backend.id}",
        )
        jwt_mock = start(
            "mock-jwt",
            "services",
            ["mock-jwt"],
            environment={"ASPNETCORE_URLS": "http://+:8080"},
            network=network.name,
            ports={"8080/tcp": ("127.0.0.1", None)},
        )
        urls = {
            "backend": _published(backend, 8080),
            "mock-eventsub": _published(backend, 9051),
            "mock-jwt": _published(jwt_mock, 8080),
        }
        wait_for_http(urls["backend"] + "/health/ready", backend)
        wait_for_http(urls["mock-eventsub"] + "/health", eventsub)
        wait_for_http(urls["mock-jwt"] + "/health", jwt_mock)
        yield {"urls": urls, "containers": {"backend": backend, "mock-eventsub": eventsub}}
    finally:
        for container in reversed(containers):
            container.remove(force=True)
        network.remove()


def _mgm_tier_a_sender(relay_url: str, secret: str) -> subprocess.CompletedProcess[str]:
    """The stand-in of MGM's sender: minimal body, Unix seconds, no type header, via the relay."""
    return subprocess.run(
        [sys.executable, str(CI / "send_tier_a.py"), "--relay", relay_url, "--secret", secret,
         "--name", CHARACTER, "--user-id", VIEWER],
        cwd=CI, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip


def test_mgm_tier_a_sender_and_gate_pass_on_mocks_started_with_only_aspnetcore_urls(
    stack: dict[str, Any],
) -> None:
    urls = stack["urls"]
    sender = _mgm_tier_a_sender(urls["mock-eventsub"], DEMO_EVENTSUB_SECRET)
    assert sender.returncode == 0, sender.stdout + sender.stderr

    gate = subprocess.run(
        [sys.executable, str(CI / "tier_a_gate.py"), "--jwt", urls["mock-jwt"],
         "--backend", urls["backend"], "--name", CHARACTER, "--user-id", VIEWER],
        cwd=CI, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert gate.returncode == 0, gate.stdout + gate.stderr
    assert '{"isEnrolled":true,"characterName":"Etoehero"}' in gate.stdout


def test_the_relays_journal_lets_a_third_party_verify_what_it_forwarded(
    stack: dict[str, Any],
) -> None:
    urls = stack["urls"]
    sender = _mgm_tier_a_sender(urls["mock-eventsub"], DEMO_EVENTSUB_SECRET)
    assert sender.returncode == 0, sender.stdout + sender.stderr
    status, text = _http("GET", urls["mock-eventsub"] + "/deliveries")
    assert status == 200
    entry = json.loads(text)[-1]
    assert (entry["kind"], entry["status"]) == ("relay", 204)
    raw = base64.b64decode(entry["bodyBase64"])
    sent = {name.lower(): value for name, value in entry["headers"].items()}
    assert sent["twitch-eventsub-message-type"] == "notification"
    message = (
        sent["twitch-eventsub-message-id"] + sent["twitch-eventsub-message-timestamp"]
    ).encode() + raw
    expected = hmac.new(DEMO_EVENTSUB_SECRET.encode(), message, hashlib.sha256).hexdigest()
    assert sent["twitch-eventsub-message-signature"] == "sha256=" + expected


def test_a_wrong_secret_is_refused_by_the_relay_before_the_backend(stack: dict[str, Any]) -> None:
    sender = _mgm_tier_a_sender(stack["urls"]["mock-eventsub"], "not-the-secret")
    assert sender.returncode == 1
    assert "/api/twitch/eventsub -> 403" in sender.stdout
    assert '"code":"invalid_signature"' in sender.stdout


def test_start_up_logs_name_the_defaults_in_use(stack: dict[str, Any]) -> None:
    containers = stack["containers"]
    eventsub_log = containers["mock-eventsub"].logs().decode()
    backend_log = containers["backend"].logs().decode()
    assert "Twitch__EventSubSecret is not set: signing and verifying with the documented" in (
        eventsub_log
    )
    assert "delivers to http://127.0.0.1:8080/api/twitch/eventsub" in eventsub_log
    assert "Twitch__ExtensionSecret is empty: using the Development JWT key" in backend_log
    assert "Traceback" not in eventsub_log + backend_log
