"""Plumbing shared by every MGM service: errors, JSON input, request log, journal, runner."""

from __future__ import annotations

from services.common.app import service_app
from services.common.errors import ApiError, error_response, install_error_handlers
from services.common.http import JsonProblem, loads_strict, read_json, read_raw_body
from services.common.journal import Journal
from services.common.logging import RequestLogMiddleware, configure_logging, log
from services.common.runner import listen_address

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
