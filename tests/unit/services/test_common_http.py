"""Request bodies every service reads: strict JSON (no 5xx on hostile input), keys in any case."""

from __future__ import annotations

import json

import pytest
from pydantic import BaseModel

from envkit.services.common import ApiError, JsonProblem, loads_strict
from envkit.services.common.http import MAX_JSON_DEPTH, fold_keys, parse_json


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b'{"a": NaN}', "NaN is not a JSON number"),
        (b"[Infinity]", "Infinity is not a JSON number"),
        (b"-Infinity", "-Infinity is not a JSON number"),
        (b'{"x": 1e999}', "the number 1e999 is too large for a double"),
        (b"[-2.5E+400]", "the number -2.5E+400 is too large"),
        (b'{"a": "\\ud800"}', "lone UTF-16 surrogate"),
        (b'{"\\udfff": 1}', "lone UTF-16 surrogate"),
        (b"[" * 100_000, f"nested deeper than {MAX_JSON_DEPTH} levels"),
        (b"[" * (MAX_JSON_DEPTH + 1) + b"]" * (MAX_JSON_DEPTH + 1), "nested deeper"),
        (b"9" * 5000, "Exceeds the limit (4300 digits)"),
        (b"\xff\xfe\x00", "codec can't decode"),
        (b"{oops", "Expecting property name"),
    ],
    ids=["nan", "infinity", "minus-infinity", "overflow", "overflow-negative", "surrogate-value",
         "surrogate-key", "deep", "one-too-deep", "huge-int", "bad-utf8", "syntax"],
)  # fmt: skip
def test_hostile_json_is_a_json_problem_never_another_error(raw: bytes, reason: str) -> None:
    with pytest.raises(JsonProblem) as caught:
        loads_strict(raw)
    assert reason in str(caught.value)
    with pytest.raises(ApiError) as answered:
        parse_json(raw)
    assert (answered.value.status, answered.value.code) == (400, "malformed_json")
    assert reason in answered.value.details["error"]


def test_ordinary_json_still_parses_nul_and_non_ascii_included() -> None:
    nested = b"[" * MAX_JSON_DEPTH + b"]" * MAX_JSON_DEPTH
    assert loads_strict(nested) == json.loads(nested)
    assert loads_strict('{"n": "a\\u0000b", "t": "Артас 😀", "x": 1e300}'.encode()) == {
        "n": "a\x00b",
        "t": "Артас 😀",
        "x": 1e300,
    }


class _Body(BaseModel):
    characterName: str
    twitchUserId: str = ""


def test_keys_are_matched_in_any_case_like_aspnet() -> None:
    """Real clients (System.Text.Json) may send PascalCase keys; the last duplicate wins."""
    assert fold_keys(_Body, {"CHARACTERNAME": "A", "TwitchUserId": "v", "other": 1}) == {
        "characterName": "A",
        "twitchUserId": "v",
        "other": 1,
    }
    assert fold_keys(_Body, {"charactername": "a", "CharacterName": "B"}) == {"characterName": "B"}
    assert fold_keys(_Body, ["not", "an", "object"]) == ["not", "an", "object"]
