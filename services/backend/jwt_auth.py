"""Who is calling: the viewer's extension JWT (HS256) or the desktop's API key.

Both fail with 401 in the `{code, message, details}` shape; neither the token
nor the key is ever put into an error or a log line.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import jwt
from jwt.types import Options

from ..common import ApiError
from .config import MIN_EXTENSION_KEY_BYTES
from .enrollment import MAX_VIEWER_ID_CHARS, storable_text

API_KEY_HEADER = "x-mgm-apikey"
_BEARER_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="mgm"'}
# The real backend's JWT library allows this much clock skew on nbf, exp and iat.
CLOCK_SKEW = timedelta(minutes=5)


@dataclass(frozen=True)
class ViewerIdentity:
    """The claims of a verified extension JWT that the backend uses."""

    user_id: str
    opaque_user_id: str
    channel_id: str
    role: str


def _unauthorized(code: str, message: str) -> ApiError:
    return ApiError(401, code, message, None, dict(_BEARER_CHALLENGE))


def bearer_token(authorization: str | None) -> str:
    """Return the token of an `Authorization: Bearer <token>` header, else raise 401."""
    if authorization is None or not authorization.strip():
        raise _unauthorized(
            "missing_token", "Send the viewer's extension JWT as 'Authorization: Bearer <token>'."
        )
    scheme, _, token = authorization.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise _unauthorized("missing_token", "The Authorization header must be 'Bearer <token>'.")
    return token.strip()


def verify_extension_jwt(token: str, secret: bytes, client_id: str = "") -> ViewerIdentity:
    """Verify an HS256 extension JWT signed with `secret`, as the real backend does.

    Only HS256 is accepted, so `alg: none` and key-confusion tokens fail. `exp`
    is required, `aud` is checked when a client id is configured, and `nbf`,
    `exp` and `iat` allow five minutes of clock skew. The viewer is `user_id`,
    else `sub`: any non-empty string. A key shorter than 32 bytes refuses every
    token, like the real backend's JWT library.
    """
    if not secret:
        raise _unauthorized(
            "jwt_not_configured",
            "Twitch__ExtensionSecret is not set, so no extension JWT can be verified.",
        )
    if len(secret) < MIN_EXTENSION_KEY_BYTES:
        raise _unauthorized(
            "jwt_key_too_short",
            f"Twitch__ExtensionSecret decodes to fewer than {MIN_EXTENSION_KEY_BYTES} bytes, "
            "so no extension JWT is accepted; configure a longer secret.",
        )
    options: Options = {
        "require": ["exp"],
        "verify_aud": bool(client_id),
        "enforce_minimum_key_length": True,
    }
    try:
        claims = jwt.decode(
            token,
            secret,
            algorithms=["HS256"],
            audience=client_id or None,
            options=options,
            leeway=CLOCK_SKEW,
        )
    except jwt.ExpiredSignatureError as exc:
        raise _unauthorized("token_expired", "The extension JWT has expired.") from exc
    except jwt.ImmatureSignatureError as exc:
        raise _unauthorized(
            "invalid_token", "The extension JWT is not valid yet (nbf or iat is in the future)."
        ) from exc
    except jwt.InvalidAudienceError as exc:
        raise _unauthorized(
            "invalid_token", "The extension JWT is for another extension (aud does not match)."
        ) from exc
    except jwt.MissingRequiredClaimError as exc:
        raise _unauthorized(
            "invalid_token", f"The extension JWT lacks the required claim '{exc.claim}'."
        ) from exc
    except (jwt.InvalidTokenError, ValueError, TypeError, OverflowError) as exc:
        # The library lets a few hostile claim values (an `exp` of 1e400) escape as
        # ValueError/OverflowError; they are bad tokens all the same.
        raise _unauthorized(
            "invalid_token", "The extension JWT is malformed or its signature does not verify."
        ) from exc
    user_id = _viewer_id(claims)
    return ViewerIdentity(
        user_id=user_id,
        opaque_user_id=str(claims.get("opaque_user_id", "")),
        channel_id=str(claims.get("channel_id", "")),
        role=str(claims.get("role", "")),
    )


def _viewer_id(claims: dict[str, Any]) -> str:
    for name in ("user_id", "sub"):
        value = claims.get(name)
        if isinstance(value, str) and value.strip():
            viewer = value.strip()
            if len(viewer) > MAX_VIEWER_ID_CHARS or not storable_text(viewer):
                raise _unauthorized(
                    "invalid_token", f"The extension JWT's {name} is not a usable viewer id."
                )
            return viewer
    raise _unauthorized(
        "identity_not_shared",
        "The extension JWT has no user_id (or sub): the viewer has not shared their Twitch "
        "identity.",
    )


def check_api_key(sent: str | None, expected: str) -> None:
    """Compare the `X-MGM-ApiKey` header with the configured key in constant time, else 401."""
    if sent is None or not sent:
        raise ApiError(401, "missing_api_key", "Send the desktop API key in X-MGM-ApiKey.")
    if not expected or not hmac.compare_digest(sent.encode("utf-8"), expected.encode("utf-8")):
        raise ApiError(401, "invalid_api_key", "The X-MGM-ApiKey header is not the configured key.")
