"""The notes team's own end-to-end checks, run by envkit as command steps.

    notes_check.py create --title T      POST /notes with the token (STACK_API_URL) -> 201
    notes_check.py unauthorized          POST /notes without it -> 401
    notes_check.py audited --title T     the audit service (STACK_AUDIT_URL) holds the event

The token comes from the NOTES_API_TOKEN variable the scenario step sets.
"""

from __future__ import annotations

import json
import os
import sys
import urllib.error
import urllib.request
from typing import Any


def call(method: str, url: str, body: Any = None, token: str = "") -> tuple[int, Any]:
    data = None if body is None else json.dumps(body).encode()
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    request = urllib.request.Request(url, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:
            status, text = answer.status, answer.read().decode()
    except urllib.error.HTTPError as err:
        status, text = err.code, err.read().decode()
    print(f"{method} {url} -> {status} {text[:200]}", flush=True)
    return status, json.loads(text) if text else None


def main() -> int:
    what = sys.argv[1]
    title = sys.argv[3] if len(sys.argv) > 3 and sys.argv[2] == "--title" else "first note"
    api, audit = os.environ["STACK_API_URL"], os.environ["STACK_AUDIT_URL"]
    if what == "create":
        status, note = call("POST", api + "/notes", {"title": title}, os.environ["NOTES_API_TOKEN"])
        return 0 if status == 201 and note["title"] == title else 1
    if what == "unauthorized":
        status, _ = call("POST", api + "/notes", {"title": "sneaky"})
        return 0 if status == 401 else 1
    if what == "audited":
        status, events = call("GET", audit + "/events")
        titles = [e.get("note", {}).get("title") for e in events or []]
        return 0 if status == 200 and title in titles else 1
    print(f"unknown check {what!r}", flush=True)
    return 2


if __name__ == "__main__":
    sys.exit(main())
