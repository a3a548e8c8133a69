"""Command steps without Docker: real child processes, their groups, output, env and triage."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from envkit.evidence.outcome import StepResult
from envkit.evidence.redact import Redactor
from envkit.lifecycle.signals import interruptible
from envkit.scenario.commandstep import (
    COMMAND_FAILED,
    STEP_TIMEOUT,
    CommandStep,
    CommandTriage,
    end_group,
    lines_during,
    run_process,
    stack_environment,
)
from envkit.scenario.orchestrator import CheckFailed, StepContext, step_context
from envkit.spec.settings import load_settings

PY = sys.executable
SECRET = "demo-desktop-api-key-0001"  # the default mgm.api_key: a secret of the settings
# Prints the pid of a grandchild (which ignores SIGTERM when asked) and its own, then waits.
SPAWNER = textwrap.dedent(
    """
    import os, signal, subprocess, sys, time
    stubborn = "stubborn" in sys.argv
    if stubborn:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    code = "import signal, time\\n"
    if stubborn:
        code += "signal.signal(signal.SIGTERM, signal.SIG_IGN)\\n"
    code += "print('up', flush=True)\\ntime.sleep(600)"
    child = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE)
    child.stdout.readline()  # its signal disposition is in place
    print("pids", os.getpid(), child.pid, flush=True)
    if "exit" in sys.argv:
        sys.exit(0)
    time.sleep(600)
    """
)


def alive(pid: int) -> bool:
    """Whether `pid` runs (a zombie waiting for a parent that never reaps it does not)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state not in ("Z", "X")


def pids_in(lines: list[str]) -> list[int]:
    found = [line for line in lines if line.startswith("pids ")]
    assert found, lines
    return [int(word) for word in found[0].split()[1:]]


# -- the process and its group ------------------------------------------------------------------


def test_output_is_merged_and_streamed_line_by_line_and_the_tail_is_bounded(
    tmp_path: Path,
) -> None:
    code = "import sys\nfor i in range(5):\n    print(f'line {i}', file=[sys.stdout, sys.stderr][i % 2], flush=True)\n"  # noqa: E501
    seen: list[str] = []
    result = run_process(
        [PY, "-c", code], executable=PY, cwd=tmp_path, env=os.environ, timeout=60,
        on_line=seen.append, tail_lines=3,
    )  # fmt: skip
    assert seen == [f"line {i}" for i in range(5)]
    assert result.tail == ["line 2", "line 3", "line 4"]
    assert (result.exit_code, result.timed_out, result.leftovers) == (0, False, False)


def test_a_non_zero_exit_code_is_returned(tmp_path: Path) -> None:
    result = run_process(
        [PY, "-c", "import sys; print('bad'); sys.exit(3)"], executable=PY, cwd=tmp_path,
        env=os.environ, timeout=60, on_line=lambda line: None,
    )  # fmt: skip
    assert (result.exit_code, result.tail, result.timed_out) == (3, ["bad"], False)


def test_at_its_limit_the_command_is_ended_and_marked_as_timed_out(tmp_path: Path) -> None:
    result = run_process(
        [PY, "-c", "import time; time.sleep(600)"], executable=PY, cwd=tmp_path,
        env=os.environ, timeout=0.2, on_line=lambda line: None,
    )  # fmt: skip
    assert result.timed_out
    assert result.exit_code == -signal.SIGTERM


Spawn = Callable[..., tuple[subprocess.Popen[bytes], list[int]]]


@pytest.fixture
def spawned() -> Iterator[Spawn]:
    """Starts a command in its own group that starts a grandchild; all ended afterwards."""
    processes: list[subprocess.Popen[bytes]] = []

    def start(*args: str) -> tuple[subprocess.Popen[bytes], list[int]]:
        process = subprocess.Popen(
            [PY, "-c", SPAWNER, *args], stdout=subprocess.PIPE, start_new_session=True
        )
        processes.append(process)
        assert process.stdout is not None
        return process, pids_in([process.stdout.readline().decode()])

    yield start
    for process in processes:
        end_group(process, grace=0.1)


def test_ending_a_group_ends_the_grandchildren_too(spawned: Spawn) -> None:
    process, pids = spawned()
    assert all(alive(pid) for pid in pids)
    assert end_group(process, grace=5) is True
    assert not any(alive(pid) for pid in pids)
    assert process.returncode == -signal.SIGTERM


def test_a_group_that_ignores_sigterm_is_killed_after_the_grace(spawned: Spawn) -> None:
    process, pids = spawned("stubborn")
    assert end_group(process, grace=0.2) is True
    assert not any(alive(pid) for pid in pids)
    assert process.returncode == -signal.SIGKILL


def test_processes_left_behind_are_ended_when_the_command_exits(tmp_path: Path) -> None:
    lines: list[str] = []
    result = run_process(
        [PY, "-c", SPAWNER, "exit"], executable=PY, cwd=tmp_path, env=os.environ, timeout=60,
        on_line=lines.append,
    )  # fmt: skip
    assert (result.exit_code, result.leftovers) == (0, True)
    assert not any(alive(pid) for pid in pids_in(lines))


def test_an_interrupt_while_it_runs_ends_its_group_and_propagates(tmp_path: Path) -> None:
    lines: list[str] = []

    def on_line(line: str) -> None:
        lines.append(line)
        if line.startswith("pids "):
            os.kill(os.getpid(), signal.SIGTERM)  # as CI cancelling envkit would

    with pytest.raises(KeyboardInterrupt), interruptible():
        run_process(
            [PY, "-c", SPAWNER], executable=PY, cwd=tmp_path, env=os.environ, timeout=600,
            on_line=on_line,
        )  # fmt: skip
    assert not any(alive(pid) for pid in pids_in(lines))


# -- the step: environment, rendering, evidence -------------------------------------------------


@pytest.fixture
def ctx(tmp_path: Path) -> Iterator[StepContext]:
    mgm = Path(__file__).resolve().parents[3] / "compose" / "tier-b.toml"
    settings = load_settings(None, {}, stack=mgm)  # its mgm.api_key is a secret
    urls = {"api": "http://127.0.0.1:32768", "mock-helix": "http://127.0.0.1:32769"}
    redactor = Redactor(settings.secret_values())
    log = tmp_path / "artifacts" / "demo-tier-b-orchestrator.log"
    with step_context(urls, settings, log, redactor, run_id="demo-run-1") as context:
        context.current = StepResult("check", "main", "passed", "2025-01-01T00:00:00.000Z")
        yield context


def command(tmp_path: Path, code: str, *args: str, **fields: object) -> CommandStep:
    values: dict[str, object] = {
        "name": "check", "tier": "main", "command": (PY, "-c", code, *args), "executable": PY,
        "cwd": tmp_path, "timeout": 60.0,
        "network_refs": {"services.api.url": "http://api:8080", "services.api.host": "api"},
    }  # fmt: skip
    values.update(fields)
    return CommandStep(**values)  # type: ignore[arg-type]


def test_the_stack_environment_names_every_published_service() -> None:
    env = stack_environment(
        {"mock-helix": "http://127.0.0.1:32769", "db": "postgresql://127.0.0.1:5432"},
        "demo-run-1",
        Path("/tmp/artifacts/demo-run-1"),
    )
    assert env == {
        "STACK_RUN_ID": "demo-run-1",
        "STACK_ARTIFACT_DIR": "/tmp/artifacts/demo-run-1",
        "STACK_DB_URL": "postgresql://127.0.0.1:5432",
        "STACK_DB_HOST": "127.0.0.1",
        "STACK_DB_PORT": "5432",
        "STACK_MOCK_HELIX_URL": "http://127.0.0.1:32769",
        "STACK_MOCK_HELIX_HOST": "127.0.0.1",
        "STACK_MOCK_HELIX_PORT": "32769",
    }


def test_host_urls_settings_and_in_network_references_are_rendered(
    ctx: StepContext, tmp_path: Path
) -> None:
    code = "import os, sys; print(sys.argv[1:]); print(os.environ['X'], os.environ['STACK_API_URL'], os.environ['STACK_RUN_ID'], os.environ['STACK_ARTIFACT_DIR'])"  # noqa: E501
    step = command(
        tmp_path, code, "${services.api.host_url}", "${services.api.url}", "${mgm.api_key}",
        env={"X": "${services.mock-helix.host_url}|${services.api.host}"},
    )  # fmt: skip
    result = step.run(ctx)
    assert re.fullmatch(rf"`{re.escape(PY)} -c .*` exited with code 0", result, re.DOTALL)
    log = ctx.log.path.read_text()
    assert "check | ['http://127.0.0.1:32768', 'http://api:8080', '***']" in log
    assert (
        f"check | http://127.0.0.1:32769|api http://127.0.0.1:32768 demo-run-1 "
        f"{ctx.artifact_dir}" in log
    )
    added = log.split("step main/check: with ", 1)[1].splitlines()[0].split()
    assert "STACK_MOCK_HELIX_URL=http://127.0.0.1:32769" in added  # the environment it got
    assert "X=http://127.0.0.1:32769|api" in added
    assert SECRET not in log
    assert ctx.current is not None
    evidence = ctx.current.evidence
    assert evidence["exit_code"] == 0
    assert SECRET not in evidence["command"]
    assert evidence["command"].endswith(" http://127.0.0.1:32768 http://api:8080 ***")
    assert SECRET not in evidence["output_tail"]


def test_a_failing_command_fails_the_step_with_its_exit_code_and_last_line(
    ctx: StepContext, tmp_path: Path
) -> None:
    code = "import sys; print('connecting'); print('no pending payout'); sys.exit(3)"
    step = command(tmp_path, code)
    with pytest.raises(CheckFailed) as info:
        step.run(ctx)
    assert str(info.value).endswith(" exited with code 3; its last output line: no pending payout")
    assert ctx.current is not None
    assert ctx.current.evidence["exit_code"] == 3
    assert ctx.current.evidence["output_tail"] == "connecting\nno pending payout"


def test_a_command_at_its_limit_fails_as_a_timeout(ctx: StepContext, tmp_path: Path) -> None:
    code = "import time; print('waiting', flush=True); time.sleep(600)"
    step = command(tmp_path, code, timeout=0.5)
    with pytest.raises(CheckFailed) as info:
        step.run(ctx)
    assert str(info.value).endswith(
        " did not finish within its time limit of 0.5 s; its process group was ended "
        "(SIGTERM, then SIGKILL after 5 s)"
    )
    assert ctx.current is not None
    assert ctx.current.evidence["timed_out"] is True


def test_a_program_that_cannot_start_fails_the_step(ctx: StepContext, tmp_path: Path) -> None:
    script = tmp_path / "run.sh"
    script.write_text("#!/bin/sh\n")
    script.chmod(0o644)  # removed its x bit after the scenario was checked
    step = command(tmp_path, "", executable=str(script), command=("./run.sh",))
    with pytest.raises(CheckFailed) as info:
        step.run(ctx)
    assert str(info.value).startswith("`./run.sh` could not be started: [Errno 13] Permission")


def test_a_host_url_of_a_service_without_one_fails_the_step(
    ctx: StepContext, tmp_path: Path
) -> None:
    step = command(tmp_path, "", "${services.db.host_url}")
    with pytest.raises(CheckFailed) as info:
        step.run(ctx)
    assert str(info.value) == (
        "service(s) db have no host URL in this run (no port); the step's "
        "${services.<name>.host_url} references cannot be filled"
    )


# -- triage -------------------------------------------------------------------------------------


def failed_step(**evidence: object) -> StepResult:
    return StepResult(
        "check", "main", "failed", "2025-01-01T10:00:00.000Z", 2.0,
        error="`run` exited with code 3; its last output line: c", evidence=dict(evidence),
    )  # fmt: skip


TRIAGE = CommandTriage(
    {"check": CommandStep("check", "main", ("run",), "/bin/run", Path("/"), 60, log_of="api")},
    {"api": "api.log"},
    "demo-tier-b-orchestrator.log",
)
API_LOG = (
    "2025-01-01T09:59:59.9Z before the step\n"
    "2025-01-01T10:00:00Z GET /api/pool/me -> 500\n"
    "2025-01-01T10:00:01.25Z traceback: boom\n"
    "2025-01-01T10:00:05.123456789Z after the step\n"
)


def test_a_failed_command_is_command_failed_with_its_output_and_its_service_s_lines() -> None:
    evidence = failed_step(exit_code=3, timed_out=False, output_tail="a\nb\nc")
    failure = TRIAGE(evidence, {"api.log": API_LOG})
    assert failure.failure_class == COMMAND_FAILED
    assert failure.message == (
        "Step check: `run` exited with code 3; its last output line: c.\n"
        "Last lines of its output:\na\nb\nc"
    )
    assert failure.first_log == "api.log"
    assert failure.quotes == [
        "2025-01-01T10:00:00Z GET /api/pool/me -> 500",
        "2025-01-01T10:00:01.25Z traceback: boom",
    ]


def test_a_timed_out_command_is_a_step_timeout() -> None:
    failure = TRIAGE(failed_step(timed_out=True, output_tail=""), {})
    assert failure.failure_class == STEP_TIMEOUT
    assert failure.quotes == []


def test_without_log_of_the_orchestrator_log_is_read_first() -> None:
    triage = CommandTriage(
        {"check": CommandStep("check", "main", ("run",), "/bin/run", Path("/"), 60)},
        {"api": "api.log"},
        "demo-tier-b-orchestrator.log",
    )
    failure = triage(failed_step(exit_code=1, output_tail="x"), {"api.log": API_LOG})
    assert (failure.first_log, failure.quotes) == ("demo-tier-b-orchestrator.log", [])


def test_log_lines_during_a_step_ignore_untimed_and_empty_lines() -> None:
    text = API_LOG + "no stamp here\n2025-01-01T10:00:01Z \n"
    assert lines_during(text, "2025-01-01T10:00:00.000Z", 2.0) == [
        "2025-01-01T10:00:00Z GET /api/pool/me -> 500",
        "2025-01-01T10:00:01.25Z traceback: boom",
    ]
    assert lines_during(text, "not a time", 2.0) == []
