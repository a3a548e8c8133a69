"""The one place envkit configures loguru; every line passes through the redactor."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import TYPE_CHECKING

from loguru import logger

from envkit.redact import Redactor

if TYPE_CHECKING:
    from loguru import Record

log = logger

Progress = Callable[[str], None]  # a one-line status for people (the tasks show it)


def no_progress(message: str) -> None:
    """A Progress that shows nothing."""


def configure_logging(redactor: Redactor, *, verbose: bool = False) -> None:
    """Log to stderr at INFO (DEBUG when verbose), secrets masked."""

    def scrub(record: Record) -> None:
        record["message"] = redactor(record["message"])

    logger.remove()
    logger.configure(patcher=scrub)
    logger.add(
        sys.stderr,
        level="DEBUG" if verbose else "INFO",
        format="<dim>{time:HH:mm:ss}</dim> <level>{level: <7}</level> {message}",
        backtrace=False,
        diagnose=False,
    )
