"""The stack model: services, images, ports, dependencies and probes as validated data.

`load_stack` turns a stack file (`compose/*.toml`; the format is documented at the
top of `compose/tier-b.toml`) into a `StackSpec`, reporting every problem in the
file at once. `resolve_stack` fills each service's templates from the settings.
Nothing here talks to Docker, and nothing here knows a particular stack.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Collection, Mapping, Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, SkipValidation, ValidationError

from envkit.engines.imagesources import ImageSource, image_sources
from envkit.errors import SettingsError, StackError
from envkit.program import command
from envkit.spec.settings import (
    EnvkitSettings,
    known_env_names,
    render_env,
    secret_setting_names,
    settings_class,
)
from envkit.spec.stackfile import (
    IMAGE_EXAMPLE,
    IMAGE_ROLES,
    PORT_PROBES,
    PROBE_TEMPLATES,
    SERVICE_ATTRIBUTES,
    BuildSpec,
    Condition,
    ProbeSpec,
    ServiceSpec,
    StackHeader,
    find_cycles,
    located,
    malformed_reference,
    place,
    port_number,
    read_toml,
    references,
    suggest,
    validation_problems,
)
from envkit.spec.stacksettings import declared_settings

__all__ = [
    "IMAGE_ROLES",
    "BuildSpec",
    "Condition",
    "ImageSource",
    "ProbeSpec",
    "ResolvedService",
    "ServiceSpec",
    "StackSpec",
    "image_sources",
    "load_stack",
    "reference_problems",
    "resolve_stack",
    "service_references",
]


class StackSpec(BaseModel):
    """A whole stack: its name and its services, as read from `source`."""

    model_config = ConfigDict(extra="forbid", frozen=True, arbitrary_types_allowed=True)

    name: str
    description: str = ""
    scenario: str = ""  # a module with steps(settings) or a scenario file (relative to source)
    services: dict[str, ServiceSpec]
    source: Path
    # The stack's own settings model (its `settings` and `[settings]`), None when it has none.
    settings_model: SkipValidation[type[BaseModel] | None] = None
    orchestrator_log: str = ""  # the scenario's own log file name; "" for the default
    run_name: str = "run"  # a run's name in report.md's title and junit.xml's suite

    @property
    def settings_class(self) -> type[EnvkitSettings]:
        """envkit's settings class with this stack's sections: what `load_settings` builds."""
        return settings_class(self.settings_model)

    @property
    def orchestrator_log_name(self) -> str:
        """The scenario's own log in the artifact directory, e.g. `shop-orchestrator.log`."""
        return self.orchestrator_log or f"{self.name}-orchestrator.log"

    def waves(self) -> list[list[str]]:
        """Dependency levels: wave 0 needs nothing; each service comes after all its deps."""
        placed: set[str] = set()
        remaining = set(self.services)
        result: list[list[str]] = []
        while remaining:
            wave = sorted(n for n in remaining if set(self.services[n].depends_on) <= placed)
            if not wave:
                raise StackError(
                    [
                        f"{self.source}: services {', '.join(sorted(remaining))} can never "
                        "start: their dependencies form a cycle or name unknown services; "
                        "load the file with load_stack to see which"
                    ]
                )
            result.append(wave)
            placed.update(wave)
            remaining.difference_update(wave)
        return result

    def dependency_chains(self) -> list[list[str]]:
        """Every path in start order, from a service with no deps to one nothing depends on."""
        self.waves()  # refuses cycles, which would make the walk below endless
        dependents = {
            name: sorted(other for other, s in self.services.items() if name in s.depends_on)
            for name in self.services
        }
        chains: list[list[str]] = []

        def walk(path: list[str]) -> None:
            nexts = dependents[path[-1]]
            if not nexts:
                chains.append(path)
            for nxt in nexts:
                walk([*path, nxt])

        for root in sorted(n for n, s in self.services.items() if not s.depends_on):
            walk([root])
        return chains


def load_stack(path: Path) -> StackSpec:
    """Read and validate a stack file; raise `StackError` listing every problem in it."""
    data = read_toml(path)
    problems: list[str] = []
    tops = ["stack", "services", "settings"]
    for key in sorted(set(data) - set(tops)):
        problems.append(
            located(
                path,
                None,
                None,
                f"unknown top-level key '{key}'; {suggest(key, tops)}"
                "a stack file has one [stack] table, [services.<name>] tables and optional "
                "[settings.<section>.<name>] tables",
            )
        )
    header = _header(path, data.get("stack"), problems)
    try:
        model = declared_settings(path, data)
    except StackError as exc:
        problems += exc.problems
        model = None
    services = _services(path, data.get("services"), problems)
    problems += _cross_problems(
        path, services, _dependency_graph(data.get("services")), settings_class(model)
    )
    if problems or header is None:
        raise StackError(problems)
    return StackSpec(
        name=header.name,
        description=header.description,
        scenario=header.scenario,
        services=services,
        source=path,
        settings_model=model,
        orchestrator_log=header.orchestrator_log,
        run_name=header.run_name,
    )


def _header(path: Path, raw: Any, problems: list[str]) -> StackHeader | None:
    if not isinstance(raw, dict):
        problems.append(
            f'{path}: the [stack] table is missing; add [stack] with name = "my-stack" '
            "(lowercase letters, digits and '-') at the top"
        )
        return None
    try:
        return StackHeader.model_validate(raw)
    except ValidationError as exc:
        allowed = {"": list(StackHeader.model_fields)}
        examples = {"name": 'name = "my-stack"'}
        problems += validation_problems(exc, path, "[stack]", allowed, examples)
        return None


def _services(path: Path, raw: Any, problems: list[str]) -> dict[str, ServiceSpec]:
    if not isinstance(raw, dict) or not raw:
        problems.append(
            f"{path}: no services defined; add at least one [services.<name>] table with "
            'image = "..." and log = "<name>.log"'
        )
        return {}
    allowed = {
        "": set(ServiceSpec.model_fields) - {"name"},
        "probe": set(ProbeSpec.model_fields),
        "build": set(BuildSpec.model_fields),
    }
    services = {}
    for name, table in raw.items():
        section = f"service '{name}'"
        if not isinstance(table, dict):
            problems.append(located(path, section, None, f"must be a table: [services.{name}]"))
            continue
        if "name" in table:
            problems.append(
                located(path, section, "name", "unknown key; the table name is the service name")
            )
            table = {key: value for key, value in table.items() if key != "name"}
        examples = {
            "image": IMAGE_EXAMPLE,
            "build.context": 'context = "../backend" (the directory that holds the Dockerfile)',
            "log": f'log = "{name}.log"',
            "probe.kind": 'kind = "http" (or "tcp", "postgres", "log")',
        }
        try:
            services[name] = ServiceSpec.model_validate({**table, "name": name})
        except ValidationError as exc:
            problems += validation_problems(exc, path, section, allowed, examples, "name")
    return services


def _dependency_graph(raw: Any) -> dict[str, list[str]]:
    """Each service's dependencies as written, even for a service that failed its own checks."""
    if not isinstance(raw, dict):
        return {}
    graph = {}
    for name, table in raw.items():
        deps = table.get("depends_on") if isinstance(table, dict) else None
        graph[str(name)] = [str(dep) for dep in deps] if isinstance(deps, dict) else []
    return graph


def _cross_problems(
    path: Path,
    services: Mapping[str, ServiceSpec],
    graph: Mapping[str, list[str]],
    settings_cls: type[EnvkitSettings],
) -> list[str]:
    problems = []
    settings_names = set(known_env_names(settings_cls).values())
    secrets = secret_setting_names(settings_cls)
    logs: dict[str, str] = {}
    fixed: dict[str | int, str] = {}
    for name, deps in graph.items():
        found = _dependency_problems(name, deps, graph)
        spec = services.get(name)
        if spec is not None:
            found += _service_problems(spec, services, graph, settings_names, secrets)
            if spec.log in logs:
                other = logs[spec.log]
                found.append(
                    (
                        "log",
                        f"'{spec.log}' is also the log of service '{other}'; give each "
                        "service its own log file name",
                    )
                )
            if spec.fixed_port is not None and spec.fixed_port in fixed:
                found.append(
                    (
                        "fixed_port",
                        f"{spec.fixed_port!r} is also the fixed_port of service "
                        f"'{fixed[spec.fixed_port]}'; give each service its own host port",
                    )
                )
            logs.setdefault(spec.log, name)
            if spec.fixed_port is not None:
                fixed.setdefault(spec.fixed_port, name)
        problems += [located(path, f"service '{name}'", field, text) for field, text in found]
    for cycle in find_cycles(graph):
        problems.append(
            located(
                path,
                f"service '{cycle[0]}'",
                "depends_on",
                f"dependency cycle {' -> '.join(cycle)}; remove one of these dependencies",
            )
        )
    return problems


def _dependency_problems(
    name: str, deps: list[str], known: Collection[str]
) -> list[tuple[str, str]]:
    found = []
    for dep in deps:
        if dep == name:
            found.append(("depends_on", f"'{dep}' is the service itself; remove it"))
        elif dep not in known:
            names = ", ".join(sorted(known))
            found.append(("depends_on", f"unknown service '{dep}'; known services: {names}"))
    return found


def _service_problems(
    spec: ServiceSpec,
    services: Mapping[str, ServiceSpec],
    known: Collection[str],
    settings_names: Collection[str],
    secrets: Collection[str],
) -> list[tuple[str, str]]:
    found = []
    if spec.probe is not None:
        found += [(f"probe.{field}", text) for field, text in spec.probe.problems()]
        if spec.probe.kind in PORT_PROBES and spec.port is None:
            found.append(
                (
                    "port",
                    f"a '{spec.probe.kind}' probe connects to the service's port, but no "
                    "port is set; add port = <the port it listens on in the container>",
                )
            )
    for field, value in spec.templates().items():
        problems = reference_problems(value, services, known, settings_names)
        if field.startswith("build."):
            problems += _build_argument_problems(value, secrets)
        found += [(field, text) for text in problems]
    return found


def _build_argument_problems(value: str, secret_names: Collection[str]) -> list[str]:
    refs = references(value)
    found = []
    if any(ref.startswith("services.") for ref in refs):
        found.append(
            "build arguments are filled before any container exists, so they cannot refer "
            "to a service; refer to a setting instead (e.g. ${app.environment})"
        )
    secrets = sorted(set(refs) & set(secret_names))
    if secrets:
        found.append(
            f"'${{{secrets[0]}}}' is a secret, and build arguments stay in the image's "
            "history for anyone who can pull it; give the secret to the container as an env "
            "value instead"
        )
    return found


def reference_problems(
    value: str,
    services: Mapping[str, ServiceSpec],
    known: Collection[str],
    settings_names: Collection[str],
    attributes: Sequence[str] = SERVICE_ATTRIBUTES,
) -> list[str]:
    """Problems with the `${...}` references in one value (services not loaded are skipped).

    `attributes` are the `${services.<name>.<attribute>}` forms the value may use.
    """
    found = []
    if malformed_reference(value):
        found.append(
            f"{value!r} holds a malformed reference; write ${{section.field}} in lowercase, "
            "e.g. ${postgres.user} or ${services.api.url}"
        )
    for ref in references(value):
        parts = ref.split(".")
        if parts[0] != "services":
            if ref not in settings_names:
                hint = suggest(ref, settings_names)
                found.append(
                    f"'${{{ref}}}' names no setting; {hint}`{command('config')}` lists the settings"
                )
            continue
        attrs = "/".join(attributes)
        if len(parts) != 3 or parts[2] not in attributes:
            found.append(f"'${{{ref}}}' must have the form ${{services.<name>.{attrs}}}")
        elif parts[1] not in known:
            names = ", ".join(sorted(known))
            found.append(f"'${{{ref}}}' names unknown service '{parts[1]}'; known: {names}")
        elif parts[1] in services and parts[2] != "host" and services[parts[1]].port is None:
            found.append(f"'${{{ref}}}' needs a port, but service '{parts[1]}' sets no port")
    return found


@dataclasses.dataclass(frozen=True)
class ResolvedService:
    """A service with every template filled from the settings: ready to start."""

    spec: ServiceSpec
    env: dict[str, str] = dataclasses.field(repr=False)  # holds rendered secrets
    fixed_port: int | None
    probe: ProbeSpec | None
    ready_timeout: float

    @property
    def name(self) -> str:
        """The service's name (its in-network host name)."""
        return self.spec.name


def service_references(stack: StackSpec) -> dict[str, str]:
    """`services.<name>.host/port/url` for every service, as `render_env` extras."""
    refs = {}
    for name, spec in stack.services.items():
        refs[f"services.{name}.host"] = name
        if spec.port is not None:
            refs[f"services.{name}.port"] = str(spec.port)
            refs[f"services.{name}.url"] = f"http://{name}:{spec.port}"
    return refs


def resolve_stack(stack: StackSpec, settings: EnvkitSettings) -> dict[str, ResolvedService]:
    """Fill env, fixed ports, probe credentials and timeouts; raise `StackError` on any problem.

    It also checks each service's image source (`image_sources`): an image override that
    names an unknown service, or a build context or Dockerfile that is not there, is
    refused here, before anything starts.
    """
    _require_stack_settings(stack, settings)
    extra = service_references(stack)
    problems: list[str] = []

    def render(service: str, field: str, value: str) -> str:
        where = place(stack.source, f"service '{service}'", field)
        try:
            return render_env({"value": value}, settings, extra, where=where)["value"]
        except SettingsError as exc:
            problems.extend(exc.problems)
            return ""

    resolved: dict[str, ResolvedService] = {}
    hosts: dict[int, str] = {}
    for name, spec in stack.services.items():
        env = {key: render(name, f"env.{key}", value) for key, value in spec.env.items()}
        port = _fixed_port(stack, spec, render, problems)
        if port is not None and port in hosts:
            problems.append(
                located(
                    stack.source,
                    f"service '{name}'",
                    "fixed_port",
                    f"host port {port} is also the fixed_port of service '{hosts[port]}'; give "
                    "each service its own host port (change the port setting either refers to)",
                )
            )
        elif port is not None:
            hosts[port] = name
        probe = spec.probe
        if probe is not None:
            filled = {
                field: render(name, f"probe.{field}", getattr(probe, field))
                for field in PROBE_TEMPLATES
                if getattr(probe, field) is not None
            }
            probe = probe.model_copy(update=filled)
        timeout = spec.ready_timeout
        if timeout is None:
            timeout = settings.timeouts.service_ready_seconds
        resolved[name] = ResolvedService(spec, env, port, probe, timeout)
    if problems:
        raise StackError(problems)
    image_sources(stack, settings)  # refuses a bad override or a missing build context now
    return resolved


def _require_stack_settings(stack: StackSpec, settings: EnvkitSettings) -> None:
    """Refuse settings built without this stack's own (their `${...}` would not resolve)."""
    wanted = set(known_env_names(stack.settings_class))
    missing = sorted(wanted - set(known_env_names(type(settings))))
    if missing:
        more = f" and {len(missing) - 3} more" if len(missing) > 3 else ""
        raise SettingsError(
            [
                f"the settings were built without the settings {stack.source} declares "
                f"({', '.join(missing[:3])}{more}); build them for this stack with "
                f"load_settings(..., stack=Path({str(stack.source)!r}))"
            ]
        )


def _fixed_port(
    stack: StackSpec,
    spec: ServiceSpec,
    render: Callable[[str, str, str], str],
    problems: list[str],
) -> int | None:
    if spec.fixed_port is None or isinstance(spec.fixed_port, int):
        return spec.fixed_port
    text = render(spec.name, "fixed_port", spec.fixed_port).strip()
    try:
        return port_number(int(text))
    except ValueError:
        problems.append(
            located(
                stack.source,
                f"service '{spec.name}'",
                "fixed_port",
                f"{spec.fixed_port!r} renders to {text!r}, not a port from 1 to 65535; refer "
                'to a port setting such as "${ports.backend}" or write a number',
            )
        )
        return None
