"""The enrollment rules that need no database: command, badges, names, the gold cap."""

from __future__ import annotations

import unicodedata

import pytest

from services.backend.enrollment import (
    Accepted,
    Ignored,
    evaluate_message,
    has_qualifying_badge,
    is_valid_character_name,
    name_key,
    parse_command,
    within_gold_cap,
)


@pytest.mark.parametrize(
    ("text", "token"),
    [
        ("!twgold Arthas", "Arthas"),
        ("  !twgold Arthas  ", "Arthas"),
        ("!TWGOLD Arthas", "Arthas"),
        ("!TwGoLd\tArthas", "Arthas"),
        ("!twgold \u3000 Arthas\n", "Arthas"),
        ("!twgold", None),
        ("!twgold   ", None),
        ("!twgoldArthas", None),
        ("!twgold Arthas Menethil", None),
        ("twgold Arthas", None),
        ("!gold Arthas", None),
        ("say !twgold Arthas", None),
        ("", None),
    ],
)
def test_parse_command(text: str, token: str | None) -> None:
    assert parse_command(text) == token


@pytest.mark.parametrize(
    ("name", "valid"),
    [
        ("Al", True),
        ("Abcdefghijkl", True),
        ("A", False),
        ("Abcdefghijklm", False),
        ("Иван", True),
        ("Ёлка", True),
        ("ёжик", True),
        ("Їжак", True),
        ("MixЛатиница", True),  # noqa: RUF001 - mixed scripts on purpose
        ("Arthas1", False),
        ("Art-has", False),
        ("Art_has", False),
        ("Zoë", False),
        ("Ωmega", False),
        ("名前です", False),
        ("Ar thas", False),
        ("҂҂", False),
    ],
)
def test_character_names_are_2_to_12_latin_or_cyrillic_letters(name: str, valid: bool) -> None:
    assert is_valid_character_name(name) is valid


@pytest.mark.parametrize(
    ("badges", "ok"),
    [
        (["subscriber"], True),
        (["founder"], True),
        (["premium"], True),
        (["moderator", "Subscriber"], True),
        (["moderator", "sub-gifter", "vip"], False),
        (["broadcaster"], False),
        ([], False),
    ],
)
def test_qualifying_badges(badges: list[str], ok: bool) -> None:
    assert has_qualifying_badge(badges) is ok


def test_evaluate_accepts_a_subscriber_with_a_good_name() -> None:
    assert evaluate_message(" !twgold Thrall ", ["subscriber"]) == Accepted("Thrall")


@pytest.mark.parametrize(
    ("text", "badges", "reason"),
    [
        ("Hi chat", ["subscriber"], "not a !twgold command"),
        ("!twgold", ["subscriber"], "exactly one name"),
        ("!twgold a b", ["subscriber"], "exactly one name"),
        ("!twgold Thrall", ["vip"], "no subscriber, founder or premium badge"),
        ("!twgold Thr4ll", ["subscriber"], "2-12 Latin or Cyrillic letters"),
    ],
)
def test_evaluate_says_why_it_ignores(text: str, badges: list[str], reason: str) -> None:
    decision = evaluate_message(text, badges)
    assert isinstance(decision, Ignored)
    assert reason in decision.reason


def test_decomposed_cyrillic_is_composed_before_checking() -> None:
    decomposed = unicodedata.normalize("NFD", "Йожик")
    assert len(decomposed) == 6
    decision = evaluate_message(f"!twgold {decomposed}", ["founder"])
    assert decision == Accepted("Йожик")


def test_name_key_compares_case_insensitively() -> None:
    assert name_key("ARTHAS") == name_key("arthas")
    assert name_key("ЯРОСЛАВ") == name_key("ярослав")
    assert name_key("Ёж") == name_key("ёЖ")
    assert name_key("Arthas") != name_key("Arthus")


@pytest.mark.parametrize(("sent", "ok"), [(0, True), (8000, True), (9000, True), (9001, False)])
def test_gold_cap(sent: int, ok: bool) -> None:
    assert within_gold_cap(sent) is ok
