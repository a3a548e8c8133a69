"""The enrollment rules that need no database: command, badges, names, the gold cap."""

from __future__ import annotations

import unicodedata

import pytest

from envkit.services.backend.enrollment import (
    NAME_BLOCKS,
    Accepted,
    Ignored,
    check_identity,
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
        ("Zoë", True),  # Latin-1 Supplement
        ("Ærwyn", True),  # Latin-1 Supplement
        ("Łukasz", True),  # Latin Extended-A
        ("Ǆemal", True),  # Latin Extended-B (a titlecase-able digraph letter)
        ("Ḑarya", True),  # Latin Extended Additional
        ("Ɑlex", True),  # Latin Extended-C
        ("Ꝋlaf", True),  # Latin Extended-D
        ("Ԁобрыня", True),  # Cyrillic Supplement
        ("Ꙁвезда", True),  # Cyrillic Extended-B
        ("ᲀᲁ", True),  # Cyrillic Extended-C
        ("Arthas1", False),
        ("Art-has", False),
        ("Art_has", False),
        ("Zo\u00d7e", False),  # the multiplication sign sits in Latin-1 Supplement but is no letter
        ("Ωmega", False),  # Greek
        ("名前です", False),
        ("Ar thas", False),
        ("҂҂", False),  # Cyrillic block, but a symbol
        ("ⷠⷡ", False),  # Cyrillic Extended-A holds only combining marks
        ("Ꞌ́a", False),  # a combining mark from outside the listed blocks
        ("\uff21rthas", False),  # fullwidth Latin is another block
    ],
)
def test_character_names_are_2_to_12_letters_from_the_latin_and_cyrillic_blocks(
    name: str, valid: bool
) -> None:
    assert is_valid_character_name(name) is valid


def test_name_blocks_are_exactly_the_contracts() -> None:
    assert [name for name, _, _ in NAME_BLOCKS] == [
        "Basic Latin",
        "Latin-1 Supplement",
        "Latin Extended-A",
        "Latin Extended-B",
        "Latin Extended Additional",
        "Latin Extended-C",
        "Latin Extended-D",
        "Cyrillic",
        "Cyrillic Supplement",
        "Cyrillic Extended-A",
        "Cyrillic Extended-B",
        "Cyrillic Extended-C",
    ]


@pytest.mark.parametrize(
    ("badges", "ok"),
    [
        (["subscriber"], True),
        (["founder"], True),
        (["premium"], True),
        (["moderator", "subscriber"], True),
        (["Subscriber"], False),  # set ids are lower case; the real backend matches exactly
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
        ("!twgold Thr4ll", ["subscriber"], "2-12 letters from the Latin or Cyrillic blocks"),
    ],
)
def test_evaluate_says_why_it_ignores(text: str, badges: list[str], reason: str) -> None:
    decision = evaluate_message(text, badges)
    assert isinstance(decision, Ignored)
    assert reason in decision.reason


def test_names_are_not_normalised_so_decomposed_letters_are_refused() -> None:
    decomposed = unicodedata.normalize("NFD", "Йожик")
    assert len(decomposed) == 6
    decision = evaluate_message(f"!twgold {decomposed}", ["founder"])
    assert decision == Ignored(
        "the character name is not 2-12 letters from the Latin or Cyrillic blocks"
    )
    assert evaluate_message("!twgold Йожик", ["founder"]) == Accepted("Йожик")


def test_names_are_compared_case_sensitively() -> None:
    """`Arthas` and `arthas` are two names (the real backend compares them ordinally)."""
    assert name_key("Arthas") != name_key("arthas")
    assert name_key("ЯРОСЛАВ") != name_key("ярослав")
    assert name_key("Arthas") == name_key("Arthas")


@pytest.mark.parametrize(
    ("message_id", "viewer", "login", "reason"),
    [
        ("", "e2e-viewer-1", "e2eviewer1", "no message_id"),
        ("m1", "", "e2eviewer1", "no chatter_user_id"),
        ("m1", "x" * 256, "login", "longer than 255 characters"),
        ("m1", "viewer\x00", "login", "NUL or an unpaired surrogate"),
        ("m1", "viewer\ud800", "login", "NUL or an unpaired surrogate"),
        ("m1", "viewer", "log\x00in", "NUL or an unpaired surrogate"),
    ],
)
def test_identity_checks_say_why_an_event_cannot_enroll(
    message_id: str, viewer: str, login: str, reason: str
) -> None:
    decision = check_identity(message_id, viewer, login)
    assert isinstance(decision, Ignored)
    assert reason in decision.reason


@pytest.mark.parametrize(
    ("message_id", "viewer"),
    [("m1", "e2e-viewer-1"), ("any id at all", "4145994"), ("m", "x" * 255), ("m", "ïd")],
)
def test_any_non_empty_ids_are_accepted_like_the_mgm_scripts_e2e_viewer_1(
    message_id: str, viewer: str
) -> None:
    assert check_identity(message_id, viewer, "login") is None


@pytest.mark.parametrize(("sent", "ok"), [(0, True), (8000, True), (9000, True), (9001, False)])
def test_gold_cap(sent: int, ok: bool) -> None:
    assert within_gold_cap(sent) is ok
