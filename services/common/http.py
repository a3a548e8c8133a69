"""Reading request bodies safely: size limit, JSON syntax, pydantic validation."""

from __future__ import annotations

import json
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError
from starlette.requests import Request

from services.common.errors import ApiError

MAX_BODY_BYTES = 64 * 1024

M = TypeVar("M", bound=BaseModel)


async def read_raw_body(request: Request, limit: int = MAX_BODY_BYTES) -> bytes:
    """Return the raw body, refusing more than `limit` bytes with 413."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise _too_large(limit)
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise _too_large(limit)
        chunks.append(chunk)
    return b"".join(chunks)


def _too_large(limit: int) -> ApiError:
    return ApiError(
        413,
        "payload_too_large",
        f"The request body is larger than {limit} bytes.",
        {"limitBytes": limit},
    )


def parse_json(raw: bytes) -> Any:
    """Parse JSON bytes, answering 400 with the parser's position on a syntax error."""
    try:
        return json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ApiError(
            400, "malformed_json", "The request body is not valid JSON.", {"error": str(exc)}
        ) from exc


def validate(model: type[M], data: Any) -> M:
    """Validate parsed JSON against `model`, answering 400 with each field's problem."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        problems = [
            {"field": ".".join(str(p) for p in err["loc"]) or "(body)", "problem": err["msg"]}
            for err in exc.errors()
        ]
        raise ApiError(
            400, "invalid_body", "The request body does not have the expected fields.", problems
        ) from exc


async def read_json(request: Request, model: type[M], limit: int = MAX_BODY_BYTES) -> M:
    """Read, parse and validate a JSON body into `model`."""
    return validate(model, parse_json(await read_raw_body(request, limit)))
