"""The one place envkit configures loguru; every line passes through the redactor.

As a library (the Python API, the pytest plugin) envkit is quiet: its loggers are disabled,
as loguru advises for libraries, so nothing unredacted reaches a caller's stderr.
`configure_logging` (which the commands call) turns them on with every secret masked. The
services' own loggers (`envkit.services`, when a test runs one in-process) stay on.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import TYPE_CHECKING

from loguru import logger

from envkit.evidence.redact import Redactor

if TYPE_CHECKING:
    from loguru import Message, Record

log = logger
logger.disable("envkit")
logger.enable("envkit.services")

Progress = Callable[[str], None]  # a one-line status for people (the tasks show it)


def no_progress(message: str) -> None:
    """A Progress that shows nothing."""


def configure_logging(redactor: Redactor, *, verbose: bool = False) -> None:
    """Log to stderr at INFO (DEBUG when verbose), secrets masked."""

    def scrub(record: Record) -> None:
        record["message"] = redactor(record["message"])

    logger.remove()
    logger.configure(patcher=scrub)
    logger.enable("envkit")
    logger.add(
        _stderr,
        colorize=sys.stderr.isatty(),
        level="DEBUG" if verbose else "INFO",
        format="<dim>{time:HH:mm:ss}</dim> <level>{level: <7}</level> {message}",
        backtrace=False,
        diagnose=False,
    )


def _stderr(message: Message) -> None:
    # Whatever sys.stderr is at write time, so a stream replaced later (a test runner's
    # capture, for one) never leaves the log writing to a closed file.
    sys.stderr.write(message)
