"""The artifact writers: summary.json, junit.xml and report.md, all redacted."""

from __future__ import annotations

import json
from pathlib import Path

import junitparser
import pytest

from envkit.errors import FileAccessError
from envkit.evidence.artifacts import render_junit, render_report, write_artifacts
from envkit.evidence.outcome import Failure, RunOutcome, ServiceRow, StepResult
from envkit.evidence.redact import MASK, Redactor

# `&`, `<` and `|` would be escaped in XML or Markdown; redaction must still catch them.
SECRET = "s3cr&t<tok>|en"
REPLAY = "invoke tier-b --replay artifacts/run-1/manifest.json"


def passing_outcome() -> RunOutcome:
    return RunOutcome(
        run_id="run-1",
        stack="mgm",
        run_name="tier-b",
        verdict="passed",
        started_at="2025-01-01T00:00:00Z",
        ended_at="2025-01-01T00:01:00Z",
        steps=[
            StepResult(
                name="eventsub-emit",
                tier="tier-a",
                status="passed",
                duration_s=0.5,
                request="POST http://127.0.0.1:9051/emit",
                status_code=204,
                result="The webhook accepted the event.",
                evidence={"id": "ev-1"},
            ),
            StepResult(
                name="helix-send",
                tier="tier-b",
                status="passed",
                duration_s=1.25,
                status_code=200,
                result="Helix received one message.",
            ),
        ],
        timings={
            "total": 61.234,
            "images": 3.0,
            "start": 12.5,
            "tier_a": 0.5,
            "tier_b": 1.25,
            "collect": 0.75,
        },
        tier_labels={"tier_a": "Tier A", "tier_b": "Tier B boundary"},
        services={
            "postgres": ServiceRow(image="postgres:16-alpine", seconds_to_ready=4.321),
            "backend": ServiceRow(image="envkit/services", seconds_to_ready=7),
            "mock-helix": ServiceRow(image="envkit/services"),
        },
        replay_command=REPLAY,
    )


def failing_outcome() -> RunOutcome:
    return RunOutcome(
        run_id="run-2",
        stack="mgm",
        run_name="tier-b",
        verdict="failed",
        started_at="2025-01-01T00:00:00Z",
        ended_at="2025-01-01T00:00:30Z",
        steps=[
            StepResult(name="eventsub-emit", tier="tier-a", status="passed", duration_s=0.5),
            StepResult(
                name="helix-send",
                tier="tier-b",
                status="failed",
                duration_s=2.0,
                status_code=401,
                error=f"Helix answered 401 for token {SECRET}",
                evidence={"authorization": f"Bearer {SECRET}", "body": {"message": "bad"}},
            ),
            StepResult(name="desktop-run", tier="tier-b", status="skipped"),
            StepResult(name="pool-check", tier="tier-b", status="skipped"),
        ],
        timings={"total": 30.0},
        failure=Failure(
            failure_class="helix-auth-mismatch",
            message="The backend's Helix token does not match the mock's.",
            first_log="mgm-mock-helix.log",
            quotes=[
                f"POST /helix/extensions/chat Authorization: Bearer {SECRET}",
                "401 Unauthorized",
            ],
        ),
        replay_command=REPLAY,
    )


def piped_outcome() -> RunOutcome:
    outcome = passing_outcome()
    outcome.steps[0].name = "a|b"
    outcome.steps[0].result = "either x | y\nor z"
    outcome.services = {"svc|1": ServiceRow(seconds_to_ready=1.0)}
    return outcome


def written_text(paths: list[Path]) -> dict[str, str]:
    return {path.name: path.read_text(encoding="utf-8") for path in paths}


def test_writes_its_files_into_a_new_directory(tmp_path: Path) -> None:
    target = tmp_path / "artifacts" / "run-1"
    paths = write_artifacts(passing_outcome(), target, Redactor([]), environ={})
    assert [p.name for p in paths] == [
        "summary.json", "junit.xml", "report.md", "timeline.md", "timeline.jsonl",
    ]  # fmt: skip
    assert all(p.parent == target and p.is_file() for p in paths)


def test_summary_round_trips_to_the_outcome_dict(tmp_path: Path) -> None:
    for outcome in (passing_outcome(), failing_outcome()):
        write_artifacts(outcome, tmp_path, Redactor([]), environ={})
        summary = json.loads((tmp_path / "summary.json").read_text(encoding="utf-8"))
        assert summary == outcome.to_dict()


def test_junit_counts_names_times_and_failure_message(tmp_path: Path) -> None:
    write_artifacts(failing_outcome(), tmp_path, Redactor([]), environ={})
    xml = junitparser.JUnitXml.fromfile(str(tmp_path / "junit.xml"))
    suites = list(xml)
    assert len(suites) == 1
    suite = suites[0]
    assert suite.name == "tier-b mgm"
    assert (suite.tests, suite.failures, suite.skipped, suite.errors) == (4, 1, 2, 0)
    cases = {case.name: case for case in suite}
    assert list(cases) == ["eventsub-emit", "helix-send", "desktop-run", "pool-check"]
    assert cases["eventsub-emit"].classname == "tier-a"
    assert cases["eventsub-emit"].is_passed
    assert cases["helix-send"].time == pytest.approx(2.0)
    [failure] = cases["helix-send"].result
    assert isinstance(failure, junitparser.Failure)
    assert failure.message == f"Helix answered 401 for token {SECRET}"
    assert "status code: 401" in failure.text
    assert '"message": "bad"' in failure.text
    [skipped] = cases["pool-check"].result
    assert isinstance(skipped, junitparser.Skipped)
    assert skipped.message == "not run: an earlier step failed"


def test_junit_of_a_passing_run_has_no_failures() -> None:
    suite = next(iter(junitparser.JUnitXml.fromstring(render_junit(passing_outcome()))))
    assert (suite.tests, suite.failures, suite.skipped) == (2, 0, 0)
    assert [case.time for case in suite] == [pytest.approx(0.5), pytest.approx(1.25)]


def test_report_of_a_passing_run() -> None:
    report = render_report(passing_outcome())
    assert report.startswith("# tier-b mgm: PASSED\n")
    assert "`run-1`" in report
    assert "2025-01-01T00:00:00Z" in report
    assert "2025-01-01T00:01:00Z" in report
    assert "## E2E performance (this run)" in report
    for row in (
        "| total wall time | 61.23 |",
        "| images | 3.00 |",
        "| stack start | 12.50 |",
        "| postgres: time to ready | 4.32 |",
        "| backend: time to ready | 7.00 |",
        "| mock-helix: time to ready | — |",
        "| Tier A | 0.50 |",
        "| Tier B boundary | 1.25 |",
        "| collect | 0.75 |",
        "| teardown | — |",
    ):
        assert row in report
    assert (
        "| eventsub-emit | tier-a | passed | 0.50 | 204 | The webhook accepted the event. |"
        in report
    )
    assert "## Triage" not in report
    assert f"## Replay\n\n```sh\n{REPLAY}\n```" in report


def test_report_of_a_failing_run_has_triage() -> None:
    report = render_report(failing_outcome())
    assert report.startswith("# tier-b mgm: FAILED\n")
    assert "| images | — |" in report
    assert (
        "| desktop-run | tier-b | skipped | 0.00 | — | not run: an earlier step failed |" in report
    )
    assert "Helix answered 401" in report
    triage = report.split("## Triage", 1)[1].split("## Replay", 1)[0]
    assert "helix-auth-mismatch" in triage
    assert "The backend's Helix token does not match the mock's." in triage
    assert "Read first: `mgm-mock-helix.log`" in triage
    assert "```text\nPOST /helix/extensions/chat" in triage
    assert "401 Unauthorized\n```" in triage
    assert REPLAY in report.split("## Replay", 1)[1]


def test_report_escapes_pipes_in_table_cells() -> None:
    report = render_report(piped_outcome())
    assert "| a\\|b | tier-a | passed | 0.50 | 204 | either x \\| y or z |" in report
    assert "| svc\\|1: time to ready | 1.00 |" in report


def test_missing_optional_fields_do_not_raise(tmp_path: Path) -> None:
    bare = RunOutcome(run_id="r", stack="s", verdict="failed", started_at="", ended_at="")
    paths = write_artifacts(bare, tmp_path, Redactor([]), environ={})
    report = (tmp_path / "report.md").read_text(encoding="utf-8")
    assert len(paths) == 5
    assert "## Triage" in report
    assert "No replay command was recorded" in report


def test_secrets_reach_no_written_file(tmp_path: Path) -> None:
    summary_file = tmp_path / "step-summary.md"
    (tmp_path / "out").mkdir()
    # A log the run collected: the timeline merges it, and must mask it too.
    (tmp_path / "out" / "s-api.log").write_text(f"2026-11-22T10:00:01.5Z token={SECRET}\n")
    paths = write_artifacts(
        failing_outcome(),
        tmp_path / "out",
        Redactor([SECRET]),
        environ={"GITHUB_STEP_SUMMARY": str(summary_file)},
    )
    texts = written_text([*paths, summary_file])
    for name, text in texts.items():
        assert SECRET not in text, name
        assert "s3cr&amp;t" not in text, name
        assert "s3cr&t" not in text, name
        assert MASK in text, name


def test_step_summary_is_appended_when_set(tmp_path: Path) -> None:
    summary_file = tmp_path / "step-summary.md"
    summary_file.write_text("# earlier step\n", encoding="utf-8")
    write_artifacts(
        passing_outcome(),
        tmp_path / "out",
        Redactor([]),
        environ={"GITHUB_STEP_SUMMARY": str(summary_file)},
    )
    report = (tmp_path / "out" / "report.md").read_text(encoding="utf-8")
    assert summary_file.read_text(encoding="utf-8") == "# earlier step\n" + report


def test_step_summary_is_untouched_when_not_set(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    summary_file = tmp_path / "step-summary.md"
    summary_file.write_text("keep\n", encoding="utf-8")
    monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)
    write_artifacts(passing_outcome(), tmp_path / "out", Redactor([]))  # os.environ
    write_artifacts(passing_outcome(), tmp_path / "out", Redactor([]), environ={})
    assert summary_file.read_text(encoding="utf-8") == "keep\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out", "step-summary.md"]


def test_step_summary_from_os_environ(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    summary_file = tmp_path / "step-summary.md"
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary_file))
    write_artifacts(passing_outcome(), tmp_path / "out", Redactor([]))
    assert summary_file.read_text(encoding="utf-8").startswith("# tier-b mgm: PASSED")


def test_multi_line_message_and_backticks_stay_inside_their_fences() -> None:
    outcome = failing_outcome()
    assert outcome.failure is not None
    outcome.failure.message = "backend never became ready.\n  | last line"
    outcome.failure.quotes = ["a line with ``` inside"]
    report = render_report(outcome)
    assert "Message:\n\n```text\nbackend never became ready.\n  | last line\n```" in report
    assert "````text\na line with ``` inside\n````" in report


def test_unwritable_directory_raises_envkit_error(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("", encoding="utf-8")
    with pytest.raises(FileAccessError, match=r"Could not write the artifact .*Check that the"):
        write_artifacts(passing_outcome(), blocker, Redactor([]), environ={})


def test_a_command_step_s_output_is_plain_text_in_its_junit_failure() -> None:
    step = StepResult(
        "tier-b-orchestrator", "tier-b", "failed", duration_s=1.5,
        error="`python3 ci/run.py` exited with code 3; its last output line: no payout",
        evidence={"command": "python3 ci/run.py", "exit_code": 3,
                  "output_tail": "connecting\n<no payout> & done"},
    )  # fmt: skip
    outcome = RunOutcome("run-1", "mgm", "failed", "", "", steps=[step])
    case = next(iter(next(iter(junitparser.JUnitXml.fromstring(render_junit(outcome))))))
    [failure] = case.result
    assert isinstance(failure, junitparser.Failure)
    assert failure.message.endswith("exited with code 3; its last output line: no payout")
    assert failure.text.endswith("output (last lines):\nconnecting\n<no payout> & done")
    assert '"exit_code": 3' in failure.text
    assert "output_tail" not in failure.text


def test_tier_rows_use_the_scenario_s_labels_else_the_tier_names() -> None:
    steps = [
        StepResult("smoke", "smoke", "passed", duration_s=0.25),
        StepResult("deep", "deep-checks", "skipped"),
    ]
    plain = RunOutcome("shop-1", "shop", "passed", "t0", "t1", steps, {"smoke": 0.25})
    report = render_report(plain)
    assert "| smoke | 0.25 |" in report
    assert "Tier A" not in report
    assert "deep-checks" not in report.split("## Steps")[0]  # it did not run: no time row
    labelled = RunOutcome(
        "shop-1", "shop", "passed", "t0", "t1", steps, {"smoke": 0.25},
        tier_labels={"smoke": "Smoke gate", "deep_checks": "Deep checks"},
    )  # fmt: skip
    rows = render_report(labelled)
    assert "| Smoke gate | 0.25 |" in rows
    assert "| Deep checks | — |" in rows  # a declared tier keeps its row, like MGM's


def test_a_stack_without_a_run_name_is_titled_run() -> None:
    plain = RunOutcome("shop-1", "shop", "passed", "t0", "t1")
    assert render_report(plain).startswith("# run shop: PASSED\n")
    suite = next(iter(junitparser.JUnitXml.fromstring(render_junit(plain))))
    assert suite.name == "run shop"


def test_the_mgm_stack_keeps_its_tier_b_titles() -> None:
    from envkit.spec.stack import load_stack

    mgm = load_stack(Path(__file__).resolve().parents[3] / "compose" / "tier-b.toml")
    assert mgm.run_name == "tier-b"


def test_a_repeat_row_has_one_time_per_tier_of_the_scenario() -> None:
    from envkit.evidence.outcome import RepeatRow

    steps = [StepResult("a", "smoke", "passed"), StepResult("b", "deep", "skipped")]
    outcome = RunOutcome("shop-1", "shop", "failed", "t0", "t1", steps, {"smoke": 1.5})
    assert RepeatRow.of(outcome).tiers == {"smoke": 1.5, "deep": 0.0}
