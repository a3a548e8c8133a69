"""The scenario pipeline without Docker: the one failure classification, runs on a fake target."""

from __future__ import annotations

import dataclasses
import json
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from mgm_stack.scenario import classify as mgm_classify
from mgm_stack.scenario import not_ready as mgm_not_ready

from envkit.errors import BuildError, EnvkitError, ServiceNotReady, ServiceStartFailed
from envkit.evidence.history import recent_runs
from envkit.evidence.outcome import Failure, RunOutcome, ServiceRow, StepResult
from envkit.scenario import pipeline
from envkit.scenario.commandstep import COMMAND_FAILED, STEP_TIMEOUT, CommandStep, CommandTriage
from envkit.scenario.orchestrator import Scenario, Step, StepContext
from envkit.scenario.pipeline import ScenarioRun, classify_failure, run_scenario
from envkit.spec.settings import EnvkitSettings, load_settings
from envkit.spec.stack import StackSpec, load_stack

SECRET = "pipeline-secret-4711"
TAIL = "\n".join(f"api line {i}" for i in range(20))


def noop(ctx: StepContext) -> str:
    return "ok"


STEPS = [
    Step("first", "tier-a", noop),
    Step("second", "tier-b", noop, log_of="api"),
    Step("third", "tier-b", noop),
]


def failed(name: str, error: str = "it broke", **evidence: object) -> list[StepResult]:
    """Results of STEPS where `name` failed (and the steps after it were skipped)."""
    results, seen = [], False
    for step in STEPS:
        status = "skipped" if seen else ("failed" if step.name == name else "passed")
        seen = seen or step.name == name
        result = StepResult(step.name, step.tier, status)  # type: ignore[arg-type]
        if status == "failed":
            result.error, result.evidence = error, dict(evidence)
            result.started_at, result.duration_s = "2026-01-01T00:00:00.000Z", 0.5
        results.append(result)
    return results


def not_ready_error(tmp_path: Path, state: str = "running") -> ServiceNotReady:
    return ServiceNotReady(
        service="api", probe="http GET /health -> 200", elapsed=30.0, attempts=60,
        last_error="connection refused", state=state,
        exit_code=1 if state.startswith("exited") else None,
        log_path=tmp_path / "stack-api.log", log_tail=TAIL, hint="read the log",
    )  # fmt: skip


# --- classify_failure: each path ----------------------------------------------------------


def test_nothing_failed_is_no_failure() -> None:
    passed = [StepResult(s.name, s.tier, "passed") for s in STEPS]
    assert classify_failure(Scenario(STEPS), passed) is None


def test_an_interruption_wins_over_everything() -> None:
    failure = classify_failure(Scenario(STEPS), failed("second"), error=KeyboardInterrupt())
    assert failure == Failure("interrupted", "The run was interrupted (Ctrl-C or SIGTERM).")


def test_a_service_never_ready_names_it_and_quotes_its_tail(tmp_path: Path) -> None:
    failure = classify_failure(Scenario(STEPS), [], error=not_ready_error(tmp_path))
    assert failure is not None
    assert failure.failure_class == "service-never-ready"
    assert failure.message == (
        "api never became ready. Last probe error: connection refused; running."
    )
    assert failure.first_log == "stack-api.log"
    assert failure.quotes == TAIL.splitlines()[-pipeline.QUOTED_LINES :]


def test_a_service_that_exited_before_ready_is_named_with_its_exit_code(tmp_path: Path) -> None:
    error = not_ready_error(tmp_path, "exited (code 1)")
    failure = classify_failure(Scenario(STEPS), [], error=error)
    assert failure is not None
    assert failure.failure_class == "service-exited-at-start"
    assert failure.message.startswith("api exited at start with code 1 (exited (code 1))")
    assert failure.first_log == "stack-api.log"
    assert failure.quotes == TAIL.splitlines()[-pipeline.QUOTED_LINES :]


def test_a_container_that_stopped_before_its_port_was_read_is_exited_at_start(
    tmp_path: Path,
) -> None:
    error = ServiceStartFailed(
        service="api", state="exited (code 3)", exit_code=3,
        log_path=tmp_path / "stack-api.log", log_tail="boom\nbad setting X",
    )  # fmt: skip
    failure = classify_failure(Scenario(STEPS), [], error=error)
    assert failure == Failure(
        "service-exited-at-start",
        "api exited at start with code 3 (exited (code 3)); no check ran.",
        "stack-api.log",
        ["boom", "bad setting X"],
    )


def test_an_engine_that_refuses_a_container_is_named() -> None:
    error = ServiceStartFailed(service="api", refused='exec: "nope": not found')
    failure = classify_failure(Scenario(STEPS), [], error=error)
    assert failure == Failure(
        "engine-refused-start",
        'The engine refused to start api: exec: "nope": not found; no check ran.',
    )


def test_a_service_that_stopped_after_it_was_ready_is_named_before_the_step(
    tmp_path: Path,
) -> None:
    rows = {
        "api": ServiceRow(state="running", ready_s=1.0, log=str(tmp_path / "stack-api.log")),
        "db": ServiceRow(
            state="exited (code 137, OOM-killed)", ready_s=0.5, log=str(tmp_path / "db.log")
        ),
    }
    logs = {"db.log": "starting\nallocating\n", "stack-api.log": TAIL}
    failure = classify_failure(
        Scenario(STEPS), failed("second", "GET /x answered 503"), logs=logs, services=rows
    )
    assert failure == Failure(
        "service-died",
        "db stopped during the run after it was ready: exited (code 137, OOM-killed). It was "
        "OOM-killed: it went over its memory limit. Step second failed: GET /x answered 503",
        "db.log",
        ["starting", "allocating"],
    )
    # A service that never got ready is not one that died.
    rows["db"] = ServiceRow(state="exited (code 1)", log=str(tmp_path / "db.log"))
    failure = classify_failure(Scenario(STEPS), failed("second"), logs=logs, services=rows)
    assert failure is not None
    assert failure.failure_class == "step-failed:second"


def test_the_scenarios_not_ready_triage_is_used_when_it_has_one(tmp_path: Path) -> None:
    seen: list[tuple[str, str, str]] = []

    def triage(log_name: str, tail: str, message: str) -> Failure:
        seen.append((log_name, tail, message))
        return Failure("db-down", message, log_name)

    scenario = Scenario(STEPS, not_ready=triage)
    failure = classify_failure(scenario, [], error=not_ready_error(tmp_path))
    assert failure == Failure("db-down", seen[0][2], "stack-api.log")
    assert seen[0][:2] == ("stack-api.log", TAIL)
    # MGM's own triage goes through the same door.
    mgm = classify_failure(
        Scenario(STEPS, not_ready=mgm_not_ready), [], error=not_ready_error(tmp_path)
    )
    assert mgm is not None
    assert mgm.failure_class == "service-never-ready"


def test_an_image_that_did_not_build_quotes_the_build_log(tmp_path: Path) -> None:
    error = BuildError(service="api", context=tmp_path, dockerfile="Dockerfile", log_tail="E: no")
    failure = classify_failure(Scenario(STEPS), [], error=error)
    assert failure is not None
    assert failure.failure_class == "image-build-failed"
    assert failure.message == str(error)
    assert "  | E: no" in failure.message


def test_any_other_envkit_error_is_an_envkit_error() -> None:
    failure = classify_failure(Scenario(STEPS), [], error=EnvkitError("No engine answers."))
    assert failure == Failure("envkit-error", "No engine answers.")


def test_the_scenarios_classifier_names_a_failed_step() -> None:
    seen: list[tuple[str, Mapping[str, str]]] = []

    def classify(result: StepResult, logs: Mapping[str, str]) -> Failure:
        seen.append((result.name, logs))
        return Failure("api-said-no", result.error or "")

    logs = {"stack-api.log": TAIL}
    scenario = Scenario(STEPS, classify=classify)
    failure = classify_failure(scenario, failed("second", "401"), logs=logs)
    assert failure == Failure("api-said-no", "401")
    assert seen == [("second", logs)]


def test_mgms_classifier_is_the_scenarios_classifier() -> None:
    results = failed("second", "something odd happened")
    orchestrator = "\n".join(f"line {i}" for i in range(30))
    logs = {"mgm-tier-b-orchestrator.log": orchestrator}
    failure = classify_failure(Scenario(STEPS, classify=mgm_classify), results, logs=logs)
    assert failure is not None
    assert failure.failure_class == "step-failed"  # MGM's own fallback, not the generic one
    assert failure.first_log == "mgm-tier-b-orchestrator.log"


def command_triage(tmp_path: Path) -> Scenario:
    step = CommandStep("second", "tier-b", ("check",), sys.executable, tmp_path, 5.0, log_of="api")
    triage = CommandTriage({"second": step}, {"api": "stack-api.log"}, "stack-orchestrator.log")
    return Scenario(STEPS, classify=triage)


def test_a_failed_command_step_is_command_failed_with_its_output(tmp_path: Path) -> None:
    results = failed("second", "check exited with code 3", output_tail="no such user\n")
    failure = classify_failure(command_triage(tmp_path), results, logs={})
    assert failure is not None
    assert failure.failure_class == COMMAND_FAILED == "command-failed"
    assert failure.message == (
        "Step second: check exited with code 3.\nLast lines of its output:\nno such user"
    )
    assert failure.first_log == "stack-api.log"


def test_a_command_step_at_its_time_limit_is_step_timeout(tmp_path: Path) -> None:
    results = failed("second", "check ran out of its 5 s", timed_out=True, output_tail="")
    failure = classify_failure(command_triage(tmp_path), results, logs={})
    assert failure is not None
    assert failure.failure_class == STEP_TIMEOUT == "step-timeout"
    assert failure.message == "Step second: check ran out of its 5 s."


def test_without_a_classifier_a_failed_step_quotes_its_services_log() -> None:
    failure = classify_failure(
        Scenario(STEPS),
        failed("second", "expected 200, got 500"),
        logs={"stack-api.log": TAIL},
        log_names={"api": "stack-api.log"},
        default_log="stack-orchestrator.log",
    )
    assert failure == Failure(
        "step-failed:second",
        "expected 200, got 500",
        "stack-api.log",
        TAIL.splitlines()[-pipeline.QUOTED_LINES :],
    )


def test_without_a_classifier_a_step_naming_no_service_points_at_the_orchestrator_log() -> None:
    failure = classify_failure(
        Scenario(STEPS),
        failed("first"),
        logs={"stack-api.log": TAIL},
        log_names={"api": "stack-api.log"},
        default_log="stack-orchestrator.log",
    )
    assert failure == Failure("step-failed:first", "it broke", "stack-orchestrator.log", [])


# --- run_scenario on a fake target --------------------------------------------------------


@dataclass
class FakeTarget:
    """A target with no containers: its one "service" log is a file it writes on close."""

    artifact_dir: Path
    fail_start: BaseException | None = None
    calls: list[str] = field(default_factory=list)

    def start(self, outcome: RunOutcome) -> dict[str, ServiceRow]:
        self.calls.append("start")
        outcome.timings["start"] = 1.5
        if self.fail_start is not None:
            raise self.fail_start
        return self.services()

    def close(self, outcome: RunOutcome, passed: bool) -> None:
        self.calls.append(f"close passed={passed}")
        (self.artifact_dir / "stack-api.log").write_text(f"{TAIL}\ntoken {SECRET}\n")

    def services(self) -> dict[str, ServiceRow]:
        return {"api": ServiceRow(image="api:1", log="stack-api.log", seconds_to_ready=0.25)}

    def log_names(self) -> dict[str, str]:
        return {"api": "stack-api.log"}

    def record(self) -> None:
        self.calls.append("record")


MGM_STACK = Path(__file__).resolve().parents[3] / "compose" / "tier-b.toml"


@dataclass
class Recorder:
    """A step observer that remembers what it was told."""

    seen: list[str] = field(default_factory=list)

    def before_step(self, step: Step) -> None:
        self.seen.append(f"before {step.name}")

    def after_step(self, result: StepResult) -> None:
        self.seen.append(f"after {result.name}: {result.status}")


@pytest.fixture
def settings(tmp_path: Path) -> EnvkitSettings:
    environ = {
        "ENVKIT_HISTORY_PATH": str(tmp_path / "history.sqlite"),
        "ENVKIT_ARTIFACT_ROOT": str(tmp_path / "artifacts"),
        "ENVKIT_MGM__API_KEY": SECRET,
    }
    return load_settings(env_file=None, environ=environ, stack=MGM_STACK)


@pytest.fixture
def stack() -> StackSpec:
    return load_stack(MGM_STACK)


def expect_ok(ctx: StepContext) -> str:
    ctx.expect(True, "never")
    return "held"


def expect_secret(ctx: StepContext) -> str:
    ctx.expect(False, f"the api answered with {SECRET}", body={"key": SECRET})
    return "unreachable"


def make_run(
    settings: EnvkitSettings, stack: StackSpec, steps: list[Step], **kw: bool
) -> ScenarioRun:
    return pipeline.new_run(settings, stack, Scenario(steps), replay_command="./inv x", **kw)


def summary(run: ScenarioRun) -> dict[str, object]:
    data: dict[str, object] = json.loads((run.artifact_dir / "summary.json").read_text())
    return data


def test_a_passing_run_observes_each_step_and_writes_the_artifacts(
    settings: EnvkitSettings, stack: StackSpec
) -> None:
    steps = [Step("a", "tier-a", expect_ok), Step("b", "tier-b", expect_ok)]
    run = make_run(settings, stack, steps)
    target, observer = FakeTarget(run.artifact_dir), Recorder()
    outcome = run_scenario(run, target, observer)
    assert outcome.verdict == "passed"
    assert outcome.failure is None
    assert observer.seen == ["before a", "after a: passed", "before b", "after b: passed"]
    assert target.calls == ["start", "close passed=True", "record"]
    assert outcome.services["api"].seconds_to_ready == 0.25
    assert {"start", "tier_a", "tier_b", "total"} <= set(outcome.timings)
    for name in ("summary.json", "junit.xml", "report.md", run.orchestrator_log.name):
        assert (run.artifact_dir / name).is_file(), name
    row = ServiceRow(image="api:1", log="stack-api.log", seconds_to_ready=0.25)
    assert summary(run)["services"] == {"api": dataclasses.asdict(row)}
    assert recent_runs(settings) == []  # not asked to record history


def test_a_failed_step_skips_the_rest_unobserved_and_is_classified_redacted(
    settings: EnvkitSettings, stack: StackSpec
) -> None:
    steps = [
        Step("a", "tier-a", expect_ok),
        Step("b", "tier-b", expect_secret, log_of="api"),
        Step("c", "tier-b", expect_ok),
    ]
    run = make_run(settings, stack, steps, record_history=True)
    target, observer = FakeTarget(run.artifact_dir), Recorder()
    outcome = run_scenario(run, target, observer)
    assert [r.status for r in outcome.steps] == ["passed", "failed", "skipped"]
    assert observer.seen == ["before a", "after a: passed", "before b", "after b: failed"]
    assert target.calls == ["start", "close passed=False", "record"]
    assert outcome.failure is not None
    assert outcome.failure.failure_class == "step-failed:b"
    assert outcome.failure.first_log == "stack-api.log"  # read after close wrote it
    assert outcome.failure.quotes[-1] == f"token {SECRET}"  # the outcome in memory is raw
    # What the pipeline writes is redacted (the fake's own log is the target's business).
    for name in ("summary.json", "junit.xml", "report.md", run.orchestrator_log.name):
        assert SECRET not in (run.artifact_dir / name).read_text(), name
    assert "token ***" in (run.artifact_dir / "report.md").read_text()
    [record] = recent_runs(settings)
    assert (record.run_id, record.verdict, record.failure_class) == (
        run.run_id, "failed", "step-failed:b",
    )  # fmt: skip
    assert record.services_ready_s == {"api": 0.25}


def test_a_start_that_fails_still_closes_records_and_classifies(
    settings: EnvkitSettings, stack: StackSpec, tmp_path: Path
) -> None:
    run = make_run(settings, stack, [Step("a", "tier-a", expect_ok)])
    target = FakeTarget(run.artifact_dir, fail_start=not_ready_error(tmp_path))
    outcome = run_scenario(run, target, Recorder())
    assert target.calls == ["start", "close passed=False", "record"]
    assert [r.status for r in outcome.steps] == ["skipped"]
    assert [r.result for r in outcome.steps] == ["not run: the stack did not start"]
    report = (run.artifact_dir / "report.md").read_text()
    assert "not run: the stack did not start" in report
    assert "an earlier step failed" not in report
    assert outcome.verdict == "failed"
    assert outcome.failure is not None
    assert outcome.failure.failure_class == "service-never-ready"
    assert outcome.services["api"].image == "api:1"  # rows of the target as it is now
    assert summary(run)["failure"] == {
        "failure_class": "service-never-ready",
        "message": outcome.failure.message,
        "first_log": "stack-api.log",
        "quotes": TAIL.splitlines()[-pipeline.QUOTED_LINES :],
    }


def test_an_interruption_is_recorded_then_raised_again(
    settings: EnvkitSettings, stack: StackSpec
) -> None:
    def interrupt(ctx: StepContext) -> str:
        raise KeyboardInterrupt

    run = make_run(settings, stack, [Step("a", "tier-a", interrupt), Step("b", "tier-a", noop)])
    target = FakeTarget(run.artifact_dir)
    with pytest.raises(KeyboardInterrupt):
        run_scenario(run, target, Recorder())
    assert target.calls == ["start", "close passed=False", "record"]
    written = summary(run)
    assert written["verdict"] == "failed"
    assert written["failure"]["failure_class"] == "interrupted"  # type: ignore[index]


def test_an_engine_lost_mid_run_is_its_own_class_with_the_endpoint_and_the_last_lines() -> None:
    from envkit.errors import EngineLostError

    lost = EngineLostError(
        "The engine at tcp://10.99.3.2:2375 stopped answering during run r-1 (connection "
        "refused: nothing listens there); …",
        "tcp://10.99.3.2:2375",
        ["backend: listening on 8080"],
    )
    failure = classify_failure(Scenario(STEPS), failed("second"), error=lost)
    assert failure == Failure("engine-lost", str(lost), None, ["backend: listening on 8080"])
