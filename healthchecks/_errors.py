"""The one internal signal of the probe library: "not ready yet"."""

from __future__ import annotations


class ProbeFailed(Exception):
    """A probe found its service not ready (yet); `reason` says why in a few words."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)
