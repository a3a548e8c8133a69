"""The SQL behind each route: processed messages, the pool, payouts. Callers own the transaction.

Rules that touch one viewer (enrollment, creating a payout) take a per-viewer
advisory lock first, so two deliveries for the same viewer cannot both pass
the open-payout and gold-cap checks.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from psycopg import errors

from .db import Connection, fetch_all, fetch_one
from .enrollment import (
    GOLD_CAP,
    GOLD_PER_PAYOUT,
    Ignored,
    name_key,
    within_gold_cap,
)
from .payouts import Payout, PayoutStatus


class OpenPayoutExistsError(Exception):
    """The viewer already has a Pending or InProgress payout."""


@dataclass(frozen=True)
class PoolEntry:
    """A viewer waiting in the pool under a character name."""

    twitch_user_id: str
    display_name: str
    character_name: str
    enrollment_request_id: uuid.UUID | None = None


async def claim_message(conn: Connection, message_id: str, message_type: str) -> bool:
    """Record an EventSub message id; False when it was already processed."""
    row = await fetch_one(
        conn,
        "INSERT INTO eventsub_messages (message_id, message_type) VALUES (%s, %s) "
        "ON CONFLICT (message_id) DO NOTHING RETURNING message_id",
        (message_id, message_type),
    )
    return row is not None


async def _lock_viewer(conn: Connection, twitch_user_id: str) -> None:
    await conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (twitch_user_id,))


async def enroll(
    conn: Connection, twitch_user_id: str, display_name: str, character_name: str
) -> Ignored | None:
    """Add or replace the viewer's pool entry; return why not when a stored rule refuses it."""
    await _lock_viewer(conn, twitch_user_id)
    open_payout = await fetch_one(
        conn,
        "SELECT status FROM payouts WHERE twitch_user_id = %s "
        "AND status IN ('Pending', 'InProgress') LIMIT 1",
        (twitch_user_id,),
    )
    if open_payout is not None:
        return Ignored(f"the viewer already has a payout in state {open_payout['status']}")
    sent = await sent_gold(conn, twitch_user_id)
    if not within_gold_cap(sent):
        return Ignored(
            f"the viewer has received {sent} gold; another {GOLD_PER_PAYOUT} would exceed "
            f"the cap of {GOLD_CAP}"
        )
    key = name_key(character_name)
    taken = "another viewer already holds that character name"
    holder = await fetch_one(
        conn,
        "SELECT twitch_user_id FROM pool_entries WHERE character_key = %s AND twitch_user_id <> %s",
        (key, twitch_user_id),
    )
    if holder is not None:
        return Ignored(taken)
    try:
        async with conn.transaction():  # a savepoint: a lost race must not abort the message
            # Every enrollment is a new request; the payout made from it carries its id.
            await conn.execute(
                "INSERT INTO pool_entries (twitch_user_id, display_name, character_name, "
                "character_key, enrollment_request_id) VALUES (%s, %s, %s, %s, %s) "
                "ON CONFLICT (twitch_user_id) DO UPDATE SET display_name = EXCLUDED.display_name, "
                "character_name = EXCLUDED.character_name, "
                "character_key = EXCLUDED.character_key, "
                "enrollment_request_id = EXCLUDED.enrollment_request_id, "
                "enrolled_at = clock_timestamp()",
                (twitch_user_id, display_name, character_name, key, uuid.uuid4()),
            )
    except errors.UniqueViolation:
        return Ignored(taken)
    return None


async def sent_gold(conn: Connection, twitch_user_id: str) -> int:
    """Total gold of the viewer's Sent payouts."""
    row = await fetch_one(
        conn,
        "SELECT COALESCE(SUM(amount), 0) AS total FROM payouts "
        "WHERE twitch_user_id = %s AND status = 'Sent'",
        (twitch_user_id,),
    )
    return int(row["total"]) if row is not None else 0


async def pool_entry(conn: Connection, twitch_user_id: str) -> PoolEntry | None:
    """The viewer's pool entry, or None when they are not enrolled."""
    row = await fetch_one(
        conn,
        "SELECT twitch_user_id, display_name, character_name, enrollment_request_id "
        "FROM pool_entries WHERE twitch_user_id = %s",
        (twitch_user_id,),
    )
    if row is None:
        return None
    return PoolEntry(
        row["twitch_user_id"],
        row["display_name"],
        row["character_name"],
        row["enrollment_request_id"],
    )


async def remove_from_pool(conn: Connection, twitch_user_id: str) -> bool:
    """Delete the viewer's pool entry; True when there was one."""
    row = await fetch_one(
        conn,
        "DELETE FROM pool_entries WHERE twitch_user_id = %s RETURNING twitch_user_id",
        (twitch_user_id,),
    )
    return row is not None


async def create_payout(conn: Connection, entry: PoolEntry) -> Payout:
    """Insert a new Pending payout of the standard amount for a pooled viewer.

    Raises `OpenPayoutExistsError` when the viewer already has a Pending or
    InProgress payout (checked under the viewer's lock, and by a unique index).
    """
    await _lock_viewer(conn, entry.twitch_user_id)
    open_payout = await fetch_one(
        conn,
        "SELECT id FROM payouts WHERE twitch_user_id = %s "
        "AND status IN ('Pending', 'InProgress') LIMIT 1",
        (entry.twitch_user_id,),
    )
    if open_payout is not None:
        raise OpenPayoutExistsError(str(open_payout["id"]))
    try:
        async with conn.transaction():  # a savepoint, so a lost race leaves the caller usable
            row = await fetch_one(
                conn,
                "INSERT INTO payouts (id, twitch_user_id, twitch_display_name, character_name, "
                "amount, enrollment_request_id, status) VALUES (%s, %s, %s, %s, %s, %s, %s) "
                "RETURNING *",
                (
                    uuid.uuid4(),
                    entry.twitch_user_id,
                    entry.display_name,
                    entry.character_name,
                    GOLD_PER_PAYOUT,
                    entry.enrollment_request_id,
                    PayoutStatus.PENDING.value,
                ),
            )
    except errors.UniqueViolation as exc:
        raise OpenPayoutExistsError("") from exc
    assert row is not None  # INSERT … RETURNING always yields the row
    return Payout.from_row(row)


async def get_payout(
    conn: Connection, payout_id: uuid.UUID, *, lock: bool = False
) -> Payout | None:
    """The payout with this id (row-locked for the transaction when `lock`), or None."""
    if lock:
        row = await fetch_one(conn, "SELECT * FROM payouts WHERE id = %s FOR UPDATE", (payout_id,))
    else:
        row = await fetch_one(conn, "SELECT * FROM payouts WHERE id = %s", (payout_id,))
    return Payout.from_row(row) if row is not None else None


async def set_status(conn: Connection, payout_id: uuid.UUID, status: PayoutStatus) -> Payout:
    """Store a new status (the caller has checked the transition) and return the payout."""
    row = await fetch_one(
        conn,
        "UPDATE payouts SET status = %s, updated_at = clock_timestamp() WHERE id = %s RETURNING *",
        (status.value, payout_id),
    )
    assert row is not None  # the caller holds the row lock
    return Payout.from_row(row)


async def mark_announced(conn: Connection, payout_id: uuid.UUID) -> Payout | None:
    """Record that the Sent payout was announced in chat; return the payout."""
    row = await fetch_one(
        conn,
        "UPDATE payouts SET is_reward_sent_announced_to_chat = true, "
        "updated_at = clock_timestamp() WHERE id = %s RETURNING *",
        (payout_id,),
    )
    return Payout.from_row(row) if row is not None else None


async def pending_payouts(conn: Connection) -> list[Payout]:
    """Every Pending payout, oldest first."""
    rows = await fetch_all(
        conn,
        "SELECT * FROM payouts WHERE status = 'Pending' ORDER BY created_at, id",
    )
    return [Payout.from_row(row) for row in rows]
