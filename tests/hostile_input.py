"""Hostile HTTP requests for every route of a service app, and the checks every answer must pass.

The routes come from the app's own router, so a route added later is fuzzed without
touching the tests. Requests go in-process through `httpx.ASGITransport`; bodies,
queries, path parameters and headers are drawn from hostile values: deep nesting,
NaN and infinities, NUL, control characters and lone surrogates, huge numbers,
invalid UTF-8, over-long ids and headers, and correctly signed credentials that
carry such values (so the input gets past authentication to the code behind it).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx
from hypothesis import strategies as st
from starlette.applications import Starlette
from starlette.routing import Route

from envkit.services.common import log
from envkit.services.common.limits import MAX_HEADER_BYTES

# Text that breaks naive handling: NUL, C0/C1 controls, lone surrogates, bidi and
# zero-width marks, non-BMP, path traversal and SQL/format-string fragments.
NASTY_STRINGS = [
    "",
    " ",
    "\x00",
    "a\x00b",
    "\ud800",
    "x\udfffy",
    "\x01\x07\x1b[31m\x7f\x85\x9f",
    "\u202e\u200b\ufeff",
    "\U0001f600" * 3,
    "../../../../etc/passwd",
    "..\\..\\windows\\win.ini",
    "' OR 1=1; --",
    "{0}{1}%s%n",
    "<script>alert(1)</script>",
    "Pending",
    "Sent",
    "7",
    "-1",
    "e2e-viewer-1",
    "Arthas",
    "x" * 5000,
    "é" * 300,
]
NUMBERS: list[Any] = [0, -1, 5, 2**63, -(2**63) - 1, 10**400, 1.5, float("nan"), float("inf")]
NUMBERS.append(float("-inf"))
# Field names the services read, so drawn objects reach validation and what lies behind it.
FIELD_NAMES = [
    "characterName",
    "charactername",
    "status",
    "twitchUserId",
    "payoutId",
    "userId",
    "challenge",
    "subscription",
    "event",
    "message",
    "message_id",
    "chatter_user_id",
    "chatter_user_login",
    "badges",
    "text",
    "type",
    "messageId",
    "timestamp",
    "signWith",
    "broadcasterUserId",
    "broadcaster_id",
    "sender_id",
    "status",
    "latencyMs",
    "failureRate",
    "statuses",
    "ratelimitResetSeconds",
]

nasty_text = st.one_of(st.sampled_from(NASTY_STRINGS), st.text(max_size=40))
scalars = st.one_of(
    st.none(), st.booleans(), st.sampled_from(NUMBERS), st.integers(), nasty_text, st.floats()
)
json_values = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(st.one_of(st.sampled_from(FIELD_NAMES), nasty_text), children, max_size=5),
    ),
    max_leaves=20,
)


def encode_json(value: Any) -> bytes:
    """JSON text as a hostile client writes it: NaN/Infinity and lone surrogates kept (escaped)."""
    return json.dumps(value, allow_nan=True).encode("ascii")


@st.composite
def deep_documents(draw: st.DrawFn) -> bytes:
    """Nesting from just past the services' limit up to ~60 KB, arrays and objects mixed."""
    depth = draw(st.sampled_from([65, 200, 1000, 5000, 20_000, 30_000]))
    opener, closer = draw(st.sampled_from([(b"[", b"]"), (b'{"a":', b"}"), (b'[{"b":', b"}]")]))
    return opener * depth + b"1" + closer * depth


bodies = st.one_of(
    json_values.map(encode_json),
    st.dictionaries(st.sampled_from(FIELD_NAMES), json_values, min_size=1, max_size=6).map(
        encode_json
    ),
    deep_documents(),
    st.binary(max_size=200),
    st.sampled_from(
        [
            b"",
            b"\xff\xfe\x00",
            b'{"a": 1e999}',
            b'{"a": NaN}',
            b'{"a": -Infinity}',
            b'{"a": ' + b"9" * 5000 + b"}",
            b'{"characterName": "\\ud800"}',
            b'{"twitchUserId": "\\u0000"}',
            b'{"a":1,"a":2}',
            b"x" * (64 * 1024 + 1),
        ]
    ),
)

path_values = st.one_of(
    st.sampled_from(["00000000-0000-0000-0000-000000000000", str(uuid.uuid4()), "i" * 9000]),
    nasty_text,
)
query_strings = st.one_of(
    st.just(""),
    st.lists(
        st.tuples(
            st.sampled_from(["userId", "displayName", "role", "ttl", "user_id", "x"]),
            st.one_of(
                st.sampled_from(
                    ["%00", "%ff%fe", "%ud800", "%ED%A0%80", "a%0Ab", "1e999", "NaN", "q" * 9000]
                ),
                st.text(alphabet="abc-_", max_size=10),
            ),
        ),
        max_size=4,
    ).map(lambda pairs: "&".join(f"{name}={value}" for name, value in pairs)),
)
header_values = st.one_of(
    st.sampled_from(
        [b"", b" ", b"\x00", b"a\x01b", b"\xff\xfe", b"x" * (MAX_HEADER_BYTES + 10), b"../../x"]
    ),
    st.binary(max_size=30).map(lambda raw: raw.replace(b"\r", b"").replace(b"\n", b"")),
)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def hs256_token(claims: dict[str, Any], key: bytes, header: dict[str, Any] | None = None) -> str:
    """A correctly signed HS256 JWT whose claims may hold NaN or lone surrogates."""
    head = _b64(encode_json({"alg": "HS256", "typ": "JWT", **(header or {})}))
    body = _b64(encode_json(claims))
    signature = hmac.new(key, f"{head}.{body}".encode(), hashlib.sha256).digest()
    return f"{head}.{body}.{_b64(signature)}"


@dataclass(frozen=True)
class Credentials:
    """What a service accepts, so drawn requests can carry valid signatures and keys."""

    api_key: str = ""
    eventsub_secret: str = ""
    extension_secret: bytes = b""


@st.composite
def jwt_headers(draw: st.DrawFn, key: bytes) -> bytes:
    """`Authorization: Bearer` with a JWT signed by `key` around hostile claims or header."""
    claims: dict[str, Any] = {"exp": int(time.time()) + 600}
    claims.update(
        draw(
            st.dictionaries(
                st.sampled_from(["user_id", "sub", "exp", "nbf", "iat", "aud", "role"]),
                st.one_of(scalars, st.just("u" * 100_000)),
                max_size=3,
            )
        )
    )
    header = draw(
        st.one_of(
            st.just({}),
            st.fixed_dictionaries({"kid": st.sampled_from(["../../../../etc/passwd", "\x00"])}),
            st.just({"alg": "none"}),
        )
    )
    return b"Bearer " + hs256_token(claims, key, header).encode()


@dataclass(frozen=True)
class Call:
    """One drawn request."""

    method: str
    path: str
    headers: list[tuple[bytes, bytes]]
    body: bytes

    def describe(self) -> str:
        """A short line for failure messages."""
        return f"{self.method} {self.path[:120]} ({len(self.body)} body bytes)"


def routes_of(app: Starlette) -> list[tuple[str, str]]:
    """Every (method, path template) the app's router serves, HEAD left out."""
    found: list[tuple[str, str]] = []
    for route in app.routes:
        assert isinstance(route, Route), f"unexpected route type {route!r}"
        for method in sorted(route.methods or {"GET"}):
            if method != "HEAD":
                found.append((method, route.path))
    return found


def _fill(template: str, values: list[str]) -> str:
    names = re.findall(r"{([^}:]+)(?::[^}]+)?}", template)
    path = template
    for name, value in zip(names, values, strict=False):
        pattern = re.compile("{" + name + r"(?::[^}]+)?}")
        path = pattern.sub(_quote(value).replace("\\", "\\\\"), path, count=1)
    return path


def _quote(value: str) -> str:
    from urllib.parse import quote

    return quote(value.encode("utf-8", "surrogatepass"), safe="")


@st.composite
def calls(draw: st.DrawFn, app: Starlette, credentials: Credentials) -> Call:
    """A hostile request to one of `app`'s routes (or a method it does not allow)."""
    method, template = draw(st.sampled_from(routes_of(app)))
    method = draw(st.sampled_from([method] * 6 + ["PUT", "OPTIONS"]))
    path = _fill(template, draw(st.lists(path_values, min_size=2, max_size=2)))
    if "{rest:path}" in template:
        path = template.split("{")[0] + draw(
            st.sampled_from(["chat/messages", "chat/messages/", "users", "../requests", "%00"])
        )
    query = draw(query_strings)
    if query:
        path += "?" + query
    body = draw(bodies)
    headers: list[tuple[bytes, bytes]] = [(b"content-type", b"application/json")]
    if credentials.api_key and draw(st.booleans()):
        headers.append((b"x-mgm-apikey", credentials.api_key.encode()))
    if credentials.extension_secret and draw(st.booleans()):
        headers.append((b"authorization", draw(jwt_headers(credentials.extension_secret))))
    if draw(st.booleans()):
        headers.extend(_eventsub_headers(draw, credentials.eventsub_secret, body))
    extra = draw(
        st.lists(
            st.tuples(
                st.sampled_from(
                    [b"x-mgm-apikey", b"authorization", b"client-id", b"x-long", b"content-length"]
                ),
                header_values,
            ),
            max_size=2,
        )
    )
    headers.extend(extra)
    return Call(method, path, headers, body)


def _eventsub_headers(draw: st.DrawFn, secret: str, body: bytes) -> list[tuple[bytes, bytes]]:
    message_id = draw(st.one_of(st.uuids().map(str), st.sampled_from(["", "x" * 3000, "é"])))
    timestamp = draw(
        st.sampled_from(
            [
                time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                str(int(time.time())),
                str(int(time.time() * 1000)),
                "9" * 400,
                "NaN",
                "2026-13-45T99:99:99Z",
            ]
        )
    )
    mac = hmac.new(secret.encode("utf-8", "surrogatepass"), digestmod=hashlib.sha256)
    mac.update(message_id.encode() + timestamp.encode() + body)
    kind = draw(
        st.sampled_from(
            [None, "notification", "webhook_callback_verification", "revocation", "\x00"]
        )
    )
    headers = [
        (b"twitch-eventsub-message-id", message_id.encode()),
        (b"twitch-eventsub-message-timestamp", timestamp.encode()),
        (b"twitch-eventsub-message-signature", b"sha256=" + mac.hexdigest().encode()),
    ]
    if kind is not None:
        headers.append((b"twitch-eventsub-message-type", kind.encode()))
    return headers


@dataclass
class Tally:
    """Statuses seen, for the printed summary."""

    statuses: Counter[int] = field(default_factory=Counter)

    @property
    def sent(self) -> int:
        """How many requests were sent."""
        return sum(self.statuses.values())

    def summary(self) -> str:
        """One line: requests sent, each status's count, and the 5xx total."""
        shown = ", ".join(f"{status}: {n}" for status, n in sorted(self.statuses.items()))
        fives = sum(n for status, n in self.statuses.items() if status >= 500)
        return f"{self.sent} hostile requests; statuses {shown}; 5xx: {fives}"


@contextmanager
def logged_problems() -> Iterator[list[str]]:
    """Collect every ERROR-or-worse log record and every record carrying an exception."""
    problems: list[str] = []

    def sink(message: Any) -> None:
        record = message.record
        if record["level"].no >= 40 or record["exception"] is not None:
            problems.append(f"{record['level'].name}: {record['message']}")

    sink_id = log.add(sink, level="DEBUG", format="{message}")
    try:
        yield problems
    finally:
        log.remove(sink_id)


HELIX_KEYS = {"error", "status", "message"}
API_KEYS = {"code", "message", "details"}


def check_answer(
    call: Call,
    response: httpx.Response,
    *,
    helix_prefix: str | None = None,
    allowed_5xx: Callable[[httpx.Response], bool] = lambda response: False,
) -> None:
    """Below 500 (unless `allowed_5xx`), and every error a JSON body in the route's shape."""
    status = response.status_code
    if status >= 500:
        assert allowed_5xx(response), f"{call.describe()} -> {status}: {response.text[:300]}"
    if status < 400:
        return
    assert response.headers.get("content-type", "").startswith("application/json"), (
        f"{call.describe()} -> {status} is not JSON: {response.text[:200]}"
    )
    body = response.json()
    # The path as sent: the client resolves dot segments (`/helix/../requests` is `/requests`).
    helix = helix_prefix is not None and response.request.url.path.startswith(helix_prefix)
    expected = HELIX_KEYS if helix else API_KEYS
    assert isinstance(body, dict), f"{call.describe()} -> {status}: {body!r:.200}"
    assert expected <= set(body), f"{call.describe()} -> {status}: keys {sorted(body)}"
    assert "Traceback" not in response.text, f"{call.describe()} answered a stack trace"
    if helix:
        assert body["status"] == status
    else:
        assert isinstance(body["code"], str)
        assert body["code"]
    assert isinstance(body["message"], str)
    assert body["message"]


async def send(client: httpx.AsyncClient, call: Call) -> httpx.Response:
    """Send one drawn request; the connection must not fail."""
    return await client.request(call.method, call.path, headers=call.headers, content=call.body)


def journal_routes(app: Starlette) -> list[str]:
    """Every parameterless GET route: the journals and status pages that must stay readable."""
    return [path for method, path in routes_of(app) if method == "GET" and "{" not in path]


def make_jwt_key_b64(secret: bytes) -> str:
    """The `Twitch__ExtensionSecret` value for `secret`."""
    return base64.b64encode(secret).decode()


__all__ = [
    "Call",
    "Credentials",
    "Tally",
    "calls",
    "check_answer",
    "hs256_token",
    "journal_routes",
    "logged_problems",
    "make_jwt_key_b64",
    "routes_of",
    "send",
]
