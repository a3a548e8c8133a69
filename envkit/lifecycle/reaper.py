"""Find and remove what killed envkit processes left behind, by label.

A run is orphaned when the process named in its owner labels is gone from this
host (a pid that was reused by another process counts as gone: the start time
differs; so does a zombie, which has exited and only waits for its parent to
reap it). `invoke up` stacks and failed `tier-b --keep` runs outlive their process on
purpose and are only removed by `invoke down` or `invoke clean --all`; runs owned by other hosts are
never judged from here. An `up` whose process was killed before every service was ready
(SIGKILL, the OOM killer, a CI job's hard timeout) never recorded its run in its state
directory: once that process is gone, a run labelled with a state directory that exists here
and records another run, or none, is left over too.
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import docker

from envkit.errors import RunStateError
from envkit.lifecycle.containers import (
    MODE,
    OWNER_HOST,
    OWNER_PID,
    OWNER_START,
    RUN,
    STATE_DIR,
    process_start_time,
)
from envkit.lifecycle.environment import remove_run
from envkit.lifecycle.state import read_state
from envkit.logs import log
from envkit.program import command

# An engine reaper's container carries its image's label. One still only "created" a minute
# on was never started: its process died between creating and starting it (a kill -9 in
# that gap), it holds nothing, and nothing else would ever remove it.
REAPER_IMAGE_LABEL = "envkit.image=reaper"
STUCK_REAPER_SECONDS = 60.0


@dataclass
class ReapReport:
    """What a reap found and removed."""

    runs: list[str] = field(default_factory=list)
    containers: int = 0
    kept_live: list[str] = field(default_factory=list)


def owner_alive(labels: dict[str, str]) -> bool:
    """True when the labelled owner process still runs on this host (or is not ours to judge)."""
    if labels.get(OWNER_HOST) != socket.gethostname():
        return True
    pid_text = labels.get(OWNER_PID, "")
    if not pid_text.isdigit():
        return False
    pid = int(pid_text)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, belongs to someone else
    if process_state(pid) in _EXITED_STATES:
        return False
    started = labels.get(OWNER_START, "")
    return not started or process_start_time(pid) == started


_EXITED_STATES = ("Z", "X")  # zombie, dead: signal 0 still reaches them, but they run no more


def process_state(pid: int) -> str:
    """The kernel's one-letter state of `pid` (R, S, Z, ...), or "" when it cannot be read."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return ""
    return fields[0] if fields else ""


def _keep(labels: dict[str, str], include_up: bool) -> bool:
    if labels.get(MODE) in ("up", "keep"):  # left running on purpose: only `include_up` removes it
        return not include_up and not abandoned_up(labels)
    return owner_alive(labels)  # an isolated run belongs to its process, even under `include_up`


def abandoned_up(labels: dict[str, str]) -> bool:
    """True for an `up` run whose `up` never finished: its process is gone from this host, and
    the state directory it names exists and records another run or none. Never judged: a run
    of another host, one with no state directory label (an older envkit's), one whose state
    directory is gone (its checkout was removed: nothing here can tell), or a damaged state
    file (`clean --all` is the way out, as its error says)."""
    where = labels.get(STATE_DIR)
    if labels.get(MODE) != "up" or not where or owner_alive(labels):  # alive: or another host's
        return False
    if not Path(where).is_dir():
        return False
    try:
        recorded = read_state(Path(where))
    except RunStateError:
        return False
    return recorded is None or recorded.run_id != labels.get(RUN)


def reap(
    client: docker.DockerClient, *, include_up: bool = False, dry_run: bool = False
) -> ReapReport:
    """Remove runs whose owner is gone (and `up` stacks too when `include_up`)."""
    by_run: dict[str, dict[str, str]] = {}
    counts: dict[str, int] = defaultdict(int)
    # sparse: the listing's own labels, no per-container inspect that fails with NotFound
    # when another run on this engine removes a container between listing and inspecting.
    for container in client.containers.list(all=True, sparse=True, filters={"label": RUN}):
        labels = container.attrs.get("Labels") or {}
        by_run.setdefault(labels[RUN], labels)
        counts[labels[RUN]] += 1
    for network in client.networks.list(filters={"label": RUN}):
        labels = network.attrs.get("Labels") or {}
        by_run.setdefault(labels[RUN], labels)
    report = ReapReport()
    if not dry_run:
        report.containers += remove_stuck_reapers(client)
    for run_id, labels in sorted(by_run.items()):
        if _keep(labels, include_up):
            report.kept_live.append(run_id)
            continue
        report.runs.append(run_id)
        if not dry_run:
            report.containers += remove_run(client, run_id)
            log.info("removed leftover run {} ({} containers)", run_id, counts[run_id])
        else:
            report.containers += counts[run_id]
    return report


def remove_stuck_reapers(client: docker.DockerClient, now: float | None = None) -> int:
    """Remove engine reapers created over a minute ago and never started; return how many."""
    now = time.time() if now is None else now
    listed = client.containers.list(
        all=True, sparse=True, filters={"label": REAPER_IMAGE_LABEL, "status": "created"}
    )
    removed = 0
    for container in listed:
        if now - float(container.attrs.get("Created") or now) < STUCK_REAPER_SECONDS:
            continue  # it may be starting right now
        with contextlib.suppress(docker.errors.NotFound, docker.errors.APIError):
            container.remove(force=True)
            removed += 1
            log.info("removed a reaper container that never started ({})", container.id)
    return removed


class Sweep:
    """`reap` on a thread of its own, so a run starts its containers meanwhile.

    A reap removes only runs whose owner is gone (never a live process's, this one's
    included), so it need not finish before a run starts. `wait()` joins it and reports a
    failure as a warning: leftovers that stay are removed by the next sweep or `clean`.
    """

    def __init__(self, client: docker.DockerClient) -> None:
        self.report: ReapReport | None = None
        self.error: Exception | None = None
        self._reported = False
        self._thread = threading.Thread(target=self._run, args=(client,), name="sweep", daemon=True)
        self._thread.start()

    def _run(self, client: docker.DockerClient) -> None:
        try:
            self.report = reap(client)
        except Exception as exc:  # the engine's and the connection's errors alike: report them
            self.error = exc

    def wait(self) -> ReapReport | None:
        """Wait for the sweep; its report, or None (and a warning, once) when it failed."""
        self._thread.join()
        if self.error is not None and not self._reported:
            self._reported = True
            log.warning(
                "could not remove the runs of killed processes ({}: {}); `{}` tries again",
                type(self.error).__name__, self.error, command("clean"),
            )  # fmt: skip
        return self.report
