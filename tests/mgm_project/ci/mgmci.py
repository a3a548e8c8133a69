"""What the stand-in MGM CI scripts share: JSON over HTTP (standard library) and a verdict."""

from __future__ import annotations

import json
import sys
import urllib.error
import urllib.request
from typing import Any

VIEWER_ID = "e2e-viewer-1"
VIEWER_LOGIN = "e2e_viewer_1"
ANNOUNCEMENT = "Награда отправлена персонажу {name} на почту, проверяй ящик!"


class CheckFailed(Exception):
    """A check of the stand-in scripts did not hold."""


def call(
    method: str,
    url: str,
    *,
    body: Any = None,
    raw: bytes | None = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, Any]:
    """Send one request; return (status, JSON body or text). Never raises for an HTTP status."""
    data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
    sent = {"Content-Type": "application/json"} if data is not None else {}
    sent.update(headers or {})
    request = urllib.request.Request(url, data=data, method=method, headers=sent)
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:
            status, payload = answer.status, answer.read()
    except urllib.error.HTTPError as err:
        status, payload = err.code, err.read()
    text = payload.decode("utf-8", "replace")
    try:
        parsed: Any = json.loads(text) if text else None
    except ValueError:
        parsed = text
    print(f"{method} {url} -> {status} {text[:300]}", flush=True)
    return status, parsed


def expect(condition: bool, message: str) -> None:
    """Stop the check with `message` unless `condition` holds."""
    if not condition:
        raise CheckFailed(message)


def verdict(check: Any) -> None:
    """Run `check()`; exit 0 when it held, 1 with the reason when it did not."""
    try:
        check()
    except CheckFailed as failed:
        print(f"FAILED: {failed}", flush=True)
        sys.exit(1)
    print("OK", flush=True)
