"""One redaction step for everything envkit writes: secret values become `***`."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterable
from urllib.parse import quote

MASK = "***"
_MIN_SECRET_LENGTH = 4  # shorter values would mask ordinary words


class Redactor:
    """Replaces every known secret value, and its common encodings, with `***`.

    The encodings: URL-encoded, base64, and JSON-escaped (a secret with a quote,
    a backslash or a non-ASCII character is spelled differently inside JSON).
    """

    def __init__(self, secrets: Iterable[str]) -> None:
        forms: set[str] = set()
        for secret in secrets:
            if len(secret) < _MIN_SECRET_LENGTH:
                continue
            forms.add(secret)
            forms.add(quote(secret, safe=""))
            forms.add(base64.b64encode(secret.encode()).decode())
            forms.add(json.dumps(secret)[1:-1])
            forms.add(json.dumps(secret, ensure_ascii=False)[1:-1])
        self._forms = sorted(forms, key=len, reverse=True)

    def __call__(self, text: str) -> str:
        """Return `text` with every secret form masked."""
        for form in self._forms:
            if form in text:
                text = text.replace(form, MASK)
        return text

    def bytes(self, data: bytes) -> bytes:
        """Redact UTF-8 bytes (undecodable bytes pass through unchanged)."""
        return self(data.decode("utf-8", errors="surrogateescape")).encode(
            "utf-8", errors="surrogateescape"
        )
