"""synthetic-desktop: replays the desktop app's payout choreography on request.

Routes:
    GET    /health          {"status": "healthy", "component": "SyntheticDesktop", ...}
    POST   /run-sequence    {payoutId, characterName} (extra fields ignored) -> the run record
                            `{ok, steps, error, completedAtUtc, ...}` (200 once it ran)
    GET    /last-run        the newest run record; before any run
                            {"ok": false, "steps": [], "error": null, "completedAtUtc": null}
    GET    /runs            every run record, oldest first
    DELETE /runs            forget them
    POST   /reset           forget them (same as DELETE /runs)

Configuration (every variable optional; it starts with only `ASPNETCORE_URLS`):
    SyntheticDesktop__BackendBaseUrl   the backend's root URL (default http://127.0.0.1:8080)
    Mgm__ApiKey                        sent as X-MGM-ApiKey (default empty: not sent)
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from ..common import (
    Journal,
    read_json,
    service_app,
)
from .sequence import SequenceRunner, Settings

if TYPE_CHECKING:
    import httpx  # loaded on the first call that sends a request

SERVICE = "synthetic-desktop"
NO_RUN_YET = {"ok": False, "steps": [], "error": None, "completedAtUtc": None}


class DesktopMock:
    """The service's state and handlers: the sequence runner and the journal of runs."""

    def __init__(self, runner: SequenceRunner) -> None:
        self.runner = runner
        self.journal = Journal()

    async def run_sequence(self, request: Request) -> Response:
        """Run the choreography for one payout and answer with its record."""
        from .models import RunRequest  # pydantic loads with the first run

        ask = await read_json(request, RunRequest)
        record = await self.runner.run(ask)
        self.journal.append(record)
        return JSONResponse(record)

    async def last_run(self, request: Request) -> Response:
        """The newest run record; before any run, an empty not-ok record (MGM's shape)."""
        last = self.journal.last()
        if last is None:
            return JSONResponse(NO_RUN_YET)
        return JSONResponse(last)

    async def runs(self, request: Request) -> Response:
        """Every run record, oldest first."""
        return JSONResponse(self.journal.entries())

    async def clear(self, request: Request) -> Response:
        """Forget every run; answer how many there were."""
        return JSONResponse({"cleared": self.journal.clear()})


def create_app(
    env: Mapping[str, str], *, transport: httpx.AsyncBaseTransport | None = None
) -> Starlette:
    """Build the synthetic-desktop app from its environment (`transport` is for tests)."""
    mock = DesktopMock(SequenceRunner(Settings.from_env(env), transport))
    routes = [
        Route("/run-sequence", mock.run_sequence, methods=["POST"]),
        Route("/last-run", mock.last_run, methods=["GET"]),
        Route("/runs", mock.runs, methods=["GET"]),
        Route("/runs", mock.clear, methods=["DELETE"]),
        Route("/reset", mock.clear, methods=["POST"]),
    ]
    return service_app(SERVICE, routes, state={"mock": mock})
