"""Ryuk's wire protocol and the reaper's bookkeeping, with no socket and no engine.

A client connects over TCP and sends filter lines such as
`label=org.testcontainers.session-id=<id>` (a URL query string: `label=a=b&label=c=d`
matches what carries both labels); the reaper answers `ACK` to each filter it takes. One
reaper serves every envkit process on its engine, so it takes only filters that name one
testcontainers session (further labels narrow them): nothing it is sent can match another
session's resources, nor every resource carrying some label.

A filter belongs to the connections that sent it and is held while one of them stays
open. When the last one closes, the filter waits out the grace period (Ryuk's reconnection
timeout: a client may connect again and send it anew); after that it is due, and the
server removes what it matches. Other connections' filters are untouched. The reaper is
finished once nothing is held or due and no client has been connected for the idle time,
or when no client came within the connection timeout.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import parse_qsl

ACK = b"ACK\n"
ERR = b"ERR "  # starts the answer to a refused filter; the reason follows on the line
# A token envkit gives each reaper it starts, as an environment variable and as a label on
# the reaper's container: the reaper finds its own container by it on the engine it reaches.
TOKEN_ENV = "ENVKIT_REAPER_TOKEN"
TOKEN_LABEL = "envkit.reaper.token"
# Why a reaper that decided to exit refuses a filter: the client starts (or finds) a new one.
EXITING = "this reaper is exiting; start a new one"
SESSION_LABEL = "org.testcontainers.session-id"
_DURATION = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ms|s|m|h)")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


class FilterError(ValueError):
    """A filter line the reaper refuses; the message says what a valid one looks like."""


@dataclass(frozen=True)
class Filter:
    """One registered filter: the labels a resource must all carry to be removed."""

    labels: tuple[str, ...]  # sorted, so the same filter sent again is the same key

    def docker_filters(self) -> dict[str, list[str]]:
        """The filter as the engine's list calls take it."""
        return {"label": list(self.labels)}

    def __str__(self) -> str:
        return "&".join(f"label={label}" for label in self.labels)


def parse_filter(line: str) -> Filter:
    """Parse one filter line (`label=k=v[&label=k2=v2]`) that names exactly one session."""
    text = line.strip()
    if not text:
        raise FilterError("empty filter; send e.g. label=org.testcontainers.session-id=<id>")
    try:
        pairs = parse_qsl(text, keep_blank_values=True, strict_parsing=True)
    except ValueError as exc:
        raise FilterError(f"{text!r} is not a query string such as label=key=value") from exc
    labels: set[str] = set()
    for key, value in pairs:
        if key != "label":
            raise FilterError(
                f"{key!r} in {text!r} is not supported; this reaper takes label=key=value filters"
            )
        if not value or value.startswith("="):
            raise FilterError(f"label={value} in {text!r} names no label; send label=key=value")
        labels.add(value)
    sessions = sorted(label for label in labels if label.startswith(f"{SESSION_LABEL}="))
    if not sessions or sessions[0] == f"{SESSION_LABEL}=":
        raise FilterError(
            f"{text!r} names no session: this reaper removes a session's resources only; "
            f"send label={SESSION_LABEL}=<id> (further labels narrow it)"
        )
    if len(sessions) > 1:
        raise FilterError(
            f"{text!r} names {len(sessions)} sessions; send one filter line per session"
        )
    return Filter(tuple(sorted(labels)))


def parse_duration(text: str) -> float:
    """Seconds in a Go-style duration as Ryuk's settings take it ("10s", "500ms", "1m30s")."""
    value = text.strip()
    try:
        seconds = float(value)  # plain seconds
    except ValueError:
        pass
    else:
        if seconds < 0 or seconds != seconds:  # negative, or NaN
            raise ValueError(f"{text!r} is not a duration such as 10s, 500ms or 1m30s")
        return seconds
    parts = _DURATION.findall(value)
    if not value or "".join(n + u for n, u in parts) != value:
        raise ValueError(f"{text!r} is not a duration such as 10s, 500ms or 1m30s")
    return sum(float(number) * _UNIT_SECONDS[unit] for number, unit in parts)


@dataclass
class Registry:
    """Which filters are held by which connections, and which are due for removal."""

    grace: float  # seconds a released filter waits for its client to come back
    connect_timeout: float  # seconds to wait for the first client at all
    idle: float | None = None  # seconds with no client before the reaper ends (None: grace)
    clock: Callable[[], float] = time.monotonic
    _open: set[int] = field(default_factory=set)
    _holders: dict[Filter, set[int]] = field(default_factory=dict)
    _released: dict[Filter, float] = field(default_factory=dict)  # filter -> when released
    _started: float | None = None
    _last_close: float | None = None

    def __post_init__(self) -> None:
        self._started = self.clock()

    def connected(self, conn: int) -> None:
        """A client connected."""
        self._open.add(conn)

    def hold(self, conn: int, flt: Filter) -> None:
        """`conn` sent `flt`: hold it (again, if it was waiting out its grace)."""
        self._released.pop(flt, None)
        self._holders.setdefault(flt, set()).add(conn)

    def disconnected(self, conn: int) -> None:
        """`conn` is gone: filters no other connection holds start their grace period."""
        now = self.clock()
        self._open.discard(conn)
        self._last_close = now
        for flt in [f for f, holders in self._holders.items() if conn in holders]:
            holders = self._holders[flt]
            holders.discard(conn)
            if not holders:
                del self._holders[flt]
                self._released[flt] = now

    def due(self) -> list[Filter]:
        """Released filters whose grace period is over (their resources can go now)."""
        now = self.clock()
        return [f for f, since in self._released.items() if now - since >= self.grace]

    def removed(self, flt: Filter) -> None:
        """What `flt` matches was removed; forget it."""
        self._released.pop(flt, None)

    def pending(self) -> list[Filter]:
        """Every filter still held or waiting."""
        return sorted({*self._holders, *self._released}, key=str)

    def released(self) -> list[Filter]:
        """Filters no open connection holds, due or still in their grace period."""
        return sorted(self._released, key=str)

    def holders(self, flt: Filter) -> set[int]:
        """The open connections holding `flt`."""
        return set(self._holders.get(flt, ()))

    def finished(self) -> bool:
        """Nothing held or due and no client for the idle time (or none came at all in time)."""
        if self._open or self._holders or self._released:
            return False
        now = self.clock()
        if self._last_close is None:
            assert self._started is not None
            return now - self._started >= self.connect_timeout
        idle = self.grace if self.idle is None else self.idle
        return now - self._last_close >= idle
