"""Benchmark what the engine itself spends to start and remove one container.

    sudo .venv/bin/python benchmarks/engine_cost.py [--containers 10] [--rounds 3]
        [--image IMAGE]

Every run of a stack costs the engine work that is neither envkit's nor the containers'
own: dockerd's API handling, its helper re-executions (network namespace, the runtime's
set-up hook, the embedded DNS's firewall rules), containerd and its shims, runc, and the
kernel's share (network namespace, veth pair, overlay mount, cgroups). This prints that
cost per container, so the load benchmarks' floors can be read against it and an engine
(a newer Docker, other daemon options) can be compared on the same figure.

Per round and network kind (a user-defined bridge network as a run uses, the default
`bridge`, and `none`), it starts `--containers` containers of `--image` (default: the
services image `invoke images` built) running `sleep`, one after the other, then removes
them, and prints per container, median over the rounds:

* engine: the CPU-seconds of dockerd, containerd and what they started (their cgroup,
  `cpu.EngineCpu`; root and a local engine needed), split into dockerd's own, dockerd's
  reaped helpers (its re-executions and iptables: `cutime` in /proc), and the rest
  (containerd, shims, runc);
* machine: the whole machine's busy CPU-seconds over the same span (the engine's work,
  the kernel's share, and whatever else ran: read it on a quiet machine);
* the seconds each start and each removal took.

The machine is shared: read a figure against another measured in the same run.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass

import docker

# run as a script, so this directory is on sys.path
from cpu import EngineCpu, machine_busy, median_known, process_cpu

LABEL = "envkit.benchmark"


@dataclass
class Phase:
    """CPU and seconds of one phase (starting or removing the containers), per container."""

    seconds: float
    machine: float
    engine: float | None
    dockerd: float
    helpers: float

    @property
    def rest(self) -> float | None:
        """containerd, shims and runc: the engine's work outside dockerd."""
        return None if self.engine is None else self.engine - self.dockerd - self.helpers


@contextlib.contextmanager
def measured(count: int) -> Iterator[list[Phase]]:
    """Measure the block as one phase over `count` containers: its Phase is in the list
    yielded once the block is over."""
    phases: list[Phase] = []
    with EngineCpu() as engine:
        dockerd, machine, started = process_cpu(("dockerd",)), machine_busy(), time.perf_counter()
        yield phases
        seconds, used = time.perf_counter() - started, machine_busy() - machine
        own, reaped = process_cpu(("dockerd",))
    n = count
    phases.append(Phase(
        seconds / n, used / n, None if engine.seconds is None else engine.seconds / n,
        (own - dockerd[0]) / n, (reaped - dockerd[1]) / n,
    ))  # fmt: skip


def one_round(client: docker.DockerClient, image: str, network: str, count: int) -> list[Phase]:
    """Start `count` containers on `network` one after the other, then remove them."""
    created = None
    if network not in ("bridge", "none"):
        created = client.networks.create(network, labels={LABEL: "engine_cost"})
    containers = []
    try:
        with measured(count) as start:
            for _ in range(count):
                container = client.containers.create(
                    image, ["sleep", "300"], network=network, labels={LABEL: "engine_cost"}
                )
                containers.append(container)
                container.start()
        with measured(count) as remove:
            while containers:
                containers.pop().remove(force=True)
    finally:
        for container in containers:
            container.remove(force=True)
        if created is not None:
            created.remove()
    return [*start, *remove]


def _services_image() -> str:
    found = subprocess.run(
        ["docker", "images", "--format", "{{.Repository}}:{{.Tag}}", "envkit/services"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    images = found.stdout.split()
    if not images:
        raise SystemExit("no envkit/services image here: run `./inv images` first, or --image")
    return images[0]


def _cell(value: float | None) -> str:
    return "     n/a" if value is None else f"{value:8.3f}"


def main() -> None:
    """Run the rounds and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--containers", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--image", help="default: the services image")
    args = parser.parse_args()
    image = args.image or _services_image()
    client = docker.from_env()
    networks = (f"envkit-engine-cost-{os.getpid()}", "bridge", "none")
    one_round(client, image, networks[0], 2)  # warm-up: page cache, first-use paths
    phases: dict[tuple[str, int], list[Phase]] = {}
    for i in range(args.rounds):
        for network in networks if i % 2 == 0 else networks[::-1]:
            for which, phase in enumerate(one_round(client, image, network, args.containers)):
                phases.setdefault((network, which), []).append(phase)
    if phases[(networks[0], 0)][0].engine is None:
        print("engine CPU is not countable here (needs root, a local engine and a cgroup v1 "
              "cpuacct hierarchy without the cpu controller): engine columns are n/a")  # fmt: skip
    version = client.version()
    print(f"\nDocker {version.get('Version')}, {args.containers} containers of {image} per "
          f"round, {args.rounds} rounds, CPU-seconds and seconds per container (medians), "
          f"load average {' '.join(f'{v:.2f}' for v in os.getloadavg())}")  # fmt: skip
    head = ("network", "phase", "engine", "dockerd", "helpers", "rest", "machine", "seconds")
    print(f"{head[0]:<12} {head[1]:<7}" + "".join(f"{h:>9}" for h in head[2:]))
    for network in networks:
        for which, name in enumerate(("start", "remove")):
            mine = phases[(network, which)]
            cells = [
                median_known(getattr(p, figure) for p in mine)
                for figure in ("engine", "dockerd", "helpers", "rest", "machine", "seconds")
            ]
            label = "run network" if network == networks[0] else network
            print(f"{label:<12} {name:<7}" + "".join(" " + _cell(c) for c in cells))


if __name__ == "__main__":
    main()
