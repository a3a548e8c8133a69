"""ProbeWaitStrategy on a real testcontainers DockerContainer from envkit's services image."""

from __future__ import annotations

import os
import re
import uuid

import httpx
import pytest
from testcontainers.core.container import DockerContainer

from envkit.engines.images import ImageResult
from envkit.healthchecks import ProbeTimeout, ProbeWaitStrategy, RetryPolicy
from envkit.services.common.health import health_body


def mock_helix(images: dict[str, ImageResult]) -> DockerContainer:
    """The Helix mock on container port 8080, published on 127.0.0.1 only, labelled as a test's."""
    container = DockerContainer(images["services"].ref).with_command("mock-helix")
    container.with_name(f"envkit-test-wait-{uuid.uuid4().hex[:8]}")
    container.with_env("ASPNETCORE_URLS", "http://+:8080")
    # testcontainers' with_bind_ports cannot name a host address; docker-py's form can.
    container.ports = {"8080/tcp": ("127.0.0.1", None)}
    container.with_kwargs(
        labels={"envkit.run": f"pytest-{os.getpid()}", "envkit.owner_pid": str(os.getpid())},
    )
    return container


def test_start_returns_once_the_health_route_answers(images: dict[str, ImageResult]) -> None:
    strategy = ProbeWaitStrategy.http(8080, "/health", RetryPolicy(timeout=120))

    with mock_helix(images).waiting_for(strategy) as container:
        port = container.get_exposed_port(8080)
        # No retry here: start() returned, so the first request must already be answered.
        answer = httpx.get(f"http://{container.get_container_host_ip()}:{port}/health", timeout=5)

    assert answer.status_code == 200
    assert answer.json() == health_body("mock-helix")


def test_a_probe_that_never_passes_fails_with_the_endpoint_and_evidence(
    images: dict[str, ImageResult],
) -> None:
    # The mock answers (404) on a route it does not have, so the probe can never pass
    # however fast or slow the machine is: the deadline is the only way out.
    strategy = ProbeWaitStrategy.http(8080, "/no-such-route", RetryPolicy(timeout=3))
    container = mock_helix(images).waiting_for(strategy)

    with pytest.raises(ProbeTimeout) as caught, container:
        pytest.fail("start() returned although the probe cannot pass")

    message = str(caught.value)
    assert re.search(
        r"^container envkit-test-wait-\w+ did not become ready within \d+\.\d s: "
        r"HTTP GET http://127\.0\.0\.1:\d+/no-such-route expecting 200 failed \d+ times?; "
        r"last error: ",
        message,
    ), message
    assert caught.value.probe_description.endswith("/no-such-route expecting 200")
    notes = "\n".join(caught.value.__notes__)
    assert notes.startswith("container status: running\n"), notes
