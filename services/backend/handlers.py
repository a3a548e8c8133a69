"""The backend's route handlers (CONTRACT.md, "Backend"), one method per route.

Decisions where the contract is silent:

* Payout ids are UUIDs; a path id that is not a UUID is answered 404, like an
  unknown one.
* `confirm-acceptance` answers 400 `invalid_character_name` when the name differs
  (the real backend's answer) and 409 `payout_not_open` unless the payout is
  Pending or InProgress. It changes no state.
* `GET /api/version` is the readiness probe that works for both backends, so it
  answers 503 until the database schema is in place (the real backend migrates
  before it listens).
* Desktop and harness bodies match their keys in any case, like ASP.NET.
* A signed EventSub body that is not JSON, or has no `subscription.type`, is 400;
  any other message that enrolls nobody (a chat event missing fields included)
  is 204. Challenge messages are never
  deduplicated (echoing twice is harmless); every other message id is stored in
  the same transaction as its effect, so a failed delivery can be retried.
* The chat announcement runs after the Sent transition commits and before the
  PATCH answers; its failure is logged and the PATCH still answers 200, with
  `isRewardSentAnnouncedToChat` saying whether it went out.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response

from ..common import ApiError, log, read_json
from ..common.http import read_raw_body, validate
from . import SERVICE_NAME, store
from .config import BackendConfig
from .db import Connection, Database
from .enrollment import Ignored, check_identity, evaluate_message
from .eventsub import (
    CHAT_MESSAGE,
    REFUSAL_STATUS,
    TYPE_NOTIFICATION,
    TYPE_REVOCATION,
    TYPE_VERIFICATION,
    VerificationError,
    load_json,
    message_type_of,
    stored_message_id,
    verify_message,
)
from .helix import ChatAnnouncer
from .jwt_auth import API_KEY_HEADER, bearer_token, check_api_key
from .jwt_auth import verify_extension_jwt as verify_jwt
from .payouts import (
    OPEN_STATUSES,
    IllegalTransitionError,
    Payout,
    PayoutStatus,
    announcement_text,
    check_transition,
    parse_payout_id,
    parse_status,
)
from .store import OpenPayoutExistsError

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    """The current time in UTC."""
    return datetime.now(UTC)


@dataclass
class Backend:
    """The route handlers, with everything they use passed in."""

    config: BackendConfig
    db: Database
    announcer: ChatAnnouncer
    clock: Clock = utc_now

    # -- health and version -------------------------------------------------------------

    async def ready(self, request: Request) -> Response:
        """Readiness: 200 when the database answers and the schema exists, else 503."""
        problem = await self.db.check_ready()
        if problem is not None:
            raise ApiError(
                503,
                "not_ready",
                "The backend's database is not reachable or its schema is not in place yet.",
                {"database": problem},
            )
        return JSONResponse({"service": "backend", "status": "ready"})

    async def version(self, request: Request) -> Response:
        """The `Version__*` settings, plus what changes behaviour; 503 until the schema exists."""
        if not self.db.schema_ready:
            problem = await self.db.check_ready()
            if problem is not None:
                raise ApiError(
                    503,
                    "not_ready",
                    "The backend cannot serve requests yet: its database is not reachable or "
                    "its schema is not in place.",
                    {"database": problem},
                )
        return JSONResponse(
            {
                **self.config.version.to_json(),
                "service": SERVICE_NAME,
                "implementation": "python",
                "environment": self.config.environment,
                "e2eHarness": self.config.harness_enabled,
            }
        )

    # -- EventSub ------------------------------------------------------------------------

    async def eventsub(self, request: Request) -> Response:
        """Verify a Twitch webhook, then answer a challenge or process a notification once."""
        from . import models  # pydantic loads with the first request that needs it

        raw = await read_raw_body(request)
        try:
            message = verify_message(
                self.config.eventsub_secret, request.headers, raw, self.clock()
            )
        except VerificationError as exc:
            log.warning("eventsub message refused: {}", exc.message)
            raise ApiError(REFUSAL_STATUS, exc.code, exc.message) from exc
        data = load_json(raw)
        message_type = message_type_of(message, data)
        if message_type == TYPE_VERIFICATION:
            challenge = validate(models.Challenge, data).challenge
            try:
                echo = challenge.encode("utf-8")
            except UnicodeEncodeError as exc:  # an unpaired surrogate cannot be echoed
                raise ApiError(
                    400, "invalid_body", "The challenge is not valid Unicode text."
                ) from exc
            log.info("eventsub callback verification answered")
            return PlainTextResponse(echo)
        envelope = validate(models.Envelope, data)
        async with self.db.transaction() as conn:
            if not await store.claim_message(
                conn, stored_message_id(message.message_id), message_type
            ):
                shown = message.message_id[:100]
                log.info("eventsub message {!r} seen before; acknowledged", shown)
                return Response(status_code=204)
            kind = envelope.subscription.type
            if message_type == TYPE_NOTIFICATION and kind == CHAT_MESSAGE:
                await self._enroll(conn, envelope.event)
            elif message_type == TYPE_REVOCATION:
                log.warning(
                    "eventsub subscription {!r} revoked (status {!r})",
                    kind,
                    envelope.subscription.status,
                )
            else:
                log.info("eventsub {!r} for {!r} ignored", message_type, kind)
        return Response(status_code=204)

    async def _enroll(self, conn: Connection, raw_event: dict[str, Any] | None) -> None:
        from pydantic import ValidationError

        from . import models  # loaded by `eventsub` already

        try:
            event = models.ChatMessageEvent.model_validate(raw_event or {})
        except ValidationError as exc:
            fields = sorted({".".join(str(p) for p in err["loc"]) for err in exc.errors()})
            log.info("chat message ignored: event fields of the wrong type: {}", ", ".join(fields))
            return
        viewer = event.chatter_user_id
        decision = check_identity(event.message_id, viewer, event.display_name) or (
            evaluate_message(event.text, event.badge_set_ids)
        )
        if isinstance(decision, Ignored):
            log.info("chat message from viewer {!r} ignored: {}", viewer[:100], decision.reason)
            return
        refusal = await store.enroll(conn, viewer, event.display_name, decision.character_name)
        if refusal is not None:
            log.info("enrollment of viewer {!r} ignored: {}", viewer, refusal.reason)
            return
        log.info("viewer {!r} enrolled as {}", viewer, decision.character_name)

    # -- viewer --------------------------------------------------------------------------

    async def pool_me(self, request: Request) -> Response:
        """`{isEnrolled, characterName}` for the viewer named by the extension JWT."""
        token = bearer_token(request.headers.get("authorization"))
        viewer = verify_jwt(token, self.config.extension_secret, self.config.extension_client_id)
        async with self.db.transaction() as conn:
            entry = await store.pool_entry(conn, viewer.user_id)
        return JSONResponse(
            {
                "isEnrolled": entry is not None,
                "characterName": entry.character_name if entry is not None else None,
            }
        )

    # -- desktop -------------------------------------------------------------------------

    def _require_api_key(self, request: Request) -> None:
        check_api_key(request.headers.get(API_KEY_HEADER), self.config.api_key)

    async def pending(self, request: Request) -> Response:
        """Every Pending payout, oldest first."""
        self._require_api_key(request)
        async with self.db.transaction() as conn:
            payouts = await store.pending_payouts(conn)
        return JSONResponse([payout.to_json() for payout in payouts])

    async def confirm_acceptance(self, request: Request) -> Response:
        """Check the desktop's character name against the payout's (exact match, else 400)."""
        from . import models  # pydantic loads with the first request that needs it

        self._require_api_key(request)
        payout_id = _payout_id(request)
        body = await read_json(request, models.ConfirmBody, any_case_keys=True)
        async with self.db.transaction() as conn:
            payout = await store.get_payout(conn, payout_id)
        if payout is None:
            raise _payout_not_found(str(payout_id))
        if body.characterName != payout.character_name:
            raise ApiError(
                400,
                "invalid_character_name",
                "The character name does not match the payout's exactly (case and spelling).",
                {"expected": payout.character_name, "received": body.characterName[:100]},
            )
        if payout.status not in OPEN_STATUSES:
            raise ApiError(
                409,
                "payout_not_open",
                f"Payout {payout.id} is {payout.status}; only Pending or InProgress payouts "
                "can be accepted.",
                {"status": payout.status.value},
            )
        return JSONResponse(payout.to_json())

    async def set_status(self, request: Request) -> Response:
        """Move a payout along the state machine; Sent also empties the pool entry and announces."""
        from . import models  # pydantic loads with the first request that needs it

        self._require_api_key(request)
        payout_id = _payout_id(request)
        body = await read_json(request, models.StatusBody, any_case_keys=True)
        target = parse_status(body.status)
        if target is None:
            shown = body.status[:100] if isinstance(body.status, str) else body.status
            raise ApiError(
                400,
                "invalid_status",
                f"{shown!r} is not a payout status; send a name or its number 0-5.",
                {
                    "received": shown,
                    "allowed": {s.value: s.number for s in PayoutStatus},
                },
            )
        async with self.db.transaction() as conn:
            payout = await store.get_payout(conn, payout_id, lock=True)
            if payout is None:
                raise _payout_not_found(str(payout_id))
            try:
                check_transition(payout.status, target)
            except IllegalTransitionError as exc:
                raise ApiError(
                    409,
                    "illegal_transition",
                    str(exc),
                    {"from": exc.current.value, "to": exc.target.value},
                ) from exc
            updated = await store.set_status(conn, payout_id, target)
            if target is PayoutStatus.SENT:
                await store.remove_from_pool(conn, updated.twitch_user_id)
        log.info("payout {} moved {} -> {}", updated.id, payout.status, target)
        if target is PayoutStatus.SENT:
            updated = await self._announce(updated)
        return JSONResponse(updated.to_json())

    async def _announce(self, payout: Payout) -> Payout:
        """Announce a Sent payout in chat; record success on the payout, log a failure."""
        result = await self.announcer.announce(announcement_text(payout))
        log.info(
            "chat announcement for payout {}: {} after {} attempt(s) ({})",
            payout.id,
            result.outcome,
            result.attempts,
            result.detail,
        )
        if result.outcome != "sent":
            return payout
        try:
            async with self.db.transaction() as conn:
                marked = await store.mark_announced(conn, payout.id)
        except ApiError as exc:  # the message went out; only the flag could not be stored
            log.warning("payout {} announced, but the flag was not stored: {}", payout.id, exc)
            return payout
        return marked or payout

    # -- E2E harness ---------------------------------------------------------------------

    async def prepare_pending_payout(self, request: Request) -> Response:
        """Make a pooled viewer the winner: a new Pending payout for their character.

        Checks in the real backend's order: API key (401), harness enabled (404),
        blank id or viewer not in the pool (400), an open payout already (409).
        """
        from . import models  # pydantic loads with the first request that needs it

        self._require_api_key(request)
        if not self.config.harness_enabled:
            raise ApiError(
                404,
                "not_found",
                "The E2E harness is disabled; it needs ASPNETCORE_ENVIRONMENT=Development and "
                "Mgm__EnableE2eHarness=true.",
            )
        body = await read_json(request, models.HarnessBody, any_case_keys=True)
        viewer = body.twitchUserId.strip()
        if not viewer:
            raise ApiError(400, "blank_twitch_user_id", "twitchUserId must not be blank.")
        async with self.db.transaction() as conn:
            entry = await store.pool_entry(conn, viewer)
            if entry is None:
                raise ApiError(
                    400,
                    "viewer_not_in_pool",
                    f"Viewer {viewer[:100]!r} is not in the pool; enroll them with "
                    "'!twgold <Name>' first.",
                    {"twitchUserId": viewer[:100]},
                )
            try:
                payout = await store.create_payout(conn, entry)
            except OpenPayoutExistsError as exc:
                raise ApiError(
                    409,
                    "active_payout_exists",
                    f"Viewer {viewer[:100]!r} already has a Pending or InProgress payout; "
                    "finish or cancel it first.",
                    {"twitchUserId": viewer[:100], "payoutId": str(exc) or None},
                ) from exc
        log.info("harness created payout {} for viewer {}", payout.id, viewer)
        return JSONResponse({"payoutId": str(payout.id), "characterName": payout.character_name})


def _payout_id(request: Request) -> uuid.UUID:
    raw = str(request.path_params["payout_id"])
    payout_id = parse_payout_id(raw)
    if payout_id is None:
        raise _payout_not_found(raw)
    return payout_id


def _payout_not_found(raw: str) -> ApiError:
    return ApiError(404, "payout_not_found", "No payout has this id.", {"id": raw[:100]})
