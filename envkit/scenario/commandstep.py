"""A scenario step that runs one of the project's own commands on the host, against the stack.

The command runs in its own session (so in its own process group) with the
current environment plus the stack's host-side endpoints (`STACK_<NAME>_URL`,
`_HOST`, `_PORT`, `STACK_RUN_ID`, `STACK_ARTIFACT_DIR`) and the step's own
variables. Its stdout and stderr, merged, stream line by line into the
orchestrator log. At its time limit, or when envkit is interrupted, the whole
group is ended (SIGTERM, then SIGKILL after a short grace); processes it leaves
behind when it exits are ended too, so nothing outlives the step.
"""

from __future__ import annotations

import contextlib
import os
import re
import shlex
import signal
import subprocess
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import IO
from urllib.parse import urlsplit

from envkit.errors import SettingsError
from envkit.evidence.outcome import Failure, StepResult
from envkit.logs import log
from envkit.scenario.orchestrator import CheckFailed, Step, StepContext
from envkit.spec.settings import render_env
from envkit.spec.stackfile import references

KILL_GRACE_S = 5.0  # between SIGTERM and SIGKILL
TAIL_LINES = 60  # lines of output kept as the step's evidence
MESSAGE_LINES = 20  # lines of output quoted in the failure's message (report.md)
QUOTED_LINES = 12  # lines of the `log_of` service's log quoted under triage
COMMAND_FAILED = "command-failed"
STEP_TIMEOUT = "step-timeout"
_DRAIN_S = 5.0  # how long to wait for the last output once the command's group is gone
_LINE_LIMIT = 4000  # characters of one output line kept in the evidence
_POLL_S = 0.05
_STAMP = re.compile(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d+))?Z")  # the engine's RFC 3339


@dataclass(frozen=True)
class ProcessResult:
    """How a command ended: exit code (negative: killed by that signal), time, output tail."""

    exit_code: int
    timed_out: bool
    duration_s: float
    tail: list[str]
    leftovers: bool  # processes of its group outlived it and were ended


def run_process(
    argv: Sequence[str],
    *,
    executable: str,
    cwd: Path,
    env: Mapping[str, str],
    timeout: float,
    on_line: Callable[[str], None],
    grace: float = KILL_GRACE_S,
    tail_lines: int = TAIL_LINES,
) -> ProcessResult:
    """Run `argv` in its own process group; stream each output line to `on_line`.

    Raise `OSError` when it cannot be started. Any exception while waiting
    (KeyboardInterrupt from Ctrl-C or SIGTERM) ends the whole group first.
    """
    started = time.perf_counter()
    process = subprocess.Popen(
        list(argv), executable=executable, cwd=cwd, env=dict(env), stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    assert process.stdout is not None
    tail: deque[str] = deque(maxlen=tail_lines)
    reader = threading.Thread(
        target=_pump, args=(process.stdout, tail, on_line), name=f"cmd-{process.pid}", daemon=True
    )
    reader.start()
    timed_out = False
    try:
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            timed_out = True
        leftovers = end_group(process, grace)
    except BaseException:
        end_group(process, grace)
        raise
    finally:
        # A descendant that left the group (setsid) may hold the pipe open: do not wait forever.
        reader.join(_DRAIN_S)
        if reader.is_alive():
            log.warning("command {} ended but its output pipe is still open", argv[0])
        else:
            process.stdout.close()
    duration = time.perf_counter() - started
    return ProcessResult(
        process.returncode, timed_out, duration, list(tail), leftovers and not timed_out
    )


def _pump(stream: IO[bytes], tail: deque[str], on_line: Callable[[str], None]) -> None:
    for raw in iter(stream.readline, b""):
        line = raw.decode("utf-8", errors="replace").rstrip("\r\n")
        tail.append(line[:_LINE_LIMIT])
        try:
            on_line(line)
        except OSError as exc:  # a full disk must not stall the command on a full pipe
            log.warning("could not log a line of command output: {}", exc)


def end_group(process: subprocess.Popen[bytes], grace: float = KILL_GRACE_S) -> bool:
    """End every live process of `process`'s group: SIGTERM, SIGKILL after `grace` s.

    Return whether any was still running. The group id is the leader's pid
    (`start_new_session`); the group may outlive its leader.
    """
    group = process.pid
    process.poll()
    if not group_alive(group):
        process.wait()
        return False
    _signal_group(group, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while group_alive(group, process) and time.monotonic() < deadline:
        time.sleep(_POLL_S)
    if group_alive(group, process):
        _signal_group(group, signal.SIGKILL)
        deadline = time.monotonic() + grace
        while group_alive(group, process) and time.monotonic() < deadline:
            time.sleep(_POLL_S)
    process.wait()
    return True


def group_alive(group: int, leader: subprocess.Popen[bytes] | None = None) -> bool:
    """Whether any process of process group `group` is still running (zombies do not count)."""
    if leader is not None:
        leader.poll()  # reap the leader, or it counts as a member until someone waits for it
    proc = Path("/proc")
    if not proc.is_dir():  # no procfs: ask the kernel (a zombie member counts as alive)
        try:
            os.killpg(group, 0)
        except (ProcessLookupError, PermissionError):
            return False
        return True
    for stat in proc.glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue  # the process ended while we looked
        if len(fields) > 2 and fields[2] == str(group) and fields[0] not in ("Z", "X"):
            return True
    return False


def _signal_group(group: int, signum: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(group, signum)


def stack_environment(urls: Mapping[str, str], run_id: str, artifact_dir: Path) -> dict[str, str]:
    """`STACK_<NAME>_URL`, `_HOST`, `_PORT` per service with a port; the run id and artifact dir."""
    env = {"STACK_RUN_ID": run_id, "STACK_ARTIFACT_DIR": str(artifact_dir)}
    for name, url in sorted(urls.items()):
        key = "STACK_" + re.sub(r"[^A-Z0-9]", "_", name.upper())
        parts = urlsplit(url)
        env[f"{key}_URL"] = url
        env[f"{key}_HOST"] = parts.hostname or ""
        env[f"{key}_PORT"] = str(parts.port or "")
    return env


def host_references(urls: Mapping[str, str]) -> dict[str, str]:
    """`services.<name>.host_url` for every service this machine reaches (it has a port)."""
    return {f"services.{name}.host_url": url for name, url in urls.items()}


@dataclass(frozen=True)
class CommandStep:
    """One command of the project, validated and ready to run as a scenario step."""

    name: str
    tier: str
    command: tuple[str, ...]  # templates: `${section.field}`, `${services.<name>.<attr>}`
    executable: str  # the program, resolved before the stack starts
    cwd: Path
    timeout: float
    env: Mapping[str, str] = field(default_factory=dict)  # templates too
    log_of: str = ""
    # services.<name>.host/port/url: the in-network references of the stack file
    network_refs: Mapping[str, str] = field(default_factory=dict, repr=False)

    def as_step(self) -> Step:
        """The scenario step that runs this command."""
        return Step(self.name, self.tier, self.run, self.log_of)

    def run(self, ctx: StepContext) -> str:
        """Run the command against the stack in `ctx`; fail the step unless it exits 0."""
        redact = ctx.log.redactor
        argv, extra_env = self._render(ctx)
        shown = redact(shlex.join(argv))
        stack_env = stack_environment(ctx.urls, ctx.run_id, ctx.artifact_dir)
        label = f"step {self.tier}/{self.name}"
        ctx.log.write(f"{label}: running {shown} in {self.cwd} (limit {self.timeout:g} s)")
        added = {**stack_env, **extra_env}
        ctx.log.write(f"{label}: with " + " ".join(f"{k}={v}" for k, v in added.items()))
        evidence = {"command": shown, "cwd": str(self.cwd), "time_limit_s": self.timeout}
        if ctx.current is not None:
            ctx.current.evidence.update(evidence)
        try:
            result = run_process(
                argv, executable=self.executable, cwd=self.cwd,
                env={**os.environ, **added}, timeout=self.timeout,
                on_line=lambda line: ctx.log.write(f"{self.name} | {line}"),
            )  # fmt: skip
        except OSError as exc:
            raise CheckFailed(f"`{shown}` could not be started: {exc}") from exc
        tail = [redact(line) for line in result.tail]
        if ctx.current is not None:
            ctx.current.evidence.update(
                exit_code=result.exit_code, timed_out=result.timed_out,
                duration_s=round(result.duration_s, 3), output_tail="\n".join(tail),
            )  # fmt: skip
        if result.leftovers:
            ctx.log.write(f"{label}: ended the processes it left running in its group")
        if result.timed_out:
            raise CheckFailed(
                f"`{shown}` did not finish within its time limit of {self.timeout:g} s; its "
                f"process group was ended (SIGTERM, then SIGKILL after {KILL_GRACE_S:g} s)"
            )
        if result.exit_code != 0:
            last = next((line for line in reversed(tail) if line.strip()), "")
            said = f"; its last output line: {last.strip()}" if last else "; it printed nothing"
            raise CheckFailed(f"`{shown}` {_ended(result.exit_code)}{said}")
        return f"`{shown}` exited with code 0"

    def _render(self, ctx: StepContext) -> tuple[list[str], dict[str, str]]:
        """The argv and env with every reference filled; host URLs come from the running stack."""
        wanted = {
            ref.split(".")[1]
            for value in (*self.command, *self.env.values())
            for ref in references(value)
            if ref.startswith("services.") and ref.endswith(".host_url")
        }
        missing = sorted(wanted - set(ctx.urls))
        if missing:
            raise CheckFailed(
                f"service(s) {', '.join(missing)} have no host URL in this run (no port); "
                "the step's ${services.<name>.host_url} references cannot be filled"
            )
        extra = {**self.network_refs, **host_references(ctx.urls)}
        where = f"step '{self.name}'"
        try:
            args = render_env(
                {str(i): a for i, a in enumerate(self.command)}, ctx.settings, extra, where=where
            )
            env = render_env(self.env, ctx.settings, extra, where=where)
        except SettingsError as exc:
            raise CheckFailed(str(exc)) from exc
        return [args[str(i)] for i in range(len(self.command))], env


def _ended(code: int) -> str:
    if code < 0:
        try:
            return f"was killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"was killed by signal {-code}"
    return f"exited with code {code}"


@dataclass(frozen=True)
class CommandTriage:
    """Names the root cause of a failed command step: `step-timeout` or `command-failed`."""

    steps: Mapping[str, CommandStep]
    service_logs: Mapping[str, str]  # service -> its log file name
    orchestrator_log: str

    def __call__(self, failed: StepResult, logs: Mapping[str, str]) -> Failure:
        """The failure: class, message with the output tail, the log to read first and quotes."""
        step = self.steps.get(failed.name)
        error = failed.error or "the step failed without an error message"
        if step is None:
            return Failure(f"step-failed:{failed.name}", error)
        evidence = failed.evidence
        name = STEP_TIMEOUT if evidence.get("timed_out") else COMMAND_FAILED
        output = str(evidence.get("output_tail") or "").splitlines()[-MESSAGE_LINES:]
        message = f"Step {failed.name}: {error}."
        if output:
            message += "\nLast lines of its output:\n" + "\n".join(output)
        first_log = self.service_logs.get(step.log_of, self.orchestrator_log)
        quotes: list[str] = []
        if step.log_of:
            quotes = lines_during(logs.get(first_log, ""), failed.started_at, failed.duration_s)
        return Failure(name, message, first_log, quotes[-QUOTED_LINES:])


def lines_during(text: str, started_at: str, duration_s: float) -> list[str]:
    """Lines of a timestamped container log written while the step ran (UTC, ms precision)."""
    try:
        start = datetime.fromisoformat(started_at)
    except ValueError:
        return []
    end = start + timedelta(seconds=duration_s + 1.0)  # the last lines may land a moment later
    low, high = (_stamp(start), _stamp(end))
    found = []
    for line in text.splitlines():
        stamp, _, rest = line.partition(" ")
        match = _STAMP.fullmatch(stamp)
        if match and rest.strip():
            # The engine trims trailing zeros of the fraction: pad it to milliseconds.
            moment = match.group(1) + "." + (match.group(2) or "").ljust(3, "0")[:3]
            if low <= moment <= high:
                found.append(line)
    return found


def _stamp(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%f")[:23]
