"""Runtime faults injected at a step of an isolated run, recorded so a replay repeats them.

A `Fault` names a kind, its arguments and the step it is injected just before. envkit
knows two kinds: `stop-service` (stop a service's container: `service=`) and `http-post`
(POST `NAME=VALUE` arguments as a JSON body to a service: `service=`, `path=`, the rest
is the body). A stack's scenario module adds its own kinds in a `FAULTS` mapping of
name -> `FaultKind` (e.g. a mock's fault plan). A fault gets a random seed when none is
given, passed to its kind, so a failure-rate fault repeats exactly.

`run_isolated(..., faults=[...])` (and `--fault` on `run`/`tier-b`) injects them; each
injection is logged in the orchestrator log, listed in summary.json's `events` and in
manifest.json's `faults`, and the run's options keep the faults (seeds included) so
`replay` injects the same ones at the same steps.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx

from envkit.errors import EnvkitError, FaultError
from envkit.evidence.outcome import utc_now
from envkit.lifecycle.environment import Environment
from envkit.scenario.orchestrator import OrchestratorLog, Step, scenario_module

FAULT_EXAMPLE = "--fault STEP:stop-service:service=db"
_SEED_RANGE = 2**31


@dataclass(frozen=True)
class FaultTarget:
    """What a fault kind acts on: the run's running services."""

    env: Environment

    def url(self, service: str) -> str:
        """The service's URL from this machine."""
        url = self.env.endpoints().get(service, {}).get("host_url")
        if not url:
            raise FaultError(f"Service {service!r} has no port, so no fault can reach it.")
        return str(url)

    def post_json(self, service: str, path: str, body: Mapping[str, Any]) -> None:
        """POST `body` to the service's `path`; a FaultError unless it answers 2xx."""
        try:
            answer = httpx.post(
                f"{self.url(service)}{path}", json=dict(body), timeout=10.0, trust_env=False
            )
        except httpx.HTTPError as exc:
            raise FaultError(f"{service} could not be reached at {path} ({exc}).") from exc
        if not answer.is_success:
            raise FaultError(
                f"{service} refused POST {path} with {answer.status_code}: {answer.text[:200]}"
            )

    def stop(self, service: str) -> None:
        """Stop the service's container (the run's teardown still removes it)."""
        run = self.env.runs.get(service)
        container = run.container if run is not None else None
        if container is None:
            raise FaultError(f"Service {service!r} has no container to stop.")
        container.wrapped.stop(timeout=5)


@dataclass(frozen=True)
class FaultKind:
    """A kind of fault: the arguments it takes (and needs), and how it is injected."""

    inject: Callable[[FaultTarget, Mapping[str, Any], int], None]  # target, args, seed
    takes: frozenset[str]
    needs: frozenset[str] = frozenset()
    any_args: bool = False  # True: arguments beyond `takes` are allowed (a request body)


def _stop(target: FaultTarget, args: Mapping[str, Any], seed: int) -> None:
    target.stop(str(args["service"]))


def _post(target: FaultTarget, args: Mapping[str, Any], seed: int) -> None:
    body = {k: v for k, v in args.items() if k not in ("service", "path")}
    target.post_json(str(args["service"]), str(args["path"]), body)


BUILT_IN: dict[str, FaultKind] = {
    "stop-service": FaultKind(_stop, frozenset({"service"}), frozenset({"service"})),
    "http-post": FaultKind(
        _post, frozenset({"service", "path"}), frozenset({"service", "path"}), any_args=True
    ),
}


@dataclass(frozen=True)
class Fault:
    """A runtime fault: its kind and arguments, injected just before the step `at_step` runs."""

    at_step: str
    kind: str
    args: Mapping[str, Any] = field(default_factory=dict)
    seed: int | None = None  # passed to the kind (random draws); chosen when None

    def __post_init__(self) -> None:
        if not (self.at_step and self.kind):
            raise FaultError(
                f"A fault needs a step and a kind (got step {self.at_step!r}, kind "
                f"{self.kind!r}); e.g. {FAULT_EXAMPLE}."
            )

    def describe(self) -> str:
        """E.g. `stop-service service=db before step 'checkout'`."""
        args = " ".join(f"{k}={v}" for k, v in sorted(self.args.items()))
        return f"{self.kind}{' ' + args if args else ''} before step {self.at_step!r}"

    def seeded(self) -> Fault:
        """This fault with its seed chosen, so its random draws repeat on replay."""
        if self.seed is not None:
            return self
        return Fault(self.at_step, self.kind, dict(self.args), random.randrange(_SEED_RANGE))

    def to_data(self) -> dict[str, Any]:
        """The fault as the run's options record it."""
        return {"at_step": self.at_step, "kind": self.kind, "args": dict(self.args),
                "seed": self.seed}  # fmt: skip

    @classmethod
    def from_data(cls, data: Any) -> Fault:
        """A fault the run's options recorded; FaultError says what is damaged."""
        if not isinstance(data, Mapping) or not isinstance(data.get("args", {}), Mapping):
            raise FaultError(f"A recorded fault is not a table with args: {data!r}.")
        seed = data.get("seed")
        return cls(
            str(data.get("at_step", "")), str(data.get("kind", "")), dict(data.get("args", {})),
            seed if isinstance(seed, int) else None,
        )  # fmt: skip


def parse_fault(text: str) -> Fault:
    """`STEP:KIND[:NAME=VALUE,...]` (a `--fault`) -> a `Fault`; numbers become numbers."""
    step, _, rest = text.partition(":")
    kind, _, arg_text = rest.partition(":")
    args: dict[str, Any] = {}
    for item in filter(None, arg_text.split(",")):
        name, sep, value = item.partition("=")
        if not (sep and name.strip()):
            raise FaultError(
                f"--fault {text!r}: {item!r} is not NAME=VALUE; write STEP:KIND[:NAME=VALUE,...] "
                f"(e.g. {FAULT_EXAMPLE})."
            )
        args[name.strip()] = _number(value.strip())
    if not (step.strip() and kind.strip()):
        raise FaultError(
            f"--fault {text!r} is not STEP:KIND[:NAME=VALUE,...] (e.g. {FAULT_EXAMPLE})."
        )
    return Fault(step.strip(), kind.strip(), args)


def _number(value: str) -> int | float | str:
    for kind in (int, float):
        try:
            return kind(value)
        except ValueError:
            continue
    return value


def fault_kinds(scenario_ref: str, stack_file: Any = None) -> dict[str, FaultKind]:
    """envkit's fault kinds and those the scenario module `scenario_ref` adds (`FAULTS`)."""
    kinds = dict(BUILT_IN)
    if scenario_ref and not scenario_ref.endswith(".toml"):
        own = getattr(scenario_module(scenario_ref, stack_file), "FAULTS", None)
        if isinstance(own, Mapping):
            kinds.update({str(k): v for k, v in own.items() if isinstance(v, FaultKind)})
    return kinds


def check_faults(
    faults: Sequence[Fault],
    kinds: Mapping[str, FaultKind],
    steps: Iterable[str],
    services: Iterable[str],
) -> None:
    """Refuse a fault of an unknown kind, with wrong arguments, or naming an unknown step or
    service, before anything starts."""
    steps, services = list(steps), sorted(services)
    for fault in faults:
        what = f"The fault {fault.describe()}"
        kind = kinds.get(fault.kind)
        if kind is None:
            raise FaultError(f"{what} is of an unknown kind; kinds: {', '.join(sorted(kinds))}.")
        unknown = sorted(set(fault.args) - kind.takes) if not kind.any_args else []
        missing = sorted(kind.needs - set(fault.args))
        if unknown or missing:
            why = f"takes no {', '.join(unknown)}" if unknown else f"needs {', '.join(missing)}="
            takes = ", ".join(f"{n}=" for n in sorted(kind.takes))
            raise FaultError(f"{what} {why} ({fault.kind} takes {takes}).")
        if fault.at_step not in steps:
            raise FaultError(
                f"{what} names a step this run does not have; its steps are: {', '.join(steps)}."
            )
        service = fault.args.get("service")
        if service is not None and service not in services:
            raise FaultError(
                f"{what} names service {service!r}, which the stack does not have; it has: "
                f"{', '.join(services)}."
            )


@dataclass
class FaultInjector:
    """Injects a run's faults just before their steps and records each as a scenario event."""

    faults: Sequence[Fault]
    kinds: Mapping[str, FaultKind]
    log: OrchestratorLog
    events: list[dict[str, Any]] = field(default_factory=list)

    def before_step(self, step: Step, env: Environment) -> None:
        """Inject every fault due before `step` (in the order given)."""
        for fault in self.faults:
            if fault.at_step != step.name:
                continue
            try:
                self.kinds[fault.kind].inject(FaultTarget(env), fault.args, fault.seed or 0)
            except EnvkitError as exc:
                raise FaultError(f"The fault {fault.describe()} was not injected: {exc}") from exc
            self.log.write(f"fault injected: {fault.describe()} (seed {fault.seed})")
            self.events.append({"at": utc_now(), "event": "fault", **fault.to_data()})
