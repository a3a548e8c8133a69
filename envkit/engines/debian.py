"""Installing Debian packages on the host, one apt run at a time.

Used only where envkit may change the machine: as root on Debian, when a tool
it needs (dockerd, debootstrap) is missing.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from envkit.errors import StepError
from envkit.logs import log

LOCK_FILE = Path("/tmp/envkit-apt.lock")
_thread_lock = threading.RLock()  # re-entrant: the engine lock is held around apt's


def can_install() -> bool:
    """True when this process may install Debian packages (root on Debian)."""
    return os.geteuid() == 0 and Path("/etc/debian_version").is_file()


@contextmanager
def host_lock(path: Path) -> Iterator[None]:
    """Hold an exclusive lock shared by this process's threads and other processes."""
    with _thread_lock, path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def ensure_command(command: str, package: str, why: str) -> None:
    """Install `package` with apt unless `command` is already on PATH."""
    if shutil.which(command):
        return
    with host_lock(LOCK_FILE):
        if shutil.which(command):  # another thread or process installed it meanwhile
            return
        log.info("installing Debian's {} ({})", package, why)
        env = ["env", "DEBIAN_FRONTEND=noninteractive"]
        run(f"apt-get update for {package}", [*env, "apt-get", "update", "-qq"])
        run(
            f"install {package}",
            [*env, "apt-get", "install", "-y", "-qq", "--no-install-recommends", package],
        )


def run(step: str, command: list[str]) -> None:
    """Run one command; on failure raise `StepError` with the tail of its output."""
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        tail = "\n".join((result.stdout + result.stderr).strip().splitlines()[-20:])
        raise StepError(step, command, tail, "See the output above; fix it and run again.")
