"""Each probe against a real server on 127.0.0.1 (HTTP, TCP) or real files and closed ports."""

from __future__ import annotations

import re
import socket
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from envkit.healthchecks import (
    HttpProbe,
    LogLineProbe,
    PostgresProbe,
    Probe,
    ProbeFailed,
    TcpProbe,
)

LONG_BODY = "x" * 1000


class _Handler(BaseHTTPRequestHandler):
    """/ok → 200 "status: ok"; /down → 503; /long → 503 with a long body; /slow → 1 s late."""

    routes: dict[str, tuple[int, str]] = {  # noqa: RUF012 - read-only test table
        "/ok": (200, "status: ok"),
        "/down": (503, "database\nnot ready"),
        "/long": (503, LONG_BODY),
        "/empty": (204, ""),
    }

    def do_GET(self) -> None:
        if self.path == "/slow":
            time.sleep(1.0)
        status, body = self.routes.get(self.path, (200, "late"))
        payload = body.encode()
        try:
            self.send_response(status)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)
        except (BrokenPipeError, ConnectionResetError):
            pass  # /slow: the probe gave up and hung up first, as intended

    def log_message(self, format: str, *args: object) -> None:
        pass


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 64  # the default 5 drops SYNs under the many-threads test (1 s retry)


@pytest.fixture(scope="module")
def http_url() -> Iterator[str]:
    """Base URL of a real HTTP server in a thread; always shut down afterwards."""
    server = _Server(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@pytest.fixture
def closed_port() -> int:
    """A port on 127.0.0.1 that nothing listens on (bound, then released)."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port: int = sock.getsockname()[1]
    sock.close()
    return port


@pytest.fixture
def tcp_listener() -> Iterator[int]:
    """A listening TCP socket on 127.0.0.1; yields its port."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen()
    try:
        yield sock.getsockname()[1]
    finally:
        sock.close()


def reason_of(probe: Probe) -> str:
    with pytest.raises(ProbeFailed) as caught:
        probe.check()
    return caught.value.reason


# -- HTTP -------------------------------------------------------------------------------------


def test_http_ready_on_expected_status(http_url: str) -> None:
    HttpProbe(f"{http_url}/ok").check()
    HttpProbe(f"{http_url}/ok", body_contains="ok").check()
    HttpProbe(f"{http_url}/empty", expect_status=204).check()


def test_http_wrong_status_names_it_with_the_start_of_the_body(http_url: str) -> None:
    assert reason_of(HttpProbe(f"{http_url}/down")) == "HTTP 503: database not ready"
    assert reason_of(HttpProbe(f"{http_url}/ok", expect_status=204)) == "HTTP 200: status: ok"
    assert reason_of(HttpProbe(f"{http_url}/empty")) == "HTTP 204"


def test_http_long_body_is_cut_to_200_characters(http_url: str) -> None:
    reason = reason_of(HttpProbe(f"{http_url}/long"))

    assert reason.startswith("HTTP 503: xxx")
    assert len(reason) == len("HTTP 503: ") + 200


def test_http_body_mismatch(http_url: str) -> None:
    reason = reason_of(HttpProbe(f"{http_url}/ok", body_contains="ready"))

    assert reason == "body lacks 'ready': status: ok"


def test_http_connection_refused(closed_port: int) -> None:
    assert reason_of(HttpProbe(f"http://127.0.0.1:{closed_port}/health")) == "connection refused"


def test_http_connection_closed_without_an_answer_is_named() -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()

        def hang_up() -> None:  # reads the request, answers nothing
            conn, _ = listener.accept()
            with conn:
                conn.recv(1024)

        thread = threading.Thread(target=hang_up)
        thread.start()
        reason = reason_of(HttpProbe(f"http://127.0.0.1:{listener.getsockname()[1]}/health"))
        thread.join(timeout=5)
    assert reason.startswith("RemoteDisconnected: ")


def test_https_connection_refused(closed_port: int) -> None:
    assert reason_of(HttpProbe(f"https://127.0.0.1:{closed_port}/health")) == "connection refused"


def test_http_no_answer_within_timeout(http_url: str) -> None:
    # The reason names the probe's own timeout; how long that took is not asserted (timed
    # assertions flake on a busy machine).
    assert reason_of(HttpProbe(f"{http_url}/slow", timeout=0.1)) == "no answer within 0.1 s"


def test_http_describe_and_kind() -> None:
    probe = HttpProbe("http://127.0.0.1:32768/health/ready")
    assert probe.kind == "http"
    assert probe.describe() == "HTTP GET http://127.0.0.1:32768/health/ready expecting 200"
    assert HttpProbe("http://h/x", 204, body_contains="ok").describe() == (
        "HTTP GET http://h/x expecting 204 with a body containing 'ok'"
    )


def test_http_check_is_safe_from_many_threads(http_url: str) -> None:
    ok = HttpProbe(f"{http_url}/ok", body_contains="ok")
    down = HttpProbe(f"{http_url}/down")

    def both(_: int) -> str:
        ok.check()
        return reason_of(down)

    with ThreadPoolExecutor(max_workers=8) as pool:
        reasons = list(pool.map(both, range(16)))

    assert reasons == ["HTTP 503: database not ready"] * 16


def test_probe_timeouts_must_be_positive() -> None:
    with pytest.raises(ValueError, match=r"HttpProbe\.timeout must be a positive number"):
        HttpProbe("http://h/", timeout=0)
    with pytest.raises(ValueError, match=r"TcpProbe\.timeout must be a positive number"):
        TcpProbe("h", 1, timeout=-1)


# -- TCP --------------------------------------------------------------------------------------


def test_tcp_open_port_is_ready(tcp_listener: int) -> None:
    TcpProbe("127.0.0.1", tcp_listener).check()


def test_tcp_closed_port(closed_port: int) -> None:
    assert reason_of(TcpProbe("127.0.0.1", closed_port)) == "connection refused"


def test_tcp_describe_and_kind() -> None:
    assert TcpProbe("127.0.0.1", 5432).describe() == "TCP connect to 127.0.0.1:5432"
    assert TcpProbe("::1", 5432).describe() == "TCP connect to [::1]:5432"
    assert TcpProbe("127.0.0.1", 5432).kind == "tcp"


# -- log line ---------------------------------------------------------------------------------


def test_log_line_counts_matches_of_a_multiline_pattern() -> None:
    log = ["starting\n"]
    probe = LogLineProbe(
        lambda: "".join(log),
        r"^.*ready to accept connections$",
        count=2,
        source="mgm-postgres.log",
    )

    assert reason_of(probe) == (
        "/^.*ready to accept connections$/ matched 0 of 2 times in mgm-postgres.log"
    )
    log.append("LOG:  database system is ready to accept connections\n")
    assert "matched 1 of 2 times" in reason_of(probe)
    log.append("restarting\nLOG:  database system is ready to accept connections\n")
    probe.check()


def test_log_line_reads_a_real_file_and_reports_a_missing_one(tmp_path: Path) -> None:
    path = tmp_path / "backend.log"
    probe = LogLineProbe(path.read_text, r"Uvicorn running on", source="backend.log")

    assert reason_of(probe).startswith("cannot read backend.log: [Errno 2] No such file")
    path.write_text("INFO:     Uvicorn running on http://0.0.0.0:8080\n")
    probe.check()


def test_log_line_describe_and_validation() -> None:
    probe = LogLineProbe(str, r"ready", source="mgm-postgres.log")
    assert probe.kind == "log"
    assert probe.describe() == "log line /ready/ x1 in mgm-postgres.log"
    assert LogLineProbe(str, "a", count=3).describe() == "log line /a/ x3 in log"
    with pytest.raises(re.error):
        LogLineProbe(str, "(unclosed")
    with pytest.raises(ValueError, match=r"LogLineProbe\.count must be at least 1, not 0"):
        LogLineProbe(str, "a", count=0)


# -- PostgreSQL (the success path is in tests/integration/test_probe_postgres.py) -------------


def test_postgres_closed_port_fails_with_a_reason(closed_port: int) -> None:
    probe = PostgresProbe("127.0.0.1", closed_port, "envkit", "s3cret-pw", "envkit")

    assert reason_of(probe) == "connection refused"


def test_postgres_describe_and_repr_hide_the_password() -> None:
    probe = PostgresProbe("127.0.0.1", 5432, "envkit", "s3cret-pw", "envkit")

    assert probe.kind == "postgres"
    assert probe.describe() == "PostgreSQL envkit@127.0.0.1:5432/envkit answering 'SELECT 1'"
    assert "s3cret-pw" not in probe.describe()
    assert "s3cret-pw" not in repr(probe)


def test_every_probe_satisfies_the_protocol() -> None:
    probes: list[object] = [
        HttpProbe("http://h/"),
        TcpProbe("h", 1),
        PostgresProbe("h", 1, "u", "p", "d"),
        LogLineProbe(str, "x"),
    ]
    assert all(isinstance(p, Probe) for p in probes)
