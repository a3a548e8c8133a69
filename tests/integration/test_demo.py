"""`invoke demo` against a real engine: brings the stack up, narrates every step, leaves it up."""

from __future__ import annotations

from collections.abc import Callable

import docker
import httpx
from mgm_stack.scenario import steps

from envkit.lifecycle.commands import down, status
from envkit.scenario.demo import run_demo
from envkit.spec.settings import EnvkitSettings

SERVICE_LOGS = (
    "mgm-postgres.log", "mgm-backend.log", "mgm-mock-eventsub.log", "mgm-mock-jwt.log",
    "mgm-mock-helix.log", "mgm-synthetic-desktop.log",
)  # fmt: skip


def test_demo_walks_every_step_aloud_and_leaves_the_stack_up(
    sandbox: Callable[..., EnvkitSettings], engine: docker.DockerClient
) -> None:
    # Not the ports test_tier_b's up-stack test uses (28000+), so both can run side by side.
    settings = sandbox(ports_from=28100)
    lines: list[str] = []
    waits: list[int] = []  # how many lines had been said at each wait

    def wait() -> None:
        waits.append(len(lines))

    try:
        result = run_demo(settings, say=lines.append, pause=True, wait=wait)
        text = "\n".join(lines)
        assert result.verdict == "passed", text
        assert result.reused is False
        names = [s.name for s in steps(settings)]
        assert [s.name for s in result.steps] == names
        assert [s.status for s in result.steps] == ["passed"] * len(names)

        # One pause before each step, and each pause sits between two steps' narration.
        assert len(waits) == len(names)
        bounds = [*waits, len(lines)]
        for i, name in enumerate(names):
            said = "\n".join(lines[bounds[i] : bounds[i + 1]])
            assert f" {name}: " in said, (name, said)
            assert "  call: " in said, said
            assert " -> 200" in said, said
            assert "result: " in said, said

        for log_name in (*SERVICE_LOGS, "mgm-tier-b-orchestrator.log"):
            assert log_name in text, log_name
        port = settings.ports.backend
        assert f"http://127.0.0.1:{port}" in text
        assert "synthetic-desktop -> backend: PATCH /api/payouts/" in text
        assert "backend -> mock-helix: POST /helix/chat/messages -> 200" in text
        for command in ("./inv status", "./inv logs --service backend", "./inv down"):
            assert command in text, command

        where = result.artifact_dir
        assert (where / "report.md").read_text().startswith("# tier-b mgm: PASSED")
        assert (
            "step tier-b/pool-shows-not-enrolled: viewer left the pool"
            in (where / "mgm-tier-b-orchestrator.log").read_text()
        )
        assert (where / "mgm-backend.log").read_text()

        # The stack is still up; a second demo reuses it (and its journals start clean).
        live = status(settings)
        assert {row.state for row in live.services.values()} == {"running"}
        again = run_demo(settings, say=lambda line: None)
        assert again.reused is True
        assert again.verdict == "passed", again.failure

        # A failure mid-demo is narrated with its class, and the pauses stop with the steps.
        helix = live.services["mock-helix"].host_url
        failing: list[str] = []
        faulted: list[int] = []

        def break_helix_before_the_payout() -> None:
            faulted.append(len(faulted))
            if len(faulted) == names.index("desktop-sequence") + 1:  # after /reset ran
                plan = {"status": 503}
                assert httpx.post(f"{helix}/admin/faults", json=plan, trust_env=False).is_success

        broken = run_demo(
            settings, say=failing.append, pause=True, wait=break_helix_before_the_payout
        )
        said = "\n".join(failing)
        assert broken.verdict == "failed", said
        statuses = {s.name: s.status for s in broken.steps}
        assert statuses["helix-chat-message"] == "failed", statuses
        assert statuses["pool-shows-not-enrolled"] == "skipped", statuses
        assert len(faulted) == names.index("helix-chat-message") + 1
        assert "  FAILED: expected exactly one POST /helix/chat/messages" in said
        assert "backend -> mock-helix: POST /helix/chat/messages -> 503" in said
        assert f"Failure class: {broken.failure.failure_class}; read first: " in said
        assert "./inv down" in said
    finally:
        down(settings)
