"""Benchmark how long an envkit process waits for its hold on the engine's reaper.

    .venv/bin/python benchmarks/reaper_hold.py [--processes 4] [--rounds 3] [--root DIR]

Each round uses a shared reaper of its own (an idle time no other run uses, so the reaper's
name is new) and starts N processes one after the other. Each process imports envkit,
connects to the engine, produces the reaper image (present: an inspection) and holds its
session (`reaper_for(...)` then `hold`, as an isolated run does), then exits. It reports
the seconds from its start (as the parent measured it, before the interpreter started) to
the reaper's ACK, the seconds of the hold alone, and the CPU-seconds of the process. The
first process of a round starts the reaper (a container start with a published port); the
later ones find it running and only connect. The reaper's own CPU is its cgroup's
(`benchmarks/cpu.py`). `--root` runs another envkit checkout's code instead (e.g. an export
of a commit from before the reaper was shared, where every process starts a reaper of its
own). The machine is shared: compare first vs later, not single figures.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import docker

ROOT = Path(__file__).resolve().parents[1]
CHILD = """
import json, os, sys, time
began = float(sys.argv[1])
from envkit.lifecycle.commands import connect
from envkit.lifecycle.hold import reaper_for
from envkit.spec.settings import load_settings
settings = load_settings(env_file=None)
client = connect(settings)
t0 = time.monotonic()
reaper = reaper_for(settings, client)
reaper.hold(client)
held = time.time()
from envkit.lifecycle import hold
name = reaper.name() if hasattr(reaper, "name") else hold.reaper_name()  # older: per process
print(json.dumps({
    "to_ack": held - began, "hold": time.monotonic() - t0,
    "cpu": sum(os.times()[:2]), "name": name,
}))
"""


def _child(root: Path, idle: float) -> dict[str, float | str]:
    env = {**os.environ, "PYTHONPATH": str(root)}
    if "idle_seconds" in (root / "envkit" / "spec" / "settings.py").read_text():  # shared reaper
        env["ENVKIT_REAPER__IDLE_SECONDS"] = f"{idle:g}"
    began = time.time()
    done = subprocess.run(
        [sys.executable, "-c", CHILD, repr(began)],
        cwd=root, env=env, capture_output=True, text=True, check=True,
    )  # fmt: skip
    result: dict[str, float | str] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def _reaper_cpu(client: docker.DockerClient, name: str) -> float | None:
    sys.path.insert(0, str(Path(__file__).parent))
    from cpu import _cgroup_usage

    try:
        return _cgroup_usage(client.containers.get(name).id)
    except docker.errors.NotFound:
        return None


def main() -> None:
    """Run the rounds and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--processes", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--root", type=Path, default=ROOT, help="an envkit checkout")
    args = parser.parse_args()
    client = docker.from_env()
    firsts: list[dict[str, float | str]] = []
    laters: list[dict[str, float | str]] = []
    for round_ in range(args.rounds):
        idle = 20 + round_ + (os.getpid() % 1000) / 1000  # a reaper of this round's own
        results = [_child(args.root.resolve(), idle) for _ in range(args.processes)]
        names = {r["name"] for r in results}
        reaper_cpu = _reaper_cpu(client, str(results[0]["name"]))
        load = os.getloadavg()
        print(
            f"round {round_ + 1}: one reaper ({len(names) == 1}), its CPU "
            f"{reaper_cpu if reaper_cpu is None else round(reaper_cpu, 3)} s; load {load[0]:.2f}"
        )
        for index, r in enumerate(results):
            print(
                f"  process {index + 1}: start->ACK {float(r['to_ack']):.3f} s, hold "
                f"{float(r['hold']):.3f} s, process CPU {float(r['cpu']):.3f} s"
            )
        firsts.append(results[0])
        laters.extend(results[1:])
        for name in names:  # the reaper would leave after its idle time; not wait for it
            with contextlib.suppress(docker.errors.NotFound):
                client.containers.get(str(name)).stop(timeout=5)
    for label, group in (("first process", firsts), ("later processes", laters)):
        if group:
            print(
                f"{label}: median start->ACK "
                f"{statistics.median(float(r['to_ack']) for r in group):.3f} s, hold "
                f"{statistics.median(float(r['hold']) for r in group):.3f} s, process CPU "
                f"{statistics.median(float(r['cpu']) for r in group):.3f} s (n={len(group)})"
            )


if __name__ == "__main__":
    main()
