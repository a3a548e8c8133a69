"""A host-side wheelhouse for the services image (containers here cannot reach PyPI).

`pip download` runs on the host for the image's Python version and platform;
the image then installs with `--no-index`. A finished wheelhouse is reused as
long as the requirements and constraints are unchanged.
"""

from __future__ import annotations

import platform
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from envkit.engines.hashing import digest
from envkit.errors import StepError
from envkit.logs import log

_DONE = ".complete"
_GLIBC_MINORS = range(17, 37)  # manylinux_2_17 … manylinux_2_36 (Debian bookworm's glibc)


def wheelhouse_key(requirements: Path, constraints: Path, python: str) -> str:
    """Name of the wheelhouse for these inputs, e.g. `cp311-x86_64-<hash>`."""
    tag = "cp" + python.replace(".", "")
    key = digest(requirements.read_bytes(), constraints.read_bytes(), tag, platform.machine())
    return f"{tag}-{platform.machine()}-{key}"


def ensure_wheelhouse(requirements: Path, constraints: Path, python: str, cache_dir: Path) -> Path:
    """Return a directory holding every wheel the requirements need for `python` (e.g. 3.11)."""
    target = cache_dir / "wheelhouse" / wheelhouse_key(requirements, constraints, python)
    if (target / _DONE).is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    # Images for several engines may be produced at once (an engine pool, other processes):
    # one download per wheelhouse, and none replaced while another build copies from it.
    from filelock import FileLock  # only a build needs it: a warm `up` never gets here

    locks = cache_dir / "locks"
    locks.mkdir(parents=True, exist_ok=True)
    with FileLock(locks / f"wheelhouse-{target.name}.lock"):
        if (target / _DONE).is_file():
            return target
        return _fill(target, requirements, constraints, python)


def _fill(target: Path, requirements: Path, constraints: Path, python: str) -> Path:
    staging = Path(tempfile.mkdtemp(prefix="staging-", dir=target.parent))
    try:
        _download(requirements, constraints, python, staging)
        shutil.copy(requirements, staging / "requirements.txt")
        (staging / _DONE).write_text("ok\n")
        shutil.rmtree(target, ignore_errors=True)
        staging.rename(target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def _download(requirements: Path, constraints: Path, python: str, dest: Path) -> None:
    tag = python.replace(".", "")
    machine = platform.machine()
    command = [
        sys.executable, "-m", "pip", "download", "--quiet", "--disable-pip-version-check",
        "--only-binary=:all:", "--implementation", "cp", "--python-version", python,
        "--abi", f"cp{tag}", "--dest", str(dest),
        "-r", str(requirements), "-c", str(constraints),
    ]  # fmt: skip
    for minor in _GLIBC_MINORS:
        command += ["--platform", f"manylinux_2_{minor}_{machine}"]
    command += ["--platform", f"manylinux2014_{machine}"]
    log.info("downloading wheels for Python {} ({})", python, machine)
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        tail = "\n".join((result.stdout + result.stderr).strip().splitlines()[-20:])
        raise StepError(
            "wheelhouse",
            command,
            tail,
            "pip could not fetch a wheel for the services image. Check that PyPI is reachable "
            f"from this machine and that every package in {requirements} ships wheels.",
        )
