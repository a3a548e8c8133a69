"""The one settings object: envkit's own settings plus the stack's, defined once.

envkit's core (`EnvkitSettings`) holds only what is envkit's: images, timeouts and
paths. A stack adds its own sections (its values and secrets) by naming a pydantic
model or declaring a `[settings]` table in its stack file (`envkit.spec.stacksettings`);
`load_settings(stack=...)` builds one object of both. Values come from (highest
first) explicit overrides, the environment mapping `load_settings()` is given (the
process environment by default), the `.env` file, then the defaults (safe demo
values, documented in `.env.example`). Names are `ENVKIT_<SECTION>__<FIELD>`, e.g.
`ENVKIT_TIMEOUTS__SERVICE_READY_SECONDS`, for the stack's sections too. Build it
once with `load_settings()` and pass it down; nothing reads the environment at
import time, and building never changes `os.environ`.
"""

from __future__ import annotations

import difflib
import functools
import io
import os
import re
from collections.abc import Iterator, Mapping, Sequence
from contextvars import ContextVar
from pathlib import Path
from types import MappingProxyType
from typing import Any, ClassVar, Literal, cast

from dotenv.parser import parse_stream
from pydantic import BaseModel, Field, PrivateAttr, SecretStr, ValidationError, field_validator
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)
from pydantic_settings.sources.utils import parse_env_vars

from envkit.errors import SettingsError
from envkit.program import command
from envkit.spec.workspace import Workspace

ENV_PREFIX = "ENVKIT_"
NESTED = "__"


_OVERRIDE_SERVICE = re.compile(r"[a-z][a-z0-9-]*")
_REPO_PART = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
# [registry[:port]/]repository[:tag][@sha256:digest], as the engine accepts them.
IMAGE_REFERENCE = re.compile(
    rf"(?:[A-Za-z0-9.-]+(?::[0-9]+)?/)?{_REPO_PART}(?:/{_REPO_PART})*"
    r"(?::[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?(?:@sha256:[0-9a-f]{64})?"
)
_OVERRIDE_EXAMPLE = "backend=registry.example/app-backend:1.4 or backend=./app-backend"


def is_build_context(value: str) -> bool:
    """True when an image override names a directory to build (starts with '.', '/' or '~')."""
    return value.startswith((".", "/", "~"))


def parse_image_overrides(text: str) -> dict[str, str]:
    """`"a=ref,b=./dir"` -> `{"a": "ref", "b": "./dir"}`; `ValueError` names what is wrong."""
    found: dict[str, str] = {}
    for raw in text.split(","):
        item = raw.strip()
        if not item:
            continue  # a trailing comma is harmless
        service, sep, value = (part.strip() for part in item.partition("="))
        if not (sep and service and value):
            raise ValueError(
                f"{item!r} is not SERVICE=IMAGE_OR_DIR; write e.g. {_OVERRIDE_EXAMPLE} "
                "(several pairs separated by commas)"
            )
        if not _OVERRIDE_SERVICE.fullmatch(service):
            raise ValueError(
                f"{service!r} in {item!r} is not a service name (lowercase letters, digits and "
                "'-', as in the stack file); write e.g. " + _OVERRIDE_EXAMPLE
            )
        if service in found:
            raise ValueError(
                f"service {service!r} is given twice ({found[service]!r} and {value!r}); keep one"
            )
        if not is_build_context(value) and not IMAGE_REFERENCE.fullmatch(value):
            raise ValueError(
                f"{value!r} (for {service}) is neither an image reference (lowercase repository, "
                "optional :tag or @sha256:digest, e.g. registry.example/app-backend:1.4) nor a "
                "build-context directory (start a directory with ./, / or ~, e.g. ./app-backend)"
            )
        found[service] = value
    return found


class ImagesSection(BaseModel):
    """Where images come from: public images when available, else built locally."""

    source: Literal["auto", "public", "local"] = "auto"
    postgres_public: str = "postgres:16-alpine"
    python_public: str = "python:3.12-slim"
    debian_suite: str = "bookworm"
    debian_mirror: str = "http://deb.debian.org/debian"
    pull_timeout_seconds: float = Field(default=60.0, gt=0)
    # SERVICE=IMAGE_OR_DIR pairs replacing a service's image in every stack task.
    override: str = ""

    @field_validator("override")
    @classmethod
    def _override(cls, v: str) -> str:
        return ",".join(f"{k}={value}" for k, value in parse_image_overrides(v).items())

    def override_map(self) -> dict[str, str]:
        """The override as {service: image reference or directory}, in the order given."""
        return parse_image_overrides(self.override)


class TimeoutsSection(BaseModel):
    """How long envkit waits for things before it gives up with evidence."""

    engine_start_seconds: float = Field(default=90.0, gt=0)
    service_ready_seconds: float = Field(default=60.0, gt=0)
    command_step_seconds: float = Field(default=600.0, gt=0)  # a scenario file's command step


class ReaperSection(BaseModel):
    """The reaper on the engine that removes an isolated run whose envkit process died."""

    enabled: bool = True
    # After the owner's connection drops: how long the reaper waits for it to come back
    # before it removes the run (Ryuk's reconnection timeout).
    grace_seconds: float = Field(default=5.0, gt=0, le=600)
    # How long the reaper may take to start and acknowledge this process's session (a busy
    # 2-core CI machine has needed over 20 s).
    start_seconds: float = Field(default=60.0, gt=0, le=600)
    # One reaper on an engine serves every envkit process there; with no client for this
    # long it exits (and the next process starts a new one).
    idle_seconds: float = Field(default=60.0, gt=0, le=3600)


class EnginesSection(BaseModel):
    """A pool of engines runs are spread over, and how many runs each takes at once."""

    # Endpoints as DOCKER_HOST takes them, comma-separated; empty: the current engine only.
    pool: str = ""
    per_engine: int = Field(default=1, ge=1, le=64)  # K: runs on one engine at once
    # auto: an isolated run on a local engine whose container addresses this machine reaches
    # publishes no port (each costs the engine NAT rules and a proxy process); always: it does.
    publish_ports: Literal["auto", "always"] = "auto"

    @field_validator("pool")
    @classmethod
    def _pool(cls, v: str) -> str:
        from envkit.engines.pool import parse_pool

        return ",".join(parse_pool(v))

    def pool_list(self) -> list[str]:
        """The pool's endpoints, in order."""
        return [url for url in self.pool.split(",") if url]


class DiffSection(BaseModel):
    """When `invoke diff` calls a phase or a service slower than the baseline run."""

    # Slower means both: more than this many percent and more than this many seconds longer.
    slower_percent: float = Field(default=25.0, ge=0)
    slower_seconds: float = Field(default=0.5, ge=0)


# The environment the settings being built read: set by `load_settings()` for the length of
# one build. A context variable, not a global, so a build in another thread never sees it.
_BUILD_ENVIRON: ContextVar[Mapping[str, str]] = ContextVar(
    "envkit_settings_environ", default=MappingProxyType({})
)


class _GivenEnvironment(EnvSettingsSource):
    """pydantic-settings' environment source, reading a given mapping instead of `os.environ`."""

    def __init__(self, settings_cls: type[BaseSettings], environ: Mapping[str, str]) -> None:
        self._environ = environ  # before super().__init__, which loads the variables
        super().__init__(settings_cls)

    def _load_env_vars(self) -> Mapping[str, str | None]:
        return parse_env_vars(
            self._environ, self.case_sensitive, self.env_ignore_empty, self.env_parse_none_str
        )


class EnvkitSettings(BaseSettings):
    """envkit's own settings (and, in a subclass, a stack's); build it with `load_settings`."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_nested_delimiter=NESTED,
        env_file=None,  # only the file load_settings names
        env_file_encoding="utf-8",
        extra="ignore",
        validate_default=True,
    )

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Overrides, then the environment `load_settings` was given, then the `.env` file."""
        return (
            init_settings,
            _GivenEnvironment(settings_cls, _BUILD_ENVIRON.get()),
            dotenv_settings,
        )

    # The stack model whose sections this class adds (None: envkit's core alone).
    stack_model: ClassVar[type[BaseModel] | None] = None

    images: ImagesSection = ImagesSection()
    timeouts: TimeoutsSection = TimeoutsSection()
    reaper: ReaperSection = ReaperSection()
    engines: EnginesSection = EnginesSection()
    diff: DiffSection = DiffSection()
    artifact_root: Path = Path("artifacts")
    cache_dir: Path = Path(".envkit-cache")
    history_path: Path = Path(".envkit-state/history.sqlite")
    # The project root relative paths resolve against, fixed when the settings are built.
    _root: Path = PrivateAttr(default_factory=lambda: Path.cwd().resolve())

    @property
    def workspace(self) -> Workspace:
        """Absolute paths of these settings: artifacts, cache, state, history (see `Workspace`)."""
        return Workspace.of(self, self._root)

    def reference(self, dotted: str) -> str:
        """Return the plain value at `section.field` (secrets revealed: for rendering only)."""
        node: Any = self
        for part in dotted.split("."):
            if not isinstance(node, BaseModel) or part not in type(node).model_fields:
                raise KeyError(dotted)
            node = getattr(node, part)
        if isinstance(node, BaseModel):
            raise KeyError(dotted)
        if isinstance(node, SecretStr):
            return node.get_secret_value()
        if isinstance(node, bool):
            return "true" if node else "false"
        return str(node)

    def secret_values(self) -> list[str]:
        """Every secret's plain value, longest first, for redaction."""
        values = {
            field.get_secret_value()
            for _, field in _walk(self)
            if isinstance(field, SecretStr) and field.get_secret_value()
        }
        return sorted(values, key=len, reverse=True)


def with_image_overrides(
    settings: EnvkitSettings, flags: Sequence[str] = (), base: Path | None = None
) -> EnvkitSettings:
    """The settings with `--image` flags merged into `images.override` (a flag wins for its
    service) and every directory made absolute against `base` (default: the current one)."""
    merged = settings.images.override_map()
    for item in flags:
        try:
            merged.update(parse_image_overrides(item))
        except ValueError as exc:
            raise SettingsError([f"--image {item!r}: {exc}"]) from exc
    here = base or Path.cwd()
    pairs = []
    for service, value in merged.items():
        if is_build_context(value):
            value = os.path.normpath(here / Path(value).expanduser())
            if "," in value:
                raise SettingsError(
                    [f"{env_name('images.override')}: the directory {value} of {service} holds "
                     "a ','; move or link it to a path without one"]
                )  # fmt: skip
        pairs.append(f"{service}={value}")
    text = ",".join(pairs)
    if text == settings.images.override:
        return settings
    images = settings.images.model_copy(update={"override": text})
    return settings.model_copy(update={"images": images})


def iter_settings(settings: EnvkitSettings) -> Iterator[tuple[str, Any]]:
    """Every setting as (dotted name, value), e.g. ("images.source", "auto")."""
    return _walk(settings)


def _walk(model: BaseModel, prefix: str = "") -> Iterator[tuple[str, Any]]:
    for name in type(model).model_fields:
        value = getattr(model, name)
        dotted = f"{prefix}{name}"
        if isinstance(value, BaseModel):
            yield from _walk(value, dotted + ".")
        else:
            yield dotted, value


def env_name(dotted: str) -> str:
    """Map `timeouts.service_ready_seconds` to `ENVKIT_TIMEOUTS__SERVICE_READY_SECONDS`."""
    return ENV_PREFIX + NESTED.join(part.upper() for part in dotted.split("."))


def known_env_names(settings_cls: type[EnvkitSettings] = EnvkitSettings) -> dict[str, str]:
    """Every accepted `ENVKIT_…` name of `settings_cls`, mapped to its dotted setting path."""
    return {env_name(dotted): dotted for dotted, _ in _walk_fields(settings_cls)}


def secret_setting_names(settings_cls: type[EnvkitSettings] = EnvkitSettings) -> set[str]:
    """The dotted names of every secret setting of `settings_cls`, e.g. "db.password"."""
    return {dotted for dotted, kind in _walk_fields(settings_cls) if kind is SecretStr}


def _walk_fields(model: type[BaseModel], prefix: str = "") -> Iterator[tuple[str, Any]]:
    """(dotted name, type) of every setting, from the classes (a required one has no value)."""
    for name, info in model.model_fields.items():
        kind = info.annotation
        if isinstance(kind, type) and issubclass(kind, BaseModel):
            yield from _walk_fields(kind, f"{prefix}{name}.")
        else:
            yield f"{prefix}{name}", kind


CORE_NAMES = frozenset(EnvkitSettings.model_fields)  # envkit's own top-level settings


@functools.cache
def settings_class(stack_model: type[BaseModel] | None) -> type[EnvkitSettings]:
    """envkit's settings class with the stack model's sections added (one class per model).

    The class derives from both, so the stack model's validators run and a stack's own
    code can test `isinstance(settings, ItsModel)`. A section named like one of envkit's
    own settings raises `SettingsError`.
    """
    if stack_model is None:
        return EnvkitSettings
    clashes = sorted(CORE_NAMES & set(stack_model.model_fields))
    if clashes:
        raise SettingsError(
            [
                f"the stack's settings model {stack_model.__qualname__} has "
                f"{', '.join(map(repr, clashes))}, which envkit's own settings use "
                f"({', '.join(sorted(CORE_NAMES))}); rename that section"
            ]
        )
    name = f"{stack_model.__name__}WithEnvkit"
    combined = cast(type[EnvkitSettings], type(name, (EnvkitSettings, stack_model), {}))
    combined.stack_model = stack_model
    return combined


def _unknown_keys(
    keys: Mapping[str, object], origin: str, settings_cls: type[EnvkitSettings]
) -> list[str]:
    known = known_env_names(settings_cls)
    problems = []
    for key in keys:
        upper = key.upper()
        if not upper.startswith(ENV_PREFIX) or upper in known:
            continue
        if any(k.startswith(upper + NESTED) for k in known):
            continue  # a whole section given as JSON, e.g. ENVKIT_PORTS='{"backend": 8081}'
        close = difflib.get_close_matches(upper, list(known), n=1, cutoff=0.6)
        fix = (
            f"did you mean {close[0]}?"
            if close
            else f"`{command('config')}` and .env.example list the accepted names"
        )
        problems.append(f"{key} (in {origin}) is not an envkit setting; {fix}")
    return problems


def _problem_text(error: Mapping[str, Any], secret_paths: set[str]) -> str:
    loc = [str(p) for p in error["loc"]]
    dotted = ".".join(loc)
    name = env_name(dotted) if loc else "settings"
    message = str(error["msg"]).removeprefix("Value error, ")
    if error["type"] == "value_error" and message.startswith("ENVKIT_"):
        return message  # a cross-field message that already names its settings
    given = error.get("input")
    shown = "" if dotted in secret_paths or isinstance(given, (dict, SecretStr)) else f"={given!r}"
    if error["type"] != "value_error":
        message += "; fix it in .env or the environment (.env.example documents every setting)"
    return f"{name}{shown}: {message}"


def load_settings(
    env_file: Path | None = Path(".env"),
    environ: Mapping[str, str] | None = None,
    *,
    stack: Path | None = None,
    strict: bool = True,
    root: Path | None = None,
    **overrides: Any,
) -> EnvkitSettings:
    """Build and validate the settings; raise `SettingsError` naming each bad setting.

    With `stack` (a stack file), the settings that stack declares are built too,
    from the same sources; without it, envkit's own settings alone. Unknown
    `ENVKIT_` names are refused unless `strict` is false (for a first look at
    envkit's own paths before the stack is known). Relative paths among the settings
    resolve against `root` (default: the current directory), see `settings.workspace`.
    """
    # Imported here: the stack file's reader itself uses this module's names.
    from envkit.spec.stacksettings import declared_settings

    settings_cls = settings_class(declared_settings(stack) if stack is not None else None)
    env = dict(os.environ if environ is None else environ)
    file_values = _read_env_file(env_file)
    problems = []
    if strict:
        problems += _unknown_keys(file_values, str(env_file), settings_cls)
        problems += _unknown_keys(env, "the environment", settings_cls)
    try:
        settings = _build(settings_cls, env_file, env, overrides)
    except ValidationError as exc:
        secrets = secret_setting_names(settings_cls)
        problems += [_problem_text(err, secrets) for err in exc.errors()]
        raise SettingsError(problems) from exc
    if problems:
        raise SettingsError(problems)
    if root is not None:
        settings._root = root.resolve()
    return settings


# What no setting can hold: it goes into containers' environments and HTTP headers.
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")


def _read_env_file(env_file: Path | None) -> dict[str, str]:
    """The file's NAME=VALUE pairs; `SettingsError` naming each bad line (never its value)."""
    if env_file is None or not env_file.is_file():
        return {}
    data = env_file.read_bytes()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise SettingsError(
            [
                f"{env_file}, line {line}: byte 0x{data[exc.start]:02x} is not UTF-8; "
                "save the file as UTF-8"
            ]
        ) from None
    problems, values = [], {}
    for binding in parse_stream(io.StringIO(text)):
        where = f"{env_file}, line {binding.original.line}"
        if binding.error:
            problems.append(
                f"{where}: not a NAME=VALUE line; quote a value that has spaces or #, and "
                "start a comment with #"
            )
        elif binding.key is None:
            continue  # a blank line or a comment
        elif binding.value is None:
            problems.append(
                f"{where}: {binding.key} has no '='; write {binding.key}=VALUE "
                f"({binding.key}= for an empty value)"
            )
        elif _CONTROL.search(binding.value):
            problems.append(
                f"{where}: the value of {binding.key} holds a control character (e.g. a "
                "newline inside quotes), which no setting can hold; put it on one line"
            )
        else:
            values[binding.key] = binding.value
    if problems:
        raise SettingsError(problems)
    return values


def _build(
    settings_cls: type[EnvkitSettings],
    env_file: Path | None,
    env: Mapping[str, str],
    overrides: Mapping[str, Any],
) -> EnvkitSettings:
    token = _BUILD_ENVIRON.set(MappingProxyType(dict(env)))
    try:
        return settings_cls(_env_file=env_file, **overrides)
    finally:
        _BUILD_ENVIRON.reset(token)


def describe_sources(
    settings: EnvkitSettings,
    env_file: Path | None = Path(".env"),
    environ: Mapping[str, str] | None = None,
) -> list[tuple[str, str, str]]:
    """Rows of (ENV name, value with secrets redacted, source) for `invoke config`."""
    env = {k.upper(): v for k, v in (os.environ if environ is None else environ).items()}
    file_values = {k.upper() for k in _read_env_file(env_file)}
    rows = []
    for dotted, value in _walk(settings):
        name = env_name(dotted)
        section = name.split(NESTED)[0]
        if name in env or (section != name and section in env):
            source = "environment"
        elif name in file_values or section in file_values:
            source = str(env_file)
        else:
            source = "default"
        shown = "**********" if isinstance(value, SecretStr) else str(value)
        rows.append((name, shown, source))
    return rows


REFERENCE = re.compile(r"\$\{([a-z0-9_.\-]+)\}")  # ${section.field}, shared with the stack files


def render_env(
    template: Mapping[str, str],
    settings: EnvkitSettings,
    extra: Mapping[str, str] | None = None,
    *,
    where: str = "environment template",
) -> dict[str, str]:
    """Fill `${section.field}` references in a service's env template from the settings.

    `extra` supplies references that are not settings (e.g. another service's
    in-network URL). An unknown reference raises `SettingsError` naming it.
    """
    extra = extra or {}
    rendered: dict[str, str] = {}
    problems: list[str] = []

    def resolve(match: re.Match[str]) -> str:
        ref = match.group(1)
        if ref in extra:
            return extra[ref]
        try:
            return settings.reference(ref)
        except KeyError:
            problems.append(
                f"{where}: '${{{ref}}}' names no setting; use a dotted setting name such as "
                f"'${{section.field}}' (`{command('config')}` lists them)"
            )
            return ""

    for key, value in template.items():
        rendered[key] = REFERENCE.sub(resolve, value)
    if problems:
        raise SettingsError(problems)
    return rendered
