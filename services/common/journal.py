"""A bounded, thread-safe record of what a mock received or sent."""

from __future__ import annotations

import threading
from collections import deque
from typing import Any

DEFAULT_CAPACITY = 1000


class Journal:
    """Keeps the most recent `capacity` entries in arrival order; can be reset."""

    def __init__(self, capacity: int = DEFAULT_CAPACITY) -> None:
        self._entries: deque[dict[str, Any]] = deque(maxlen=capacity)
        self._lock = threading.Lock()

    def append(self, entry: dict[str, Any]) -> None:
        """Record one entry."""
        with self._lock:
            self._entries.append(entry)

    def entries(self) -> list[dict[str, Any]]:
        """Return a copy of every entry, oldest first."""
        with self._lock:
            return list(self._entries)

    def last(self) -> dict[str, Any] | None:
        """Return the newest entry, or None when empty."""
        with self._lock:
            return self._entries[-1] if self._entries else None

    def clear(self) -> int:
        """Forget every entry; return how many there were."""
        with self._lock:
            count = len(self._entries)
            self._entries.clear()
            return count

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)
