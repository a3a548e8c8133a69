"""A pool of engines: where a run goes, and at most K runs per engine at once, across processes.

The pool is `ENVKIT_ENGINES__POOL`, endpoints as DOCKER_HOST takes them, comma-separated
(`unix:///var/run/docker.sock,tcp://10.99.3.2:2375`); `ENVKIT_ENGINES__PER_ENGINE` is K.
A run takes a slot before it touches an engine: slot j of engine E is the lock file
`<cache>/pool/<E's hash>.<j>.lock`, held with `flock` (the `filelock` package) for the
length of the run. The kernel drops the lock when the holder's file is closed, so a process
that dies (kill -9 included) frees its slots at once, and any number of envkit processes on
this machine share the pool without a coordinator. Slots are tried slot index first, then
engine (rotating the first engine per request), so runs spread over the engines before any
engine gets a second one.
"""

from __future__ import annotations

import hashlib
import itertools
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from filelock import FileLock, Timeout

from envkit.engines.engine import Endpoint, current_endpoint
from envkit.errors import EngineError

POOL_SETTING = "ENVKIT_ENGINES__POOL"
SCHEMES = ("unix", "tcp", "ssh")
POLL_SECONDS = 0.2  # how often a run waiting for a slot tries again
_EXAMPLE = "e.g. unix:///var/run/docker.sock,tcp://10.0.0.5:2375,ssh://ci@build-2"
_turn = itertools.count()  # rotates the first engine tried, so one process spreads too
_turn_lock = threading.Lock()


def endpoint_problem(url: str) -> str | None:
    """Why `url` is not an engine endpoint envkit can use (None when it is one)."""
    parts = urlsplit(url)
    if parts.scheme not in SCHEMES:
        return f"{url!r} does not start with {', '.join(s + '://' for s in SCHEMES)}"
    if parts.scheme == "unix":
        return None if parts.path.startswith("/") else f"{url!r} names no absolute socket path"
    if not parts.hostname:
        return f"{url!r} names no host"
    try:
        port = parts.port
    except ValueError:
        return f"{url!r} has a port that is not a number from 1 to 65535"
    if parts.scheme == "tcp" and port is None:
        return f"{url!r} names no port (the engine's tcp port, e.g. :2375)"
    return None


def parse_pool(text: str) -> list[str]:
    """The endpoints of a pool setting, in order, without repeats; ValueError names a bad one."""
    endpoints = [item.strip() for item in text.split(",") if item.strip()]
    for url in endpoints:
        if (problem := endpoint_problem(url)) is not None:
            raise ValueError(
                f"{problem}: list engine endpoints as DOCKER_HOST takes them, {_EXAMPLE}"
            )
    return list(dict.fromkeys(endpoints))


def endpoint_of(url: str, origin: str, tc_host: str = "") -> Endpoint:
    """The `Endpoint` for `url` given by `origin` (a flag or the pool setting)."""
    if (problem := endpoint_problem(url)) is not None:
        raise EngineError(
            f"{origin}: {problem}. Name an engine as DOCKER_HOST takes it, {_EXAMPLE}."
        )
    return Endpoint(url, origin, None, tc_host)


def pool_endpoints(pool: Sequence[str], engine: str = "", spread: bool = False) -> list[Endpoint]:
    """Where runs may go: `engine` (the --engine flag) alone; else the pool when it is set or
    `spread` asks for it; else the current engine (DOCKER_HOST, the context, the socket)."""
    if engine:
        return [endpoint_of(engine, "--engine")]
    if spread and not pool:
        raise EngineError(
            f"--pool spreads runs over the engines of {POOL_SETTING}, which is empty. List the "
            f"engines there ({_EXAMPLE}), or leave --pool off to use the current engine."
        )
    if pool:
        return [endpoint_of(url, POOL_SETTING) for url in pool]
    return [current_endpoint()]


def engine_key(url: str) -> str:
    """A short, file-name-safe name for an endpoint (its slots' lock files start with it)."""
    return hashlib.sha256(url.encode()).hexdigest()[:12]


@dataclass(frozen=True)
class Slot:
    """A held place for one run on one engine: slot `index` (0 … K-1) of `endpoint`."""

    endpoint: Endpoint
    index: int
    path: Path


class EnginePool:
    """The engines runs may go to, at most `per_engine` runs on each at once (see module doc)."""

    def __init__(self, endpoints: Sequence[Endpoint], per_engine: int, lock_dir: Path) -> None:
        if not endpoints:
            raise ValueError("an engine pool needs at least one endpoint")
        if per_engine < 1:
            raise ValueError("per_engine must be at least 1")
        self.endpoints = list(endpoints)
        self.per_engine = per_engine
        self.lock_dir = lock_dir

    @property
    def capacity(self) -> int:
        """How many runs the pool takes at once."""
        return len(self.endpoints) * self.per_engine

    def slot_path(self, endpoint: Endpoint, index: int) -> Path:
        """The lock file of slot `index` of `endpoint`."""
        return self.lock_dir / f"{engine_key(endpoint.url)}.{index}.lock"

    def try_slot(self) -> tuple[Slot, FileLock] | None:
        """A free slot, now held, or None when every slot is taken."""
        self.lock_dir.mkdir(parents=True, exist_ok=True)
        with _turn_lock:
            first = next(_turn) % len(self.endpoints)
        order = self.endpoints[first:] + self.endpoints[:first]
        for index in range(self.per_engine):
            for endpoint in order:
                path = self.slot_path(endpoint, index)
                lock = FileLock(path, thread_local=False)
                try:
                    lock.acquire(timeout=0)
                except Timeout:
                    continue
                return Slot(endpoint, index, path), lock
        return None

    @contextmanager
    def slot(self, stop: threading.Event | None = None) -> Iterator[Slot]:
        """Wait for a free slot and hold it for the block; `stop` set while waiting raises
        EngineError (the batch was cancelled)."""
        while True:
            found = self.try_slot()
            if found is not None:
                break
            if stop is not None and stop.wait(POLL_SECONDS):
                raise EngineError("cancelled while waiting for a free engine slot")
            if stop is None:
                time.sleep(POLL_SECONDS)
        slot, lock = found
        try:
            yield slot
        finally:
            lock.release()

    def busy(self) -> dict[str, int]:
        """Endpoint -> how many of its slots some process holds right now."""
        counts = {}
        for endpoint in self.endpoints:
            held = 0
            for index in range(self.per_engine):
                lock = FileLock(self.slot_path(endpoint, index), thread_local=False)
                try:
                    lock.acquire(timeout=0)
                except Timeout:
                    held += 1
                else:
                    lock.release()
            counts[endpoint.url] = held
        return counts
