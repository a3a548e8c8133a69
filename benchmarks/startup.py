"""Benchmark stack start-up, three ways, in one run on this machine.

    .venv/bin/python benchmarks/startup.py [--stack compose/tier-b.toml] [--rounds 3]

(a) envkit: the whole stack to all-ready (dependency-driven, parallel, fast probes);
(b) hand-written-CI style: one container at a time in dependency order, each polled
    for readiness once a second before the next starts;
(c) critical path: each service's own time to ready measured alone (with only its
    dependencies already up), summed along the longest dependency chain.

Prints every figure (median of the rounds) and the ratios a/b and a/c.
Targets: a/c <= 1.3 and a/b <= 0.5.

It also prints the CPU the whole machine spent during (a) (from /proc/stat, so the
engine, its helpers and envkit count too) and the floor that puts under (a): that
many CPU-seconds cannot take less than CPU-s / cores of wall time. On a 2-core
machine the floor, not the critical path, bounds (a); see MAINTENANCE.md.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path

from envkit.evidence.redact import Redactor
from envkit.healthchecks import ProbeFailed
from envkit.lifecycle.commands import artifact_dir_for, connect, running_stack, stack_images
from envkit.lifecycle.containers import EngineClient, owner_labels, run_network
from envkit.lifecycle.environment import (
    Environment,
    new_run_id,
    port_probe,
    remove_run,
    service_container,
)
from envkit.logs import configure_logging
from envkit.spec.settings import EnvkitSettings, load_settings
from envkit.spec.stack import StackSpec, load_stack, resolve_stack

ROOT = Path(__file__).resolve().parents[1]


def envkit_start(settings: EnvkitSettings, stack_path: Path) -> float:
    """(a) Seconds from asking for the stack to every service ready."""
    return envkit_start_cpu(settings, stack_path)[0]


def envkit_start_cpu(settings: EnvkitSettings, stack_path: Path) -> tuple[float, float | None]:
    """(a) and the machine's busy CPU-seconds over the same interval (None off Linux)."""
    busy = machine_busy_seconds()
    started = time.perf_counter()
    with running_stack(settings, stack_path):
        seconds = time.perf_counter() - started
        after = machine_busy_seconds()
    return seconds, None if busy is None or after is None else after - busy


def machine_busy_seconds() -> float | None:
    """CPU-seconds all cores have spent not idle since boot, from /proc/stat."""
    try:
        with open("/proc/stat", encoding="ascii") as stat:
            fields = [int(v) for v in stat.readline().split()[1:]]
    except OSError:
        return None
    idle = fields[3] + fields[4]  # idle + iowait
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def sequential_start(
    settings: EnvkitSettings, stack: StackSpec, images: dict[str, str], client: object
) -> float:
    """(b) One `docker run` at a time, each polled every second until ready."""
    resolved = resolve_stack(stack, settings)
    run_id = new_run_id(stack.name)
    labels = owner_labels(run_id, stack.name, "isolated")
    started = time.perf_counter()
    engine = EngineClient(client)  # type: ignore[arg-type]
    network = run_network(engine, labels)
    try:
        for name in [n for wave in stack.waves() for n in wave]:
            svc = resolved[name]
            container = service_container(images[name], svc, run_id, network, labels, engine)
            container.create_and_start()
            assert svc.spec.port is not None
            port = int(container.get_exposed_port(svc.spec.port))
            probe = port_probe(svc, "127.0.0.1", port)
            while probe is not None:
                try:
                    probe.check()
                    break
                except ProbeFailed:
                    time.sleep(1.0)  # `until curl -fs …; do sleep 1; done`
        return time.perf_counter() - started
    finally:
        remove_run(client, run_id)  # type: ignore[arg-type]


def own_times(
    settings: EnvkitSettings, stack: StackSpec, images: dict[str, str], client: object
) -> dict[str, float]:
    """(c) Each service's own seconds to ready, started alone after its dependencies."""
    resolved = resolve_stack(stack, settings)
    times: dict[str, float] = {}
    redactor = Redactor(settings.secret_values())
    for name in resolved:
        needed = _with_dependencies(stack, name)
        subset = {n: resolved[n] for n in needed}
        run_id = new_run_id(stack.name)
        env = Environment(
            stack, subset, {n: images[n] for n in needed},
            run_id=run_id, artifact_dir=artifact_dir_for(settings, run_id),
            redactor=redactor, client=client,  # type: ignore[arg-type]
        )  # fmt: skip
        with env:
            env.start()
            seconds = env.runs[name].seconds_to_ready
            assert seconds is not None
            times[name] = seconds
    return times


def _with_dependencies(stack: StackSpec, name: str) -> list[str]:
    seen: list[str] = []

    def visit(service: str) -> None:
        for dep in stack.services[service].depends_on:
            visit(dep)
        if service not in seen:
            seen.append(service)

    visit(name)
    return seen


def main() -> None:
    """Run the three measurements and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stack", type=Path, default=ROOT / "compose" / "tier-b.toml")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    settings = load_settings(ROOT / ".env")
    configure_logging(Redactor(settings.secret_values()))
    import loguru

    loguru.logger.remove()  # quiet: the figures are the output
    client = connect(settings)
    stack = load_stack(args.stack)
    images = stack_images(settings, client, stack, lambda message: None)
    envkit_start(settings, args.stack)  # warm-up: page cache, image layers

    a_cpu = [envkit_start_cpu(settings, args.stack) for _ in range(args.rounds)]
    a = [seconds for seconds, _ in a_cpu]
    b = [sequential_start(settings, stack, images, client) for _ in range(args.rounds)]
    c_rounds = [own_times(settings, stack, images, client) for _ in range(args.rounds)]
    own = {name: statistics.median(r[name] for r in c_rounds) for name in c_rounds[0]}
    chains = stack.dependency_chains()
    path, c = max(((ch, sum(own[n] for n in ch)) for ch in chains), key=lambda pair: pair[1])

    med_a, med_b = statistics.median(a), statistics.median(b)
    print(f"stack: {stack.name} ({len(stack.services)} services), {args.rounds} rounds")
    print(
        "own time to ready, alone (median s): " + ", ".join(f"{n} {t:.2f}" for n, t in own.items())
    )
    print(f"(a) envkit up to all-ready:         {med_a:6.2f} s   rounds {_fmt(a)}")
    print(f"(b) sequential, 1 s polling:        {med_b:6.2f} s   rounds {_fmt(b)}")
    print(f"(c) critical path {' -> '.join(path)}: {c:6.2f} s")
    print(f"a/b = {med_a / med_b:.2f}  (target <= 0.5)")
    print(f"a/c = {med_a / c:.2f}  (target <= 1.3)")
    cpu = [used for _, used in a_cpu if used is not None]
    if cpu:
        cores = os.cpu_count() or 1
        floor = statistics.median(cpu) / cores
        print(
            f"CPU during (a): {statistics.median(cpu):.2f} CPU-s on {cores} cores "
            f"-> floor {floor:.2f} s; a/floor = {med_a / floor:.2f}, "
            f"floor/c = {floor / c:.2f}"
        )


def _fmt(values: list[float]) -> str:
    return " ".join(f"{v:.2f}" for v in values)


if __name__ == "__main__":
    main()
