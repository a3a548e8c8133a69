"""Base images made from Debian's packages: `debootstrap` a root filesystem, `docker import` it.

Used when no registry can give us the public images. Everything is fetched on
the host through Debian's package mirror; nothing inside a container needs the
network.
"""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import docker
from docker.errors import ImageNotFound

from envkit.engines.debian import can_install, ensure_command, run
from envkit.engines.hashing import digest
from envkit.errors import ImageError, StepError
from envkit.logs import Progress, log
from envkit.program import command

RECIPE_VERSION = "1"  # bump when the way a rootfs is made changes
_TRIM = ("var/cache/apt/archives", "var/lib/apt/lists", "usr/share/doc", "usr/share/man")


@dataclass(frozen=True)
class RootfsRecipe:
    """What a base image is made of: suite, mirror, extra packages, labels to set."""

    name: str
    suite: str
    mirror: str
    packages: tuple[str, ...]
    labels: dict[str, str] = field(default_factory=dict, hash=False)

    @property
    def arch(self) -> str:
        """Debian's name for this machine's architecture."""
        return {"x86_64": "amd64", "aarch64": "arm64"}.get(platform.machine(), platform.machine())

    @property
    def tag(self) -> str:
        """Image reference, named by a hash of everything that goes into it."""
        key = digest(
            RECIPE_VERSION, self.suite, self.mirror, self.arch, ",".join(sorted(self.packages))
        )
        return f"envkit/rootfs-{self.name}:{key}"


def image_exists(client: docker.DockerClient, ref: str) -> bool:
    """True when the engine already has `ref`."""
    try:
        client.images.get(ref)
    except ImageNotFound:
        return False
    return True


def build_rootfs_image(
    client: docker.DockerClient,
    recipe: RootfsRecipe,
    work_dir: Path,
    progress: Progress,
    inspect: Callable[[Path], dict[str, str]] | None = None,
) -> str:
    """Debootstrap `recipe`, import it as `recipe.tag`, return the tag.

    `inspect` may read facts off the finished tree (e.g. the Python version);
    they become labels of the image.
    """
    _require_debootstrap()
    work_dir.mkdir(parents=True, exist_ok=True)
    target = Path(tempfile.mkdtemp(prefix=f"rootfs-{recipe.name}-", dir=work_dir))
    tarball = target.with_suffix(".tar")
    try:
        started = time.monotonic()
        _debootstrap(recipe, target, progress)
        labels = {**recipe.labels, **(inspect(target) if inspect else {})}
        _trim(target)
        progress(f"{recipe.name}: packing root filesystem")
        run("pack rootfs", ["tar", "--numeric-owner", "-C", str(target), "-cf", str(tarball), "."])
        progress(f"{recipe.name}: importing into the engine")
        changes = [f'LABEL {k}="{v}"' for k, v in sorted(labels.items())]
        changes += ['LABEL envkit.image="rootfs"', "ENV LANG=C.UTF-8", 'CMD ["/bin/sh"]']
        # The whole reference as `repo`, no `tag`: Docker accepts both forms, Podman's
        # Docker-compatible API ignores `tag` (it would tag the import `latest`).
        client.api.import_image_from_file(str(tarball), repository=recipe.tag, changes=changes)
        if not image_exists(client, recipe.tag):
            raise ImageError(f"`docker import` of {recipe.tag} reported no error but no image.")
        log.info("built {} in {:.0f} s", recipe.tag, time.monotonic() - started)
        return recipe.tag
    finally:
        _remove_tree(target)
        tarball.unlink(missing_ok=True)


def _require_debootstrap() -> None:
    if shutil.which("debootstrap"):
        return
    if can_install():
        ensure_command("debootstrap", "debootstrap", "to build base images")
        return
    raise ImageError(
        "The public images cannot be had and building them locally needs `debootstrap` run as "
        "root on Debian. Either make the public images available to the engine (e.g. "
        "`docker pull postgres:16-alpine python:3.12-slim`, or `docker load` them), or run "
        f"`{command('images')}` as root on a Debian machine."
    )


def _debootstrap(recipe: RootfsRecipe, target: Path, progress: Progress) -> None:
    command = [
        "debootstrap",
        "--variant=minbase",
        f"--arch={recipe.arch}",
        f"--include={','.join(recipe.packages)}",
        recipe.suite,
        str(target),
        recipe.mirror,
    ]
    log.info("debootstrap {} for {} (about a minute)", recipe.suite, recipe.name)
    lines: list[str] = []
    with subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, errors="replace"
    ) as proc:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line.rstrip())
            if line.startswith("I: "):
                progress(f"{recipe.name}: {line[3:].strip()}")
        code = proc.wait()
    if code != 0:
        raise StepError(
            "debootstrap",
            command,
            "\n".join(lines[-20:]),
            f"Check that the Debian mirror {recipe.mirror} is reachable from this machine "
            "(ENVKIT_IMAGES__DEBIAN_MIRROR) and that the disk has about 1 GB free.",
        )


def _trim(target: Path) -> None:
    for rel in _TRIM:
        path = target / rel
        if path.is_dir():
            for child in path.iterdir():
                if child.is_dir() and not child.is_symlink():
                    shutil.rmtree(child, ignore_errors=True)
                else:
                    child.unlink(missing_ok=True)


def _remove_tree(target: Path) -> None:
    # An interrupted debootstrap leaves /proc and /sys mounted inside the tree.
    for mount in ("proc", "sys", "dev/pts"):
        mounted = target / mount
        if os.path.ismount(mounted):
            subprocess.run(["umount", "-l", str(mounted)], check=False, capture_output=True)
    shutil.rmtree(target, ignore_errors=True)
