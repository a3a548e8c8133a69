"""The notes API of the second test stack: notes in PostgreSQL, behind a bearer token.

Each note created is reported to the audit service as a signed webhook
(`X-Notes-Signature: sha256=<hex HMAC-SHA256 of the body>`). Configuration comes from the
environment only: DATABASE_URL, NOTES_API_TOKEN, AUDIT_URL, AUDIT_WEBHOOK_SECRET, PORT.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import sys
from typing import Any

import httpx
import psycopg
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

TOKEN = os.environ.get("NOTES_API_TOKEN", "")
SECRET = os.environ.get("AUDIT_WEBHOOK_SECRET", "").encode()
AUDIT_URL = os.environ.get("AUDIT_URL", "")
DATABASE_URL = os.environ.get("DATABASE_URL", "")


def log(line: str) -> None:
    print(f"notes-api {line}", flush=True)


def problem(status: int, code: str, message: str) -> JSONResponse:
    return JSONResponse({"code": code, "message": message}, status_code=status)


def authorized(request: Request) -> bool:
    given = request.headers.get("authorization", "")
    return bool(TOKEN) and hmac.compare_digest(given.encode(), f"Bearer {TOKEN}".encode())


def connect() -> psycopg.Connection[Any]:
    return psycopg.connect(DATABASE_URL, autocommit=True, connect_timeout=5)


async def health(request: Request) -> Response:
    return JSONResponse({"status": "ok", "service": "notes-api"})


async def create_note(request: Request) -> Response:
    if not authorized(request):
        return problem(401, "unauthorized", "Send Authorization: Bearer <NOTES_API_TOKEN>.")
    try:
        body = json.loads(await request.body())
    except (ValueError, RecursionError):
        return problem(400, "bad_json", "The body must be a JSON object.")
    title = body.get("title") if isinstance(body, dict) else None
    if not isinstance(title, str) or not 0 < len(title) <= 200 or "\x00" in title:
        return problem(400, "bad_title", "title must be a string of 1 to 200 characters.")
    try:
        title.encode("utf-8")
        with connect() as conn:
            row = conn.execute(
                "INSERT INTO notes (title) VALUES (%s) RETURNING id", (title,)
            ).fetchone()
    except UnicodeEncodeError:
        return problem(400, "bad_title", "title must be valid Unicode text.")
    except psycopg.Error as exc:
        log(f"database error: {type(exc).__name__}")
        return problem(503, "database_unavailable", "The database did not answer; retry.")
    note = {"id": row[0] if row else None, "title": title}
    event = json.dumps({"type": "note.created", "note": note}).encode()
    signature = "sha256=" + hmac.new(SECRET, event, hashlib.sha256).hexdigest()
    try:
        answer = httpx.post(
            AUDIT_URL + "/events", content=event, timeout=10,
            headers={"Content-Type": "application/json", "X-Notes-Signature": signature},
        )  # fmt: skip
        log(f"audit answered {answer.status_code}")
    except httpx.HTTPError as exc:
        log(f"audit unreachable: {type(exc).__name__}")
    return JSONResponse(note, status_code=201)


async def list_notes(request: Request) -> Response:
    if not authorized(request):
        return problem(401, "unauthorized", "Send Authorization: Bearer <NOTES_API_TOKEN>.")
    try:
        with connect() as conn:
            rows = conn.execute("SELECT id, title FROM notes ORDER BY id").fetchall()
    except psycopg.Error as exc:
        log(f"database error: {type(exc).__name__}")
        return problem(503, "database_unavailable", "The database did not answer; retry.")
    return JSONResponse([{"id": i, "title": t} for i, t in rows])


def main() -> None:
    if not TOKEN or not SECRET or not DATABASE_URL:
        log("NOTES_API_TOKEN, AUDIT_WEBHOOK_SECRET and DATABASE_URL must be set")
        sys.exit(2)
    with connect() as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS notes (id serial PRIMARY KEY, title text)")
    log("schema ready")
    app = Starlette(
        routes=[
            Route("/health", health),
            Route("/notes", create_note, methods=["POST"]),
            Route("/notes", list_notes, methods=["GET"]),
        ]
    )
    uvicorn.run(app, host="0.0.0.0", port=int(os.environ.get("PORT", "8000")), log_level="info")


if __name__ == "__main__":
    main()
