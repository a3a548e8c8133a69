"""The hostile inputs that once gave a 5xx, a dropped connection or a logged exception.

Each case is sent to a real uvicorn server configured like the services' image
(`SERVER_OPTIONS`), so a dropped connection shows up as the error it would be.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import httpx
import pytest
from starlette.types import ASGIApp

from envkit.services.backend.app import build_app
from envkit.services.backend.config import load_config
from envkit.services.common.limits import MAX_HEADER_BYTES, MAX_TARGET_BYTES
from envkit.services.mock_eventsub.app import create_app as mock_eventsub
from envkit.services.mock_helix.app import create_app as mock_helix
from envkit.services.mock_jwt.app import create_app as mock_jwt
from envkit.services.synthetic_desktop.app import create_app as synthetic_desktop
from tests.hostile_input import hs256_token, logged_problems, make_jwt_key_b64

API_KEY = "regression-api-key"
EXTENSION_SECRET = b"regression-extension-secret-0123456789"
DEEP_ARRAY = b"[" * 30_000 + b"]" * 30_000  # 60 KB, under the 64 KiB body limit
DEEP_OBJECT = b'{"a":' * 10_000 + b"1" + b"}" * 10_000


def _backend(closed_port_url: str) -> ASGIApp:
    port = closed_port_url.rsplit(":", 1)[1]
    env = {
        "ConnectionStrings__PostgreSQL": f"Host=127.0.0.1;Port={port};Database=m;Username=m",
        "ASPNETCORE_ENVIRONMENT": "Development",
        "Mgm__ApiKey": API_KEY,
        "Mgm__EnableE2eHarness": "true",
        "Twitch__EventSubSecret": "regression-eventsub-secret",
        "Twitch__ExtensionSecret": make_jwt_key_b64(EXTENSION_SECRET),
    }
    return build_app(load_config(env))


def _json_error(response: httpx.Response, status: int, code: str) -> dict[str, object]:
    assert response.status_code == status, response.text[:300]
    body = response.json()
    assert set(body) == {"code", "message", "details"}
    assert body["code"] == code
    return dict(body)


JSON_ROUTES = [
    ("mock-helix", "POST", "/admin/faults"),
    ("mock-eventsub", "POST", "/emit"),
    ("mock-eventsub", "POST", "/emit-challenge"),
    ("synthetic-desktop", "POST", "/run-sequence"),
]
APPS: dict[str, Callable[[], ASGIApp]] = {
    "mock-helix": lambda: mock_helix({}),
    "mock-eventsub": lambda: mock_eventsub({}),
    "synthetic-desktop": lambda: synthetic_desktop({}),
    "mock-jwt": lambda: mock_jwt({}),
}


@pytest.mark.parametrize("document", [DEEP_ARRAY, DEEP_OBJECT], ids=["arrays", "objects"])
@pytest.mark.parametrize(("service", "method", "path"), JSON_ROUTES)
def test_deeply_nested_json_is_a_400_naming_the_depth(
    client_for: Callable[[ASGIApp], httpx.Client],
    service: str,
    method: str,
    path: str,
    document: bytes,
) -> None:
    client = client_for(APPS[service]())
    with logged_problems() as problems:
        response = client.request(method, path, content=document)
    body = _json_error(response, 400, "malformed_json")
    assert body["message"] == "The request body is JSON nested too deeply to read."
    assert body["details"] == {"error": "the document is nested deeper than 64 levels"}
    assert problems == []


def test_deep_json_on_the_backend_s_routes_is_a_400(
    client_for: Callable[[ASGIApp], httpx.Client], closed_port_url: str
) -> None:
    """Parsing comes before the database, so no database is needed to see the 400."""
    client = client_for(_backend(closed_port_url))
    key = {"X-MGM-ApiKey": API_KEY}
    with logged_problems() as problems:
        for path in (
            "/api/e2e/prepare-pending-payout",
            "/api/payouts/00000000-0000-0000-0000-000000000001/confirm-acceptance",
        ):
            _json_error(client.post(path, content=DEEP_ARRAY, headers=key), 400, "malformed_json")
        patched = client.patch(
            "/api/payouts/00000000-0000-0000-0000-000000000001/status",
            content=DEEP_OBJECT,
            headers=key,
        )
        _json_error(patched, 400, "malformed_json")
    assert problems == []


@pytest.mark.parametrize(
    "body", [b'{"a": NaN}', b'{"n": -Infinity}', b'{"x": 1e999}', b'{"s": "\\ud800"}', DEEP_ARRAY]
)
def test_mock_helix_journal_stays_readable_after_any_body(
    client_for: Callable[[ASGIApp], httpx.Client], body: bytes
) -> None:
    client = client_for(mock_helix({}))
    with logged_problems() as problems:
        posted = client.post("/helix/chat/messages", content=body)
        journal = client.get("/requests")
        last = client.get("/last-request")
    assert posted.status_code == 400
    assert set(posted.json()) == {"error", "status", "message"}
    assert journal.status_code == 200
    (entry,) = journal.json()
    assert entry["body"] is None
    assert entry["bodyText"] == body.decode()[:2000]
    assert last.json() == {"captured": False}
    assert problems == []


@pytest.mark.parametrize(
    "event", [{"chatter_user_id": float("nan")}, {"x": float("inf")}, {"id": "\ud800"}]
)
def test_mock_eventsub_refuses_what_it_cannot_sign_and_its_journal_stays_readable(
    client_for: Callable[[ASGIApp], httpx.Client], event: dict[str, object]
) -> None:
    import json

    client = client_for(mock_eventsub({}))
    raw = json.dumps({"event": event}, allow_nan=True).encode()
    with logged_problems() as problems:
        emitted = client.post("/emit", content=raw)
        deliveries = client.get("/deliveries")
    assert emitted.status_code == 400
    assert emitted.json()["code"] in {"malformed_json", "invalid_body"}
    assert deliveries.status_code == 200
    assert deliveries.json() == []
    assert problems == []


def _token(claims: dict[str, object], header: dict[str, object] | None = None) -> str:
    return hs256_token({"exp": int(time.time()) + 600, **claims}, EXTENSION_SECRET, header)


@pytest.mark.parametrize(
    "user_id",
    ["\ud800", "viewer\udfff", "a\x00b", "u" * 10_000],
    ids=["lone-high-surrogate", "lone-low-surrogate", "nul", "10k-chars"],
)
def test_a_signed_jwt_with_an_unusable_user_id_is_a_401(
    client_for: Callable[[ASGIApp], httpx.Client], closed_port_url: str, user_id: str
) -> None:
    client = client_for(_backend(closed_port_url))
    with logged_problems() as problems:
        response = client.get(
            "/api/pool/me", headers={"Authorization": f"Bearer {_token({'user_id': user_id})}"}
        )
    body = _json_error(response, 401, "invalid_token")
    assert body["message"] == "The extension JWT's user_id is not a usable viewer id."
    assert problems == []


def test_a_jwt_too_large_for_the_headers_is_a_431_not_a_dropped_connection(
    client_for: Callable[[ASGIApp], httpx.Client], closed_port_url: str
) -> None:
    client = client_for(_backend(closed_port_url))
    token = _token({"user_id": "u" * 100_000})
    response = client.get("/api/pool/me", headers={"Authorization": f"Bearer {token}"})
    body = _json_error(response, 431, "headers_too_large")
    assert body["details"] == {"limitBytes": MAX_HEADER_BYTES, "receivedBytes": pytest.approx(
        len(token), rel=0.01)}  # fmt: skip


def test_a_kid_with_path_traversal_is_ignored_like_any_header_field(
    client_for: Callable[[ASGIApp], httpx.Client], closed_port_url: str
) -> None:
    """HS256 has one key; `kid` names no file. Without a database the answer is 503, not a drop."""
    client = client_for(_backend(closed_port_url))
    for kid in ("../../../../etc/passwd", "../" * 3000):
        token = _token({"user_id": "e2e-viewer-1"}, {"kid": kid})
        response = client.get("/api/pool/me", headers={"Authorization": f"Bearer {token}"})
        assert response.status_code == 503
        assert response.json()["code"] == "database_unavailable"


@pytest.mark.parametrize("service", sorted(APPS))
@pytest.mark.parametrize("size", [40_000, 300_000])
def test_an_over_long_header_is_a_431_in_the_service_s_shape(
    client_for: Callable[[ASGIApp], httpx.Client], service: str, size: int
) -> None:
    client = client_for(APPS[service]())
    response = client.get("/health", headers={"X-Long": "a" * size})
    body = _json_error(response, 431, "headers_too_large")
    assert body["message"] == f"The request's headers total more than {MAX_HEADER_BYTES} bytes."


def test_an_over_long_header_on_a_helix_route_is_a_431_in_helix_s_shape(
    client_for: Callable[[ASGIApp], httpx.Client],
) -> None:
    client = client_for(mock_helix({}))
    response = client.post("/helix/chat/messages", headers={"Client-Id": "c" * 50_000}, json={})
    assert response.status_code == 431
    assert response.json() == {
        "error": "Request Header Fields Too Large",
        "status": 431,
        "message": f"The request's headers total more than {MAX_HEADER_BYTES} bytes.",
    }


def test_an_over_long_id_in_the_path_or_query_is_a_414(
    client_for: Callable[[ASGIApp], httpx.Client], closed_port_url: str
) -> None:
    backend = client_for(_backend(closed_port_url))
    jwt = client_for(mock_jwt({}))
    long_id = "9" * (MAX_TARGET_BYTES + 1)
    status = backend.patch(
        f"/api/payouts/{long_id}/status", json={"status": "Sent"}, headers={"X-MGM-ApiKey": API_KEY}
    )
    _json_error(status, 414, "uri_too_long")
    _json_error(jwt.get("/token", params={"userId": long_id}), 414, "uri_too_long")


def test_a_method_a_helix_route_does_not_allow_is_answered_in_helix_s_shape(
    client_for: Callable[[ASGIApp], httpx.Client],
) -> None:
    client = client_for(mock_helix({}))
    response = client.request("OPTIONS", "/helix/chat/messages")
    assert response.status_code == 405
    assert response.json() == {
        "error": "Method Not Allowed",
        "status": 405,
        "message": "Method Not Allowed",
    }
    # Outside /helix/ the mock's own routes keep envkit's shape.
    _json_error(client.request("PUT", "/requests"), 405, "method_not_allowed")
