"""The probes: HTTP, TCP, PostgreSQL and log line, behind one small interface.

Every probe is a frozen dataclass with no mutable state, so one instance can be
checked from several threads at once. `check()` returns when the service is ready
and raises `ProbeFailed` with a short reason when it is not (yet); anything else
it raises is a bug or a set-up problem and is not retried.
"""

from __future__ import annotations

import functools
import http.client
import math
import re
import socket
import ssl
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable
from urllib.parse import urlsplit

from ._errors import ProbeFailed

_BODY_EXCERPT = 200


@runtime_checkable
class Probe(Protocol):
    """One way of asking a service whether it is ready."""

    @property
    def kind(self) -> str:
        """Which family the probe belongs to: "http", "tcp", "postgres" or "log"."""
        ...

    def describe(self) -> str:
        """One line saying what is checked, for logs and error messages."""
        ...

    def check(self) -> None:
        """Return when ready; raise `ProbeFailed` when not (yet)."""
        ...


def _one_line(text: str, limit: int = _BODY_EXCERPT) -> str:
    """Collapse whitespace so a reason stays on one line, and cut it to `limit` characters."""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def _httpx() -> Any:
    """httpx, imported on the first https check: it costs ~0.1 CPU-s, which a command whose
    probes are plain HTTP (or TCP, PostgreSQL, a log) never pays."""
    import httpx

    return httpx


def _verify(url: str) -> ssl.SSLContext | bool:
    """What to verify TLS with for `url`: the shared context for https://, and False for
    http://, which never uses one (building it costs ~30 ms of CA certificates)."""
    return ssl_context() if url.lower().startswith("https://") else False


@functools.cache
def ssl_context() -> ssl.SSLContext:
    """One verifying TLS context for every https check (sharing it is safe)."""
    context: ssl.SSLContext = _httpx().create_ssl_context()
    return context


def _host_port(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _require_positive(name: str, value: float) -> None:
    if not value > 0:
        raise ValueError(f"{name} must be a positive number of seconds, not {value!r}.")


@dataclass(frozen=True)
class HttpProbe:
    """Ready when a GET of `url` answers `expect_status` (and the body holds `body_contains`)."""

    url: str
    expect_status: int = 200
    body_contains: str | None = None
    timeout: float = 2.0
    kind: str = field(default="http", init=False)

    def __post_init__(self) -> None:
        _require_positive("HttpProbe.timeout", self.timeout)

    def describe(self) -> str:
        """E.g. "HTTP GET http://127.0.0.1:8080/health/ready expecting 200"."""
        text = f"HTTP GET {self.url} expecting {self.expect_status}"
        if self.body_contains is not None:
            text += f" with a body containing {self.body_contains!r}"
        return text

    def check(self) -> None:
        """GET the URL once; raise `ProbeFailed` on any transport error, status or body mismatch."""
        if self.url.lower().startswith("http://"):
            status, text = self._get_plain()
        else:
            status, text = self._get_tls()
        if status != self.expect_status:
            excerpt = _one_line(text)
            raise ProbeFailed(f"HTTP {status}: {excerpt}" if excerpt else f"HTTP {status}")
        if self.body_contains is not None and self.body_contains not in text:
            raise ProbeFailed(f"body lacks {self.body_contains!r}: {_one_line(text)}")

    def _get_plain(self) -> tuple[int, str]:
        """A plain-HTTP GET with the standard library: a probe polls up to ten times a second
        while a service starts, and a connection of its own per check (thread-safe) costs
        ~0.05 ms of CPU here against ~0.5 ms for an httpx client."""
        parts = urlsplit(self.url)
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        conn = http.client.HTTPConnection(
            parts.hostname or "", parts.port or 80, timeout=self.timeout
        )  # never a proxy: probes talk to 127.0.0.1 or our own containers
        try:
            try:
                conn.connect()
            except TimeoutError as exc:
                raise ProbeFailed(f"no answer within {self.timeout:g} s") from exc
            except OSError as exc:
                raise ProbeFailed(_connect_reason(exc)) from exc
            try:
                conn.request("GET", target, headers={"Accept": "*/*"})
                response = conn.getresponse()
                body = response.read()
            except TimeoutError as exc:
                raise ProbeFailed(f"no answer within {self.timeout:g} s") from exc
            except (OSError, http.client.HTTPException) as exc:
                raise ProbeFailed(_one_line(f"{type(exc).__name__}: {exc}")) from exc
        finally:
            conn.close()
        charset = response.headers.get_content_charset() or "utf-8"
        try:
            return response.status, body.decode(charset, errors="replace")
        except LookupError:  # a charset Python does not know
            return response.status, body.decode("utf-8", errors="replace")

    def _get_tls(self) -> tuple[int, str]:
        """An https GET through httpx, verifying the certificate."""
        httpx = _httpx()
        try:
            # A fresh client per check keeps the probe thread-safe. trust_env=False: probes
            # talk to 127.0.0.1 or our own containers, which a proxy from the environment
            # could not reach.
            with httpx.Client(
                timeout=self.timeout, trust_env=False, verify=_verify(self.url)
            ) as client:
                response = client.get(self.url)
        except httpx.TimeoutException as exc:
            raise ProbeFailed(f"no answer within {self.timeout:g} s") from exc
        except httpx.ConnectError as exc:
            raise ProbeFailed(_connect_reason(exc)) from exc
        except httpx.HTTPError as exc:
            raise ProbeFailed(_one_line(f"{type(exc).__name__}: {exc}")) from exc
        return response.status_code, response.text


def _connect_reason(exc: Exception) -> str:
    text = str(exc)
    if "refused" in text.lower():
        return "connection refused"
    return _one_line(f"cannot connect: {text}" if text else f"cannot connect: {exc!r}")


@dataclass(frozen=True)
class TcpProbe:
    """Ready when a TCP connection to `host`:`port` is accepted."""

    host: str
    port: int
    timeout: float = 1.0
    kind: str = field(default="tcp", init=False)

    def __post_init__(self) -> None:
        _require_positive("TcpProbe.timeout", self.timeout)

    def describe(self) -> str:
        """E.g. "TCP connect to 127.0.0.1:5432"."""
        return f"TCP connect to {_host_port(self.host, self.port)}"

    def check(self) -> None:
        """Open and close one connection; raise `ProbeFailed` when it is not accepted."""
        try:
            with socket.create_connection((self.host, self.port), timeout=self.timeout):
                pass
        except ConnectionRefusedError as exc:
            raise ProbeFailed("connection refused") from exc
        except TimeoutError as exc:
            raise ProbeFailed(f"no connection within {self.timeout:g} s") from exc
        except OSError as exc:
            raise ProbeFailed(_one_line(f"cannot connect: {exc.strerror or exc}")) from exc


@dataclass(frozen=True)
class PostgresProbe:
    """Ready when PostgreSQL accepts a login to `dbname` and runs `query`."""

    host: str
    port: int
    user: str
    password: str = field(repr=False)
    dbname: str
    query: str = "SELECT 1"
    timeout: float = 2.0
    kind: str = field(default="postgres", init=False)

    def __post_init__(self) -> None:
        _require_positive("PostgresProbe.timeout", self.timeout)

    def describe(self) -> str:
        """E.g. "PostgreSQL envkit@127.0.0.1:5432/envkit answering 'SELECT 1'" (no password)."""
        where = _host_port(self.host, self.port)
        return f"PostgreSQL {self.user}@{where}/{self.dbname} answering {self.query!r}"

    def check(self) -> None:
        """Connect, run the query once; raise `ProbeFailed` on any database error."""
        # Imported here so `import healthchecks` works where psycopg (a services extra) is absent.
        import psycopg

        # libpq wants whole seconds and enforces at least 2 s for connect_timeout.
        connect_timeout = max(2, math.ceil(self.timeout))
        statement_ms = max(1, round(self.timeout * 1000))
        try:
            with psycopg.connect(
                host=self.host,
                port=self.port,
                user=self.user,
                password=self.password,
                dbname=self.dbname,
                connect_timeout=connect_timeout,
                options=f"-c statement_timeout={statement_ms}",
                autocommit=True,
            ) as conn:
                cursor = conn.execute(self.query)
                if cursor.description is not None:
                    cursor.fetchall()
        except psycopg.Error as exc:
            raise ProbeFailed(_postgres_reason(exc)) from exc


def _postgres_reason(exc: Exception) -> str:
    text = str(exc)
    if "connection refused" in text.lower():
        return "connection refused"
    return _one_line(text or type(exc).__name__)


@dataclass(frozen=True)
class LogLineProbe:
    """Ready when `pattern` (a multi-line regex) matches at least `count` times in the log."""

    read_log: Callable[[], str]
    pattern: str
    count: int = 1
    source: str = "log"
    kind: str = field(default="log", init=False)

    def __post_init__(self) -> None:
        re.compile(self.pattern, re.MULTILINE)  # a bad pattern fails here, not at every check
        if self.count < 1:
            raise ValueError(f"LogLineProbe.count must be at least 1, not {self.count!r}.")

    def describe(self) -> str:
        """E.g. "log line /ready to accept connections/ x2 in mgm-postgres.log"."""
        return f"log line /{self.pattern}/ x{self.count} in {self.source}"

    def check(self) -> None:
        """Read the log once and count matches; raise `ProbeFailed` when there are too few."""
        try:
            text = self.read_log()
        except OSError as exc:
            raise ProbeFailed(_one_line(f"cannot read {self.source}: {exc}")) from exc
        regex = re.compile(self.pattern, re.MULTILINE)  # re caches compiled patterns
        found = sum(1 for _ in regex.finditer(text))
        if found < self.count:
            raise ProbeFailed(
                f"/{self.pattern}/ matched {found} of {self.count} times in {self.source}"
            )
