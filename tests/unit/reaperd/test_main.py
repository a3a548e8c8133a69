"""The reaper's own checks before it holds anything: the engine it reaches must run it."""

from __future__ import annotations

import contextlib
import http.server
import json
import socketserver
import sys
import threading
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from envkit.reaperd.__main__ import Engine, check_engine
from envkit.reaperd.protocol import FilterError

TOKEN = "5b1c0e"


class _Engine(Engine):
    """An engine stand-in: how many containers carry each token, or the error it answers with."""

    def __init__(self, running: dict[str, int], error: Exception | None = None) -> None:
        self.running = running
        self.error = error
        self.asked: list[str] = []

    def labelled(self, label: str) -> int:
        self.asked.append(label)
        if self.error is not None:
            raise self.error
        return self.running.get(label.removeprefix("envkit.reaper.token="), 0)


def test_a_reaper_on_the_engine_it_reaches_finds_its_own_container_by_its_token() -> None:
    engine = _Engine({TOKEN: 1})
    check_engine(engine, TOKEN)  # no refusal
    assert engine.asked == [f"envkit.reaper.token={TOKEN}"]


def test_a_reaper_started_without_a_token_does_not_ask_the_engine() -> None:
    engine = _Engine({}, AssertionError("the engine was asked"))
    check_engine(engine, "")


def test_a_reaper_that_reaches_another_engine_refuses_naming_that_engine(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("DOCKER_HOST", raising=False)
    # That engine runs reapers, but not this one (another token: another engine's reaper).
    engine = _Engine({"other": 1})
    with pytest.raises(FilterError) as info:
        check_engine(engine, TOKEN)
    assert str(info.value) == (
        "the engine this reaper reaches at unix:///var/run/docker.sock does not run it (no "
        f"container there carries envkit.reaper.token={TOKEN}): that is another engine, where "
        "it would never remove this session; it needs the socket of the engine it runs on"
    )


def test_a_reaper_that_reaches_no_engine_refuses_with_the_reason(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("DOCKER_HOST", "tcp://10.99.3.2:2375")
    engine = _Engine({}, ConnectionRefusedError("connection refused"))
    with pytest.raises(FilterError) as info:
        check_engine(engine, TOKEN)
    assert str(info.value) == (
        "this reaper reaches no engine at tcp://10.99.3.2:2375 (connection refused), so it "
        "could remove nothing"
    )


# -- the engine asked over HTTP, without the SDK ----------------------------------------------


class _FakeEngineApi(http.server.BaseHTTPRequestHandler):
    """Answers `GET /containers/json` as an engine running `server.running` (label lists)."""

    server: Any

    def do_GET(self) -> None:
        self.server.requests.append(self.path)
        if self.server.status != 200:
            self._answer(self.server.status, b'{"message": "engine trouble"}')
            return
        url = urllib.parse.urlsplit(self.path)
        query = urllib.parse.parse_qs(url.query)
        wanted = json.loads(query["filters"][0])["label"]
        found = [
            {"Id": f"c{i}", "Labels": labels}
            for i, labels in enumerate(self.server.running)
            if all(w in [f"{k}={v}" for k, v in labels.items()] for w in wanted)
        ]
        self._answer(200, json.dumps(found).encode())

    def _answer(self, status: int, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:  # a unix peer has no address
        pass


class _UnixHttpServer(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True


@contextlib.contextmanager
def _fake_engine(
    kind: str, tmp_path: Path, running: list[dict[str, str]], status: int = 200
) -> Iterator[tuple[str, Any]]:
    server: Any
    if kind == "unix":
        path = tmp_path / "engine.sock"
        server = _UnixHttpServer(str(path), _FakeEngineApi)
        url = f"unix://{path}"
    else:
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _FakeEngineApi)
        url = f"tcp://127.0.0.1:{server.server_address[1]}"
    server.running, server.status, server.requests = running, status, []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield url, server
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize("kind", ["unix", "tcp"])
def test_the_token_check_asks_the_engine_over_http_without_importing_the_sdk(
    kind: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    own = {"envkit.reaper.token": TOKEN, "org.testcontainers.reaper": "x"}
    other = {"envkit.reaper.token": "other"}
    with _fake_engine(kind, tmp_path, [other, own]) as (url, server):
        monkeypatch.setenv("DOCKER_HOST", url)
        monkeypatch.setitem(sys.modules, "docker", None)  # importing the SDK now fails
        engine = Engine()
        check_engine(engine, TOKEN)  # its own container is there: no refusal
        assert engine.labelled("envkit.reaper.token=other") == 1
        with pytest.raises(FilterError, match="does not run it"):
            check_engine(engine, "not-here")
    asked = urllib.parse.urlsplit(server.requests[0])
    assert asked.path == "/containers/json"
    assert urllib.parse.parse_qs(asked.query) == {
        "all": ["1"],
        "filters": [json.dumps({"label": [f"envkit.reaper.token={TOKEN}"]})],
    }
    assert "client" not in vars(engine)  # the SDK client was never made


def test_an_engine_answering_an_error_is_a_refusal_with_its_status(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with _fake_engine("unix", tmp_path, [], status=500) as (url, _):
        monkeypatch.setenv("DOCKER_HOST", url)
        with pytest.raises(FilterError) as info:
            check_engine(Engine(), TOKEN)
    assert str(info.value) == (
        f"this reaper reaches no engine at {url} (the engine answered 500 Internal Server "
        "Error), so it could remove nothing"
    )


def test_a_socket_nobody_listens_on_is_a_refusal_naming_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = f"unix://{tmp_path / 'nothing.sock'}"
    monkeypatch.setenv("DOCKER_HOST", url)
    with pytest.raises(FilterError) as info:
        check_engine(Engine(), TOKEN)
    message = str(info.value)
    assert message.startswith(f"this reaper reaches no engine at {url} (")
    assert "No such file or directory" in message
