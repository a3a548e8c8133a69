"""Benchmark each Python service's start: CPU-seconds and seconds to its first `/health` 200.

    .venv/bin/python benchmarks/services_startup.py [--rounds 5] [--ports-from 29780]
        [--image REF [--image REF ...]] [--stack compose/tier-b.toml]

Each service of the stack that runs on the services image is started alone from that
image (default: the one `invoke up` would use; `--image` names others, e.g. an older
tag, to compare: images alternate within every round), with the environment the stack
gives it and its port published on 127.0.0.1 (`--ports-from`). The backend gets a
database address that refuses connections (its `/health` answers without PostgreSQL;
it keeps retrying in the background), so each figure is the service's own start alone.

Timed from `docker start` to the first 200 from `GET /health` (polled every 5 ms from
the host); the CPU is the container's cgroup usage read right then (the interpreter,
its imports, the app's construction and uvicorn's set-up; never the poller's). Prints
per image and service the median of the rounds (and every round), then the sum of the
medians over the stack's Python services. The machine is shared: compare images side
by side in one run, not figures of separate runs.
"""

from __future__ import annotations

import argparse
import http.client
import os
import statistics
import time
from collections import defaultdict
from pathlib import Path

from cpu import _cgroup_usage  # run as a script: this directory is on sys.path
from docker.models.containers import Container

from envkit.engines.engine import docker_client
from envkit.lifecycle.commands import stack_images
from envkit.spec.settings import load_settings
from envkit.spec.stack import load_stack, resolve_stack

ROOT = Path(__file__).resolve().parents[1]
PREFIX = "envkit-bench-services-"
# The backend's database: a refused port on the container's own loopback, so its
# start-up never waits on a lookup and its retries never reach anything.
NO_DATABASE = "Host=127.0.0.1;Port=1;Database=mgm;Username=mgm;Password=unused"


def ready(port: int, deadline: float) -> bool:
    """Poll `GET /health` until it answers 200 (True) or `deadline` passes (False)."""
    while time.perf_counter() < deadline:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
            try:
                conn.request("GET", "/health")
                if conn.getresponse().status == 200:
                    return True
            finally:
                conn.close()
        except OSError:
            pass
        time.sleep(0.005)
    return False


def one_start(container: Container, port: int) -> tuple[float, float]:
    """Start a created container; return (seconds to /health, its CPU-seconds by then)."""
    started = time.perf_counter()
    container.start()
    if not ready(port, started + 60):
        logs = container.logs().decode(errors="replace")[-2000:]
        raise SystemExit(f"{container.name} never answered /health:\n{logs}")
    seconds = time.perf_counter() - started
    cpu = _cgroup_usage(str(container.id))
    if cpu is None:
        raise SystemExit("cannot read the container's cgroup CPU usage (cgroup v1 or v2 only)")
    return seconds, cpu


def main() -> None:
    """Start every service alone, alternating images, and print the medians."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--ports-from", type=int, default=29780)
    parser.add_argument("--image", action="append", default=[], help="services image (repeat)")
    parser.add_argument("--stack", type=Path, default=ROOT / "compose" / "tier-b.toml")
    args = parser.parse_args()
    settings = load_settings(ROOT / ".env", stack=args.stack, root=ROOT)
    stack = load_stack(args.stack)
    resolved = resolve_stack(stack, settings)
    client = docker_client()
    built = stack_images(settings, client, stack, lambda message: None)
    python = {n: s for n, s in resolved.items() if s.spec.image == "services"}
    images = args.image or [built[next(iter(python))]]
    figures: dict[tuple[str, str], list[tuple[float, float]]] = defaultdict(list)
    try:
        for round_ in range(args.rounds + 1):  # round 0 warms the page cache: not counted
            order = [(i, n) for i in images for n in python]
            if round_ % 2:
                order.reverse()
            for image, name in order:
                svc = python[name]
                env = dict(svc.env)
                if name == "backend":
                    env["ConnectionStrings__PostgreSQL"] = NO_DATABASE
                port = args.ports_from + images.index(image)
                container = client.containers.create(
                    image,
                    command=list(svc.spec.command or ["backend"]),
                    environment=env,
                    name=f"{PREFIX}{os.getpid()}-{name}",
                    ports={f"{svc.spec.port}/tcp": ("127.0.0.1", port)},
                    labels={"envkit.benchmark": "services_startup"},
                )
                try:
                    sample = one_start(container, port)
                finally:
                    container.remove(force=True)
                if round_:
                    figures[image, name].append(sample)
    finally:
        client.close()
    load = " ".join(f"{figure:.2f}" for figure in os.getloadavg())
    print(f"\nservices start alone, to the first /health 200; median of {args.rounds} rounds, "
          f"{os.cpu_count()} cores, load average {load}")  # fmt: skip
    for image in images:
        print(f"\n{image}")
        total_cpu = total_seconds = 0.0
        for name in python:
            samples = figures[image, name]
            cpu = statistics.median(c for _, c in samples)
            seconds = statistics.median(s for s, _ in samples)
            total_cpu += cpu
            total_seconds += seconds
            print(
                f"  {name:18} {cpu:5.3f} CPU-s  {seconds:5.3f} s   (CPU-s rounds "
                f"{' '.join(f'{c:.3f}' for _, c in samples)})"
            )
        print(f"  {'total (' + str(len(python)) + ')':18} {total_cpu:5.3f} CPU-s  "
              f"{total_seconds:5.3f} s (sum of medians)")  # fmt: skip


if __name__ == "__main__":
    main()
