"""A pool of engines: runs spread over the local and a second engine, K runs per engine at
most (across processes), an engine lost mid-run fails that run alone, `status` and `clean`
see every engine of the pool.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path

import docker
import pytest

from envkit.engines.engine import Endpoint, current_endpoint
from envkit.engines.images import ImageResult
from envkit.engines.pool import EnginePool
from envkit.evidence.history import recent_runs
from envkit.lifecycle.environment import Environment
from envkit.scenario.runner import run_isolated
from envkit.spec.settings import EnvkitSettings

from .conftest import ExtraEngine, _with_images, sandbox_environ, sandbox_settings
from .engines import Sampler, SecondEngine, engine_processes_left

ROOT = Path(__file__).resolve().parents[2]


def _env(tmp: Path, pool: str, per_engine: int = 1) -> dict[str, str]:
    inherited = {k: v for k, v in os.environ.items() if not k.startswith("ENVKIT_")}
    return {
        **inherited,
        **sandbox_environ(tmp),
        "ENVKIT_CACHE_DIR": str(tmp / "cache"),  # the slots' lock files live under it
        "ENVKIT_ENGINES__POOL": pool,
        "ENVKIT_ENGINES__PER_ENGINE": str(per_engine),
    }


def _invoke(tmp: Path, env: dict[str, str], *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "invoke", *args], cwd=ROOT, env=env, text=True,
        stdout=(tmp / f"{args[0]}-{time.monotonic_ns()}.out").open("w"), stderr=subprocess.STDOUT,
    )  # fmt: skip


def _summaries(artifacts: Path) -> list[dict[str, object]]:
    return [json.loads(p.read_text()) for p in sorted(artifacts.glob("*/summary.json"))]


def _max_overlap(intervals: list[tuple[datetime, datetime]]) -> int:
    """The most intervals open at one moment."""
    edges = sorted([(a, 1) for a, _ in intervals] + [(b, -1) for _, b in intervals])
    most = now = 0
    for _, step in edges:
        now += step
        most = max(most, now)
    return most


def _stamp(value: object) -> datetime:
    return datetime.fromisoformat(str(value).replace("Z", "+00:00"))


class SlotWatch(Sampler):
    """Samples the pool's slots (the lock files) while runs go on: the most busy per engine."""

    interval = 0.1

    def __init__(self, pool: EnginePool) -> None:
        super().__init__()
        self.pool = pool
        self.most: dict[str, int] = {e.url: 0 for e in pool.endpoints}

    def sample(self) -> None:
        """Keep each engine's most busy slots seen."""
        for url, busy in self.pool.busy().items():
            self.most[url] = max(self.most[url], busy)


def test_a_pool_run_of_six_spreads_over_two_engines_within_k_and_records_each_runs_engine(
    second_engine: tuple[SecondEngine, ExtraEngine],
    images: dict[str, ImageResult],
    tmp_path: Path,
) -> None:
    second, _ = second_engine
    local = current_endpoint().url
    env = _env(tmp_path, f"{local},{second.url}", per_engine=1)
    lanes = EnginePool(
        [Endpoint(local, "test"), Endpoint(second.url, "test")], 1, tmp_path / "cache" / "pool"
    )
    with SlotWatch(lanes) as watch:
        child = _invoke(tmp_path, env, "tier-b", "--repeat", "6")
        assert child.wait(timeout=1500) == 0, _outputs(tmp_path)
    runs = _summaries(tmp_path / "artifacts")
    assert len(runs) == 6
    assert all(r["verdict"] == "passed" for r in runs)
    engines = {str(r["engine"]) for r in runs}
    assert engines == {local, second.url}  # both engines were used
    for url in engines:  # K = 1: the runs on one engine never overlapped
        spans = [
            (_stamp(r["started_at"]), _stamp(r["ended_at"])) for r in runs if r["engine"] == url
        ]
        assert _max_overlap(spans) == 1
    print(f"\n[pool] most slots busy per engine, observed: {watch.most}")
    assert watch.most == {local: 1, second.url: 1}  # K = 1 on each, and each was used
    for r in runs:
        where = tmp_path / "artifacts" / str(r["run_id"])
        assert f"on the engine at `{r['engine']}`" in (where / "report.md").read_text()
        manifest = json.loads((where / "manifest.json").read_text())
        assert manifest["engine"]["Endpoint"] == r["engine"]
    settings = sandbox_settings(tmp_path)
    recorded = {h.run_id: h.engine for h in recent_runs(settings)}
    assert recorded == {str(r["run_id"]): str(r["engine"]) for r in runs}

    status = subprocess.run(
        [sys.executable, "-m", "invoke", "status"], cwd=ROOT, env=env, text=True,
        capture_output=True, timeout=120, check=False,
    )  # fmt: skip
    assert status.returncode == 0, status.stdout + status.stderr
    assert local in status.stdout
    assert second.url in status.stdout
    assert "no: " not in status.stdout  # both answer
    clean = subprocess.run(
        [sys.executable, "-m", "invoke", "clean", "--dry-run"], cwd=ROOT, env=env, text=True,
        capture_output=True, timeout=120, check=False,
    )  # fmt: skip
    assert clean.returncode == 0, clean.stdout + clean.stderr
    for url in (local, second.url):
        assert f"{url}: would remove " in clean.stdout


def _outputs(tmp: Path) -> str:
    return "\n".join(p.read_text()[-3000:] for p in sorted(tmp.glob("*.out")))


def test_two_processes_with_k_1_on_a_one_engine_pool_never_overlap(
    images: dict[str, ImageResult], tmp_path: Path
) -> None:
    env = _env(tmp_path, current_endpoint().url, per_engine=1)
    children = [_invoke(tmp_path, env, "tier-b") for _ in range(2)]
    for child in children:
        assert child.wait(timeout=900) == 0, _outputs(tmp_path)
    runs = _summaries(tmp_path / "artifacts")
    assert len(runs) == 2
    spans = [(_stamp(r["started_at"]), _stamp(r["ended_at"])) for r in runs]
    assert _max_overlap(spans) == 1, spans


@pytest.fixture
def doomed_engine(settings: EnvkitSettings, engine: docker.DockerClient) -> Iterator[SecondEngine]:
    """A second engine of this test's own (the test kills its dockerd), with envkit's images."""
    second = SecondEngine()
    try:
        second.start(settings.timeouts.engine_start_seconds)
        extra = _with_images(settings, second.url, second.start_seconds or 0.0)
        extra.client.close()
        yield second
    finally:
        second.stop()
    # Its dockerd was killed mid-run, so nothing stopped the run's containers: stop() must
    # still end every process of them (they would outlive the namespace otherwise).
    assert engine_processes_left(second) == []


def test_an_engine_lost_mid_run_fails_that_run_alone_with_engine_lost(
    doomed_engine: SecondEngine, images: dict[str, ImageResult], tmp_path: Path
) -> None:
    settings = sandbox_settings(tmp_path)
    killed = threading.Event()

    def kill_dockerd(env: Environment) -> None:
        assert doomed_engine.process is not None
        doomed_engine.process.send_signal(signal.SIGKILL)
        doomed_engine.process.wait(timeout=30)
        killed.set()

    lost = Endpoint(doomed_engine.url, "test")
    with ThreadPoolExecutor(max_workers=2) as pool:
        on_lost = pool.submit(run_isolated, settings, endpoint=lost, after_start=kill_dockerd)
        on_local = pool.submit(run_isolated, settings, endpoint=current_endpoint())
        began = time.monotonic()
        (outcome, where) = on_lost.result(timeout=900)
        lost_took = time.monotonic() - began
        (fine, _) = on_local.result(timeout=900)
    assert killed.is_set()
    assert fine.verdict == "passed", fine.failure
    assert fine.engine == current_endpoint().url
    assert outcome.verdict == "failed"
    assert outcome.failure is not None
    assert outcome.failure.failure_class == "engine-lost"
    assert f"The engine at {doomed_engine.url} stopped answering" in outcome.failure.message
    assert outcome.engine == doomed_engine.url
    summary = json.loads((where / "summary.json").read_text())
    assert summary["failure"]["failure_class"] == "engine-lost"
    assert "engine-lost" in (where / "report.md").read_text()
    print(f"\n[pool] engine-lost run ended {lost_took:.1f} s after it began; quotes: "
          f"{outcome.failure.quotes[:3]}")  # fmt: skip
