"""The one redaction step: secrets and their common encodings become ***."""

from __future__ import annotations

import base64
import json
from urllib.parse import quote

from loguru import logger

from envkit.evidence.redact import MASK, Redactor
from envkit.logs import configure_logging


def test_masks_plain_url_encoded_and_base64_forms() -> None:
    secret = "p@ss word/1"
    redact = Redactor([secret])
    text = f"a {secret} b {quote(secret, safe='')} c {base64.b64encode(secret.encode()).decode()}"
    assert redact(text) == f"a {MASK} b {MASK} c {MASK}"


def test_longest_secret_wins_when_one_contains_another() -> None:
    redact = Redactor(["token", "token-extended"])
    assert redact("x token-extended y token") == f"x {MASK} y {MASK}"


def test_very_short_values_are_not_treated_as_secrets() -> None:
    assert Redactor(["ab"])("abc") == "abc"


def test_bytes_survive_invalid_utf8() -> None:
    assert Redactor(["secret"]).bytes(b"\xff secret") == b"\xff ***"


def test_log_lines_are_redacted(capsys: object) -> None:
    configure_logging(Redactor(["hunter22"]))
    logger.info("connecting with password {}", "hunter22")
    err = capsys.readouterr().err  # type: ignore[attr-defined]
    assert "hunter22" not in err
    assert f"connecting with password {MASK}" in err


def test_masks_json_escaped_forms() -> None:
    secret = 'qu"ote\\back-ünï'
    redact = Redactor([secret])
    for ensure_ascii in (True, False):
        text = json.dumps({"token": secret}, ensure_ascii=ensure_ascii)
        assert redact(text) == f'{{"token": "{MASK}"}}'
