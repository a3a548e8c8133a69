"""Build a service's image from its build context, tagged by a hash of the build's inputs.

The inputs are every entry of the context that `docker build` sends (after
`.dockerignore`, matched with the docker SDK's own rules), the Dockerfile, the build
arguments and, for each image the Dockerfile's FROM lines name that the engine has, that
image's id, so a changed base image rebuilds. The tag is
`envkit-build/<stack>-<service>:<hash>`; an unchanged tree finds its tag and is not
rebuilt.
"""

from __future__ import annotations

import hashlib
import os
import re
import stat
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import docker
from docker.errors import ImageNotFound
from docker.utils.build import exclude_paths

from envkit.engines.hashing import digest
from envkit.engines.images import stream_build
from envkit.engines.imagesources import ImageSource
from envkit.engines.rootfs import image_exists
from envkit.errors import BuildError, EnvkitError
from envkit.logs import Progress, log, no_progress

BUILD_REPOSITORY = "envkit-build"
BUILD_LABEL = "envkit.build"  # <stack>-<service>
HASH_LABEL = "envkit.build.hash"

_ARG_NAME = r"[A-Za-z_][A-Za-z0-9_]*"
# $NAME, ${NAME}, ${NAME:-default}, ${NAME:+alternative}: what FROM lines may use.
_VARIABLE = re.compile(rf"\$(?:\{{({_ARG_NAME})(?::([-+])([^}}]*))?\}}|({_ARG_NAME}))")


@dataclass(frozen=True)
class BuiltImage:
    """A service's built image: its tag, the hash of its inputs, and whether it was built now."""

    ref: str
    input_hash: str
    action: Literal["built", "present"]
    seconds: float


def dockerignore_patterns(context: Path) -> list[str]:
    """The context's `.dockerignore` patterns, read as the docker SDK reads them for a build."""
    path = context / ".dockerignore"
    if not path.is_file():
        return []
    lines = (line.strip() for line in path.read_text().splitlines())
    return [line for line in lines if line and not line.startswith("#")]


def context_entries(context: Path, dockerfile: str = "Dockerfile") -> list[str]:
    """Relative paths of every file and directory the build sends, sorted."""
    inside = not os.path.relpath(context / dockerfile, context).startswith("..")
    kept = exclude_paths(
        str(context), dockerignore_patterns(context), dockerfile=dockerfile if inside else None
    )
    return sorted(str(entry) for entry in kept)


def base_images(dockerfile: str, args: Mapping[str, str]) -> list[str]:
    """The images the Dockerfile's FROM lines name (ARGs filled; stages and scratch left out)."""
    declared: dict[str, str] = {}
    stages: set[str] = set()
    found: list[str] = []
    seen_from = False
    for instruction, words in _instructions(dockerfile):
        if instruction == "ARG" and not seen_from:
            for word in words:
                name, _, default = word.partition("=")
                declared[name] = args.get(name, _unquote(default))
        elif instruction == "FROM":
            seen_from = True
            names = [w for w in words if not w.startswith("--")]
            if not names:
                continue
            image = _substitute(names[0], declared)
            if len(names) >= 3 and names[1].lower() == "as":
                stages.add(names[2].lower())
            if image and image.lower() not in stages and image != "scratch":
                found.append(image)
    return found


def _instructions(text: str) -> list[tuple[str, list[str]]]:
    """(INSTRUCTION, words) per instruction, continuation lines joined, comments dropped."""
    escape = "\\"
    lines = text.splitlines()
    for line in lines:  # parser directives come first: `# escape=``
        match = re.fullmatch(r"#\s*escape\s*=\s*(\S)\s*", line.strip(), re.IGNORECASE)
        if match:
            escape = match.group(1)
        elif not re.fullmatch(r"#\s*\w+\s*=.*", line.strip()):
            break
    result: list[tuple[str, list[str]]] = []
    pending = ""
    for raw in lines:
        stripped = raw.strip()
        if stripped.startswith("#"):
            continue
        if stripped.endswith(escape):
            pending += stripped[: -len(escape)] + " "
            continue
        whole = (pending + stripped).split()
        pending = ""
        if whole:
            result.append((whole[0].upper(), whole[1:]))
    return result


def _unquote(value: str) -> str:
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
        return value[1:-1]
    return value


def _substitute(word: str, values: Mapping[str, str]) -> str:
    def fill(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(4)
        value = values.get(name, "")
        if match.group(2) == "-":
            return value or match.group(3)
        if match.group(2) == "+":
            return match.group(3) if value else ""
        return value

    return _VARIABLE.sub(fill, word)


def input_hash(client: docker.DockerClient, source: ImageSource) -> str:
    """The hash that names a build: context entries, Dockerfile, build args, base image ids."""
    assert source.context is not None
    context = source.context
    parts: list[str | bytes] = []
    for entry in context_entries(context, source.dockerfile):
        parts += _entry_parts(context / entry, entry)
    dockerfile = (context / source.dockerfile).read_bytes()
    parts += ["dockerfile", source.dockerfile, dockerfile]
    for name in sorted(source.args):
        parts += ["arg", name, source.args[name]]
    for ref in base_images(dockerfile.decode(errors="replace"), source.args):
        parts += ["from", ref, _image_id(client, ref)]
    return digest(*parts)


def _entry_parts(path: Path, entry: str) -> list[str | bytes]:
    info = path.lstat()
    mode = oct(stat.S_IMODE(info.st_mode))  # COPY keeps permissions: an exec bit matters
    if stat.S_ISLNK(info.st_mode):
        return ["link", entry, os.readlink(path)]
    if stat.S_ISDIR(info.st_mode):
        return ["dir", entry, mode]
    if stat.S_ISREG(info.st_mode):
        sha = hashlib.sha256()
        with path.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                sha.update(block)
        return ["file", entry, mode, sha.hexdigest()]
    return []  # sockets and fifos are not sent


def _image_id(client: docker.DockerClient, ref: str) -> str:
    try:
        return str(client.images.get(ref).id)
    except ImageNotFound:
        return "absent"  # the build will pull it; once it is here, the id counts


def build_tag(stack: str, service: str, key: str) -> str:
    """E.g. `envkit-build/shop-api:0123456789abcdef`."""
    return f"{BUILD_REPOSITORY}/{stack}-{service}:{key}"


def ensure_build(
    client: docker.DockerClient,
    stack: str,
    service: str,
    source: ImageSource,
    progress: Progress = no_progress,
) -> BuiltImage:
    """The service's image from its build context: found by its input hash, else built now.

    A build that fails raises `BuildError` with the service, the context and the log's tail.
    """
    assert source.kind == "build"
    assert source.context is not None
    context = source.context
    started = time.monotonic()
    progress(f"{service}: hashing the build context {context}")
    key = input_hash(client, source)
    tag = build_tag(stack, service, key)
    if image_exists(client, tag):
        log.info("{}: {} is up to date with {}", service, tag, context)
        return BuiltImage(tag, key, "present", time.monotonic() - started)

    def failed(tail: str) -> EnvkitError:
        return BuildError(
            service=service, context=context, dockerfile=source.dockerfile, log_tail=tail
        )

    stream_build(
        client, context, tag,
        labels={BUILD_LABEL: f"{stack}-{service}", HASH_LABEL: key},
        progress=progress, name=service, on_failure=failed,
        dockerfile=source.dockerfile, buildargs=dict(source.args),
    )  # fmt: skip
    seconds = time.monotonic() - started
    log.info("{}: built {} from {} in {:.1f} s", service, tag, context, seconds)
    return BuiltImage(tag, key, "built", seconds)
