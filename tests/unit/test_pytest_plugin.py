"""The pytest plugin without Docker: it loads from its entry point, checks its options, and
stays inert (no Docker contact, no Docker SDK) in a session that never asks for the stack."""

from __future__ import annotations

import importlib.metadata
import json
from pathlib import Path

import pytest

pytest_plugins = ["pytester"]
pytestmark = pytest.mark.usefixtures("modules_imported_before_pytester")

ROOT = Path(__file__).resolve().parents[2]
STACK = ROOT / "tests" / "data" / "plugin-stack" / "stack.toml"

# Records, after the whole session, which of the heavy modules were imported.
MODULES_PROBE = """
import json, os, sys

def pytest_unconfigure(config):
    heavy = {"docker", "testcontainers", "filelock"}
    loaded = sorted({m.split(".")[0] for m in sys.modules} & heavy)
    name = os.environ.get("PYTEST_XDIST_WORKER", "main")
    with open(os.path.join(os.environ["PLUGIN_TEST_OUT"], name + ".json"), "w") as f:
        json.dump(loaded, f)
"""


def test_the_entry_point_names_the_plugin_module() -> None:
    points = importlib.metadata.entry_points(group="pytest11")
    assert [p.value for p in points if p.name == "envkit"] == ["envkit.pytest_plugin"]


def test_the_options_are_in_pytests_help(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest_subprocess("--help")
    out = result.stdout.str()
    for option in ("--envkit-stack", "--envkit-reuse-up", "--envkit-scope", "--envkit-env-file"):
        assert option in out
    for ini in ("envkit_stack", "envkit_reuse_up", "envkit_scope", "envkit_env_file"):
        assert ini in out


def test_a_missing_stack_file_is_a_usage_error_naming_it(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("def test_x(): pass")
    result = pytester.runpytest_subprocess("--envkit-stack", "stacks/nope.toml")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    missing = pytester.path / "stacks" / "nope.toml"
    assert f"--envkit-stack {missing}: no such stack file" in result.stderr.str()


def test_a_missing_stack_file_in_the_ini_is_taken_from_the_rootdir(
    pytester: pytest.Pytester,
) -> None:
    pytester.makeini("[pytest]\nenvkit_stack = compose/missing.toml\n")
    pytester.makepyfile("def test_x(): pass")
    result = pytester.runpytest_subprocess()
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert str(pytester.path / "compose" / "missing.toml") in result.stderr.str()


def test_an_unknown_scope_is_a_usage_error_listing_the_scopes(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("def test_x(): pass")
    result = pytester.runpytest_subprocess("--envkit-scope", "forever")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert (
        "--envkit-scope 'forever' is not a pytest fixture scope; use one of: session, package, "
        "module, class, function." in result.stderr.str()
    )


def test_a_missing_env_file_is_a_usage_error(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("def test_x(): pass")
    result = pytester.runpytest_subprocess("--envkit-env-file", "prod.env")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert f"--envkit-env-file {pytester.path / 'prod.env'}: no such file" in result.stderr.str()


def test_a_bad_log_lines_setting_is_a_usage_error(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\nenvkit_log_lines = many\n")
    pytester.makepyfile("def test_x(): pass")
    result = pytester.runpytest_subprocess()
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert "envkit_log_lines = 'many' is not a positive whole number" in result.stderr.str()


@pytest.mark.parametrize("workers", [[], ["-n", "2"]], ids=["one-process", "xdist"])
def test_a_session_without_the_fixture_never_touches_docker(
    pytester: pytest.Pytester,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    workers: list[str],
) -> None:
    # An engine address that cannot answer: any contact would fail the session.
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path / 'no-engine.sock'}")
    monkeypatch.setenv("PLUGIN_TEST_OUT", str(tmp_path))
    pytester.makeconftest(MODULES_PROBE)
    pytester.makepyfile("def test_a(): pass\ndef test_b(): pass\ndef test_c(): pass\n")
    result = pytester.runpytest_subprocess("--envkit-stack", str(STACK), *workers)
    result.assert_outcomes(passed=3)
    seen = {p.stem: json.loads(p.read_text()) for p in tmp_path.glob("*.json")}
    assert set(seen) == ({"main"} if not workers else {"main", "gw0", "gw1"})
    assert all(loaded == [] for loaded in seen.values()), seen
    assert not list(pytester.path.rglob("envkit-stack.*"))
