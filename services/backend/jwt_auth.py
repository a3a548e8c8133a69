"""Who is calling: the viewer's extension JWT (HS256) or the desktop's API key.

Both fail with 401 in the `{code, message, details}` shape; neither the token
nor the key is ever put into an error or a log line.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass

import jwt
from jwt.types import Options

from services.common import ApiError

API_KEY_HEADER = "x-mgm-apikey"
_BEARER_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="mgm"'}


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
    """Verify an HS256 extension JWT signed with `secret`; require `exp`, and `aud` if configured.

    Only HS256 is accepted, so `alg: none` and key-confusion tokens fail.
    """
    if not secret:
        raise _unauthorized(
            "jwt_not_configured",
            "Twitch__ExtensionSecret is not set, so no extension JWT can be verified.",
        )
    options: Options = {"require": ["exp"], "verify_aud": bool(client_id)}
    try:
        claims = jwt.decode(
            token,
            secret,
            algorithms=["HS256"],
            audience=client_id or None,
            options=options,
        )
    except jwt.ExpiredSignatureError as exc:
        raise _unauthorized("token_expired", "The extension JWT has expired.") from exc
    except jwt.InvalidAudienceError as exc:
        raise _unauthorized(
            "invalid_token", "The extension JWT is for another extension (aud does not match)."
        ) from exc
    except jwt.MissingRequiredClaimError as exc:
        raise _unauthorized(
            "invalid_token", f"The extension JWT lacks the required claim '{exc.claim}'."
        ) from exc
    except jwt.InvalidTokenError as exc:
        raise _unauthorized(
            "invalid_token", "The extension JWT is malformed or its signature does not verify."
        ) from exc
    user_id = claims.get("user_id")
    if not isinstance(user_id, str) or not user_id.strip():
        raise _unauthorized(
            "identity_not_shared",
            "The extension JWT has no user_id: the viewer has not shared their Twitch identity.",
        )
    return ViewerIdentity(
        user_id=user_id.strip(),
        opaque_user_id=str(claims.get("opaque_user_id", "")),
        channel_id=str(claims.get("channel_id", "")),
        role=str(claims.get("role", "")),
    )


def check_api_key(sent: str | None, expected: str) -> None:
    """Compare the `X-MGM-ApiKey` header with the configured key in constant time, else 401."""
    if sent is None or not sent:
        raise ApiError(401, "missing_api_key", "Send the desktop API key in X-MGM-ApiKey.")
    if not expected or not hmac.compare_digest(sent.encode("utf-8"), expected.encode("utf-8")):
        raise ApiError(401, "invalid_api_key", "The X-MGM-ApiKey header is not the configured key.")
