"""Extension JWT verification and the desktop API key check."""

from __future__ import annotations

import hashlib
import hmac
import time
from typing import Any

import jwt
import pytest

from envkit.services.backend.jwt_auth import (
    ViewerIdentity,
    bearer_token,
    check_api_key,
    verify_extension_jwt,
)
from envkit.services.common import ApiError

SECRET = b"\x01\x02extension-secret-long-enough-for-hs512-" + b"x" * 40
CLIENT_ID = "client-abc"


def _token(secret: bytes = SECRET, algorithm: str = "HS256", **overrides: Any) -> str:
    claims: dict[str, Any] = {
        "user_id": "42",
        "opaque_user_id": "U42",
        "channel_id": "1971641",
        "role": "viewer",
        "aud": CLIENT_ID,
        "exp": int(time.time()) + 300,
    }
    claims.update(overrides)
    claims = {k: v for k, v in claims.items() if v is not None}
    return jwt.encode(claims, secret, algorithm=algorithm)


def test_valid_token_yields_the_viewer() -> None:
    assert verify_extension_jwt(_token(), SECRET, CLIENT_ID) == ViewerIdentity(
        user_id="42", opaque_user_id="U42", channel_id="1971641", role="viewer"
    )


def test_aud_is_ignored_without_a_client_id() -> None:
    assert verify_extension_jwt(_token(aud="someone-else"), SECRET, "").user_id == "42"
    assert verify_extension_jwt(_token(aud=None), SECRET, "").user_id == "42"


def _refusal(token: str, secret: bytes = SECRET, client_id: str = CLIENT_ID) -> ApiError:
    with pytest.raises(ApiError) as caught:
        verify_extension_jwt(token, secret, client_id)
    assert caught.value.status == 401
    assert caught.value.headers is not None
    assert "WWW-Authenticate" in caught.value.headers
    return caught.value


@pytest.mark.parametrize(
    ("token_kwargs", "code", "message"),
    [
        ({"exp": int(time.time()) - 400}, "token_expired", "has expired"),
        ({"secret": b"another-secret-entirely-32-bytes"}, "invalid_token", "signature"),
        ({"aud": "other-extension"}, "invalid_token", "aud does not match"),
        ({"aud": None}, "invalid_token", "'aud'"),
        ({"exp": None}, "invalid_token", "'exp'"),
        ({"user_id": None}, "identity_not_shared", "has no user_id"),
        ({"user_id": ""}, "identity_not_shared", "has no user_id"),
        ({"user_id": 42}, "identity_not_shared", "has no user_id"),
        ({"algorithm": "HS512"}, "invalid_token", "signature"),
    ],
)
def test_bad_tokens_are_refused(token_kwargs: dict[str, Any], code: str, message: str) -> None:
    refusal = _refusal(_token(**token_kwargs))
    assert refusal.code == code
    assert message in refusal.message


def test_alg_none_is_refused() -> None:
    claims = {"user_id": "42", "aud": CLIENT_ID, "exp": int(time.time()) + 60}
    assert _refusal(jwt.encode(claims, None, algorithm="none")).code == "invalid_token"


@pytest.mark.parametrize("token", ["", "abc", "a.b.c", "eyJhbGciOiJIUzI1NiJ9..", "ü.ü.ü"])
def test_garbage_is_refused(token: str) -> None:
    assert _refusal(token).code == "invalid_token"


def test_no_secret_configured_refuses_everything() -> None:
    assert _refusal(_token(), secret=b"").code == "jwt_not_configured"


def test_the_mgm_gates_string_user_id_e2e_viewer_1_is_accepted() -> None:
    """The MGM Tier A gate mints a token for `e2e-viewer-1`, not a numeric Twitch id."""
    assert verify_extension_jwt(_token(user_id="e2e-viewer-1"), SECRET, CLIENT_ID).user_id == (
        "e2e-viewer-1"
    )


@pytest.mark.parametrize(
    ("claims", "viewer"),
    [
        ({"user_id": None, "sub": "e2e-viewer-2"}, "e2e-viewer-2"),
        ({"user_id": "", "sub": "77"}, "77"),
        ({"user_id": 42, "sub": "77"}, "77"),
        ({"user_id": "42", "sub": "77"}, "42"),
        ({"user_id": "  42 "}, "42"),
    ],
)
def test_the_viewer_is_user_id_else_sub(claims: dict[str, Any], viewer: str) -> None:
    assert verify_extension_jwt(_token(**claims), SECRET, CLIENT_ID).user_id == viewer


@pytest.mark.parametrize(
    ("claim", "offset", "accepted"),
    [
        ("exp", -240, True),
        ("exp", -360, False),
        ("nbf", 240, True),
        ("nbf", 360, False),
        ("iat", 240, True),
        ("iat", 360, False),
    ],
)
def test_time_claims_allow_five_minutes_of_clock_skew_like_the_real_backend(
    claim: str, offset: int, accepted: bool
) -> None:
    token = _token(**{claim: int(time.time()) + offset})
    if accepted:
        assert verify_extension_jwt(token, SECRET, CLIENT_ID).user_id == "42"
    else:
        assert _refusal(token).code in ("token_expired", "invalid_token")


def test_a_key_shorter_than_32_bytes_refuses_every_token() -> None:
    """The real backend's JWT library refuses HS256 keys under 256 bits."""
    short = b"k" * 31
    with pytest.warns(jwt.InsecureKeyLengthWarning):
        token = _token(secret=short)
    refusal = _refusal(token, secret=short)
    assert refusal.code == "jwt_key_too_short"
    assert "fewer than 32 bytes" in refusal.message
    assert "Twitch__ExtensionSecret" in refusal.message
    assert verify_extension_jwt(_token(secret=b"k" * 32), b"k" * 32, CLIENT_ID).user_id == "42"


@pytest.mark.parametrize(
    ("claims", "code"),
    [
        ({"exp": 1e400}, "invalid_token"),
        ({"exp": "soon"}, "invalid_token"),
        ({"nbf": [1]}, "invalid_token"),
        ({"user_id": "x" * 256}, "invalid_token"),
        ({"user_id": "nul\x00byte"}, "invalid_token"),
        ({"user_id": {"id": "42"}}, "identity_not_shared"),
    ],
)
def test_hostile_claims_are_a_401_not_a_crash(claims: dict[str, Any], code: str) -> None:
    assert _refusal(_token(**claims)).code == code


def test_an_unpaired_surrogate_in_user_id_is_refused() -> None:
    header = jwt.utils.base64url_encode(b'{"alg":"HS256","typ":"JWT"}')
    payload = jwt.utils.base64url_encode(
        b'{"user_id":"\\ud800","exp":%d,"aud":"client-abc"}' % (int(time.time()) + 300)
    )
    signing_input = header + b"." + payload
    signature = jwt.utils.base64url_encode(hmac.new(SECRET, signing_input, hashlib.sha256).digest())
    token = (signing_input + b"." + signature).decode()
    assert _refusal(token).code == "invalid_token"


def test_refusal_never_contains_the_token() -> None:
    token = _token(secret=b"another-secret-entirely-32-bytes")
    assert token not in _refusal(token).message


@pytest.mark.parametrize(
    ("header", "token"),
    [("Bearer abc", "abc"), ("bearer   abc ", "abc"), ("BEARER x.y.z", "x.y.z")],
)
def test_bearer_token(header: str, token: str) -> None:
    assert bearer_token(header) == token


@pytest.mark.parametrize("header", [None, "", "   ", "Bearer", "Bearer  ", "Basic abc", "abc"])
def test_bearer_token_missing(header: str | None) -> None:
    with pytest.raises(ApiError) as caught:
        bearer_token(header)
    assert (caught.value.status, caught.value.code) == (401, "missing_token")


def test_api_key_check() -> None:
    check_api_key("k3y", "k3y")
    for sent, code in [
        (None, "missing_api_key"),
        ("", "missing_api_key"),
        ("k3y ", "invalid_api_key"),
        ("K3Y", "invalid_api_key"),
        ("clé", "invalid_api_key"),
    ]:
        with pytest.raises(ApiError) as caught:
            check_api_key(sent, "k3y")
        assert (caught.value.status, caught.value.code) == (401, code)


def test_empty_configured_key_refuses_everyone() -> None:
    with pytest.raises(ApiError) as caught:
        check_api_key("anything", "")
    assert caught.value.code == "invalid_api_key"
