"""Which image each service runs: its stack's image role, image reference or build, or the
image override in force (`ENVKIT_IMAGES__OVERRIDE`, `--image`).

`image_sources` is pure (no Docker): it checks that an override names only services of
the stack and that every directory to build exists with its Dockerfile, and fills the
build arguments from the settings, so every mistake is refused before anything starts.
`envkit.lifecycle.commands.produce_images` turns the sources into images.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from envkit.errors import SettingsError, StackError
from envkit.spec.settings import EnvkitSettings, env_name, is_build_context, render_env
from envkit.spec.stackfile import located, place, suggest

if TYPE_CHECKING:
    from envkit.spec.stack import StackSpec

OVERRIDE_SETTING = env_name("images.override")
_WHO = f"{OVERRIDE_SETTING} (or --image)"


@dataclasses.dataclass(frozen=True)
class ImageSource:
    """Where one service's image comes from: an envkit image role, an image reference or a build."""

    kind: Literal["role", "image", "build"]
    ref: str = ""  # the role or the image reference; empty for a build
    context: Path | None = None  # build: the context directory, absolute
    dockerfile: str = "Dockerfile"  # build: relative to the context
    args: dict[str, str] = dataclasses.field(default_factory=dict, repr=False)  # rendered
    override: bool = False  # True when the image override chose it

    def describe(self) -> str:
        """E.g. "image redis:7", "role services", "build of /src/api (override)"."""
        what = f"build of {self.context}" if self.kind == "build" else f"{self.kind} {self.ref}"
        return what + (" (override)" if self.override else "")


@dataclasses.dataclass(frozen=True)
class ServiceImage:
    """The image one service runs, where it came from and, for a build, its input hash."""

    ref: str
    source: ImageSource
    input_hash: str | None = None  # builds only
    action: str = "present"  # "present", "pulled" or "built"


def image_sources(
    stack: StackSpec, settings: EnvkitSettings, base: Path | None = None
) -> dict[str, ImageSource]:
    """Each service's image source; raise `SettingsError`/`StackError` naming every problem.

    Relative override directories are taken from `base` (default: the current directory);
    a stack's build context from the stack file's directory. A service with a `build`
    table that the override points at another directory keeps its dockerfile and args.
    """
    overrides = settings.images.override_map()
    _check_names(stack, overrides)
    here = base or Path.cwd()
    sources: dict[str, ImageSource] = {}
    setting_problems: list[str] = []
    stack_problems: list[str] = []
    for name, spec in stack.services.items():
        value = overrides.get(name)
        if value is not None and not is_build_context(value):
            sources[name] = ImageSource("image", ref=value, override=True)
            continue
        if value is None and spec.build is None:
            assert spec.image is not None  # ServiceSpec requires an image or a build
            sources[name] = ImageSource("role" if spec.image_role else "image", ref=spec.image)
            continue
        dockerfile = spec.build.dockerfile if spec.build else "Dockerfile"
        if value is not None:
            context = Path(os.path.normpath(here / Path(value).expanduser()))
            setting_problems += [
                f"{_WHO} for service '{name}': {text}"
                for _, text in _missing(context, dockerfile, override=True)
            ]
        else:
            assert spec.build is not None
            context = Path(os.path.normpath(stack.source.parent / spec.build.context))
            stack_problems += [
                located(stack.source, f"service '{name}'", field, text)
                for field, text in _missing(context, dockerfile, override=False)
            ]
        args = spec.build.args if spec.build else {}
        where = place(stack.source, f"service '{name}'", "build.args")
        rendered = render_env(args, settings, where=where)
        sources[name] = ImageSource(
            "build",
            context=context,
            dockerfile=dockerfile,
            args=rendered,
            override=value is not None,
        )
    if setting_problems:
        raise SettingsError(setting_problems)
    if stack_problems:
        raise StackError(stack_problems)
    return sources


def _check_names(stack: StackSpec, overrides: dict[str, str]) -> None:
    known = sorted(stack.services)
    problems = [
        f"{_WHO} names service '{name}', which stack '{stack.name}' ({stack.source}) does not "
        f"have; {suggest(name, known)}its services are: {', '.join(known)}. Fix the name, "
        f"e.g. {known[0]}=registry.example/app:1.4 or {known[0]}=./app"
        for name in overrides
        if name not in stack.services
    ]
    if problems:
        raise SettingsError(problems)


def _missing(context: Path, dockerfile: str, *, override: bool) -> list[tuple[str, str]]:
    """(field, sentence) for a build context or Dockerfile that is not there."""
    if not context.is_dir():
        what = "does not exist" if not context.exists() else "is not a directory"
        if override:
            fix = (
                "give the directory of the service's source tree that holds its Dockerfile "
                "(relative paths are taken from the current directory), or an image reference"
            )
        else:
            fix = (
                "give the directory that holds the Dockerfile, relative to the stack file's "
                "directory or absolute"
            )
        return [("build.context", f"the build-context directory {context} {what}; {fix}")]
    path = context / dockerfile
    if path.is_file():
        return []
    if override:
        fix = "a build-context directory needs one (or give an image reference instead)"
    else:
        fix = 'add it, or name the Dockerfile (relative to the context) with dockerfile = "..."'
    return [("build.dockerfile", f"{path} does not exist; {fix}")]
