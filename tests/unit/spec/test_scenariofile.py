"""Scenario files: every refusal (message asserted), defaults, `--only`, the stack's `scenario`."""

from __future__ import annotations

import os
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

import envkit.scenario.runner
from envkit.errors import OptionError, ScenarioError, ScenarioLoadError, StackError
from envkit.scenario.commandstep import CommandStep
from envkit.spec.scenariofile import load_scenario_file
from envkit.spec.settings import EnvkitSettings, load_settings
from envkit.spec.stack import StackSpec, load_stack

ROOT = Path(__file__).resolve().parents[3]
PY = sys.executable
STACK = """\
[stack]
name = "demo"

[services.api]
image = "services"
port = 8080
log = "api.log"

[services.mock-helix]
image = "services"
port = 8080
log = "helix.log"

[services.worker]
image = "services"
log = "worker.log"
"""


@pytest.fixture
def settings() -> EnvkitSettings:
    # Built for the MGM stack: the scenarios below refer to its ${mgm.api_key}.
    mgm = ROOT / "compose" / "tier-b.toml"
    return load_settings(None, {"ENVKIT_TIMEOUTS__COMMAND_STEP_SECONDS": "42"}, stack=mgm)


@pytest.fixture
def stack(tmp_path: Path) -> StackSpec:
    path = tmp_path / "stack.toml"
    path.write_text(STACK)
    (tmp_path / "ci").mkdir()
    return load_stack(path)


def write(stack: StackSpec, text: str, name: str = "scenario.toml") -> Path:
    path = stack.source.parent / name
    path.write_text(textwrap.dedent(text))
    return path


def load(stack: StackSpec, settings: EnvkitSettings, text: str, **kwargs: Any) -> list[Any]:
    scenario = load_scenario_file(write(stack, text), stack, settings, **kwargs)
    return scenario.steps


def refused(stack: StackSpec, settings: EnvkitSettings, text: str, **kwargs: Any) -> list[str]:
    with pytest.raises(ScenarioError) as info:
        load(stack, settings, text, **kwargs)
    count = len(info.value.problems)
    assert str(info.value).startswith(f"{count} problem{'s' if count > 1 else ''} in the scenario:")
    return info.value.problems


def only(problems: list[str]) -> str:
    assert len(problems) == 1, problems
    return problems[0]


def step(name: str = "check", command: str = f'["{PY}", "-V"]', extra: str = "") -> str:
    return f'[[steps]]\nname = "{name}"\ncommand = {command}\n{extra}\n'


# -- a valid file -------------------------------------------------------------------------------


def test_a_valid_file_becomes_command_steps_with_defaults(
    stack: StackSpec, settings: EnvkitSettings
) -> None:
    steps = load(
        stack,
        settings,
        step("first")
        + step("second", extra='tier = "tier-b"\ncwd = "ci"\ntimeout = 5\nlog_of = "api"'),
    )
    assert [(s.name, s.tier, s.log_of) for s in steps] == [
        ("first", "main", ""),
        ("second", "tier-b", "api"),
    ]
    first, second = (s.run.__self__ for s in steps)
    assert isinstance(first, CommandStep)
    assert isinstance(second, CommandStep)
    assert first.timeout == 42  # the setting timeouts.command_step_seconds
    assert first.cwd == stack.source.parent.resolve()
    assert first.executable == PY
    assert second.timeout == 5
    assert second.cwd == (stack.source.parent / "ci").resolve()


def test_the_mgm_example_is_a_valid_scenario_file_for_the_mgm_stack(
    settings: EnvkitSettings,
) -> None:
    mgm = load_stack(ROOT / "compose" / "tier-b.toml")
    scenario = load_scenario_file(ROOT / "compose" / "mgm-smoke.toml", mgm, settings)
    assert [s.tier for s in scenario.steps] == ["smoke", "smoke"]
    assert scenario.classify is not None


# -- the file as a whole ------------------------------------------------------------------------


def test_a_missing_file_is_named_with_the_files_next_to_it(
    stack: StackSpec, settings: EnvkitSettings
) -> None:
    with pytest.raises(ScenarioError) as info:
        load_scenario_file(stack.source.parent / "nope.toml", stack, settings)
    assert info.value.problems == [
        f"{stack.source.parent / 'nope.toml'}: no such scenario file; scenario files there: "
        "stack.toml"
    ]


def test_invalid_toml_names_the_line(stack: StackSpec, settings: EnvkitSettings) -> None:
    message = only(refused(stack, settings, "[[steps]\nname = 1\n"))
    assert "is not valid TOML" in message
    assert "line 1" in message


def test_an_unknown_top_level_key_gets_a_suggestion(
    stack: StackSpec, settings: EnvkitSettings
) -> None:
    problems = refused(stack, settings, '[[step]]\nname = "x"\n')
    assert problems[0] == (
        f"{stack.source.parent / 'scenario.toml'}: unknown top-level key 'step'; did you mean "
        "'steps'? a scenario file holds only [[steps]] tables"
    )
    assert problems[1].endswith(
        'no steps defined; add at least one [[steps]] table with name = "..." and command = '
        '["python3", "ci/check.py", "--url", "${services.api.host_url}"]'
    )


def test_steps_that_are_not_tables_are_refused(stack: StackSpec, settings: EnvkitSettings) -> None:
    message = only(refused(stack, settings, 'steps = ["python3 x.py"]\n'))
    assert message.endswith(
        "scenario.toml: step #1: must be a table; write each step as a [[steps]] table"
    )


# -- one step's own fields ----------------------------------------------------------------------


def test_a_step_without_name_or_command_is_named_by_its_position(
    stack: StackSpec, settings: EnvkitSettings
) -> None:
    problems = refused(stack, settings, step("ok") + '[[steps]]\ntier = "x"\n')
    assert [p.split("scenario.toml: ", 1)[1] for p in problems] == [
        "step #2, field 'name': is required; add name = \"smoke\"",
        "step #2, field 'command': is required; add command = "
        '["python3", "ci/check.py", "--url", "${services.api.host_url}"]',
    ]


def test_an_unknown_key_gets_a_suggestion(stack: StackSpec, settings: EnvkitSettings) -> None:
    message = only(refused(stack, settings, step(extra="timout = 3")))
    assert message.endswith(
        "step 'check', field 'timout': unknown key; did you mean 'timeout'? allowed keys here: "
        "command, cwd, env, log_of, name, tier, timeout"
    )


@pytest.mark.parametrize(
    ("extra", "name", "expected"),
    [
        ("", "Tier B!", "field 'name': 'Tier B!' must be lowercase letters, digits and '-', "
         'starting with a letter or digit; e.g. "tier-b"'),
        ('tier = "Tier_A"', "x", "field 'tier': 'Tier_A' must be lowercase letters, digits and "
         "'-', starting with a letter or digit; e.g. \"tier-a\""),
        ("timeout = 0", "x", "field 'timeout': 0.0 must be a positive number of seconds, e.g. "
         "timeout = 300"),
        ("timeout = \"soon\"", "x", "field 'timeout': input should be a valid number, unable to "
         "parse string as a number, not 'soon'"),
        ('env = { "1BAD" = "x" }', "x", "field 'env': '1BAD' is not a valid variable name; use "
         "letters, digits and '_', not starting with a digit (e.g. BACKEND_URL)"),
    ],
)  # fmt: skip
def test_bad_field_values_are_refused_with_the_fix(
    stack: StackSpec, settings: EnvkitSettings, extra: str, name: str, expected: str
) -> None:
    message = only(refused(stack, settings, step(name, extra=extra)))
    assert message.endswith(expected), message


def test_a_command_given_as_one_string_is_refused(
    stack: StackSpec, settings: EnvkitSettings
) -> None:
    message = only(refused(stack, settings, step(command='"python3 ci/run.py --fast"')))
    assert message.endswith(
        "step 'check', field 'command': is one string, but envkit runs no shell: give the program "
        'and each argument as a list, e.g. command = ["python3", "ci/run.py", "--fast"] (for '
        'shell syntax, command = ["sh", "-c", "..."])'
    )


def test_an_empty_command_is_refused(stack: StackSpec, settings: EnvkitSettings) -> None:
    message = only(refused(stack, settings, step(command="[]")))
    assert message.endswith(
        "field 'command': names no program; give the program first, e.g. command = "
        '["python3", "ci/check.py", "--url", "${services.api.host_url}"]'
    )


# -- checks across the file, the stack and the settings -----------------------------------------


def test_two_steps_with_one_name_are_refused(stack: StackSpec, settings: EnvkitSettings) -> None:
    message = only(refused(stack, settings, step("same") + step("same")))
    assert message.endswith(
        "step 'same', field 'name': 'same' names two steps; give each step its own name"
    )


def test_log_of_must_name_a_service_of_the_stack(
    stack: StackSpec, settings: EnvkitSettings
) -> None:
    message = only(refused(stack, settings, step(extra='log_of = "apii"')))
    assert message.endswith(
        f"step 'check', field 'log_of': unknown service 'apii'; did you mean 'api'? the stack "
        f"({stack.source}) has: api, mock-helix, worker"
    )


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("${mgm.api_kee}", "'${mgm.api_kee}' names no setting; did you mean 'mgm.api_key'? "
         "`./inv config` lists the settings"),
        ("${services.db.host_url}", "'${services.db.host_url}' names unknown service 'db'; "
         "known: api, mock-helix, worker"),
        ("${services.api.hosturl}", "'${services.api.hosturl}' must have the form "
         "${services.<name>.host/port/url/host_url}"),
        ("${services.worker.host_url}", "'${services.worker.host_url}' needs a port, but "
         "service 'worker' sets no port"),
        ("${Mgm.Api_Key}", "'${Mgm.Api_Key}' holds a malformed reference; write "
         "${section.field} in lowercase, e.g. ${postgres.user} or ${services.api.url}"),
    ],
)  # fmt: skip
def test_references_are_checked_in_arguments_and_env(
    stack: StackSpec, settings: EnvkitSettings, value: str, expected: str
) -> None:
    text = step(command=f'["{PY}", "{value}"]', extra=f'env = {{ X = "{value}" }}')
    problems = refused(stack, settings, text)
    assert [p.split("step 'check', ", 1)[1] for p in problems] == [
        f"field 'command[1]': {expected}",
        f"field 'env.X': {expected}",
    ]


def test_known_references_are_accepted(stack: StackSpec, settings: EnvkitSettings) -> None:
    command = (
        f'["{PY}", "${{services.api.host_url}}", "${{services.mock-helix.url}}", '
        '"${services.worker.host}", "${mgm.api_key}"]'
    )
    [loaded] = load(stack, settings, step(command=command))
    assert loaded.name == "check"


def test_a_missing_cwd_is_refused(stack: StackSpec, settings: EnvkitSettings) -> None:
    message = only(refused(stack, settings, step(extra='cwd = "nowhere"')))
    base = stack.source.parent.resolve()
    assert message.endswith(
        f"step 'check', field 'cwd': directory {base / 'nowhere'} does not exist (cwd is "
        f"relative to the scenario file's directory, {base}); create it or fix the path"
    )


def test_a_program_path_that_does_not_exist_is_refused(
    stack: StackSpec, settings: EnvkitSettings
) -> None:
    message = only(refused(stack, settings, step(command='["./ci/run.sh"]', extra='cwd = "."')))
    where = stack.source.parent.resolve() / "ci" / "run.sh"
    assert message.endswith(
        f"step 'check', field 'command[0]': program './ci/run.sh' does not exist (looked for "
        f"{where}; a path is relative to the step's cwd); fix the path or create the file"
    )


def test_a_program_that_is_not_executable_is_refused(
    stack: StackSpec, settings: EnvkitSettings
) -> None:
    script = stack.source.parent / "ci" / "run.py"
    script.write_text("print('hi')\n")
    script.chmod(0o644)
    message = only(refused(stack, settings, step(command='["run.py"]', extra='cwd = "ci"')))
    assert "program 'run.py' is not on PATH" in message
    assert message.endswith(f'; {script.resolve()} exists: write "./run.py" to run it')
    message = only(refused(stack, settings, step(command='["./run.py"]', extra='cwd = "ci"')))
    assert message.endswith(
        f"field 'command[0]': program './run.py' ({script.resolve()}) is not an executable "
        "file; make it executable (chmod +x) or run it through its interpreter, e.g. "
        'command = ["python3", "./run.py", ...]'
    )
    script.chmod(0o755)
    [loaded] = load(stack, settings, step(command='["./run.py"]', extra='cwd = "ci"'))
    assert loaded.run.__self__.executable == str(script.resolve())


def test_a_bare_program_is_looked_up_on_path(
    stack: StackSpec, settings: EnvkitSettings, tmp_path: Path
) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    tool = bin_dir / "ci-tool"
    tool.write_text("#!/bin/sh\nexit 0\n")
    tool.chmod(0o755)
    text = step(command='["ci-tool"]')
    message = only(refused(stack, settings, text, environ={"PATH": "/nonexistent"}))
    assert message.endswith(
        "step 'check', field 'command[0]': program 'ci-tool' is not on PATH; install it or "
        'give its path (e.g. "./bin/ci-tool", relative to the step\'s cwd)'
    )
    [loaded] = load(stack, settings, text, environ={"PATH": str(bin_dir)})
    assert loaded.run.__self__.executable == str(tool)
    # The step's own PATH is the one the command will run with.
    own_path = step(command='["ci-tool"]', extra=f'env = {{ PATH = "{bin_dir}" }}')
    [loaded] = load(stack, settings, own_path, environ={"PATH": "/nonexistent"})
    assert loaded.run.__self__.executable == str(tool)


def test_the_program_cannot_come_from_the_running_stack(
    stack: StackSpec, settings: EnvkitSettings
) -> None:
    message = only(refused(stack, settings, step(command='["${services.api.host_url}/run"]')))
    assert message.endswith(
        "field 'command[0]': the program cannot depend on the running stack; name it literally "
        "and pass ${services.<name>.host_url} as an argument"
    )


def test_every_problem_is_reported_at_once(stack: StackSpec, settings: EnvkitSettings) -> None:
    text = (
        step("a", command='["no-such-program-3f9a"]')
        + step("b", extra='cwd = "missing"\nlog_of = "nope"')
        + step("a", extra="timeout = -1")
        + "[extra]\nx = 1\n"
    )
    problems = refused(stack, settings, text, environ={"PATH": "/nonexistent"})
    assert len(problems) == 5
    assert any("unknown top-level key 'extra'" in p for p in problems)
    assert any(
        "step 'a', field 'command[0]': program 'no-such-program-3f9a'" in p for p in problems
    )
    assert any("step 'b', field 'log_of': unknown service 'nope'" in p for p in problems)
    assert any("step 'b', field 'cwd': directory" in p for p in problems)
    assert any("step 'a', field 'timeout': -1.0 must be a positive" in p for p in problems)


# -- the stack file's `scenario` and the runner's choice ----------------------------------------


@pytest.mark.parametrize("value", ["envkit.scenarios.mgm", "e2e/scenario.toml", "s.toml"])
def test_the_stack_names_a_module_or_a_scenario_file(tmp_path: Path, value: str) -> None:
    path = tmp_path / "stack.toml"
    path.write_text(STACK.replace('name = "demo"', f'name = "demo"\nscenario = "{value}"'))
    assert load_stack(path).scenario == value


def test_a_scenario_that_is_neither_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "stack.toml"
    path.write_text(STACK.replace('name = "demo"', 'name = "demo"\nscenario = "ci/run.sh"'))
    with pytest.raises(StackError) as info:
        load_stack(path)
    assert info.value.problems == [
        f"{path}: [stack], field 'scenario': 'ci/run.sh' is neither a dotted Python module nor "
        'a scenario file; write e.g. scenario = "pkg.scenarios.mine" or scenario = '
        '"e2e/scenario.toml" (a path relative to the stack file, ending in .toml)'
    ]


@pytest.fixture
def no_engine(monkeypatch: pytest.MonkeyPatch) -> None:
    """A test of refusals must fail, not start containers, if the refusal does not come."""

    def refuse(*args: object) -> None:
        raise AssertionError("the engine was contacted")

    monkeypatch.setattr(envkit.scenario.runner, "connect", refuse)


def test_the_stack_s_scenario_file_is_found_next_to_the_stack_file(
    stack: StackSpec, settings: EnvkitSettings, no_engine: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    write(stack, step("x", command='["no-such-program-3f9a"]'), "e2e.toml")
    text = stack.source.read_text().replace('name = "demo"', 'name = "demo"\nscenario = "e2e.toml"')
    stack.source.write_text(text)
    monkeypatch.chdir("/")  # relative to the stack file, not to where envkit runs
    with pytest.raises(ScenarioError) as info:
        envkit.scenario.runner.run_isolated(settings, stack.source)
    assert "e2e.toml: step 'x', field 'command[0]': program 'no-such-program-3f9a'" in str(
        info.value
    )


def test_only_must_name_a_tier_of_the_scenario(
    stack: StackSpec, settings: EnvkitSettings, no_engine: None
) -> None:
    path = write(stack, step("a", extra='tier = "smoke"') + step("b"))
    with pytest.raises(OptionError) as info:
        envkit.scenario.runner.run_isolated(
            settings, stack.source, only="tier-a", scenario_ref=str(path)
        )
    assert str(info.value) == (
        f"--only 'tier-a' is not a tier of the scenario ({path}); use one of: smoke, main."
    )


def test_a_stack_without_scenario_says_how_to_name_one(
    stack: StackSpec, settings: EnvkitSettings, no_engine: None
) -> None:
    with pytest.raises(ScenarioLoadError) as info:
        envkit.scenario.runner.run_isolated(settings, stack.source)
    assert str(info.value) == (
        f'{stack.source} names no scenario; add `scenario = "pkg.module"` or '
        '`scenario = "scenario.toml"` to its [stack] table, or pass --scenario.'
    )


def test_the_scenario_option_is_recorded_relative_to_the_project() -> None:
    from envkit.scenario.runner import scenario_option

    workspace = load_settings(None, {}, root=ROOT).workspace
    mgm_smoke = str(ROOT / "compose" / "mgm-smoke.toml")
    assert scenario_option(mgm_smoke, workspace) == "compose/mgm-smoke.toml"
    assert scenario_option("envkit.scenarios.mgm", workspace) == "envkit.scenarios.mgm"
    assert scenario_option(None, workspace) is None
    outside = Path(os.sep, "srv", "ci", "e2e.toml")
    assert scenario_option(str(outside), workspace) == str(outside)


def test_a_python_only_runner_names_a_scenario_file_as_such(settings: EnvkitSettings) -> None:
    from envkit.scenario.orchestrator import load_scenario

    with pytest.raises(ScenarioLoadError) as info:
        load_scenario("e2e.toml", settings)
    assert str(info.value) == (
        "'e2e.toml' is a scenario file, not a module; `./inv tier-b` and `./inv orchestrate` "
        "run scenario files (this command runs Python scenarios only)."
    )
