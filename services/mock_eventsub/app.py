"""mock-eventsub: builds, signs and delivers EventSub webhooks to the backend, like Twitch.

Routes:
    GET    /health                 liveness
    POST   /emit                   build + sign + deliver a notification (channel.chat.message)
    POST   /emit-challenge         deliver a webhook_callback_verification challenge
    POST   /api/twitch/eventsub    relay: verify a signed request, forward it to the backend
    GET    /deliveries             every delivery attempt, oldest first, with the raw bytes
    DELETE /deliveries             forget them
    POST   /reset                  forget them (same as DELETE /deliveries)

Configuration and its defaults: see the package docstring (`services.mock_eventsub`).

The relay verifies with the reference backend's own rules (`services.backend.eventsub`):
Id, Timestamp and Signature headers required, the Type header optional, RFC 3339 or
Unix-seconds timestamps within 10 minutes. It forwards the raw body with those headers,
adding the message type it inferred when none was sent, and answers with the backend's
status and body.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from ..backend.eventsub import (
    REFUSAL_STATUS,
    TYPE_NOTIFICATION,
    TYPE_VERIFICATION,
    VerificationError,
    compute_signature,
    load_json,
    message_type_of,
    verify_message,
)
from ..common import ApiError, Journal, log, read_raw_body, service_app
from ..common.http import validate
from .delivery import Deliverer, Outcome, Settings, utc_now
from .payloads import (
    Subscriptions,
    challenge_body,
    notification_body,
    serialise,
)
from .signing import (
    HEADER_ID,
    HEADER_RETRY,
    HEADER_SIGNATURE,
    HEADER_SUB_TYPE,
    HEADER_SUB_VERSION,
    HEADER_TIMESTAMP,
    HEADER_TYPE,
    twitch_timestamp,
)

if TYPE_CHECKING:
    import httpx  # loaded on the first call that sends a request

SERVICE = "mock-eventsub"
Clock = Callable[[], datetime]
# Optional Twitch headers a relayed request keeps when the sender sent them.
_OPTIONAL_RELAYED = (HEADER_RETRY, HEADER_SUB_TYPE, HEADER_SUB_VERSION)


def _now() -> datetime:
    return datetime.now(UTC)


def _serialised(payload: dict[str, Any]) -> bytes:
    try:
        return serialise(payload)
    except ValueError as exc:
        raise ApiError(
            400,
            "invalid_body",
            "The event cannot be sent as JSON: it holds an unpaired surrogate or a value "
            "such as NaN. Send plain Unicode text and finite numbers.",
        ) from exc


class EventSubMock:
    """The service's state and handlers: settings, subscriptions, deliverer, journal."""

    def __init__(
        self, settings: Settings, transport: httpx.AsyncBaseTransport | None, clock: Clock
    ) -> None:
        self.settings = settings
        self.clock = clock
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
            HEADER_SIGNATURE: compute_signature(secret, message_id, timestamp, body),
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
        from .models import EmitRequest  # pydantic loads with the first message emitted

        raw = await read_raw_body(request)
        emit = validate(EmitRequest, load_json(raw) if raw.strip() else {})
        broadcaster = emit.broadcasterUserId or self.settings.broadcaster_user_id
        payload = notification_body(emit, self.subscriptions, broadcaster)
        body = _serialised(payload)
        headers = self._signed_headers(
            TYPE_NOTIFICATION, emit.type, body, emit.messageId, emit.timestamp, emit.signWith
        )
        signed_with = "override" if emit.signWith is not None else "configured-secret"
        outcome = await self.deliverer.post("notification", headers, body, signed_with)
        report = self._report(headers, outcome)
        report["eventMessageId"] = payload["event"].get("message_id")
        return JSONResponse(report)

    async def emit_challenge(self, request: Request) -> Response:
        """Deliver a callback-verification challenge; report whether the backend echoed it."""
        from .models import ChallengeRequest

        raw = await read_raw_body(request)
        ask = validate(ChallengeRequest, load_json(raw) if raw.strip() else {})
        broadcaster = ask.broadcasterUserId or self.settings.broadcaster_user_id
        payload = challenge_body(ask, self.subscriptions, broadcaster)
        body = _serialised(payload)
        headers = self._signed_headers(
            TYPE_VERIFICATION, ask.type, body, ask.messageId, ask.timestamp, ask.signWith
        )
        signed_with = "override" if ask.signWith is not None else "configured-secret"
        outcome = await self.deliverer.post("challenge", headers, body, signed_with)
        report = self._report(headers, outcome)
        report["challenge"] = payload["challenge"]
        report["challengeEchoed"] = outcome.delivered and outcome.text == payload["challenge"]
        return JSONResponse(report)

    async def relay(self, request: Request) -> Response:
        """Verify a signed EventSub request like the backend, then forward it unchanged."""
        body = await read_raw_body(request)
        try:
            message = verify_message(self.settings.secret, request.headers, body, self.clock())
        except VerificationError as exc:
            log.warning("relay refused a webhook: {}", exc.message)
            raise ApiError(REFUSAL_STATUS, exc.code, exc.message) from exc
        if message.message_type is None:
            try:
                data = load_json(body)
            except ApiError:
                data = None  # not JSON: a notification, for the backend to refuse
            sent_type: str | bytes = message_type_of(message, data)
        else:
            sent_type = _raw_header(request, HEADER_TYPE)
        # Header values go out as the exact bytes that came in (the signature covers them).
        headers: dict[str, str | bytes] = {
            "Content-Type": _raw_header(request, "content-type") or "application/json",
            HEADER_ID: _raw_header(request, HEADER_ID),
            HEADER_TIMESTAMP: _raw_header(request, HEADER_TIMESTAMP),
            HEADER_SIGNATURE: _raw_header(request, HEADER_SIGNATURE),
            HEADER_TYPE: sent_type,
        }
        for name in _OPTIONAL_RELAYED:
            if name in request.headers:
                headers[name] = _raw_header(request, name)
        outcome = await self.deliverer.post("relay", headers, body, "relayed")
        if outcome.status is None:
            raise ApiError(
                502,
                "backend_unreachable",
                f"{outcome.error} Check Backend__BaseUrl and that the backend is running.",
                {"messageId": message.message_id},
            )
        return Response(outcome.content, outcome.status, media_type=outcome.content_type)

    async def deliveries(self, request: Request) -> Response:
        """List every delivery attempt, oldest first."""
        return JSONResponse(self.journal.entries())

    async def clear(self, request: Request) -> Response:
        """Forget every delivery; answer how many there were."""
        return JSONResponse({"cleared": self.journal.clear()})


def _raw_header(request: Request, name: str) -> bytes:
    value = request.headers.get(name)
    return value.encode("latin-1") if value is not None else b""


def create_app(
    env: Mapping[str, str],
    *,
    transport: httpx.AsyncBaseTransport | None = None,
    clock: Clock = _now,
) -> Starlette:
    """Build the mock-eventsub app from its environment (`transport` and `clock` are for tests)."""
    settings = Settings.from_env(env)
    if settings.secret_is_demo:
        log.warning(
            "Twitch__EventSubSecret is not set: signing and verifying with the documented demo "
            "secret; give the backend the same value"
        )
    log.info("mock-eventsub delivers to {}", settings.callback_url)
    mock = EventSubMock(settings, transport, clock)
    routes = [
        Route("/emit", mock.emit, methods=["POST"]),
        Route("/emit-challenge", mock.emit_challenge, methods=["POST"]),
        Route("/api/twitch/eventsub", mock.relay, methods=["POST"]),
        Route("/deliveries", mock.deliveries, methods=["GET"]),
        Route("/deliveries", mock.clear, methods=["DELETE"]),
        Route("/reset", mock.clear, methods=["POST"]),
    ]
    return service_app(SERVICE, routes, state={"mock": mock})
