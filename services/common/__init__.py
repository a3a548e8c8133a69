"""Plumbing shared by every MGM service: errors, JSON input, request log, journal, runner."""

from __future__ import annotations

from .app import service_app
from .errors import ApiError, error_response, install_error_handlers
from .http import JsonProblem, loads_strict, read_json, read_raw_body
from .journal import Journal
from .logging import RequestLogMiddleware, configure_logging, log
from .runner import listen_address

__all__ = [
    "ApiError",
    "Journal",
    "JsonProblem",
    "RequestLogMiddleware",
    "configure_logging",
    "error_response",
    "install_error_handlers",
    "listen_address",
    "loads_strict",
    "log",
    "read_json",
    "read_raw_body",
    "service_app",
]
