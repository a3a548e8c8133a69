"""One redaction step for everything envkit writes: secret values become `***`."""

from __future__ import annotations

import base64
import html
import json
from collections.abc import Iterable
from urllib.parse import quote, quote_plus
from xml.sax.saxutils import escape

MASK = "***"
_MIN_SECRET_LENGTH = 4  # shorter values would mask ordinary words


class Redactor:
    """Replaces every known secret value, and every form it takes in what envkit writes, with `***`.

    The forms: as it is; URL-encoded (either way spaces go); base64; JSON-escaped
    (ASCII or not, and escaped twice, as a JSON log line quoted in summary.json);
    XML-escaped (junit.xml's text and attributes, where a newline is `&#10;`);
    Python-repr-escaped (a value logged with `!r`); and each line of a secret that
    spans lines, as a log splits it.
    """

    def __init__(self, secrets: Iterable[str]) -> None:
        forms: set[str] = set()
        for secret in secrets:
            if len(secret) < _MIN_SECRET_LENGTH:
                continue
            lines = [line for line in secret.splitlines() if len(line) >= _MIN_SECRET_LENGTH]
            for value in {secret, *lines}:
                forms.update(_forms(value))
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


# junit.xml's writer escapes these in attributes (text escapes only &, < and >).
_XML_ATTRIBUTE = {'"': "&quot;", "'": "&apos;", "\n": "&#10;", "\r": "&#13;", "\t": "&#9;"}


def _forms(secret: str) -> set[str]:
    """Every spelling of `secret` that envkit's artifacts and logs may contain."""
    json_ascii = json.dumps(secret)[1:-1]
    json_raw = json.dumps(secret, ensure_ascii=False)[1:-1]
    forms = {
        secret,
        quote(secret, safe=""),
        quote(secret),
        quote_plus(secret),
        base64.b64encode(secret.encode()).decode(),
        json_ascii,
        json_raw,
        json.dumps(json_ascii)[1:-1],
        json.dumps(json_raw, ensure_ascii=False)[1:-1],
        repr(secret)[1:-1],
        escape(secret),
        escape(secret, _XML_ATTRIBUTE),
        escape(secret, {**_XML_ATTRIBUTE, "'": "&#39;", '"': "&#34;"}),
        html.escape(secret),  # &quot; and &#x27;
    }
    return {form for form in forms if len(form) >= _MIN_SECRET_LENGTH}
