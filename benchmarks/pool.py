"""Benchmark an engine pool: N runs on one engine against the same N runs over two engines.

    .venv/bin/python benchmarks/pool.py [--runs N]      # as root: it starts a second engine

The second engine is the integration tests' own (`tests/integration/engines.py`: a dockerd
in a network namespace of its own, over tcp), started here and removed at the end, with
envkit's images produced on it first (not timed). K = 1 run per engine at once, so one
engine runs the N runs one after another and two engines run two at a time.

Both engines share this machine's CPUs, so the two-engine figure is capped by them. What
the runs cost in CPU is measured per run, not from the whole machine (other work shares
it): every container of this process's runs is sampled (cgroup v1 `cpuacct.usage`, every
0.25 s until it is gone) and this process's own CPU (envkit, probes, scenario) is added; the
engine daemons' own CPU is left out (the local one serves other users too). With C CPU
seconds for the N runs and P cores, no schedule on this machine is faster than C / P. On
separate machines
each engine has its own cores, and with K = 1 an engine's share of the runs takes about
(runs placed there) x (one run's wall time alone): the projection is
T_one / max over engines of (n_i x t_i), t_i measured alone on engine i; on this machine
an idle run of the batch needs the longer of that and C / P.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import resource
import sys
import time
from pathlib import Path

import docker

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from envkit.engines.engine import Endpoint, current_endpoint, ensure_engine  # noqa: E402
from envkit.engines.pool import EnginePool  # noqa: E402
from envkit.scenario.batch import spread  # noqa: E402
from envkit.scenario.runner import run_isolated  # noqa: E402
from envkit.spec.settings import EnvkitSettings, load_settings  # noqa: E402
from tests.integration.conftest import _with_images  # noqa: E402
from tests.integration.engines import Sampler, SecondEngine  # noqa: E402

CGROUPS = Path("/sys/fs/cgroup/cpuacct")


def own_cpu() -> float:
    """CPU seconds this process (all its threads) and its waited-for children spent."""
    me, kids = (
        resource.getrusage(resource.RUSAGE_SELF),
        resource.getrusage(resource.RUSAGE_CHILDREN),
    )
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


class ContainerCpu(Sampler):
    """Samples the CPU of every container this process's runs own, on each engine."""

    interval = 0.25

    def __init__(self, urls: list[str]) -> None:
        super().__init__()
        self.clients = [docker.DockerClient(base_url=url, timeout=30) for url in urls]
        self.seen: dict[str, float] = {}  # container id -> last CPU seconds read

    def sample(self) -> None:
        """Read the CPU of each of this process's containers on every engine."""
        mine = {"label": f"envkit.owner_pid={os.getpid()}"}
        for client in self.clients:
            try:
                ids = [c.id for c in client.containers.list(sparse=True, filters=mine)]
            except Exception:  # noqa: S112  # an engine busy or gone: next sample
                continue
            for cid in ids:
                for usage in CGROUPS.glob(f"*/{cid}/cpuacct.usage"):
                    with contextlib.suppress(OSError, ValueError):  # it just stopped
                        self.seen[cid] = int(usage.read_text()) / 1e9

    def __exit__(self, *exc: object) -> None:
        super().__exit__(*exc)
        for client in self.clients:
            client.close()

    @property
    def seconds(self) -> float:
        """CPU seconds of every container seen."""
        return sum(self.seen.values())


def batch(
    settings: EnvkitSettings, endpoints: list[Endpoint], runs: int, lock_dir: Path
) -> tuple[float, float, dict[str, list[float]]]:
    """Wall seconds, CPU seconds, and each run's own wall seconds per engine."""
    pool = EnginePool(endpoints, 1, lock_dir)
    per_engine: dict[str, list[float]] = {e.url: [] for e in endpoints}
    cpu0, t0 = own_cpu(), time.monotonic()
    sampler = ContainerCpu([e.url for e in endpoints]).__enter__()

    def one(number: int, slot: object) -> tuple[str, float, str]:
        endpoint = slot.endpoint  # type: ignore[attr-defined]
        began = time.monotonic()
        outcome, _ = run_isolated(settings, endpoint=endpoint)
        return endpoint.url, time.monotonic() - began, outcome.verdict

    for _, (url, seconds, verdict) in spread(pool, runs, one):
        if verdict != "passed":
            raise SystemExit(f"a run on {url} failed; see its artifacts")
        per_engine[url].append(seconds)
    wall = time.monotonic() - t0
    sampler.__exit__()
    return wall, own_cpu() - cpu0 + sampler.seconds, per_engine


def main() -> None:
    """Measure and print the figures."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=4)
    args = parser.parse_args()
    work = Path(f"/tmp/envkit-bench-pool-{os.getpid()}")
    settings = load_settings(
        env_file=None,
        environ={
            "ENVKIT_ARTIFACT_ROOT": str(work / "artifacts"),
            "ENVKIT_HISTORY_PATH": str(work / "history.sqlite"),
        },
        stack=ROOT / "compose" / "tier-b.toml",
    )
    ensure_engine()
    local = current_endpoint()
    second = SecondEngine()
    try:
        second.start()
        _with_images(settings, second.url, second.start_seconds or 0.0).client.close()
        remote = Endpoint(second.url, "benchmark")
        cores = os.cpu_count() or 1
        run_isolated(settings)  # warm the local engine (images present, caches hot)
        _, _, alone2 = batch(settings, [remote], 1, work / "lanes-a")
        t1, c1, alone1 = batch(settings, [local], args.runs, work / "lanes-1")
        t2, c2, spread2 = batch(settings, [local, remote], args.runs, work / "lanes-2")
        t_local = sum(alone1[local.url]) / len(alone1[local.url])
        t_remote = alone2[remote.url][0]
        placed = {url: len(times) for url, times in spread2.items()}
        separate = max(placed[local.url] * t_local, placed[remote.url] * t_remote)
        print(f"machine: {cores} cores; {args.runs} runs, K = 1 per engine")
        print(f"one engine:   {t1:6.1f} s wall, {c1:6.1f} CPU s ({c1 / args.runs:.1f} per run)")
        print(f"two engines:  {t2:6.1f} s wall, {c2:6.1f} CPU s; runs placed {placed}")
        print(f"measured ratio one/two: {t1 / t2:.2f}")
        print(f"CPU floor here: two-engine wall >= {c2:.1f} / {cores} = {c2 / cores:.1f} s")
        print(f"one run alone: local {t_local:.1f} s, second engine {t_remote:.1f} s")
        print(
            f"separate machines (projection): {separate:.1f} s wall, "
            f"ratio one/two {t1 / separate:.2f}"
        )
        # Here both engines share the cores: the batch needs the longer of the two bounds.
        here = max(separate, c2 / cores)
        print(f"best ratio this machine allows when idle: {t1 / here:.2f} (bound {here:.1f} s)")
    finally:
        second.stop()


if __name__ == "__main__":
    main()
