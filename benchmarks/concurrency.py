"""Benchmark isolated runs at once on one engine: do N concurrent `tier-b` runs scale with the CPU?

    .venv/bin/python benchmarks/concurrency.py [--counts 1,2,4] [--rounds 3] [--also-8]
        [--root DIR ...]

Each round starts N `invoke tier-b` processes at once (artifacts and history in a
temporary directory) and waits for all. Per N it prints the wall time (median over the
rounds, each round's too), the CPU-seconds used by the envkit processes and by the
containers they started (cgroup accounting, see `benchmarks/cpu.py`), the CPU floor
(those CPU-seconds / cores: the wall time no scheduler could beat) and wall / floor.
Target: wall / floor <= 1.3 at 4. Beside it, the engine's own work for the runs (dockerd,
containerd, shims, runc and dockerd's helpers: `cpu.EngineCpu`, where countable) and
wall / all, the ratio to the floor that counts it too (the engine's CPU is work the runs
need done, not time lost waiting: `benchmarks/engine_cost.py` breaks it down per container).
`--also-8` then runs 8 at once and checks every one
passed within the default readiness timeout (it prints each run's slowest
seconds-to-ready from its summary.json).

The rounds alternate the counts (1, 2, 4, 1, 2, 4, …) so drift in the machine's load
touches every count alike. The machine is shared: read the ratios, not single figures.
`--root` (repeatable) runs the commands of another envkit checkout too (e.g. an export
of an older commit, for before/after figures), alternating with this one round by round.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

# run as a script, so this directory is on sys.path
from cpu import ContainerCpu, EngineCpu, daemon_cpu, machine_busy, median_known, wait_cpu

ROOT = Path(__file__).resolve().parents[1]


@dataclass
class Round:
    """One round of N runs at once."""

    root: Path
    count: int
    wall: float
    process_cpu: float
    container_cpu: float
    daemon_cpu: float
    engine_cpu: float | None  # the engine's whole work (cpu.EngineCpu), None where not countable
    machine_cpu: float
    containers: int
    codes: list[int]
    slowest_ready: list[float]

    @property
    def cpu(self) -> float:
        """CPU-seconds of envkit's processes and their containers."""
        return self.process_cpu + self.container_cpu


def run_round(root: Path, count: int, workdir: Path, command: str) -> Round:
    """Start `count` runs at once and wait for them all."""
    children: list[subprocess.Popen[bytes]] = []
    dirs = []
    for i in range(count):
        out = Path(tempfile.mkdtemp(prefix=f"n{count}-{i}-", dir=workdir))
        dirs.append(out)
        env = {
            **os.environ,
            "PYTHONPATH": str(root),
            "ENVKIT_ARTIFACT_ROOT": str(out / "artifacts"),
            "ENVKIT_HISTORY_PATH": str(out / "history.sqlite"),
        }
        children.append(subprocess.Popen(
            [sys.executable, "-m", "invoke", command], cwd=root, env=env,
            stdout=(out / "stdout.txt").open("wb"), stderr=subprocess.STDOUT,
        ))  # fmt: skip
    daemons_before, machine_before = daemon_cpu(), machine_busy()
    started = time.perf_counter()
    with EngineCpu() as engine, ContainerCpu(lambda: [c.pid for c in children]) as containers:
        waited = [wait_cpu(c) for c in children]
        codes = [code for code, _ in waited]
        wall = time.perf_counter() - started
    return Round(
        root, count, wall, sum(cpu for _, cpu in waited), containers.seconds,
        daemon_cpu() - daemons_before, engine.seconds, machine_busy() - machine_before,
        containers.containers, codes,
        [_slowest_ready(d) for d in dirs],
    )  # fmt: skip


def _slowest_ready(out: Path) -> float:
    for summary in (out / "artifacts").glob("*/summary.json"):
        services = json.loads(summary.read_text()).get("services", {})
        times = [s.get("seconds_to_ready") for s in services.values() if isinstance(s, dict)]
        return max((t for t in times if isinstance(t, int | float)), default=float("nan"))
    return float("nan")


def report(rounds: list[Round], cores: int) -> None:
    """Print the figures per checkout and count."""
    for root in dict.fromkeys(r.root for r in rounds):
        print(f"\n{root}")
        _report([r for r in rounds if r.root == root], cores)


def _report(rounds: list[Round], cores: int) -> None:
    head = ("N", "wall s", "CPU s", "proc", "ctr", "floor", "wall/floor", "daemons", "engine",
            "wall/all", "machine")  # fmt: skip
    print(" ".join(f"{h:>10}" for h in head) + "  busy  rounds (wall)")
    for count in sorted({r.count for r in rounds}):
        mine = [r for r in rounds if r.count == count]

        def med(values: list[float]) -> float:
            return statistics.median(values)

        cpu = med([r.cpu for r in mine])
        cells = [
            med([r.wall for r in mine]), cpu, med([r.process_cpu for r in mine]),
            med([r.container_cpu for r in mine]), cpu / cores,
            med([r.wall / (r.cpu / cores) for r in mine]), med([r.daemon_cpu for r in mine]),
            median_known([r.engine_cpu for r in mine]),
            median_known([r.wall / ((r.cpu + r.engine_cpu) / cores) for r in mine
                        if r.engine_cpu is not None]),
            med([r.machine_cpu for r in mine]),
        ]  # fmt: skip
        busy = med([r.machine_cpu / (r.wall * cores) for r in mine])
        walls = " ".join(f"{r.wall:.1f}" for r in mine)
        print(f"{count:>10} " + " ".join("       n/a" if c is None else f"{c:10.2f}" for c in cells)
              + f"  {busy:4.0%}  {walls}")  # fmt: skip
        failed = [c for r in mine for c in r.codes if c != 0]
        if failed:
            print(f"   {len(failed)} of {count * len(mine)} runs FAILED (exit codes {failed})")


def main() -> None:
    """Run the rounds and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--counts", default="1,2,4")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--also-8", action="store_true", help="then 8 at once, once")
    parser.add_argument("--command", default="tier-b", help="the invoke task each run runs")
    parser.add_argument("--root", type=Path, action="append", help="an envkit checkout")
    args = parser.parse_args()
    roots = [r.resolve() for r in args.root or [ROOT]]
    for root in roots:  # envkit's bytecode, as ./inv compiles it under PYTHONDONTWRITEBYTECODE
        subprocess.run(
            [sys.executable, "-m", "compileall", "-q", "envkit", "healthchecks", "compose",
             "tasks.py"], cwd=root, stdout=subprocess.DEVNULL, check=False,
        )  # fmt: skip
    counts = [int(c) for c in args.counts.split(",")]
    cores = os.cpu_count() or 1
    with tempfile.TemporaryDirectory(prefix="envkit-concurrency-") as tmp:
        work = Path(tmp)
        for root in roots:
            run_round(root, 1, work, args.command)  # warm-up: page cache, images
        rounds = []
        for i in range(args.rounds):
            for count in counts:
                for root in roots if i % 2 == 0 else roots[::-1]:
                    rounds.append(run_round(root, count, work, args.command))
                    r = rounds[-1]
                    print(f"round {i + 1}: {root.name}: {count} at once: {r.wall:.2f} s wall, "
                          f"{r.cpu:.2f} CPU-s, {r.containers} containers, exit codes "
                          f"{r.codes}", flush=True)  # fmt: skip
        print(f"\n{cores} cores; CPU = envkit processes (proc) + their containers (ctr); "
              "daemons = dockerd + containerd over the round (shared with anything else "
              "on the engine, not in CPU); engine = all the engine's own work: daemons, "
              "shims, runc, helpers (cgroup; n/a where not countable), wall/all = wall / "
              "((CPU + engine) / cores); machine = every core's busy CPU-s over the round, "
              "busy = machine / (wall x cores): near 100% the cores were never idle (others' "
              "work fills them too), well below it the runs waited on something other than "
              "CPU")  # fmt: skip
        report(rounds, cores)
        if args.also_8:
            eight = run_round(roots[0], 8, work, args.command)
            ok = sum(1 for c in eight.codes if c == 0)
            print(f"\n8 at once: {ok}/8 green in {eight.wall:.1f} s wall, {eight.cpu:.1f} CPU-s "
                  f"(wall/floor {eight.wall / (eight.cpu / cores):.2f}); slowest seconds-to-ready "
                  f"per run: {' '.join(f'{s:.1f}' for s in eight.slowest_ready)}")  # fmt: skip


if __name__ == "__main__":
    main()
