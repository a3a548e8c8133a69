"""Stream a container's log to a file from the moment it starts, redacted, with timestamps."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from envkit.evidence.redact import Redactor

TAIL_LINES = 30


class LogStream:
    """Follows one container's stdout+stderr into `path` on a daemon thread."""

    def __init__(self, container: Any, path: Path, redactor: Redactor) -> None:
        self.container = container
        self.path = path
        self.redactor = redactor
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._follow, name=f"log-{path.stem}", daemon=True)

    def start(self) -> LogStream:
        """Begin following (everything the container printed so far comes first)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.touch()
        self._thread.start()
        return self

    def _follow(self) -> None:
        pending = b""
        try:
            stream = self.container.logs(stream=True, follow=True, timestamps=True)
            for chunk in stream:
                pending += chunk
                *lines, pending = pending.split(b"\n")
                if lines:
                    self._write(b"\n".join(lines) + b"\n")
        except Exception:  # noqa: S110  # the container went away: the stream simply ends
            pass
        finally:
            if pending:
                self._write(pending + b"\n")

    def _write(self, data: bytes) -> None:
        with self._lock, self.path.open("ab") as out:
            out.write(self.redactor.bytes(data))

    def join(self, timeout: float = 5.0) -> None:
        """Wait for the stream to end (it ends when the container stops)."""
        if self._thread.is_alive():
            self._thread.join(timeout)

    def text(self) -> str:
        """Everything written so far."""
        with self._lock:
            try:
                return self.path.read_text(errors="replace")
            except FileNotFoundError:
                return ""

    def tail(self, lines: int = TAIL_LINES) -> str:
        """The last `lines` lines written so far."""
        return "\n".join(self.text().splitlines()[-lines:])
