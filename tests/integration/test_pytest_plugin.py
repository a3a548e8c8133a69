"""The pytest plugin on a real engine, as a user's suite loads it (pytester, in a subprocess).

The suites under test run `tests/data/plugin-stack` (two of envkit's mocks on the services
image); their artifacts, history and cache go to tmp directories.
"""

from __future__ import annotations

import json
from pathlib import Path

import docker
import pytest

from envkit.engines.images import ImageResult

pytest_plugins = ["pytester"]
pytestmark = pytest.mark.usefixtures("modules_imported_before_pytester")

ROOT = Path(__file__).resolve().parents[2]
STACK = ROOT / "tests" / "data" / "plugin-stack" / "stack.toml"
SECRET = "plugin-test-token-5c1e7a90"

# Each test of the suites below records what it saw: worker, run id, the containers labelled
# with the run, the run's owner pid, the worker's parent, the ports the containers publish,
# and helix's URL with the address of its container.
RECORDER = """
import json, os, uuid
import docker

def record(running):
    client = docker.from_env()
    found = client.containers.list(filters={"label": "envkit.run=" + running.run_id})
    seen = {
        "worker": os.environ.get("PYTEST_XDIST_WORKER", "main"),
        "run_id": running.run_id,
        "containers": sorted(c.name for c in found),
        "owner_pid": {c.labels["envkit.owner_pid"] for c in found}.pop(),
        "parent_pid": str(os.getppid()),
        "pid": str(os.getpid()),
        "published": sorted(
            b["HostPort"] for c in found for v in c.attrs["NetworkSettings"]["Ports"].values()
            for b in v or []
        ),
        "helix_url": running.url("helix"),
        "helix_address": [
            n["IPAddress"] for c in found if c.labels["envkit.service"] == "helix"
            for n in c.attrs["NetworkSettings"]["Networks"].values()
        ],
    }
    out = os.path.join(os.environ["PLUGIN_TEST_OUT"], uuid.uuid4().hex + ".json")
    with open(out, "w") as f:
        json.dump(seen, f)
"""

SUITE = """
import httpx
from recorder import record

def test_helix_answers(envkit_stack):
    record(envkit_stack)
    assert httpx.get(envkit_stack.url("helix") + "/health", timeout=10).status_code == 200

def test_eventsub_answers(envkit_stack):
    record(envkit_stack)
    assert httpx.get(envkit_stack.url("eventsub") + "/health", timeout=10).status_code == 200

def test_the_settings_are_the_stacks(envkit_stack):
    record(envkit_stack)
    assert envkit_stack.settings.plugin.helix_token.get_secret_value().startswith("plugin-")
    assert sorted(envkit_stack.endpoints) == ["eventsub", "helix"]
"""


@pytest.fixture
def suite_env(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, images: dict[str, ImageResult]
) -> Path:
    """The environment of the suite under test; returns where its tests record what they saw."""
    ref = images["services"].ref
    out = tmp_path / "seen"
    out.mkdir()
    monkeypatch.setenv("ENVKIT_IMAGES__OVERRIDE", f"helix={ref},eventsub={ref}")
    monkeypatch.setenv("ENVKIT_ARTIFACT_ROOT", str(tmp_path / "artifacts"))
    monkeypatch.setenv("ENVKIT_HISTORY_PATH", str(tmp_path / "history.sqlite"))
    monkeypatch.setenv("ENVKIT_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("ENVKIT_PLUGIN__HELIX_TOKEN", SECRET)
    monkeypatch.setenv("PLUGIN_TEST_OUT", str(out))
    return out


def seen_by_tests(out: Path) -> list[dict[str, str | list[str]]]:
    return [json.loads(p.read_text()) for p in sorted(out.glob("*.json"))]


def labelled(engine: docker.DockerClient, run_id: str) -> list[str]:
    found = engine.containers.list(all=True, filters={"label": f"envkit.run={run_id}"})
    return [c.name for c in found]


def test_a_suite_using_the_fixture_passes_on_one_stack_removed_afterwards(
    pytester: pytest.Pytester, suite_env: Path, engine: docker.DockerClient
) -> None:
    pytester.makepyfile(recorder=RECORDER, test_suite=SUITE)
    result = pytester.runpytest_subprocess("--envkit-stack", str(STACK))
    result.assert_outcomes(passed=3)
    seen = seen_by_tests(suite_env)
    assert len(seen) == 3
    assert len({s["run_id"] for s in seen}) == 1  # the session scope: one stack for all
    assert all(len(s["containers"]) == 2 for s in seen)
    assert {s["owner_pid"] for s in seen} == {seen[0]["pid"]}  # no xdist: the session's process
    # an isolated stack on this machine's engine: reached at its containers' addresses
    assert all(s["published"] == [] for s in seen), seen
    assert all(s["helix_url"] == f"http://{s['helix_address'][0]}:8080" for s in seen), seen
    assert labelled(engine, str(seen[0]["run_id"])) == []


def test_module_scope_starts_a_stack_per_module(
    pytester: pytest.Pytester, suite_env: Path, engine: docker.DockerClient
) -> None:
    pytester.makepyfile(recorder=RECORDER, test_one=SUITE, test_two=SUITE)
    result = pytester.runpytest_subprocess("--envkit-stack", str(STACK), "--envkit-scope=module")
    result.assert_outcomes(passed=6)
    run_ids = {str(s["run_id"]) for s in seen_by_tests(suite_env)}
    assert len(run_ids) == 2
    assert all(labelled(engine, run_id) == [] for run_id in run_ids)


def test_a_failed_tests_report_has_every_services_log_tail_and_no_secret(
    pytester: pytest.Pytester, suite_env: Path, tmp_path: Path
) -> None:
    pytester.makepyfile(
        test_fails="""
import httpx

def test_passes(envkit_stack):
    assert envkit_stack.url("helix").startswith("http://")

def test_fails(envkit_stack):
    # The mock logs the path it was asked for: the secret is in the container's raw log.
    token = envkit_stack.settings.plugin.helix_token.get_secret_value()
    httpx.get(envkit_stack.url("helix") + "/leak-" + token, timeout=10)
    assert False, "deliberately"
"""
    )
    result = pytester.runpytest_subprocess("--envkit-stack", str(STACK))
    result.assert_outcomes(passed=1, failed=1)
    out = result.stdout.str()
    assert "envkit: helix log, last 40 lines" in out
    assert "envkit: eventsub log, last 40 lines" in out
    assert "mock-helix GET /leak-*** -> 404" in out
    assert "mock-eventsub delivers to http://helix:8080" in out
    artifacts = tmp_path / "artifacts"
    assert f"artifacts in {artifacts}/plugin-" in out
    assert out.count("envkit: helix log") == 1  # only the failed test's report has them
    assert SECRET not in out + result.stderr.str()
    for path in artifacts.rglob("*"):
        if path.is_file():
            assert SECRET not in path.read_text(errors="replace"), path


def test_reuse_up_attaches_to_the_up_stack_and_leaves_it_running(
    pytester: pytest.Pytester, suite_env: Path, engine: docker.DockerClient
) -> None:
    import envkit

    state = envkit.up(envkit.open_stack(STACK).settings, STACK)
    try:
        pytester.makepyfile(recorder=RECORDER, test_suite=SUITE)
        result = pytester.runpytest_subprocess("--envkit-stack", str(STACK), "--envkit-reuse-up")
        result.assert_outcomes(passed=3)
        assert {s["run_id"] for s in seen_by_tests(suite_env)} == {state.run_id}
        assert len(labelled(engine, state.run_id)) == 2  # still up
    finally:
        envkit.down(envkit.open_stack(STACK).settings)
    assert labelled(engine, state.run_id) == []


def test_under_xdist_two_workers_share_exactly_one_stack(
    pytester: pytest.Pytester,
    suite_env: Path,
    engine: docker.DockerClient,
) -> None:
    pytester.makepyfile(recorder=RECORDER, test_one=SUITE, test_two=SUITE)
    result = pytester.runpytest_subprocess("--envkit-stack", str(STACK), "-n", "2")
    result.assert_outcomes(passed=6)
    seen = seen_by_tests(suite_env)
    assert len(seen) == 6
    assert {s["worker"] for s in seen} == {"gw0", "gw1"}  # both workers used the fixture
    run_ids = {str(s["run_id"]) for s in seen}
    assert len(run_ids) == 1  # exactly one stack was started
    assert all(len(s["containers"]) == 2 for s in seen)
    # The run's owner is the controller (each worker's parent), not the worker that started it.
    assert {s["owner_pid"] for s in seen} == {s["parent_pid"] for s in seen}
    assert len({s["pid"] for s in seen}) == 2
    # kept for the session, still an isolated stack on this machine: nothing published
    assert all(s["published"] == [] for s in seen), seen
    assert all(s["helix_url"] == f"http://{s['helix_address'][0]}:8080" for s in seen), seen
    (run_id,) = run_ids
    assert labelled(engine, run_id) == []  # the last one out removed it
    assert engine.networks.list(filters={"label": f"envkit.run={run_id}"}) == []


def test_a_stack_that_cannot_start_errors_every_worker_with_the_reason_once_started(
    pytester: pytest.Pytester,
    suite_env: Path,
    monkeypatch: pytest.MonkeyPatch,
    images: dict[str, ImageResult],
    engine: docker.DockerClient,
    tmp_path: Path,
) -> None:
    # helix from a build context that cannot build (no shell in an empty image; no registry).
    broken = tmp_path / "broken-helix"
    broken.mkdir()
    (broken / "Dockerfile").write_text("FROM scratch\nRUN false\n")
    monkeypatch.setenv(
        "ENVKIT_IMAGES__OVERRIDE", f"helix={broken},eventsub={images['services'].ref}"
    )
    pytester.makepyfile(recorder=RECORDER, test_one=SUITE, test_two=SUITE)
    result = pytester.runpytest_subprocess("--envkit-stack", str(STACK), "-n", "2")
    result.assert_outcomes(errors=6)
    out = result.stdout.str()
    assert f"BuildError: The image of helix could not be built from the context {broken}" in out
    assert "The session's stack did not start on another xdist worker" in out
    assert seen_by_tests(suite_env) == []
    assert SECRET not in out
    leftover = engine.containers.list(all=True, filters={"label": "envkit.stack=plugin"})
    assert [c.name for c in leftover if c.labels.get("envkit.mode") == "isolated"] == []
