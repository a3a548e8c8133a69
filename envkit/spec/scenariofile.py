"""Scenario files: a scenario as data, each step one of the project's own commands.

A stack's `scenario` (or `--scenario`) that ends in `.toml` names such a file;
the format is documented in the
README. `load_scenario_file` validates the whole file against the stack and
the settings before anything starts, reporting every problem at once (naming
the file, the step and the field, with the fix): unknown keys, names, time
limits, `${...}` references, `log_of` services, working directories that do
not exist and programs that cannot be found or run.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from envkit.errors import ScenarioError, SettingsError, StackError
from envkit.scenario.commandstep import CommandStep, CommandTriage
from envkit.scenario.orchestrator import Scenario
from envkit.spec.settings import EnvkitSettings, known_env_names, render_env
from envkit.spec.stack import StackSpec, reference_problems, service_references
from envkit.spec.stackfile import (
    SERVICE_ATTRIBUTES,
    located,
    positive_seconds,
    read_toml,
    references,
    suggest,
    validation_problems,
    variable_names,
)

DEFAULT_TIER = "main"
HOST_ATTRIBUTES = (*SERVICE_ATTRIBUTES, "host_url")
_NAME = re.compile(r"[a-z0-9][a-z0-9-]*")
_EXAMPLE_COMMAND = 'command = ["python3", "ci/check.py", "--url", "${services.api.host_url}"]'


class StepSpec(BaseModel):
    """One `[[steps]]` table of a scenario file, checked on its own."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    tier: str = DEFAULT_TIER
    command: list[str]
    cwd: str = "."
    timeout: float | None = None
    env: dict[str, str] = Field(default_factory=dict)
    log_of: str = ""

    @field_validator("name", "tier")
    @classmethod
    def _name(cls, v: str) -> str:
        if not _NAME.fullmatch(v):
            fixed = re.sub(r"[^a-z0-9-]+", "-", v.lower()).strip("-") or "check"
            raise ValueError(
                f"{v!r} must be lowercase letters, digits and '-', starting with a letter or "
                f'digit; e.g. "{fixed}"'
            )
        return v

    @field_validator("command", mode="before")
    @classmethod
    def _one_string(cls, v: Any) -> Any:
        if isinstance(v, str):
            raise ValueError(
                "is one string, but envkit runs no shell: give the program and each argument "
                f"as a list, e.g. command = {_split_example(v)} (for shell syntax, "
                'command = ["sh", "-c", "..."])'
            )
        return v

    @field_validator("command")
    @classmethod
    def _command(cls, v: list[str]) -> list[str]:
        if not v or not v[0].strip():
            raise ValueError(f"names no program; give the program first, e.g. {_EXAMPLE_COMMAND}")
        return v

    @field_validator("timeout")
    @classmethod
    def _timeout(cls, v: float | None) -> float | None:
        return positive_seconds(v, "timeout = 300")

    @field_validator("env")
    @classmethod
    def _env(cls, v: dict[str, str]) -> dict[str, str]:
        return variable_names(v, "BACKEND_URL")

    def templates(self) -> dict[str, str]:
        """Every templated value of this step, keyed by its field (`command[1]`, `env.X`)."""
        found = {f"command[{i}]": arg for i, arg in enumerate(self.command)}
        found.update({f"env.{key}": value for key, value in self.env.items()})
        return found


def _split_example(text: str) -> str:
    words = text.split() or ["python3", "ci/check.py"]
    return "[" + ", ".join(f'"{w}"' for w in words) + "]"


def load_scenario_file(
    path: Path,
    stack: StackSpec,
    settings: EnvkitSettings,
    environ: Mapping[str, str] | None = None,
) -> Scenario:
    """Read and check a scenario file; raise `ScenarioError` listing every problem in it.

    `environ` (default `os.environ`) supplies the PATH that bare program names are
    looked up on, as they will be when the step runs.
    """
    environ = os.environ if environ is None else environ
    try:
        data = read_toml(path, "scenario file")
    except StackError as exc:
        raise ScenarioError(exc.problems) from exc
    problems: list[str] = []
    for key in sorted(set(data) - {"steps"}):
        problems.append(
            located(
                path, None, None,
                f"unknown top-level key '{key}'; {suggest(key, ['steps'])}a scenario file "
                "holds only [[steps]] tables",
            )
        )  # fmt: skip
    specs = _step_specs(path, data.get("steps"), problems)
    commands = []
    for index, spec in enumerate(specs):
        if spec is None:
            continue
        command = _command_step(path, spec, specs[:index], stack, settings, environ, problems)
        if command is not None:
            commands.append(command)
    if problems:
        raise ScenarioError(problems)
    triage = CommandTriage(
        {c.name: c for c in commands},
        {name: spec.log for name, spec in stack.services.items()},
        stack.orchestrator_log_name,
    )
    return Scenario([c.as_step() for c in commands], classify=triage)


def _step_specs(path: Path, raw: Any, problems: list[str]) -> list[StepSpec | None]:
    """Each `[[steps]]` table as a model (None where it has problems, which are recorded)."""
    if not isinstance(raw, list) or not raw:
        problems.append(
            f"{path}: no steps defined; add at least one [[steps]] table with "
            f'name = "..." and {_EXAMPLE_COMMAND}'
        )
        return []
    allowed = {"": set(StepSpec.model_fields)}
    examples = {"name": 'name = "smoke"', "command": _EXAMPLE_COMMAND}
    specs: list[StepSpec | None] = []
    for number, table in enumerate(raw, start=1):
        if not isinstance(table, dict):
            message = "must be a table; write each step as a [[steps]] table"
            problems.append(located(path, f"step #{number}", None, message))
            specs.append(None)
            continue
        name = table.get("name")
        section = f"step '{name}'" if isinstance(name, str) and name else f"step #{number}"
        try:
            specs.append(StepSpec.model_validate(table))
        except ValidationError as exc:
            problems += validation_problems(exc, path, section, allowed, examples)
            specs.append(None)
    return specs


def _command_step(
    path: Path,
    spec: StepSpec,
    earlier: Sequence[StepSpec | None],
    stack: StackSpec,
    settings: EnvkitSettings,
    environ: Mapping[str, str],
    problems: list[str],
) -> CommandStep | None:
    """Check one step against the stack, the settings and this machine; build it if it is fine."""
    found: list[tuple[str, str]] = []
    if any(other is not None and other.name == spec.name for other in earlier):
        found.append(("name", f"'{spec.name}' names two steps; give each step its own name"))
    if spec.log_of and spec.log_of not in stack.services:
        names = ", ".join(sorted(stack.services))
        found.append(
            (
                "log_of",
                f"unknown service '{spec.log_of}'; {suggest(spec.log_of, stack.services)}"
                f"the stack ({stack.source}) has: {names}",
            )
        )
    settings_names = set(known_env_names(type(settings)).values())
    for field, value in spec.templates().items():
        for text in reference_problems(
            value, stack.services, stack.services, settings_names, HOST_ATTRIBUTES
        ):
            found.append((field, text))
    cwd = (path.parent / spec.cwd).resolve()
    if not cwd.is_dir():
        found.append(
            (
                "cwd",
                f"directory {cwd} does not exist (cwd is relative to the scenario file's "
                f"directory, {path.parent.resolve()}); create it or fix the path",
            )
        )
    program = _program(spec, stack, settings, found)
    executable = None
    if program is not None and cwd.is_dir():
        executable = _executable(program, cwd, _search_path(spec, environ), found)
    section = f"step '{spec.name}'"
    problems += [located(path, section, field, text) for field, text in found]
    if found or executable is None:
        return None
    timeout = spec.timeout or settings.timeouts.command_step_seconds
    return CommandStep(
        spec.name, spec.tier, tuple(spec.command), executable, cwd, timeout, dict(spec.env),
        spec.log_of, service_references(stack),
    )  # fmt: skip


def _program(
    spec: StepSpec, stack: StackSpec, settings: EnvkitSettings, found: list[tuple[str, str]]
) -> str | None:
    """The program (command[0]) with its references filled, or None when it cannot be known."""
    first = spec.command[0]
    if any(ref.endswith(".host_url") for ref in references(first)):
        found.append(
            (
                "command[0]",
                "the program cannot depend on the running stack; name it literally and pass "
                "${services.<name>.host_url} as an argument",
            )
        )
        return None
    if any(field == "command[0]" for field, _ in found):
        return None  # its references are already reported
    try:
        return render_env({"0": first}, settings, service_references(stack))["0"]
    except SettingsError:
        return None


def _search_path(spec: StepSpec, environ: Mapping[str, str]) -> str:
    # The step's own PATH wins, as it will when the command runs (unless it is templated).
    own = spec.env.get("PATH")
    if own is not None and not references(own):
        return own
    return environ.get("PATH", os.defpath)


def _executable(
    program: str, cwd: Path, search_path: str, found: list[tuple[str, str]]
) -> str | None:
    """The absolute path of the program to run, or None with the problem recorded."""
    if "/" in program:
        candidate = Path(os.path.abspath(cwd / program))  # symlinks kept: argv[0] may matter
        if not candidate.exists():
            found.append(
                (
                    "command[0]",
                    f"program '{program}' does not exist (looked for {candidate}; a path is "
                    "relative to the step's cwd); fix the path or create the file",
                )
            )
        elif not candidate.is_file() or not os.access(candidate, os.X_OK):
            found.append(
                (
                    "command[0]",
                    f"program '{program}' ({candidate}) is not an executable file; make it "
                    f"executable (chmod +x) or run it through its interpreter, e.g. "
                    f'command = ["python3", "{program}", ...]',
                )
            )
        else:
            return str(candidate)
        return None
    located_at = shutil.which(program, path=search_path)
    if located_at is None:
        here = (
            f'; {cwd / program} exists: write "./{program}" to run it'
            if (cwd / program).is_file()
            else ""
        )
        found.append(
            (
                "command[0]",
                f"program '{program}' is not on PATH; install it or give its path (e.g. "
                f'"./bin/{program}", relative to the step\'s cwd){here}',
            )
        )
        return None
    return os.path.abspath(located_at)
