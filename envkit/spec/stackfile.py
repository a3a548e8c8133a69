"""The stack file format: its tables as models with field checks, and the reading helpers.

`ProbeSpec`, `ServiceSpec` and `StackHeader` check each table on its own (types,
unknown keys, names, ports, regexes); `envkit.spec.stack` adds the checks across
services. The helpers turn TOML and pydantic errors into problem sentences that
name the file, the service and the field. Nothing here knows a particular stack.
"""

from __future__ import annotations

import difflib
import re
import tomllib
from collections.abc import Collection, Iterable, Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from envkit.errors import StackError
from envkit.spec.settings import REFERENCE

# The same `${dotted.name}` syntax that `envkit.spec.settings.render_env` fills in.
SERVICE_ATTRIBUTES = ("host", "port", "url")


def place(path: Path, section: str | None, field: str | None) -> str:
    """Where a problem is: `file: service 'x', field 'y'`."""
    parts = [part for part in (section, f"field '{field}'" if field else None) if part]
    return f"{path}: {', '.join(parts)}" if parts else str(path)


def located(path: Path, section: str | None, field: str | None, message: str) -> str:
    """One problem sentence: `file: service 'x', field 'y': message`."""
    return f"{place(path, section, field)}: {message}"


def read_toml(path: Path, kind: str = "stack file") -> dict[str, Any]:
    """Parse a TOML file; raise `StackError` for a missing file or a syntax error (with line)."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        nearby = sorted(p.name for p in path.parent.glob("*.toml")) if path.parent.is_dir() else []
        hint = f"{kind}s there: {', '.join(nearby)}" if nearby else "check the path"
        raise StackError([f"{path}: no such {kind}; {hint}"]) from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise StackError(
            [f"{path}: cannot be read ({exc}); check the file and its permissions"]
        ) from exc
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise StackError(
            [f"{path}: is not valid TOML: {exc}; fix the syntax there (see https://toml.io)"]
        ) from exc


def suggest(word: str, choices: Iterable[str]) -> str:
    """`did you mean 'x'? ` for a close match, else an empty string."""
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f"did you mean '{close[0]}'? " if close else ""


def validation_problems(
    exc: ValidationError,
    path: Path,
    section: str,
    allowed: Mapping[str, Collection[str]],
    examples: Mapping[str, str],
    key_field: str | None = None,
) -> list[str]:
    """Turn pydantic's errors into problem sentences naming the field and the fix.

    `allowed` maps a dotted table prefix ("" for the table itself) to the keys it
    accepts; `examples` maps a dotted field to a line to add when it is missing;
    `key_field` is a field that comes from the table's name, not from a key in it.
    """
    problems = []
    for error in exc.errors():
        loc = [str(part) for part in error["loc"]]
        field: str | None = ".".join(loc)
        given = error.get("input")
        kind = error["type"]
        if kind == "extra_forbidden":
            prefix = ".".join(loc[:-1])
            keys = sorted(allowed.get(prefix, ()))
            message = f"unknown key; {suggest(loc[-1], keys)}allowed keys here: {', '.join(keys)}"
        elif kind == "missing":
            message = f"is required; add {examples.get(field or '', f'{field} = ...')}"
        elif kind == "literal_error":
            message = f"must be one of {error.get('ctx', {}).get('expected')}, not {given!r}"
        elif kind == "value_error":
            message = str(error["msg"]).removeprefix("Value error, ")
        elif kind == "string_type":
            message = f'must be a string; write it in quotes, e.g. "{given}"'
        else:
            message = f"{str(error['msg']).lower()}, not {given!r}"
        if field == key_field:
            field = None
        problems.append(located(path, section, field, message))
    return problems


def references(value: str) -> list[str]:
    """The dotted names of every `${...}` reference in `value`."""
    return REFERENCE.findall(value)


def malformed_reference(value: str) -> bool:
    """True when `value` holds a `${` that is not a well-formed lowercase reference."""
    return "${" in REFERENCE.sub("", value)


def find_cycles(graph: Mapping[str, Iterable[str]]) -> list[list[str]]:
    """Dependency cycles as paths that end where they start (`a, b, a`), deterministically.

    Edges to names outside `graph` and self-edges are ignored: they are reported
    as unknown dependencies and self-dependencies instead.
    """
    state: dict[str, str] = {}
    trail: list[str] = []
    cycles: list[list[str]] = []

    def visit(node: str) -> None:
        state[node] = "open"
        trail.append(node)
        for nxt in sorted(set(graph[node])):
            if nxt == node or nxt not in graph:
                continue
            if state.get(nxt) == "open":
                cycles.append([*trail[trail.index(nxt) :], nxt])
            elif nxt not in state:
                visit(nxt)
        trail.pop()
        state[node] = "done"

    for node in sorted(graph):
        if node not in state:
            visit(node)
    return cycles


IMAGE_ROLES = ("postgres", "services")
IMAGE_EXAMPLE = f'image = "{IMAGE_ROLES[-1]}" (an image role) or a reference like "redis:7"'
BUILD_EXAMPLE = 'build = { context = "../backend" } (a directory with a Dockerfile)'
Condition = Literal["started", "healthy"]

_STACK_NAME = re.compile(r"[a-z0-9-]+")
_MODULE_NAME = re.compile(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)*")
_SERVICE_NAME = re.compile(r"[a-z][a-z0-9-]*")
_LOG_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]*\.log")
_RUN_NAME = re.compile(r"[a-z][a-z0-9-]{0,31}")
_ENV_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_TMPFS_PATH = re.compile(r"(/[A-Za-z0-9._-]+)+")
# The tmpfs options the engine accepts: size/mode/uid/gid/nr_inodes/nr_blocks, flags.
_TMPFS_OPTION = re.compile(
    r"(size=\d+[kmg]?|mode=[0-7]{3,4}|uid=\d+|gid=\d+|nr_inodes=\d+[kmg]?|nr_blocks=\d+[kmg]?"
    r"|ro|rw|exec|noexec|suid|nosuid|dev|nodev)"
)
PORT_PROBES = ("http", "tcp", "postgres")
# Which optional probe fields each kind needs, and which it reads at all.
_PROBE_NEEDS: dict[str, tuple[str, ...]] = {
    "http": ("path",),
    "tcp": (),
    "postgres": ("user", "password", "database"),
    "log": ("pattern",),
}
_PROBE_READS: dict[str, set[str]] = {
    "http": {"path", "status", "body_contains"},
    "tcp": set(),
    "postgres": {"user", "password", "database"},
    "log": {"pattern", "count"},
}
_PROBE_EXAMPLES = {
    "path": 'path = "/health"',
    "pattern": 'pattern = "ready to accept connections"',
    "user": 'user = "${postgres.user}"',
    "password": 'password = "${postgres.password}"',
    "database": 'database = "${postgres.db}"',
}
PROBE_TEMPLATES = ("user", "password", "database")


def port_number(value: int) -> int:
    """Return `value` when it is a port from 1 to 65535, else raise `ValueError` saying so."""
    if not 1 <= value <= 65535:
        raise ValueError(f"{value} is out of range; use a port number from 1 to 65535")
    return value


def positive_seconds(value: float | None, example: str) -> float | None:
    """Return `value` unless it is zero or negative; then raise `ValueError` showing `example`."""
    if value is not None and value <= 0:
        raise ValueError(f"{value} must be a positive number of seconds, e.g. {example}")
    return value


def variable_names(
    env: dict[str, str], example: str, what: str = "variable name"
) -> dict[str, str]:
    """Return `env` when every key is a valid variable name, else raise `ValueError` saying so."""
    bad = [key for key in env if not _ENV_KEY.fullmatch(key)]
    if bad:
        raise ValueError(
            f"{', '.join(map(repr, bad))} is not a valid {what}; use letters, "
            f"digits and '_', not starting with a digit (e.g. {example})"
        )
    return env


_MEMORY = re.compile(r"(\d+)([bkmg]?)", re.IGNORECASE)
_MEMORY_UNITS = {"": 1, "b": 1, "k": 1024, "m": 1024**2, "g": 1024**3}
_MIN_MEMORY = 6 * 1024**2  # the engine refuses a smaller limit


def memory_bytes(value: str) -> int:
    """`"256m"` -> bytes (units b, k, m, g as the engine reads them); ValueError if not a size."""
    match = _MEMORY.fullmatch(value.strip())
    if match is None:
        raise ValueError(
            f'{value!r} is not a memory size; use a number with b, k, m or g, e.g. memory = "256m"'
        )
    return int(match.group(1)) * _MEMORY_UNITS[match.group(2).lower()]


def log_file_name(value: str, example: str) -> str:
    """Return `value` when it is a plain `.log` file name, else raise `ValueError` saying so."""
    if not _LOG_NAME.fullmatch(value):
        raise ValueError(
            f"{value!r} must be a plain file name ending in .log (letters, digits, '.', '_', "
            f"'-'; no directories), e.g. {example}"
        )
    return value


class ProbeSpec(BaseModel):
    """How envkit decides that a service is ready."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Literal["http", "tcp", "postgres", "log"]
    path: str | None = None
    status: int = 200
    body_contains: str | None = None
    pattern: str | None = None
    count: int = 1
    user: str | None = None
    password: str | None = Field(default=None, repr=False)  # a secret once resolved
    database: str | None = None

    @field_validator("path")
    @classmethod
    def _path(cls, v: str | None) -> str | None:
        if v is not None and not v.startswith("/"):
            raise ValueError(f"{v!r} must start with '/', e.g. path = \"/{v}\"")
        return v

    @field_validator("status")
    @classmethod
    def _status(cls, v: int) -> int:
        if not 100 <= v <= 599:
            raise ValueError(f"{v} is not an HTTP status; use a code from 100 to 599, e.g. 200")
        return v

    @field_validator("count")
    @classmethod
    def _count(cls, v: int) -> int:
        if v < 1:
            raise ValueError(f"{v} is too small; the line must appear at least once (count = 1)")
        return v

    @field_validator("pattern")
    @classmethod
    def _pattern(cls, v: str | None) -> str | None:
        if v is not None:
            try:
                re.compile(v)
            except re.error as exc:
                raise ValueError(
                    f"{v!r} is not a valid regular expression ({exc}); escape special "
                    "characters such as ( [ . with a backslash"
                ) from exc
        return v

    def problems(self) -> list[tuple[str, str]]:
        """(field, sentence) for each field this kind needs but lacks, or has but ignores."""
        found = []
        for name in _PROBE_NEEDS[self.kind]:
            if getattr(self, name) is None:
                found.append((name, f"a '{self.kind}' probe needs it; add {_PROBE_EXAMPLES[name]}"))
        for name in sorted(self.model_fields_set - _PROBE_READS[self.kind] - {"kind"}):
            found.append((name, f"does not apply to a '{self.kind}' probe; remove it"))
        return found


class BuildSpec(BaseModel):
    """How to build a service's image, like Compose's `build`: a context and a Dockerfile."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    context: str  # relative to the stack file's directory (or absolute)
    dockerfile: str = "Dockerfile"  # relative to the context
    args: dict[str, str] = Field(default_factory=dict)  # templated like env values

    @field_validator("context", "dockerfile")
    @classmethod
    def _path(cls, v: str) -> str:
        if not v.strip():
            raise ValueError('is empty; name a path, e.g. context = "../backend"')
        return v

    @field_validator("args")
    @classmethod
    def _args(cls, v: dict[str, str]) -> dict[str, str]:
        return variable_names(v, "BASE_IMAGE, as in the Dockerfile's ARG", "build argument name")


class ServiceSpec(BaseModel):
    """One container of the stack, as its stack file describes it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    image: str | None = None
    build: BuildSpec | None = None
    command: list[str] | None = None
    port: int | None = None
    fixed_port: str | int | None = None
    log: str
    ready_timeout: float | None = None
    depends_on: dict[str, Condition] = Field(default_factory=dict)
    env: dict[str, str] = Field(default_factory=dict)
    tmpfs: dict[str, str] = Field(default_factory=dict)
    probe: ProbeSpec | None = None
    memory: str | None = None  # the container's memory limit, e.g. "256m"
    cpus: float | None = None  # the CPUs it may use, e.g. 0.5

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not _SERVICE_NAME.fullmatch(v):
            raise ValueError(
                "the name must be lowercase letters, digits and '-', starting with a letter "
                "(it becomes the in-network host name); rename the table, e.g. "
                f"[services.{re.sub(r'[^a-z0-9-]', '-', v.lower()).strip('-') or 'app'}]"
            )
        return v

    @field_validator("image")
    @classmethod
    def _image(cls, v: str | None) -> str | None:
        if v is None or v in IMAGE_ROLES or ":" in v or "/" in v:
            return v
        roles = ", ".join(IMAGE_ROLES)
        raise ValueError(
            f"{v!r} is neither an image role ({roles}) nor an image reference; "
            f"{suggest(v, IMAGE_ROLES)}use a role, or a reference with a tag or a "
            "registry path such as 'redis:7'"
        )

    @field_validator("port")
    @classmethod
    def _port(cls, v: int | None) -> int | None:
        return None if v is None else port_number(v)

    @field_validator("fixed_port")
    @classmethod
    def _fixed_port(cls, v: str | int | None) -> str | int | None:
        if isinstance(v, int):
            return port_number(v)
        if v is not None and not references(v) and not v.strip().isdigit():
            raise ValueError(
                f"{v!r} is neither a port number nor a reference; use e.g. 8080 or a port "
                'setting such as "${ports.backend}"'
            )
        return v

    @field_validator("log")
    @classmethod
    def _log(cls, v: str) -> str:
        return log_file_name(v, 'log = "api.log"')

    @field_validator("ready_timeout")
    @classmethod
    def _ready_timeout(cls, v: float | None) -> float | None:
        return positive_seconds(v, "60")

    @field_validator("env")
    @classmethod
    def _env(cls, v: dict[str, str]) -> dict[str, str]:
        return variable_names(v, "Section__Name")

    @field_validator("tmpfs")
    @classmethod
    def _tmpfs(cls, v: dict[str, str]) -> dict[str, str]:
        for path, options in v.items():
            if not _TMPFS_PATH.fullmatch(path) or "/../" in f"{path}/" or "/./" in f"{path}/":
                raise ValueError(
                    f"{path!r} is not an absolute container path; use e.g. "
                    'tmpfs = { "/run/data" = "size=256m" }'
                )
            bad = [o for o in options.split(",") if options and not _TMPFS_OPTION.fullmatch(o)]
            if bad:
                raise ValueError(
                    f"{', '.join(map(repr, bad))} in the options of {path!r} is not a tmpfs "
                    "option; use comma-separated size=256m, mode=1777, uid=N, gid=N, "
                    'noexec, nosuid, nodev (or "" for none)'
                )
        return v

    @field_validator("memory")
    @classmethod
    def _memory(cls, v: str | None) -> str | None:
        if v is not None and memory_bytes(v) < _MIN_MEMORY:
            raise ValueError(
                f'{v!r} is below the engine\'s smallest memory limit (6m); use e.g. memory = "256m"'
            )
        return v

    @field_validator("cpus")
    @classmethod
    def _cpus(cls, v: float | None) -> float | None:
        if v is not None and not 0.01 <= v <= 1024:
            raise ValueError(f"{v!r} is not a number of CPUs; use e.g. cpus = 0.5")
        return v

    @property
    def limits(self) -> dict[str, int]:
        """The engine's options for the memory and CPU limits (empty without limits)."""
        options: dict[str, int] = {}
        if self.memory is not None:
            # The same limit for memory+swap: an OOM is an OOM, not a slow swap.
            options["mem_limit"] = options["memswap_limit"] = memory_bytes(self.memory)
        if self.cpus is not None:
            options["nano_cpus"] = round(self.cpus * 1e9)
        return options

    @model_validator(mode="after")
    def _image_or_build(self) -> ServiceSpec:
        if self.image is None and self.build is None:
            raise ValueError(f"needs an image or a build; add {IMAGE_EXAMPLE}, or {BUILD_EXAMPLE}")
        if self.image is not None and self.build is not None:
            raise ValueError(
                "has both image and build; keep one: image names an image to run, build "
                "a directory whose Dockerfile envkit builds (to try an image instead of a "
                "build without editing the file, use ENVKIT_IMAGES__OVERRIDE)"
            )
        return self

    @property
    def image_role(self) -> str | None:
        """The image role ("postgres"/"services") when `image` names one, else None."""
        return self.image if self.image in IMAGE_ROLES else None

    def templates(self) -> dict[str, str]:
        """Every templated value of this service, keyed by its dotted field name."""
        found = {f"env.{key}": value for key, value in self.env.items()}
        if self.build is not None:
            found |= {f"build.args.{key}": value for key, value in self.build.args.items()}
        if isinstance(self.fixed_port, str):
            found["fixed_port"] = self.fixed_port
        for name in PROBE_TEMPLATES:
            value = getattr(self.probe, name, None)
            if value is not None:
                found[f"probe.{name}"] = value
        return found


class StackHeader(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    description: str = ""
    # An importable module with steps(settings) (the stack file's directory is on sys.path),
    # or a scenario file (`*.toml`, relative to the stack file) of the project's own
    # commands; run by `invoke run`.
    scenario: str = ""
    # What a scenario run of this stack is called in report.md's title and junit.xml's suite.
    run_name: str = "run"
    # The stack's settings model as module:Class (checked by envkit.spec.stacksettings).
    settings: str = ""
    # The scenario's own log file name in the artifact directory ("" for <name>-orchestrator.log).
    orchestrator_log: str = ""

    @field_validator("orchestrator_log")
    @classmethod
    def _orchestrator_log(cls, v: str) -> str:
        return log_file_name(v, 'orchestrator_log = "checks.log"') if v else v

    @field_validator("run_name")
    @classmethod
    def _run_name(cls, v: str) -> str:
        if not _RUN_NAME.fullmatch(v):
            raise ValueError(
                f"{v!r} must be a short word of lowercase letters, digits and '-', "
                'e.g. run_name = "smoke"'
            )
        return v

    @field_validator("scenario")
    @classmethod
    def _scenario(cls, v: str) -> str:
        if v and not v.endswith(".toml") and not _MODULE_NAME.fullmatch(v):
            raise ValueError(
                f"{v!r} is neither a dotted Python module nor a scenario file; write e.g. "
                'scenario = "pkg.scenarios.mine" or scenario = "e2e/scenario.toml" (a path '
                "relative to the stack file, ending in .toml)"
            )
        return v

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not _STACK_NAME.fullmatch(v):
            raise ValueError(
                f"{v!r} must be lowercase letters, digits and '-' (it goes into container "
                'names), e.g. name = "my-stack"'
            )
        return v
