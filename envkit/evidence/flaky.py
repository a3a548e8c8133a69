"""Flaky or broken: what the history says about each failure class.

Runs are grouped by what they ran: a `--repeat` series is one group; any other
run joins the group of its git commit and run key (the stack file, images,
options such as `--override`, and settings it ran with: a run broken on purpose
is not the same run as a green one), unless its work tree had uncommitted
changes or it was recorded before run keys existed (then what ran is not known,
and the run stays alone: better no verdict than a false "flaky"). A
failure class is *flaky* when, in a group where it failed, the same code also
passed: the failure came and went without a change. Its rate is its
failures over all the runs of those groups. A class that never shared a group
with a passing run is *broken*. Interrupted runs say nothing and are left out.

The verdicts are pure functions of `RunRecord`s, used by `invoke history
--flaky`, the health report and the consecutive-failure alert.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

from envkit.evidence.history import INCOMPLETE_CLASSES, RunRecord

UNCLASSIFIED = "unclassified"  # a failed run that recorded no failure class
FlakyVerdict = Literal["flaky", "broken"]


@dataclass(frozen=True)
class ClassVerdict:
    """One failure class: flaky or broken, how often it failed, on which code."""

    failure_class: str
    verdict: FlakyVerdict
    failures: int  # failed runs of this class (all groups)
    flaky_failures: int  # of those, in groups where the same code also passed
    flaky_runs: int  # every run of those groups (the rate's denominator)
    groups: tuple[str, ...]  # the commits or batches where it came and went
    last_seen: str  # started_at of its newest failure

    @property
    def rate(self) -> float | None:
        """Failures over runs where the same code also passed (None when broken)."""
        return self.flaky_failures / self.flaky_runs if self.flaky_runs else None

    def describe(self) -> str:
        """E.g. `flaky: failed 2 of 5 runs of the same code (40%)` or `broken: failed 3 runs`."""
        if self.verdict == "flaky":
            return (
                f"flaky: failed {self.flaky_failures} of {self.flaky_runs} runs of code that "
                f"also passed ({(self.rate or 0.0) * 100:.0f}%)"
            )
        runs = "run" if self.failures == 1 else "runs"
        return f"broken: failed {self.failures} {runs}, never passing on the same code"


def group_key(run: RunRecord) -> str | None:
    """What a run ran: its `--repeat` batch, else its clean commit and run key; None if unknown."""
    if run.batch_id:
        return run.batch_id
    if run.git_commit and run.run_key and run.git_dirty is not True:
        return f"commit {run.git_commit[:12]} run {run.run_key[:8]}"
    return None


def class_of(run: RunRecord) -> str:
    """A failed run's class (`unclassified` when it recorded none)."""
    return run.failure_class or UNCLASSIFIED


def class_verdicts(runs: Iterable[RunRecord]) -> dict[str, ClassVerdict]:
    """Each failure class of `runs` with its verdict, flaky ones first, then by failures."""
    completed = [r for r in runs if r.failure_class not in INCOMPLETE_CLASSES]
    groups: dict[str, list[RunRecord]] = {}
    for run in completed:
        key = group_key(run)
        if key is not None:
            groups.setdefault(key, []).append(run)
    mixed = {k: g for k, g in groups.items() if any(r.verdict == "passed" for r in g)}
    failed = [r for r in completed if r.verdict != "passed"]
    verdicts = [_verdict(name, failed, mixed) for name in dict.fromkeys(map(class_of, failed))]
    verdicts.sort(key=lambda v: (v.verdict != "flaky", -v.failures, v.failure_class))
    return {v.failure_class: v for v in verdicts}


def _verdict(
    name: str, failed: Sequence[RunRecord], mixed: dict[str, list[RunRecord]]
) -> ClassVerdict:
    mine = [r for r in failed if class_of(r) == name]
    where = sorted({k for r in mine if (k := group_key(r)) in mixed})
    flaky_failures = sum(1 for r in mine if group_key(r) in mixed)
    flaky_runs = sum(len(mixed[k]) for k in where)
    return ClassVerdict(
        failure_class=name,
        verdict="flaky" if where else "broken",
        failures=len(mine),
        flaky_failures=flaky_failures,
        flaky_runs=flaky_runs,
        groups=tuple(where),
        last_seen=max(r.started_at for r in mine),
    )


def flaky_classes(runs: Iterable[RunRecord]) -> dict[str, ClassVerdict]:
    """Only the flaky classes of `class_verdicts`."""
    return {k: v for k, v in class_verdicts(runs).items() if v.verdict == "flaky"}
