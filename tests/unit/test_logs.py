"""envkit's one logging setup: stderr at INFO (DEBUG when verbose), every message redacted."""

from __future__ import annotations

import io
import sys
from collections.abc import Iterator

import pytest

from envkit.evidence.redact import MASK, Redactor
from envkit.logs import configure_logging, log, no_progress


@pytest.fixture(autouse=True)
def plain_logging() -> Iterator[None]:
    """Leave loguru configured without secrets for the tests after these."""
    yield
    configure_logging(Redactor([]))


def test_info_is_shown_and_debug_only_when_verbose(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging(Redactor([]))
    log.debug("probe detail")
    log.info("stack up")
    err = capsys.readouterr().err
    assert "stack up" in err
    assert "probe detail" not in err
    configure_logging(Redactor([]), verbose=True)
    log.debug("probe detail")
    assert "probe detail" in capsys.readouterr().err


def test_the_line_shows_time_level_and_message(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging(Redactor([]))
    log.warning("disk almost full")
    line = capsys.readouterr().err
    assert line.endswith(" WARNING disk almost full\n")
    assert line[2] == line[5] == ":"  # HH:MM:SS first, no colour codes on a non-terminal


def test_secrets_in_messages_and_their_arguments_are_masked(
    capsys: pytest.CaptureFixture[str],
) -> None:
    configure_logging(Redactor(["hunter22-secret"]))
    log.error("login as {} failed: hunter22-secret rejected", "hunter22-secret")
    err = capsys.readouterr().err
    assert "hunter22" not in err
    assert f"login as {MASK} failed: {MASK} rejected" in err


def test_the_log_follows_a_replaced_stderr(monkeypatch: pytest.MonkeyPatch) -> None:
    configure_logging(Redactor([]))
    first, second = io.StringIO(), io.StringIO()
    monkeypatch.setattr(sys, "stderr", first)
    log.info("one")
    monkeypatch.setattr(sys, "stderr", second)
    first.close()  # a test runner's closed capture must not break the log
    log.info("two")
    assert second.getvalue().endswith("two\n")
    assert "one" not in second.getvalue()


def test_no_progress_shows_nothing(capsys: pytest.CaptureFixture[str]) -> None:
    no_progress("starting 6 services")
    assert capsys.readouterr() == ("", "")


_LIBRARY_THEN_COMMAND = """
import sys
from loguru import logger
import envkit.logs
from envkit.evidence.redact import Redactor

def log_from(module, message):
    # loguru names a record by the calling module, which decides whether it is enabled
    code = "from envkit.logs import log\\nlog.info(MESSAGE)"
    exec(code, {"__name__": module, "MESSAGE": message})

logger.remove()
logger.add(sys.stdout, format="{message}")
log_from("envkit.lifecycle.fake", "library line with s3cr3t-value")
log_from("envkit.services.fake", "a service in-process")
envkit.logs.configure_logging(Redactor(["s3cr3t-value"]))
log_from("envkit.lifecycle.fake", "command line with s3cr3t-value")
"""


def test_envkit_is_quiet_as_a_library_until_configured_and_then_masks_secrets() -> None:
    import subprocess

    result = subprocess.run(
        [sys.executable, "-c", _LIBRARY_THEN_COMMAND],
        capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    assert result.stdout.splitlines() == ["a service in-process"]
    assert "library line" not in result.stderr
    assert "command line with ***" in result.stderr
    assert "s3cr3t-value" not in result.stdout + result.stderr
