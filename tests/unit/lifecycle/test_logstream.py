"""A container's log followed into a file from its start: whole lines, timestamps, no secrets."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

from envkit.evidence.redact import MASK, Redactor
from envkit.lifecycle.logstream import LogStream

SECRET = 'eventsub "secret"\\42'  # a quote and a backslash: JSON spells it differently
TS = "2026-11-22T10:15:00.123456789Z"


class FakeContainer:
    """A docker-py container whose log stream yields the given chunks, then ends or fails."""

    def __init__(
        self,
        chunks: Iterable[bytes],
        *,
        gate: threading.Event | None = None,
        fail: Exception | None = None,
    ) -> None:
        self.chunks = list(chunks)
        self.gate = gate
        self.fail = fail
        self.asked: dict[str, Any] = {}

    def logs(self, **kwargs: Any) -> Iterator[bytes]:
        self.asked = kwargs
        return self._stream()

    def _stream(self) -> Iterator[bytes]:
        if self.gate is not None:
            self.gate.wait()
        yield from self.chunks
        if self.fail is not None:
            raise self.fail


def follow(tmp_path: Path, container: FakeContainer) -> LogStream:
    stream = LogStream(container, tmp_path / "logs" / "backend.log", Redactor([SECRET]))
    stream.start()
    stream.join(timeout=60)
    return stream


def test_the_file_exists_as_soon_as_the_stream_starts(tmp_path: Path) -> None:
    gate = threading.Event()
    container = FakeContainer([f"{TS} ready\n".encode()], gate=gate)
    stream = LogStream(container, tmp_path / "logs" / "backend.log", Redactor([]))
    stream.start()
    try:
        assert stream.path.is_file()  # the container has printed nothing yet
        assert stream.text() == ""
    finally:
        gate.set()
        stream.join(timeout=60)
    assert stream.text() == f"{TS} ready\n"


def test_the_engine_is_asked_for_everything_followed_with_timestamps(tmp_path: Path) -> None:
    container = FakeContainer([f"{TS} one\n{TS} two\n".encode()])
    stream = follow(tmp_path, container)
    assert container.asked == {"stream": True, "follow": True, "timestamps": True}
    assert stream.text() == f"{TS} one\n{TS} two\n"


def test_lines_split_across_chunks_are_written_whole(tmp_path: Path) -> None:
    chunks = [f"{TS} sta".encode(), b"rting\n", f"{TS} li".encode(), b"stening\n"]
    stream = follow(tmp_path, FakeContainer(chunks))
    assert stream.text() == f"{TS} starting\n{TS} listening\n"


def test_a_secret_split_across_two_chunks_is_masked(tmp_path: Path) -> None:
    line = f"{TS} connecting with {SECRET} now\n".encode()
    cut = line.index(b"secret") + 3  # inside the secret
    stream = follow(tmp_path, FakeContainer([line[:cut], line[cut:]]))
    assert stream.text() == f"{TS} connecting with {MASK} now\n"


def test_the_url_encoded_and_json_escaped_forms_are_masked(tmp_path: Path) -> None:
    url = f"{TS} GET /callback?token={quote(SECRET, safe='')}&x=1\n"
    body = f"{TS} {json.dumps({'secret': SECRET})}\n"
    stream = follow(tmp_path, FakeContainer([url.encode(), body.encode()]))
    assert stream.text() == (f'{TS} GET /callback?token={MASK}&x=1\n{TS} {{"secret": "{MASK}"}}\n')


def test_a_last_line_without_newline_is_kept_when_the_stream_ends(tmp_path: Path) -> None:
    chunks = [f"{TS} done\n{TS} panic: {SECRET}".encode()]
    stream = follow(tmp_path, FakeContainer(chunks))
    assert stream.text() == f"{TS} done\n{TS} panic: {MASK}\n"


def test_a_container_that_goes_away_ends_the_stream_keeping_what_it_wrote(
    tmp_path: Path,
) -> None:
    container = FakeContainer([f"{TS} one\n{TS} half".encode()], fail=ConnectionError("gone"))
    stream = follow(tmp_path, container)
    assert stream.text() == f"{TS} one\n{TS} half\n"


def test_undecodable_bytes_pass_through(tmp_path: Path) -> None:
    stream = follow(tmp_path, FakeContainer([b"\xff\xfe raw " + SECRET.encode() + b"\n"]))
    assert stream.path.read_bytes() == b"\xff\xfe raw " + MASK.encode() + b"\n"


def test_the_tail_is_the_last_lines(tmp_path: Path) -> None:
    chunks = [f"line {n}\n".encode() for n in range(40)]
    stream = follow(tmp_path, FakeContainer(chunks))
    assert stream.tail(3) == "line 37\nline 38\nline 39"
    assert stream.tail().splitlines()[0] == "line 10"  # 30 lines by default


def test_text_of_a_stream_never_started_is_empty(tmp_path: Path) -> None:
    stream = LogStream(FakeContainer([]), tmp_path / "never.log", Redactor([]))
    assert stream.text() == ""
    assert stream.tail() == ""
