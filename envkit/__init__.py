"""envkit: compose a containerized test stack, prove it end to end, keep the evidence.

The public API, in the order of the data flow:

* the short way in — `open_stack` (a stack file and its settings) gives a `Stack`;
  `Stack.start()` (isolated, torn down after) or `Stack.attach()` (the `up` stack) gives a
  `RunningStack`: URLs, settings, redacted logs, and its scenario;

* settings — `load_settings` (envkit's own plus the stack's declared settings),
  `EnvkitSettings`, `Workspace` (where artifacts, cache, state and history go);
* the stack — `load_stack`, `resolve_stack`, `StackSpec`;
* the environment — `running_stack` (an isolated stack as a context manager),
  `Environment`, and the `up` stack's `up`, `status`, `logs`, `down`, `clean`;
* the scenario — `run_isolated` (start, run, collect, tear down), `orchestrate`
  (against the `up` stack), `replay` (a run's directory or `.zip`), `Fault` (a runtime
  fault injected at a step, recorded for replay), and the step types `Scenario`, `Step`,
  `StepContext`;
* the results — `RunOutcome`, `StepResult`, `Failure`;
* errors — `EnvkitError` and the kinds a caller most often tells apart.

Names load on first use, so `import envkit` stays cheap (no Docker SDK, no
testcontainers) until one is touched.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import importlib.util
import sys
from importlib.machinery import ModuleSpec
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from envkit.api import RunningStack, Stack, open_stack
    from envkit.errors import (
        EngineError,
        EnvkitError,
        ImageError,
        ScenarioError,
        ServiceNotReady,
        SettingsError,
        StackError,
    )
    from envkit.evidence.outcome import Failure, RunOutcome, StepResult
    from envkit.lifecycle.commands import clean, down, logs, running_stack, status, up
    from envkit.lifecycle.environment import Environment
    from envkit.scenario.faults import Fault
    from envkit.scenario.orchestrator import Scenario, Step, StepContext
    from envkit.scenario.replayer import replay
    from envkit.scenario.runner import orchestrate, run_isolated
    from envkit.spec.settings import EnvkitSettings, load_settings
    from envkit.spec.stack import StackSpec, load_stack, resolve_stack
    from envkit.spec.workspace import Workspace


class _DeferredParamiko:
    """A one-shot import finder: the first `import paramiko` gets a module that loads on first
    use (`importlib.util.LazyLoader`).

    docker-py imports paramiko, and with it cryptography and PyNaCl (about 0.1 CPU-s), as
    soon as it is imported, for an `ssh://` engine reached without the ssh command; envkit
    talks to every engine through a socket or the `ssh` command, so most commands never
    touch paramiko. Nothing else changes: the first attribute read loads it whole.
    """

    def find_spec(self, name: str, path: object = None, target: object = None) -> ModuleSpec | None:
        """paramiko's real spec behind a lazy loader (None for every other name)."""
        if name != "paramiko":
            return None
        sys.meta_path.remove(self)  # one shot; also lets the lookup below find the real one
        spec = importlib.util.find_spec(name)
        if spec is not None and spec.loader is not None:
            spec.loader = importlib.util.LazyLoader(spec.loader)
        return spec


if "paramiko" not in sys.modules:
    sys.meta_path.insert(0, _DeferredParamiko())

try:
    __version__ = importlib.metadata.version("envkit")
except importlib.metadata.PackageNotFoundError:  # a source tree that was never installed
    __version__ = "0+unknown"

_WHERE = {
    "open_stack": "envkit.api",
    "Stack": "envkit.api",
    "RunningStack": "envkit.api",
    "load_settings": "envkit.spec.settings",
    "EnvkitSettings": "envkit.spec.settings",
    "Workspace": "envkit.spec.workspace",
    "load_stack": "envkit.spec.stack",
    "resolve_stack": "envkit.spec.stack",
    "StackSpec": "envkit.spec.stack",
    "running_stack": "envkit.lifecycle.commands",
    "up": "envkit.lifecycle.commands",
    "status": "envkit.lifecycle.commands",
    "logs": "envkit.lifecycle.commands",
    "down": "envkit.lifecycle.commands",
    "clean": "envkit.lifecycle.commands",
    "Environment": "envkit.lifecycle.environment",
    "run_isolated": "envkit.scenario.runner",
    "orchestrate": "envkit.scenario.runner",
    "replay": "envkit.scenario.replayer",
    "Fault": "envkit.scenario.faults",
    "Scenario": "envkit.scenario.orchestrator",
    "Step": "envkit.scenario.orchestrator",
    "StepContext": "envkit.scenario.orchestrator",
    "RunOutcome": "envkit.evidence.outcome",
    "StepResult": "envkit.evidence.outcome",
    "Failure": "envkit.evidence.outcome",
    "EnvkitError": "envkit.errors",
    "SettingsError": "envkit.errors",
    "StackError": "envkit.errors",
    "ScenarioError": "envkit.errors",
    "EngineError": "envkit.errors",
    "ImageError": "envkit.errors",
    "ServiceNotReady": "envkit.errors",
}

__all__ = [
    "EngineError",
    "Environment",
    "EnvkitError",
    "EnvkitSettings",
    "Failure",
    "Fault",
    "ImageError",
    "RunOutcome",
    "RunningStack",
    "Scenario",
    "ScenarioError",
    "ServiceNotReady",
    "SettingsError",
    "Stack",
    "StackError",
    "StackSpec",
    "Step",
    "StepContext",
    "StepResult",
    "Workspace",
    "__version__",
    "clean",
    "down",
    "load_settings",
    "load_stack",
    "logs",
    "open_stack",
    "orchestrate",
    "replay",
    "resolve_stack",
    "run_isolated",
    "running_stack",
    "status",
    "up",
]


def __getattr__(name: str) -> Any:
    """Load a public name from its module the first time it is asked for."""
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'envkit' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
