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


HARD_SECRETS = ["qu\"o'te", "back\\slash-x", "two\nlines-xy", "ünï-cødé", "a&b<c>d \t e"]


def test_every_written_form_of_awkward_secrets_is_masked() -> None:
    from html import escape as html_escape
    from urllib.parse import quote_plus
    from xml.etree import ElementTree as ET

    redact = Redactor(HARD_SECRETS)
    for secret in HARD_SECRETS:
        element = ET.Element("case", message=secret)
        element.text = secret
        written = [
            ET.tostring(element, encoding="unicode"),
            json.dumps({"k": secret}),
            json.dumps({"k": secret}, ensure_ascii=False),
            json.dumps({"line": json.dumps({"k": secret})}),  # a JSON log line inside JSON
            quote(secret, safe=""),
            quote_plus(secret),
            html_escape(secret),
            f"value={secret!r}",
        ]
        for text in written:
            redacted = redact(text)
            assert secret not in redacted, (secret, text)
            assert MASK in redacted, (secret, text)


def test_each_line_of_a_secret_that_spans_lines_is_masked() -> None:
    redact = Redactor(["first-part\nsecond-part"])
    log = "2026-01-01T00:00:00Z got first-part\n2026-01-01T00:00:00Z second-part end\n"
    assert redact(log) == f"2026-01-01T00:00:00Z got {MASK}\n2026-01-01T00:00:00Z {MASK} end\n"
