"""mock-eventsub: builds, signs and delivers EventSub webhooks to the backend, like Twitch.

Routes:
    GET    /health                 liveness
    POST   /emit                   build + sign + deliver a notification (channel.chat.message)
    POST   /emit-challenge         deliver a webhook_callback_verification challenge
    POST   /api/twitch/eventsub    relay: verify a signed request, forward it unchanged
    GET    /deliveries             every delivery attempt, oldest first
    DELETE /deliveries             forget them
    POST   /reset                  forget them (same as DELETE /deliveries)
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from services.common import (
    ApiError,
    Journal,
    read_raw_body,
    service_app,
)
from services.common.http import parse_json, validate
from services.mock_eventsub.delivery import Deliverer, Outcome, Settings, utc_now
from services.mock_eventsub.payloads import (
    ChallengeRequest,
    EmitRequest,
    Subscriptions,
    challenge_body,
    notification_body,
    serialise,
)
from services.mock_eventsub.signing import (
    HEADER_ID,
    HEADER_RETRY,
    HEADER_SIGNATURE,
    HEADER_SUB_TYPE,
    HEADER_SUB_VERSION,
    HEADER_TIMESTAMP,
    HEADER_TYPE,
    sign,
    twitch_timestamp,
    verify,
)

SERVICE = "mock-eventsub"
# Headers a relayed request keeps; hop-by-hop headers (Host, Content-Length, ...) are rebuilt.
_RELAYED_HEADERS = (
    HEADER_ID,
    HEADER_TIMESTAMP,
    HEADER_SIGNATURE,
    HEADER_TYPE,
    HEADER_RETRY,
    HEADER_SUB_TYPE,
    HEADER_SUB_VERSION,
    "Content-Type",
)


class EventSubMock:
    """The service's state and handlers: settings, subscriptions, deliverer, journal."""

    def __init__(self, settings: Settings, transport: httpx.AsyncBaseTransport | None) -> None:
        self.settings = settings
        self.journal = Journal()
        self.subscriptions = Subscriptions(callback=settings.callback_url, created_at=utc_now())
        self.deliverer = Deliverer(settings.callback_url, self.journal, transport)

    def _signed_headers(
        self,
        message_type: str,
        sub_type: str,
        body: bytes,
        message_id: str | None,
        timestamp: str | None,
        sign_with: str | None,
    ) -> dict[str, str]:
        message_id = message_id or str(uuid.uuid4())
        timestamp = timestamp or twitch_timestamp()
        secret = sign_with if sign_with is not None else self.settings.secret
        return {
            "Content-Type": "application/json",
            HEADER_ID: message_id,
            HEADER_RETRY: "0",
            HEADER_TYPE: message_type,
            HEADER_SIGNATURE: sign(secret, message_id, timestamp, body),
            HEADER_TIMESTAMP: timestamp,
            HEADER_SUB_TYPE: sub_type,
            HEADER_SUB_VERSION: "1",
        }

    @staticmethod
    def _report(headers: Mapping[str, str], outcome: Outcome) -> dict[str, object]:
        if outcome.status is None:
            raise ApiError(
                502,
                "backend_unreachable",
                f"{outcome.error} Check Backend__BaseUrl and that the backend is running.",
                {"messageId": headers[HEADER_ID]},
            )
        return {
            "delivered": outcome.delivered,
            "status": outcome.status,
            "body": outcome.text,
            "messageId": headers[HEADER_ID],
            "timestamp": headers[HEADER_TIMESTAMP],
            "error": outcome.error,
        }

    async def emit(self, request: Request) -> Response:
        """Build, sign and deliver one notification; answer with what the backend said."""
        raw = await read_raw_body(request)
        emit = validate(EmitRequest, parse_json(raw) if raw.strip() else {})
        broadcaster = emit.broadcasterUserId or self.settings.broadcaster_user_id
        payload = notification_body(emit, self.subscriptions, broadcaster)
        body = serialise(payload)
        headers = self._signed_headers(
            "notification", emit.type, body, emit.messageId, emit.timestamp, emit.signWith
        )
        signed_with = "override" if emit.signWith is not None else "configured-secret"
        outcome = await self.deliverer.post("notification", headers, body, signed_with)
        report = self._report(headers, outcome)
        report["eventMessageId"] = payload["event"].get("message_id")
        return JSONResponse(report)

    async def emit_challenge(self, request: Request) -> Response:
        """Deliver a callback-verification challenge; report whether the backend echoed it."""
        raw = await read_raw_body(request)
        ask = validate(ChallengeRequest, parse_json(raw) if raw.strip() else {})
        broadcaster = ask.broadcasterUserId or self.settings.broadcaster_user_id
        payload = challenge_body(ask, self.subscriptions, broadcaster)
        body = serialise(payload)
        headers = self._signed_headers(
            "webhook_callback_verification",
            ask.type,
            body,
            ask.messageId,
            ask.timestamp,
            ask.signWith,
        )
        signed_with = "override" if ask.signWith is not None else "configured-secret"
        outcome = await self.deliverer.post("challenge", headers, body, signed_with)
        report = self._report(headers, outcome)
        report["challenge"] = payload["challenge"]
        report["challengeEchoed"] = outcome.delivered and outcome.text == payload["challenge"]
        return JSONResponse(report)

    async def relay(self, request: Request) -> Response:
        """Verify a signed EventSub request and forward it unchanged to the backend."""
        body = await read_raw_body(request)
        verdict = verify(self.settings.secret, request.headers, body)
        if not verdict.ok:
            status = 400 if verdict.code == "missing_headers" else 403
            raise ApiError(status, verdict.code, verdict.reason)
        headers = {
            name: request.headers[name] for name in _RELAYED_HEADERS if name in request.headers
        }
        outcome = await self.deliverer.post("relay", headers, body, "relayed")
        if outcome.status is None:
            raise ApiError(
                502,
                "backend_unreachable",
                f"{outcome.error} Check Backend__BaseUrl and that the backend is running.",
                {"messageId": headers.get(HEADER_ID)},
            )
        return Response(outcome.content, outcome.status, media_type=outcome.content_type)

    async def deliveries(self, request: Request) -> Response:
        """List every delivery attempt, oldest first."""
        return JSONResponse(self.journal.entries())

    async def clear(self, request: Request) -> Response:
        """Forget every delivery; answer how many there were."""
        return JSONResponse({"cleared": self.journal.clear()})


def create_app(
    env: Mapping[str, str], *, transport: httpx.AsyncBaseTransport | None = None
) -> Starlette:
    """Build the mock-eventsub app from its environment (`transport` is for tests)."""
    mock = EventSubMock(Settings.from_env(env), transport)
    routes = [
        Route("/emit", mock.emit, methods=["POST"]),
        Route("/emit-challenge", mock.emit_challenge, methods=["POST"]),
        Route("/api/twitch/eventsub", mock.relay, methods=["POST"]),
        Route("/deliveries", mock.deliveries, methods=["GET"]),
        Route("/deliveries", mock.clear, methods=["DELETE"]),
        Route("/reset", mock.clear, methods=["POST"]),
    ]
    return service_app(SERVICE, routes, state={"mock": mock})
