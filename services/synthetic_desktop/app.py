"""synthetic-desktop: replays the desktop app's payout choreography on request.

Routes:
    GET    /health          liveness
    POST   /run-sequence    {payoutId, characterName} -> the run record (always 200 once it ran)
    GET    /last-run        the newest run record (404 before any run)
    GET    /runs            every run record, oldest first
    DELETE /runs            forget them
    POST   /reset           forget them (same as DELETE /runs)
"""

from __future__ import annotations

from collections.abc import Mapping

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from services.common import (
    ApiError,
    Journal,
    read_json,
    service_app,
)
from services.synthetic_desktop.sequence import RunRequest, SequenceRunner, Settings

SERVICE = "synthetic-desktop"


class DesktopMock:
    """The service's state and handlers: the sequence runner and the journal of runs."""

    def __init__(self, runner: SequenceRunner) -> None:
        self.runner = runner
        self.journal = Journal()

    async def run_sequence(self, request: Request) -> Response:
        """Run the choreography for one payout and answer with its record."""
        ask = await read_json(request, RunRequest)
        record = await self.runner.run(ask)
        self.journal.append(record)
        return JSONResponse(record)

    async def last_run(self, request: Request) -> Response:
        """The newest run record; 404 before any run."""
        last = self.journal.last()
        if last is None:
            raise ApiError(
                404,
                "no_runs",
                "synthetic-desktop has not run a sequence yet; POST /run-sequence first.",
            )
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
