"""Reading request bodies safely: size limit, JSON syntax, pydantic validation.

pydantic is imported by the first validation, not here: a service starts without it
(each service keeps its models in a `models` module its routes import on first use).
"""

from __future__ import annotations

import json
import math
from typing import TYPE_CHECKING, Any, TypeVar

from starlette.requests import Request

from .errors import ApiError

if TYPE_CHECKING:
    from pydantic import BaseModel

MAX_BODY_BYTES = 64 * 1024

M = TypeVar("M", bound="BaseModel")


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


MAX_JSON_DEPTH = 64  # ASP.NET's System.Text.Json refuses deeper documents by default


class JsonProblem(ValueError):
    """The bytes are not JSON that every service can store and echo back; says why."""


class JsonTooDeep(JsonProblem):
    """The document nests deeper than `MAX_JSON_DEPTH`."""


def _refuse_constant(name: str) -> Any:
    raise JsonProblem(f"{name} is not a JSON number (RFC 8259 has no NaN or Infinity)")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):  # 1e999 parses to inf, which no JSON answer can carry
        raise JsonProblem(f"the number {text[:40]} is too large for a double")
    return value


def _check_tree(value: Any, *, surrogates: bool) -> None:
    """Refuse nesting deeper than MAX_JSON_DEPTH and (unless `surrogates`) lone surrogates."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict | list):
            if depth > MAX_JSON_DEPTH:
                raise JsonTooDeep(f"the document is nested deeper than {MAX_JSON_DEPTH} levels")
            children = [*item.keys(), *item.values()] if isinstance(item, dict) else item
            stack.extend((child, depth + 1) for child in children)
        elif isinstance(item, str) and not surrogates:
            try:
                item.encode("utf-8")
            except UnicodeEncodeError as exc:
                # A lone surrogate (\ud800) cannot be stored in PostgreSQL or written as UTF-8.
                raise JsonProblem("a string holds a lone UTF-16 surrogate escape") from exc


def loads_strict(raw: bytes, *, allow_surrogates: bool = False) -> Any:
    """Parse JSON as interoperable data (no NaN, no lone surrogates, bounded depth).

    With `allow_surrogates`, strings may hold lone surrogates (a caller that names the
    offending field itself checks them later). Raises `JsonProblem` (a `ValueError`)
    naming what is wrong; never anything else, so hostile input cannot turn into a 5xx.
    """
    try:
        value = json.loads(raw, parse_constant=_refuse_constant, parse_float=_finite_float)
    except JsonProblem:
        raise
    except RecursionError as exc:
        raise JsonTooDeep(f"the document is nested deeper than {MAX_JSON_DEPTH} levels") from exc
    except (ValueError, UnicodeDecodeError) as exc:  # JSONDecodeError, huge integers, bad UTF-8
        raise JsonProblem(" ".join(str(exc).split())[:200]) from exc
    _check_tree(value, surrogates=allow_surrogates)
    return value


def parse_json(raw: bytes, *, allow_surrogates: bool = False) -> Any:
    """Parse JSON bytes strictly (see `loads_strict`), answering 400 with the reason."""
    try:
        return loads_strict(raw, allow_surrogates=allow_surrogates)
    except JsonProblem as exc:
        message = (
            "The request body is JSON nested too deeply to read."
            if isinstance(exc, JsonTooDeep)
            else "The request body is not valid JSON."
        )
        raise ApiError(400, "malformed_json", message, {"error": str(exc)}) from exc


def fold_keys(model: type[BaseModel], data: Any) -> Any:
    """Rename a JSON object's keys to `model`'s field names, ignoring case (ASP.NET's rule).

    When two keys differ only in case the later one wins, as System.Text.Json does.
    """
    if not isinstance(data, dict):
        return data
    fields = {name.lower(): name for name in model.model_fields}
    return {fields.get(str(key).lower(), key): value for key, value in data.items()}


def validate(model: type[M], data: Any) -> M:
    """Validate parsed JSON against `model`, answering 400 with each field's problem."""
    from pydantic import ValidationError  # loaded with the model's own module by now

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


async def read_json(
    request: Request,
    model: type[M],
    limit: int = MAX_BODY_BYTES,
    *,
    any_case_keys: bool = False,
) -> M:
    """Read, parse and validate a JSON body into `model` (keys in any case if `any_case_keys`)."""
    data = parse_json(await read_raw_body(request, limit))
    return validate(model, fold_keys(model, data) if any_case_keys else data)
